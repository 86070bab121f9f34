/**
 * The daemon for real (in process, kernel, no interfaces) against the config file's failure
 * modes (issue 10): a reload that would remove everything, half-written files, a file
 * restored after a bad reload, a start-up that fails after (or before) the kernel, a change
 * that cannot be persisted (full tmpfs, read-only remount: the kernel stays byte-identical),
 * and the flow hash seed as an explicit operation.
 *
 * Names: pins /sys/fs/bpf/xlbt-cf-*, temporary dirs os.tmpdir()/xlbt-cf-*, a tmpfs mounted at
 * /tmp/xlbt-cf-mnt (unmounted by that exact path), API ports 8751-8759. Everything is removed
 * by name in after(), also on failure.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { Writable } from 'node:stream';
import YAML from 'yaml';
import pino from 'pino';
import { startDaemon, type RunningDaemon } from '../src/cli/daemon-process';
import { spawnDaemon } from '../src/daemon/spawn';
import { ApiClient, ApiError } from '../src/cli/client';
import { BpfMap, Program } from '../src/bpf';
import { MAP_NAMES } from '../src/dataplane/dataplane';
import { buildFrame, IPPROTO_TCP } from '../src/dataplane/packet';
import { LbServiceKeyCodec, LbServiceCodec, decodeU32, encodeU32 } from '../src/dataplane/abi';
import { END_MARKER } from '../src/config/config';
import { kernelTestSkip } from './support/kernel-env';

const PIN = '/sys/fs/bpf/xlbt-cf-a';
const PIN_START = '/sys/fs/bpf/xlbt-cf-b';
const PIN_DISK = '/sys/fs/bpf/xlbt-cf-c';
const PIN_HUP = '/sys/fs/bpf/xlbt-cf-d';
const MNT = '/tmp/xlbt-cf-mnt';
const TOKEN = 'xlbt-cf-admin-token-0123456789';
// One port per daemon start: fetch keeps connections to an origin alive across tests.
const PORTS = { reload: 8751, busy: 8752, unresolvable: 8753, disk: 8754, noIface: 8755, seed: 8756, half: 8757, seedAgain: 8758, hup: 8759, iface: 8750 };

const skipReason = kernelTestSkip('the config reload kernel test');

const sh = (cmd: string, args: string[]): string => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const quiet = (cmd: string, args: string[]): void => { try { sh(cmd, args); } catch { /* already gone */ } };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const backends = (n: number) => Array.from({ length: n }, (_, i) => ({ address: `198.18.${1 + (i >> 6)}.${10 + (i & 63)}`, port: 8080, weight: 1 }));
const baseConfig = (n = 12, extra: object = {}) => ({
  tokens: [{ name: 'test', role: 'admin', token: TOKEN }],
  hashSeed: 3,
  ...extra,
  services: [
    { name: 'web', vip: '198.18.100.1', port: 80, protocol: 'tcp', mode: 'nat', tableSize: 251, backends: backends(n) },
    { name: 'dns', vip: '198.18.100.2', port: 53, protocol: 'udp', mode: 'dsr', tableSize: 13, backends: [{ address: '198.18.3.10', port: 0 }] },
  ],
});

interface LogLine { msg?: string; [key: string]: unknown }
function captureLogger(): { logger: pino.Logger; logs: LogLine[] } {
  const logs: LogLine[] = [];
  const sink = new Writable({ write(chunk, _enc, done) { for (const l of String(chunk).split('\n')) if (l.trim()) logs.push(JSON.parse(l) as LogLine); done(); } });
  return { logger: pino({ level: 'info' }, sink), logs };
}

async function waitForLog(logs: LogLine[], from: number, match: (l: LogLine) => boolean, timeoutMs = 5000): Promise<LogLine> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const found = logs.slice(from).find(match);
    if (found) return found;
    await sleep(25);
  }
  throw new Error(`no matching log line in ${timeoutMs} ms; last: ${JSON.stringify(logs.slice(-3))}`);
}

/** Every entry of every pinned map (the events ring has none to read), hex: what "byte-identical" compares. */
function kernelSnapshot(pinDir: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const name of MAP_NAMES) {
    if (name === 'events') continue;
    const map = BpfMap.fromPin(path.join(pinDir, 'maps', name));
    try {
      out[name] = [...map.entries()].map(([k, v]) => `${k.toString('hex')}=${v.toString('hex')}`).sort();
    } finally {
      map.close();
    }
  }
  return out;
}

/** The kernel's service ids by VIP. */
function serviceIds(pinDir: string): Record<string, number> {
  const map = BpfMap.fromPin(path.join(pinDir, 'maps', 'services'));
  try {
    return Object.fromEntries([...map.keys()].map((k) => [LbServiceKeyCodec.decode(k).vip, LbServiceCodec.decode(map.lookup(k)!).id]));
  } finally {
    map.close();
  }
}

/** The seed recorded in the pinned meta map (what the next adopt reads). */
function pinnedSeed(pinDir: string): number {
  const meta = BpfMap.fromPin(path.join(pinDir, 'meta'));
  try { return decodeU32(meta.lookup(encodeU32(0))!, 4); } finally { meta.close(); }
}

/** Runs packets to the web VIP through the pinned program (BPF_PROG_TEST_RUN): counters move. */
function sendPackets(pinDir: string, count: number): void {
  const prog = Program.fromPin(path.join(pinDir, 'prog'));
  try {
    for (let i = 0; i < count; i++) {
      prog.testRun(buildFrame({ ip: { src: `198.18.50.${1 + (i % 200)}`, dst: '198.18.100.1', proto: IPPROTO_TCP }, tcp: { sport: 40000 + i, dport: 80, flags: 0x02 } }));
    }
  } finally {
    prog.close();
  }
}

/**
 * Gives every service and backend counters (as if it had carried traffic: BPF_PROG_TEST_RUN
 * cannot forward without a route), so a re-created service would show as a reset.
 */
function seedCounters(pinDir: string): void {
  for (const name of ['service_stats', 'backend_stats']) {
    const map = BpfMap.fromPin(path.join(pinDir, 'maps', name));
    try {
      for (let id = 0; id < Math.min(map.maxEntries, 128); id++) {
        const value = map.lookup(encodeU32(id));
        if (!value) continue;
        for (let off = 0; off + 8 <= value.length; off += 8) value.writeBigUInt64LE(BigInt(6410 + id), off);
        map.update(encodeU32(id), value);
      }
    } finally {
      map.close();
    }
  }
}

async function apiError(promise: Promise<unknown>): Promise<ApiError> {
  try { await promise; } catch (err) { if (err instanceof ApiError) return err; throw err; }
  assert.fail('expected the API to refuse');
}

const running: RunningDaemon[] = [];
const children: Array<ReturnType<typeof spawnDaemon>> = [];
const tmpDirs: string[] = [];

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xlbt-cf-'));
  tmpDirs.push(dir);
  return dir;
}

function mounted(): boolean {
  return fs.readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === MNT);
}

async function cleanup(): Promise<void> {
  for (const d of running.splice(0)) await d.stop({ detach: true }).catch(() => {});
  for (const c of children.splice(0)) if (c.child.exitCode === null && c.child.signalCode === null) await c.kill();
  if (mounted()) quiet('umount', [MNT]);
  fs.rmSync(MNT, { recursive: true, force: true });
  for (const pin of [PIN, PIN_START, PIN_DISK, PIN_HUP]) fs.rmSync(pin, { recursive: true, force: true });
  for (const dir of tmpDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
}

async function start(file: string, pinDir: string, port: number, logger = pino({ level: 'silent' })): Promise<{ d: RunningDaemon; api: ApiClient }> {
  const d = await startDaemon({ configPath: file, pinDir, listen: `127.0.0.1:${port}`, logger, reloadDebounceMs: 50 });
  running.push(d);
  return { d, api: new ApiClient({ baseUrl: d.url, token: TOKEN }) };
}

async function stop(d: RunningDaemon, detach: boolean): Promise<void> {
  running.splice(running.indexOf(d), 1);
  await d.stop({ detach });
}

describe('config file and reload (kernel, in process)', { skip: skipReason, concurrency: false }, () => {
  before(cleanup);
  after(cleanup);

  test('a file that would remove everything is refused on reload (watcher and SIGHUP path), the kernel keeps its state', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'xdplb.yaml');
    fs.writeFileSync(file, YAML.stringify(baseConfig()));
    const { logger, logs } = captureLogger();
    const { d, api } = await start(file, PIN, PORTS.reload, logger);
    const before = kernelSnapshot(PIN);
    for (const text of ['', '# nothing yet\n', '~\n', 'null\n', '---\n', '{}\n', 'services: []\ntokens: []\n']) {
      const mark = logs.length;
      fs.writeFileSync(file, text);
      const line = await waitForLog(logs, mark, (l) => l.msg === 'config file invalid; keeping the running state');
      assert.match(String(line.err), /allowEmpty: true/, `watcher, ${JSON.stringify(text)}`);
      assert.equal(await d.reload('SIGHUP'), 'invalid', `reload, ${JSON.stringify(text)}`);
      assert.deepEqual((await api.listServices()).map((s) => s.name), ['web', 'dns']);
      assert.deepEqual(kernelSnapshot(PIN), before, `${JSON.stringify(text)} changed a kernel map`);
    }
    // Said explicitly, it is applied.
    fs.writeFileSync(file, YAML.stringify({ tokens: baseConfig().tokens, hashSeed: 3, allowEmpty: true }));
    assert.equal(await d.reload('SIGHUP'), 'applied');
    assert.deepEqual(await api.listServices(), []);
    await stop(d, true);
  });

  test('a reload naming an interface this namespace lacks is refused whole: services and kernel unchanged', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'xdplb.yaml');
    fs.writeFileSync(file, YAML.stringify(baseConfig()));
    const { logger, logs } = captureLogger();
    const { d, api } = await start(file, PIN, PORTS.iface, logger);
    const before = kernelSnapshot(PIN);
    const mark = logs.length;
    // A service change and an interface typo in one file: neither may be applied alone.
    fs.writeFileSync(file, YAML.stringify({ ...baseConfig(3), interfaces: [{ name: 'xlbt-cf-none', mode: 'native' }] }));
    const line = await waitForLog(logs, mark, (l) => l.msg === 'config file invalid; keeping the running state');
    assert.equal(line.field, '/interfaces/0/name');
    assert.match(String(line.err), /no interface "xlbt-cf-none" in this network namespace/);
    assert.equal(await d.reload('SIGHUP'), 'invalid');
    assert.equal((await api.getService('web')).backends.length, 12, 'the service change was not applied either');
    assert.deepEqual(kernelSnapshot(PIN), before);
    await stop(d, true);
  });

  test('a half-written copy of a file the daemon wrote is never applied; restoring the bytes re-applies (watcher and SIGHUP)', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'xdplb.yaml');
    fs.writeFileSync(file, YAML.stringify(baseConfig(91)));
    const { logger, logs } = captureLogger();
    const { d, api } = await start(file, PIN, PORTS.half, logger);
    // An API change: the daemon writes the file (header, end line, checksum).
    await api.patchBackend('web', '198.18.1.10:8080', { weight: 3 });
    const written = fs.readFileSync(file, 'utf8');
    assert.ok(written.endsWith('\n') && written.trimEnd().split('\n').pop()!.startsWith(`${END_MARKER} sha256=`));
    const before = kernelSnapshot(PIN);

    // `cat new > config` interrupted: cut between two backends (valid YAML: 91 -> a few) and mid-line.
    const lines = written.split('\n');
    const between = lines.findIndex((l) => l.includes('198.18.1.40'));
    for (const cut of [lines.slice(0, between).join('\n') + '\n', written.slice(0, written.length - 80), written.slice(0, written.length - 1)]) {
      const mark = logs.length;
      fs.writeFileSync(file, cut);
      const line = await waitForLog(logs, mark, (l) => l.msg === 'config file invalid; keeping the running state');
      assert.match(String(line.err), /incomplete config file/);
      assert.equal(await d.reload('SIGHUP'), 'invalid');
      assert.equal((await api.getService('web')).backends.length, 91);
      assert.deepEqual(kernelSnapshot(PIN), before, 'a half-written file changed a kernel map');
    }

    // A bad reload that IS applied (a valid hand-written file with 5 backends), then the
    // daemon's bytes restored: the watcher must re-apply them (it compared with its own write).
    let mark = logs.length;
    fs.writeFileSync(file, YAML.stringify(baseConfig(5)));
    await waitForLog(logs, mark, (l) => l.msg === 'config reloaded');
    assert.equal((await api.getService('web')).backends.length, 5);
    mark = logs.length;
    fs.writeFileSync(file, written);
    await waitForLog(logs, mark, (l) => l.msg === 'config reloaded');
    assert.equal((await api.getService('web')).backends.length, 91, 'the watcher re-applied the restored file');
    assert.equal((await api.getService('web')).backends[0].weight, 3);

    // The same through SIGHUP's path (the watcher is slower than the explicit reload here).
    fs.writeFileSync(file, YAML.stringify(baseConfig(5)));
    assert.equal(await d.reload('SIGHUP'), 'applied');
    fs.writeFileSync(file, written);
    assert.equal(await d.reload('SIGHUP'), 'applied', 'SIGHUP re-applies the restored file');
    assert.equal(await d.reload('SIGHUP'), 'unchanged');
    assert.equal((await api.getService('web')).backends.length, 91);
    await sleep(200);   // let the watcher's echo of these writes settle

    // After a refused reload, an API change writes the running state (not the broken file).
    fs.writeFileSync(file, written.slice(0, written.length - 200));
    assert.equal(await d.reload('SIGHUP'), 'invalid');
    await api.patchBackend('web', '198.18.1.11:8080', { weight: 2 });
    const after = YAML.parse(fs.readFileSync(file, 'utf8')) as { services: Array<{ backends: unknown[] }> };
    assert.equal(after.services[0].backends.length, 91);
    assert.equal(after.services.length, 2);
    await stop(d, true);
  });

  test('the hash seed: shown in the API and /metrics; a reload with another seed is refused; PUT /hash-seed replaces it in the running program', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'xdplb.yaml');
    fs.writeFileSync(file, YAML.stringify(baseConfig()));
    const { logger, logs } = captureLogger();
    const { d, api } = await start(file, PIN, PORTS.seed, logger);
    assert.deepEqual(await api.request('GET', '/api/v1/hash-seed'), { hashSeed: 3 });
    assert.match(await (await fetch(`${d.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text(), /^xdplb_hash_seed 3$/m);
    const progBefore = (await api.programs()).programs.find((p) => p.xdplb)!.id;

    // A reload that changes the seed: refused whole (a service change in the same file is not applied either).
    const changed = baseConfig(12, { hashSeed: 9 });
    changed.services.pop();
    fs.writeFileSync(file, YAML.stringify(changed));
    assert.equal(await d.reload('SIGHUP'), 'invalid');
    const refused = logs.find((l) => l.msg === 'config reload refused; keeping the running state');
    assert.match(String(refused?.err), /\/hashSeed: 9 differs from the running seed 3.*xdplb hash-seed set 9/);
    assert.deepEqual((await api.listServices()).map((s) => s.name), ['web', 'dns']);
    assert.deepEqual(await api.request('GET', '/api/v1/hash-seed'), { hashSeed: 3 });
    assert.equal(pinnedSeed(PIN), 3);

    // The explicit operation.
    const badSeed = await apiError(api.request('PUT', '/api/v1/hash-seed', { hashSeed: -1 }));
    assert.equal(badSeed.status, 400);
    const mark = logs.length;
    assert.deepEqual(await api.request('PUT', '/api/v1/hash-seed', { hashSeed: 9 }), { hashSeed: 9 });
    const logged = await waitForLog(logs, mark, (l) => l.msg === 'hash seed changed: every flow re-hashes (set the same seed on every node behind ECMP)');
    assert.deepEqual([logged.from, logged.to], [3, 9]);
    assert.deepEqual(await api.request('GET', '/api/v1/hash-seed'), { hashSeed: 9 });
    assert.match(await (await fetch(`${d.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text(), /^xdplb_hash_seed 9$/m);
    assert.equal(pinnedSeed(PIN), 9, 'the meta map records it for the next adopt');
    const progAfter = (await api.programs()).programs.find((p) => p.xdplb)!.id;
    assert.notEqual(progAfter, progBefore, 'a new program carries the new seed');
    assert.equal((YAML.parse(fs.readFileSync(file, 'utf8')) as { hashSeed: number }).hashSeed, 9, 'written to the file');
    assert.deepEqual((await api.listServices()).map((s) => s.name), ['web', 'dns'], 'nothing else changed');
    assert.equal(await d.reload('SIGHUP'), 'unchanged', 'the file the daemon wrote agrees');

    // A restart adopts the pinned plane with its seed.
    await stop(d, false);
    const again = await start(file, PIN, PORTS.seedAgain);
    assert.deepEqual(await again.api.request('GET', '/api/v1/hash-seed'), { hashSeed: 9 });
    assert.equal((await again.api.programs()).programs.find((p) => p.xdplb)!.id, progAfter, 'adopted, same program');
    await stop(again.d, true);
  });
});

describe('SIGHUP for real (kernel, child process)', { skip: skipReason, concurrency: false }, () => {
  before(cleanup);
  after(cleanup);

  test('after a bad reload, the restored bytes are re-applied by SIGHUP; a half-written file is refused by it', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'xdplb.yaml');
    fs.writeFileSync(file, YAML.stringify(baseConfig(91)));
    const d = spawnDaemon({ configPath: file, pinDir: PIN_HUP, listen: `127.0.0.1:${PORTS.hup}`, detachOnExit: true });
    children.push(d);
    const api = new ApiClient({ baseUrl: await d.ready(30_000), token: TOKEN });
    await api.patchBackend('web', '198.18.1.10:8080', { weight: 3 });
    const written = fs.readFileSync(file, 'utf8');
    await sleep(400);   // the watcher's echo of the daemon's own write
    // Each write is followed at once by SIGHUP, well inside the watcher's 200 ms debounce.
    const hup = async (text: string, msg: string): Promise<void> => {
      const mark = d.logs.length;
      fs.writeFileSync(file, text);
      d.child.kill('SIGHUP');
      await d.waitForLog((l) => d.logs.indexOf(l) >= mark && l.msg === msg && l.reason === 'SIGHUP', 10_000);
      await sleep(400);
    };
    await hup(YAML.stringify(baseConfig(5)), 'config reloaded');
    assert.equal((await api.getService('web')).backends.length, 5);
    await hup(written, 'config reloaded');
    assert.equal((await api.getService('web')).backends.length, 91, 'SIGHUP re-applied the restored file');
    await hup(written.slice(0, written.indexOf('198.18.1.40')), 'config file invalid; keeping the running state');
    assert.equal((await api.getService('web')).backends.length, 91);
    assert.equal((await d.stop()).code, 0);
  });
});

describe('a start-up that fails leaves no data plane behind (kernel, in process)', { skip: skipReason, concurrency: false }, () => {
  before(cleanup);
  after(cleanup);

  const config = () => {
    const dir = tempDir();
    const file = path.join(dir, 'xdplb.yaml');
    fs.writeFileSync(file, YAML.stringify(baseConfig()));
    return file;
  };

  test('listen address in use: refused before the kernel is touched (no pins)', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(PORTS.busy, '127.0.0.1', resolve));
    try {
      await assert.rejects(start(config(), PIN_START, PORTS.busy), /cannot listen on 127\.0\.0\.1:8752: address already in use/);
      assert.equal(fs.existsSync(path.join(PIN_START, 'maps')), false, 'nothing pinned');
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });

  test('an unresolvable listen host: refused before the kernel is touched (no pins)', async () => {
    const file = config();
    await assert.rejects(
      startDaemon({ configPath: file, pinDir: PIN_START, listen: `xlbt-cf-nowhere.invalid:${PORTS.unresolvable}`, logger: pino({ level: 'silent' }) }),
      /cannot listen on xlbt-cf-nowhere\.invalid:8753: host "xlbt-cf-nowhere\.invalid" does not resolve/);
    assert.equal(fs.existsSync(path.join(PIN_START, 'maps')), false, 'nothing pinned');
  });

  test('a failure after loading (an interface that does not exist) unpins what this start loaded', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'xdplb.yaml');
    fs.writeFileSync(file, YAML.stringify({ ...baseConfig(), interfaces: [{ name: 'xlbt-cf-none', mode: 'native' }] }));
    await assert.rejects(start(file, PIN_START, PORTS.noIface));
    assert.equal(fs.existsSync(path.join(PIN_START, 'maps', 'services')), false, 'the freshly loaded data plane is not left pinned');
    assert.equal(fs.existsSync(path.join(PIN_START, 'prog')), false);
  });

  test('an adopted, pre-existing data plane stays pinned when a later start fails', async () => {
    const file = config();
    const first = await start(file, PIN_START, PORTS.busy);
    await stop(first.d, false);
    const ids = serviceIds(PIN_START);
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(PORTS.busy, '127.0.0.1', resolve));
    try {
      await assert.rejects(start(file, PIN_START, PORTS.busy), /address already in use/);
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
    const withIface = path.join(path.dirname(file), 'iface.yaml');
    fs.writeFileSync(withIface, YAML.stringify({ ...baseConfig(), interfaces: [{ name: 'xlbt-cf-none', mode: 'native' }] }));
    await assert.rejects(start(withIface, PIN_START, PORTS.busy));
    assert.ok(fs.existsSync(path.join(PIN_START, 'maps', 'services')), 'the adopted pins are still there');
    assert.deepEqual(serviceIds(PIN_START), ids);
    const last = await start(file, PIN_START, PORTS.busy);
    await stop(last.d, true);
  });

  test('the CLI refuses an empty config at start with one line, before the kernel', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'xdplb.yaml');
    fs.writeFileSync(file, '# to be written\n');
    const d = spawnDaemon({ configPath: file, pinDir: PIN_START, listen: `127.0.0.1:${PORTS.busy}` });
    children.push(d);
    const exit = await d.exited(30_000);
    assert.equal(exit.code, 1);
    assert.match(d.stderr().trim(), /^xdplb: XDPLB_ERR_VALIDATION: .*xdplb\.yaml: the file holds no config.*allowEmpty: true/);
    assert.equal(d.stderr().trim().split('\n').length, 1);
    assert.equal(fs.existsSync(path.join(PIN_START, 'maps')), false);
  });
});

describe('a change that cannot be persisted changes nothing, in the kernel too (tmpfs)', { skip: skipReason, concurrency: false }, () => {
  before(async () => {
    await cleanup();
    fs.mkdirSync(MNT, { recursive: true });
    sh('mount', ['-t', 'tmpfs', '-o', 'size=512k,mode=0700', 'xlbt-cf-tmpfs', MNT]);
  });
  after(cleanup);

  test('disk full and read-only: 507 XDPLB_ERR_STORAGE, every map, id and counter byte-identical, the file unchanged', async () => {
    const file = path.join(MNT, 'xdplb.yaml');
    fs.writeFileSync(file, YAML.stringify(baseConfig(40)));
    const { d, api } = await start(file, PIN_DISK, PORTS.disk);
    await api.patchBackend('web', '198.18.1.10:8080', { weight: 2 });   // a file the daemon wrote
    sendPackets(PIN_DISK, 50);
    seedCounters(PIN_DISK);
    const fileBefore = fs.readFileSync(file, 'utf8');
    const viewsBefore = await api.listServices();
    const snapshot = kernelSnapshot(PIN_DISK);
    assert.ok(snapshot.service_stats.some((e) => !/=0+$/.test(e)), 'the service counted packets (counters to keep)');

    const changes: Array<[string, () => Promise<unknown>]> = [
      ['delete a service', () => api.deleteService('web')],
      ['add a backend', () => api.addBackend('web', { address: '198.18.2.99', port: 8080, weight: 1 })],
      ['weight', () => api.patchBackend('web', '198.18.1.12:8080', { weight: 7 })],
      ['settings', () => api.patchSettings({ sampleRate: 10 })],
      ['hash seed', () => api.request('PUT', '/api/v1/hash-seed', { hashSeed: 77 })],
    ];
    const refuse = async (why: RegExp) => {
      for (const [name, change] of changes) {
        const err = await apiError(change());
        assert.equal(err.status, 507, `${name}: ${err.message}`);
        assert.equal(err.code, 'XDPLB_ERR_STORAGE');
        assert.match(err.message, why);
        assert.deepEqual(kernelSnapshot(PIN_DISK), snapshot, `${name}: a refused change changed a kernel map`);
        assert.deepEqual(await api.listServices(), viewsBefore, `${name}: ids or state changed`);
        assert.equal(fs.readFileSync(file, 'utf8'), fileBefore);
      }
      assert.deepEqual(fs.readdirSync(MNT).filter((n) => n.endsWith('.tmp')), [], 'no temporary file left');
    };

    // Disk full: fill the tmpfs (bounded: 512 KiB of 64 KiB writes).
    const filler = path.join(MNT, 'filler');
    const fd = fs.openSync(filler, 'w');
    try {
      for (let i = 0; i < 64; i++) fs.writeSync(fd, Buffer.alloc(64 * 1024));
    } catch (err) {
      assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
    } finally {
      fs.closeSync(fd);
    }
    await refuse(/no space left on the device; nothing was changed/);
    fs.rmSync(filler);

    // Read-only.
    sh('mount', ['-o', 'remount,ro', MNT]);
    try {
      await refuse(/read-only file system; nothing was changed/);
    } finally {
      sh('mount', ['-o', 'remount,rw', MNT]);
    }

    // Writable again: the same change goes through (the snapshot does see changes).
    await api.deleteService('dns');
    assert.notDeepEqual(kernelSnapshot(PIN_DISK), snapshot);
    assert.deepEqual((YAML.parse(fs.readFileSync(file, 'utf8')) as { services: Array<{ name: string }> }).services.map((s) => s.name), ['web']);
    await stop(d, true);
  });
});
