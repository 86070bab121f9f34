/**
 * The bad-input suite for the API, in process: every class of bad input is refused with its
 * catalogue code (src/domain/errors.ts) and a message naming the field, and changes nothing in
 * the controller's state or the data plane it drives. The route walk takes the routes from
 * the server's own route table, so a new route is covered without editing this file.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import type { FastifyInstance } from 'fastify';
import { createApiServer } from './server';
import { AuthStore } from './auth';
import { ERRORS, type ErrorCode } from '../domain/errors';
import { DaemonController } from '../daemon/controller';
import { MemoryDriver } from '../daemon/memory-driver';
import { HealthMonitor } from '../health/monitor';
import { DesiredState } from '../config/state';
import { MAX_JSON_DEPTH } from '../config/json';

const TOKEN = 'bad-input-admin-token-0123456789';
const WEB = {
  name: 'web', vip: '198.18.100.1', port: 80, protocol: 'tcp', mode: 'nat', tableSize: 13,
  backends: [{ address: '198.18.1.2', port: 8080, weight: 1 }, { address: '198.18.1.3', port: 80, weight: 1 }],
};
const DNS = {
  name: 'dns', vip: '198.18.100.2', port: 53, protocol: 'udp', mode: 'dsr', tableSize: 13,
  backends: [{ address: '198.18.1.10', port: 0, weight: 1 }],
};

let app: FastifyInstance;
let controller: DaemonController;
let driver: MemoryDriver;
let base = '';
const routes: Array<{ method: string; url: string; querystring: boolean; params: string[] }> = [];
const auth = { authorization: `Bearer ${TOKEN}` };

/** Everything a refused request must leave as it was. */
function snapshot(): string {
  return JSON.stringify({ config: controller.state.config, applied: driver.applied, applies: driver.applyCount, stats: driver.statsEnabled });
}

interface Res { statusCode: number; body: string; headers: Record<string, unknown> }

/** A catalogue error: a known code with its status, and a one-line message. */
function assertCatalogue(res: Res, label: string): { code: ErrorCode; message: string; field?: string } {
  let body: { error?: { code?: string; message?: string; field?: string } };
  try { body = JSON.parse(res.body); } catch { assert.fail(`${label}: ${res.statusCode} without a JSON body: ${res.body.slice(0, 200)}`); }
  const code = body.error?.code as ErrorCode;
  assert.ok(code && code in ERRORS, `${label}: ${res.statusCode} with a code outside the catalogue: ${res.body.slice(0, 300)}`);
  assert.equal(ERRORS[code].statusCode, res.statusCode, `${label}: ${code} answers ${ERRORS[code].statusCode}, got ${res.statusCode}`);
  assert.ok(typeof body.error!.message === 'string' && body.error!.message.length > 0 && !body.error!.message.includes('\n'), `${label}: one-line message`);
  return { code, message: body.error!.message!, field: body.error!.field };
}

before(async () => {
  driver = new MemoryDriver();
  const logger = pino({ level: 'silent' });
  const state = new DesiredState({ users: [{ name: 'admin', role: 'admin', password: 'admin-pass' }], services: [WEB, DNS] });
  controller = new DaemonController({ state, driver, health: new HealthMonitor(), logger, persist: null });
  await controller.start();
  app = createApiServer(controller, { auth: new AuthStore(state.config.users, [{ name: 'ci', role: 'admin', token: TOKEN }]), logger });
  // The server's own route table (onRoute sees every route, including those of plugins).
  app.addHook('onRoute', (route) => {
    for (const method of ([] as string[]).concat(route.method)) {
      const schema = route.schema as { querystring?: unknown } | undefined;
      routes.push({ method, url: route.url, querystring: !!schema?.querystring, params: route.url.split('/').filter((s) => s.startsWith(':')).map((s) => s.slice(1)) });
    }
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
});

after(async () => {
  controller?.stop();
  await app?.close();
});

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
const json = (payload: string) => ({ headers: { ...auth, 'content-type': 'application/json' }, payload });
const deep = (n: number) => '{"a":'.repeat(n) + '1' + '}'.repeat(n);

// [label, method, url, request, status, code, field (undefined: not checked)]
type Case = [string, Method, string, { headers?: Record<string, string>; payload?: unknown }, number, ErrorCode, string | undefined];
const spec = (patch: Record<string, unknown>) => ({ headers: auth, payload: { ...WEB, name: 'new', vip: '198.18.100.9', backends: [], ...patch } });

const cases: Case[] = [
  // addresses that can never work, every class, as VIP and as backend, through every route that takes one
  ...(['0.0.0.0', '0.1.2.3', '127.0.0.1', '127.255.255.254', '169.254.0.1', '169.254.169.254', '224.0.0.1', '239.255.255.255', '240.0.0.1', '255.255.255.255'] as const).flatMap((address): Case[] => [
    [`VIP ${address} (POST)`, 'POST', '/api/v1/services', spec({ vip: address }), 400, 'XDPLB_ERR_VALIDATION', '/vip'],
    [`VIP ${address} (PUT)`, 'PUT', '/api/v1/services/web', { headers: auth, payload: { ...WEB, vip: address } }, 400, 'XDPLB_ERR_VALIDATION', '/vip'],
    [`backend ${address} (POST service)`, 'POST', '/api/v1/services', spec({ backends: [{ address, port: 80 }] }), 400, 'XDPLB_ERR_VALIDATION', '/backends/0/address'],
    [`backend ${address} (POST backends)`, 'POST', '/api/v1/services/web/backends', { headers: auth, payload: { address, port: 80 } }, 400, 'XDPLB_ERR_VALIDATION', '/address'],
  ]),
  ['backend that is a VIP', 'POST', '/api/v1/services/web/backends', { headers: auth, payload: { address: '198.18.100.2', port: 53 } }, 409, 'XDPLB_ERR_CONFLICT', '/address'],
  ['duplicate backend (POST backends)', 'POST', '/api/v1/services/web/backends', { headers: auth, payload: { address: '198.18.1.2', port: 8080 } }, 409, 'XDPLB_ERR_CONFLICT', '/address'],
  ['one destination twice: NAT port 0 = the service port', 'POST', '/api/v1/services/web/backends', { headers: auth, payload: { address: '198.18.1.3', port: 0 } }, 409, 'XDPLB_ERR_CONFLICT', '/address'],
  ['one destination twice: DSR address', 'POST', '/api/v1/services/dns/backends', { headers: auth, payload: { address: '198.18.1.10', port: 53 } }, 409, 'XDPLB_ERR_CONFLICT', '/address'],
  ['reverse-NAT clash with another VIP', 'POST', '/api/v1/services', spec({ backends: [{ address: '198.18.1.2', port: 8080 }] }), 409, 'XDPLB_ERR_CONFLICT', '/backends/0/address'],
  // duplicate JSON keys, at every depth, on every route with a body
  ['duplicate key, top level', 'POST', '/api/v1/services', json('{"name":"a","name":"b","vip":"198.18.100.9","port":80,"protocol":"tcp","mode":"nat","backends":[]}'), 400, 'XDPLB_ERR_VALIDATION', '/name'],
  ['duplicate key in a backend', 'POST', '/api/v1/services', json('{"name":"a","vip":"198.18.100.9","port":80,"protocol":"tcp","mode":"nat","backends":[{"address":"198.18.1.7","port":1,"port":2}]}'), 400, 'XDPLB_ERR_VALIDATION', '/backends/0/port'],
  ['duplicate key in a health check', 'PUT', '/api/v1/services/web', json(JSON.stringify({ ...WEB, healthCheck: { type: 'tcp' } }).replace('"type":"tcp"', '"type":"tcp","type":"tcp"')), 400, 'XDPLB_ERR_VALIDATION', '/healthCheck/type'],
  ['duplicate key (POST backends)', 'POST', '/api/v1/services/web/backends', json('{"address":"198.18.1.7","address":"198.18.1.8","port":80}'), 400, 'XDPLB_ERR_VALIDATION', '/address'],
  ['duplicate key (PATCH backend)', 'PATCH', '/api/v1/services/web/backends/198.18.1.2:8080', json('{"weight":1,"weight":5}'), 400, 'XDPLB_ERR_VALIDATION', '/weight'],
  ['duplicate key (PATCH settings)', 'PATCH', '/api/v1/settings', json('{"sampleRate":0,"sampleRate":7}'), 400, 'XDPLB_ERR_VALIDATION', '/sampleRate'],
  ['duplicate key (program stats)', 'POST', '/api/v1/programs/stats', json('{"enabled":false,"enabled":true}'), 400, 'XDPLB_ERR_VALIDATION', '/enabled'],
  ['duplicate key (login)', 'POST', '/api/v1/login', json('{"username":"nobody","username":"admin","password":"admin-pass"}'), 400, 'XDPLB_ERR_VALIDATION', '/username'],
  // deep nesting, malformed and empty bodies
  ['deeply nested body', 'POST', '/api/v1/services', json(deep(100_000)), 400, 'XDPLB_ERR_VALIDATION', '/a'.repeat(MAX_JSON_DEPTH)],
  ['deeply nested array body', 'PATCH', '/api/v1/settings', json('['.repeat(50_000) + ']'.repeat(50_000)), 400, 'XDPLB_ERR_VALIDATION', '/0'.repeat(MAX_JSON_DEPTH)],
  ['malformed JSON', 'POST', '/api/v1/services', json('{"name": "web",'), 400, 'XDPLB_ERR_VALIDATION', ''],
  ['empty body', 'POST', '/api/v1/services', json(''), 400, 'XDPLB_ERR_VALIDATION', ''],
  ['JSON array body', 'PATCH', '/api/v1/settings', json('[]'), 400, 'XDPLB_ERR_VALIDATION', ''],
  ['prototype key', 'PATCH', '/api/v1/settings', json('{"__proto__":{"sampleRate":5}}'), 400, 'XDPLB_ERR_VALIDATION', '/__proto__'],
  ['body over the limit', 'POST', '/api/v1/services', json(JSON.stringify({ ...WEB, name: 'x'.repeat(2 * 1024 * 1024) })), 413, 'XDPLB_ERR_PAYLOAD_TOO_LARGE', ''],
  // content types
  ['text/plain body', 'POST', '/api/v1/services', { headers: { ...auth, 'content-type': 'text/plain' }, payload: JSON.stringify(WEB) }, 415, 'XDPLB_ERR_UNSUPPORTED_MEDIA_TYPE', undefined],
  ['form body', 'PATCH', '/api/v1/settings', { headers: { ...auth, 'content-type': 'application/x-www-form-urlencoded' }, payload: 'sampleRate=5' }, 415, 'XDPLB_ERR_UNSUPPORTED_MEDIA_TYPE', undefined],
  ['a charset other than UTF-8', 'PATCH', '/api/v1/settings', { headers: { ...auth, 'content-type': 'application/json; charset=utf-16' }, payload: '{"sampleRate":5}' }, 415, 'XDPLB_ERR_UNSUPPORTED_MEDIA_TYPE', undefined],
  ['a body that is not UTF-8', 'PATCH', '/api/v1/settings', { headers: { ...auth, 'content-type': 'application/json' }, payload: Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]) }, 400, 'XDPLB_ERR_VALIDATION', ''],
  ['body without a content type', 'POST', '/api/v1/services/web/backends', { headers: { ...auth, 'content-type': '' }, payload: '{"address":"198.18.1.7","port":80}' }, 415, 'XDPLB_ERR_UNSUPPORTED_MEDIA_TYPE', undefined],
  // path parameters
  ['over-long service name', 'GET', `/api/v1/services/${'a'.repeat(300)}`, { headers: auth }, 400, 'XDPLB_ERR_VALIDATION', '/name'],
  ['over-long service name (DELETE)', 'DELETE', `/api/v1/services/${'a'.repeat(8000)}`, { headers: auth }, 400, 'XDPLB_ERR_VALIDATION', '/name'],
  ['over-long backend key', 'DELETE', `/api/v1/services/web/backends/${'1'.repeat(500)}`, { headers: auth }, 400, 'XDPLB_ERR_VALIDATION', '/backend'],
  ['over-long map name', 'GET', `/api/v1/maps/${'m'.repeat(1000)}`, { headers: auth }, 400, 'XDPLB_ERR_VALIDATION', '/name'],
  ['bad percent-encoding in the path', 'DELETE', '/api/v1/services/%zz', { headers: auth }, 400, 'XDPLB_ERR_VALIDATION', ''],
  ['unknown service', 'DELETE', '/api/v1/services/nope', { headers: auth }, 404, 'XDPLB_ERR_NOT_FOUND', undefined],
  ['unknown backend', 'PATCH', '/api/v1/services/web/backends/198.18.1.99:80', { headers: auth, payload: { weight: 2 } }, 404, 'XDPLB_ERR_NOT_FOUND', undefined],
  // query strings
  ['limit above the schema maximum', 'GET', '/api/v1/maps/services?limit=1001', { headers: auth }, 400, 'XDPLB_ERR_VALIDATION', '/limit'],
  ['limit not a number', 'GET', '/api/v1/maps/services?limit=ten', { headers: auth }, 400, 'XDPLB_ERR_VALIDATION', '/limit'],
  ['negative offset', 'GET', '/api/v1/maps/services?offset=-1', { headers: auth }, 400, 'XDPLB_ERR_VALIDATION', '/offset'],
  ['limit given twice', 'GET', '/api/v1/maps/services?limit=1&limit=2', { headers: auth }, 400, 'XDPLB_ERR_VALIDATION', '/limit'],
  ['token given twice on the stream', 'GET', '/api/v1/stream?token=a&token=b', {}, 400, 'XDPLB_ERR_VALIDATION', '/token'],
  ['unknown query parameter', 'GET', '/api/v1/stats/history?secs=5', { headers: auth }, 400, 'XDPLB_ERR_VALIDATION', '/secs'],
  ['unknown query parameter on a DELETE (not ignored while the delete goes ahead)', 'DELETE', '/api/v1/services/web?dryRun=1', { headers: auth }, 400, 'XDPLB_ERR_VALIDATION', '/dryRun'],
  ['unknown query parameter on a POST', 'POST', '/api/v1/services/web/backends?weight=5', { headers: auth, payload: { address: '198.18.1.7', port: 80 } }, 400, 'XDPLB_ERR_VALIDATION', '/weight'],
  ['history of 0 seconds', 'GET', '/api/v1/stats/history?seconds=0', { headers: auth }, 400, 'XDPLB_ERR_VALIDATION', '/seconds'],
  // routes and methods
  ['unknown route', 'GET', '/api/v1/nope', { headers: auth }, 404, 'XDPLB_ERR_NOT_FOUND', undefined],
  ['a known route with a trailing slash is another (unknown) route', 'GET', '/api/v1/services/web/', { headers: auth }, 404, 'XDPLB_ERR_NOT_FOUND', undefined],
  ['wrong method on a collection', 'PATCH', '/api/v1/services', { headers: auth, payload: {} }, 405, 'XDPLB_ERR_METHOD_NOT_ALLOWED', undefined],
  ['wrong method on an item', 'POST', '/api/v1/services/web', { headers: auth, payload: WEB }, 405, 'XDPLB_ERR_METHOD_NOT_ALLOWED', undefined],
  ['wrong method on settings', 'PUT', '/api/v1/settings', { headers: auth, payload: {} }, 405, 'XDPLB_ERR_METHOD_NOT_ALLOWED', undefined],
  // auth
  ['no token', 'DELETE', '/api/v1/services/web', {}, 401, 'XDPLB_ERR_UNAUTHENTICATED', undefined],
  ['a forged token', 'POST', '/api/v1/services', { headers: { authorization: 'Bearer ' + 'f'.repeat(64) }, payload: WEB }, 401, 'XDPLB_ERR_UNAUTHENTICATED', undefined],
];

describe('API bad inputs: refused with their catalogue code, naming the field, changing nothing', () => {
  for (const [label, method, url, request, status, code, field] of cases) {
    test(label, async () => {
      const before = snapshot();
      const res = await app.inject({ method, url, headers: request.headers, payload: request.payload as string | object | undefined });
      assert.equal(res.statusCode, status, `${label}: ${res.body.slice(0, 300)}`);
      const error = assertCatalogue(res, label);
      assert.equal(error.code, code, error.message);
      if (field !== undefined) {
        assert.equal(error.field, field, error.message);
        // the message names the field (or the part of the request) it is about
        assert.ok(field === '' ? /^\((body|path)\)/.test(error.message) : error.message.includes(field.slice(0, 300)), `${label}: the message names ${field}: ${error.message}`);
      }
      if (label.includes('given twice')) assert.match(error.message, /is given more than once/);
      if (status === 405) assert.ok(String(res.headers.allow ?? '').length > 0, 'a 405 says which methods are allowed');
      assert.equal(snapshot(), before, `${label}: nothing changed`);
    });
  }
});

describe('API route walk: every route, every method, bad inputs -> catalogue codes only', () => {
  test('the route table holds the API (the walk below is not empty)', () => {
    const urls = new Set(routes.map((r) => r.url));
    for (const url of ['/api/v1/services', '/api/v1/services/:name', '/api/v1/services/:name/backends/:backend', '/api/v1/settings', '/api/v1/maps/:name', '/api/v1/stream', '/api/v1/login']) {
      assert.ok(urls.has(url), `${url} in the route table`);
    }
  });

  test('bad inputs on every route answer a catalogue code and change nothing', async () => {
    const before = snapshot();
    const fill = (url: string, value?: (param: string) => string) =>
      url.replace(/:(\w+)/g, (_m, p: string) => (value ? value(p) : p === 'backend' ? '198.18.1.2:8080' : p === 'name' && url.startsWith('/api/v1/maps') ? 'services' : 'web'));
    const session = async () => {
      const res = await app.inject({ method: 'POST', url: '/api/v1/login', payload: { username: 'admin', password: 'admin-pass' } });
      return { authorization: `Bearer ${res.json().token}` };
    };
    let errors = 0;
    const seen = new Set<string>();
    for (const route of routes) {
      if (route.method === 'HEAD' || route.method === 'OPTIONS') continue;
      const url = fill(route.url);
      // logout ends the session it is sent with: give it its own
      const headers = async () => (route.url === '/api/v1/logout' ? await session() : auth);
      const withBody = route.method !== 'GET' && route.method !== 'DELETE';
      const attempts: Array<{ label: string; method: string; url: string; headers: Record<string, string>; payload?: string }> = [
        { label: 'no token', method: route.method, url, headers: {} },
        { label: 'text/plain', method: route.method, url, headers: { ...(await headers()), 'content-type': 'text/plain' }, payload: 'x' },
        { label: 'malformed JSON', method: route.method, url, headers: { ...(await headers()), 'content-type': 'application/json' }, payload: '{"a":' },
        { label: 'duplicate key', method: route.method, url, headers: { ...(await headers()), 'content-type': 'application/json' }, payload: '{"a":1,"a":2}' },
        { label: 'deep', method: route.method, url, headers: { ...(await headers()), 'content-type': 'application/json' }, payload: deep(10_000) },
        { label: 'too large', method: route.method, url, headers: { ...(await headers()), 'content-type': 'application/json' }, payload: `"${'x'.repeat(1024 * 1024 + 10)}"` },
        { label: 'bad query', method: route.method, url: `${url}?limit=x&offset=-1&seconds=0&bogus=%zz`, headers: await headers() },
        { label: 'repeated query parameters', method: route.method, url: `${url}?token=a&token=b&limit=1&limit=2`, headers: await headers() },
      ];
      if (withBody) {
        attempts.push({ label: 'array body', method: route.method, url, headers: { ...(await headers()), 'content-type': 'application/json' }, payload: '[1]' });
        attempts.push({ label: 'wrong type body', method: route.method, url, headers: { ...(await headers()), 'content-type': 'application/json' }, payload: '{"name":1,"address":2,"weight":"x","enabled":"yes","username":3,"sampleRate":-1}' });
      }
      if (!route.querystring && route.method !== 'GET') attempts.splice(attempts.findIndex((a) => a.label === 'bad query'), 2); // would be ignored: a change
      for (const param of route.params) {
        attempts.push({ label: `over-long :${param}`, method: route.method, url: fill(route.url, (p) => (p === param ? 'x'.repeat(5000) : fill(`:${p}`))), headers: await headers() });
        attempts.push({ label: `bad encoding :${param}`, method: route.method, url: fill(route.url, (p) => (p === param ? '%E0%A4%A' : fill(`:${p}`))), headers: await headers() });
      }
      for (const other of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE']) {
        if (!routes.some((r) => r.url === route.url && r.method === other)) attempts.push({ label: `wrong method ${other}`, method: other, url, headers: await headers(), payload: other === 'GET' || other === 'DELETE' ? undefined : '{}' });
      }
      for (const attempt of attempts) {
        const res = await app.inject({ method: attempt.method as Method, url: attempt.url, headers: attempt.headers, payload: attempt.payload });
        const label = `${attempt.method} ${route.url} (${attempt.label})`;
        assert.ok(res.statusCode < 500, `${label}: a bad input is never a server error: ${res.statusCode} ${res.body.slice(0, 200)}`);
        if (res.statusCode >= 400) {
          assertCatalogue(res, label);
          errors++;
          seen.add(`${route.method} ${route.url}`);
        }
        if (attempt.label.startsWith('wrong method')) assert.equal(res.statusCode, 405, `${label}: ${res.body.slice(0, 200)}`);
      }
    }
    assert.equal(snapshot(), before, 'no bad input changed anything');
    const walked = routes.filter((r) => r.method !== 'HEAD' && r.method !== 'OPTIONS');
    assert.equal(seen.size, new Set(walked.map((r) => `${r.method} ${r.url}`)).size, 'every route answered at least one error');
    assert.ok(errors > walked.length * 5, `${errors} error answers checked`);
  });
});

/** One request over a real socket (what inject cannot show: framing, resets, Node's parser). */
function rawRequest(options: http.RequestOptions, body?: { chunk: Buffer; count: number }): Promise<{ status: number; body: string; error?: string }> {
  return new Promise((resolve) => {
    let error: string | undefined;
    const req = http.request(`${base}${options.path ?? '/'}`, { ...options, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { text += d; });
      res.on('end', () => setTimeout(() => resolve({ status: res.statusCode ?? 0, body: text, error }), 50));
      res.on('error', (e: NodeJS.ErrnoException) => { error = e.code ?? e.message; });
    });
    req.on('error', (e: NodeJS.ErrnoException) => { error = e.code ?? e.message; resolve({ status: 0, body: '', error }); });
    if (!body) { req.end(); return; }
    let sent = 0;
    const write = (): void => {
      while (sent < body.count) {
        sent++;
        if (!req.write(body.chunk)) { req.once('drain', write); return; }
      }
      req.end();
    };
    write();
  });
}

describe('API bad inputs over a real socket', () => {
  test('a chunked 10 MB body: 413 from the catalogue, delivered (no reset), nothing changed', async () => {
    const before = snapshot();
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    for (const framing of ['chunked', 'length'] as const) {
      const headers: Record<string, string | number> = { ...auth, 'content-type': 'application/json' };
      if (framing === 'chunked') headers['transfer-encoding'] = 'chunked'; else headers['content-length'] = chunk.length * 160;
      const res = await rawRequest({ method: 'POST', path: '/api/v1/services', headers }, { chunk, count: 160 });
      assert.equal(res.error, undefined, `${framing}: the client saw ${res.error} instead of the answer`);
      assert.equal(res.status, 413, `${framing}: ${res.body}`);
      const error = assertCatalogue({ statusCode: res.status, body: res.body, headers: {} }, framing);
      assert.equal(error.code, 'XDPLB_ERR_PAYLOAD_TOO_LARGE');
      assert.match(error.message, /^\(body\): larger than the 1048576 bytes/);
    }
    assert.equal(snapshot(), before);
  });

  test('an error message quotes at most a bounded part of the request', async () => {
    const long = 'x'.repeat(10_000);
    const attempts: Array<{ label: string; method: 'GET' | 'POST' | 'DELETE'; url: string; headers?: Record<string, string> }> = [
      { label: 'unknown /api path', method: 'GET', url: `/api/v1/${long}` },
      { label: 'unknown path outside /api', method: 'DELETE', url: `/${long}` },
      { label: 'wrong method', method: 'DELETE', url: `/api/v1/services?${long}` },
      { label: 'long Host', method: 'GET', url: '/healthz', headers: { host: `${long}.example` } },
      { label: 'long Origin', method: 'POST', url: '/api/v1/logout', headers: { ...auth, origin: `http://${long}.example` } },
    ];
    for (const attempt of attempts) {
      const res = await app.inject({ method: attempt.method, url: attempt.url, headers: attempt.headers });
      const error = assertCatalogue(res, attempt.label);
      assert.ok(error.message.length <= 400, `${attempt.label}: a ${error.message.length}-character message: ${error.message.slice(0, 120)}...`);
    }
  });

  test('huge headers: 431 from the catalogue', async () => {
    const res = await rawRequest({ method: 'GET', path: '/api/v1/services', headers: { ...auth, 'x-padding': 'a'.repeat(20_000) } });
    assert.equal(res.status, 431, res.body);
    assert.equal(assertCatalogue({ statusCode: res.status, body: res.body, headers: {} }, 'huge headers').code, 'XDPLB_ERR_HEADERS_TOO_LARGE');
  });

  test('a malformed request: 400 from the catalogue', async () => {
    const port = (app.server.address() as AddressInfo).port;
    for (const head of ['NOT HTTP AT ALL\r\n\r\n', 'GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n', 'GET /healthz HTTP/1.1\r\nbad header line\r\n\r\n']) {
      const text = await new Promise<string>((resolve) => {
        const socket = net.connect(port, '127.0.0.1', () => socket.write(head));
        let data = '';
        socket.setEncoding('utf8');
        socket.on('data', (d: string) => { data += d; });
        socket.on('close', () => resolve(data));
        socket.on('error', () => resolve(data));
        socket.setTimeout(5000, () => socket.destroy());
      });
      const [statusLine] = text.split('\r\n');
      assert.match(statusLine, /^HTTP\/1\.1 400 /, JSON.stringify(head));
      const body = text.slice(text.indexOf('\r\n\r\n') + 4);
      assert.equal(assertCatalogue({ statusCode: 400, body, headers: {} }, head).code, 'XDPLB_ERR_BAD_REQUEST');
    }
  });
});
