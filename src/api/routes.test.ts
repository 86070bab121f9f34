/**
 * The API's routes are plugins, one per resource (src/api/routes/*.ts, docs/architecture.md):
 * every route the server serves comes from exactly one plugin (or is one of server.ts's own
 * two: /healthz and the OpenAPI document), each plugin serves only its resource, every
 * plugin file is registered, and no handler casts what it reads of a request: bodies, params
 * and queries are typed by their schemas through the route's generics.
 */
import pino from 'pino';
import { ClusterService } from '../cluster/status';
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { AuthStore } from './auth';
import { MemoryController } from './memory-controller';
import { createApiServer } from './server';
import { createMetrics } from './metrics';
import type { RouteContext, RoutePlugin } from './route-kit';
import { repoPath } from '../paths';

const ROUTES_DIR = path.join(__dirname, 'routes');
const EXT = path.extname(__filename);   // .js from dist/, .ts under tsx
const SERVER_OWN = ['GET /healthz', 'GET /api/v1/openapi.json'];

/** What each resource's plugin may serve (method and URL pattern). */
const RESOURCES: Record<string, RegExp> = {
  auth: /^(POST|GET) \/api\/v1\/(login|logout|whoami)$/,
  services: /^\w+ \/api\/v1\/services(\/:name)?$/,
  backends: /^\w+ \/api\/v1\/services\/:name\/backends(\/:backend)?$/,
  settings: /^\w+ \/api\/v1\/(settings|hash-seed)$/,
  observe: /^\w+ (\/metrics|\/api\/v1\/(programs(\/stats)?|maps(\/:name)?|interfaces|stats(\/history)?|stream))$/,
  bench: /^GET \/api\/v1\/bench\//,
  cluster: /^(GET \/api\/v1\/cluster|PUT \/api\/v1\/nodes\/:name\/drain)$/,
  state: /^\w+ \/api\/v1\/state(\/backends)?$/,
  transitions: /^GET \/api\/v1\/transitions(\/:name)?$/,
};

/** The plugins each file of routes/ exports (`<name>Routes`). */
function pluginsOf(file: string): Array<[string, RoutePlugin]> {
  const exported = require(path.join(ROUTES_DIR, file)) as Record<string, unknown>;
  return Object.entries(exported).filter((entry): entry is [string, RoutePlugin] => typeof entry[1] === 'function' && entry[0].endsWith('Routes'));
}

/** "METHOD /url" of every route a plugin registers, read by running it on a recorder. */
async function routesOf(plugin: RoutePlugin, context: RouteContext): Promise<string[]> {
  const seen: string[] = [];
  const add = (method: string) => (url: string) => { seen.push(`${method} ${url}`); };
  const recorder = {
    get: add('GET'), post: add('POST'), put: add('PUT'), patch: add('PATCH'), delete: add('DELETE'),
    route: (route: { method: string | string[]; url: string }) => { for (const m of ([] as string[]).concat(route.method)) seen.push(`${m} ${route.url}`); },
  };
  await plugin(recorder as unknown as FastifyInstance, context);
  return seen;
}

describe('API routes: a plugin per resource', () => {
  const files = fs.readdirSync(ROUTES_DIR).filter((f) => f.endsWith(EXT) && !f.endsWith(`.test${EXT}`));
  const controller = new MemoryController({ services: [] });
  const auth = new AuthStore([{ name: 'admin', role: 'admin', password: 'admin-pass' }], []);
  const context: RouteContext = { controller, auth, metrics: createMetrics(controller), cluster: new ClusterService({ nodeName: 'n1', source: controller, store: null, logger: pino({ level: 'silent' }) }), changed: () => {} };
  const served: string[] = [];
  let app: FastifyInstance;

  before(async () => {
    app = createApiServer(controller, { auth });
    app.addHook('onRoute', (route) => {
      for (const method of ([] as string[]).concat(route.method)) if (method !== 'HEAD') served.push(`${method} ${route.url}`);
    });
    await app.ready();
  });

  test('one file per resource, each exporting one plugin', () => {
    assert.deepEqual(files.map((f) => path.basename(f, EXT)).sort(), Object.keys(RESOURCES).sort());
    for (const file of files) assert.equal(pluginsOf(file).length, 1, `${file} exports one <name>Routes plugin`);
  });

  test('each plugin serves only its resource, and the server serves exactly the plugins\' routes and its own two', async () => {
    const fromPlugins: string[] = [];
    for (const file of files) {
      const resource = path.basename(file, EXT);
      const routes = await routesOf(pluginsOf(file)[0][1], context);
      assert.ok(routes.length > 0, `${file} registers routes`);
      for (const route of routes) assert.match(route, RESOURCES[resource], `${route} belongs to ${resource}`);
      fromPlugins.push(...routes);
    }
    assert.equal(new Set(fromPlugins).size, fromPlugins.length, 'no route is registered by two plugins');
    assert.deepEqual([...served].sort(), [...SERVER_OWN, ...fromPlugins].sort(), 'every plugin is registered in server.ts, and nothing else is served');
    assert.ok(served.length >= 26, `the whole API (${served.length} routes)`);
  });

  test('no handler casts the request: bodies, params and queries are typed by the route generics', () => {
    const sources = [...files.map((f) => path.join('routes', path.basename(f, EXT) + '.ts')), 'server.ts'];
    for (const file of sources) {
      const text = fs.readFileSync(repoPath(path.join('src', 'api', file)), 'utf8');
      assert.doesNotMatch(text, /request\.(body|params|query)\s+as\b/, `${file} casts a request part`);
      assert.doesNotMatch(text, /\(request\.(body|params|query) as/, `${file} casts a request part`);
    }
  });
});
