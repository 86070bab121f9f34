/**
 * The HTTP server: the dashboard at /, the JSON API under /api/v1 (docs/api.md), /metrics,
 * /healthz, OpenAPI at /api/v1/openapi.json, and the live stream. Bodies are validated at the
 * edge by the schemas of src/config/schema.ts; every error leaves through one handler as
 * `{error: {code, message, field?}}`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import fastifySwagger from '@fastify/swagger';
import fastifyWebsocket from '@fastify/websocket';
import { Type, type TSchema } from '@sinclair/typebox';
import type { Logger } from 'pino';
import type { BackendSpec, Controller, ServiceSpec, SettingsView } from './controller';
import { XdplbError, codeForStatus } from './errors';
import { bearerFrom, type AuthStore, type Identity } from './auth';
import { SECURITY_HEADERS, checkHostAndOrigin, isLoopbackAddress } from './guard';
import { createMetrics, type ApiMetrics } from './metrics';
import { registerStream, type StreamOptions } from './stream';
import { registerClusterRoutes } from './cluster-routes';
import type { ClusterService } from '../cluster/status';
import { MapPageQuerySchema, NAMED_SCHEMAS, bodyAjv, queryAjv, parseListen, validationErrorFrom, type Config } from '../config/schema';
import { MAX_PARAM_LENGTH, catalogueErrorFor, clientErrorHandler, drainRejectedBody, parseJsonBody, queryToken } from './http-edge';

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

/** Who may call a route: anyone, any authenticated user, admins only, or as config api.metrics says. */
type Access = 'public' | 'read' | 'write' | 'metrics';

declare module 'fastify' {
  interface FastifyContextConfig { access?: Access; queryToken?: boolean }
  interface FastifyRequest { identity: Identity | null; credentialKey: string | null }
  interface FastifyInstance { xdplbMetrics: ApiMetrics }
}

const ref = (id: string) => Type.Unsafe({ $ref: `${id}#` });
const ErrorRef = ref('Error');
const errors = (...codes: number[]) => Object.fromEntries(codes.map((c) => [c, ErrorRef]));
const ServiceName = Type.Object({ name: Type.String({ maxLength: 63 }) }, { additionalProperties: false });
const BackendParams = Type.Object({ name: Type.String({ maxLength: 63 }), backend: Type.String({ maxLength: 21, description: '"address:port"' }) }, { additionalProperties: false });
const Any = Type.Object({}, { additionalProperties: true });
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
    api.addHook('onRequest', async (request) => guard(request));
    api.addHook('onRequest', (request) => authenticateRequest(opts.auth, request, apiConfig().metrics ?? 'auth'));
    if (opts.cluster) registerClusterRoutes(api, opts.cluster);
    registerRoutes(api, controller, opts.auth, metrics);
    registerStream(api, controller, metrics, opts.stream, opts.auth);
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

function registerRoutes(app: FastifyInstance, controller: Controller, auth: AuthStore, metrics: ApiMetrics): void {
  const read = { access: 'read' as const };
  const write = { access: 'write' as const };
  const changed = (operation: string) => metrics.apiChanges.inc({ operation });

  app.get('/healthz', { config: { access: 'public' }, schema: { summary: 'Liveness', security: [] } }, async () => ({ status: 'ok' }));
  app.get('/metrics', { config: { access: 'metrics' }, schema: { summary: 'Prometheus metrics (who may read them: config api.metrics)' } }, async (_request, reply) => {
    const text = await metrics.render();
    return reply.type(metrics.registry.contentType).send(text);
  });
  app.get('/api/v1/openapi.json', { config: { access: 'public' }, schema: { hide: true } }, async () => app.swagger());

  app.post('/api/v1/login', {
    config: { access: 'public' },
    schema: {
      summary: 'Log in for a 12-hour session token', security: [],
      body: Type.Object({ username: Type.String({ minLength: 1, maxLength: 256 }), password: Type.String({ maxLength: 1024 }) }, { additionalProperties: false }),
      response: { 200: Type.Object({ token: Type.String(), user: Type.Object({ name: Type.String(), role: Type.String() }) }), ...errors(400, 401, 429) },
    },
  }, async (request) => {
    const { username, password } = request.body as { username: string; password: string };
    return auth.login(username, password, request.ip);
  });
  app.post('/api/v1/logout', { config: read, schema: { summary: 'End this session, or revoke this API token until restart', response: { 204: Type.Null() } } }, async (request, reply) => {
    const token = bearerFrom(request.headers.authorization);
    if (token && auth.logout(token) === 'token') {
      request.log.warn({ token: request.identity?.name }, 'API token revoked until the daemon restarts: remove it from the config to revoke it for good');
    }
    return reply.code(204).send();
  });
  app.get('/api/v1/whoami', { config: read, schema: { response: { 200: Type.Object({ name: Type.String(), role: Type.String() }) } } }, async (request) => request.identity);

  // Services and backends
  app.get('/api/v1/services', { config: read, schema: { response: { 200: Type.Object({ services: Type.Array(ref('Service')) }) } } }, async () => ({ services: controller.listServices() }));
  app.get('/api/v1/services/:name', { config: read, schema: { params: ServiceName, response: { 200: ref('Service'), ...errors(404) } } }, async (request) => {
    return controller.getService((request.params as { name: string }).name);
  });
  app.post('/api/v1/services', { config: write, schema: { body: ref('ServiceSpec'), response: { 201: ref('Service'), ...errors(400, 409) } } }, async (request, reply) => {
    const view = await controller.createService(request.body as ServiceSpec);
    changed('create_service');
    return reply.code(201).send(view);
  });
  app.put('/api/v1/services/:name', { config: write, schema: { params: ServiceName, body: ref('ServiceSpec'), response: { 200: ref('Service'), ...errors(400, 404, 409) } } }, async (request) => {
    const { name } = request.params as { name: string };
    const spec = request.body as ServiceSpec;
    if (spec.name !== name) throw new XdplbError('XDPLB_ERR_VALIDATION', `/name: must match the service in the URL ("${name}")`, '/name');
    const view = await controller.replaceService(name, spec);
    changed('replace_service');
    return view;
  });
  app.delete('/api/v1/services/:name', { config: write, schema: { params: ServiceName, response: { 204: Type.Null(), ...errors(404) } } }, async (request, reply) => {
    await controller.deleteService((request.params as { name: string }).name);
    changed('delete_service');
    return reply.code(204).send();
  });
  app.post('/api/v1/services/:name/backends', { config: write, schema: { params: ServiceName, body: ref('BackendSpec'), response: { 201: ref('Service'), ...errors(400, 404, 409) } } }, async (request, reply) => {
    const view = await controller.addBackend((request.params as { name: string }).name, request.body as BackendSpec);
    changed('add_backend');
    return reply.code(201).send(view);
  });
  app.patch('/api/v1/services/:name/backends/:backend', { config: write, schema: { params: BackendParams, body: ref('BackendPatch'), response: { 200: ref('Service'), ...errors(400, 404) } } }, async (request) => {
    const { name, backend } = request.params as { name: string; backend: string };
    const view = await controller.patchBackend(name, backend, request.body as { weight?: number; drain?: boolean });
    changed('patch_backend');
    return view;
  });
  app.delete('/api/v1/services/:name/backends/:backend', { config: write, schema: { params: BackendParams, response: { 204: Type.Null(), ...errors(404) } } }, async (request, reply) => {
    const { name, backend } = request.params as { name: string; backend: string };
    await controller.deleteBackend(name, backend);
    changed('delete_backend');
    return reply.code(204).send();
  });

  // Settings
  app.get('/api/v1/settings', { config: read, schema: { response: { 200: ref('Settings') } } }, async () => controller.getSettings());
  app.patch('/api/v1/settings', { config: write, schema: { body: ref('SettingsPatch'), response: { 200: ref('Settings'), ...errors(400) } } }, async (request) => {
    const settings = await controller.patchSettings(request.body as Partial<SettingsView>);
    changed('patch_settings');
    return settings;
  });

  // The flow hash seed: shown, and changed only by this explicit call (a reload never changes it).
  const HashSeed = Type.Object({ hashSeed: Type.Integer({ minimum: 0, maximum: 0xffffffff, description: 'flow hash seed of the running program' }) }, { additionalProperties: false });
  app.get('/api/v1/hash-seed', { config: read, schema: { response: { 200: HashSeed } } }, async () => {
    if (!controller.hashSeed) throw new XdplbError('XDPLB_ERR_UNAVAILABLE', 'this controller does not know the hash seed');
    return controller.hashSeed();
  });
  app.put('/api/v1/hash-seed', { config: write, schema: { body: HashSeed, response: { 200: HashSeed, ...errors(400) } } }, async (request) => {
    if (!controller.setHashSeed) throw new XdplbError('XDPLB_ERR_UNAVAILABLE', 'this controller cannot change the hash seed');
    const result = await controller.setHashSeed((request.body as { hashSeed: number }).hashSeed);
    changed('set_hash_seed');
    return result;
  });

  // Kernel views
  app.get('/api/v1/programs', { config: read, schema: { summary: 'BPF programs on the host', response: { 200: Any } } }, async () => controller.programs());
  app.post('/api/v1/programs/stats', {
    config: write,
    schema: { summary: 'Turn BPF_ENABLE_STATS on or off', body: Type.Object({ enabled: Type.Boolean() }, { additionalProperties: false }), response: { 200: Type.Object({ statsEnabled: Type.Boolean() }) } },
  }, async (request) => {
    const { enabled } = request.body as { enabled: boolean };
    controller.setProgramStats(enabled);
    changed('program_stats');
    return { statsEnabled: controller.programs().statsEnabled };
  });
  app.get('/api/v1/maps', { config: read, schema: { summary: 'The balancer\'s BPF maps', response: { 200: Any } } }, async () => ({ maps: controller.maps() }));
  app.get('/api/v1/maps/:name', {
    config: read,
    schema: {
      summary: 'Decoded entries of one map',
      params: Type.Object({ name: Type.String({ maxLength: 64 }) }, { additionalProperties: false }),
      querystring: MapPageQuerySchema,
      response: { 200: Any, ...errors(404) },
    },
  }, async (request) => {
    const { offset, limit } = request.query as { offset: number; limit: number };
    return controller.mapEntries((request.params as { name: string }).name, offset, limit);
  });
  app.get('/api/v1/interfaces', { config: read, schema: { summary: 'Interfaces where xdplb is attached', response: { 200: Any } } }, async () => ({ interfaces: controller.interfaces() }));

  // Stats
  app.get('/api/v1/stats', { config: read, schema: { summary: 'Current rates and counters (StatsView)', response: { 200: Any } } }, async () => controller.stats());
  app.get('/api/v1/stats/history', {
    config: read,
    schema: {
      summary: 'The last N seconds of StatsView samples (1 Hz)',
      querystring: Type.Object({ seconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 300, default: 300 })) }, { additionalProperties: false }),
      response: { 200: Any },
    },
  }, async (request) => ({ samples: controller.statsHistory((request.query as { seconds: number }).seconds) }));
  app.get('/api/v1/bench/latest', { config: read, schema: { summary: 'The newest saved benchmark results', response: { 200: Any } } }, async () => ({ results: controller.latestBench() }));
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
