/**
 * `xdplb bench control`: the control plane's speed and the cost of watching.
 * - API change -> kernel: PATCH a backend's drain flag through the daemon's API, poll the pinned
 *   maps (bridge) until the backend's flags and a new Maglev table are both in the kernel.
 * - Maglev build time for M = 65537 at 10, 100 and 1000 backends.
 * - Observability cost: xdplb nat Mpps and lb CPU per packet with a 1 Hz counter reader and
 *   1/1000 event sampling (consumed by a separate process) on vs off, interleaved.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { createServer as createHttpServer, request as httpRequest, Agent as HttpAgent, type Server as HttpServer } from 'node:http';
import { readdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { stringify as toYaml } from 'yaml';
import { BpfMap } from '../bpf';
import { buildMaglevTable, maglevEngine, type MaglevEngine } from '../balancer/maglev';
import { MaglevOuterMaps } from '../dataplane/maglev-tables';
import { buildMaglevTablesOffThread } from '../balancer/maglev-offthread';
import { parseServerTiming, CHANGE_STEPS } from '../domain/timing';
import { Dataplane } from '../dataplane/dataplane';
import { Balancer } from '../balancer/balancer';
import { spawnDaemon } from '../daemon/spawn';
import { inNetns } from '../bpf';
import { BenchPrograms } from './generator';
import { setUpForwardTopology, tearDownForwardTopology, type ForwardTopology } from './forward-topology';
import { measureForwardRep, type ForwardRep } from './forward';
import { benchState, BENCH_TABLE_SIZE } from './xdplb-cases';
import { percentile, ratio, summarize, type Summary } from './stats';
import { withBenchLock } from './lock';
import { sleep, stopProcess, trackChild } from './exec';
import { BENCH_PREFIX, createNamespace, deleteNamespace, tasksCpuNs } from './netns';
import { run } from './exec';
import { LbServiceCodec, LbServiceKeyCodec, LbBackendCodec, LB } from '../dataplane/abi';
import { observerCommand } from './observer';

export const CONTROL_PIN_DIR = `/sys/fs/bpf/${BENCH_PREFIX}-ctl`;
export const OBSERVE_PIN_DIR = `/sys/fs/bpf/${BENCH_PREFIX}-obs`;
/** lb_backend.flags offset and LB_BACKEND_F_DRAINING (bpf/lb_abi.h). */
const BACKEND_FLAGS_OFFSET = 6;
const BACKEND_F_DRAINING = 2;

export interface ControlOptions {
  changes?: number;
  /** Upper bound of the API part, seconds. */
  changeSeconds?: number;
  maglevReps?: number;
  observeReps?: number;
  /** Packets per observability repetition (default 10 M: a few seconds, so the 1 Hz reader reads). */
  packets?: number;
  seconds?: number;
  /** Health detection flips (default 200: its p99 is then the 3rd slowest, not the slowest) and seconds of the 1000-backend CPU window (default 10; 0 = skip). */
  healthFlips?: number;
  cpuSeconds?: number;
  /** Which parts to run (default all): api (API -> kernel), maglev, health, observability. */
  parts?: ControlPart[];
  onProgress?: (message: string) => void;
}

export const CONTROL_PARTS = ['api', 'maglev', 'health', 'observability'] as const;
export type ControlPart = typeof CONTROL_PARTS[number];

export interface ControlReport {
  kind: 'control';
  apiToKernel: {
    changes: number; p50Ms: number; p99Ms: number; maxMs: number;
    /** Until the HTTP response arrived (at or after the kernel held the change, as measured). */
    responseP50Ms: number; responseP99Ms: number;
    backends: number; tableSize: number;
    /**
     * Where the time went, per part (ms, p50/p99 over the changes): the daemon's steps from its
     * Server-Timing header (http: request in until the handler; queue: waiting for earlier
     * changes; validate; persist: config written and fsynced under a temporary name; build: Maglev;
     * maps: the rest of the reconcile, map reads and writes; commit: rename into place; respond),
     * and the client's: request (sent until the daemon's first hook), poll (maps held until the
     * benchmark's poll saw it), answer (daemon done until the response arrived). Sum of the
     * server steps + request + answer = the response time.
     */
    breakdown: Array<{ part: string; p50Ms: number; p99Ms: number; meanMs: number }>;
    /**
     * Bulk: one PATCH /api/v1/state/backends draining (then undraining) `backendsPerChange` of
     * the `poolSize` backends of a second service (M = 65537), timed until the kernel holds the
     * new table and the last backend's flags; null when it did not run.
     */
    bulk: { changes: number; backendsPerChange: number; poolSize: number; p50Ms: number; p99Ms: number; responseP50Ms: number; responseP99Ms: number;
      /** The daemon's steps (Server-Timing), p50 ms each. */
      stepsP50Ms: Record<string, number>;
      /** Each change's time to the kernel (ms, in order) and its slowest daemon step: with 20 changes the p99 is one of them. */
      each: Array<{ ms: number; slowestStep: string; stepMs: number }> } | null;
  } | null;
  /** engine: the one the daemon uses ('native' where the addon is built) and, beside it, the TypeScript loop. */
  maglev: Array<{ backends: number; tableSize: number; ms: Summary; offThread?: boolean; engine: MaglevEngine }>;
  /**
   * Health: the daemon in a namespace of its own checking backends that are an HTTP server of the
   * benchmark's (every address of a /22 on the namespace's lo). Detection: a backend of 10 (M =
   * 65537, http checks every 250 ms, fall = rise = 1) answers 503 (then 200 again); timed from
   * the benchmark's answer to the deciding probe until the kernel holds the verdict. CPU: the
   * daemon's CPU time (every thread, schedstat) over `cpuSeconds` with 1000 backends checked
   * every second (http), as a share of one CPU: `cpu` with the default check (healthCheck.reuseConnection:
   * one kept-alive connection per backend), `cpuFresh` with reuseConnection: false (a new connection per probe).
   */
  health: {
    flips: number; p50Ms: number; p99Ms: number; maxMs: number;
    /** healthChanges: verdicts that changed in the window (each one a reconcile; 0 on a quiet machine). */
    cpu: { backends: number; intervalMs: number; seconds: number; probes: number; cpuShare: number; healthChanges: number } | null;
    cpuFresh?: { backends: number; intervalMs: number; seconds: number; probes: number; cpuShare: number; healthChanges: number } | null;
  } | null;
  observability: {
    off: { mpps: Summary; lbCpuNsPerPacket: Summary } | null;
    on: { mpps: Summary; lbCpuNsPerPacket: Summary; statsReads: number; events: number } | null;
    sampleRate: number;
    /** 1 - median over the off/on pairs of on/off Mpps; the target is <= 3 %. */
    mppsCost: number | null;
    /** median over the pairs of on/off lb CPU per packet, - 1. */
    cpuCost: number | null;
    reps: number;
  } | null;
  failures: Array<{ part: string; error: string }>;
  targets: Array<{ description: string; value: number | null; limit: number; met: boolean | null; unit?: 'ms' }>;
  method: string;
}

export const CONTROL_METHOD = 'API->kernel: xdplb daemon (own config, pin dir, API on a free loopback port, no interface attached); '
  + 'each change is PATCH drain=true/false of one of 10 backends, timed from before the request until the pinned backends map '
  + 'holds the new flags and the last slot the change writes holds its new backend (the slots are written in one batch in slot order; '
  + 'polled through the bridge every ~50-100 us, the thread sleeping between polls; the whole table is compared with the expected one after the run). '
  + 'Maglev: buildMaglevTable in-process, median of 11 after 3 warm-up builds, with the engine the daemon uses (the addon\'s turn loop where it is built) and the TypeScript loop beside it; M=1048573 on the shared worker thread. '
  + 'Breakdown: the daemon\'s Server-Timing steps of each change, plus request/answer transit and the poll delay measured here. '
  + 'Observability: forward topology, xdplb nat, '
  + 'interleaved off (sampling 0, no reader) / on (sampling 1/1000, a separate process reading counters at 1 Hz and draining the ring); '
  + 'cost = median over adjacent off/on pairs.';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

async function api(url: string, token: string, method: string, path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(url + path, {
    method, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 300)}`);
  return text ? JSON.parse(text) : null;
}

/** One kept-alive connection for the timed changes: a change's request leaves in the tick it is made. */
const timedAgent = new HttpAgent({ keepAlive: true, maxSockets: 1 });

/**
 * api() that also returns the answer's Server-Timing header, through node:http on a kept-alive
 * connection: the request is written before the caller's next await (fetch() took several
 * event-loop turns, ~0.2-0.3 ms, before its bytes left; that is the client library, not the
 * daemon).
 */
function apiTimed(url: string, token: string, method: string, path: string, body?: unknown): Promise<{ body: unknown; timing: string | null }> {
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = httpRequest(url + path, {
      method, agent: timedAgent,
      headers: { authorization: `Bearer ${token}`, ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}) },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if ((res.statusCode ?? 0) < 200 || (res.statusCode ?? 0) >= 300) { reject(new Error(`${method} ${path}: ${res.statusCode} ${text.slice(0, 300)}`)); return; }
        try {
          const timing = res.headers['server-timing'];
          resolve({ body: text ? JSON.parse(text) : null, timing: Array.isArray(timing) ? timing.join(', ') : timing ?? null });
        } catch (err) { reject(err as Error); }
      });
    });
    req.setTimeout(30_000, () => req.destroy(new Error(`${method} ${path}: no answer after 30 s`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/**
 * One service's Maglev table in the pinned maps, polled slot by slot (the inner array is opened
 * once, again only when the outer entry changed).
 */
class TableProbe {
  private inner: BpfMap | null = null;
  private innerId = 0;
  private readonly key = Buffer.alloc(4);
  constructor(private readonly maglev: { lookup(key: Buffer): Buffer | null }, serviceId: number) { this.key.writeUInt32LE(serviceId, 0); }
  private table(): BpfMap | null {
    const id = this.maglev.lookup(this.key)?.readUInt32LE(0) ?? 0;
    if (id !== this.innerId) {
      this.inner?.close();
      this.inner = null;
      this.innerId = id;
      if (id) { try { this.inner = BpfMap.fromId(id); } catch { this.innerId = 0; } }
    }
    return this.inner;
  }
  /** The backend id in slot `i` (without LB_SLOT_MOVED), or null when there is no table. */
  private readonly slotKey = Buffer.alloc(4);
  slot(i: number): number | null {
    this.slotKey.writeUInt32LE(i, 0);
    const v = this.table()?.lookup(this.slotKey);
    return v ? v.readUInt32LE(0) & 0x7fffffff : null;
  }
  /** Every slot's backend id (without LB_SLOT_MOVED). */
  all(): Uint32Array {
    const t = this.table();
    if (!t) return new Uint32Array(0);
    const out = new Uint32Array(t.maxEntries);
    for (const [k, v] of t.lookupBatch()) out[k.readUInt32LE(0)] = v.readUInt32LE(0) & 0x7fffffff;
    return out;
  }
  close(): void { this.inner?.close(); this.inner = null; }
}

/** The backend ids by slot that the daemon's reconciler builds for this pool (equal weights, key
 * order = code-point order of "address:port", the order buildMaglevTable walks). */
function expectedIds(pool: Array<{ id: number; key: string }>, size: number): Uint32Array {
  const byKey = [...pool].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const slots = buildMaglevTable(byKey.map((b) => ({ key: b.key, weight: 1 })), size);
  return Uint32Array.from(slots, (i) => byKey[i].id);
}

/** The last slot whose backend differs: the reconciler writes a change's slots in one batch in
 * ascending slot order, so the change is in the kernel once this slot holds its new backend. */
function lastChangedSlot(before: Uint32Array, after: Uint32Array): number {
  for (let i = after.length - 1; i >= 0; i--) if (before[i] !== after[i]) return i;
  return -1;
}

/** Shared word for Atomics.wait: a sleep of microseconds that gives the CPU back (no timer). */
const NAP = new Int32Array(new SharedArrayBuffer(4));

/**
 * Waits until `held()` (a read of the real kernel maps) is true, checking it every ~50-100 us:
 * between checks the thread sleeps 50 us (Atomics.wait, the CPU goes to the daemon; not in the
 * first 0.3 ms, while the request goes out) and lets its event loop take I/O once (setImmediate:
 * the request goes out, the answer comes in). A
 * 1 ms timer between checks (setTimeout) added up to a timer tick, and a late timer's whole
 * delay, to what was measured. Bounded by `deadline` (Date.now() ms).
 * @throws the request's error when it failed; Error(`what`) after the deadline
 */
async function pollKernel(held: () => boolean, failed: () => Error | null, deadline: number, what: () => string): Promise<void> {
  const started = performance.now();
  while (!held()) {
    const err = failed();
    if (err) throw err;
    if (Date.now() > deadline) throw new Error(what());
    // Not in the first 0.3 ms: the request is still on its way out through the event loop.
    if (performance.now() - started > 0.3) Atomics.wait(NAP, 0, 0, 0.05);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/**
 * Times API changes until the kernel holds them (see the module comment).
 * @throws Error when the daemon does not start or a change is refused.
 */
export async function measureApiToKernel(changes: number, maxSeconds: number): Promise<NonNullable<ControlReport['apiToKernel']>> {
  const dir = mkdtempSync(join(tmpdir(), 'xlbb-ctl-'));
  const token = randomBytes(24).toString('hex');
  const backends = Array.from({ length: 10 }, (_, i) => ({ address: `198.18.213.${i + 1}`, port: 8080, weight: 1 }));
  const port = await freePort();
  writeFileSync(join(dir, 'config.yaml'), toYaml({
    interfaces: [], hashSeed: 0, sampling: { rate: 0 }, api: { listen: `127.0.0.1:${port}` },
    tokens: [{ name: 'bench', role: 'admin', token }],
    services: [{ name: 'bench', vip: '198.18.212.1', port: 80, protocol: 'tcp', mode: 'nat', tableSize: BENCH_TABLE_SIZE, backends }],
  }));
  rmSync(CONTROL_PIN_DIR, { recursive: true, force: true });
  const daemon = spawnDaemon({ configPath: join(dir, 'config.yaml'), pinDir: CONTROL_PIN_DIR, detachOnExit: true });
  trackChild(daemon.child);
  const opened: BpfMap[] = [];
  try {
    const url = await daemon.ready(60_000);
    const service = await api(url, token, 'GET', '/api/v1/services/bench') as { id: number; backends: Array<{ id: number; key: string }> };
    const backendsMap = BpfMap.fromPin(join(CONTROL_PIN_DIR, 'maps', 'backends'));
    opened.push(backendsMap);
    const maglevStd = BpfMap.fromPin(join(CONTROL_PIN_DIR, 'maps', 'maglev_std'));
    opened.push(maglevStd);
    const maglevGeneric = BpfMap.fromPin(join(CONTROL_PIN_DIR, 'maps', 'maglev'));
    opened.push(maglevGeneric);
    const maglevMap = new MaglevOuterMaps(maglevGeneric, maglevStd);   // a table of the default size is in maglev_std
    const key = (id: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(id, 0); return b; };
    const probe = new TableProbe(maglevMap, service.id);
    const draining = (id: number) => ((backendsMap.lookup(key(id))?.[BACKEND_FLAGS_OFFSET] ?? 0) & BACKEND_F_DRAINING) !== 0;
    const drained = new Set<number>();
    let expected = expectedIds(service.backends, BENCH_TABLE_SIZE);
    if (!probe.all().every((v, i) => v === expected[i])) throw new Error('the kernel table is not the one expected for the bench pool');
    const times: number[] = [];
    const responses: number[] = [];
    const parts = new Map<string, number[]>();
    const add = (part: string, ms: number) => { if (Number.isFinite(ms)) (parts.get(part) ?? parts.set(part, []).get(part)!).push(ms); };
    const deadline = Date.now() + maxSeconds * 1000;
    for (let i = 0; i < changes && Date.now() < deadline; i++) {
      const b = service.backends[i % service.backends.length];
      // Backend i drains on even passes over the list and comes back on odd ones.
      const drain = Math.floor(i / service.backends.length) % 2 === 0;
      if (drain) drained.add(b.id); else drained.delete(b.id);
      const next = expectedIds(service.backends.filter((x) => !drained.has(x.id)), BENCH_TABLE_SIZE);
      const slot = lastChangedSlot(expected, next);
      expected = next;
      const started = process.hrtime.bigint();
      const startedEpoch = performance.timeOrigin + performance.now();
      const request = apiTimed(url, token, 'PATCH', `/api/v1/services/bench/backends/${encodeURIComponent(b.key)}`, { drain });
      let failed: Error | null = null;
      request.catch((err: Error) => { failed = err; });
      await pollKernel(() => draining(b.id) === drain && (slot < 0 || probe.slot(slot) === expected[slot]), () => failed, Date.now() + 10_000,
        () => `change ${i} (drain=${drain} on ${b.key}) not in the kernel after 10 s`);
      const seenEpoch = performance.timeOrigin + performance.now();
      times.push(Number(process.hrtime.bigint() - started) / 1e6);
      const timing = parseServerTiming((await request).timing);
      const answeredEpoch = performance.timeOrigin + performance.now();
      responses.push(Number(process.hrtime.bigint() - started) / 1e6);
      if (timing.arrivalEpochMs !== null) {
        const serverMs = Object.values(timing.steps).reduce((a, v) => a + (v ?? 0), 0);
        add('request', timing.arrivalEpochMs - startedEpoch);
        for (const step of CHANGE_STEPS) add(step, timing.steps[step] ?? 0);
        if (timing.kernelMs !== null) add('poll', seenEpoch - (timing.arrivalEpochMs + timing.kernelMs));
        add('answer', answeredEpoch - (timing.arrivalEpochMs + serverMs));
      }
    }
    if (times.length === 0) throw new Error('no change completed');
    // The poll watched one slot: the whole table must be the expected one.
    if (!probe.all().every((v, i) => v === expected[i])) throw new Error('after the changes the kernel table is not the one expected');
    probe.close();
    const bulk = await measureBulk(url, token, backendsMap, maglevMap, Math.min(20, changes), deadline);
    return {
      changes: times.length, p50Ms: percentile(times, 50), p99Ms: percentile(times, 99), maxMs: Math.max(...times),
      responseP50Ms: percentile(responses, 50), responseP99Ms: percentile(responses, 99),
      backends: backends.length, tableSize: BENCH_TABLE_SIZE, bulk,
      breakdown: ['request', ...CHANGE_STEPS, 'answer', 'poll'].filter((p) => parts.has(p)).map((part) => {
        const xs = parts.get(part)!;
        return { part, p50Ms: percentile(xs, 50), p99Ms: percentile(xs, 99), meanMs: xs.reduce((a, v) => a + v, 0) / xs.length };
      }),
    };
  } finally {
    timedAgent.destroy();
    for (const m of opened) m.close();
    await daemon.stop(10_000).catch(() => daemon.kill());
    rmSync(CONTROL_PIN_DIR, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Bulk changes through the running bench daemon: adds a service of 1000 backends, then times
 * `reps` PATCH /api/v1/state/backends of 100 of them (drain, undrain, ...) until the kernel
 * holds each (new inner table, the flags of the last backend of the batch). Returns null when
 * the time is up before the first one.
 */
async function measureBulk(url: string, token: string, backendsMap: BpfMap, maglevMap: MaglevOuterMaps, reps: number, deadline: number): Promise<NonNullable<ControlReport['apiToKernel']>['bulk']> {
  const poolSize = 1000;
  const perChange = 100;
  const backends = Array.from({ length: poolSize }, (_, i) => ({ address: `198.18.${216 + Math.floor(i / 250)}.${(i % 250) + 1}`, port: 8080, weight: 1 }));
  await api(url, token, 'POST', '/api/v1/services', { name: 'bulk', vip: '198.18.215.1', port: 80, protocol: 'tcp', mode: 'nat', tableSize: BENCH_TABLE_SIZE, backends });
  const service = await api(url, token, 'GET', '/api/v1/services/bulk') as { id: number; backends: Array<{ id: number; key: string }> };
  const key = (id: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(id, 0); return b; };
  const probe = new TableProbe(maglevMap, service.id);
  const draining = (id: number) => ((backendsMap.lookup(key(id))?.[BACKEND_FLAGS_OFFSET] ?? 0) & BACKEND_F_DRAINING) !== 0;
  const batch = service.backends.slice(0, perChange);
  const last = batch[batch.length - 1];
  const times: number[] = [];
  const responses: number[] = [];
  const steps = new Map<string, number[]>();
  const each: NonNullable<NonNullable<ControlReport['apiToKernel']>['bulk']>['each'] = [];
  for (let i = 0; i < reps && Date.now() < deadline; i++) {
    const drain = i % 2 === 0;
    const before = expectedIds(drain ? service.backends : service.backends.slice(perChange), BENCH_TABLE_SIZE);
    const after = expectedIds(drain ? service.backends.slice(perChange) : service.backends, BENCH_TABLE_SIZE);
    const slot = lastChangedSlot(before, after);
    const started = process.hrtime.bigint();
    const request = apiTimed(url, token, 'PATCH', '/api/v1/state/backends', { changes: batch.map((b) => ({ service: 'bulk', backend: b.key, drain })) });
    let failed: Error | null = null;
    request.catch((err: Error) => { failed = err; });
    await pollKernel(() => draining(last.id) === drain && (slot < 0 || probe.slot(slot) === after[slot]), () => failed, Date.now() + 10_000,
      () => `bulk change ${i} (drain=${drain}) not in the kernel after 10 s`);
    times.push(Number(process.hrtime.bigint() - started) / 1e6);
    const timing = parseServerTiming((await request).timing);
    responses.push(Number(process.hrtime.bigint() - started) / 1e6);
    let slowest = { slowestStep: '', stepMs: 0 };
    for (const [step, ms] of Object.entries(timing.steps)) {
      (steps.get(step) ?? steps.set(step, []).get(step)!).push(ms ?? 0);
      if ((ms ?? 0) > slowest.stepMs) slowest = { slowestStep: step, stepMs: Number((ms ?? 0).toFixed(3)) };
    }
    each.push({ ms: Number(times[times.length - 1].toFixed(3)), ...slowest });
  }
  const final = expectedIds(times.length % 2 === 1 ? service.backends.slice(perChange) : service.backends, BENCH_TABLE_SIZE);
  const held = probe.all();
  probe.close();
  if (!held.every((v, i) => v === final[i])) throw new Error('after the bulk changes the kernel table is not the one expected');
  if (times.length === 0) return null;
  return {
    changes: times.length, backendsPerChange: perChange, poolSize,
    p50Ms: percentile(times, 50), p99Ms: percentile(times, 99), responseP50Ms: percentile(responses, 50), responseP99Ms: percentile(responses, 99),
    stepsP50Ms: Object.fromEntries(CHANGE_STEPS.filter((st) => steps.has(st)).map((st) => [st, percentile(steps.get(st)!, 50)])),
    each,
  };
}

/** The largest per-service table (MAX_SERVICE_TABLE_SIZE), built off the event loop as the daemon does. */
export const LARGE_TABLE_SIZE = 1048573;

/**
 * Maglev build time at M = 65537 for 10, 100 and 1000 backends (in-process), and at
 * M = 1048573 for 1000 backends on a worker thread as the daemon builds it (the daemon's one
 * shared worker, kept between builds): median of `reps` after a warm-up (3 builds in-process).
 */
export async function measureMaglev(reps: number): Promise<ControlReport['maglev']> {
  const pool = (n: number) => Array.from({ length: n }, (_, i) => ({ key: `198.18.${214 + (i >> 8)}.${i & 255}:8080`, weight: 1 }));
  const inUse = maglevEngine();
  // The engine in use at 10, 100 and 1000 backends; the TypeScript loop beside it (same run).
  const cases: Array<[number, MaglevEngine]> = [[10, inUse], [100, inUse], [1000, inUse]];
  if (inUse !== 'js') cases.push([10, 'js'], [1000, 'js']);
  const out: ControlReport['maglev'] = cases.map(([n, engine]) => {
    const backends = pool(n);
    // Warm-up: the first builds run before the JIT has optimised the turn loop (a daemon
    // builds tables all its life, so the warm figure is the one that matters).
    for (let w = 0; w < 3; w++) buildMaglevTable(backends, BENCH_TABLE_SIZE, engine);
    const ms: number[] = [];
    for (let r = 0; r < reps; r++) {
      const started = process.hrtime.bigint();
      buildMaglevTable(backends, BENCH_TABLE_SIZE, engine);
      ms.push(Number(process.hrtime.bigint() - started) / 1e6);
    }
    return { backends: n, tableSize: BENCH_TABLE_SIZE, ms: summarize(ms), engine };
  });
  const large = pool(1000);
  await buildMaglevTablesOffThread([{ backends: large, size: LARGE_TABLE_SIZE }]);
  const ms: number[] = [];
  for (let r = 0; r < reps; r++) {
    const started = process.hrtime.bigint();
    await buildMaglevTablesOffThread([{ backends: large, size: LARGE_TABLE_SIZE }]);
    ms.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  out.push({ backends: 1000, tableSize: LARGE_TABLE_SIZE, ms: summarize(ms), offThread: true, engine: inUse });
  return out;
}

interface Observer { child: ReturnType<typeof spawn>; result: Promise<{ statsReads: number; events: number }> }

async function startObserver(pinDir: string, seconds: number): Promise<Observer> {
  const [cmd, ...args] = observerCommand(pinDir, seconds);
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  trackChild(child);
  let out = '';
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (c: string) => { err += c; });
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`observer not ready after 60 s: ${err.slice(0, 300)}`)), 60_000);
    child.stdout!.setEncoding('utf8').on('data', (c: string) => {
      out += c;
      if (out.includes('ready\n')) { clearTimeout(timer); resolve(); }
    });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`observer exited (${code}): ${err.slice(0, 300)}`)); });
  });
  const result = new Promise<{ statsReads: number; events: number }>((resolve) => {
    child.once('exit', () => {
      const line = out.split('\n').find((l) => l.startsWith('{'));
      resolve(line ? JSON.parse(line) as { statsReads: number; events: number } : { statsReads: 0, events: 0 });
    });
  });
  try {
    await ready;
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return { child, result };
}

/**
 * Mpps and lb CPU per packet of xdplb nat with observability off and on, interleaved.
 * @throws Error when the topology or the data plane cannot be set up.
 */
export async function measureObservability(reps: number, packets: number, seconds: number,
  progress: (m: string) => void): Promise<NonNullable<ControlReport['observability']>> {
  const sampleRate = 1000;
  const off: ForwardRep[] = [];
  const on: ForwardRep[] = [];
  let statsReads = 0;
  let events = 0;
  let t: ForwardTopology | null = null;
  let programs: BenchPrograms | null = null;
  let dp: Dataplane | null = null;
  tearDownForwardTopology();
  rmSync(OBSERVE_PIN_DIR, { recursive: true, force: true });
  try {
    t = setUpForwardTopology();
    const topo = t;
    programs = BenchPrograms.load({ fwdDstMac: topo.sink.mac, fwdSrcMac: topo.lb.egressMac });
    programs.attachSink(topo);
    dp = Dataplane.load({ hashSeed: 1, pinDir: OBSERVE_PIN_DIR });
    const plane = dp;
    const lb = new Balancer(plane);
    lb.applyState(benchState('nat', topo.vip, topo.vipPort, 'udp', topo.backends, 0));
    const progId = inNetns(topo.lb.netns, () => {
      plane.attach(topo.lb.ingress, 'native');
      return plane.attach(topo.lb.egress, 'native').progId;
    });
    for (let rep = 1; rep <= reps; rep++) {
      for (const mode of ['off', 'on'] as const) {
        progress(`control: observability rep ${rep}/${reps} ${mode}`);
        lb.applyState(benchState('nat', topo.vip, topo.vipPort, 'udp', topo.backends, 0, mode === 'on' ? sampleRate : 0));
        const observer = mode === 'on' ? await startObserver(OBSERVE_PIN_DIR, seconds + 30) : null;
        try {
          const r = await measureForwardRep(topo, programs, { daddr: topo.vip, flows: 16384, packets, seconds, progId });
          (mode === 'on' ? on : off).push(r);
        } finally {
          if (observer) {
            await stopProcess(observer.child as never);
            const o = await observer.result;
            statsReads += o.statsReads;
            events += o.events;
          }
        }
      }
    }
  } finally {
    if (dp && t) {
      const plane = dp;
      inNetns(t.lb.netns, () => { for (const a of plane.attachments()) { try { plane.detach(a.ifname); } catch { /* gone */ } } });
    }
    try { dp?.unpin(); } catch { /* best effort */ }
    dp?.close();
    programs?.close();
    tearDownForwardTopology();
    rmSync(OBSERVE_PIN_DIR, { recursive: true, force: true });
  }
  const sum = (rs: ForwardRep[]) => ({ mpps: summarize(rs.map((r) => r.mpps)), lbCpuNsPerPacket: summarize(rs.map((r) => r.lbCpuNsPerPacket ?? 0)) });
  const offS = off.length ? sum(off) : null;
  const onS = on.length ? { ...sum(on), statsReads, events } : null;
  // Paired: each "on" repetition against the "off" one just before it, so that the machine's
  // drift over the run (other work, thermal) cancels; the median of the pairs is the cost.
  const pairs = Math.min(on.length, off.length);
  const pairedMedian = (f: (r: ForwardRep) => number | null) => {
    const rs: number[] = [];
    for (let i = 0; i < pairs; i++) {
      const q = ratio(f(on[i]), f(off[i]));
      if (q !== null) rs.push(q);
    }
    return rs.length ? summarize(rs).median : null;
  };
  const mppsRatio = pairedMedian((r) => r.mpps);
  const cpuRatio = pairedMedian((r) => r.lbCpuNsPerPacket);
  return {
    off: offS, on: onS, sampleRate, reps,
    mppsCost: mppsRatio === null ? null : 1 - mppsRatio,
    cpuCost: cpuRatio === null ? null : cpuRatio - 1,
  };
}

export const HEALTH_NETNS = `${BENCH_PREFIX}-hc`;
const HEALTH_PIN_DIR = `/sys/fs/bpf/${BENCH_PREFIX}-hc`;
const HEALTH_PORT = 28510;

/** An HTTP server in the health namespace answering 503 for the addresses in `down`, 200
 * otherwise; remembers when each address was last answered and with what. */
async function healthServer(): Promise<{ server: HttpServer; down: Set<string>; answers: Map<string, { at: number; status: number }>; count: () => number }> {
  const down = new Set<string>();
  const answers = new Map<string, { at: number; status: number }>();
  let n = 0;
  const server = createHttpServer((req, res) => {
    const address = (req.socket.localAddress ?? '').replace(/^::ffff:/, '');
    const status = down.has(address) ? 503 : 200;
    // No `connection: close` of its own: a probe asking for it gets it, a kept-alive one (reuseConnection) keeps the connection.
    res.writeHead(status, { 'content-length': '0' });
    res.end();
    answers.set(address, { at: performance.now(), status });
    n++;
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // The socket is made in the namespace: listen() without a host binds synchronously (with a
    // host it resolves it first, asynchronously, i.e. after the thread left the namespace).
    inNetns(HEALTH_NETNS, () => server.listen(HEALTH_PORT, () => resolve()));
  });
  return { server, down, answers, count: () => n };
}

function healthConfig(services: unknown[], port: number): string {
  return toYaml({ interfaces: [], hashSeed: 0, sampling: { rate: 0 }, api: { listen: `127.0.0.1:${port}` }, tokens: [], services });
}

/** CPU time of every thread of a process, ns. */
const fmtSeconds = (ms: number) => (ms / 1000).toFixed(1);

function processCpuNs(pid: number): number {
  let tids: number[] = [];
  try { tids = readdirSync(`/proc/${pid}/task`).map(Number); } catch { return 0; }
  return tasksCpuNs(tids);
}

/**
 * Health detection -> kernel and the CPU cost of 1000 checked backends (see ControlReport.health).
 * @throws Error when the namespace, the server or the daemon cannot be set up.
 */
export async function measureHealth(flips: number, cpuSeconds: number, progress: (m: string) => void): Promise<NonNullable<ControlReport['health']>> {
  const dir = mkdtempSync(join(tmpdir(), 'xlbb-hc-'));
  createNamespace(HEALTH_NETNS);
  const opened: BpfMap[] = [];
  let srv: Awaited<ReturnType<typeof healthServer>> | null = null;
  let daemon: ReturnType<typeof spawnDaemon> | null = null;
  const stopDaemon = async () => {
    if (daemon) await daemon.stop(10_000).catch(() => daemon!.kill());
    daemon = null;
    rmSync(HEALTH_PIN_DIR, { recursive: true, force: true });
  };
  try {
    run('ip', ['addr', 'add', '198.18.232.0/22', 'dev', 'lo'], { netns: HEALTH_NETNS });
    srv = await healthServer();
    const server = srv;
    const check = (intervalMs: number) => ({ type: 'http', port: HEALTH_PORT, intervalMs, timeoutMs: intervalMs, rise: 1, fall: 1, initialState: 'up', flap: { holdMs: 0 } });
    const address = (i: number) => `198.18.${232 + Math.floor(i / 250)}.${(i % 250) + 1}`;
    // 1. Detection: 10 backends, checks every 250 ms.
    progress(`control: health detection (${flips} flips)`);
    const pool = Array.from({ length: 10 }, (_, i) => ({ address: address(i), port: 8080, weight: 1 }));
    writeFileSync(join(dir, 'hc.yaml'), healthConfig([{ name: 'hc', vip: '198.18.231.1', port: 80, protocol: 'tcp', mode: 'nat', tableSize: BENCH_TABLE_SIZE, backends: pool, healthCheck: check(250) }], await freePort()));
    rmSync(HEALTH_PIN_DIR, { recursive: true, force: true });
    daemon = spawnDaemon({ configPath: join(dir, 'hc.yaml'), pinDir: HEALTH_PIN_DIR, netns: HEALTH_NETNS, detachOnExit: true });
    trackChild(daemon.child);
    await daemon.ready(60_000);
    const maps = (name: string) => { const m = BpfMap.fromPin(join(HEALTH_PIN_DIR, 'maps', name)); opened.push(m); return m; };
    const servicesMap = maps('services');
    const backendsMap = maps('backends');
    const maglevMap = new MaglevOuterMaps(maps('maglev'), maps('maglev_std'));   // a default-size table is in maglev_std
    const svc = servicesMap.lookup(LbServiceKeyCodec.encode({ vip: '198.18.231.1', port: 80, proto: 6 }));
    if (!svc) throw new Error('the health bench service is not in the kernel');
    const serviceId = LbServiceCodec.decode(svc).id;
    const ids = new Map<string, number>();
    for (const [k, v] of backendsMap.lookupBatch()) {
      const b = LbBackendCodec.decode(v);
      if (b.serviceId === serviceId && b.ip) ids.set(`${b.ip}:${b.port}`, k.readUInt32LE(0));
    }
    const backends = pool.map((b) => ({ id: ids.get(`${b.address}:${b.port}`) ?? 0, key: `${b.address}:${b.port}`, address: b.address }));
    if (backends.some((b) => b.id === 0)) throw new Error('a health bench backend is not in the kernel');
    const key = (id: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(id, 0); return b; };
    const active = (id: number) => ((backendsMap.lookup(key(id))?.[BACKEND_FLAGS_OFFSET] ?? 0) & LB.BACKEND_F_ACTIVE) !== 0;
    const probe = new TableProbe(maglevMap, serviceId);
    const times: number[] = [];
    try {
      // Every backend up by its checks (and being probed) before the first flip.
      const upBy = Date.now() + 15_000;
      while (!(backends.every((b) => active(b.id) && server.answers.get(b.address)?.status === 200))) {
        if (Date.now() > upBy) throw new Error(`the health bench backends are not all up after 15 s (${server.count()} probes answered)`);
        await sleep(10);
      }
      let expected = expectedIds(backends, BENCH_TABLE_SIZE);
      const deadline = Date.now() + 120_000;
      for (let i = 0; i < flips && Date.now() < deadline; i++) {
        const b = backends[Math.floor(i / 2) % backends.length];
        const goDown = i % 2 === 0;
        const next = expectedIds(backends.filter((x) => x.id !== b.id || !goDown), BENCH_TABLE_SIZE);
        const slot = lastChangedSlot(expected, next);
        expected = next;
        // Wait for a probe of this backend (so the flip lands between two probes), then flip.
        const flipAt = performance.now();
        if (goDown) server.down.add(b.address); else server.down.delete(b.address);
        const want = goDown ? 503 : 200;
        // Down: the kernel holds it once the backend lost ACTIVE (the apply's last write for it);
        // up: once ACTIVE and the last slot the change writes holds it.
        const held = () => (goDown ? !active(b.id) : active(b.id) && (slot < 0 || probe.slot(slot) === expected[slot]));
        await pollKernel(held, () => null, Date.now() + 10_000, () => `health flip ${i} (${b.key} ${goDown ? 'down' : 'up'}) not in the kernel after 10 s`);
        const seen = performance.now();
        const answer = server.answers.get(b.address);
        if (!answer || answer.status !== want || answer.at < flipAt) throw new Error(`health flip ${i}: the kernel changed before the deciding probe (${server.count()} probes answered; last answer ${JSON.stringify(answer)})`);
        times.push(seen - answer.at);
        await sleep(20);
      }
    } finally {
      probe.close();
    }
    for (const m of opened.splice(0)) m.close();
    await stopDaemon();
    // 2. CPU: 1000 backends, checks every second: the default (kept connections), then a new connection per probe.
    let cpu: NonNullable<ControlReport['health']>['cpu'] = null;
    let cpuFresh: NonNullable<ControlReport['health']>['cpu'] = null;
    const measureCpu = async (reuseConnection: boolean | undefined): Promise<NonNullable<NonNullable<ControlReport['health']>['cpu']>> => {
      progress(`control: health CPU (1000 backends, ${cpuSeconds} s${reuseConnection === false ? ', reuseConnection: false' : ''})`);
      const big = Array.from({ length: 1000 }, (_, i) => ({ address: address(i), port: 8080, weight: 1 }));
      const healthCheck = reuseConnection === undefined ? check(1000) : { ...check(1000), reuseConnection };
      writeFileSync(join(dir, 'cpu.yaml'), healthConfig([{ name: 'cpu', vip: '198.18.231.2', port: 80, protocol: 'tcp', mode: 'nat', tableSize: BENCH_TABLE_SIZE, backends: big, healthCheck }], await freePort()));
      server.down.clear();
      daemon = spawnDaemon({ configPath: join(dir, 'cpu.yaml'), pinDir: HEALTH_PIN_DIR, netns: HEALTH_NETNS, detachOnExit: true });
      trackChild(daemon.child);
      await daemon.ready(60_000);
      await sleep(3000); // start-up work and the first round of checks done
      const probes0 = server.count();
      const changes0 = daemon.logs.filter((l) => l.msg === 'backend health changed').length;
      const cpu0 = processCpuNs(daemon.pid);
      const t0 = performance.now();
      await sleep(cpuSeconds * 1000);
      const cpuNs = processCpuNs(daemon.pid) - cpu0;
      const wallMs = performance.now() - t0;
      const m = { backends: 1000, intervalMs: 1000, seconds: wallMs / 1000, probes: server.count() - probes0, cpuShare: cpuNs / 1e6 / wallMs,
        healthChanges: daemon.logs.filter((l) => l.msg === 'backend health changed').length - changes0 };
      // The figure means something only while every backend is probed about once a second.
      if (m.probes < 0.8 * 1000 * m.seconds) throw new Error(`the 1000 backends were not all checked (${m.probes} probes in ${fmtSeconds(wallMs)} s${reuseConnection === false ? ', reuseConnection: false' : ''})`);
      await stopDaemon();
      return m;
    };
    if (cpuSeconds > 0) {
      cpu = await measureCpu(undefined);
      cpuFresh = await measureCpu(false);
    }
    if (times.length === 0) throw new Error('no health flip completed');
    return { flips: times.length, p50Ms: percentile(times, 50), p99Ms: percentile(times, 99), maxMs: Math.max(...times), cpu, cpuFresh };
  } finally {
    for (const m of opened) m.close();
    await stopDaemon();
    if (srv) await new Promise<void>((resolve) => srv!.server.close(() => resolve()));
    deleteNamespace(HEALTH_NETNS);
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Runs the three control measurements; a part that fails is recorded and the others still run.
 * @throws Error on bad options.
 */
export async function runControlBench(options: ControlOptions = {}): Promise<ControlReport> {
  // One benchmark at a time per host: they share namespace and pin names.
  return withBenchLock(() => runControlBenchLocked(options),
    { onWait: (pid) => options.onProgress?.(`waiting for another xdplb benchmark (pid ${pid}) to finish`) });
}

async function runControlBenchLocked(options: ControlOptions): Promise<ControlReport> {
  const changes = options.changes ?? 1000;
  const progress = options.onProgress ?? (() => {});
  if (!Number.isInteger(changes) || changes < 1 || changes > 100_000) throw new Error(`control: changes=${changes} must be in 1..100000`);
  const failures: ControlReport['failures'] = [];
  let apiToKernel: ControlReport['apiToKernel'] = null;
  let maglev: ControlReport['maglev'] = [];
  let health: ControlReport['health'] = null;
  let observability: ControlReport['observability'] = null;
  const parts = new Set<ControlPart>(options.parts ?? CONTROL_PARTS);
  for (const p of parts) if (!(CONTROL_PARTS as readonly string[]).includes(p)) throw new Error(`control: unknown part "${p}" (parts: ${CONTROL_PARTS.join(', ')})`);
  if (parts.has('api')) {
    try {
      progress(`control: ${changes} API changes`);
      apiToKernel = await measureApiToKernel(changes, options.changeSeconds ?? 300);
    } catch (err) { failures.push({ part: 'apiToKernel', error: (err as Error).message }); }
  }
  if (parts.has('maglev')) {
    try {
      progress('control: maglev build');
      maglev = await measureMaglev(options.maglevReps ?? 11);
    } catch (err) { failures.push({ part: 'maglev', error: (err as Error).message }); }
  }
  if (parts.has('health')) {
    try {
      health = await measureHealth(options.healthFlips ?? 200, options.cpuSeconds ?? 10, progress);
    } catch (err) { failures.push({ part: 'health', error: (err as Error).message }); }
  }
  if (parts.has('observability')) {
    try {
      observability = await measureObservability(options.observeReps ?? 5, options.packets ?? 10_000_000, options.seconds ?? 10, progress);
    } catch (err) { failures.push({ part: 'observability', error: (err as Error).message }); }
  }
  const build = (n: number, size: number) => maglev.find((m) => m.backends === n && m.tableSize === size && m.engine === maglevEngine())?.ms.median ?? null;
  const limitTarget = (description: string, value: number | null, limit: number) => ({ description, value, limit, met: value === null ? null : value <= limit, unit: 'ms' as const });
  await sleep(0);
  return {
    kind: 'control', apiToKernel, maglev, health, observability, failures,
    targets: [
      limitTarget('API change -> kernel maps, p99 ms (10 backends, M = 65537)', apiToKernel?.p99Ms ?? null, 5),
      limitTarget('API change -> HTTP answer, p99 ms', apiToKernel?.responseP99Ms ?? null, 10),
      limitTarget('bulk change of 100 of 1000 backends -> kernel, p99 ms (one table swap)', apiToKernel?.bulk?.p99Ms ?? null, 20),
      limitTarget('Maglev build ms, M = 65537, 10 backends', build(10, BENCH_TABLE_SIZE), 2),
      limitTarget('Maglev build ms, M = 65537, 1000 backends', build(1000, BENCH_TABLE_SIZE), 5),
      limitTarget('Maglev build ms, M = 1048573, 1000 backends (worker thread)', build(1000, LARGE_TABLE_SIZE), 100),
      limitTarget('health check detection -> kernel, p99 ms after the deciding probe', health?.p99Ms ?? null, 5),
      { description: 'daemon CPU, 1000 backends with 1 s health checks (share of one CPU)', value: health?.cpu?.cpuShare ?? null, limit: 0.05,
        met: health?.cpu == null ? null : health.cpu.cpuShare <= 0.05 },
      { description: 'observability cost (Mpps, 1 Hz stats + 1/1000 sampling)', value: observability?.mppsCost ?? null, limit: 0.03,
        met: observability?.mppsCost == null ? null : observability.mppsCost <= 0.03 },
      { description: 'observability cost (lb CPU per packet)', value: observability?.cpuCost ?? null, limit: 0.03,
        met: observability?.cpuCost == null ? null : observability.cpuCost <= 0.03 },
    ],
    method: CONTROL_METHOD,
  };
}
