/**
 * The HTTP server: the dashboard at /, the JSON API under /api/v1 (docs/api.md), /metrics,
 * /healthz, OpenAPI at /api/v1/openapi.json, and the live stream. Bodies are validated at the
 * edge by the schemas of src/config/schema.ts; every error leaves through one handler as
 * `{error: {code, message, field?}}`.
 *
 * This file holds what every route shares (Host/Origin guard, authentication, validators, the
 * error handler, 404/405, the dashboard's files); the routes are plugins, one per resource, in
 * routes/*.ts, registered below with one line each (docs/architecture.md, "API routes").
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import fastifySwagger from '@fastify/swagger';
import fastifyWebsocket from '@fastify/websocket';
import { Type, type TSchema } from '@sinclair/typebox';
import pino, { type Logger } from 'pino';
import type { Controller } from '../domain/types';
import { XdplbError, codeForStatus } from '../domain/errors';
import { bearerFrom, type AuthStore } from './auth';
import { SECURITY_HEADERS, checkHostAndOrigin, isLoopbackAddress } from './guard';
import { createMetrics } from './metrics';
import type { StreamOptions } from './stream';
import { clusterRoutes } from './routes/cluster';
import { clusterHeaders } from './cluster-headers';
import { ClusterService, defaultNodeName } from '../cluster/status';
import { NAMED_SCHEMAS, bodyAjv, queryAjv, parseListen, validationErrorFrom, type Config } from '../config/schema';
import { MAX_PARAM_LENGTH, catalogueErrorFor, clientErrorHandler, drainRejectedBody, parseJsonBody, queryToken } from './http-edge';
import { PUBLIC, type RouteContext } from './route-kit';
import { authRoutes } from './routes/auth';
import { servicesRoutes } from './routes/services';
import { backendsRoutes } from './routes/backends';
import { settingsRoutes } from './routes/settings';
import { observeRoutes } from './routes/observe';
import { benchRoutes } from './routes/bench';
import { addChangeTiming } from './timing';
import { stateRoutes } from './routes/state';
import { transitionsRoutes } from './routes/transitions';

export interface ApiServerOptions {
  auth: AuthStore;
  /** false (default), true, pino options, or a pino logger instance. */
  logger?: boolean | FastifyServerOptions['logger'] | Logger;
  /** Directory of the built dashboard, served at / with index.html for client routes. */
  webRoot?: string;
  /** Largest accepted request body; default 1 MiB. */
  bodyLimit?: number;
  stream?: StreamOptions;
  /**
   * The config's api section, read at every request so a reload applies: allowedHosts (Host
   * header names besides IP addresses and localhost), metrics (who may read /metrics).
   */
  apiConfig?: () => Partial<Config['api']>;
  /** The cluster view and node drain (src/cluster/status.ts); absent: no cluster routes. */
  cluster?: ClusterService;
}

const NO_QUERY = Type.Object({}, { additionalProperties: false });

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.json': 'application/json', '.svg': 'image/svg+xml', '.png': 'image/png',
  '.ico': 'image/x-icon', '.woff2': 'font/woff2', '.woff': 'font/woff', '.map': 'application/json', '.txt': 'text/plain; charset=utf-8',
  '.webmanifest': 'application/manifest+json',
};

/** Any error that reaches the handler, as a catalogue error whose message names what is wrong. */
function toXdplbError(error: unknown, request?: FastifyRequest): XdplbError {
  if (error instanceof XdplbError) return error;
  const e = error as { code?: string; statusCode?: number; message?: string; validation?: unknown };
  if (Array.isArray(e.validation)) return validationErrorFrom(e.validation);
  const framework = catalogueErrorFor(e, request);
  if (framework) return framework;
  const status = e.statusCode ?? 500;
  if (status >= 400 && status < 500) return new XdplbError(codeForStatus(status), e.message || undefined, status === 400 ? '' : undefined);
  return new XdplbError('XDPLB_ERR_INTERNAL');
}

function loggerOption(logger: ApiServerOptions['logger']): Pick<FastifyServerOptions, 'logger' | 'loggerInstance'> {
  // Request logs carry method, URL and peer only: no headers (Authorization), and the stream's
  // ?token= query parameter is masked.
  const serializers = {
    req: (req: { method: string; url: string; ip?: string }) => ({ method: req.method, url: req.url.replace(/([?&]token=)[^&]*/g, '$1[redacted]'), remoteAddress: req.ip }),
  };
  if (!logger) return { logger: false };
  if (typeof logger === 'object' && typeof (logger as Logger).child === 'function') {
    return { loggerInstance: (logger as Logger).child({ component: 'api' }, { serializers }) as unknown as FastifyServerOptions['loggerInstance'] };
  }
  if (logger === true) return { logger: { level: 'info', serializers } };
  return { logger: { ...(logger as object), serializers } as FastifyServerOptions['logger'] };
}

/**
 * Builds the server (routes are registered when it becomes ready; call `listen` or `ready`).
 * Nothing here touches the kernel: every change goes through `controller`.
 */
export function createApiServer(controller: Controller, opts: ApiServerOptions): FastifyInstance {
  const app = Fastify({
    ...loggerOption(opts.logger),
    bodyLimit: opts.bodyLimit ?? 1024 * 1024,
    forceCloseConnections: true,
    // Route parameters are bounded by their schemas (which name the parameter); this only caps
    // URLs that Node's header limit would not already refuse.
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    // What the router and Node's HTTP parser refuse answers from the catalogue too.
    frameworkErrors: (error: Error, request: FastifyRequest, reply: FastifyReply) => {
      const mapped = toXdplbError(error, request);
      void reply.code(mapped.statusCode).send(mapped.toJSON());
    },
    clientErrorHandler: clientErrorHandler,
  } as FastifyServerOptions) as unknown as FastifyInstance;
  const metrics = createMetrics(controller);
  app.decorate('xdplbMetrics', metrics);
  app.decorateRequest('identity', null);
  app.decorateRequest('credentialKey', null);
  const apiConfig: () => Partial<Config['api']> = opts.apiConfig ?? (() => ({}));
  const guard = (request: FastifyRequest) => {
    const { allowedHosts, listen } = apiConfig();
    checkHostAndOrigin(request, allowedHosts, listen ? parseListen(listen).host : undefined);
  };
  // Every response, errors and dashboard files included.
  app.addHook('onSend', async (request, reply, payload) => {
    void reply.headers(SECURITY_HEADERS);
    // API answers carry tokens and live state: never kept by a browser or proxy cache.
    if (request.url.startsWith('/api/') && !reply.hasHeader('cache-control')) void reply.header('cache-control', 'no-store');
    return payload;
  });

  for (const schema of NAMED_SCHEMAS) app.addSchema(schema);

  // One validator for every input: bodies strictly (no coercion, unknown fields are errors),
  // query strings and path parameters with string-to-number coercion.
  app.setValidatorCompiler(({ schema, httpPart }) => {
    const ajv = httpPart === 'body' ? bodyAjv : queryAjv;
    const validate = ajv.compile(schema as TSchema);
    return (data: unknown) => {
      // `?limit=1&limit=2` arrives as an array: say so rather than "must be an integer".
      const repeated = httpPart === 'querystring' && data && typeof data === 'object' ? Object.keys(data).find((k) => Array.isArray((data as Record<string, unknown>)[k])) : undefined;
      if (repeated !== undefined) {
        const field = '/' + repeated.replace(/~/g, '~0').replace(/\//g, '~1');
        return { error: new XdplbError('XDPLB_ERR_VALIDATION', `querystring ${field.slice(0, 100)}: is given more than once`, field) };
      }
      if (validate(data)) return { value: data };
      if (httpPart === 'body') return { error: validationErrorFrom(validate.errors, '', '(body)') };
      const error = validationErrorFrom(validate.errors, '', `(${httpPart})`);
      return { error: new XdplbError('XDPLB_ERR_VALIDATION', `${httpPart} ${error.message}`, error.field) };
    };
  });
  // Response schemas document; they do not filter (a field missing from a schema still goes out).
  app.setSerializerCompiler(() => (data: unknown) => JSON.stringify(data));

  // JSON only: a text/plain body would otherwise reach the validator as a string.
  app.removeContentTypeParser('text/plain');
  // An empty JSON body is "no body" (e.g. POST /logout from a client that always sends the
  // header); duplicate keys, deep nesting and keys that could reach an object's prototype are
  // refused outright (src/config/json.ts).
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, parseJsonBody);

  app.setErrorHandler(async (error, request, reply) => {
    const mapped = toXdplbError(error, request);
    const retryAfter = (error as { retryAfterSeconds?: unknown }).retryAfterSeconds;
    if (typeof retryAfter === 'number') void reply.header('retry-after', String(retryAfter));
    if (mapped.statusCode >= 500) request.log.error({ err: error }, 'request failed');
    // A refused body may still be arriving: read and discard the rest (bounded) before
    // answering, so that the client sees the 413 instead of a reset connection.
    if (mapped.code === 'XDPLB_ERR_PAYLOAD_TOO_LARGE') await drainRejectedBody(request);
    return reply.code(mapped.statusCode).send(mapped.toJSON());
  });

  // Every route's method and URL pattern, to tell a wrong method (405) from an unknown path (404).
  const routes: Array<{ methods: string[]; pattern: RegExp }> = [];
  app.addHook('onRoute', (route) => {
    const methods = ([] as string[]).concat(route.method);
    const pattern = new RegExp('^' + route.url.split('/').map((seg) => (seg.startsWith(':') ? '[^/]+' : seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('/') + '$');
    routes.push({ methods, pattern });
    // A query parameter no route knows is an error like an unknown body field (a `?dryRun=1`
    // on a DELETE must not be ignored while the delete goes ahead).
    if (route.url.startsWith('/api/') && !route.schema?.querystring) route.schema = { ...route.schema, querystring: NO_QUERY };
  });

  app.setNotFoundHandler((request, reply) => {
    try {
      guard(request);
    } catch (error) {
      return reply.code(403).send(toXdplbError(error).toJSON());
    }
    const url = request.url.split('?')[0];
    if (opts.webRoot && (request.method === 'GET' || request.method === 'HEAD') && !url.startsWith('/api/') && url !== '/api') {
      return serveStatic(opts.webRoot, url, reply);
    }
    const allowed = [...new Set(routes.filter((r) => r.pattern.test(url)).flatMap((r) => r.methods))];
    if (allowed.length > 0 && !allowed.includes(request.method)) {
      return reply.code(405).header('allow', allowed.join(', '))
        .send(new XdplbError('XDPLB_ERR_METHOD_NOT_ALLOWED', `(method): ${request.method} is not allowed on ${url.slice(0, 200)}; use ${allowed.join(', ')}`).toJSON());
    }
    return reply.code(404).send(new XdplbError('XDPLB_ERR_NOT_FOUND', `no route ${request.method} ${url.slice(0, 200)}`).toJSON());
  });

  void app.register(fastifySwagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'xdplb API', version: '1', description: 'See docs/api.md. Errors: {error: {code, message, field?}}.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    // Name components after the schemas' $id (ServiceSpec, Service...) instead of def-N.
    refResolver: { buildLocalReference: (json, _base, _fragment, i) => String(json.$id ?? `def-${i}`) },
  });
  void app.register(fastifyWebsocket, { options: { maxPayload: 64 * 1024 } });
  void app.register(async (api) => {
    // Added inside this context so that it runs after @fastify/websocket's own onRequest hook,
    // which must mark upgrade requests first (else a refused upgrade leaves its socket open).
    addChangeTiming(api);   // Server-Timing of changes (src/api/timing.ts)
    api.addHook('onRequest', async (request) => guard(request));
    api.addHook('onRequest', (request) => authenticateRequest(opts.auth, request, apiConfig().metrics ?? 'auth'));
    api.get('/healthz', { config: PUBLIC, schema: { summary: 'Liveness', security: [] } }, async () => ({ status: 'ok' }));
    api.get('/api/v1/openapi.json', { config: PUBLIC, schema: { hide: true } }, async () => api.swagger());
    // The routes, a plugin per resource (routes/*.ts): a new resource is one file and one line here.
    // The cluster view: the daemon passes its own; a server without one (tests, tools) shows this node alone.
    const cluster = opts.cluster ?? new ClusterService({ nodeName: defaultNodeName(), source: controller, store: null, logger: pino({ level: 'silent' }) });
    clusterHeaders(api, cluster);
    const context: RouteContext = { controller, auth: opts.auth, metrics, stream: opts.stream, cluster, changed: (operation) => metrics.apiChanges.inc({ operation }) };
    void api.register(authRoutes, context);
    void api.register(servicesRoutes, context);
    void api.register(backendsRoutes, context);
    void api.register(settingsRoutes, context);
    void api.register(observeRoutes, context);
    void api.register(benchRoutes, context);
    void api.register(clusterRoutes, context);
    void api.register(stateRoutes, context);
    void api.register(transitionsRoutes, context);
  });
  return app;
}

/** Enforces the route's access level: 401 without a valid token, 403 for viewers on changes. */
async function authenticateRequest(auth: AuthStore, request: FastifyRequest, metricsExposure: NonNullable<Config['api']['metrics']>): Promise<void> {
  let access = request.routeOptions.config?.access;
  if (access === 'metrics') {
    if (metricsExposure === 'public') return;
    if (metricsExposure === 'loopback') {
      if (isLoopbackAddress(request.socket.remoteAddress)) return;
      throw new XdplbError('XDPLB_ERR_FORBIDDEN', '/metrics is served to loopback clients only (config api.metrics: loopback)');
    }
    access = 'read';
  }
  if (!access || access === 'public') return;
  const token = bearerFrom(request.headers.authorization) ?? (request.routeOptions.config.queryToken ? queryToken(request) : null);
  const identity = await auth.authenticate(token, request.ip);
  if (!identity) throw new XdplbError('XDPLB_ERR_UNAUTHENTICATED', token ? 'invalid or expired token' : 'authentication required: send Authorization: Bearer <token>');
  if (access === 'write' && identity.role !== 'admin') throw new XdplbError('XDPLB_ERR_FORBIDDEN', `user "${identity.name}" (viewer) may not change anything`);
  request.identity = identity;
  request.credentialKey = auth.keyOf(token!);
}

/** Serves a file of the dashboard; client routes (no file extension) get index.html. */
async function serveStatic(root: string, urlPath: string, reply: FastifyReply): Promise<FastifyReply> {
  const notFound = () => reply.code(404).send(new XdplbError('XDPLB_ERR_NOT_FOUND', `no file ${urlPath.slice(0, 200)}`).toJSON());
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return notFound();
  }
  if (decoded.includes('\0')) return notFound();
  const base = path.resolve(root);
  // normalize() on an absolute path cannot climb above "/", so the result stays under base.
  let file = path.join(base, path.posix.normalize('/' + decoded));
  if (file !== base && !file.startsWith(base + path.sep)) return notFound();
  let stat = await fs.promises.stat(file).catch(() => null);
  if (stat?.isDirectory()) {
    file = path.join(file, 'index.html');
    stat = await fs.promises.stat(file).catch(() => null);
  }
  if (!stat?.isFile()) {
    if (path.posix.extname(decoded) !== '') return notFound();
    file = path.join(base, 'index.html');
    stat = await fs.promises.stat(file).catch(() => null);
    if (!stat?.isFile()) return notFound();
  }
  const isIndex = path.basename(file) === 'index.html';
  return reply
    .type(MIME[path.extname(file).toLowerCase()] ?? 'application/octet-stream')
    // Built assets carry content hashes in their names; index.html must always be fresh.
    .header('cache-control', isIndex ? 'no-cache' : 'public, max-age=3600')
    .header('content-length', stat.size)
    .send(fs.createReadStream(file));
}
