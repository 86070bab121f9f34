/**
 * `xdplb bench cluster`: the cluster of issue 13 measured on its own lab (`lab up --nodes 3
 * --etcd 1`, prefix xlbc unless --prefix), three daemons in etcd mode with BIRD started with
 * the real CLI, torn down at the end:
 * - change propagation: an API write on lb1 -> the changed Maglev table in the kernel of the
 *   last node (lbN), polled from its pinned maps; p50/p99 over `changes` writes (target p99 <= 50 ms);
 * - failover: UDP flows from the client, one echo per flow every `intervalMs`; one node dies
 *   hard (links down, kill -9 of its daemon and BIRD); the silence each affected flow saw
 *   (median and max over >= `flows` affected flows, target <= 1 s);
 * - forwarded packets/s with 1, 2 and 3 nodes announcing (the others drained): a LIVE_FRAMES
 *   generator in the client sends UDP to the VIP through the router's ECMP; packets counted by
 *   the nodes' XDP programs (BPF run statistics), with each node's program CPU time.
 * Every part is bounded in count and time.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { enableRunStats } from '../bpf';
import { XdplbError } from '../domain/errors';
import { buildFrame, IPPROTO_UDP } from '../dataplane/packet';
import { clusterDown, clusterUp, readClusterState, routerEcmp } from '../lab/cluster-lab';
import { clusterTopology, nodeUplinkAddress } from '../lab/cluster-topology';
import { ClusterNodes, kernelMaglevTable } from '../lab/cluster-nodes';
import { macOf, xdpPassObject } from '../lab/lab';
import { ipIn, linkIn, run, setOffload } from '../lab/netns';
import { nodeScriptCommand } from '../lab/paths';
import { BenchPrograms, benchPayload } from './generator';
import { percentile, summarize, type Summary } from './stats';
import type { ForwardTopology } from './forward-topology';
import type { ProbeReport } from './cluster-prober';
import { waitFor } from '../lab/wait';

export interface ClusterBenchOptions {
  prefix?: string;
  /** API writes timed for propagation (>= 1; the issue asks >= 200). */
  changes?: number;
  /** Affected flows wanted for failover (the issue asks >= 20); more kill rounds until reached (at most 3). */
  flows?: number;
  /** Packets per forwarding repetition. */
  packets?: number;
  /** Upper bound per forwarding repetition, seconds. */
  seconds?: number;
  /** Forwarding repetitions per node count. */
  reps?: number;
  /** Host ports for the node APIs: base + K. */
  hostPortBase?: number;
  onProgress?: (message: string) => void;
}

export interface ClusterBenchReport {
  kind: 'cluster';
  prefix: string;
  nodes: number;
  cpus: number;
  propagation: {
    changes: number; ok: number; failed: number; p50Ms: number | null; p99Ms: number | null; maxMs: number | null;
    /** Until lb1's API answered the write (etcd transaction and lb1's own apply): p50/p99; lb3's kernel often has the change sooner. */
    apiP50Ms: number | null; apiP99Ms: number | null;
    target: { p99Ms: number; met: boolean | null };
  };
  failover: {
    rounds: Array<{ killed: string; routerDropMs: number | null; flows: number; affected: number }>;
    flows: number; affected: number; intervalMs: number;
    medianMs: number | null; maxMs: number | null; target: { maxMs: number; met: boolean | null };
  };
  forwarding: {
    frameBytes: number; flows: number;
    byNodes: Array<{
      nodes: number; pps: Summary | null;
      reps: Array<{ sent: number; processed: number; seconds: number; pps: number; hostCpu: number;
        perNode: Array<{ node: string; packets: number; pps: number; cpu: number }> }>;
    }>;
    scaling: string;
  };
  failures: Array<{ part: string; error: string }>;
  method: string;
}

const VIP = '198.18.100.1';
const TOKEN = 'xlbc-bench-admin-token-0123456789';
const SEED = `
hashSeed: 777
maglev: { tableSize: 251 }
tokens: [{ name: bench, role: admin, token: ${TOKEN} }]
services:
  - name: web
    vip: ${VIP}
    port: 80
    protocol: tcp
    mode: nat
    backends:
      - { address: 198.18.1.11, port: 8080, weight: 1 }
      - { address: 198.18.1.12, port: 8080, weight: 1 }
      - { address: 198.18.1.13, port: 8080, weight: 1 }
  - name: echo
    vip: ${VIP}
    port: 5300
    protocol: udp
    mode: nat
    backends:
      - { address: 198.18.1.11, port: 5300 }
      - { address: 198.18.1.12, port: 5300 }
      - { address: 198.18.1.13, port: 5300 }
  - name: blast
    vip: ${VIP}
    port: 9
    protocol: udp
    mode: nat
    backends:
      - { address: 198.18.1.11, port: 9 }
      - { address: 198.18.1.12, port: 9 }
      - { address: 198.18.1.13, port: 9 }
`;
const WEB = { vip: VIP, port: 80, protocol: 'tcp' as const };
const CHANGED = '198.18.1.13:8080';
const PROPAGATION_TARGET_MS = 50;
const FAILOVER_TARGET_MS = 1000;
const FAILOVER_INTERVAL_MS = 20;
const FRAME_BYTES = 64;
const GEN_FLOWS = 4096;

export const CLUSTER_METHOD = 'Lab: `lab up --nodes 3 --backends 3 --etcd 1` (NAT), three daemons in etcd mode with BIRD (real CLI, own namespaces), '
  + 'all on this host. Propagation: PATCH of a backend weight on lb1 (through a host forward to its API) until the last node\'s kernel '
  + 'Maglev table (read from its pinned maps every ~1 ms) holds the new slot count; one change at a time. Failover: UDP flows from '
  + `the client (one source port each, an echo every ${FAILOVER_INTERVAL_MS} ms); a node dies hard (links down, kill -9 of daemon and BIRD); `
  + 'a flow is affected when its echoes stop across the kill (its forward or NAT return path crossed the dead node); its gap is the time '
  + 'from its last echo before to its first echo after (includes up to one send interval). Forwarding: BPF_PROG_TEST_RUN LIVE_FRAMES '
  + `generator in the client (${FRAME_BYTES}-byte UDP frames, ${GEN_FLOWS} source ports) -> router (kernel ECMP) -> the announcing nodes; `
  + 'pps = packets the nodes\' XDP programs ran on (BPF run statistics, both legs, counted 100 ms after the last send) / the generator\'s send time; node CPU = that program\'s run time / wall '
  + 'time (share of one CPU; veth, router and generator work are not in it).';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


function cpuTimes(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = v[3] + (v[4] ?? 0);
  const total = v.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

/** @throws XdplbError XDPLB_ERR_VALIDATION naming the bad option (before anything is built). */
function validate(o: ClusterBenchOptions): Required<Omit<ClusterBenchOptions, 'onProgress'>> {
  try { return validateOrThrow(o); } catch (err) { throw new XdplbError('XDPLB_ERR_VALIDATION', (err as Error).message); }
}

function validateOrThrow(o: ClusterBenchOptions): Required<Omit<ClusterBenchOptions, 'onProgress'>> {
  const r = { prefix: o.prefix ?? 'xlbc', changes: o.changes ?? 200, flows: o.flows ?? 20, packets: o.packets ?? 2_000_000, seconds: o.seconds ?? 5, reps: o.reps ?? 3, hostPortBase: o.hostPortBase ?? 28200 };
  const flag = { changes: '--changes', flows: '--flows', packets: '--packets', reps: '--reps', hostPortBase: '--api-port-base' } as const;
  for (const key of Object.keys(flag) as Array<keyof typeof flag>) {
    if (!Number.isInteger(r[key]) || r[key] < 1) throw new Error(`bench cluster: ${flag[key]} must be a positive integer, got ${r[key]}`);
  }
  if (r.changes > 10_000) throw new Error(`bench cluster: --changes must be <= 10000, got ${r.changes}`);
  if (r.flows > 60) throw new Error(`bench cluster: --flows must be <= 60 (3 probe flows each, at most 200), got ${r.flows}`);
  if (!(r.seconds > 0 && r.seconds <= 60)) throw new Error(`bench cluster: --seconds must be in (0, 60], got ${r.seconds}`);
  if (r.hostPortBase + 3 > 65535) throw new Error(`bench cluster: --api-port-base ${r.hostPortBase} leaves no room for 3 ports`);
  clusterTopology({ prefix: r.prefix, nodes: 3 });   // validates the prefix (--prefix)
  return r;
}

/** API write on lb1 -> the last node's kernel table, one change at a time. */
async function propagation(nodes: ClusterNodes, changes: number, last: number, log: (m: string) => void): Promise<ClusterBenchReport['propagation']> {
  const pin = nodes.pinDir(last);
  const count = () => kernelMaglevTable(pin, WEB).filter((b) => b === CHANGED).length;
  const latencies: number[] = [];
  const apiTimes: number[] = [];
  let failed = 0;
  let weight = 1;
  for (let i = 0; i < changes; i++) {
    const before = count();
    weight = weight === 1 ? 3 : 1;
    const t0 = performance.now();
    let answered = -1;
    const write = nodes.api(1, 'PATCH', `/api/v1/services/web/backends/${CHANGED}`, { weight }).then((r) => { answered = performance.now() - t0; return r; });
    let seen = -1;
    while (performance.now() - t0 < 2000) {
      if (count() !== before) { seen = performance.now() - t0; break; }
      await sleep(1);
    }
    const res = await write;
    if (res.status !== 200 || seen < 0) { failed++; continue; }
    latencies.push(Math.round(seen * 10) / 10);
    apiTimes.push(Math.round(answered * 10) / 10);
    if ((i + 1) % 50 === 0) log(`propagation: ${i + 1}/${changes}`);
    await sleep(10);
  }
  const p99 = latencies.length ? percentile(latencies, 99) : null;
  return {
    changes, ok: latencies.length, failed,
    p50Ms: latencies.length ? percentile(latencies, 50) : null, p99Ms: p99, maxMs: latencies.length ? Math.max(...latencies) : null,
    apiP50Ms: apiTimes.length ? percentile(apiTimes, 50) : null, apiP99Ms: apiTimes.length ? percentile(apiTimes, 99) : null,
    target: { p99Ms: PROPAGATION_TARGET_MS, met: failed > 0 ? false : p99 === null ? null : p99 <= PROPAGATION_TARGET_MS },
  };
}

function startProber(prefix: string, flows: number): { stop(): Promise<ProbeReport> } {
  const child = spawn('ip', ['netns', 'exec', `${prefix}-client`, ...nodeScriptCommand('../bench/cluster-prober'),
    JSON.stringify({ host: VIP, port: 5300, flows, intervalMs: FAILOVER_INTERVAL_MS, gapMs: 3 * FAILOVER_INTERVAL_MS, maxSec: 60 })], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  const done = new Promise<ProbeReport>((resolve, reject) => child.on('close', (code) => {
    try { resolve(JSON.parse(out.trim().split('\n').at(-1)!) as ProbeReport); } catch { reject(new Error(`prober failed (exit ${code})`)); }
  }));
  return { stop: async () => { child.kill('SIGTERM'); return done; } };
}

async function failover(prefix: string, nodes: ClusterNodes, want: number, log: (m: string) => void): Promise<ClusterBenchReport['failover']> {
  const gaps: number[] = [];
  const rounds: ClusterBenchReport['failover']['rounds'] = [];
  const hops = () => routerEcmp(prefix)[VIP] ?? [];
  // Three flows per wanted one: with 3 nodes about half cross the dead node one way or the other.
  const flows = Math.min(200, Math.max(30, want * 3));
  for (let round = 0; round < 3 && gaps.length < want; round++) {
    const k = 3 - round;
    await waitFor('every node announcing', 30_000, () => hops().length === 3, 100);
    const prober = startProber(prefix, flows);
    await sleep(2000);
    const killedAt = Date.now();
    nodes.killHard(k);
    let routerDropMs: number | null = null;
    try { routerDropMs = await waitFor(`lb${k} dropped by the router`, 5000, () => !hops().includes(nodeUplinkAddress(k)), 10); } catch { /* reported as null */ }
    await sleep(2500);
    const report = await prober.stop();
    let affected = 0;
    for (const f of report.flows) {
      const g = f.gaps.find((x) => x.from <= killedAt + FAILOVER_INTERVAL_MS && x.to >= killedAt);
      if (g) { gaps.push(g.to - g.from); affected++; }
    }
    rounds.push({ killed: `lb${k}`, routerDropMs, flows: report.flows.length, affected });
    log(`failover: killed lb${k}: router dropped it after ${routerDropMs ?? '?'} ms, ${affected} of ${report.flows.length} flows affected`);
    // Back: links up, neighbours repaired, the daemon adopts its pins and starts BIRD again.
    nodes.linksUp(k);
    await clusterUp({ prefix, nodes: 3, backends: 3, mode: 'nat', etcd: 1 });
    await nodes.start(k);
  }
  await waitFor('every node announcing', 30_000, () => hops().length === 3, 100);
  const median = gaps.length ? summarize(gaps).median : null;
  const max = gaps.length ? Math.max(...gaps) : null;
  return {
    rounds, flows: rounds.reduce((n, r) => n + r.flows, 0), affected: gaps.length, intervalMs: FAILOVER_INTERVAL_MS, medianMs: median, maxMs: max,
    target: { maxMs: FAILOVER_TARGET_MS, met: max === null ? null : gaps.length >= want && max <= FAILOVER_TARGET_MS },
  };
}

async function forwarding(prefix: string, nodes: ClusterNodes, o: { packets: number; seconds: number; reps: number }, log: (m: string) => void): Promise<ClusterBenchReport['forwarding']> {
  const t = clusterTopology({ prefix, nodes: 3, backends: 3, etcd: 1 });
  const hops = () => routerEcmp(prefix)[VIP] ?? [];
  // The router's client leg takes the generator's XDP_TX frames only with NAPI (GRO) and an XDP program.
  setOffload(t.router.netns, t.router.clientLeg, 'gro', true);
  const link = linkIn(t.router.netns, t.router.clientLeg);
  if (!(link?.xdp?.prog ?? link?.xdp?.attached?.length)) ipIn(t.router.netns, ['link', 'set', 'dev', t.router.clientLeg, 'xdpdrv', 'obj', xdpPassObject(), 'sec', 'xdp']);
  const clientMac = macOf(t.client.netns, t.client.ifname);
  const routerMac = macOf(t.router.netns, t.router.clientLeg);
  const ifindex = (JSON.parse(ipIn(t.client.netns, ['-j', 'link', 'show', t.client.ifname]).stdout) as Array<{ ifindex: number }>)[0].ifindex;
  const gen = BenchPrograms.load({ fwdDstMac: routerMac, fwdSrcMac: clientMac });
  const stats = enableRunStats();
  const byNodes: ClusterBenchReport['forwarding']['byNodes'] = [];
  try {
    gen.configure({ flows: GEN_FLOWS, saddrBase: t.client.address, daddr: VIP, dport: 9, srcMac: clientMac, dstMac: routerMac });
    const frame = buildFrame({ eth: { src: clientMac, dst: routerMac }, ip: { src: t.client.address, dst: VIP, proto: IPPROTO_UDP, ttl: 64 }, udp: { sport: 1024, dport: 9, payload: benchPayload() } });
    const topo = { gen: { netns: t.client.netns, ifindex } } as unknown as ForwardTopology;
    const cpu = os.cpus().length - 1;
    for (const n of [1, 2, 3]) {
      for (let k = 1; k <= 3; k++) {
        // force: the parts before may have left moved slots, and a drain during a transition is refused
        // to protect connections only that node knows; this part sends connectionless frames.
        const res = await nodes.api(1, 'PUT', `/api/v1/nodes/lb${k}/drain`, { drain: k > n, graceSeconds: 0, force: true });
        if (res.status !== 200) throw new Error(`drain lb${k}: ${res.status} ${JSON.stringify(res.body)}`);
      }
      await waitFor(`${n} node(s) at the router`, 20_000, () => hops().length === n, 50);
      await sleep(500);
      const reps: ClusterBenchReport['forwarding']['byNodes'][number]['reps'] = [];
      for (let rep = 0; rep < o.reps; rep++) {
        const before = [1, 2, 3].map((k) => nodes.programRuns(k));
        const cpu0 = cpuTimes();
        // Calls of at most 250k frames, so the seconds bound is checked every ~2 s at worst.
        const sent = gen.send(topo, frame, o.packets, o.seconds, cpu, 250_000);
        await sleep(100);   // the tail still in the veth queues
        const cpu1 = cpuTimes();
        const after = [1, 2, 3].map((k) => nodes.programRuns(k));
        // Over the generator's send time: what arrived in the tail was sent within it.
        const seconds = sent.wallNs / 1e9;
        const perNode = [1, 2, 3].map((k) => {
          const packets = after[k - 1].runCount - before[k - 1].runCount;
          return { node: `lb${k}`, packets, pps: Math.round(packets / seconds), cpu: Number(((after[k - 1].runTimeNs - before[k - 1].runTimeNs) / sent.wallNs).toFixed(3)) };
        });
        const processed = perNode.reduce((a, b) => a + b.packets, 0);
        const hostCpu = Number((((cpu1.busy - cpu0.busy) / Math.max(1, cpu1.total - cpu0.total)) * os.cpus().length).toFixed(2));
        reps.push({ sent: sent.packets, processed, seconds: Number(seconds.toFixed(3)), pps: Math.round(processed / seconds), hostCpu, perNode });
        log(`forwarding: ${n} node(s), rep ${rep + 1}: ${Math.round(processed / seconds)} pps (${perNode.map((p) => `${p.node} ${p.pps}`).join(', ')})`);
      }
      byNodes.push({ nodes: n, pps: summarize(reps.map((r) => r.pps)), reps });
    }
  } finally {
    stats.close();
    gen.close();
    for (let k = 1; k <= 3; k++) await nodes.api(1, 'PUT', `/api/v1/nodes/lb${k}/drain`, { drain: false }).catch(() => undefined);
  }
  const cpus = os.cpus().length;
  const scaling = cpus < 4
    ? `this machine has ${cpus} CPUs shared by the generator, the router, every node and the daemons: more nodes cannot add CPU here, so packets/s cannot scale with nodes; on separate machines each node brings its own CPUs`
    : `${cpus} CPUs, shared by the generator, the router and every node: scaling is bounded by this host, not by the nodes`;
  return { frameBytes: FRAME_BYTES, flows: GEN_FLOWS, byNodes, scaling };
}

/** Builds the lab, runs the three parts, tears everything down (also on failure). */
export async function runClusterBench(options: ClusterBenchOptions = {}): Promise<ClusterBenchReport> {
  const o = validate(options);
  const log = options.onProgress ?? (() => undefined);
  const { prefix } = o;
  const failures: ClusterBenchReport['failures'] = [];
  const dir = mkdtempSync(path.join(os.tmpdir(), `${prefix}-bench-`));
  if (readClusterState(prefix)) await clusterDown(prefix);
  for (let k = 1; k <= 3; k++) rmSync(`/sys/fs/bpf/${prefix}-lb${k}`, { recursive: true, force: true });
  const nodes = new ClusterNodes({ prefix, nodes: 3, apiPort: 28080, hostPortBase: o.hostPortBase, token: TOKEN, dir });
  const report: ClusterBenchReport = {
    kind: 'cluster', prefix, nodes: 3, cpus: os.cpus().length,
    propagation: { changes: o.changes, ok: 0, failed: 0, p50Ms: null, p99Ms: null, maxMs: null, apiP50Ms: null, apiP99Ms: null, target: { p99Ms: PROPAGATION_TARGET_MS, met: null } },
    failover: { rounds: [], flows: 0, affected: 0, intervalMs: FAILOVER_INTERVAL_MS, medianMs: null, maxMs: null, target: { maxMs: FAILOVER_TARGET_MS, met: null } },
    forwarding: { frameBytes: FRAME_BYTES, flows: GEN_FLOWS, byNodes: [], scaling: '' },
    failures, method: CLUSTER_METHOD,
  };
  const cleanup = async () => {
    await nodes.cleanup();
    await clusterDown(prefix);
    rmSync(dir, { recursive: true, force: true });
  };
  const onSignal = () => { void cleanup().finally(() => process.exit(130)); };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    log(`lab up --nodes 3 --etcd 1 --prefix ${prefix}`);
    await clusterUp({ prefix, nodes: 3, backends: 3, mode: 'nat', etcd: 1 });
    nodes.seed(SEED);
    await Promise.all([1, 2, 3].map((k) => nodes.start(k)));
    await waitFor('three next hops at the router', 30_000, () => (routerEcmp(prefix)[VIP] ?? []).length === 3, 100);
    const part = async (name: string, fn: () => Promise<void>) => {
      try { await fn(); } catch (err) { failures.push({ part: name, error: (err as Error).message }); log(`${name} FAILED: ${(err as Error).message}`); }
    };
    await part('propagation', async () => { report.propagation = await propagation(nodes, o.changes, 3, log); });
    await part('failover', async () => { report.failover = await failover(prefix, nodes, o.flows, log); });
    await part('forwarding', async () => { report.forwarding = await forwarding(prefix, nodes, o, log); });
  } catch (err) {
    failures.push({ part: 'setup', error: (err as Error).message });
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    await cleanup();
  }
  return report;
}

const fmt = (v: number | null, unit = ''): string => (v === null ? '-' : `${Number.isInteger(v) ? v : v.toFixed(1)}${unit}`);
const verdict = (met: boolean | null) => (met === null ? 'n/a' : met ? 'ok' : 'MISS');

export function formatClusterBench(r: ClusterBenchReport): string {
  const p = r.propagation;
  const f = r.failover;
  const lines = [
    `xdplb bench cluster (lab ${r.prefix}, 3 nodes, ${r.cpus} CPUs)`,
    '',
    'change propagation (API write on lb1 -> kernel table on lb3)',
    `  changes ${p.ok}/${p.changes} (failed ${p.failed})   p50 ${fmt(p.p50Ms, ' ms')}   p99 ${fmt(p.p99Ms, ' ms')}   max ${fmt(p.maxMs, ' ms')}   target p99 <= ${p.target.p99Ms} ms: ${verdict(p.target.met)}`,
    `  lb1's API answered the write after: p50 ${fmt(p.apiP50Ms, ' ms')}   p99 ${fmt(p.apiP99Ms, ' ms')}`,
    '',
    `failover (a node dies hard; UDP echo every ${f.intervalMs} ms per flow)`,
    ...f.rounds.map((x) => `  killed ${x.killed}: router dropped it after ${fmt(x.routerDropMs, ' ms')}; ${x.affected} of ${x.flows} flows affected`),
    `  affected flows ${f.affected}   gap median ${fmt(f.medianMs, ' ms')}   max ${fmt(f.maxMs, ' ms')}   target <= ${f.target.maxMs} ms: ${verdict(f.target.met)}`,
    '',
    `forwarding (${r.forwarding.frameBytes}-byte UDP, ${r.forwarding.flows} flows, through the router's ECMP)`,
    '  nodes   packets/s (median)   per node: packets/s, XDP CPU (share of one CPU)                host CPU busy',
    ...r.forwarding.byNodes.map((b) => {
      const last = b.reps[b.reps.length - 1];
      return `  ${String(b.nodes).padEnd(6)}  ${fmt(b.pps?.median ?? null).padStart(18)}   ${last.perNode.map((x) => `${x.node} ${x.pps} (${x.cpu.toFixed(2)})`).join(', ').padEnd(62)}  ${last.hostCpu.toFixed(2)} of ${r.cpus}`;
    }),
    `  ${r.forwarding.scaling}`,
    ...r.failures.map((x) => `FAILED ${x.part}: ${x.error}`),
  ];
  return lines.join('\n');
}

function positiveInt(what: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${what} must be a positive integer, got "${value}"`);
    return n;
  };
}

/** `xdplb bench cluster`. */
export function registerClusterCommand(bench: Command): void {
  bench.command('cluster')
    .description('cluster lab (3 nodes, etcd, BIRD): change propagation to the last node\'s kernel, failover gap, packets/s with 1-3 nodes')
    .option('--json', 'print the result as JSON')
    .option('--prefix <p>', 'lab prefix (namespaces, links, pins)', 'xlbc')
    .option('--changes <n>', 'API changes to time', positiveInt('--changes'), 200)
    .option('--flows <n>', 'affected flows wanted for the failover figures', positiveInt('--flows'), 20)
    .option('--packets <n>', 'packets per forwarding repetition', positiveInt('--packets'), 2_000_000)
    .option('--seconds <s>', 'upper bound per forwarding repetition, seconds', (v: string) => Number(v), 5)
    .option('--reps <n>', 'forwarding repetitions per node count', positiveInt('--reps'), 3)
    .option('--api-port-base <n>', 'host ports of the node APIs: base + K', positiveInt('--api-port-base'), 28200)
    .action(async (o: { json?: boolean; prefix: string; changes: number; flows: number; packets: number; seconds: number; reps: number; apiPortBase: number }) => {
      if (typeof process.getuid === 'function' && process.getuid() !== 0) throw new Error('xdplb bench cluster needs root (network namespaces, XDP, BIRD, etcd)');
      const started = Date.now();
      const r = await runClusterBench({ ...o, hostPortBase: o.apiPortBase, onProgress: (m) => process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${m}\n`) });
      process.stdout.write(o.json ? JSON.stringify(r, null, 2) + '\n' : formatClusterBench(r) + '\n');
      if (r.failures.length) process.exitCode = 1;
    });
}
