/**
 * End to end over real kernel TCP/UDP: the lab (prefix xlbt-e2e: client, lb, switch, 4 backends
 * in network namespaces), the xdplb daemon inside the lb namespace with XDP native on both lb
 * legs, and traffic from the client namespace through the VIPs. Nothing here is simulated:
 * requests cross veths, the XDP program and the backends' real sockets.
 *
 * What it proves (issue 3): NAT and DSR serve HTTP and UDP; weights 1:1:2 hold over >= 4000
 * connections; removing, draining and adding backends under 100 long-lived connections break
 * none that should live; kill -9 + restart and a program replacement lose no request; health
 * checks take a dead backend out in time and bring it back; bad input changes no kernel map.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import YAML from 'yaml';
import { labUp, labDown, readLabState } from '../src/lab/lab';
import { labTopology } from '../src/lab/topology';
import { runTraffic, startTraffic } from '../src/lab/traffic';
import { spawnDaemon, cliCommand, type SpawnedDaemon } from '../src/daemon/spawn';
import { repoPath } from '../src/daemon/paths';
import { ApiClient } from '../src/cli/client';
import { BpfMap } from '../src/bpf';
import type { DriverReport } from './e2e/conn-driver';
import type { UdpProbeReport } from './e2e/udp-probe';
import { kernelTestSkip, freePort } from './support/kernel-env';
import { buildVariantObject } from './support/variant-object';

const PREFIX = 'xlbt-e2e';
const PIN_DIR = `/sys/fs/bpf/${PREFIX}`;
const NAT_VIP = '198.18.100.1';
const DSR_VIP = '198.18.100.2';
const API_PORT_IN_LB = 8720;
const ADMIN_TOKEN = 'xlbt-e2e-admin-token-0123456789';
const VIEWER_TOKEN = 'xlbt-e2e-viewer-token-0123456789';
const HEALTH = { intervalMs: 500, timeoutMs: 300, rise: 2, fall: 2 };

const skipReason = kernelTestSkip('the e2e test');

const topology = labTopology({ prefix: PREFIX, backends: 4, mode: 'dsr', vips: [DSR_VIP] });
const be = topology.backends.map((b) => b.address);
const key = (i: number, port = 8080) => `${be[i]}:${port}`;

function baseConfig(): Record<string, unknown> {
  return {
    interfaces: [{ name: topology.lb.clientLeg, mode: 'native' }, { name: topology.lb.backendLeg, mode: 'native' }],
    sampling: { rate: 0 },
    api: { listen: `127.0.0.1:${API_PORT_IN_LB}` },
    tokens: [
      { name: 'e2e-admin', role: 'admin', token: ADMIN_TOKEN },
      { name: 'e2e-viewer', role: 'viewer', token: VIEWER_TOKEN },
    ],
    services: [
      { name: 'web', vip: NAT_VIP, port: 80, protocol: 'tcp', mode: 'nat',
        // Checked on the port the service uses: the replies reach the lb's XDP, which must
        // leave replies addressed to the lb itself alone (no reverse NAT).
        healthCheck: { type: 'http', path: '/healthz', expectStatus: [200, 299], ...HEALTH },
        backends: [{ address: be[0], port: 8080, weight: 1 }, { address: be[1], port: 8080, weight: 1 },
          { address: be[2], port: 8080, weight: 2 }] },
      { name: 'echo', vip: NAT_VIP, port: 5300, protocol: 'udp', mode: 'nat',
        backends: be.slice(0, 3).map((address) => ({ address, port: 5300, weight: 1 })) },
      { name: 'webdsr', vip: DSR_VIP, port: 80, protocol: 'tcp', mode: 'dsr',
        backends: be.slice(0, 3).map((address) => ({ address, port: 80, weight: 1 })) },
      { name: 'echodsr', vip: DSR_VIP, port: 5300, protocol: 'udp', mode: 'dsr',
        backends: be.slice(0, 3).map((address) => ({ address, port: 5300, weight: 1 })) },
    ],
  };
}

let tmpDir = '';
let configPath = '';
let apiUrl = '';
let daemon: SpawnedDaemon | null = null;
const admin = () => new ApiClient({ baseUrl: apiUrl, token: ADMIN_TOKEN });


async function startDaemon(objectPath?: string): Promise<SpawnedDaemon> {
  const d = spawnDaemon({ configPath, pinDir: PIN_DIR, netns: topology.lb.netns, objectPath });
  daemon = d;
  await d.ready(30_000);
  return d;
}

/** argv running one of the e2e helper scripts with this node (tsx for .ts, plain for compiled). */
function scriptArgv(name: string, args: string[]): string[] {
  const ts = __filename.endsWith('.ts');
  const file = path.join(__dirname, 'e2e', `${name}${ts ? '.ts' : '.js'}`);
  return [process.execPath, ...(ts ? ['--import', 'tsx'] : []), file, ...args];
}

/** Runs a helper script in the client namespace (async, so this process keeps working). */
function inClient<T>(name: string, args: string[]): Promise<T> {
  const argv = ['netns', 'exec', topology.client.netns, ...scriptArgv(name, args)];
  return new Promise((resolve, reject) => {
    const child = spawn('ip', argv, { stdio: ['ignore', 'pipe', 'pipe'], cwd: repoPath('.') });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    child.on('close', (code) => {
      try { resolve(JSON.parse(out.trim().split('\n').at(-1) ?? '') as T); } catch { reject(new Error(`${name} failed (exit ${code}): ${err.slice(-500)}`)); }
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | null>): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== null) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** Every balancer map except counters and the flow cache, decoded to hex, for before/after checks. */
function kernelSnapshot(): Record<string, string[]> {
  const snap: Record<string, string[]> = {};
  for (const name of ['services', 'vips', 'backends', 'reverse', 'maglev', 'settings', 'tx_ports']) {
    const map = BpfMap.fromPin(path.join(PIN_DIR, 'maps', name));
    try {
      snap[name] = [...map.entries()]
        .filter(([, v]) => v.some((b) => b !== 0))
        .map(([k, v]) => `${k.toString('hex')}=${v.toString('hex')}`).sort();
    } finally { map.close(); }
  }
  return snap;
}

function attachedProgIds(): number[] {
  const links = JSON.parse(execFileSync('ip', ['-n', topology.lb.netns, '-j', 'link', 'show'], { encoding: 'utf8' })) as
    Array<{ ifname: string; xdp?: { prog?: { id: number } } }>;
  return links.filter((l) => l.ifname === topology.lb.clientLeg || l.ifname === topology.lb.backendLeg)
    .map((l) => l.xdp?.prog?.id ?? 0);
}

async function cleanup(): Promise<void> {
  if (daemon && daemon.child.exitCode === null && daemon.child.signalCode === null) await daemon.kill();
  await labDown(PREFIX).catch(() => undefined);
  fs.rmSync(PIN_DIR, { recursive: true, force: true });
  if (tmpDir) fs.rmSync(tmpDir, { recursive: true, force: true });
}

describe('xdplb end to end (lab, daemon, real traffic)', { skip: skipReason, concurrency: false }, () => {
  before(async () => {
    await cleanup();
    tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), `${PREFIX}-`));
    configPath = path.join(tmpDir, 'xdplb.yaml');
    fs.writeFileSync(configPath, YAML.stringify(baseConfig()));
    const forwardPort = await freePort();
    await labUp({ prefix: PREFIX, backends: 4, mode: 'dsr', vips: [DSR_VIP], forwardPort, apiPort: API_PORT_IN_LB });
    await startDaemon();
    apiUrl = `http://127.0.0.1:${forwardPort}`;
    await waitFor('the API through the host forward', 10_000, async () => (await fetch(`${apiUrl}/healthz`).then((r) => r.ok, () => false)) || null);
    // A checked backend takes traffic only once its checks rise ('checking' until then).
    await waitFor('the checked backends up', 10_000, async () => (await admin().getService('web')).backends.every((b) => b.health === 'up') || null);
  });
  after(cleanup);

  test('NAT mode serves HTTP and UDP through the VIP; UDP replies come from the VIP', async () => {
    const http = await runTraffic({ prefix: PREFIX, kind: 'http', target: `http://${NAT_VIP}:80/`, durationSec: 2, rps: 50 });
    assert.equal(http.failed, 0, `HTTP failures: ${http.errors.join('; ')}`);
    assert.ok(http.ok >= 90, `only ${http.ok} answers`);
    assert.deepEqual(Object.keys(http.byBackend).sort(), ['be1', 'be2', 'be3']);
    const udp = await inClient<UdpProbeReport>('udp-probe', [NAT_VIP, '5300', '200']);
    assert.equal(udp.answered, udp.sent, `UDP lost ${udp.sent - udp.answered}: ${udp.errors.join('; ')}`);
    assert.deepEqual(Object.keys(udp.byBackend).sort(), ['be1', 'be2', 'be3']);
  });

  test('DSR mode serves HTTP and UDP through the VIP', async () => {
    const http = await runTraffic({ prefix: PREFIX, kind: 'http', target: `http://${DSR_VIP}:80/`, durationSec: 2, rps: 50 });
    assert.equal(http.failed, 0, `HTTP failures: ${http.errors.join('; ')}`);
    assert.deepEqual(Object.keys(http.byBackend).sort(), ['be1', 'be2', 'be3']);
    const udp = await inClient<UdpProbeReport>('udp-probe', [DSR_VIP, '5300', '200']);
    assert.equal(udp.answered, udp.sent, `UDP lost ${udp.sent - udp.answered}: ${udp.errors.join('; ')}`);
    assert.deepEqual(Object.keys(udp.byBackend).sort(), ['be1', 'be2', 'be3']);
  });

  test('weights 1:1:2 over 3 backends hold within 5 points over >= 4000 new connections', async () => {
    // As many bounded runs as it takes to reach 4000 connections (a loaded machine sends fewer
    // per second), at most 8 runs of 5 s.
    const byBackend: Record<string, number> = {};
    let ok = 0;
    for (let run = 0; run < 8 && ok < 4000; run++) {
      const r = await runTraffic({ prefix: PREFIX, kind: 'http', target: `http://${NAT_VIP}:80/`, durationSec: 5, rps: 1000 });
      assert.equal(r.failed, 0, `failures: ${r.errors.join('; ')}`);
      ok += r.ok;
      for (const [b, n] of Object.entries(r.byBackend)) byBackend[b] = (byBackend[b] ?? 0) + n;
    }
    assert.ok(ok >= 4000, `only ${ok} connections`);
    const share = (b: string) => (byBackend[b] ?? 0) / ok;
    for (const [b, target] of [['be1', 0.25], ['be2', 0.25], ['be3', 0.5]] as const) {
      assert.ok(Math.abs(share(b) - target) <= 0.05, `${b} got ${(share(b) * 100).toFixed(1)}% (target ${target * 100}%)`);
    }
  });

  test('under 100 long-lived connections: remove, drain and add backends', async () => {
    const api = admin();
    const driver = inClient<DriverReport>('conn-driver', [JSON.stringify({
      host: NAT_VIP, port: 80, longConns: 100, intervalMs: 250, newConnRps: 40, durationSec: 13 })]);
    await sleep(3000);
    await api.deleteBackend('web', key(2));
    const removedAt = Date.now();
    await sleep(3000);
    await api.patchBackend('web', key(1), { drain: true });
    const drainedAt = Date.now();
    await sleep(3000);
    await api.addBackend('web', { address: be[3], port: 8080, weight: 1 });
    const addedAt = Date.now();
    const report = await driver;

    const survivors = report.long.filter((c) => c.firstBackend !== 'be3');
    // Weights 1:1:2 put each of the 100 on be1/be2 with p = 0.5: 50 expected, sd 5. 40 failed
    // about one run in 50 (39 seen in CI); 30 is 4 sd and still plenty to observe the changes.
    assert.ok(survivors.length >= 30, `only ${survivors.length} long connections on be1/be2`);
    for (const c of survivors) {
      assert.deepEqual(c.errors, [], `a ${c.firstBackend} connection broke`);
      assert.equal(c.sockets, 1, `a ${c.firstBackend} connection was re-opened`);
      assert.deepEqual(c.backends, [c.firstBackend], 'a connection moved between backends');
      assert.ok(c.lastOkAt > addedAt, `a ${c.firstBackend} connection stopped answering`);
    }
    assert.ok(report.long.some((c) => c.firstBackend === 'be2'), 'no long connection landed on be2 (drained)');
    const fresh = (from: number, to: number) => report.fresh.filter((f) => f.at > from + 300 && f.at < to);
    assert.ok(fresh(removedAt, drainedAt).every((f) => f.backend !== 'be3' && !f.error), 'a new connection failed or reached be3 after its removal');
    const afterDrain = fresh(drainedAt, report.endedAt);
    assert.ok(afterDrain.length > 50, `only ${afterDrain.length} new connections after the drain`);
    assert.deepEqual(afterDrain.filter((f) => f.backend === 'be2' || f.error), [], 'a new connection reached be2 after the drain, or failed');
    assert.ok(fresh(addedAt, report.endedAt).some((f) => f.backend === 'be4'), 'no new connection reached the added be4');

    // Back to the configured pool for the next tests.
    await api.deleteBackend('web', key(3));
    await api.patchBackend('web', key(1), { drain: false });
    await api.addBackend('web', { address: be[2], port: 8080, weight: 2 });
  });

  test('under 100 long-lived connections: a reweight, then a kill -9 of the daemon in the middle of a drain: none breaks', async () => {
    const api = admin();
    const driver = inClient<DriverReport>('conn-driver', [JSON.stringify({
      host: NAT_VIP, port: 80, longConns: 100, intervalMs: 250, newConnRps: 20, durationSec: 12 })]);
    await sleep(2500);
    await api.patchBackend('web', key(0), { weight: 3 }); // be1 1 -> 3: slots of be2 and be3 move to it
    await sleep(2500);
    await api.patchBackend('web', key(1), { drain: true }); // be2 drained: its slots move (a transition)
    await sleep(500);
    await daemon!.kill(); // kill -9 while the moved slots are marked
    await sleep(1000);
    await startDaemon();
    const restartedAt = Date.now();
    const report = await driver;
    assert.ok(report.long.length >= 90, `only ${report.long.length} long connections opened`);
    for (const c of report.long) {
      assert.deepEqual(c.errors, [], `a ${c.firstBackend} connection broke`);
      assert.equal(c.sockets, 1, `a ${c.firstBackend} connection was re-opened`);
      assert.deepEqual(c.backends, [c.firstBackend], 'a connection moved between backends');
      assert.ok(c.lastOkAt > restartedAt, `a ${c.firstBackend} connection stopped answering`);
    }
    assert.ok(report.long.some((c) => c.firstBackend === 'be2'), 'no long connection on the drained be2');
    await api.patchBackend('web', key(0), { weight: 1 });
    await api.patchBackend('web', key(1), { drain: false });
  });

  test('health checks take a stopped backend out within fall x interval (+1) and bring it back after rise', async () => {
    const api = admin();
    const pid = readLabState(PREFIX)!.servers.be1.pid;
    process.kill(pid, 'SIGKILL');
    const killedAt = Date.now();
    const bound = (HEALTH.fall + 1) * HEALTH.intervalMs + HEALTH.timeoutMs;
    await waitFor('be1 to leave the table', bound + 2000, async () => {
      const b = (await api.getService('web')).backends.find((x) => x.key === key(0))!;
      return b.health === 'down' && !b.inTable ? b : null;
    });
    const tookMs = Date.now() - killedAt;
    assert.ok(tookMs <= bound + 200, `be1 left after ${tookMs} ms (bound ${bound} ms)`);
    const during = await runTraffic({ prefix: PREFIX, kind: 'http', target: `http://${NAT_VIP}:80/`, durationSec: 2, rps: 100 });
    assert.equal(during.failed, 0, `failures after removal: ${during.errors.join('; ')}`);
    assert.equal(during.byBackend.be1, undefined);

    await labUp({ prefix: PREFIX, backends: 4, mode: 'dsr', vips: [DSR_VIP] }); // restarts be1's server
    const restartedAt = Date.now();
    await waitFor('be1 to come back', (HEALTH.rise + 2) * HEALTH.intervalMs + 3000, async () => {
      const b = (await api.getService('web')).backends.find((x) => x.key === key(0))!;
      return b.health === 'up' && b.inTable ? b : null;
    });
    assert.ok(Date.now() - restartedAt <= (HEALTH.rise + 1) * HEALTH.intervalMs + HEALTH.timeoutMs + 1000);
  });

  test('kill -9 of the daemon and a restart during continuous requests: 0 failed', async () => {
    const progBefore = attachedProgIds();
    const load = startTraffic({ prefix: PREFIX, kind: 'http', target: `http://${NAT_VIP}:80/`, durationSec: 8, rps: 100 });
    await sleep(2000);
    await daemon!.kill();
    await sleep(1000);
    await startDaemon();
    const summary = await load.done;
    assert.equal(summary.failed, 0, `failures: ${summary.errors.join('; ')}`);
    assert.ok(summary.ok >= 700, `only ${summary.ok} answers`);
    assert.deepEqual(attachedProgIds(), progBefore, 'the restart did not adopt the running program');
  });

  test('a newer build replaces the program in place under traffic: 0 failed', async () => {
    // A different build of the same source: another instruction set level gives another tag.
    const variant = buildVariantObject(tmpDir);
    const before = attachedProgIds();
    const load = startTraffic({ prefix: PREFIX, kind: 'http', target: `http://${NAT_VIP}:80/`, durationSec: 6, rps: 100 });
    await sleep(1500);
    await daemon!.stop(15_000);
    await startDaemon(variant);
    const summary = await load.done;
    const afterIds = attachedProgIds();
    assert.equal(summary.failed, 0, `failures: ${summary.errors.join('; ')}`);
    assert.notDeepEqual(afterIds, before, 'the program was not replaced');
    assert.ok(afterIds.every((id) => id > 0 && id === afterIds[0]), 'both legs run the new program');
    // Back to the regular build for the rest.
    await daemon!.stop(15_000);
    await startDaemon();
  });

  test('bad API bodies, CLI arguments and config files are refused and change no kernel map', async () => {
    const snapshot = kernelSnapshot();
    const good = { name: 'x1', vip: '198.18.100.9', port: 81, protocol: 'tcp', mode: 'nat', backends: [{ address: be[0], port: 8080, weight: 1 }] };
    const badBodies: Array<[string, string, unknown, number]> = [
      ['POST', '/api/v1/services', { ...good, vip: '198.18.100.300' }, 400],
      ['POST', '/api/v1/services', { ...good, vip: '010.1.1.1' }, 400],
      ['POST', '/api/v1/services', { ...good, port: 70000 }, 400],
      ['POST', '/api/v1/services', { ...good, port: -1 }, 400],
      ['POST', '/api/v1/services', { ...good, protocol: 'sctp' }, 400],
      ['POST', '/api/v1/services', { ...good, mode: 'tunnel' }, 400],
      ['POST', '/api/v1/services', { ...good, name: 'Bad Name!' }, 400],
      ['POST', '/api/v1/services', { ...good, name: 'web' }, 409],
      ['POST', '/api/v1/services', { ...good, vip: NAT_VIP, port: 80 }, 409],
      ['POST', '/api/v1/services', { ...good, backends: [{ address: be[0], port: 8080, weight: -1 }] }, 400],
      ['POST', '/api/v1/services', { ...good, backends: [{ address: be[0], port: 8080, weight: 1.5 }] }, 400],
      ['POST', '/api/v1/services', { ...good, backends: [{ address: be[0], port: '8080', weight: 1 }] }, 400],
      ['POST', '/api/v1/services', { ...good, color: 'blue' }, 400],
      ['POST', '/api/v1/services', { ...good, tableSize: 1000 }, 400],
      ['POST', '/api/v1/services', { ...good, name: 'x'.repeat(5000) }, 400],
      ['POST', '/api/v1/services', { ...good, vip: NAT_VIP, port: 81, backends: [{ address: be[0], port: 8080, weight: 1 }], mode: 'dsr' }, 400],
      ['POST', '/api/v1/services/web/backends', { address: be[0], port: 8080, weight: 1 }, 409],
      ['POST', '/api/v1/services/web/backends', { address: '198.18.1.999', port: 8080 }, 400],
      // addresses that can never work (every class), a backend that is a VIP, one destination twice
      ...['0.0.0.0', '127.0.0.1', '169.254.169.254', '224.0.0.1', '240.0.0.1', '255.255.255.255'].flatMap((address): Array<[string, string, unknown, number]> => [
        ['POST', '/api/v1/services', { ...good, vip: address }, 400],
        ['POST', '/api/v1/services/web/backends', { address, port: 8080 }, 400],
      ]),
      ['POST', '/api/v1/services/web/backends', { address: NAT_VIP, port: 8080 }, 409],
      // routes, methods, parameters and query strings
      ['PATCH', '/api/v1/services', {}, 405],
      ['GET', `/api/v1/services/${'a'.repeat(300)}`, undefined, 400],
      ['DELETE', '/api/v1/services/web?dryRun=1', undefined, 400],
      ['GET', '/api/v1/maps/services?limit=1001', undefined, 400],
      ['PATCH', `/api/v1/services/web/backends/${key(0)}`, { weight: 100000 }, 400],
      ['PATCH', `/api/v1/services/web/backends/${key(0)}`, { drain: 'yes' }, 400],
      ['PATCH', '/api/v1/services/web/backends/198.18.1.250:1', { weight: 1 }, 404],
      ['DELETE', '/api/v1/services/nope', undefined, 404],
      ['PATCH', '/api/v1/settings', { sampleRate: -5 }, 400],
      ['PATCH', '/api/v1/settings', { fragPolicy: 'maybe' }, 400],
    ];
    for (const [method, url, body, status] of badBodies) {
      const res = await fetch(`${apiUrl}${url}`, { method, headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body) }).catch((err: Error & { cause?: Error }) => {
        throw new Error(`${method} ${url}: ${err.message}: ${err.cause?.message ?? ''}`);
      });
      const text = await res.text();
      assert.equal(res.status, status, `${method} ${url} ${String(JSON.stringify(body)).slice(0, 120)} -> ${res.status} ${text.slice(0, 200)}`);
      assert.match(text, /XDPLB_ERR_/);
    }
    // Strict JSON: a duplicate key at any depth and deep nesting are refused with the key's pointer.
    const rawBodies: Array<[string, string, string, string]> = [
      ['POST', '/api/v1/services', JSON.stringify(good).replace('"name":"x1"', '"name":"x1","name":"x3"'), '/name'],
      ['POST', '/api/v1/services', JSON.stringify(good).replace('"port":8080', '"port":8080,"port":8081'), '/backends/0/port'],
      ['PATCH', '/api/v1/settings', '{"sampleRate":0,"sampleRate":9}', '/sampleRate'],
      ['POST', '/api/v1/services', '{"a":'.repeat(10_000) + '1' + '}'.repeat(10_000), '/a'.repeat(32)],
    ];
    for (const [method, url, body, field] of rawBodies) {
      const res = await fetch(`${apiUrl}${url}`, { method, headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body });
      const answer = await res.json() as { error: { code: string; field?: string } };
      assert.equal(res.status, 400, `${method} ${url} ${body.slice(0, 80)}: ${JSON.stringify(answer)}`);
      assert.equal(answer.error.code, 'XDPLB_ERR_VALIDATION');
      assert.equal(answer.error.field, field);
    }
    // Viewer 403, anonymous 401.
    const viewer = await fetch(`${apiUrl}/api/v1/services/web/backends/${key(0)}`, { method: 'PATCH',
      headers: { authorization: `Bearer ${VIEWER_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ weight: 5 }) });
    assert.equal(viewer.status, 403);
    const anonymous = await fetch(`${apiUrl}/api/v1/services`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(good) });
    assert.equal(anonymous.status, 401);

    const cli = (args: string[]) => spawnSync(cliCommand()[0], [...cliCommand().slice(1), ...args, '--api', apiUrl, '--token', ADMIN_TOKEN], { encoding: 'utf8' });
    const badCli: string[][] = [
      ['backend', 'add', 'web', '198.18.1.300:8080'],
      ['backend', 'add', 'web', `${be[0]}:70000`],
      ['backend', 'add', 'web', `${be[3]}:8080`, '--weight', '-1'],
      ['backend', 'weight', 'web', key(0), 'heavy'],
      ['backend', 'del', 'nope', key(0)],
      ['service', 'add', 'x2', '--vip', 'not-an-ip', '--port', '80', '--proto', 'tcp', '--mode', 'nat'],
      ['service', 'add', 'x2', '--vip', '198.18.100.9', '--port', '80', '--proto', 'icmp', '--mode', 'nat'],
      ['service', 'del', 'nope'],
      ['service', 'add', 'x2', '--vip', '127.0.0.1', '--port', '80'],
      ['backend', 'add', 'web', '169.254.169.254:8080'],
      ['maps', 'services', '--limit', '1001'],
    ];
    for (const args of badCli) {
      const r = cli(args);
      assert.notEqual(r.status, 0, `xdplb ${args.join(' ')} succeeded`);
      const lines = r.stderr.trim().split('\n').filter(Boolean);
      assert.ok(lines.length >= 1 && lines.length <= 2 && /xdplb|error/i.test(lines[0]), `xdplb ${args.join(' ')}: unclear error: ${r.stderr}`);
    }

    const original = fs.readFileSync(configPath, 'utf8');
    const parsed = () => YAML.parse(original) as Record<string, any>;
    const badConfigs: string[] = [
      'services: [unclosed',
      YAML.stringify({ ...parsed(), hashSeed: -1 }),
      YAML.stringify({ ...parsed(), fragments: 'sometimes' }),
      YAML.stringify({ ...parsed(), unknownKey: 1 }),
      YAML.stringify({ ...parsed(), services: [...parsed().services, parsed().services[0]] }),
      YAML.stringify({ ...parsed(), maglev: { tableSize: 65536 } }),
      YAML.stringify({ ...parsed(), services: parsed().services.map((s: any, i: number) => (i === 0 ? { ...s, vip: '224.0.0.1' } : s)) }),
      YAML.stringify({ ...parsed(), services: parsed().services.map((s: any, i: number) => (i === 0 ? { ...s, vip: '127.0.0.1' } : s)) }),
      YAML.stringify({ ...parsed(), services: parsed().services.map((s: any, i: number) => (i === 0 ? { ...s, backends: [{ address: '169.254.1.1', port: 8080 }] } : s)) }),
      `{"flowCache": true, "flowCache": false, ${JSON.stringify(parsed()).slice(1)}`,
      `${original}\nhashSeed: ${'['.repeat(10_000)}${']'.repeat(10_000)}\n`,
      YAML.stringify({ ...parsed(), services: parsed().services.map((s: any, i: number) => (i === 0 ? { ...s, backends: [{ address: be[0], port: 8080, weight: 1001 }] } : s)) }),
    ];
    for (const text of badConfigs) {
      const mark = daemon!.logs.length;
      fs.writeFileSync(configPath, text);
      const line = await daemon!.waitForLog((l) => daemon!.logs.indexOf(l) >= mark && /keeping the running state|refused/.test(String(l.msg)), 5000);
      assert.ok(line, 'no refusal logged');
    }
    fs.writeFileSync(configPath, original);
    await sleep(500);
    assert.deepEqual(kernelSnapshot(), snapshot, 'a refused input changed a kernel map');
  });
});
