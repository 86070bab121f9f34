import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { startBackendServer, parseBackendArgs, type RunningBackend } from './backend-server';
import { generateTraffic, parseUdpTarget } from './traffic';

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
    await assert.rejects(generateTraffic({ kind: 'udp', target: '2001:2::1:5300', durationSec: 1, rps: 1 }), /\[IPv6\]:port/);
  });

  test('UDP targets of both families', () => {
    assert.deepEqual(parseUdpTarget('198.18.100.2:5300'), { host: '198.18.100.2', port: 5300, type: 'udp4' });
    assert.deepEqual(parseUdpTarget('[2001:2:0:100::2]:5300'), { host: '2001:2:0:100::2', port: 5300, type: 'udp6' });
    for (const bad of ['2001:2::2:5300', '[2001:2::2]', '[198.18.0.1]:53', '198.18.0.300:53', '[2001:2::2]:0', '[2001:2::2]:70000', '[zz::1]:53']) {
      assert.equal(parseUdpTarget(bad), undefined, bad);
    }
  });
});

describe('backend server on both families (loopback, no host given)', () => {
  let backend: RunningBackend;
  let udpPort: number;
  let httpPort: number;

  before(async () => {
    const probe = dgram.createSocket('udp6');
    await new Promise<void>((r) => probe.bind(0, '::1', () => r()));
    udpPort = (probe.address() as AddressInfo).port;
    probe.close();
    const free = http.createServer();
    await new Promise<void>((r) => free.listen(0, '::1', () => r()));
    httpPort = (free.address() as AddressInfo).port;
    await new Promise<void>((r) => free.close(() => r()));
    backend = await startBackendServer({ name: 'be8', httpPorts: [httpPort], udpPort, udpBind: [] });
  });
  after(async () => { await backend.close(); });

  test('HTTP and the UDP echo answer over IPv4 and IPv6', async () => {
    const v6 = await generateTraffic({ kind: 'http', target: `http://[::1]:${httpPort}/`, durationSec: 0.3, rps: 20 });
    assert.ok(v6.ok > 0 && v6.ok === v6.sent, JSON.stringify(v6));
    assert.equal((await get(httpPort, '/')).body, 'be8\n');
    const udp6 = await generateTraffic({ kind: 'udp', target: `[::1]:${udpPort}`, durationSec: 0.3, rps: 20 });
    assert.ok(udp6.ok > 0 && udp6.ok === udp6.sent, JSON.stringify(udp6));
    const udp4 = await generateTraffic({ kind: 'udp', target: `127.0.0.1:${udpPort}`, durationSec: 0.3, rps: 20 });
    assert.ok(udp4.ok > 0 && udp4.ok === udp4.sent, JSON.stringify(udp4));
  });

  test('POST /sink counts the body', async () => {
    const body = Buffer.alloc(300_000, 'y');
    const answer = await new Promise<string>((resolve, reject) => {
      const req = http.request({ host: '::1', port: httpPort, path: '/sink', method: 'POST' }, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => { text += d.toString(); });
        res.on('end', () => resolve(text));
      });
      req.on('error', reject);
      req.end(body);
    });
    assert.equal(answer, 'be8 300000\n');
  });
});
