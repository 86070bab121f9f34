/**
 * Real xdplb daemons in etcd mode on the nodes of a cluster lab (`lab up --nodes N --etcd 1|3`),
 * started with the real CLI (`xdplb daemon --store URL --node-name lbK --bird-dir --pin-dir`)
 * inside each node's namespace and stopped by pid; their APIs made reachable from the host
 * (host-forward.ts) so that callers use fetch. Used by test/cluster-etcd.test.ts and
 * `xdplb bench cluster` (src/bench/cluster.ts).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { BpfMap, Program, inNetns } from '../bpf';
import { buildFrame, parseFrame, IPPROTO_TCP } from '../dataplane/packet';
import { LB, LbBackendCodec, LbServiceCodec, LbServiceKeyCodec, decodeU32, encodeU32 } from '../dataplane/abi';
import { pinnedTableOuterValue } from '../dataplane/maglev-tables';
import { clusterTopology } from './cluster-topology';
import { readClusterState, startLabProcess } from './cluster-lab';
import { startHostForward } from './host-forward';
import { processGone, pidCommandLine, run } from './netns';
import { repoRoot, stateDir } from './paths';

export interface ClusterNodesOptions {
  prefix: string;
  /** Number of lb nodes of the lab. */
  nodes: number;
  /** Store URL; default etcd://<first member>:2379/<prefix>. */
  store?: string;
  /** The API port inside every node's namespace. */
  apiPort: number;
  /** Host ports: node K's API is at 127.0.0.1:(hostPortBase + K). */
  hostPortBase: number;
  /** Admin token (written into the seed). */
  token: string;
  /** Where configs, BIRD directories and logs go. */
  dir: string;
}

export interface NodeProcess { pid: number; object?: string }

export interface ApiAnswer { status: number; body: any; headers: Headers }

const PROTO = { tcp: 6, udp: 17 } as const;

function sleep(ms: number): Promise<void> { return new Promise((r) => setTimeout(r, ms)); }

/** The node-local YAML every node runs (same interface names in every node). */
export function nodeLocalYaml(prefix: string, apiPort: number): string {
  return [
    'interfaces:', `  - { name: ${prefix}-lb0, mode: native }`, `  - { name: ${prefix}-lb1, mode: native }`,
    `api: { listen: 127.0.0.1:${apiPort} }`,
    'bgp: { localAs: 65001, peers: [{ address: 198.18.10.1, as: 65000 }], bfd: true, holdTime: 3 }',
    '',
  ].join('\n');
}

/**
 * The cluster's daemons: start/stop by pid, API calls through host forwards, kernel reads of
 * each node's pins.
 */
export class ClusterNodes {
  readonly procs = new Map<number, NodeProcess>();
  private forwards = new Map<number, number>();
  readonly store: string;

  constructor(readonly o: ClusterNodesOptions) {
    const t = clusterTopology({ prefix: o.prefix, nodes: o.nodes, etcd: 1 });
    this.store = o.store ?? `etcd://${t.etcd[0].address}:2379/${o.prefix}`;
    mkdirSync(o.dir, { recursive: true });
  }

  netns(k: number): string { return `${this.o.prefix}-lb${k}`; }
  pinDir(k: number): string { return `/sys/fs/bpf/${this.o.prefix}-lb${k}`; }
  birdDir(k: number): string { return path.join(this.o.dir, `bird${k}`); }
  url(k: number): string { return `http://127.0.0.1:${this.o.hostPortBase + k}`; }
  get names(): string[] { return Array.from({ length: this.o.nodes }, (_, i) => `lb${i + 1}`); }

  /** `xdplb store init` inside node 1's namespace (it reaches etcd on the backend LAN). @throws Error when it fails. */
  seed(seedYaml: string): void {
    const file = path.join(this.o.dir, 'seed.yaml');
    writeFileSync(file, seedYaml);
    const r = run('nsenter', [`--net=/run/netns/${this.netns(1)}`, process.execPath, path.join(repoRoot(), 'dist/src/cli.js'),
      'store', 'init', '--store', this.store, '-f', file, '--force'], { allowFail: true, timeoutMs: 30_000 });
    if (r.status !== 0) throw new Error(`store init failed: ${r.stderr.trim() || r.stdout.trim()}`);
  }

  /** Starts node k's daemon with the real CLI (recorded in the lab so `lab down` stops it), waits for its API. */
  async start(k: number, opts: { object?: string; timeoutMs?: number } = {}): Promise<NodeProcess> {
    // The daemon and its forwarder run detached and unref'd: while this waits for them, a timer
    // of its own holds the process (without it a run was seen to end, exit code 0, mid-start).
    const holdOn = setInterval(() => undefined, 1000);
    try {
      return await this.startHeld(k, opts);
    } finally {
      clearInterval(holdOn);
    }
  }

  private async startHeld(k: number, opts: { object?: string; timeoutMs?: number }): Promise<NodeProcess> {
    const old = this.procs.get(k);
    if (old && !processGone(old.pid)) throw new Error(`node lb${k} is already running (pid ${old.pid})`);
    const config = path.join(this.o.dir, `lb${k}.yaml`);
    if (!existsSync(config)) writeFileSync(config, nodeLocalYaml(this.o.prefix, this.o.apiPort));
    const argv = [process.execPath, path.join(repoRoot(), 'dist/src/cli.js'), 'daemon', '--config', config, '--store', this.store,
      '--node-name', `lb${k}`, '--bird-dir', this.birdDir(k), '--pin-dir', this.pinDir(k), ...(opts.object ? ['--object', opts.object] : [])];
    const rec = startLabProcess(this.o.prefix, `daemon-lb${k}`, this.netns(k), argv);
    const proc = { pid: rec.pid, object: opts.object };
    this.procs.set(k, proc);
    if (!this.forwards.has(k)) {
      const fwd = await startHostForward({ prefix: this.o.prefix, netns: this.netns(k), listenPort: this.o.hostPortBase + k, targetPort: this.o.apiPort,
        logFile: path.join(this.o.dir, `forward${k}.log`) });
      this.forwards.set(k, fwd.pid);
    }
    const end = Date.now() + (opts.timeoutMs ?? 40_000);
    for (;;) {
      if (processGone(rec.pid)) throw new Error(`daemon lb${k} exited; see ${path.join(stateDir(this.o.prefix), `daemon-lb${k}.log`)}`);
      try {
        if ((await this.api(k, 'GET', '/api/v1/cluster', undefined, 2000)).status === 200) return proc;
      } catch { /* not up yet */ }
      if (Date.now() > end) throw new Error(`daemon lb${k} did not answer within ${opts.timeoutMs ?? 40_000} ms`);
      await sleep(200);
    }
  }

  /** The daemon's ordinary stop (SIGTERM to its pid: withdraw, BIRD down, program stays); SIGKILL after `graceMs`. */
  async stop(k: number, graceMs = 15_000): Promise<void> {
    const p = this.procs.get(k);
    if (!p) return;
    this.procs.delete(k);
    if (processGone(p.pid)) return;
    try { process.kill(p.pid, 'SIGTERM'); } catch { return; }
    const end = Date.now() + graceMs;
    while (!processGone(p.pid) && Date.now() < end) await sleep(50);
    if (!processGone(p.pid)) { try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ } }
  }

  birdPid(k: number): number {
    try { return Number(readFileSync(path.join(this.birdDir(k), 'bird.pid'), 'utf8').trim()); } catch { return 0; }
  }

  /** Dies hard: node k's links down, kill -9 of its daemon and of its BIRD (by pid). */
  killHard(k: number): void {
    const bird = this.birdPid(k);
    for (const leg of ['lb0', 'lb1']) run('ip', ['-n', this.netns(k), 'link', 'set', `${this.o.prefix}-${leg}`, 'down'], { allowFail: true });
    const p = this.procs.get(k);
    if (p && !processGone(p.pid)) process.kill(p.pid, 'SIGKILL');
    this.procs.delete(k);
    if (bird && !processGone(bird) && pidCommandLine(bird).includes(this.birdDir(k))) process.kill(bird, 'SIGKILL');
  }

  /** Node k's links up again (after killHard; the caller repairs neighbours with clusterUp). */
  linksUp(k: number): void {
    for (const leg of ['lb0', 'lb1']) run('ip', ['-n', this.netns(k), 'link', 'set', `${this.o.prefix}-${leg}`, 'up'], { allowFail: true });
  }

  /** Everything this object started, by pid: daemons, their BIRDs (when still ours), the forwarders; the pins. */
  async cleanup(): Promise<void> {
    for (const k of [...this.procs.keys()]) await this.stop(k, 5000);
    for (let k = 1; k <= this.o.nodes; k++) {
      const bird = this.birdPid(k);
      if (bird && !processGone(bird) && pidCommandLine(bird).includes(this.birdDir(k))) { try { process.kill(bird, 'SIGKILL'); } catch { /* gone */ } }
    }
    for (const pid of this.forwards.values()) { if (!processGone(pid)) { try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ } } }
    this.forwards.clear();
    for (let k = 1; k <= this.o.nodes; k++) rmSync(this.pinDir(k), { recursive: true, force: true });
  }

  /** One API call to node k (JSON in and out), with the admin token. */
  async api(k: number, method: string, urlPath: string, body?: unknown, timeoutMs = 10_000): Promise<ApiAnswer> {
    const res = await fetch(this.url(k) + urlPath, {
      method, headers: { authorization: `Bearer ${this.o.token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try { parsed = text ? JSON.parse(text) : undefined; } catch { /* not JSON */ }
    return { status: res.status, body: parsed, headers: res.headers };
  }

  /** The running program's tag on node k (its pin), what its interfaces run, and the pinned backends map's id (same id = adopted). */
  programTag(k: number): { tag: string; id: number; attachedIds: number[]; backendsMapId: number } {
    const prog = Program.fromPin(path.join(this.pinDir(k), 'prog'));
    const backends = BpfMap.fromPin(path.join(this.pinDir(k), 'maps', 'backends'));
    try {
      const info = prog.info();
      const out = spawnSync('ip', ['-n', this.netns(k), '-j', '-d', 'link', 'show'], { encoding: 'utf8' }).stdout;
      const links = JSON.parse(out) as Array<{ ifname: string; xdp?: { prog?: { id: number } } }>;
      const attachedIds = links.filter((l) => l.ifname.startsWith(`${this.o.prefix}-lb`)).map((l) => l.xdp?.prog?.id ?? 0);
      return { tag: info.tag, id: info.id, attachedIds, backendsMapId: backends.id };
    } finally { prog.close(); backends.close(); }
  }

  /**
   * Runs one TCP SYN (client src:sport -> vip:port) through node k's pinned program with
   * BPF_PROG_TEST_RUN, inside the node's namespace, as if it arrived on its uplink: the
   * backend "address:port" it was rewritten to (NAT), or `verdict N` when not forwarded.
   * Side effect: the flow may be remembered in the node's flow cache (use fresh tuples).
   */
  route(k: number, tuple: { src: string; sport: number; vip: string; port: number }): string {
    const uplink = `${this.o.prefix}-lb0`;
    const links = JSON.parse(spawnSync('ip', ['-n', this.netns(k), '-j', 'link', 'show', uplink], { encoding: 'utf8' }).stdout) as Array<{ ifindex: number; address: string }>;
    const frame = buildFrame({ eth: { src: '02:00:00:00:00:01', dst: links[0].address }, ip: { src: tuple.src, dst: tuple.vip, proto: IPPROTO_TCP, ttl: 64 },
      tcp: { sport: tuple.sport, dport: tuple.port, seq: 1, flags: 0x02, window: 64240 } });
    const prog = Program.fromPin(path.join(this.pinDir(k), 'prog'));
    try {
      const r = inNetns(this.netns(k), () => prog.testRun(frame, { ingressIfindex: links[0].ifindex }));
      if (r.retval !== 3 && r.retval !== 4) return `verdict ${r.retval}`;
      const out = parseFrame(r.data);
      return `${out.ipv4!.dst}:${out.tcp!.dport}`;
    } finally { prog.close(); }
  }

  /** Node k's BPF run statistics of its program (needs BPF stats enabled). */
  programRuns(k: number): { runCount: number; runTimeNs: number } {
    const prog = Program.fromPin(path.join(this.pinDir(k), 'prog'));
    try { const i = prog.info(); return { runCount: i.runCount, runTimeNs: i.runTimeNs }; } finally { prog.close(); }
  }
}

/** How many services have transition marks (a maglev_marks table with a slot whose prev_id is
 * not 0; the zeroed table stays while the service's table lives): 0 = no slot is moved on this node. */
export function transitionTables(pinDir: string): number {
  const marks = BpfMap.fromPin(path.join(pinDir, 'maps', 'maglev_marks'));
  // An array of maps: every index exists; a service with marks has an inner table there.
  try {
    let n = 0;
    for (const key of marks.keys()) {
      let inner: Buffer | null = null;
      try { inner = marks.lookup(key); } catch { inner = null; }
      if (!inner) continue;
      let table: BpfMap;
      try { table = BpfMap.fromId(inner.readUInt32LE(0)); } catch { continue; } // swapped meanwhile
      try {
        if (table.lookupBatch().some(([, v]) => v.readUInt32LE(0) !== 0)) n++;
      } finally { table.close(); }
    }
    return n;
  } finally { marks.close(); }
}

/**
 * "address:port" of the backend in every slot of a service's Maglev table, read from the pinned
 * kernel maps of one node (ids translated through that node's backends map).
 * @throws Error when the service or a backend id is missing.
 */
export function kernelMaglevTable(pinDir: string, service: { vip: string; port: number; protocol: 'tcp' | 'udp' }): string[] {
  const services = BpfMap.fromPin(path.join(pinDir, 'maps', 'services'));
  const backends = BpfMap.fromPin(path.join(pinDir, 'maps', 'backends'));
  try {
    const sv = services.lookup(LbServiceKeyCodec.encode({ vip: service.vip, port: service.port, proto: PROTO[service.protocol] } as never));
    if (!sv) throw new Error(`no service ${service.vip}:${service.port}/${service.protocol} in ${pinDir}`);
    const id = (LbServiceCodec.decode(sv) as { id: number }).id;
    // The reconciler swaps in a new inner table on a change and the old one is freed: an id read
    // from the outer map can be gone a moment later; read the outer map again then.
    let inner: BpfMap | null = null;
    for (let attempt = 0; !inner; attempt++) {
      const outer = pinnedTableOuterValue(path.join(pinDir, 'maps'), id);
      if (!outer) throw new Error(`no Maglev table for service id ${id} in ${pinDir}`);
      try {
        inner = BpfMap.fromId(decodeU32(outer));
      } catch (err) {
        if (attempt >= 10 || !/ENOENT/.test((err as Error).message)) throw err;
      }
    }
    try {
      const ids = new Uint32Array(inner!.maxEntries);
      for (const [k, v] of inner!.lookupBatch()) ids[decodeU32(k)] = decodeU32(v) & LB.SLOT_ID_MASK;   // the id; the top bit marks a moved slot
      const names = new Map<number, string>();
      return [...ids].map((bid) => {
        let name = names.get(bid);
        if (name === undefined) {
          const value = backends.lookup(encodeU32(bid));
          if (!value) throw new Error(`backend id ${bid} of ${pinDir} has no entry`);
          const b = LbBackendCodec.decode(value) as { ip: string; port: number };
          name = `${b.ip}:${b.port}`;
          names.set(bid, name);
        }
        return name;
      });
    } finally { inner!.close(); }
  } finally { services.close(); backends.close(); }
}

/** The recorded lab exists with etcd. @throws Error naming what is missing. */
export function assertEtcdLab(prefix: string): void {
  const s = readClusterState(prefix);
  if (!s) throw new Error(`no cluster lab ${prefix}`);
  if (s.options.etcd < 1) throw new Error(`cluster lab ${prefix} has no etcd member (lab up --etcd 1)`);
}
