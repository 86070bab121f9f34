import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { startBackendServer, parseBackendArgs, type RunningBackend } from './backend-server';
import { generateTraffic } from './traffic';

function get(port: number, path: string, agent?: http.Agent): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    }).on('error', reject);
  });
}

describe('backend server (loopback, ephemeral ports)', () => {
  let backend: RunningBackend;
  let httpPort: number;
  let udpPort: number;

  before(async () => {
    // Port 0 for HTTP; UDP needs a fixed port shared by its sockets, so pick a free one first.
    const probe = dgram.createSocket('udp4');
    await new Promise<void>((r) => probe.bind(0, '127.0.0.1', () => r()));
    udpPort = (probe.address() as AddressInfo).port;
    probe.close();
    backend = await startBackendServer({ name: 'be7', httpPorts: [0], udpPort, udpBind: [], host: '127.0.0.1' });
    httpPort = (backend.http[0].address() as AddressInfo).port;
  });
  after(async () => { await backend.close(); });

  test('GET / answers its name with X-Backend, keeping the connection alive', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const first = await get(httpPort, '/', agent);
    const second = await get(httpPort, '/anything', agent);
    assert.equal(first.status, 200);
    assert.equal(first.body, 'be7\n');
    assert.equal(first.headers['x-backend'], 'be7');
    assert.equal(second.body, 'be7\n');
    assert.match(String(first.headers.connection), /keep-alive/i);
    agent.destroy();
  });

  test('/slow waits, /stream streams, /bytes sizes', async () => {
    const t0 = Date.now();
    const slow = await get(httpPort, '/slow?ms=200');
    assert.ok(Date.now() - t0 >= 190, 'slow answered early');
    assert.equal(slow.body, 'be7\n');
    const stream = await get(httpPort, '/stream?seconds=1&interval_ms=250');
    assert.deepEqual(stream.body.trim().split('\n'), ['be7 1', 'be7 2', 'be7 3', 'be7 4']);
    const bytes = await get(httpPort, '/bytes?n=100000');
    assert.equal(bytes.body.length, 100000);
  });

  test('/healthz follows /admin/health', async () => {
    assert.equal((await get(httpPort, '/healthz')).status, 200);
    assert.equal((await get(httpPort, '/admin/health?state=down')).status, 200);
    assert.equal((await get(httpPort, '/healthz')).status, 503);
    assert.equal((await get(httpPort, '/admin/health?state=sideways')).status, 400);
    await get(httpPort, '/admin/health?state=up');
    assert.equal((await get(httpPort, '/healthz')).status, 200);
  });

  test('UDP echo answers name:payload', async () => {
    const socket = dgram.createSocket('udp4');
    const reply = await new Promise<string>((resolve) => {
      socket.on('message', (m) => resolve(m.toString()));
      socket.send('hello', udpPort, '127.0.0.1');
    });
    socket.close();
    assert.equal(reply, 'be7:hello');
  });

  test('the traffic generator counts answers per backend and stops by itself', async () => {
    const http1 = await generateTraffic({ kind: 'http', target: `http://127.0.0.1:${httpPort}/`, durationSec: 0.5, rps: 40 });
    assert.ok(http1.elapsedSec < 3, `ran ${http1.elapsedSec}s`);
    assert.ok(http1.sent >= 15 && http1.sent <= 20, `sent ${http1.sent}`);
    assert.equal(http1.ok, http1.sent);
    assert.deepEqual(Object.keys(http1.byBackend), ['be7']);
    const udp = await generateTraffic({ kind: 'udp', target: `127.0.0.1:${udpPort}`, durationSec: 0.5, rps: 40 });
    assert.equal(udp.ok, udp.sent);
    assert.equal(udp.byBackend.be7, udp.ok);
  });

  test('argument parsing refuses bad names and ports', () => {
    assert.deepEqual(parseBackendArgs(['--name', 'be2', '--http-ports', '8080,80', '--udp-port', '5300', '--udp-bind', '198.18.100.1']),
      { name: 'be2', httpPorts: [8080, 80], udpPort: 5300, udpBind: ['198.18.100.1'] });
    assert.throws(() => parseBackendArgs(['--name', 'Be 2']), /--name/);
    assert.throws(() => parseBackendArgs(['--name', 'be2', '--http-ports', '8080,99999']), /99999/);
  });

  test('the traffic generator refuses unbounded or malformed runs', async () => {
    await assert.rejects(generateTraffic({ kind: 'http', target: 'http://x/', durationSec: 0, rps: 1 }), /durationSec/);
    await assert.rejects(generateTraffic({ kind: 'http', target: 'http://x/', durationSec: 99999, rps: 1 }), /durationSec/);
    await assert.rejects(generateTraffic({ kind: 'udp', target: 'nowhere', durationSec: 1, rps: 1 }), /IPv4:port/);
    await assert.rejects(generateTraffic({ kind: 'http', target: 'ftp://x/', durationSec: 1, rps: 1 }), /http:\/\//);
    await assert.rejects(generateTraffic({ kind: 'http', target: 'http://x/', durationSec: 1, rps: 1e9 }), /rps/);
  });
});
