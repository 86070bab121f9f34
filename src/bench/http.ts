/**
 * `xdplb bench http`: wrk from the client host through the VIP to three backends, per load
 * balancer, with keep-alive and with a new connection per request; `reps` repetitions (default
 * 3) round-robin over the cases, medians reported. Bounded: every wrk run lasts `seconds`
 * (default 5).
 */
import { readFileSync } from 'node:fs';
import { setUpHttpTopology, tearDownHttpTopology, httpLbNapiPids, type HttpTopology } from './http-topology';
import { balancerConfig, originConfig, startHaproxy, stopHaproxy, type HaproxyInstance } from './haproxy';
import { addNftDnat, removeNftDnat } from './nft';
import { runWrk, type WrkResult } from './wrk';
import { withBenchLock } from './lock';
import { run, tryRun } from './exec';
import { tasksCpuNs } from './netns';
import { ratio, summarize } from './stats';
import { xdplbHttpCase } from './xdplb-cases';
import type { HttpLbCase } from './cases';

export type ConnectionMode = 'keepalive' | 'close';

/** One wrk run, with what the lb spent on it. */
export interface HttpRep extends WrkResult {
  /** lb CPU (NAPI threads + lb processes) per request, microseconds. */
  lbCpuUsPerRequest: number | null;
  /** lb CPU time over wall time: 1.0 = one CPU busy. */
  lbCpuUtilisation: number;
}

/** A case and connection mode over its repetitions: medians (range of req/s), sums of counts. */
export interface HttpCaseResult extends HttpRep {
  name: string;
  label: string;
  connection: ConnectionMode;
  requestsPerSecondRange: { min: number; max: number };
  reps: HttpRep[];
}

export interface HttpTarget { description: string; ratio: number | null; goal: number; met: boolean | null }

export interface HttpReport {
  kind: 'http';
  reps: number;
  seconds: number;
  connections: number;
  threads: number;
  backends: number;
  results: HttpCaseResult[];
  failures: Array<{ name: string; error: string }>;
  targets: HttpTarget[];
  method: string;
}

export interface HttpOptions {
  /** Repetitions of every case, round-robin (default 3). */
  reps?: number;
  seconds?: number;
  connections?: number;
  threads?: number;
  /** Case names to run (default all). */
  only?: string[];
  onProgress?: (message: string) => void;
}

function processCpuNs(pid: number): number {
  // utime + stime of the whole process (all threads), in clock ticks of 10 ms.
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 1e7;
}

function lbCpuNs(topology: HttpTopology, processPids: number[]): number {
  let total = tasksCpuNs(httpLbNapiPids(topology));
  for (const pid of processPids) {
    try { total += processCpuNs(pid); } catch { /* exited */ }
  }
  return total;
}

const nftablesCase: HttpLbCase = {
  name: 'nftables', label: 'nftables DNAT (jhash)',
  async setUp(t) {
    addNftDnat({ netns: t.lb.netns, vip: t.vip, port: t.port, proto: 'tcp', backends: t.backends.map((b) => b.address) });
    return [];
  },
  async tearDown(t) { removeNftDnat(t.lb.netns); },
  url: (t) => `http://${t.vip}:${t.port}/`,
};

/** HAProxy on the lb host, listening on the VIP (added to the lb's lo for the case). */
function haproxyCase(): HttpLbCase {
  let instance: HaproxyInstance | null = null;
  return {
    name: 'haproxy', label: 'HAProxy (L7, round robin)',
    async setUp(t) {
      run('ip', ['addr', 'add', `${t.vip}/32`, 'dev', 'lo'], { netns: t.lb.netns });
      instance = await startHaproxy(t.lb.netns, balancerConfig(t.vip, t.port, t.backends.map((b) => `${b.address}:${t.port}`)), t.port);
      return instance.child.pid ? [instance.child.pid] : [];
    },
    async tearDown(t) {
      try {
        if (instance) await stopHaproxy(instance);
      } finally {
        instance = null;
        tryRun('ip', ['addr', 'del', `${t.vip}/32`, 'dev', 'lo'], { netns: t.lb.netns });
      }
    },
    url: (t) => `http://${t.vip}:${t.port}/`,
  };
}

const directCase: HttpLbCase = {
  name: 'direct', label: 'direct to one backend (no lb)',
  async setUp() { return []; },
  async tearDown() { /* nothing */ },
  url: (t) => `http://${t.backends[0].address}:${t.port}/`,
};

/** The IPv6 rows' kernel baseline: nftables `table ip6` DNAT. */
const nftables6Case: HttpLbCase = {
  name: 'nftables6', label: 'IPv6 nftables DNAT (ip6, jhash)', family: 6,
  async setUp(t) {
    addNftDnat({ netns: t.lb.netns, vip: t.vip6, port: t.port, proto: 'tcp', backends: t.backends.map((b) => b.address6) });
    return [];
  },
  async tearDown(t) { removeNftDnat(t.lb.netns); },
  url: (t) => `http://[${t.vip6}]:${t.port}/`,
};

const direct6Case: HttpLbCase = {
  name: 'direct6', label: 'IPv6 direct to one backend (no lb)', family: 6,
  async setUp() { return []; },
  async tearDown() { /* nothing */ },
  url: (t) => `http://[${t.backends[0].address6}]:${t.port}/`,
};

/** Every case of the HTTP benchmark in run order: the IPv4 rows, then the IPv6 ones. */
export function httpCases(): HttpLbCase[] {
  return [xdplbHttpCase('nat'), xdplbHttpCase('dsr'), nftablesCase, haproxyCase(), directCase,
    xdplbHttpCase('nat', 6), xdplbHttpCase('dsr', 6), nftables6Case, direct6Case];
}

export const HTTP_METHOD = 'wrk in the client namespace, fixed duration per case and connection mode, repetitions round-robin '
  + '(median req/s and median of each latency percentile); origin servers are '
  + 'HAProxy instances answering 200 from memory; lb CPU = CPU time of the lb namespace\'s threaded-NAPI kthreads '
  + '(where its packet processing runs) plus its user-space load balancer process (HAProxy), divided by requests.';

/**
 * Runs the HTTP benchmark. Namespaces, servers and rules are removed in `finally`, failures included.
 * A case that fails is recorded in `failures` and the others still run.
 * @throws Error when the topology or the origin servers cannot be set up.
 */
export async function runHttpBench(options: HttpOptions = {}): Promise<HttpReport> {
  // One benchmark at a time per host: they share namespace and pin names.
  return withBenchLock(() => runHttpBenchLocked(options),
    { onWait: (pid) => options.onProgress?.(`waiting for another xdplb benchmark (pid ${pid}) to finish`) });
}

async function runHttpBenchLocked(options: HttpOptions): Promise<HttpReport> {
  const seconds = options.seconds ?? 5;
  const reps = options.reps ?? 3;
  const connections = options.connections ?? 32;
  const threads = options.threads ?? 2;
  const progress = options.onProgress ?? (() => {});
  const all = httpCases();
  const unknown = (options.only ?? []).filter((n) => !all.some((c) => c.name === n));
  if (unknown.length) throw new Error(`unknown case(s) ${unknown.join(', ')}; known: ${all.map((c) => c.name).join(', ')}`);
  const cases = all.filter((c) => !options.only || options.only.includes(c.name));
  if (!Number.isInteger(reps) || reps < 1 || reps > 20) throw new Error(`http: reps=${reps} must be an integer in 1..20`);
  if (!(seconds > 0 && seconds <= 120)) throw new Error(`http: seconds=${seconds} must be in (0, 120]`);
  const repsOf: Record<string, HttpRep[]> = {};
  for (const c of cases) for (const m of ['keepalive', 'close']) repsOf[`${c.name}/${m}`] = [];
  const failures: Array<{ name: string; error: string }> = [];
  const origins: HaproxyInstance[] = [];
  tearDownHttpTopology();
  try {
    const topology = setUpHttpTopology();
    for (const b of topology.backends) origins.push(await startHaproxy(b.netns, originConfig(topology.port), topology.port));
    const broken = new Set<string>();
    for (let rep = 1; rep <= reps; rep++) {
      for (const c of cases) {
        if (broken.has(c.name)) continue;
        let pids: number[] = [];
        try {
          progress(`http: rep ${rep}/${reps} ${c.name}`);
          pids = await c.setUp(topology);
          for (const connection of ['keepalive', 'close'] as ConnectionMode[]) {
            progress(`http: rep ${rep}/${reps} ${c.name} ${connection} (${seconds} s)`);
            const cpuBefore = lbCpuNs(topology, pids);
            const started = process.hrtime.bigint();
            const r = runWrk({ netns: topology.client.netns, url: c.url(topology), seconds, connections, threads, closeEach: connection === 'close' });
            const wallNs = Number(process.hrtime.bigint() - started);
            const cpuNs = lbCpuNs(topology, pids) - cpuBefore;
            if (r.requests === 0) throw new Error(`no request answered (${connection}, ${r.errors} socket errors)`);
            repsOf[`${c.name}/${connection}`].push({
              requests: r.requests, seconds: r.seconds, requestsPerSecond: r.requestsPerSecond, latencyUs: r.latencyUs,
              errors: r.errors, non2xx: r.non2xx, lbCpuUsPerRequest: cpuNs / 1000 / r.requests, lbCpuUtilisation: cpuNs / wallNs,
            });
          }
        } catch (err) {
          failures.push({ name: c.name, error: `rep ${rep}: ${(err as Error).message}` });
          broken.add(c.name);
        } finally {
          await c.tearDown(topology).catch((err: Error) => failures.push({ name: `${c.name} teardown`, error: err.message }));
        }
      }
    }
  } finally {
    for (const o of origins) await stopHaproxy(o).catch(() => {});
    tearDownHttpTopology();
  }
  const results: HttpCaseResult[] = [];
  for (const c of cases) {
    for (const connection of ['keepalive', 'close'] as ConnectionMode[]) {
      const rs = repsOf[`${c.name}/${connection}`];
      if (rs.length) results.push(combineReps(c, connection, rs));
    }
  }
  return {
    kind: 'http', reps, seconds, connections, threads, backends: 3, results, failures,
    targets: httpTargets(results), method: HTTP_METHOD,
  };
}

function combineReps(c: HttpLbCase, connection: ConnectionMode, rs: HttpRep[]): HttpCaseResult {
  const med = (f: (r: HttpRep) => number) => summarize(rs.map(f)).median;
  const rps = summarize(rs.map((r) => r.requestsPerSecond));
  const cpu = rs.map((r) => r.lbCpuUsPerRequest).filter((v): v is number => v !== null);
  return {
    name: c.name, label: c.label, connection, reps: rs,
    requests: rs.reduce((a, r) => a + r.requests, 0), seconds: rs.reduce((a, r) => a + r.seconds, 0),
    requestsPerSecond: rps.median, requestsPerSecondRange: { min: rps.min, max: rps.max },
    latencyUs: { p50: med((r) => r.latencyUs.p50), p99: med((r) => r.latencyUs.p99), p999: med((r) => r.latencyUs.p999), max: Math.max(...rs.map((r) => r.latencyUs.max)) },
    errors: rs.reduce((a, r) => a + r.errors, 0), non2xx: rs.reduce((a, r) => a + r.non2xx, 0),
    lbCpuUsPerRequest: cpu.length ? summarize(cpu).median : null,
    lbCpuUtilisation: med((r) => r.lbCpuUtilisation),
  };
}

function rps(results: HttpCaseResult[], name: string, connection: ConnectionMode): number | null {
  return results.find((r) => r.name === name && r.connection === connection)?.requestsPerSecond ?? null;
}

/** The HTTP targets: xdplb >= 0.97x direct and >= 2x HAProxy, per connection mode and xdplb mode
 * (IPv6 rows: >= 0.97x direct6). */
export function httpTargets(results: HttpCaseResult[]): HttpTarget[] {
  const targets: HttpTarget[] = [];
  for (const mode of ['nat', 'dsr']) {
    for (const connection of ['keepalive', 'close'] as ConnectionMode[]) {
      const mine = rps(results, `xdplb-${mode}`, connection);
      for (const [other, goal] of [['direct', 0.97], ['haproxy', 2]] as Array<[string, number]>) {
        const r = ratio(mine, rps(results, other, connection));
        targets.push({ description: `xdplb ${mode} / ${other} (${connection})`, ratio: r, goal, met: r === null ? null : r >= goal });
      }
      // IPv6: the same goal against the direct path, when the IPv6 rows ran.
      const mine6 = rps(results, `xdplb-${mode}6`, connection);
      const direct6 = rps(results, 'direct6', connection);
      if (mine6 !== null || direct6 !== null) {
        const r = ratio(mine6, direct6);
        targets.push({ description: `IPv6 xdplb ${mode} / direct6 (${connection})`, ratio: r, goal: 0.97, met: r === null ? null : r >= 0.97 });
      }
    }
  }
  return targets;
}

