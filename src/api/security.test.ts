/**
 * The API's edges against an attacker on the network or a hostile web page (issue 10,
 * "Sessions, login and the API surface"): login back-off per address and user, revocation of
 * sessions, tokens and open streams, logins off the event loop, security headers, Host and
 * Origin checks, and who may read /metrics.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import WebSocket from 'ws';
import type { FastifyInstance } from 'fastify';
import { AuthStore } from './auth';
import { MemoryController } from './memory-controller';
import { createApiServer, type ApiServerOptions } from './server';
import { CONTENT_SECURITY_POLICY } from './guard';
import { hashSecret } from '../config/config';
import type { Config } from '../config/schema';

const WEB = { name: 'web', vip: '198.18.100.1', port: 80, protocol: 'tcp', mode: 'nat', backends: [{ address: '198.18.1.2', port: 8080 }] };
const API_TOKEN = 'sec-token-0123456789abcdef';
const USERS = [
  { name: 'admin', role: 'admin' as const, passwordHash: hashSecret('admin-pass-1234') },
  { name: 'viewer', role: 'viewer' as const, passwordHash: hashSecret('viewer-pass-1234') },
];
const TOKENS = [{ name: 'ci', role: 'admin' as const, tokenHash: hashSecret(API_TOKEN) }];

function setup(extra: Partial<ApiServerOptions> = {}, authOptions: ConstructorParameters<typeof AuthStore>[2] = {}) {
  const controller = new MemoryController({ services: [WEB] });
  const auth = new AuthStore(USERS, TOKENS, authOptions);
  const app = createApiServer(controller, { auth, ...extra });
  return { controller, auth, app };
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

async function loginToken(app: FastifyInstance, username: string, password: string, remoteAddress = '127.0.0.1'): Promise<string> {
  const res = await app.inject({ method: 'POST', url: '/api/v1/login', payload: { username, password }, remoteAddress });
  assert.equal(res.statusCode, 200, res.body);
  return res.json().token as string;
}

/** Resolves with the time from `start` to the socket's close, or rejects after `ms`. */
function closeTime(ws: WebSocket, start: () => number, ms = 3000): Promise<{ ms: number; code: number }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`stream still open after ${ms} ms`)), ms);
    ws.once('close', (code: number) => { clearTimeout(timer); resolve({ ms: Date.now() - start(), code }); });
  });
}

describe('login back-off: by client address and user together', () => {
  const { app } = setup();
  after(() => app.close());

  test('ten wrong passwords from one address do not lock the owner out of another', async () => {
    const attacker = '198.18.0.66';
    let limited = 0;
    for (let i = 0; i < 10; i++) {
      const res = await app.inject({ method: 'POST', url: '/api/v1/login', payload: { username: 'admin', password: `guess-${i}` }, remoteAddress: attacker });
      if (res.statusCode === 429) limited++;
      else assert.equal(res.statusCode, 401, res.body);
    }
    assert.ok(limited >= 4, `the attacker is slowed down (${limited} of 10 answered 429)`);
    const there = await app.inject({ method: 'POST', url: '/api/v1/login', payload: { username: 'admin', password: 'admin-pass-1234' }, remoteAddress: attacker });
    assert.equal(there.statusCode, 429, there.body);
    assert.equal(there.json().error.code, 'XDPLB_ERR_RATE_LIMITED');
    assert.match(String(there.headers['retry-after']), /^[1-9][0-9]*$/, 'Retry-After in seconds');
    // The owner, elsewhere: unaffected.
    assert.ok(await loginToken(app, 'admin', 'admin-pass-1234', '198.18.0.1'));
    assert.ok(await loginToken(app, 'admin', 'admin-pass-1234', '::1'));
  });

  test('proxy headers are not trusted: a client naming another address in them is still counted by its own', async () => {
    const { app: other } = setup();
    try {
      let limited = 0;
      for (let i = 0; i < 10; i++) {
        const res = await other.inject({
          method: 'POST', url: '/api/v1/login', payload: { username: 'admin', password: `guess-${i}` }, remoteAddress: '198.18.0.67',
          headers: { 'x-forwarded-for': `198.18.7.${i}`, 'x-real-ip': `198.18.8.${i}`, forwarded: `for=198.18.9.${i}` },
        });
        if (res.statusCode === 429) limited++;
      }
      assert.ok(limited >= 4, `rotating X-Forwarded-For/X-Real-IP/Forwarded gained fresh attempts (${limited} of 10 answered 429)`);
    } finally {
      await other.close();
    }
  });
});

describe('revocation reaches every session, token and open stream within a second', () => {
  const { app, auth } = setup();
  let base = '';
  const sockets: WebSocket[] = [];
  const stream = async (token: string): Promise<WebSocket> => {
    const ws = new WebSocket(`${base}/api/v1/stream?token=${token}`);
    ws.on('error', () => { /* asserted through close */ });
    sockets.push(ws);
    await once(ws, 'message');   // the initial state: the stream is live
    return ws;
  };
  before(async () => {
    await app.listen({ host: '127.0.0.1', port: 0 });
    base = `ws://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  });
  after(async () => {
    for (const ws of sockets) ws.terminate();
    await app.close();
  });

  test('logout of an API token invalidates it and closes its streams', async () => {
    assert.equal((await app.inject({ method: 'GET', url: '/api/v1/whoami', headers: bearer(API_TOKEN) })).statusCode, 200);
    const ws = await stream(API_TOKEN);
    let at = 0;
    const closing = closeTime(ws, () => at);
    at = Date.now();
    assert.equal((await app.inject({ method: 'POST', url: '/api/v1/logout', headers: bearer(API_TOKEN) })).statusCode, 204);
    const { ms, code } = await closing;
    assert.ok(ms < 1000, `closed after ${ms} ms`);
    assert.equal(code, 1008);
    const after = await app.inject({ method: 'GET', url: '/api/v1/whoami', headers: bearer(API_TOKEN) });
    assert.equal(after.statusCode, 401, after.body);
    // A config reload that changes the token brings a valid one back (docs/api.md).
    auth.update(USERS, [{ name: 'ci', role: 'admin', tokenHash: hashSecret(API_TOKEN) }]);
    assert.equal((await app.inject({ method: 'GET', url: '/api/v1/whoami', headers: bearer(API_TOKEN) })).statusCode, 200);
  });

  test('logout of a session closes that session\'s stream, and only it', async () => {
    const one = await loginToken(app, 'viewer', 'viewer-pass-1234');
    const two = await loginToken(app, 'viewer', 'viewer-pass-1234');
    const ws1 = await stream(one);
    const ws2 = await stream(two);
    let at = 0;
    const closing = closeTime(ws1, () => at);
    at = Date.now();
    assert.equal((await app.inject({ method: 'POST', url: '/api/v1/logout', headers: bearer(one) })).statusCode, 204);
    assert.ok((await closing).ms < 1000);
    assert.equal(ws2.readyState, WebSocket.OPEN, 'the other session streams on');
    assert.equal((await app.inject({ method: 'GET', url: '/api/v1/whoami', headers: bearer(two) })).statusCode, 200);
    ws2.close();
  });

  test('a password change ends the user\'s sessions and streams', async () => {
    const token = await loginToken(app, 'admin', 'admin-pass-1234');
    const viewer = await loginToken(app, 'viewer', 'viewer-pass-1234');
    const ws = await stream(token);
    const viewerWs = await stream(viewer);
    let at = 0;
    const closing = closeTime(ws, () => at);
    at = Date.now();
    auth.update([{ ...USERS[0], passwordHash: hashSecret('a-new-admin-pass') }, USERS[1]], TOKENS);
    assert.ok((await closing).ms < 1000);
    assert.equal((await app.inject({ method: 'GET', url: '/api/v1/whoami', headers: bearer(token) })).statusCode, 401);
    assert.equal(viewerWs.readyState, WebSocket.OPEN, 'other users are unaffected');
    assert.equal((await app.inject({ method: 'GET', url: '/api/v1/whoami', headers: bearer(viewer) })).statusCode, 200);
    auth.update(USERS, TOKENS);
    viewerWs.close();
  });

  test('deleting a user ends its sessions and streams', async () => {
    const token = await loginToken(app, 'viewer', 'viewer-pass-1234');
    const ws = await stream(token);
    let at = 0;
    const closing = closeTime(ws, () => at);
    at = Date.now();
    auth.update([USERS[0]], TOKENS);
    assert.ok((await closing).ms < 1000);
    assert.equal((await app.inject({ method: 'GET', url: '/api/v1/whoami', headers: bearer(token) })).statusCode, 401);
    auth.update(USERS, TOKENS);
  });

  test('a session that expires closes its stream within a second', async () => {
    let now = Date.now();
    const local = setup({}, { now: () => now, sessionTtlMs: 60_000 });
    await local.app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const token = await loginToken(local.app, 'viewer', 'viewer-pass-1234');
      const ws = new WebSocket(`ws://127.0.0.1:${(local.app.server.address() as { port: number }).port}/api/v1/stream?token=${token}`);
      sockets.push(ws);
      await once(ws, 'message');
      let at = 0;
      const closing = closeTime(ws, () => at);
      now += 60_000;
      at = Date.now();
      assert.ok((await closing).ms < 1500, 'closed at the next check (every second)');
    } finally {
      await local.app.close();
    }
  });
});

describe('logins run off the event loop, at most a few at a time', () => {
  test('/healthz stays fast while 8 clients log in', async () => {
    const { app } = setup();
    await app.listen({ host: '127.0.0.1', port: 0 });
    const agent = new http.Agent({ keepAlive: true });
    const port = (app.server.address() as { port: number }).port;
    // Real sockets: a request that arrives while the event loop is busy waits for it.
    const request = (method: string, url: string, body?: object, localAddress?: string) => new Promise<number>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method, path: url, headers: body ? { 'content-type': 'application/json' } : {}, ...(localAddress ? { localAddress } : { agent }) }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end(body ? JSON.stringify(body) : undefined);
    });
    // Eight clients: each from its own loopback address (one address and user may run only 5 at once).
    const login = (client = 0) => request('POST', '/api/v1/login', { username: 'admin', password: 'admin-pass-1234' }, `127.0.0.${client + 2}`);
    try {
      // One login alone, for scale (after a warm-up).
      assert.equal(await login(), 200);
      const t0 = performance.now();
      assert.equal(await login(), 200);
      const oneLogin = performance.now() - t0;

      const logins = Array.from({ length: 8 }, (_, i) => login(i));
      let settled = false;
      void Promise.allSettled(logins).then(() => { settled = true; });
      const samples: number[] = [];
      for (let i = 0; i < 500 && !settled; i++) {
        const t = performance.now();
        assert.equal(await request('GET', '/healthz'), 200);
        samples.push(performance.now() - t);
      }
      assert.deepEqual(await Promise.all(logins), Array(8).fill(200));
      samples.sort((a, b) => a - b);
      const median = samples[Math.floor(samples.length / 2)];
      const detail = `median /healthz ${median.toFixed(1)} ms over ${samples.length} samples during 8 logins; one login alone ${oneLogin.toFixed(1)} ms`;
      assert.ok(median < oneLogin / 4, detail);
      if (process.env.XDPLB_TEST_VERBOSE) console.log(detail);
      assert.ok(samples.length >= 5, detail);
    } finally {
      agent.destroy();
      await app.close();
    }
  });

  test('more logins than the queue holds: 429 RATE_LIMITED with Retry-After, none hang', async () => {
    const { app } = setup({}, { maxConcurrentHashes: 1, maxQueuedHashes: 2 });
    try {
      const replies = await Promise.all(Array.from({ length: 6 }, (_, i) =>
        app.inject({ method: 'POST', url: '/api/v1/login', payload: { username: 'admin', password: 'admin-pass-1234' }, remoteAddress: `198.18.3.${i}` })));
      const codes = replies.map((r) => r.statusCode).sort();
      assert.deepEqual(codes, [200, 200, 200, 429, 429, 429]);
      const busy = replies.find((r) => r.statusCode === 429)!;
      assert.equal(busy.json().error.code, 'XDPLB_ERR_RATE_LIMITED');
      assert.equal(busy.headers['retry-after'], '1');
    } finally {
      await app.close();
    }
  });
});

describe('security headers, Host and Origin checks', () => {
  const { app } = setup({ apiConfig: () => ({ listen: '0.0.0.0:8720', allowedHosts: ['lb.example.net'] }) });
  after(() => app.close());

  test('every response carries CSP, nosniff, Referrer-Policy and no framing', async () => {
    for (const url of ['/healthz', '/api/v1/services', '/api/v1/nope', '/']) {
      const res = await app.inject({ method: 'GET', url, headers: bearer(API_TOKEN) });
      assert.equal(res.headers['content-security-policy'], CONTENT_SECURITY_POLICY, url);
      assert.match(String(res.headers['content-security-policy']), /frame-ancestors 'none'/);
      assert.doesNotMatch(String(res.headers['content-security-policy']), /unsafe-inline|unsafe-eval/);
      assert.equal(res.headers['x-content-type-options'], 'nosniff', url);
      assert.equal(res.headers['referrer-policy'], 'no-referrer', url);
      assert.equal(res.headers['x-frame-options'], 'DENY', url);
      if (url.startsWith('/api/')) assert.equal(res.headers['cache-control'], 'no-store', url);
    }
    const login = await app.inject({ method: 'POST', url: '/api/v1/login', payload: { username: 'admin', password: 'admin-pass-1234' } });
    assert.equal(login.statusCode, 200);
    assert.equal(login.headers['cache-control'], 'no-store', 'a session token is never cached');
  });

  test('a Host that is not a name of this server is refused (DNS rebinding)', async () => {
    for (const host of ['evil.example', 'evil.example:8720', 'localhost.evil.example', 'lb.example.net.evil.example', '127.0.0.1.nip.io', 'bad host']) {
      for (const url of ['/api/v1/services', '/', '/healthz', '/api/v1/login']) {
        const res = await app.inject({ method: url === '/api/v1/login' ? 'POST' : 'GET', url, headers: { ...bearer(API_TOKEN), host }, payload: url === '/api/v1/login' ? { username: 'admin', password: 'x' } : undefined });
        assert.equal(res.statusCode, 403, `${host} ${url}: ${res.body}`);
        assert.equal(res.json().error.code, 'XDPLB_ERR_FORBIDDEN');
        assert.match(res.json().error.message, /Host .* api\.allowedHosts/);
      }
    }
    for (const host of ['localhost', 'localhost:8720', 'LOCALHOST:8720', '127.0.0.1:8720', '[::1]:8720', '198.18.0.1', 'lb.example.net', 'LB.example.net.:8720']) {
      const res = await app.inject({ method: 'GET', url: '/api/v1/whoami', headers: { ...bearer(API_TOKEN), host } });
      assert.equal(res.statusCode, 200, `${host}: ${res.body}`);
    }
  });

  test('the listen host name is accepted', async () => {
    const named = setup({ apiConfig: () => ({ listen: 'lb1.internal:8720' }) });
    try {
      assert.equal((await named.app.inject({ method: 'GET', url: '/healthz', headers: { host: 'lb1.internal:8720' } })).statusCode, 200);
      assert.equal((await named.app.inject({ method: 'GET', url: '/healthz', headers: { host: 'lb2.internal:8720' } })).statusCode, 403);
    } finally {
      await named.app.close();
    }
  });

  test('a change from another origin is refused; same origin and non-browser clients pass', async () => {
    const change = { method: 'PATCH' as const, url: '/api/v1/settings', payload: { sampleRate: 7 } };
    for (const origin of ['http://evil.example', 'http://127.0.0.1:9999', 'http://localhost:8720', 'null', 'file://']) {
      const res = await app.inject({ ...change, headers: { ...bearer(API_TOKEN), host: '127.0.0.1:8720', origin } });
      assert.equal(res.statusCode, 403, `${origin}: ${res.body}`);
      assert.match(res.json().error.message, /cross-origin/);
    }
    const login = await app.inject({ method: 'POST', url: '/api/v1/login', headers: { host: '127.0.0.1:8720', origin: 'http://evil.example' }, payload: { username: 'admin', password: 'admin-pass-1234' } });
    assert.equal(login.statusCode, 403, 'login CSRF');
    assert.equal((await app.inject({ ...change, headers: { ...bearer(API_TOKEN), host: '127.0.0.1:8720', origin: 'http://127.0.0.1:8720' } })).statusCode, 200);
    assert.equal((await app.inject({ ...change, headers: { ...bearer(API_TOKEN), host: 'lb.example.net', origin: 'http://lb.example.net:80' } })).statusCode, 200);
    assert.equal((await app.inject({ ...change, headers: bearer(API_TOKEN) })).statusCode, 200, 'no Origin: not a browser');
    assert.equal((await app.inject({ method: 'GET', url: '/api/v1/settings', headers: { ...bearer(API_TOKEN), origin: 'http://evil.example' } })).statusCode, 200, 'reads are not changes (CORS keeps their answers from the page)');
  });

  test('a WebSocket upgrade from another origin is refused', async () => {
    const ws = setup();
    await ws.app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const url = `ws://127.0.0.1:${(ws.app.server.address() as { port: number }).port}/api/v1/stream?token=${API_TOKEN}`;
      const evil = new WebSocket(url, { origin: 'http://evil.example' });
      evil.on('error', () => {});
      const [, response] = await once(evil, 'unexpected-response') as [unknown, { statusCode: number }];
      assert.equal(response.statusCode, 403);
      evil.terminate();
      const same = new WebSocket(url, { origin: `http://127.0.0.1:${(ws.app.server.address() as { port: number }).port}` });
      await once(same, 'message');
      same.terminate();
    } finally {
      await ws.app.close();
    }
  });
});

describe('/metrics exposure (config api.metrics)', () => {
  let exposure: Config['api']['metrics'];
  const { app } = setup({ apiConfig: () => ({ metrics: exposure }) });
  after(() => app.close());
  const scrape = (headers: Record<string, string> = {}, remoteAddress = '127.0.0.1') => app.inject({ method: 'GET', url: '/metrics', headers, remoteAddress });

  test('default: the same auth as the API (service names, backends, weights are not public)', async () => {
    exposure = undefined;
    const anonymous = await scrape();
    assert.equal(anonymous.statusCode, 401);
    assert.doesNotMatch(anonymous.body, /198\.18\.1\.2/);
    const viewer = await loginToken(app, 'viewer', 'viewer-pass-1234');
    const ok = await scrape(bearer(viewer));
    assert.equal(ok.statusCode, 200);
    assert.match(ok.body, /xdplb_backend_weight\{service="web",backend="198\.18\.1\.2:8080"\} 1/);
    exposure = 'auth';
    assert.equal((await scrape()).statusCode, 401);
  });

  test('public: anyone; loopback: loopback peers only, without a token', async () => {
    exposure = 'public';
    assert.equal((await scrape({}, '198.18.0.9')).statusCode, 200);
    exposure = 'loopback';
    assert.equal((await scrape({}, '127.0.0.1')).statusCode, 200);
    assert.equal((await scrape({}, '::1')).statusCode, 200);
    assert.equal((await scrape({}, '::ffff:127.0.0.1')).statusCode, 200);
    const remote = await scrape(bearer(API_TOKEN), '198.18.0.9');
    assert.equal(remote.statusCode, 403);
    // A remote peer claiming loopback in proxy headers is still remote.
    assert.equal((await scrape({ 'x-forwarded-for': '127.0.0.1', 'x-real-ip': '127.0.0.1', forwarded: 'for=127.0.0.1' }, '198.18.0.9')).statusCode, 403);
    assert.match(remote.json().error.message, /loopback/);
  });
});
