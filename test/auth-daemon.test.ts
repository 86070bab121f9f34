/**
 * The daemon's own credentials handling for real: a child process inside a network namespace
 * (xlbt-au-t) that listens on its non-loopback address, reached from the host over a veth
 * pair, pinning under /sys/fs/bpf/xlbt-au. Checks that weak credentials keep it from
 * listening there (before it touches the kernel), that the Host/Origin checks and /metrics
 * auth are wired in, and that a password change or a user's removal in the config file ends
 * sessions and open streams. Everything created here is removed by name in after().
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import WebSocket from 'ws';
import YAML from 'yaml';
import { spawnDaemon, type SpawnedDaemon } from '../src/daemon/spawn';
import { kernelTestSkip } from './support/kernel-env';

const NS = 'xlbt-au-t';
const HOST_IF = 'xlbt-au-h';
const NS_IF = 'xlbt-au-n';
const HOST_ADDR = '198.19.78.1';
const NS_ADDR = '198.19.78.2';
const PORT = 8771;
const PIN_DIR = '/sys/fs/bpf/xlbt-au';
const ADMIN_PASSWORD = 'xlbt-au-admin-password';
const VIEWER_PASSWORD = 'xlbt-au-viewer-password';

const skipReason = kernelTestSkip('the daemon auth test');

const sh = (cmd: string, args: string[]): string => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const quiet = (cmd: string, args: string[]): void => { try { sh(cmd, args); } catch { /* already gone */ } };

let tmpDir = '';
let configPath = '';
const daemons: SpawnedDaemon[] = [];
const sockets: WebSocket[] = [];

function cleanup(): void {
  for (const ws of sockets) ws.terminate();
  for (const d of daemons) if (d.child.exitCode === null && d.child.signalCode === null) d.child.kill('SIGKILL');
  fs.rmSync(PIN_DIR, { recursive: true, force: true });
  quiet('ip', ['netns', 'del', NS]);
  quiet('ip', ['link', 'del', HOST_IF]);
  if (tmpDir) fs.rmSync(tmpDir, { recursive: true, force: true });
}

function config(users: object[], api: object = {}): object {
  return {
    interfaces: [{ name: NS_IF, mode: 'native' }],
    api: { listen: `${NS_ADDR}:${PORT}`, ...api },
    users,
    services: [{ name: 'web', vip: '198.18.100.1', port: 80, protocol: 'tcp', mode: 'nat', tableSize: 13,
      backends: [{ address: '198.18.1.11', port: 8080, weight: 1 }] }],
  };
}
const STRONG_USERS = [
  { name: 'admin', role: 'admin', password: ADMIN_PASSWORD },
  { name: 'viewer', role: 'viewer', password: VIEWER_PASSWORD },
];

const base = `http://${NS_ADDR}:${PORT}`;
async function login(username: string, password: string): Promise<string> {
  const res = await fetch(`${base}/api/v1/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password }) });
  assert.equal(res.status, 200, await res.clone().text());
  return ((await res.json()) as { token: string }).token;
}
async function whoami(token: string): Promise<number> {
  return (await fetch(`${base}/api/v1/whoami`, { headers: { authorization: `Bearer ${token}` } })).status;
}
async function openStream(token: string): Promise<WebSocket> {
  const ws = new WebSocket(`ws://${NS_ADDR}:${PORT}/api/v1/stream?token=${token}`);
  ws.on('error', () => { /* asserted through close */ });
  sockets.push(ws);
  await once(ws, 'message');
  return ws;
}
function closedWithin(ws: WebSocket, ms: number): Promise<number> {
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`stream still open after ${ms} ms`)), ms);
    ws.once('close', (code: number) => { clearTimeout(timer); resolve(code); void start; });
  });
}

describe('daemon credentials beyond loopback (kernel, netns)', { skip: skipReason, concurrency: false }, () => {
  let daemon: SpawnedDaemon | null = null;

  before(() => {
    cleanup();
    tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'xlbt-au-'));
    configPath = path.join(tmpDir, 'xdplb.yaml');
    sh('ip', ['netns', 'add', NS]);
    sh('ip', ['link', 'add', HOST_IF, 'type', 'veth', 'peer', 'name', NS_IF]);
    sh('ip', ['link', 'set', NS_IF, 'netns', NS]);
    sh('ip', ['addr', 'add', `${HOST_ADDR}/30`, 'dev', HOST_IF]);
    sh('ip', ['link', 'set', HOST_IF, 'up']);
    sh('ip', ['-n', NS, 'addr', 'add', `${NS_ADDR}/30`, 'dev', NS_IF]);
    sh('ip', ['-n', NS, 'link', 'set', NS_IF, 'up']);
    sh('ip', ['-n', NS, 'link', 'set', 'lo', 'up']);
  });
  after(async () => {
    if (daemon) await daemon.stop().catch(() => daemon?.kill());
    cleanup();
  });

  test('weak credentials: refuses to listen on a non-loopback address, before loading anything', async () => {
    for (const users of [[], [{ name: 'admin', role: 'admin', password: 'admin' }], [{ name: 'admin', role: 'admin', password: 'xdplb-demo-admin' }], [{ name: 'admin', role: 'admin', password: 'x' }]]) {
      fs.writeFileSync(configPath, YAML.stringify(config(users)));
      const d = spawnDaemon({ configPath, pinDir: PIN_DIR, netns: NS, detachOnExit: true });
      daemons.push(d);
      const { code } = await d.exited(30_000);
      assert.equal(code, 1, JSON.stringify(users));
      assert.match(d.stderr(), /refusing to listen on 198\.19\.78\.2:8771 \(beyond loopback\)/, d.stderr());
      assert.equal(d.stderr().trim().split('\n').length, 1, `one line: ${d.stderr()}`);
      assert.equal(fs.existsSync(PIN_DIR), false, 'nothing pinned');
    }
  });

  test('strong credentials: listens; Host, Origin and /metrics auth are enforced', async () => {
    fs.writeFileSync(configPath, YAML.stringify(config(STRONG_USERS)));
    daemon = spawnDaemon({ configPath, pinDir: PIN_DIR, netns: NS, detachOnExit: true });
    daemons.push(daemon);
    assert.equal(await daemon.ready(30_000), base);
    const healthz = await fetch(`${base}/healthz`);
    assert.equal(healthz.status, 200);
    assert.match(String(healthz.headers.get('content-security-policy')), /frame-ancestors 'none'/);
    assert.equal((await fetch(`${base}/metrics`)).status, 401, '/metrics needs auth by default');
    const token = await login('viewer', VIEWER_PASSWORD);
    assert.equal((await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${token}` } })).status, 200);
    // DNS rebinding: the name is not this server's (fetch cannot set Host; a raw request can).
    const rebinding = sh('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '-H', 'Host: evil.example', `${base}/api/v1/whoami`]);
    assert.equal(rebinding, '403');
    const crossOrigin = sh('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '-X', 'POST', '-H', 'Origin: http://evil.example',
      '-H', 'content-type: application/json', '--data', JSON.stringify({ username: 'admin', password: ADMIN_PASSWORD }), `${base}/api/v1/login`]);
    assert.equal(crossOrigin, '403');
  });

  test('a password change in the file ends that user\'s sessions and streams; removing a user ends its own', async () => {
    const admin = await login('admin', ADMIN_PASSWORD);
    const viewer = await login('viewer', VIEWER_PASSWORD);
    const adminStream = await openStream(admin);
    const viewerStream = await openStream(viewer);

    // The reload debounce (200 ms) and the new password's hash come before the revocation.
    const adminClosed = closedWithin(adminStream, 2000);
    fs.writeFileSync(configPath, YAML.stringify(config([{ ...STRONG_USERS[0], password: `${ADMIN_PASSWORD}-2` }, STRONG_USERS[1]])));
    assert.equal(await adminClosed, 1008);
    assert.equal(await whoami(admin), 401);
    assert.equal(viewerStream.readyState, WebSocket.OPEN, 'the viewer streams on');
    assert.equal(await whoami(viewer), 200);
    assert.ok(await login('admin', `${ADMIN_PASSWORD}-2`));

    const viewerClosed = closedWithin(viewerStream, 2000);
    fs.writeFileSync(configPath, YAML.stringify(config([{ ...STRONG_USERS[0], password: `${ADMIN_PASSWORD}-2` }])));
    assert.equal(await viewerClosed, 1008);
    assert.equal(await whoami(viewer), 401);
  });

  test('api.metrics and api.allowedHosts apply on reload', async () => {
    const curlStatus = (host: string, url: string) => sh('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '-H', `Host: ${host}`, url]);
    assert.equal((await fetch(`${base}/metrics`)).status, 401);
    assert.equal(curlStatus('lb.xlbt-au.example', `${base}/healthz`), '403');
    fs.writeFileSync(configPath, YAML.stringify(config(STRONG_USERS, { metrics: 'public', allowedHosts: ['lb.xlbt-au.example'] })));
    const deadline = Date.now() + 5000;
    while ((await fetch(`${base}/metrics`)).status !== 200) {
      assert.ok(Date.now() < deadline, 'api.metrics: public did not apply within 5 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(curlStatus('lb.xlbt-au.example', `${base}/healthz`), '200');
    assert.equal(curlStatus('other.xlbt-au.example', `${base}/healthz`), '403');
  });

  test('a reload that would leave only weak admins while listening beyond loopback is refused whole', async () => {
    const before = await login('admin', ADMIN_PASSWORD);
    const services = async () => (await (await fetch(`${base}/api/v1/services`, { headers: { authorization: `Bearer ${before}` } })).json()) as { services: unknown[] };
    const weak = config([{ name: 'admin', role: 'admin', password: 'admin' }]) as { services: Array<{ backends: unknown[] }> };
    weak.services[0]!.backends.push({ address: '198.18.1.12', port: 8080, weight: 1 });
    fs.writeFileSync(configPath, YAML.stringify(weak));
    const refused = await daemon!.waitForLog((l) => l.msg === 'config file invalid; keeping the running state', 5000);
    assert.match(String(refused.err), /refusing to listen on 198\.19\.78\.2:8771 \(beyond loopback\)/);
    assert.equal(await whoami(before), 200, 'the running admin session lives on');
    const weakLogin = await fetch(`${base}/api/v1/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: 'admin' }) });
    assert.equal(weakLogin.status, 401, 'the weak password was not taken');
    assert.equal((await services()).services.length, 1);
    assert.equal(((await services()).services[0] as { backends: unknown[] }).backends.length, 1, 'nothing of that file was applied');
  });
});
