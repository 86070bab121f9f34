/**
 * `xdplb bench prog`: the per-packet cost of the XDP program, measured by BPF_PROG_TEST_RUN
 * (repeat = 1 per call, many calls pinned to one CPU) against the empty program in the same
 * run, for each packet class at 2 and at 1000 backends.
 *
 * Every program is loaded several times (--loads) and each case's figure pools the runs of all
 * loads: one load's cost depends on where the kernel placed its JIT image, stack and maps (the
 * same object measured 50 ns over empty in one load and 66 ns in another, in one run), so a
 * single load is a lottery ticket.
 *
 * It runs in its own namespace (xlbb-prog): one veth carries the client /24 and the backend /16
 * with permanent neighbours, so bpf_fib_lookup succeeds and the balancer answers XDP_TX; for the
 * IPv6 cases ("v6 ..."), the client and backend /64s of 2001:2::/48 the same way. Both families'
 * services are written by the Balancer (the reconciler: services6, service_slots6, vips6, ...).
 */
import os from 'node:os';
import path from 'node:path';
import { BpfObject, enterNetns, repoRoot, type Program } from '../bpf';
import { Dataplane } from '../dataplane/dataplane';
import { Balancer } from '../balancer/balancer';
import type { DataplaneBackend, DataplaneState } from '../dataplane/types';
import { buildFrame, ipToU32, u32ToIp, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, buildFrame6 } from '../dataplane/packet';
import { run } from './exec';
import { createNamespace, createVeth, deleteNamespace, setSysctls } from './netns';
import { summarize, type Summary } from './stats';

export const PROG_BENCH_NETNS = 'xlbb-prog';
const IFNAME = 'xlbb-prog-a';
const PEER = 'xlbb-prog-ap';
const LB_MAC = '02:00:00:b0:00:01';
const CLIENT = '198.18.0.10';
const CLIENT_MAC = '02:00:00:b0:00:0a';
const VIP_NAT = '198.18.100.1';
const VIP_DSR = '198.18.100.2';
const TABLE_SIZE = 65537;
const CLIENT6 = '2001:2::10';
const VIP6_NAT = '2001:2:0:100::1';
const VIP6_DSR = '2001:2:0:100::2';
/** Backend ids for 3 IPv4 and 3 IPv6 services of up to 1000 backends each. */
const MAX_BACKENDS = 8192;

/** Targets the figures are held to (reported, not enforced): v4 NAT TCP ns over the empty program;
 * v6 NAT TCP over empty <= v6OverV4 x v4 NAT TCP over empty; every case at the most backends <=
 * scaleRatio x at the fewest. */
export const TARGETS = { natTcpOverEmptyNs: 40, scaleRatio: 1.05, v6OverV4: 1.3 };

export interface ProgBenchOptions {
  calls?: number;      // test runs per measurement run (>= 1), default 100,000
  runs?: number;       // measurement runs per case (>= 1), default 5
  loads?: number;      // separate loads of every program, each measured in every run (>= 1), default 3
  cpu?: number;        // CPU to pin to, default the last one
  backendCounts?: number[]; // default [2, 1000]
  flowCache?: boolean; // the flow-affinity cache setting, default on (the daemon's default)
  objectPath?: string; // default bpf/lb.o (to compare builds)
  /** A second build measured in the same interleaved runs; its cases are named "<case> [baseline]". */
  baselineObjectPath?: string;
  /** More builds measured in the same interleaved runs; their cases are named "<case> [label]". */
  otherBuilds?: Array<{ label: string; objectPath: string }>;
}

export interface ProgBenchCase {
  name: string;
  backends: number | null;  // null for the empty program
  action: string;           // the XDP action every call returned
  ns: Summary;              // per-packet ns: median, min, max over runs x loads (each: trimmed mean of its calls)
  overEmptyNs: number;      // median - empty median
}

export interface ProgBenchTarget { name: string; value: number; limit: number; ok: boolean }

export interface ProgBenchResult {
  calls: number; runs: number; loads: number; cpu: number; kernel: string; flowCache: boolean;
  empty: ProgBenchCase;
  cases: ProgBenchCase[];
  targets: ProgBenchTarget[];
}

const ACTION_NAMES = ['aborted', 'drop', 'pass', 'tx', 'redirect'];

function backendIp(i: number): string {
  return u32ToIp(ipToU32('198.19.1.0') + i); // i >= 1; all inside 198.19.0.0/16 on the veth
}

function backendIp6(i: number): string {
  return `2001:2:1::${i.toString(16)}`; // i >= 1; inside 2001:2:1::/64 on the veth
}

/** The services of a plane with `backendCount` backends each: NAT TCP :80, NAT UDP :53, DSR TCP :80,
 * and with `v6` the same three on IPv6 VIPs (after the IPv4 ones: those keep ids 1..3). */
function stateFor(backendCount: number, flowCache: boolean, v6: boolean): DataplaneState {
  const pool = (ip: (i: number) => string): DataplaneBackend[] => Array.from({ length: backendCount }, (_, i) => ({
    address: ip(i + 1), port: 0, weight: 1, healthy: true, draining: false,
  }));
  const backends = pool(backendIp);
  const backends6 = pool(backendIp6);
  return {
    services: [
      { name: 'tcp', vip: VIP_NAT, port: 80, protocol: 'tcp', mode: 'nat', tableSize: TABLE_SIZE, backends },
      { name: 'udp', vip: VIP_NAT, port: 53, protocol: 'udp', mode: 'nat', tableSize: TABLE_SIZE, backends },
      { name: 'dsr', vip: VIP_DSR, port: 80, protocol: 'tcp', mode: 'dsr', tableSize: TABLE_SIZE, backends },
      ...(v6 ? [
        { name: 'tcp6', vip: VIP6_NAT, port: 80, protocol: 'tcp', mode: 'nat', tableSize: TABLE_SIZE, backends: backends6 },
        { name: 'udp6', vip: VIP6_NAT, port: 53, protocol: 'udp', mode: 'nat', tableSize: TABLE_SIZE, backends: backends6 },
        { name: 'dsr6', vip: VIP6_DSR, port: 80, protocol: 'tcp', mode: 'dsr', tableSize: TABLE_SIZE, backends: backends6 },
      ] as const : []),
    ],
    settings: { fragPolicy: 'drop', sampleRate: 0, flowCache },
  };
}

interface PacketCase { name: string; frame: Buffer; action: number }

function packetCases(): PacketCase[] {
  const eth = { dst: LB_MAC, src: CLIENT_MAC };
  const payload = Buffer.alloc(18, 0x61);
  return [
    { name: 'non-VIP pass', action: 2, frame: buildFrame({ eth, ip: { src: CLIENT, dst: '198.18.0.99', proto: IPPROTO_TCP }, tcp: { sport: 40000, dport: 80, payload } }) },
    // TCP cases are segments of an established connection (ACK|PSH: the flow cache answers);
    // a SYN opens a connection and always takes the services + Maglev path (its own row).
    { name: 'NAT TCP', action: 3, frame: buildFrame({ eth, ip: { src: CLIENT, dst: VIP_NAT, proto: IPPROTO_TCP }, tcp: { sport: 40000, dport: 80, flags: 0x18, payload } }) },
    { name: 'NAT TCP SYN', action: 3, frame: buildFrame({ eth, ip: { src: CLIENT, dst: VIP_NAT, proto: IPPROTO_TCP }, tcp: { sport: 40001, dport: 80 } }) },
    { name: 'NAT UDP', action: 3, frame: buildFrame({ eth, ip: { src: CLIENT, dst: VIP_NAT, proto: IPPROTO_UDP }, udp: { sport: 40000, dport: 53, payload } }) },
    { name: 'reverse NAT', action: 3, frame: buildFrame({ eth, ip: { src: backendIp(1), dst: CLIENT, proto: IPPROTO_TCP }, tcp: { sport: 80, dport: 40000, flags: 0x12, payload } }) },
    { name: 'DSR', action: 3, frame: buildFrame({ eth, ip: { src: CLIENT, dst: VIP_DSR, proto: IPPROTO_TCP }, tcp: { sport: 40000, dport: 80, flags: 0x18, payload } }) },
    { name: 'ICMP echo', action: 3, frame: buildFrame({ eth, ip: { src: CLIENT, dst: VIP_NAT, proto: IPPROTO_ICMP }, icmp: { type: 8, rest: 0x00010001, payload } }) },
    // IPv6: the same classes (frames as long as their IPv4 siblings' L4 part).
    { name: 'v6 NAT TCP', action: 3, frame: buildFrame6({ eth, ip: { src: CLIENT6, dst: VIP6_NAT }, tcp: { sport: 40000, dport: 80, flags: 0x18, payload } }) },
    { name: 'v6 NAT UDP', action: 3, frame: buildFrame6({ eth, ip: { src: CLIENT6, dst: VIP6_NAT }, udp: { sport: 40000, dport: 53, payload } }) },
    { name: 'v6 reverse NAT', action: 3, frame: buildFrame6({ eth, ip: { src: backendIp6(1), dst: CLIENT6 }, tcp: { sport: 80, dport: 40000, flags: 0x12, payload } }) },
    { name: 'v6 DSR', action: 3, frame: buildFrame6({ eth, ip: { src: CLIENT6, dst: VIP6_DSR }, tcp: { sport: 40000, dport: 80, flags: 0x18, payload } }) },
    { name: 'v6 ICMPv6 echo', action: 3, frame: buildFrame6({ eth, ip: { src: CLIENT6, dst: VIP6_NAT }, icmp6: { type: 128, rest: 0x00010001, payload } }) },
  ];
}

/**
 * The mean of the middle 80 % of `values` (the slowest and fastest 10 % dropped: interrupts,
 * preemption). The kernel reports each call's duration in whole timer steps (10 ns on this
 * kind of VM), so a median of calls can only be a multiple of the step (a case at 94 ns reads
 * 90 or 100); the mean of many dithered steps resolves well under one.
 */
function trimmedMean(values: Float64Array): number {
  const sorted = Float64Array.from(values).sort();
  const drop = Math.floor(sorted.length / 10);
  let sum = 0;
  for (let i = drop; i < sorted.length - drop; i++) sum += sorted[i];
  return sum / Math.max(1, sorted.length - 2 * drop);
}


/** Creates the namespace, its veth, addresses and neighbours. @throws Error when ip fails. */
function createTopology(maxBackends: number): number {
  createNamespace(PROG_BENCH_NETNS);
  createVeth(
    { netns: PROG_BENCH_NETNS, name: IFNAME, mac: LB_MAC, cidrs: ['198.18.0.1/24', '198.19.0.1/16'] },
    { netns: PROG_BENCH_NETNS, name: PEER, mac: '02:00:00:b0:00:02', cidrs: [] },
  );
  // IPv6 on the one interface the IPv6 cases need (the namespace has it off): no traffic flows,
  // test runs only, so no neighbour discovery chatter either (nodad, permanent neighbours).
  setSysctls(PROG_BENCH_NETNS, {
    'net.ipv4.conf.all.forwarding': '1', [`net.ipv6.conf.${IFNAME}.disable_ipv6`]: '0', 'net.ipv6.conf.all.forwarding': '1',
  });
  const neigh = [
    `neigh replace ${CLIENT} lladdr ${CLIENT_MAC} dev ${IFNAME} nud permanent`,
    // IPv6: no duplicate address detection (the addresses are usable at once), client and backends.
    `addr add 2001:2::1/64 dev ${IFNAME} nodad`, `addr add 2001:2:1::fffe/64 dev ${IFNAME} nodad`,
    `neigh replace ${CLIENT6} lladdr ${CLIENT_MAC} dev ${IFNAME} nud permanent`,
  ];
  for (let i = 1; i <= maxBackends; i++) {
    const mac = `02:00:00:b1:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;
    neigh.push(`neigh replace ${backendIp(i)} lladdr ${mac} dev ${IFNAME} nud permanent`);
    neigh.push(`neigh replace ${backendIp6(i)} lladdr ${mac} dev ${IFNAME} nud permanent`);
  }
  run('ip', ['-n', PROG_BENCH_NETNS, '-batch', '-'], { input: neigh.join('\n') + '\n' });
  const links = JSON.parse(run('ip', ['-n', PROG_BENCH_NETNS, '-j', 'link', 'show', IFNAME])) as Array<{ ifindex: number }>;
  return links[0].ifindex;
}

function positiveInt(value: number | undefined, fallback: number, what: string): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < 1) throw new Error(`bench prog: ${what} must be a positive integer, got ${value}`);
  return v;
}

/**
 * Runs the benchmark. Needs root, bpf/lb.o and bpf/xdp_pass.o. Removes its namespace after,
 * also on failure.
 * @throws Error for bad options, when a case does not return its expected XDP action (the
 *   message names the case and the action), or BpfError from the bridge.
 */
export function runProgBench(opts: ProgBenchOptions = {}): ProgBenchResult {
  const calls = positiveInt(opts.calls, 100_000, '--calls');
  const runs = positiveInt(opts.runs, 5, '--runs');
  const loads = positiveInt(opts.loads, 3, '--loads');
  const backendCounts = opts.backendCounts ?? [2, 1000];
  const flowCache = opts.flowCache ?? true;
  const cpus = os.cpus().length;
  const cpu = opts.cpu ?? cpus - 1;
  if (!Number.isInteger(cpu) || cpu < 0 || cpu >= cpus) throw new Error(`bench prog: --cpu ${opts.cpu} is not a CPU of this machine (0..${cpus - 1})`);

  const opened: Array<{ close(): void }> = [];
  let restore = (): void => {};
  try {
    const ifindex = createTopology(Math.max(...backendCounts));
    restore = enterNetns(PROG_BENCH_NETNS);
    const emptyProgs = Array.from({ length: loads }, () => {
      const emptyObj = BpfObject.load(path.join(repoRoot(), 'bpf', 'xdp_pass.o'));
      opened.push(emptyObj);
      const prog = emptyObj.program('xdp_pass');
      opened.push(prog);
      return prog;
    });
    // The IPv6 cases run on the build under test only (a baseline build, e.g. one from before the
    // IPv6 path, would pass them): baselines compare the IPv4 cases.
    const builds = [{ suffix: '', objectPath: opts.objectPath, v6: true }];
    if (opts.baselineObjectPath) builds.push({ suffix: ' [baseline]', objectPath: opts.baselineObjectPath, v6: false });
    for (const b of opts.otherBuilds ?? []) builds.push({ suffix: ` [${b.label}]`, objectPath: b.objectPath, v6: false });
    const planes = builds.flatMap((build) => backendCounts.flatMap((n) => Array.from({ length: loads }, () => {
      const dp = Dataplane.load({ hashSeed: 0, objectPath: build.objectPath, maxBackends: MAX_BACKENDS });
      opened.push(dp);
      new Balancer(dp).applyState(stateFor(n, flowCache, build.v6));
      // As at attach: the program knows the interface's MAC, so every frame takes the MAC check.
      dp.writeInterfaceMac(IFNAME, ifindex);
      return { suffix: build.suffix, backends: n, program: dp.program, v6: build.v6 };
    })));

    const cases = packetCases();
    type Slot = { name: string; backends: number | null; program: Program; frame: Buffer; action: number; perRun: number[] };
    const slots: Slot[] = emptyProgs.map((program) => ({ name: 'empty program', backends: null, program, frame: cases[1].frame, action: 2, perRun: [] }));
    for (const p of planes) for (const c of cases.filter((x) => p.v6 || !x.name.startsWith('v6 '))) slots.push({ name: c.name + p.suffix, backends: p.backends, program: p.program, frame: c.frame, action: c.action, perRun: [] });

    // Check every case takes the path it is meant to measure before timing it.
    for (const s of slots) {
      const got = s.program.testRun(s.frame, { ingressIfindex: ifindex }).retval;
      if (got !== s.action) {
        throw new Error(`bench prog: case "${s.name}" (${s.backends ?? '-'} backends) returned ${ACTION_NAMES[got] ?? got}, expected ${ACTION_NAMES[s.action]}`);
      }
    }
    // A warm-up pass (not counted) faults in the maps' pages and the JIT image.
    for (const s of slots) s.program.testRunMany(s.frame, Math.min(calls, 10_000), { ingressIfindex: ifindex, pinCpu: cpu });
    // Each run interleaves the cases in CHUNKS slices so that drift (frequency, other load on a
    // shared machine) reaches every case alike; a run's figure is the trimmed mean of all its
    // calls (trimmedMean: the timer's step would quantise a median).
    const CHUNKS = 10;
    for (let r = 0; r < runs; r++) {
      const durations = slots.map(() => new Float64Array(calls));
      for (let chunk = 0; chunk < CHUNKS; chunk++) {
        const from = Math.floor((calls * chunk) / CHUNKS);
        const count = Math.floor((calls * (chunk + 1)) / CHUNKS) - from;
        if (count === 0) continue;
        slots.forEach((s, i) => {
          const res = s.program.testRunMany(s.frame, count, { ingressIfindex: ifindex, pinCpu: cpu });
          if ((res.retvals[s.action] ?? 0) !== count) {
            throw new Error(`bench prog: case "${s.name}" returned ${JSON.stringify(res.retvals)} over ${count} calls, expected all ${ACTION_NAMES[s.action]}`);
          }
          durations[i].set(res.durationsNs, from);
        });
      }
      slots.forEach((s, i) => s.perRun.push(trimmedMean(durations[i])));
    }

    const toCase = (s: Slot, emptyMedian: number): ProgBenchCase => {
      const ns = summarize(s.perRun);
      return { name: s.name, backends: s.backends, action: ACTION_NAMES[s.action], ns, overEmptyNs: ns.median - emptyMedian };
    };
    // The loads of one case pool their runs (in the order the cases first appear).
    const byCase = new Map<string, Slot>();
    for (const s of slots) {
      const key = `${s.name}\u0000${s.backends}`;
      const seen = byCase.get(key);
      if (seen) seen.perRun.push(...s.perRun);
      else byCase.set(key, { ...s, perRun: [...s.perRun] });
    }
    const pooled = [...byCase.values()];
    const emptyMedian = summarize(pooled[0].perRun).median;
    const empty = toCase(pooled[0], emptyMedian);
    const measured = pooled.slice(1).map((s) => toCase(s, emptyMedian));
    return {
      calls, runs, loads, cpu, kernel: os.release(), flowCache,
      empty, cases: measured, targets: targetsOf(measured, backendCounts),
    };
  } finally {
    for (const h of opened.reverse()) {
      try { h.close(); } catch { /* closing the rest matters more */ }
    }
    restore();
    deleteNamespace(PROG_BENCH_NETNS);
  }
}

function targetsOf(cases: ProgBenchCase[], counts: number[]): ProgBenchTarget[] {
  const out: ProgBenchTarget[] = [];
  const small = Math.min(...counts);
  const large = Math.max(...counts);
  const natSmall = cases.find((c) => c.name === 'NAT TCP' && c.backends === small);
  if (natSmall) {
    out.push({ name: `NAT TCP ns over empty (${small} backends)`, value: natSmall.overEmptyNs, limit: TARGETS.natTcpOverEmptyNs, ok: natSmall.overEmptyNs <= TARGETS.natTcpOverEmptyNs });
  }
  const v6Small = cases.find((c) => c.name === 'v6 NAT TCP' && c.backends === small);
  if (natSmall && v6Small) {
    const value = v6Small.overEmptyNs / natSmall.overEmptyNs;
    out.push({ name: `v6 NAT TCP / NAT TCP, ns over empty (${small} backends)`, value, limit: TARGETS.v6OverV4, ok: value <= TARGETS.v6OverV4 });
  }
  if (large !== small) {
    for (const c of cases.filter((x) => x.backends === large)) {
      const base = cases.find((x) => x.name === c.name && x.backends === small);
      if (!base) continue;
      const value = c.ns.median / base.ns.median;
      out.push({ name: `${c.name}: ${large} / ${small} backends`, value, limit: TARGETS.scaleRatio, ok: value <= TARGETS.scaleRatio });
    }
  }
  return out;
}

/** The result as a plain-text table. */
export function formatProgBench(r: ProgBenchResult): string {
  const lines: string[] = [];
  lines.push(`xdp_lb per-packet cost: BPF_PROG_TEST_RUN, ${r.calls} calls x ${r.runs} runs x ${r.loads} loads, pinned to CPU ${r.cpu}, kernel ${r.kernel}, flow cache ${r.flowCache ? 'on' : 'off'}`);
  lines.push('(per case: median over runs x loads of each run\'s 80 % trimmed mean of its calls)');
  lines.push('case               backends  action    median ns  min..max ns      ns over empty');
  const row = (c: ProgBenchCase) => lines.push(
    `${c.name.padEnd(18)} ${String(c.backends ?? '-').padStart(8)}  ${c.action.padEnd(8)} ${c.ns.median.toFixed(1).padStart(10)}  ${`${c.ns.min.toFixed(1)}..${c.ns.max.toFixed(1)}`.padEnd(16)} ${c.backends === null ? '' : c.overEmptyNs.toFixed(1).padStart(8)}`);
  row(r.empty);
  for (const c of r.cases) row(c);
  lines.push('targets:');
  for (const t of r.targets) lines.push(`  ${t.ok ? 'ok  ' : 'MISS'} ${t.name}: ${t.value.toFixed(t.limit < 2 ? 3 : 1)} (limit ${t.limit})`);
  return lines.join('\n');
}
