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
import YAML from 'yaml';
import { spawnDaemon, type SpawnedDaemon } from '../src/daemon/spawn';
import { ApiClient } from '../src/cli/client';
import { labUp, labDown, readLabState } from '../src/lab/lab';
import { startTraffic, type TrafficSummary } from '../src/lab/traffic';
import { BpfMap } from '../src/bpf';
import { LB, LbBackendCodec, LbServiceCodec, LbServiceKeyCodec, encodeU32, decodeU32 } from '../src/dataplane/abi';
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
    const outer = maglev.lookup(encodeU32(id));
    if (!outer) return { inTable, active };
    const inner = BpfMap.fromId(decodeU32(outer));
    try {
      const ids = new Set<number>();
      for (const [, value] of inner.lookupBatch()) ids.add(decodeU32(value));
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
      try { samples.push({ at: Date.now(), ...kernelView() }); } catch { /* pins replaced mid-read: next sample */ }
      await sleep(25);
    }
  })();
  return { samples, stop: () => { running = false; } };
}

function killServer(host: string): void {
  const pid = readLabState(PREFIX)!.servers[host].pid;
  process.kill(pid, 'SIGKILL');
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
    assert.deepEqual(early.map((s) => s.at), [], 'be3 never in the table before its checks passed');
    assert.ok(watch.samples.every((s) => s.inTable.has(BE1) && s.inTable.has(BE2)), 'be1 and be2 never left the table');
    // The restored verdicts are shown as such: be1/be2 were up all along.
    const first = daemon.logs.filter((l) => l.msg === 'backend health changed' && (l.backend === BE1 || l.backend === BE2));
    assert.deepEqual(first, [], 'be1/be2 kept their verdict (no transition after the restart)');
  });
});
