import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { AuthStore } from './auth';
import { MemoryController } from './memory-controller';
import { createApiServer } from './server';
import { BackendSpecSchema, UNICAST_ADDRESS_FORMAT } from '../config/schema';

const WEB = {
  name: 'web', vip: '198.18.100.1', port: 80, protocol: 'tcp', mode: 'nat',
  backends: [{ address: '198.18.1.2', port: 8080, weight: 1 }],
};
const API_TOKEN = 'ci-token-0123456789abcdef';

function setup(extra: Partial<Parameters<typeof createApiServer>[1]> = {}) {
  const controller = new MemoryController({ services: [WEB] });
  const auth = new AuthStore(
    [{ name: 'admin', role: 'admin', password: 'admin-pass' }, { name: 'viewer', role: 'viewer', password: 'viewer-pass' }],
    [{ name: 'ci', role: 'admin', token: API_TOKEN }],
  );
  const app = createApiServer(controller, { auth, ...extra });
  return { controller, auth, app };
}

async function login(app: FastifyInstance, username: string, password: string): Promise<Record<string, string>> {
  const res = await app.inject({ method: 'POST', url: '/api/v1/login', payload: { username, password } });
  assert.equal(res.statusCode, 200, res.body);
  return { authorization: `Bearer ${res.json().token}` };
}

function assertError(res: { statusCode: number; json(): any; body: string }, status: number, code: string, field?: string) {
  assert.equal(res.statusCode, status, res.body);
  const body = res.json();
  assert.equal(body.error.code, code, res.body);
  assert.equal(typeof body.error.message, 'string');
  if (field !== undefined) assert.equal(body.error.field, field, res.body);
}

describe('API: auth', () => {
  const { app, auth } = setup();
  after(() => app.close());

  test('login ok, wrong password 401, malformed body 400', async () => {
    const ok = await app.inject({ method: 'POST', url: '/api/v1/login', payload: { username: 'admin', password: 'admin-pass' } });
    assert.equal(ok.statusCode, 200);
    assert.match(ok.json().token, /^[0-9a-f]{64}$/);
    assert.deepEqual(ok.json().user, { name: 'admin', role: 'admin' });
    assertError(await app.inject({ method: 'POST', url: '/api/v1/login', payload: { username: 'admin', password: 'nope' } }), 401, 'XDPLB_ERR_UNAUTHENTICATED');
    assertError(await app.inject({ method: 'POST', url: '/api/v1/login', payload: { username: 'admin' } }), 400, 'XDPLB_ERR_VALIDATION', '/password');
  });

  test('no token or a bad token: 401 on every protected route', async () => {
    for (const url of ['/api/v1/services', '/api/v1/settings', '/api/v1/stats', '/api/v1/whoami', '/api/v1/maps', '/api/v1/programs']) {
      assertError(await app.inject({ method: 'GET', url }), 401, 'XDPLB_ERR_UNAUTHENTICATED');
      assertError(await app.inject({ method: 'GET', url, headers: { authorization: 'Bearer 00' } }), 401, 'XDPLB_ERR_UNAUTHENTICATED');
    }
    assertError(await app.inject({ method: 'DELETE', url: '/api/v1/services/web' }), 401, 'XDPLB_ERR_UNAUTHENTICATED');
  });

  test('viewer reads, but every change is 403 and changes nothing', async () => {
    const viewer = await login(app, 'viewer', 'viewer-pass');
    assert.deepEqual((await app.inject({ method: 'GET', url: '/api/v1/whoami', headers: viewer })).json(), { name: 'viewer', role: 'viewer' });
    const list = await app.inject({ method: 'GET', url: '/api/v1/services', headers: viewer });
    assert.equal(list.statusCode, 200);
    const attempts = [
      { method: 'POST' as const, url: '/api/v1/services', payload: { ...WEB, name: 'x', vip: '198.18.100.9' } },
      { method: 'PUT' as const, url: '/api/v1/services/web', payload: WEB },
      { method: 'DELETE' as const, url: '/api/v1/services/web' },
      { method: 'POST' as const, url: '/api/v1/services/web/backends', payload: { address: '198.18.1.3', port: 8080 } },
      { method: 'PATCH' as const, url: '/api/v1/services/web/backends/198.18.1.2:8080', payload: { weight: 3 } },
      { method: 'DELETE' as const, url: '/api/v1/services/web/backends/198.18.1.2:8080' },
      { method: 'PATCH' as const, url: '/api/v1/settings', payload: { sampleRate: 5 } },
      { method: 'POST' as const, url: '/api/v1/programs/stats', payload: { enabled: true } },
    ];
    for (const attempt of attempts) {
      assertError(await app.inject({ ...attempt, headers: viewer }), 403, 'XDPLB_ERR_FORBIDDEN');
    }
    assert.deepEqual((await app.inject({ method: 'GET', url: '/api/v1/services', headers: viewer })).json(), list.json());
  });

  test('a configured API token works as a bearer', async () => {
    const res = await app.inject({ method: 'GET', url: '/api/v1/whoami', headers: { authorization: `Bearer ${API_TOKEN}` } });
    assert.deepEqual(res.json(), { name: 'ci', role: 'admin' });
  });

  test('logout ends the session', async () => {
    const admin = await login(app, 'admin', 'admin-pass');
    assert.equal((await app.inject({ method: 'POST', url: '/api/v1/logout', headers: admin })).statusCode, 204);
    assertError(await app.inject({ method: 'GET', url: '/api/v1/whoami', headers: admin }), 401, 'XDPLB_ERR_UNAUTHENTICATED');
    assert.ok(auth.sessionCount() >= 0);
  });
});

describe('API: services, backends, settings (admin)', () => {
  const { app, controller } = setup();
  let admin: Record<string, string>;
  before(async () => { admin = await login(app, 'admin', 'admin-pass'); });
  after(() => app.close());

  const api = (method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, payload?: unknown) =>
    app.inject({ method, url, headers: admin, ...(payload === undefined ? {} : { payload: payload as object }) });

  test('create 201, read 200, duplicate 409, invalid 400 with the field', async () => {
    const spec = { name: 'api', vip: '198.18.100.3', port: 443, protocol: 'tcp', mode: 'nat', backends: [{ address: '198.18.1.30', port: 8443 }] };
    const created = await api('POST', '/api/v1/services', spec);
    assert.equal(created.statusCode, 201, created.body);
    assert.equal(created.json().name, 'api');
    assert.equal(created.json().backends[0].key, '198.18.1.30:8443');
    assert.equal(created.json().backends[0].weight, 1, 'default applied');
    assert.equal((await api('GET', '/api/v1/services/api')).json().vip, '198.18.100.3');
    assert.deepEqual((await api('GET', '/api/v1/services')).json().services.map((s: { name: string }) => s.name), ['web', 'api']);

    assertError(await api('POST', '/api/v1/services', spec), 409, 'XDPLB_ERR_CONFLICT', '/name');
    assertError(await api('POST', '/api/v1/services', { ...spec, name: 'api2' }), 409, 'XDPLB_ERR_CONFLICT', '/vip');
    assertError(await api('POST', '/api/v1/services', { ...spec, name: 'api3', vip: '198.18.100.4' }), 409, 'XDPLB_ERR_CONFLICT', '/backends/0/address');
    assertError(await api('POST', '/api/v1/services', { ...spec, name: 'bad', vip: '198.18.100.5', backends: [{ address: '198.18.1.31', port: 70000 }] }), 400, 'XDPLB_ERR_VALIDATION', '/backends/0/port');
    assertError(await api('POST', '/api/v1/services', { ...spec, name: 'bad', vip: '10.0.0.010' }), 400, 'XDPLB_ERR_VALIDATION', '/vip');
    assertError(await api('POST', '/api/v1/services', { ...spec, name: 'bad', vip: '198.18.100.5', extra: 1 }), 400, 'XDPLB_ERR_VALIDATION', '/extra');
    assertError(await api('POST', '/api/v1/services', { ...spec, name: 'bad', vip: '198.18.100.5', port: '443' }), 400, 'XDPLB_ERR_VALIDATION', '/port');
    assertError(await api('POST', '/api/v1/services', { ...spec, name: 'bad', vip: '198.18.100.5', tableSize: 100 }), 400, 'XDPLB_ERR_VALIDATION', '/tableSize');
    assertError(await api('GET', '/api/v1/services/nope'), 404, 'XDPLB_ERR_NOT_FOUND');
    assert.equal((await api('GET', '/api/v1/services')).json().services.length, 2, 'nothing half-applied');

    // Up to 1048573 slots per service (M >= N^2 for 1000 backends: docs/config.md).
    assertError(await api('POST', '/api/v1/services', { ...spec, name: 'bad', vip: '198.18.100.5', tableSize: 1048583 }), 400, 'XDPLB_ERR_VALIDATION', '/tableSize');
    const big = await api('POST', '/api/v1/services', { ...spec, name: 'big', vip: '198.18.100.6', tableSize: 1000003, backends: [] });
    assert.equal(big.statusCode, 201, big.body);
    assert.equal(big.json().tableSize, 1000003);
    assert.equal((await api('DELETE', '/api/v1/services/big')).statusCode, 204);
  });

  test('replace 200, name mismatch 400, unknown 404', async () => {
    const replaced = await api('PUT', '/api/v1/services/web', { ...WEB, mode: 'dsr', backends: [{ address: '198.18.1.2', port: 80 }] });
    assert.equal(replaced.statusCode, 200, replaced.body);
    assert.equal(replaced.json().mode, 'dsr');
    assertError(await api('PUT', '/api/v1/services/web', { ...WEB, name: 'www' }), 400, 'XDPLB_ERR_VALIDATION', '/name');
    assertError(await api('PUT', '/api/v1/services/nope', { ...WEB, name: 'nope', vip: '198.18.100.77' }), 404, 'XDPLB_ERR_NOT_FOUND');
    assertError(await api('PUT', '/api/v1/services/web', { ...WEB, mode: 'dsr' }), 400, 'XDPLB_ERR_VALIDATION', '/backends/0/port');
  });

  test('backends: add 201, duplicate 409, patch 200, delete 204, unknown 404', async () => {
    const added = await api('POST', '/api/v1/services/api/backends', { address: '198.18.1.32', port: 8443, weight: 3 });
    assert.equal(added.statusCode, 201, added.body);
    assert.equal(added.json().backends.length, 2);
    assertError(await api('POST', '/api/v1/services/api/backends', { address: '198.18.1.32', port: 8443 }), 409, 'XDPLB_ERR_CONFLICT');
    assertError(await api('POST', '/api/v1/services/api/backends', { address: '198.18.1.33', port: 8443, weight: 1001 }), 400, 'XDPLB_ERR_VALIDATION', '/weight');
    assertError(await api('POST', '/api/v1/services/nope/backends', { address: '198.18.1.33', port: 8443 }), 404, 'XDPLB_ERR_NOT_FOUND');

    const patched = await api('PATCH', '/api/v1/services/api/backends/198.18.1.32:8443', { weight: 7, drain: true });
    assert.equal(patched.statusCode, 200, patched.body);
    const backend = patched.json().backends.find((b: { key: string }) => b.key === '198.18.1.32:8443');
    assert.equal(backend.weight, 7);
    assert.equal(backend.draining, true);
    assertError(await api('PATCH', '/api/v1/services/api/backends/198.18.1.32:8443', { weight: -1 }), 400, 'XDPLB_ERR_VALIDATION', '/weight');
    assertError(await api('PATCH', '/api/v1/services/api/backends/198.18.1.32:8443', { address: '198.18.1.1' }), 400, 'XDPLB_ERR_VALIDATION', '/address');
    assertError(await api('PATCH', '/api/v1/services/api/backends/198.18.1.99:1', { weight: 1 }), 404, 'XDPLB_ERR_NOT_FOUND');

    const deleted = await api('DELETE', '/api/v1/services/api/backends/198.18.1.32:8443');
    assert.equal(deleted.statusCode, 204);
    assert.equal(deleted.body, '');
    assertError(await api('DELETE', '/api/v1/services/api/backends/198.18.1.32:8443'), 404, 'XDPLB_ERR_NOT_FOUND');
    assert.equal(controller.config().services.find((s) => s.name === 'api')!.backends.length, 1);
  });

  test('delete service 204, then 404', async () => {
    assert.equal((await api('DELETE', '/api/v1/services/api')).statusCode, 204);
    assertError(await api('DELETE', '/api/v1/services/api'), 404, 'XDPLB_ERR_NOT_FOUND');
    assertError(await api('GET', '/api/v1/services/api'), 404, 'XDPLB_ERR_NOT_FOUND');
  });

  test('settings: get, patch, invalid patch', async () => {
    assert.deepEqual((await api('GET', '/api/v1/settings')).json(), { fragPolicy: 'drop', sampleRate: 0, flowCache: true });
    const patched = await api('PATCH', '/api/v1/settings', { sampleRate: 100, fragPolicy: 'pass' });
    assert.equal(patched.statusCode, 200, patched.body);
    assert.deepEqual(patched.json(), { fragPolicy: 'pass', sampleRate: 100, flowCache: true });
    assertError(await api('PATCH', '/api/v1/settings', { fragPolicy: 'reassemble' }), 400, 'XDPLB_ERR_VALIDATION', '/fragPolicy');
    assertError(await api('PATCH', '/api/v1/settings', { hashSeed: 1 }), 400, 'XDPLB_ERR_VALIDATION', '/hashSeed');
    assert.equal(controller.config().sampling.rate, 100);
  });

  test('kernel views, stats, history, bench', async () => {
    assert.deepEqual((await api('GET', '/api/v1/maps')).json(), { maps: [] });
    assertError(await api('GET', '/api/v1/maps/services'), 404, 'XDPLB_ERR_NOT_FOUND');
    assertError(await api('GET', '/api/v1/maps/services?limit=5000'), 400, 'XDPLB_ERR_VALIDATION', '/limit');
    assert.deepEqual((await api('GET', '/api/v1/interfaces')).json(), { interfaces: [] });
    const stats = await api('POST', '/api/v1/programs/stats', { enabled: true });
    assert.deepEqual(stats.json(), { statsEnabled: true });
    assert.equal((await api('GET', '/api/v1/programs')).json().statsEnabled, true);
    assert.equal((await api('GET', '/api/v1/stats')).json().services[0].name, 'web');
    assert.equal((await api('GET', '/api/v1/stats/history?seconds=10')).json().samples.length, 1);
    assertError(await api('GET', '/api/v1/stats/history?seconds=0'), 400, 'XDPLB_ERR_VALIDATION', '/seconds');
    assert.deepEqual((await api('GET', '/api/v1/bench/latest')).json(), { results: null });
  });

  test('body limits and content types', async () => {
    const huge = { ...WEB, name: 'huge', vip: '198.18.100.50', padding: 'x'.repeat(1024 * 1024) };
    assertError(await api('POST', '/api/v1/services', huge), 413, 'XDPLB_ERR_PAYLOAD_TOO_LARGE');
    const text = await app.inject({ method: 'POST', url: '/api/v1/services', headers: { ...admin, 'content-type': 'text/plain' }, payload: 'name=web' });
    assertError(text, 415, 'XDPLB_ERR_UNSUPPORTED_MEDIA_TYPE');
    const broken = await app.inject({ method: 'POST', url: '/api/v1/services', headers: { ...admin, 'content-type': 'application/json' }, payload: '{"name":' });
    assertError(broken, 400, 'XDPLB_ERR_VALIDATION');
    assertError(await api('GET', '/api/v1/no-such-route'), 404, 'XDPLB_ERR_NOT_FOUND');
    const empty = await app.inject({ method: 'POST', url: '/api/v1/services', headers: { ...admin, 'content-type': 'application/json' }, payload: '' });
    assertError(empty, 400, 'XDPLB_ERR_VALIDATION', '');
    assert.match(empty.json().error.message, /^\(body\): must be/);
    const proto = await app.inject({ method: 'PATCH', url: '/api/v1/settings', headers: { ...admin, 'content-type': 'application/json' }, payload: '{"__proto__": {"sampleRate": 5}}' });
    assertError(proto, 400, 'XDPLB_ERR_VALIDATION', '/__proto__');
    assert.equal(({} as Record<string, unknown>).sampleRate, undefined);
  });

  test('an empty JSON body counts as no body (logout)', async () => {
    const session = await login(app, 'admin', 'admin-pass');
    const res = await app.inject({ method: 'POST', url: '/api/v1/logout', headers: { ...session, 'content-type': 'application/json' }, payload: '' });
    assert.equal(res.statusCode, 204, res.body);
  });
});

describe('API: healthz, metrics, openapi', () => {
  const { app, controller } = setup();
  after(() => app.close());

  test('/healthz needs no auth', async () => {
    const res = await app.inject({ method: 'GET', url: '/healthz' });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json(), { status: 'ok' });
  });

  test('/metrics exposes the named series in Prometheus text format', async () => {
    controller.snapshot.services.web = { fwdPackets: 120, fwdBytes: 9000, revPackets: 80, revBytes: 6000 };
    controller.snapshot.backends.web = { '198.18.1.2:8080': { fwdPackets: 120, fwdBytes: 9000, revPackets: 80, revBytes: 6000 } };
    controller.snapshot.actions.tx = { packets: 200, bytes: 15000 };
    controller.snapshot.reasons.forwarded = { packets: 120, bytes: 9000 };
    controller.snapshot.reasons.not_vip = { packets: 3, bytes: 180 };
    controller.health.set('web/198.18.1.2:8080', 'up');
    app.xdplbMetrics.configReloads.inc();

    const res = await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${API_TOKEN}` } });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    const expected = [
      '# TYPE xdplb_service_packets_total counter',
      'xdplb_service_packets_total{service="web",direction="fwd"} 120',
      'xdplb_service_packets_total{service="web",direction="rev"} 80',
      'xdplb_service_bytes_total{service="web",direction="fwd"} 9000',
      'xdplb_backend_packets_total{service="web",backend="198.18.1.2:8080",direction="rev",backend_id="1000"} 80',
      'xdplb_backend_bytes_total{service="web",backend="198.18.1.2:8080",direction="fwd",backend_id="1000"} 9000',
      '# TYPE xdplb_backend_up gauge',
      'xdplb_backend_up{service="web",backend="198.18.1.2:8080"} 1',
      'xdplb_xdp_actions_total{action="tx"} 200',
      'xdplb_verdicts_total{reason="forwarded"} 120',
      'xdplb_verdicts_total{reason="not_vip"} 3',
      'xdplb_config_reloads_total 1',
      'xdplb_services 1',
    ];
    const lines = res.body.split('\n');
    for (const line of expected) assert.ok(lines.includes(line), `missing: ${line}\n${res.body}`);

    // Values follow the controller at every scrape.
    controller.health.set('web/198.18.1.2:8080', 'down');
    controller.snapshot.services.web.fwdPackets = 121;
    const again = (await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${API_TOKEN}` } })).body.split('\n');
    assert.ok(again.includes('xdplb_backend_up{service="web",backend="198.18.1.2:8080"} 0'), again.filter((l) => l.startsWith('xdplb_backend')).join('\n'));
    assert.ok(again.includes('xdplb_service_packets_total{service="web",direction="fwd"} 121'));
  });

  test('/api/v1/openapi.json documents the routes with the shared schemas', async () => {
    const res = await app.inject({ method: 'GET', url: '/api/v1/openapi.json' });
    assert.equal(res.statusCode, 200);
    const doc = res.json();
    assert.match(doc.openapi, /^3\./);
    const spec = doc.components.schemas.ServiceSpec;
    assert.equal(spec.additionalProperties, false);
    assert.equal(spec.properties.vip.format, UNICAST_ADDRESS_FORMAT, 'the schema that validates is the schema that documents');
    assert.match(spec.properties.vip.description, /IPv6 address .*RFC 5952/);
    assert.deepEqual(doc.components.schemas.BackendSpec.properties.weight, { type: 'integer', minimum: 0, maximum: 1000, default: 1, description: BackendSpecSchema.properties.weight.description });
    assert.deepEqual(Object.keys(spec.properties).sort(), ['backends', 'healthCheck', 'mode', 'name', 'port', 'protocol', 'tableSize', 'vip']);
    assert.equal(doc.paths['/api/v1/services'].post.requestBody.content['application/json'].schema.$ref, '#/components/schemas/ServiceSpec');
    for (const p of ['/api/v1/services/{name}', '/api/v1/services/{name}/backends/{backend}', '/api/v1/settings', '/api/v1/login']) assert.ok(doc.paths[p], p);
  });
});

describe('API: dashboard files', () => {
  const webRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'xlbt-api-web-'));
  fs.writeFileSync(path.join(webRoot, 'index.html'), '<!doctype html><title>xdplb</title>');
  fs.mkdirSync(path.join(webRoot, 'assets'));
  fs.writeFileSync(path.join(webRoot, 'assets', 'app.js'), 'console.log(1)');
  const secret = path.join(path.dirname(webRoot), `${path.basename(webRoot)}-secret.txt`);
  fs.writeFileSync(secret, 'secret');
  const { app } = setup({ webRoot });
  after(async () => { await app.close(); fs.rmSync(webRoot, { recursive: true, force: true }); fs.rmSync(secret, { force: true }); });

  test('index, assets, client-route fallback, 404s', async () => {
    const index = await app.inject({ method: 'GET', url: '/' });
    assert.equal(index.statusCode, 200);
    assert.match(String(index.headers['content-type']), /text\/html/);
    assert.match(index.body, /<title>xdplb/);
    const js = await app.inject({ method: 'GET', url: '/assets/app.js' });
    assert.equal(js.body, 'console.log(1)');
    assert.match(String(js.headers['content-type']), /javascript/);
    assert.match((await app.inject({ method: 'GET', url: '/services/web' })).body, /<title>xdplb/);
    assert.equal((await app.inject({ method: 'GET', url: '/assets/missing.js' })).statusCode, 404);
    assert.doesNotMatch((await app.inject({ method: 'GET', url: '/../../etc/passwd' })).body, /root:/);
    assert.equal((await app.inject({ method: 'GET', url: `/%2e%2e/${path.basename(secret)}` })).statusCode, 404, 'no way out of webRoot');
    assert.equal((await app.inject({ method: 'GET', url: `/..%2f${path.basename(secret)}` })).statusCode, 404, 'no way out of webRoot');
    const api404 = await app.inject({ method: 'GET', url: '/api/v1/unknown' });
    assertError(api404, 404, 'XDPLB_ERR_NOT_FOUND');
  });
});
