/**
 * The daemon for real: a child process inside a network namespace (xlbt-dm-t) with a veth pair
 * to the host, pinning under /sys/fs/bpf/xlbt-dm. Checks start-up, the API, kernel maps,
 * persistence, hot reload (file and SIGHUP), and what SIGTERM, kill -9 and --detach-on-exit
 * leave behind. Everything created here is removed by name in after(), also on failure.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import YAML from 'yaml';
import { spawnDaemon, type SpawnedDaemon, type LogLine } from '../src/daemon/spawn';
import { startDaemon, type RunningDaemon } from '../src/cli/daemon-process';
import pino from 'pino';
import { ApiClient } from '../src/cli/client';
import { repoPath } from '../src/daemon/paths';
import { BpfMap } from '../src/bpf';
import { LbServiceKeyCodec, LbServiceCodec } from '../src/dataplane/abi';
import { kernelTestSkip } from './support/kernel-env';
import { buildVariantObject } from './support/variant-object';

const NS = 'xlbt-dm-t';
const HOST_IF = 'xlbt-dm-h';
const NS_IF = 'xlbt-dm-n';
const HOST_ADDR = '198.19.77.1';
const NS_ADDR = '198.19.77.2';
const PIN_DIR = '/sys/fs/bpf/xlbt-dm';
const INPROC_PIN_DIR = '/sys/fs/bpf/xlbt-dm-inproc';
const TOKEN = 'xlbt-dm-admin-token-0123456789';

const skipReason = kernelTestSkip('the daemon kernel test');

const sh = (cmd: string, args: string[]): string => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const quiet = (cmd: string, args: string[]): void => { try { sh(cmd, args); } catch { /* already gone */ } };

let tmpDir = '';
let configPath = '';
const daemons: SpawnedDaemon[] = [];
let inProcess: RunningDaemon | null = null;

async function cleanupInProcess(): Promise<void> {
  await inProcess?.stop({ detach: true }).catch(() => {});
  inProcess = null;
  fs.rmSync(INPROC_PIN_DIR, { recursive: true, force: true });
}

function cleanup(): void {
  for (const d of daemons) if (d.child.exitCode === null && d.child.signalCode === null) d.child.kill('SIGKILL');
  fs.rmSync(PIN_DIR, { recursive: true, force: true });
  quiet('ip', ['netns', 'del', NS]);
  quiet('ip', ['link', 'del', HOST_IF]);
  if (tmpDir) fs.rmSync(tmpDir, { recursive: true, force: true });
}

function writeConfig(config: object | string): void {
  fs.writeFileSync(configPath, typeof config === 'string' ? config : YAML.stringify(config));
}

const baseConfig = {
  interfaces: [{ name: NS_IF, mode: 'native' }],
  tokens: [{ name: 'test', role: 'admin', token: TOKEN }],
  services: [{ name: 'web', vip: '198.18.100.1', port: 80, protocol: 'tcp', mode: 'nat', tableSize: 13,
    backends: [{ address: '198.18.1.11', port: 8080, weight: 1 }] }],
};

async function start(extra: { detachOnExit?: boolean; objectPath?: string } = {}): Promise<{ d: SpawnedDaemon; api: ApiClient; url: string }> {
  const d = spawnDaemon({ configPath, pinDir: PIN_DIR, netns: NS, listen: `${NS_ADDR}:0`, ...extra });
  daemons.push(d);
  const url = await d.ready(30_000);
  return { d, api: new ApiClient({ baseUrl: url, token: TOKEN }), url };
}

/** The XDP program id on the namespace's interface, or null. */
function attachedProgId(): number | null {
  const [link] = JSON.parse(sh('ip', ['-n', NS, '-j', 'link', 'show', 'dev', NS_IF])) as Array<{ xdp?: { prog?: { id: number } } }>;
  return link.xdp?.prog?.id ?? null;
}

/** The services map as the kernel holds it, read through its pin. */
function kernelServices(): Array<{ vip: string; port: number; proto: number; id: number }> {
  const map = BpfMap.fromPin(path.join(PIN_DIR, 'maps', 'services'));
  try {
    return [...map.keys()].map((key) => {
      const k = LbServiceKeyCodec.decode(key);
      const v = LbServiceCodec.decode(map.lookup(key)!);
      return { vip: k.vip, port: k.port, proto: k.proto, id: v.id };
    }).sort((a, b) => a.port - b.port);
  } finally {
    map.close();
  }
}

/** Waits for a log line written after `from` (an index into d.logs). */
function nextLog(d: SpawnedDaemon, from: number, match: (l: LogLine) => boolean, timeoutMs = 10_000): Promise<LogLine> {
  return d.waitForLog((l) => d.logs.indexOf(l) >= from && match(l), timeoutMs);
}

describe('xdplb daemon (kernel, netns)', { skip: skipReason, concurrency: false }, () => {
  let progId = 0;

  before(() => {
    cleanup();
    tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'xlbt-dm-'));
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
  after(cleanup);

  test('an invalid config at start exits 1 with one error line', async () => {
    writeConfig({ ...baseConfig, services: [{ ...baseConfig.services[0], port: 70000 }] });
    const d = spawnDaemon({ configPath, pinDir: PIN_DIR, netns: NS });
    daemons.push(d);
    const exit = await d.exited(30_000);
    assert.equal(exit.code, 1);
    assert.match(d.stderr().trim(), /^xdplb: XDPLB_ERR_VALIDATION: .*\/services\/0\/port/);
    assert.equal(d.stderr().trim().split('\n').length, 1);
    assert.equal(fs.existsSync(path.join(PIN_DIR, 'maps')), false, 'nothing loaded or pinned');
  });

  test('a pin dir off bpffs is refused with the fix in the message', async () => {
    writeConfig(baseConfig);
    const d = spawnDaemon({ configPath, pinDir: path.join(tmpDir, 'not-bpffs'), netns: NS });
    daemons.push(d);
    assert.equal((await d.exited(30_000)).code, 1);
    assert.match(d.stderr().trim(), /^xdplb: XDPLB_ERR_UNAVAILABLE: pin dir .* is not on a bpf filesystem.*nsenter/);
    assert.equal(attachedProgId(), null);
  });

  test('starts, attaches, serves /healthz and the API; an API change reaches the maps and the file', async () => {
    writeConfig(baseConfig);
    const { d, api, url } = await start();
    assert.ok(d.logs.some((l) => l.msg === 'loaded and pinned a fresh data plane'));
    const health = await fetch(`${url}/healthz`);
    assert.equal(health.status, 200);
    const interfaces = await api.interfaces();
    assert.equal(interfaces.length, 1);
    assert.equal(interfaces[0].ifname, NS_IF);
    progId = interfaces[0].progId;
    assert.equal(attachedProgId(), progId, 'the kernel shows our program on the interface');
    assert.deepEqual(kernelServices().map((s) => [s.vip, s.port, s.proto]), [['198.18.100.1', 80, 6]]);

    const created = await api.createService({ name: 'dns', vip: '198.18.100.2', port: 53, protocol: 'udp', mode: 'nat', tableSize: 13,
      backends: [{ address: '198.18.1.11', port: 53, weight: 1 }, { address: '198.18.1.12', port: 53, weight: 1 }] });
    assert.ok(created.id > 0);
    assert.deepEqual(kernelServices().map((s) => [s.vip, s.port, s.proto]), [['198.18.100.2', 53, 17], ['198.18.100.1', 80, 6]]);
    assert.equal(kernelServices()[0].id, created.id, 'the API reports the kernel id');
    const persisted = YAML.parse(fs.readFileSync(configPath, 'utf8')) as { services: Array<{ name: string }>; tokens: Array<{ tokenHash?: string; token?: string }> };
    assert.deepEqual(persisted.services.map((s) => s.name), ['web', 'dns']);
    assert.equal(persisted.tokens[0].token, undefined, 'the plain token is not written back');

    const maps = await api.maps();
    assert.ok(maps.some((m) => m.name === 'services' && m.usedEntries === 2));
    const programs = await api.programs();
    assert.equal(programs.programs.find((p) => p.xdplb)?.id, progId);

    // invalid edits on disk: logged, ignored
    let mark = d.logs.length;
    writeConfig('services: [\n');
    await nextLog(d, mark, (l) => l.msg === 'config file invalid; keeping the running state');
    mark = d.logs.length;
    writeConfig({ ...baseConfig, services: [{ ...baseConfig.services[0], backends: [{ address: '198.18.1.300', port: 80 }] }] });
    const invalid = await nextLog(d, mark, (l) => l.msg === 'config file invalid; keeping the running state');
    assert.equal(invalid.field, '/services/0/backends/0/address');
    assert.deepEqual((await api.listServices()).map((s) => s.name), ['web', 'dns']);
    assert.equal(kernelServices().length, 2);

    // a valid edit: applied
    mark = d.logs.length;
    writeConfig({ ...baseConfig, services: [{ ...baseConfig.services[0], port: 8080 }] });
    const reloaded = await nextLog(d, mark, (l) => l.msg === 'config reloaded');
    assert.equal(reloaded.reason, 'file changed');
    assert.deepEqual(kernelServices().map((s) => [s.vip, s.port]), [['198.18.100.1', 8080]]);
    assert.deepEqual((await api.listServices()).map((s) => `${s.name}:${s.port}`), ['web:8080']);

    // SIGHUP re-reads the file
    mark = d.logs.length;
    writeConfig(baseConfig);
    d.child.kill('SIGHUP');
    const hup = await nextLog(d, mark, (l) => l.msg === 'config reloaded');
    assert.equal(hup.reason, 'SIGHUP');
    assert.deepEqual(kernelServices().map((s) => s.port), [80]);

    // interfaces follow the file too: detach when removed, attach again when back
    mark = d.logs.length;
    writeConfig({ ...baseConfig, interfaces: [] });
    await nextLog(d, mark, (l) => l.msg === 'config reloaded');
    assert.equal(attachedProgId(), null, 'detached from an interface no longer configured');
    assert.equal(fs.existsSync(path.join(PIN_DIR, 'links', NS_IF)), false);
    mark = d.logs.length;
    writeConfig(baseConfig);
    await nextLog(d, mark, (l) => l.msg === 'config reloaded');
    assert.equal(attachedProgId(), progId, 'attached again, same program');
    assert.deepEqual((await api.interfaces()).map((i) => i.ifname), [NS_IF]);

    // our own writes do not loop back as reloads
    mark = d.logs.length;
    await api.patchSettings({ sampleRate: 7 });
    await new Promise((r) => setTimeout(r, 800));
    assert.equal(d.logs.slice(mark).filter((l) => l.msg === 'config reloaded').length, 0);

    const exit = await d.stop();
    assert.equal(exit.code, 0);
    assert.equal(attachedProgId(), progId, 'SIGTERM leaves the program attached');
    assert.ok(fs.existsSync(path.join(PIN_DIR, 'links', NS_IF)), 'link still pinned');
    assert.ok(fs.existsSync(path.join(PIN_DIR, 'maps', 'services')), 'maps still pinned');
  });

  test('a restart adopts the pinned program (same prog id, same state)', async () => {
    const { d, api } = await start();
    const adopted = d.logs.find((l) => l.msg === 'adopted the pinned data plane');
    assert.ok(adopted, 'adopted');
    assert.equal(adopted.progId, progId);
    assert.ok(!d.logs.some((l) => l.msg === 'loaded and pinned a fresh data plane'));
    assert.ok(!d.logs.some((l) => String(l.msg).startsWith('replaced the pinned program')), 'same build: not replaced');
    assert.equal(d.logs.find((l) => l.msg === 'initial state applied')?.writes, 0, 'the adopted maps already held the state');
    assert.equal((await api.interfaces())[0].progId, progId);
    assert.equal((await api.getSettings()).sampleRate, 7);
    assert.deepEqual(kernelServices().map((s) => s.port), [80]);
    assert.equal((await d.stop()).code, 0);
  });

  test('a different build replaces the pinned program in place through the pinned link', async () => {
    // Same source, other instruction set: another program tag.
    const variant = buildVariantObject(tmpDir);
    const first = await start({ objectPath: variant });
    const replaced = first.d.logs.find((l) => l.msg === 'replaced the pinned program in place');
    assert.ok(replaced, `replaced; logs: ${JSON.stringify(first.d.logs.slice(0, 4))}`);
    assert.notEqual(replaced.progId, progId);
    assert.notEqual(replaced.from, replaced.to);
    assert.equal(attachedProgId(), replaced.progId, 'the interface runs the new program');
    assert.ok(fs.existsSync(path.join(PIN_DIR, 'links', NS_IF)), 'through the same pinned link');
    assert.deepEqual(kernelServices().map((s) => s.port), [80], 'maps kept');
    assert.equal((await first.d.stop()).code, 0);
    // and back to the checkout's build
    const second = await start();
    const back = second.d.logs.find((l) => l.msg === 'replaced the pinned program in place');
    assert.ok(back);
    progId = Number(back.progId);
    assert.equal(attachedProgId(), progId);
    assert.equal((await second.api.listServices()).length, 1);
    assert.equal((await second.d.stop()).code, 0);
  });

  test('kill -9 leaves the program attached', async () => {
    const { d, api } = await start();
    assert.equal(d.logs.find((l) => l.msg === 'adopted the pinned data plane')?.progId, progId);
    // A backend health-checked down (nothing listens on the namespace's own address, port 1;
    // a loopback backend is refused: it could never receive balanced traffic).
    await api.createService({ name: 'chk', vip: '198.18.100.3', port: 80, protocol: 'tcp', mode: 'nat', tableSize: 13,
      backends: [{ address: NS_ADDR, port: 1, weight: 1 }],
      healthCheck: { type: 'tcp', intervalMs: 60000, timeoutMs: 500, rise: 1, fall: 1 } });
    const until = Date.now() + 5000;
    while ((await api.getService('chk')).backends[0].health !== 'down' && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    assert.equal((await api.getService('chk')).backends[0].health, 'down');
    const killed = await d.kill();
    assert.equal(killed.signal, 'SIGKILL');
    assert.equal(attachedProgId(), progId, 'kill -9 leaves the program attached');
  });

  test('after kill -9 the next start adopts; --detach-on-exit removes everything', async () => {
    const { d, api } = await start({ detachOnExit: true });
    assert.equal(d.logs.find((l) => l.msg === 'adopted the pinned data plane')?.progId, progId);
    const seeded = d.logs.find((l) => l.msg === 'backends the pinned data plane had down stay down until their checks rise');
    assert.deepEqual(seeded?.backends, [`chk|${NS_ADDR}:1`], 'the down verdict is read back from the maps');
    assert.equal(d.logs.find((l) => l.msg === 'initial state applied')?.writes, 0, 'after kill -9: nothing rewritten, not even the down backend');
    assert.equal((await api.getService('chk')).backends[0].health, 'down');
    await api.deleteService('chk');
    assert.deepEqual((await api.listServices()).map((s) => s.name), ['web']);
    const exit = await d.stop();
    assert.equal(exit.code, 0);
    assert.equal(attachedProgId(), null, 'detached');
    assert.equal(fs.existsSync(path.join(PIN_DIR, 'maps', 'services')), false, 'maps unpinned');
    assert.equal(fs.existsSync(path.join(PIN_DIR, 'links', NS_IF)), false, 'link unpinned');
  });
});

describe('startDaemon in process (kernel, no interfaces)', { skip: skipReason }, () => {
  let dir = '';
  before(async () => { await cleanupInProcess(); dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xlbt-dm-')); });
  after(async () => { await cleanupInProcess(); fs.rmSync(dir, { recursive: true, force: true }); });

  test('serves the API on a free port, reloads on request, and stop({detach}) removes its pins', async () => {
    const file = path.join(dir, 'xdplb.yaml');
    fs.writeFileSync(file, YAML.stringify({ tokens: baseConfig.tokens, services: baseConfig.services }));
    inProcess = await startDaemon({ configPath: file, pinDir: INPROC_PIN_DIR, listen: '127.0.0.1:0', logger: pino({ level: 'silent' }) });
    assert.ok(inProcess.port > 0);
    const api = new ApiClient({ baseUrl: inProcess.url, token: TOKEN });
    const [web] = await api.listServices();
    assert.equal(web.backends[0].tableShare, 1);
    const maglev = await api.mapEntries('maglev', 0, 10);
    assert.deepEqual((maglev.entries[0].value as { shares: unknown }).shares, [{ backend: '198.18.1.11:8080', slots: 13, share: 1 }]);
    fs.writeFileSync(file, YAML.stringify({ tokens: baseConfig.tokens, services: [] }));
    assert.equal(await inProcess.reload('test'), 'applied');
    assert.equal(await inProcess.reload('test'), 'unchanged');
    assert.deepEqual(await api.listServices(), []);
    assert.ok(fs.existsSync(path.join(INPROC_PIN_DIR, 'maps', 'services')));
    await inProcess.stop({ detach: true });
    inProcess = null;
    assert.equal(fs.existsSync(path.join(INPROC_PIN_DIR, 'maps', 'services')), false);
  });
});
