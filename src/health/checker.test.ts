import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { HealthChecker, PROBE_BATCH, type HealthChange } from './checker';
import { HealthMonitor } from './monitor';
import type { HealthCheckSpec } from '../domain/types';

const LOCAL = '127.0.0.1';

async function waitFor(what: string, cond: () => boolean, timeoutMs = 3000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A TCP server that can be switched off (connections refused) and on again on the same port. */
class FlipTcpServer {
  private server: net.Server | null = null;
  port = 0;
  accepted = 0;
  private sockets = new Set<net.Socket>();
  async up(): Promise<void> {
    const server = net.createServer((s) => { this.accepted++; this.sockets.add(s); s.on('close', () => this.sockets.delete(s)); s.on('error', () => {}); });
    await new Promise<void>((resolve) => server.listen(this.port, LOCAL, resolve));
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }
  async down(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const s of this.sockets) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** An HTTP server whose answer a test controls; records requested paths. */
async function httpServer(answer: (n: number) => number | 'silent'): Promise<{ port: number; paths: string[]; open: () => number; close: () => Promise<void> }> {
  const paths: string[] = [];
  let n = 0;
  const sockets = new Set<net.Socket>();
  const server = http.createServer((req, res) => {
    paths.push(req.url ?? '');
    const status = answer(n++);
    if (status === 'silent') return;   // accepts, reads the request, never answers
    res.writeHead(status).end('x');
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise<void>((resolve) => server.listen(0, LOCAL, resolve));
  return {
    port: (server.address() as AddressInfo).port, paths, open: () => sockets.size,
    close: async () => { for (const s of sockets) s.destroy(); await new Promise<void>((r) => server.close(() => r())); },
  };
}

function spec(over: Partial<HealthCheckSpec>): HealthCheckSpec {
  return { type: 'tcp', intervalMs: 30, timeoutMs: 200, rise: 2, fall: 2, ...over };
}

const toStop: Array<{ stop(): void }> = [];
after(() => { for (const c of toStop) c.stop(); });

describe('HealthChecker', () => {
  test('TCP: up after exactly `rise` successes, down after exactly `fall` failures', async () => {
    const server = new FlipTcpServer();
    await server.up();
    const checker = new HealthChecker({ service: 'web', servicePort: 80, spec: spec({ rise: 3, fall: 2 }), backends: [{ address: LOCAL, port: server.port }] });
    toStop.push(checker);
    const key = `${LOCAL}:${server.port}`;
    const changes: Array<HealthChange & { checks: number }> = [];
    checker.on('change', (c) => changes.push({ ...c, checks: checker.status()[0].checks }));
    assert.equal(checker.health(key), 'checking');
    checker.start();
    await waitFor('two checks', () => checker.status()[0].checks >= 2);
    if (checker.status()[0].checks === 2) assert.equal(checker.health(key), 'checking', 'two successes are fewer than rise=3');
    await waitFor('up', () => checker.health(key) === 'up');
    assert.deepEqual(changes[0], { service: 'web', backend: key, health: 'up', previous: 'checking', detail: 'connected', checks: 3 });

    await server.down();
    await waitFor('down', () => checker.health(key) === 'down');
    assert.equal(changes.length, 2);
    assert.equal(changes[1].health, 'down');
    assert.equal(changes[1].checks - changes[0].checks >= 2, true);
    assert.equal(changes[1].checks - changes[0].checks <= 3, true, 'at most one success between the switch and the failures');
    assert.match(checker.status()[0].lastDetail, /ECONNREFUSED/);
    assert.equal(checker.transitions, 2);

    await server.up();
    await waitFor('up again', () => checker.health(key) === 'up');
    assert.equal(checker.status()[0].transitions, 3);
    checker.stop();
    await server.down();
  });

  test('HTTP: a server that accepts but never answers is down after the timeout', async () => {
    const server = await httpServer(() => 'silent');
    const checker = new HealthChecker({ service: 'web', servicePort: 80,
      spec: spec({ type: 'http', path: '/health', timeoutMs: 120, intervalMs: 50, fall: 1 }), backends: [{ address: LOCAL, port: server.port }] });
    toStop.push(checker);
    const started = Date.now();
    checker.start();
    await waitFor('down', () => checker.health(`${LOCAL}:${server.port}`) === 'down');
    assert.ok(Date.now() - started >= 110, 'not before the timeout');
    assert.match(checker.status()[0].lastDetail, /timeout after 120 ms/);
    assert.equal(server.paths[0], '/health');
    checker.stop();
    await server.close();
  });

  test('HTTP: the expected status range decides', async () => {
    const server = await httpServer(() => 503);
    const port = server.port;
    const strict = new HealthChecker({ service: 's', servicePort: 80, spec: spec({ type: 'http', rise: 1, fall: 1 }), backends: [{ address: LOCAL, port }] });
    const lenient = new HealthChecker({ service: 's', servicePort: 80, spec: spec({ type: 'http', rise: 1, fall: 1, expectStatus: [500, 503] }), backends: [{ address: LOCAL, port }] });
    toStop.push(strict, lenient);
    strict.start(); lenient.start();
    await waitFor('verdicts', () => strict.health(`${LOCAL}:${port}`) !== 'checking' && lenient.health(`${LOCAL}:${port}`) !== 'checking');
    assert.equal(strict.health(`${LOCAL}:${port}`), 'down');
    assert.match(strict.status()[0].lastDetail, /HTTP 503 not in 200\.\.399/);
    assert.equal(lenient.health(`${LOCAL}:${port}`), 'up');
    assert.equal(server.paths[0], '/', 'default path');
    strict.stop(); lenient.stop();
    await server.close();
  });

  test('flapping: alternating results never cross rise=2/fall=2', async () => {
    // First 2 answers OK (-> up), then OK/FAIL alternating: no two equal results in a row.
    const server = await httpServer((n) => (n < 2 || n % 2 === 0 ? 200 : 500));
    const checker = new HealthChecker({ service: 's', servicePort: 80, spec: spec({ type: 'http', intervalMs: 20 }), backends: [{ address: LOCAL, port: server.port }] });
    toStop.push(checker);
    checker.start();
    await waitFor('12 checks', () => checker.status()[0].checks >= 12);
    checker.stop();
    assert.equal(checker.health(`${LOCAL}:${server.port}`), 'up');
    assert.equal(checker.transitions, 1, 'only checking -> up');
    await server.close();
  });

  test('port override and service-port fallback', async () => {
    const server = new FlipTcpServer();
    await server.up();
    // backend port 0 (keep the client's port) -> the service port is probed
    const viaService = new HealthChecker({ service: 's', servicePort: server.port, spec: spec({ rise: 1 }), backends: [{ address: LOCAL, port: 0 }] });
    // the check's own port wins over the backend's (1 is closed)
    const viaOverride = new HealthChecker({ service: 's', servicePort: 80, spec: spec({ rise: 1, port: server.port }), backends: [{ address: LOCAL, port: 1 }] });
    toStop.push(viaService, viaOverride);
    viaService.start(); viaOverride.start();
    await waitFor('both up', () => viaService.health(`${LOCAL}:0`) === 'up' && viaOverride.health(`${LOCAL}:1`) === 'up');
    viaService.stop(); viaOverride.stop();
    await server.down();
  });

  test('stop() cancels timers and the in-flight socket', async () => {
    const server = await httpServer(() => 'silent');
    const checker = new HealthChecker({ service: 's', servicePort: 80, spec: spec({ type: 'http', timeoutMs: 5000, intervalMs: 20 }), backends: [{ address: LOCAL, port: server.port }] });
    checker.start();
    await waitFor('a probe in flight', () => server.open() === 1);
    checker.stop();
    await waitFor('the probe socket closed', () => server.open() === 0, 1000);
    const requests = server.paths.length;
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(server.paths.length, requests, 'no probe after stop()');
    assert.equal(checker.status()[0].checks, 0, 'the cancelled probe is not recorded');
    await server.close();
  });

  test('setBackends keeps the state of kept backends; invalid specs are refused', async () => {
    const server = new FlipTcpServer();
    await server.up();
    const checker = new HealthChecker({ service: 's', servicePort: 80, spec: spec({ rise: 1 }), backends: [{ address: LOCAL, port: server.port }] });
    toStop.push(checker);
    checker.start();
    await waitFor('up', () => checker.health(`${LOCAL}:${server.port}`) === 'up');
    checker.setBackends([{ address: LOCAL, port: server.port }, { address: LOCAL, port: 1 }]);
    assert.equal(checker.health(`${LOCAL}:${server.port}`), 'up');
    assert.equal(checker.health(`${LOCAL}:1`), 'checking');
    await waitFor('new one down', () => checker.health(`${LOCAL}:1`) === 'down');
    checker.setBackends([{ address: LOCAL, port: 1 }]);
    assert.deepEqual(checker.status().map((s) => s.backend), [`${LOCAL}:1`]);
    checker.stop();
    await server.down();
    assert.throws(() => new HealthChecker({ service: 's', servicePort: 80, spec: spec({ rise: 0 }) }), /rise must be a positive integer/);
  });
});

test('a backend seeded down stays down until `rise` successes', async () => {
  const server = new FlipTcpServer();
  await server.up();
  const key = `${LOCAL}:${server.port}`;
  const checker = new HealthChecker({ service: 's', servicePort: 80, spec: spec({ rise: 2 }), backends: [{ address: LOCAL, port: server.port, initial: 'down' }] });
  toStop.push(checker);
  const changes: HealthChange[] = [];
  checker.on('change', (c) => changes.push(c));
  assert.equal(checker.health(key), 'down');
  checker.start();
  await waitFor('up', () => checker.health(key) === 'up');
  assert.equal(checker.status()[0].checks, 2);
  assert.deepEqual(changes.map((c) => [c.previous, c.health]), [['down', 'up']]);
  checker.stop();
  await server.down();
});

describe('HealthMonitor', () => {
  test('sync adds, keeps and removes checkers and forwards changes', async () => {
    const server = new FlipTcpServer();
    await server.up();
    const monitor = new HealthMonitor();
    toStop.push(monitor);
    const changes: HealthChange[] = [];
    monitor.on('change', (c) => changes.push(c));
    const key = `${LOCAL}:${server.port}`;
    const svc = {
      name: 'web', vip: '198.18.100.1', port: 80, protocol: 'tcp' as const, mode: 'nat' as const,
      backends: [{ address: LOCAL, port: server.port, weight: 1 }], healthCheck: spec({ rise: 1 }),
    };
    monitor.sync([svc, { ...svc, name: 'plain', healthCheck: undefined }]);
    monitor.start();
    await waitFor('up', () => monitor.health('web', key) === 'up');
    assert.equal(monitor.health('plain', key), 'unchecked', 'no check, no verdict');
    // weight change only: the checker (and its verdict) stays
    monitor.sync([{ ...svc, backends: [{ ...svc.backends[0], weight: 5 }] }]);
    assert.equal(monitor.health('web', key), 'up');
    monitor.sync([]);
    assert.equal(monitor.health('web', key), 'unchecked');
    assert.deepEqual(changes, [{ service: 'web', backend: key, health: 'up', previous: 'checking', detail: 'connected' }]);
    monitor.stop();
    await server.down();
  });
});

test('slow start: a backend coming up emits one ramp event per weight step, then takes its full weight', async () => {
  const server = new FlipTcpServer();
  await server.up();
  const key = `${LOCAL}:${server.port}`;
  const checker = new HealthChecker({ service: 's', servicePort: 80, spec: spec({ rise: 1, intervalMs: 1000, slowStart: { durationMs: 300, steps: 3 } }),
    backends: [{ address: LOCAL, port: server.port }] });
  toStop.push(checker);
  const ramps: Array<{ step: number; steps: number; at: number }> = [];
  let upAt = 0;
  checker.on('change', () => { upAt = Date.now(); });
  checker.on('ramp', (r) => ramps.push({ step: r.step, steps: r.steps, at: Date.now() }));
  checker.start();
  await waitFor('up', () => checker.health(key) === 'up');
  assert.deepEqual(checker.weightStep(key), { step: 1, steps: 3 });
  await waitFor('two ramp events', () => ramps.length >= 2, 2000);
  assert.deepEqual(ramps.map((r) => `${r.step}/${r.steps}`), ['2/3', '1/1']);
  assert.ok(ramps[0].at - upAt >= 95 && ramps[1].at - upAt >= 195, JSON.stringify(ramps.map((r) => r.at - upAt)));
  assert.deepEqual(checker.weightStep(key), { step: 1, steps: 1 });
  assert.deepEqual(checker.status()[0].weightStep, { step: 1, steps: 1 });
  checker.stop();
  await server.down();
});

test('slow start: a timer that fires before its step by the checker\'s clock still emits each step once', async () => {
  const server = new FlipTcpServer();
  await server.up();
  const key = `${LOCAL}:${server.port}`;
  // Once the first ramp timer is set, the checker's clock falls 5 ms behind the timers': that
  // timer then fires "early" by the clock (as a timer may by a millisecond).
  let lag = 0;
  const checker = new HealthChecker({ service: 's', servicePort: 80, now: () => Date.now() - lag,
    spec: spec({ rise: 1, intervalMs: 1000, slowStart: { durationMs: 300, steps: 3 } }),
    backends: [{ address: LOCAL, port: server.port }] });
  toStop.push(checker);
  const ramps: string[] = [];
  checker.on('ramp', (r) => ramps.push(`${r.step}/${r.steps}`));
  checker.start();
  await waitFor('up', () => checker.health(key) === 'up');
  setTimeout(() => { lag = 5; }, 30);
  await waitFor('the last step', () => ramps.includes('1/1'), 2000);
  await new Promise((r) => setTimeout(r, 150));
  assert.deepEqual(ramps, ['2/3', '1/1']);
  checker.stop();
  await server.down();
});

/**
 * A raw HTTP/1.1 server: `answer(request, nOnConnection)` gives the bytes to send for each request
 * ('drop' destroys the connection without answering, 'silent' never answers); records the
 * connections it accepted and the requests' heads.
 */
async function rawHttpServer(answer: (head: string, nOnConn: number) => string | 'drop' | 'silent'): Promise<{ port: number; connections: () => number; heads: string[]; close: () => Promise<void> }> {
  const heads: string[] = [];
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    connections++;
    s.unref(); // a failed assertion must not leave the run hanging on an open server
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    let buf = '';
    let n = 0;
    s.on('data', (chunk) => {
      buf += chunk.toString('latin1');
      for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
        const head = buf.slice(0, end);
        buf = buf.slice(end + 4);
        heads.push(head);
        const a = answer(head, n++);
        if (a === 'drop') { s.destroy(); return; }
        if (a !== 'silent') s.write(a, 'latin1');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, LOCAL, resolve));
  server.unref();
  return {
    port: (server.address() as AddressInfo).port, connections: () => connections, heads,
    close: async () => { for (const s of sockets) s.destroy(); await new Promise<void>((r) => server.close(() => r())); },
  };
}

const OK = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok';

describe('HTTP reuseConnection', () => {
  test('probes go over one kept connection (the default), without Connection: close; false, one connection per probe', async () => {
    const server = await rawHttpServer(() => OK);
    const kept = new HealthChecker({ service: 's', servicePort: 80, spec: spec({ type: 'http', intervalMs: 20 }), backends: [{ address: LOCAL, port: server.port }] });
    toStop.push(kept);
    kept.start();
    await waitFor('8 checks', () => kept.status()[0].checks >= 8);
    kept.stop();
    assert.equal(kept.health(`${LOCAL}:${server.port}`), 'up');
    assert.equal(server.connections(), 1, 'one connection for every probe');
    assert.ok(server.heads.length >= 8);
    assert.ok(server.heads.every((h) => !/connection: close/i.test(h)), 'keep-alive requests');
    const fresh = new HealthChecker({ service: 's', servicePort: 80, spec: spec({ type: 'http', reuseConnection: false, intervalMs: 20 }), backends: [{ address: LOCAL, port: server.port }] });
    toStop.push(fresh);
    const before = server.connections();
    fresh.start();
    await waitFor('4 checks', () => fresh.status()[0].checks >= 4);
    fresh.stop();
    assert.ok(server.connections() - before >= 4, 'reuseConnection false: a new connection per probe');
    await server.close();
  });

  test('a kept connection the server drops before answering is retried at once on a fresh one (no failed check)', async () => {
    // Every connection answers its first request and drops on the second: the idle-close race.
    const server = await rawHttpServer((_, n) => (n === 0 ? OK : 'drop'));
    const checker = new HealthChecker({ service: 's', servicePort: 80, spec: spec({ type: 'http', reuseConnection: true, intervalMs: 20, rise: 1, fall: 1, initialState: 'up' }), backends: [{ address: LOCAL, port: server.port }] });
    toStop.push(checker);
    const changes: HealthChange[] = [];
    checker.on('change', (c) => changes.push(c));
    checker.start();
    await waitFor('6 checks', () => checker.status()[0].checks >= 6);
    checker.stop();
    assert.deepEqual(changes, [], 'never down');
    assert.equal(checker.status()[0].lastDetail, 'HTTP 200');
    assert.ok(server.connections() >= 6, 'a fresh connection after each drop');
    await server.close();
  });

  test('status rules, Connection: close, chunked and over-long answers on a kept connection', async () => {
    let status = 200;
    const answers: Record<string, () => string> = {
      '/len': () => `HTTP/1.1 ${status} X\r\nContent-Length: 0\r\n\r\n`,
      '/close': () => 'HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n',
      '/chunked': () => 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      '/v10': () => 'HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n',
    };
    const server = await rawHttpServer((head) => answers[head.split(' ')[1]]());
    const run = async (path: string, n: number) => {
      const before = server.connections();
      const checker = new HealthChecker({ service: 's', servicePort: 80, spec: spec({ type: 'http', path, reuseConnection: true, intervalMs: 20, rise: 1, fall: 1 }), backends: [{ address: LOCAL, port: server.port }] });
      toStop.push(checker);
      checker.start();
      await waitFor(`${n} checks of ${path}`, () => checker.status()[0].checks >= n);
      checker.stop();
      return { health: checker.health(`${LOCAL}:${server.port}`), detail: checker.status()[0].lastDetail, connections: server.connections() - before };
    };
    assert.deepEqual(await run('/len', 4), { health: 'up', detail: 'HTTP 200', connections: 1 });
    status = 503;
    assert.deepEqual(await run('/len', 4), { health: 'down', detail: 'HTTP 503 not in 200..399', connections: 1 });
    for (const path of ['/close', '/chunked', '/v10']) {
      const r = await run(path, 3);
      assert.equal(r.health, 'up', path);
      assert.ok(r.connections >= 3, `${path}: not reused (${r.connections} connections)`);
    }
    await server.close();
  });

  test('a kept connection that stops answering is down after the timeout', async () => {
    const server = await rawHttpServer((_, n) => (n < 2 ? OK : 'silent'));
    const key = `${LOCAL}:${server.port}`;
    const checker = new HealthChecker({ service: 's', servicePort: 80, spec: spec({ type: 'http', reuseConnection: true, intervalMs: 100, timeoutMs: 60, rise: 1, fall: 1 }), backends: [{ address: LOCAL, port: server.port }] });
    toStop.push(checker);
    checker.start();
    await waitFor('up', () => checker.health(key) === 'up');
    await waitFor('down', () => checker.health(key) === 'down', 3000);
    assert.match(checker.status()[0].lastDetail, /timeout after 60 ms/);
    checker.stop();
    await server.close();
  });
});

test('start() spreads the first probes over one interval in batches of PROBE_BATCH backends; each is then probed every interval', async () => {
  const server = new FlipTcpServer();
  await server.up();
  const n = 3 * PROBE_BATCH;
  // n backends (distinct keys), every check to the server's port.
  const checker = new HealthChecker({ service: 's', servicePort: 80, spec: spec({ intervalMs: 600, rise: 1, port: server.port }),
    backends: Array.from({ length: n }, (_, i) => ({ address: LOCAL, port: i + 1 })) });
  toStop.push(checker);
  const firsts = new Map<string, number>();
  const started = Date.now();
  checker.on('change', (c) => { assert.equal(c.health, 'up'); if (!firsts.has(c.backend)) firsts.set(c.backend, Date.now() - started); });
  checker.start();
  await waitFor('every backend checked', () => firsts.size === n, 3000);
  // Three batches at 0, 200 and 400 ms: backend i in batch i % 3, not one burst of n.
  const batchOf = (port: number) => (port - 1) % 3;
  const byBatch = [0, 1, 2].map((b) => [...firsts].filter(([key]) => batchOf(Number(key.split(':')[1])) === b).map(([, t]) => t));
  assert.deepEqual(byBatch.map((t) => t.length), [PROBE_BATCH, PROBE_BATCH, PROBE_BATCH]);
  for (let b = 1; b < 3; b++) {
    assert.ok(Math.min(...byBatch[b]) - Math.max(...byBatch[b - 1]) >= 100, `batch ${b} ${Math.min(...byBatch[b])} ms after batch ${b - 1} ended at ${Math.max(...byBatch[b - 1])} ms`);
  }
  await waitFor('second round', () => checker.status().every((st) => st.checks >= 2), 3000);
  checker.stop();
  await server.down();
});

test('a probe slower than the interval defers the next one to its end: a backend\'s probes never overlap', async () => {
  let inFlight = 0;
  let most = 0;
  const sockets = new Set<net.Socket>();
  const server = http.createServer((_req, res) => {
    most = Math.max(most, ++inFlight);
    setTimeout(() => { inFlight--; res.writeHead(200).end(); }, 80);
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise<void>((resolve) => server.listen(0, LOCAL, resolve));
  server.unref();
  const port = (server.address() as AddressInfo).port;
  const checker = new HealthChecker({ service: 's', servicePort: 80, spec: spec({ type: 'http', intervalMs: 20, timeoutMs: 500, rise: 1 }), backends: [{ address: LOCAL, port }] });
  toStop.push(checker);
  const started = Date.now();
  checker.start();
  await waitFor('4 checks', () => checker.status()[0].checks >= 4, 3000);
  const elapsed = Date.now() - started;
  checker.stop();
  assert.equal(most, 1, 'one probe at a time');
  assert.ok(elapsed >= 4 * 80 - 10, `4 probes of 80 ms took ${elapsed} ms`);
  assert.ok(elapsed < 4 * 80 + 400, `the next probe starts when the slow one ends (${elapsed} ms)`);
  for (const s of sockets) s.destroy();
  await new Promise<void>((r) => server.close(() => r()));
});
