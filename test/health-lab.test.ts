/**
 * Health checks that protect (issue 17), over the lab with real traffic (prefix xlbt-hc:
 * namespaces xlbt-hc-client/-lb/-sw/-be1..-be3, pins /sys/fs/bpf/xlbt-hc-lab, API 8781 in the
 * lb namespace, forwarded from host 127.0.0.1:8782). The kernel's own maps are read for the
 * verdicts that matter: which backends the Maglev table holds, and their ACTIVE flag.
 * Everything is removed by name in after(), also on failure.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import YAML from 'yaml';
import { spawnDaemon, type SpawnedDaemon } from '../src/daemon/spawn';
import { ApiClient } from '../src/cli/client';
import { formatServices } from '../src/cli/services';
import type { ServiceSpec } from '../src/domain/types';
import { labUp, labDown, readLabState } from '../src/lab/lab';
import { startTraffic, type TrafficSummary } from '../src/lab/traffic';
import { BpfMap } from '../src/bpf';
import { LB, LbBackendCodec, LbServiceCodec, LbServiceKeyCodec, encodeU32, decodeU32 } from '../src/dataplane/abi';
import { pinnedTableOuterValue } from '../src/dataplane/maglev-tables';
import { kernelTestSkip } from './support/kernel-env';

const PREFIX = 'xlbt-hc';
const PIN_DIR = '/sys/fs/bpf/xlbt-hc-lab';
const API_PORT = 8781;
const FORWARD_PORT = 8782;
const TOKEN = 'xlbt-hc-lab-token-0123456789';
const VIP = '198.18.100.1';
const BE1 = '198.18.1.11:8080';
const BE2 = '198.18.1.12:8080';
const BE3 = '198.18.1.13:8080';
const INTERVAL_MS = 200;
const RISE = 3;

const skipReason = kernelTestSkip('the health lab test');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, cond: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** What the kernel holds for the service: backends in its Maglev table and backends with ACTIVE set. */
function kernelView(): { inTable: Set<string>; active: Set<string> } {
  const open = (name: string) => BpfMap.fromPin(path.join(PIN_DIR, 'maps', name));
  const services = open('services');
  const maglev = open('maglev');
  const backends = open('backends');
  const inTable = new Set<string>();
  const active = new Set<string>();
  try {
    const svc = services.lookup(LbServiceKeyCodec.encode({ vip: VIP, port: 80, proto: 6 }));
    if (!svc) return { inTable, active };
    const id = LbServiceCodec.decode(svc).id;
    const describe = (backendId: number): string | null => {
      const v = backends.lookup(encodeU32(backendId));
      if (!v) return null;
      const b = LbBackendCodec.decode(v);
      return `${b.ip}:${b.port}`;
    };
    for (const key of backends.keys()) {
      const v = backends.lookup(key);
      if (!v) continue;
      const b = LbBackendCodec.decode(v);
      if (b.serviceId === id && (b.flags & LB.BACKEND_F_ACTIVE) !== 0) active.add(`${b.ip}:${b.port}`);
    }
    const outer = pinnedTableOuterValue(path.join(PIN_DIR, 'maps'), id);
    if (!outer) return { inTable, active };
    const inner = BpfMap.fromId(decodeU32(outer));
    try {
      const ids = new Set<number>();
      for (const [, value] of inner.lookupBatch()) ids.add(decodeU32(value) & LB.SLOT_ID_MASK); // without the moved bit (a slot in a transition)
      for (const backendId of ids) {
        const name = describe(backendId);
        if (name) inTable.add(name);
      }
    } finally { inner.close(); }
  } finally {
    services.close(); maglev.close(); backends.close();
  }
  return { inTable, active };
}

/** Samples kernelView() every ~25 ms until stop(); each sample with its time. */
function watchKernel(): { samples: Array<{ at: number; inTable: Set<string>; active: Set<string> }>; stop(): void } {
  const samples: Array<{ at: number; inTable: Set<string>; active: Set<string> }> = [];
  let running = true;
  const deadline = Date.now() + 60_000;
  void (async () => {
    while (running && Date.now() < deadline) {
      // Stamped when the read has finished: a sample shows the kernel at some time before `at`.
      try { const view = kernelView(); samples.push({ at: Date.now(), ...view }); } catch { /* pins replaced mid-read: next sample */ }
      await sleep(25);
    }
  })();
  return { samples, stop: () => { running = false; } };
}

function killServer(host: string): void {
  const pid = readLabState(PREFIX)!.servers[host].pid;
  process.kill(pid, 'SIGKILL');
}

/** Flips a lab backend server's /healthz (its /admin/health endpoint on port 80), from the lb namespace. */
function setServerHealth(address: string, state: 'up' | 'down'): void {
  execFileSync('ip', ['netns', 'exec', `${PREFIX}-lb`, 'curl', '-sf', '-m', '3', `http://${address}:80/admin/health?state=${state}`], { stdio: 'ignore' });
}

function describeTraffic(s: TrafficSummary): string {
  return `sent ${s.sent} ok ${s.ok} failed ${s.failed} skipped ${s.skipped} by ${JSON.stringify(s.byBackend)} errors ${s.errors.join('; ')}`;
}

describe('health checks that protect, over the lab (NAT, real traffic)', { skip: skipReason }, () => {
  let tmpDir = '';
  let daemon: SpawnedDaemon | null = null;
  let configPath = '';
  const api = new ApiClient({ baseUrl: `http://127.0.0.1:${FORWARD_PORT}`, token: TOKEN });
  const health = async (key: string) => (await api.getService('web')).backends.find((b) => b.key === key)?.health;

  before(async () => {
    await labDown(PREFIX).catch(() => undefined);
    fs.rmSync(PIN_DIR, { recursive: true, force: true });
    tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'xlbt-hc-'));
    await labUp({ prefix: PREFIX, backends: 3, mode: 'nat', forwardPort: FORWARD_PORT, apiPort: API_PORT });
    configPath = path.join(tmpDir, 'xdplb.yaml');
    fs.writeFileSync(configPath, YAML.stringify({
      interfaces: [{ name: `${PREFIX}-lb0`, mode: 'native' }, { name: `${PREFIX}-lb1`, mode: 'native' }],
      api: { listen: `127.0.0.1:${API_PORT}` },
      tokens: [{ name: 'test', role: 'admin', token: TOKEN }],
      services: [{
        name: 'web', vip: VIP, port: 80, protocol: 'tcp', mode: 'nat', tableSize: 251,
        // Probed on the backends' second port (docs/operations.md: reverse NAT and checks).
        healthCheck: { type: 'http', port: 80, path: '/healthz', intervalMs: INTERVAL_MS, timeoutMs: 150, rise: RISE, fall: 2 },
        backends: [{ address: '198.18.1.11', port: 8080, weight: 1 }, { address: '198.18.1.12', port: 8080, weight: 1 }],
      }],
    }));
    daemon = spawnDaemon({ configPath, pinDir: PIN_DIR, netns: `${PREFIX}-lb`, detachOnExit: true });
    await daemon.ready(30_000);
  });

  after(async () => {
    if (daemon) await daemon.stop().catch(() => daemon?.kill());
    fs.rmSync(PIN_DIR, { recursive: true, force: true });
    await labDown(PREFIX).catch(() => undefined);
    if (tmpDir) fs.rmSync(tmpDir, { recursive: true, force: true });
  });

  test('a backend where nothing listens never enters the table, under 50 new connections/s, with 0 failures', async () => {
    await until('be1 and be2 up', async () => (await health(BE1)) === 'up' && (await health(BE2)) === 'up');
    killServer('be3');   // nothing listens on 198.18.1.13 now
    const watch = watchKernel();
    const run = startTraffic({ prefix: PREFIX, kind: 'http', target: `http://${VIP}/`, durationSec: 5, rps: 50 });
    await sleep(1000);
    const added = await api.addBackend('web', { address: '198.18.1.13', port: 8080, weight: 1 });
    const be3 = added.backends.find((b) => b.key === BE3)!;
    assert.equal(be3.health, 'checking');
    assert.equal(be3.inTable, false);
    await until('be3 checked down', async () => (await health(BE3)) === 'down');
    const summary = await run.done;
    watch.stop();
    assert.equal(summary.failed, 0, describeTraffic(summary));
    assert.ok(summary.ok >= 150, describeTraffic(summary));
    assert.deepEqual(Object.keys(summary.byBackend).sort(), ['be1', 'be2'], describeTraffic(summary));
    assert.ok(watch.samples.length >= 20, `kernel samples: ${watch.samples.length}`);
    assert.ok(watch.samples.every((s) => !s.inTable.has(BE3) && !s.active.has(BE3)), 'be3 never in the kernel table nor ACTIVE');
    assert.ok(watch.samples.every((s) => s.inTable.has(BE1) && s.inTable.has(BE2)), 'be1 and be2 always in the table');
    await api.deleteBackend('web', BE3);
  });

  test('a live backend enters the table only after `rise` checks', async () => {
    await labUp({ prefix: PREFIX, backends: 3, mode: 'nat', forwardPort: FORWARD_PORT, apiPort: API_PORT });   // be3 serves again
    const watch = watchKernel();
    const run = startTraffic({ prefix: PREFIX, kind: 'http', target: `http://${VIP}/`, durationSec: 4, rps: 50 });
    await sleep(500);
    const addedAt = Date.now();
    const added = await api.addBackend('web', { address: '198.18.1.13', port: 8080, weight: 1 });
    assert.equal(added.backends.find((b) => b.key === BE3)!.health, 'checking');
    await until('be3 in the kernel table', () => kernelView().inTable.has(BE3), 5000);
    const enteredAt = Date.now();
    const summary = await run.done;
    watch.stop();
    // RISE probes, INTERVAL_MS apart: the first at once, the last (RISE-1) intervals later.
    assert.ok(enteredAt - addedAt >= (RISE - 1) * INTERVAL_MS, `entered after ${enteredAt - addedAt} ms`);
    const firstIn = watch.samples.find((s) => s.inTable.has(BE3));
    assert.ok(firstIn && firstIn.at - addedAt >= (RISE - 1) * INTERVAL_MS, `first seen in the table ${firstIn ? firstIn.at - addedAt : '-'} ms after the add`);
    const up = daemon!.logs.find((l) => l.msg === 'backend health changed' && l.backend === BE3 && l.health === 'up' && l.previous === 'checking');
    assert.ok(up, 'the daemon logged be3 checking -> up');
    assert.equal(summary.failed, 0, describeTraffic(summary));
    assert.ok((summary.byBackend.be3 ?? 0) > 0, `be3 took traffic once in: ${describeTraffic(summary)}`);
    const view = await api.getService('web');
    assert.equal(view.backends.find((b) => b.key === BE3)!.inTable, true);
  });

  test('kill -9 and restart with one backend down and two up, under traffic: 0 failures, the down one stays out until its checks pass', async () => {
    // be3 down: its server dies; checked out.
    killServer('be3');
    await until('be3 down', async () => (await health(BE3)) === 'down');
    const watch = watchKernel();
    const run = startTraffic({ prefix: PREFIX, kind: 'http', target: `http://${VIP}/`, durationSec: 6, rps: 50 });
    await sleep(1000);
    assert.equal((await daemon!.kill()).signal, 'SIGKILL');
    // While no daemon runs, be3's server comes back: only checks may let it in again.
    await labUp({ prefix: PREFIX, backends: 3, mode: 'nat', forwardPort: FORWARD_PORT, apiPort: API_PORT });
    const restartAt = Date.now();
    daemon = spawnDaemon({ configPath, pinDir: PIN_DIR, netns: `${PREFIX}-lb`, detachOnExit: true });
    await daemon.ready(30_000);
    assert.equal(daemon.logs.find((l) => l.msg === 'initial state applied')?.writes, 0, 'the restored verdicts match the kernel: nothing written');
    const upLog = await daemon.waitForLog((l) => l.msg === 'backend health changed' && l.backend === BE3 && l.health === 'up', 15_000);
    assert.equal(upLog.previous, 'down', 'be3 restored down from the kernel, not reset');
    await until('be3 in the kernel table', () => kernelView().inTable.has(BE3), 5000);
    const summary = await run.done;
    watch.stop();
    assert.equal(summary.failed, 0, describeTraffic(summary));
    assert.ok(summary.ok >= 150, describeTraffic(summary));
    const upAt = Number(upLog.time);
    assert.ok(Number.isFinite(upAt) && upAt >= restartAt, `be3 up at ${upAt}, restart at ${restartAt}`);
    const early = watch.samples.filter((s) => s.at < upAt && (s.inTable.has(BE3) || s.active.has(BE3)));
    assert.deepEqual(early.map((s) => `${s.at - upAt} ms: table ${s.inTable.has(BE3)} active ${s.active.has(BE3)}`), [],
      'be3 never in the table before its checks passed');
    assert.ok(watch.samples.every((s) => s.inTable.has(BE1) && s.inTable.has(BE2)), 'be1 and be2 never left the table');
    // The restored verdicts are shown as such: be1/be2 were up all along.
    const first = daemon.logs.filter((l) => l.msg === 'backend health changed' && (l.backend === BE1 || l.backend === BE2));
    assert.deepEqual(first, [], 'be1/be2 kept their verdict (no transition after the restart)');
  });
  /** The web service as configured, with another health check. */
  async function webWithCheck(check: Partial<NonNullable<ServiceSpec['healthCheck']>>): Promise<void> {
    const { id: _id, backends, ...rest } = await api.getService('web');
    void _id;
    const spec: ServiceSpec = {
      ...rest,
      backends: backends.map((b) => ({ address: b.address, port: b.port, weight: b.weight, ...(b.drain ? { drain: true } : {}) })),
      healthCheck: { ...rest.healthCheck!, ...check },
    };
    await api.replaceService('web', spec);
  }

  test('flap damping: a flapping backend is held down for the hold time, with the reason shown, then returns', async () => {
    await until('be3 up', async () => (await health(BE3)) === 'up', 15_000);
    await webWithCheck({ rise: 1, fall: 1, flap: { maxFlips: 2, windowMs: 30_000, holdMs: 4000 } });
    assert.equal(await health(BE3), 'up', 'a changed check keeps the verdict');
    const be3 = '198.18.1.13';
    setServerHealth(be3, 'down');
    await until('flip 1: down', async () => (await health(BE3)) === 'down');
    setServerHealth(be3, 'up');
    await until('flip 2: up', async () => (await health(BE3)) === 'up');
    setServerHealth(be3, 'down');   // flip 3 > maxFlips 2: held
    await until('flip 3: held down', async () => (await api.getService('web')).backends.find((b) => b.key === BE3)!.healthReason !== undefined);
    const heldAt = Date.now();
    setServerHealth(be3, 'up');     // healthy again at once: the hold keeps it out
    const view = (await api.getService('web')).backends.find((b) => b.key === BE3)!;
    assert.equal(view.health, 'down');
    assert.match(view.healthReason!, /^flapping: 3 changes within 30 s, held down for 4 s$/);
    assert.ok(view.heldUntil! > Date.now() && view.heldUntil! <= heldAt + 4000 + 500, `heldUntil ${view.heldUntil}`);
    const table = formatServices([await api.getService('web')]);
    assert.match(table, /held-until-\d\d:\d\d:\d\d/);
    assert.match(table, /web 198\.18\.1\.13:8080: flapping: 3 changes/);
    const watch = watchKernel();
    await until('be3 back after the hold', async () => (await health(BE3)) === 'up', 8000);
    const backAt = Date.now();
    watch.stop();
    assert.ok(backAt >= view.heldUntil!, `up again ${backAt - view.heldUntil!} ms after the hold ended`);
    assert.ok(backAt <= view.heldUntil! + 2000, `up again ${backAt - view.heldUntil!} ms after the hold ended`);
    const during = watch.samples.filter((s) => s.at < view.heldUntil! - 50);
    assert.ok(during.length >= 20, `samples during the hold: ${during.length}`);
    assert.ok(during.every((s) => !s.inTable.has(BE3)), 'be3 stayed out of the kernel table while held, though its checks passed');
    assert.equal((await api.getService('web')).backends.find((b) => b.key === BE3)!.healthReason, undefined);
  });

  test('slow start: the share of new connections to a recovering backend rises in steps', async (t) => {
    // Each step leaves ~3.5 s after its 1.5 s of traffic: on a loaded CI run the traffic run's
    // start-up and end took long enough with 3 s steps that the next step's table was measured
    // after the one after it (table shares 0.247, 0.498, 0.498).
    const STEP_MS = 5000;
    const STEPS = 3;
    await api.patchBackend('web', BE2, { drain: true });   // two backends in the table: be1 and be3
    await webWithCheck({ rise: 1, fall: 1, flap: { holdMs: 0 }, slowStart: { durationMs: STEP_MS * STEPS, steps: STEPS } });
    await until('be3 up', async () => (await health(BE3)) === 'up', 8000);
    setServerHealth('198.18.1.13', 'down');
    await until('be3 down', async () => (await health(BE3)) === 'down');
    const logsBefore = daemon!.logs.length;
    setServerHealth('198.18.1.13', 'up');
    const upLog = await daemon!.waitForLog((l) => daemon!.logs.indexOf(l) >= logsBefore && l.msg === 'backend health changed' && l.backend === BE3 && l.health === 'up', 5000);
    const upAt = Number(upLog.time);
    const measured: number[] = [];
    const tableShares: number[] = [];
    // be3 at k/3 of be1's weight: 1/4, 2/5, 3/6 of the slots, then 1/2 for good.
    const expected = [1 / 4, 2 / 5, 1 / 2, 1 / 2];
    const share3 = async () => (await api.getService('web')).backends.find((b) => b.key === BE3)!.tableShare;
    // When each measurement began (ms after the up verdict), printed with the daemon's be3 lines on a failure.
    const began: number[] = [];
    for (let k = 0; k < STEPS; k++) {
      const wait = upAt + k * STEP_MS + 300 - Date.now();
      if (wait > 0) await sleep(wait);
      began.push(Date.now() - upAt);
      // A step's timer may fire late on a loaded machine: wait (bounded) for the step's table
      // before measuring it; the share itself is still asserted below.
      const by = Date.now() + STEP_MS;
      while (Math.abs((await share3()) - expected[k]) >= 0.01 && Date.now() < by) await sleep(50);
      tableShares.push(await share3());
      const s = await startTraffic({ prefix: PREFIX, kind: 'http', target: `http://${VIP}/`, durationSec: 1.5, rps: 200 }).done;
      assert.equal(s.failed, 0, describeTraffic(s));
      assert.ok(s.ok >= 200, describeTraffic(s));
      measured.push((s.byBackend.be3 ?? 0) / s.ok);
    }
    await sleep(Math.max(0, upAt + STEPS * STEP_MS + 300 - Date.now()));
    tableShares.push((await api.getService('web')).backends.find((b) => b.key === BE3)!.tableShare);
    const full = await startTraffic({ prefix: PREFIX, kind: 'http', target: `http://${VIP}/`, durationSec: 1.5, rps: 200 }).done;
    measured.push((full.byBackend.be3 ?? 0) / full.ok);
    // The daemon's lines about be3 since the up verdict (health changes, weight steps, reconciles), ms after it.
    const be3Lines = daemon!.logs.filter((l) => daemon!.logs.indexOf(l) >= logsBefore && (l.backend === BE3 || /reconcile|kernel refused/.test(String(l.msg))))
      .map((l) => `${Number(l.time) - upAt} ms ${l.msg}${l.step ? ` ${l.step}/${l.steps}` : ''}${l.health ? ` ${l.health}` : ''}`);
    const msg = `table shares ${tableShares.map((x) => x.toFixed(3))}, measured ${measured.map((x) => x.toFixed(3))}; measurements began at ${began.join(', ')} ms; daemon: ${be3Lines.join('; ')}`;
    t.diagnostic(msg);
    tableShares.forEach((share, i) => assert.ok(Math.abs(share - expected[i]) < 0.01, msg));
    measured.forEach((share, i) => assert.ok(Math.abs(share - expected[i]) < 0.12, msg));
    assert.ok(measured[0] < measured[1] && measured[0] < measured[2], msg);
    const steps = daemon!.logs.filter((l) => daemon!.logs.indexOf(l) >= logsBefore && l.msg === 'slow start: backend weight step' && l.backend === BE3);
    assert.deepEqual(steps.map((l) => `${l.step}/${l.steps}`), ['2/3', '1/1'], 'one table swap per step');
  });
});

describe('DSR health checks probe the VIP through each backend (lab, prefix xlbt-hc in DSR mode)', { skip: skipReason }, () => {
  let tmpDir = '';
  let daemon: SpawnedDaemon | null = null;
  const api = new ApiClient({ baseUrl: `http://127.0.0.1:${FORWARD_PORT}`, token: TOKEN });
  const DSR_BE1 = '198.18.1.11:80';
  const DSR_BE2 = '198.18.1.12:80';
  const CHECK = { intervalMs: INTERVAL_MS, timeoutMs: 150, rise: 2, fall: 2 };
  const health = async (key: string) => (await api.getService('webdsr')).backends.find((b) => b.key === key)?.health;
  const probeRules = () => execFileSync('ip', ['-n', `${PREFIX}-lb`, 'rule', 'show', 'pref', '3217'], { encoding: 'utf8' }).trim();
  const vipOnLo = (host: string, op: 'add' | 'del') => execFileSync('ip', ['-n', `${PREFIX}-${host}`, 'addr', op, `${VIP}/32`, 'dev', 'lo']);

  before(async () => {
    await labDown(PREFIX).catch(() => undefined);
    fs.rmSync(PIN_DIR, { recursive: true, force: true });
    tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'xlbt-hc-'));
    await labUp({ prefix: PREFIX, backends: 2, mode: 'dsr', vips: [VIP], forwardPort: FORWARD_PORT, apiPort: API_PORT });
    const configPath = path.join(tmpDir, 'xdplb.yaml');
    fs.writeFileSync(configPath, YAML.stringify({
      interfaces: [{ name: `${PREFIX}-lb0`, mode: 'native' }, { name: `${PREFIX}-lb1`, mode: 'native' }],
      api: { listen: `127.0.0.1:${API_PORT}` },
      tokens: [{ name: 'test', role: 'admin', token: TOKEN }],
      services: [{
        name: 'webdsr', vip: VIP, port: 80, protocol: 'tcp', mode: 'dsr', tableSize: 251,
        healthCheck: { type: 'http', path: '/healthz', ...CHECK },
        backends: [{ address: '198.18.1.11', port: 80, weight: 1 }, { address: '198.18.1.12', port: 80, weight: 1 }],
      }],
    }));
    daemon = spawnDaemon({ configPath, pinDir: PIN_DIR, netns: `${PREFIX}-lb`, detachOnExit: true });
    await daemon.ready(30_000);
  });

  after(async () => {
    if (daemon) await daemon.stop().catch(() => daemon?.kill());
    fs.rmSync(PIN_DIR, { recursive: true, force: true });
    await labDown(PREFIX).catch(() => undefined);
    if (tmpDir) fs.rmSync(tmpDir, { recursive: true, force: true });
  });

  test('a DSR backend without the VIP on lo is down within its budget, with it up; no failure once it is out', async (t) => {
    await until('both DSR backends up', async () => (await health(DSR_BE1)) === 'up' && (await health(DSR_BE2)) === 'up');
    assert.equal(probeRules().split('\n').length, 3, `one probe rule per backend, one to ARP for the VIP: ${probeRules()}`);
    const run = startTraffic({ prefix: PREFIX, kind: 'http', target: `http://${VIP}/`, durationSec: 5, rps: 50 });
    await sleep(500);
    vipOnLo('be2', 'del');   // be2 still answers on its own address, but no longer serves the VIP
    const removedAt = Date.now();
    // fall probes, interval apart, each failing by its timeout at the latest (+ one interval in flight)
    const budget = (CHECK.fall + 1) * CHECK.intervalMs + CHECK.timeoutMs;
    await until('be2 down', async () => (await health(DSR_BE2)) === 'down', budget + 3000);
    const tookMs = Date.now() - removedAt;
    assert.ok(tookMs <= budget + 300, `be2 detected down after ${tookMs} ms (budget ${budget} ms)`);
    const status = await api.getService('webdsr');
    assert.equal(status.backends.find((b) => b.key === DSR_BE2)!.inTable, false);
    assert.equal(await health(DSR_BE1), 'up');
    const during = await run.done;
    // Connections sent to be2 before it left the table fail (it no longer accepts the VIP):
    // that is what the check protects against; afterwards everything goes to be1.
    const after = await startTraffic({ prefix: PREFIX, kind: 'http', target: `http://${VIP}/`, durationSec: 2, rps: 50 }).done;
    assert.equal(after.failed, 0, describeTraffic(after));
    assert.deepEqual(Object.keys(after.byBackend), ['be1'], describeTraffic(after));
    assert.ok(during.ok > 0, describeTraffic(during));
    t.diagnostic(`during detection: ${describeTraffic(during)}`);

    vipOnLo('be2', 'add');
    const restoredAt = Date.now();
    await until('be2 up again', async () => (await health(DSR_BE2)) === 'up', 5000);
    assert.ok(Date.now() - restoredAt >= (CHECK.rise - 1) * CHECK.intervalMs - 50, 'not before rise probes');
    await until('be2 in the kernel table', () => kernelView().inTable.has(DSR_BE2), 3000);
    const both = await startTraffic({ prefix: PREFIX, kind: 'http', target: `http://${VIP}/`, durationSec: 2, rps: 50 }).done;
    assert.equal(both.failed, 0, describeTraffic(both));
    assert.deepEqual(Object.keys(both.byBackend).sort(), ['be1', 'be2'], describeTraffic(both));
  });

  test('a DSR backend that answers ARP for the VIP is detected down; fixed, it is up again', async () => {
    await until('both DSR backends up', async () => (await health(DSR_BE1)) === 'up' && (await health(DSR_BE2)) === 'up');
    const arpIgnore = (value: 0 | 1) => execFileSync('ip', ['netns', 'exec', `${PREFIX}-be2`, 'sysctl', '-q', '-w',
      `net.ipv4.conf.all.arp_ignore=${value}`, `net.ipv4.conf.${PREFIX}-b2.arp_ignore=${value}`]);
    arpIgnore(0);   // be2 now answers ARP for the VIP on its lo (the mistake IPVS-DR setups guard against)
    const brokenAt = Date.now();
    try {
      // one ARP round per interval, counted from the next probe: fall + 2 intervals, + the timeout
      const budget = (CHECK.fall + 2) * CHECK.intervalMs + CHECK.timeoutMs;
      await until('be2 down', async () => (await health(DSR_BE2)) === 'down', budget + 3000);
      const tookMs = Date.now() - brokenAt;
      assert.ok(tookMs <= budget + 300, `be2 detected down after ${tookMs} ms (budget ${budget} ms)`);
      assert.equal(await health(DSR_BE1), 'up', 'be1 does not answer ARP for the VIP');
      const down = daemon!.logs.find((l) => l.msg === 'backend health changed' && l.backend === DSR_BE2 && l.health === 'down' && Number(l.time) >= brokenAt);
      assert.match(String(down?.detail), /^answers ARP for the VIP 198\.18\.100\.1 \([0-9a-f:]{17} on xlbt-hc-lb1\)$/);
    } finally {
      arpIgnore(1);
    }
    await until('be2 up again', async () => (await health(DSR_BE2)) === 'up', 5000);
  });

  test('a daemon stop removes its probe rules', async () => {
    assert.notEqual(probeRules(), '');
    await daemon!.stop();
    daemon = null;
    assert.equal(probeRules(), '');
  });
});

