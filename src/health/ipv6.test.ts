/**
 * Health checks over IPv6 (issue 15): TCP and HTTP probes connect to [v6]:port (real sockets on
 * the loopback ::1), with and without a firewall mark (the DSR probes' marked socket is of the
 * address's family), and the checker reports the backend under its canonical "[v6]:port" key.
 */
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startProbe, KeptConnection } from './checks';
import { HealthChecker, backendKey } from './checker';

function listen<T extends net.Server>(server: T): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '::1', () => resolve((server.address() as AddressInfo).port));
  });
}

describe('health probes over IPv6', () => {
  const hosts: string[] = [];
  const tcp = net.createServer((s) => s.end());
  const web = http.createServer((req, res) => { hosts.push(req.headers.host ?? ''); res.statusCode = req.url === '/ok' ? 200 : 503; res.end(); });
  after(() => { tcp.close(); web.close(); });

  test('TCP: connected to [::1]:port; a closed port is refused', async () => {
    const port = await listen(tcp);
    assert.deepEqual(await startProbe({ type: 'tcp', address: '::1', port, timeoutMs: 2000 }).result, { ok: true, detail: 'connected' });
    const closed = net.createServer();
    const gone = await listen(closed);
    await new Promise((r) => closed.close(r));
    const refused = await startProbe({ type: 'tcp', address: '::1', port: gone, timeoutMs: 2000 }).result;
    assert.equal(refused.ok, false);
    assert.equal(refused.detail, 'ECONNREFUSED');
  });

  test('HTTP: GET to [::1]:port with a bracketed Host header; the status decides', async () => {
    const port = await listen(web);
    const ok = await startProbe({ type: 'http', address: '::1', port, path: '/ok', expectStatus: [200, 399], timeoutMs: 2000 }).result;
    assert.deepEqual(ok, { ok: true, detail: 'HTTP 200' });
    const bad = await startProbe({ type: 'http', address: '::1', port, path: '/no', expectStatus: [200, 399], timeoutMs: 2000 }).result;
    assert.deepEqual(bad, { ok: false, detail: 'HTTP 503 not in 200..399' });
    assert.equal(hosts[0], `[::1]:${port}`);
  });

  test('a marked probe (DSR) opens a socket of the address\'s family', async () => {
    const port = (tcp.address() as AddressInfo).port;
    const marked = await startProbe({ type: 'tcp', address: '::1', port, timeoutMs: 2000, mark: 0x58480fff }).result;
    assert.deepEqual(marked, { ok: true, detail: 'connected' });
    const markedHttp = await startProbe({ type: 'http', address: '::1', port: (web.address() as AddressInfo).port, path: '/ok', expectStatus: [200, 399], timeoutMs: 2000, mark: 0x58480fff }).result;
    assert.deepEqual(markedHttp, { ok: true, detail: 'HTTP 200' });
  });

  test('reuseConnection: kept-alive GETs to [::1]:port over one connection, marked (DSR) or not', async () => {
    const port = (web.address() as AddressInfo).port;
    let accepted = 0;
    const count = (): void => { accepted++; };
    web.on('connection', count);
    try {
      for (const mark of [{}, { mark: 0x58480fff }]) {
        const connection = new KeptConnection();
        const before = accepted;
        for (let i = 0; i < 3; i++) {
          const r = await startProbe({ type: 'http', address: '::1', port, path: '/ok', expectStatus: [200, 399], timeoutMs: 2000, connection, ...mark }).result;
          assert.deepEqual(r, { ok: true, detail: 'HTTP 200' });
          // The verdict comes with the status line; the rest of the answer is read before the next probe reuses it.
          await new Promise((r) => setTimeout(r, 20));
        }
        assert.equal(accepted - before, 1, `one connection for three probes (${JSON.stringify(mark)})`);
        assert.deepEqual([connection.opened, connection.reused], [1, 2]);
        connection.close();
      }
      assert.equal(hosts.at(-1), `[::1]:${port}`);
    } finally {
      web.off('connection', count);
    }
  });

  test('the checker brings an IPv6 backend up under its "[v6]:port" key', async () => {
    const port = (tcp.address() as AddressInfo).port;
    assert.equal(backendKey({ address: '::1', port }), `[::1]:${port}`);
    const checker = new HealthChecker({
      service: 'web6', servicePort: port,
      spec: { type: 'tcp', intervalMs: 100, timeoutMs: 500, rise: 1, fall: 1 },
      backends: [{ address: '::1', port }],
    });
    try {
      const change = new Promise<{ backend: string; health: string }>((resolve) => checker.once('change', resolve));
      checker.start();
      const c = await change;
      assert.equal(c.backend, `[::1]:${port}`);
      assert.equal(c.health, 'up');
      assert.equal(checker.health(`[::1]:${port}`), 'up');
    } finally {
      checker.close();
    }
  });
});
