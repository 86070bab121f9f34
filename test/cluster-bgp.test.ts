/**
 * The cluster for real (issue 13 items 3 and 4): `lab up --nodes 3` (router with BIRD, BGP+BFD,
 * kernel ECMP), three daemons in file mode with the same YAML, each running its own BIRD, and
 * real TCP traffic from the client. Prefix `xlbg` (namespaces, links, pins), API ports 25xxx.
 *
 * - kill -9 of one node's daemon and BIRD, links down: 0 long connections reset or moved to
 *   another backend; how long the router kept the dead node and the stall each connection saw
 *   are reported (BFD target: under 1 s).
 * - graceful drain (the daemon's onDrain hook): 0 broken connections, and no SYN reaches the
 *   drained node after the router withdrew it (nftables counters on the router's bridge ports).
 * - rolling restart of all three daemons under traffic: 0 failed requests.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { kernelTestSkip } from './support/kernel-env';
import { clusterUp, clusterDown, routerEcmp, readClusterState } from '../src/lab/cluster-lab';
import { nodeUplinkAddress } from '../src/lab/cluster-topology';
import { ipIn, run, processGone } from '../src/lab/netns';
import { repoPath } from '../src/daemon/paths';
import type { FlowReport } from './cluster/flow-driver';
import { waitFor as waitUntil } from '../src/lab/wait';

const P = 'xlbg';
const VIP = '198.18.100.1';
const BIRD = '/usr/sbin/bird';
const skip = kernelTestSkip('cluster BGP tests') || (existsSync(BIRD) ? false : 'BIRD 2 is not installed (/usr/sbin/bird)');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function nodeConfig(mode: 'nat' | 'dsr'): string {
  const port = mode === 'nat' ? 8080 : 80;
  return [
    'interfaces:', `  - { name: ${P}-lb0, mode: native }`, `  - { name: ${P}-lb1, mode: native }`,
    'api: { listen: 127.0.0.1:25080 }',
    'tokens:', '  - { name: t, role: admin, token: xlbg-test-token-0123456789 }',
    'services:',
    '  - name: web', `    vip: ${VIP}`, '    port: 80', '    protocol: tcp', `    mode: ${mode}`,
    `    healthCheck: { type: tcp, intervalMs: 1000, timeoutMs: 500, rise: 1, fall: 2, initialState: up${mode === 'dsr' ? ', dsrProbe: address' : ''} }`,
    '    backends:', `      - { address: 198.18.1.11, port: ${port}, weight: 1 }`, `      - { address: 198.18.1.12, port: ${port}, weight: 1 }`,
    'bgp: { localAs: 65001, peers: [{ address: 198.18.10.1, as: 65000 }], bfd: true, holdTime: 3 }',
    '',
  ].join('\n');
}

/** Every daemon this file started: teardown kills what is still alive (its pipes would keep the test open). */
const allChildren: ChildProcess[] = [];

/** One lb node: the real daemon in its namespace (test/cluster/node-runner.ts), driven over stdin. */
class LabNode {
  child: ChildProcess | null = null;
  private lines: string[] = [];
  private waiters: Array<() => void> = [];
  constructor(readonly k: number, readonly dir: string, readonly mode: 'nat' | 'dsr') {}

  get birdDir(): string { return path.join(this.dir, `bird${this.k}`); }
  get pinDir(): string { return `/sys/fs/bpf/${P}-lb${this.k}`; }
  get netns(): string { return `${P}-lb${this.k}`; }
  birdPid(): number {
    try { return Number(readFileSync(path.join(this.birdDir, 'bird.pid'), 'utf8').trim()); } catch { return 0; }
  }

  async start(): Promise<void> {
    if (this.child && this.child.exitCode === null) throw new Error(`node ${this.k} is already running`);
    const config = path.join(this.dir, `node${this.k}.yaml`);
    if (!existsSync(config)) writeFileSync(config, nodeConfig(this.mode));
    const script = repoPath('dist/test/cluster/node-runner.js');
    this.lines = [];
    const child = spawn('nsenter', [`--net=/run/netns/${this.netns}`, process.execPath, script, '--config', config, '--pin-dir', this.pinDir,
      '--bird-dir', this.birdDir, '--log', path.join(this.dir, `daemon${this.k}.log`)], { stdio: ['pipe', 'pipe', 'inherit'], cwd: repoPath('.') });
    this.child = child;
    allChildren.push(child);
    readline.createInterface({ input: child.stdout! }).on('line', (l) => { this.lines.push(l); this.waiters.splice(0).forEach((w) => w()); });
    const ready = await this.next(30_000);
    if (ready.event !== 'ready') throw new Error(`node ${this.k} did not start: ${JSON.stringify(ready)}`);
  }

  async next(timeoutMs = 10_000): Promise<Record<string, unknown>> {
    const end = Date.now() + timeoutMs;
    while (this.lines.length === 0) {
      if (Date.now() > end) throw new Error(`node ${this.k}: no answer within ${timeoutMs} ms`);
      await Promise.race([new Promise<void>((r) => this.waiters.push(r)), sleep(200)]);
    }
    return JSON.parse(this.lines.shift()!) as Record<string, unknown>;
  }

  async command(line: string): Promise<Record<string, unknown>> {
    this.child!.stdin!.write(line + '\n');
    return this.next();
  }

  /** The daemon's ordinary stop (withdraw, BIRD down, the program stays attached). */
  async stop(): Promise<void> {
    if (!this.child || this.child.exitCode !== null) return;
    const answer = await this.command('stop');
    assert.equal(answer.event, 'stopped');
    await new Promise<void>((r) => (this.child!.exitCode !== null ? r() : this.child!.once('exit', () => r())));
    this.child = null;
  }

  /** Dies hard: kill -9 of the daemon and of its BIRD, and the node's links down. */
  killHard(): void {
    // Links first: a host that dies sends nothing, not even the FIN its kernel would send for a
    // killed BIRD's BGP socket (that FIN would end the session at once and hide BFD's part).
    const bird = this.birdPid();
    ipIn(this.netns, ['link', 'set', `${P}-lb0`, 'down']);
    ipIn(this.netns, ['link', 'set', `${P}-lb1`, 'down']);
    this.child!.kill('SIGKILL');
    if (bird) process.kill(bird, 'SIGKILL');
    this.child = null;
  }

  /** Leftovers after a failed test: our own daemon and BIRD, by pid. */
  async cleanup(): Promise<void> {
    if (this.child && this.child.exitCode === null) this.child.kill('SIGKILL');
    const bird = this.birdPid();
    if (bird && !processGone(bird) && readFileSync(`/proc/${bird}/cmdline`, 'utf8').includes(this.birdDir)) process.kill(bird, 'SIGKILL');
    this.child = null;
  }
}

function nextHops(): string[] { return routerEcmp(P)[VIP] ?? []; }

const waitFor = (what: string, timeoutMs: number, pred: () => boolean, stepMs = 20): Promise<number> =>
  waitUntil(what, timeoutMs, pred, stepMs, () => `router next hops: ${nextHops().join(', ') || 'none'}`);

/** The flow driver in the client namespace; stop() ends it and returns its report. */
function startDriver(o: { longConns: number; intervalMs: number; newConnRps: number }): { stop(): Promise<FlowReport> } {
  const child = spawn('ip', ['netns', 'exec', `${P}-client`, process.execPath, repoPath('dist/test/cluster/flow-driver.js'),
    JSON.stringify({ host: VIP, port: 80, maxSec: 150, ...o })], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  const done = new Promise<FlowReport>((resolve, reject) => child.on('close', (code) => {
    try { resolve(JSON.parse(out.trim().split('\n').at(-1)!) as FlowReport); } catch { reject(new Error(`flow driver failed (exit ${code})`)); }
  }));
  return { stop: async () => { child.kill('SIGTERM'); return done; } };
}

/** nftables counters of SYNs to the VIPs that the router hands to each node's bridge port. */
const NFT_TABLE = 'xlbgsyn';
function synCountersReset(nodes: number): void {
  run('ip', ['netns', 'exec', `${P}-router`, 'nft', 'delete', 'table', 'bridge', NFT_TABLE], { allowFail: true });
  const rules = Array.from({ length: nodes }, (_, i) => `oifname "${P}-r${i + 1}" ip daddr 198.18.100.0/24 tcp flags & (syn | ack) == syn counter`);
  run('ip', ['netns', 'exec', `${P}-router`, 'nft', '-f', '-'], {
    input: `table bridge ${NFT_TABLE} {\n chain out {\n  type filter hook output priority 0; policy accept;\n${rules.join('\n')}\n }\n}\n`,
  });
}
function synCounters(): number[] {
  const out = run('ip', ['netns', 'exec', `${P}-router`, 'nft', '-j', 'list', 'table', 'bridge', NFT_TABLE]).stdout;
  const items = (JSON.parse(out) as { nftables: Array<{ rule?: { expr: Array<{ counter?: { packets: number } }> } }> }).nftables;
  return items.filter((x) => x.rule).map((x) => x.rule!.expr.find((e) => e.counter)!.counter!.packets);
}

/** Per long connection, its worst request latency in [since - 1 s, until]: the stall that event caused (> 100 ms only). */
function summarize(report: FlowReport, since: number, until: number): { broken: number; moved: number; stalls: number[]; maxStall: number; p50: number } {
  const broken = report.long.filter((c) => c.errors.length > 0 || c.sockets > 1).length;
  const moved = report.long.filter((c) => c.backends.length > 1).length;
  const stalls = report.long.map((c) => Math.max(0, ...c.slow.filter((x) => x.at >= since - 1000 && x.at <= until).map((x) => x.ms)))
    .filter((ms) => ms > 0).sort((a, b) => a - b);
  return { broken, moved, stalls, maxStall: stalls.at(-1) ?? 0, p50: stalls[Math.floor(stalls.length / 2)] ?? 0 };
}

function describeError(report: FlowReport): string {
  const bad = report.long.filter((c) => c.errors.length > 0 || c.sockets > 1 || c.backends.length > 1).slice(0, 3);
  return JSON.stringify(bad);
}

async function clusterFor(mode: 'nat' | 'dsr'): Promise<{ nodes: LabNode[]; dir: string }> {
  if (readClusterState(P)) await clusterDown(P);
  for (let k = 1; k <= 3; k++) rmSync(`/sys/fs/bpf/${P}-lb${k}`, { recursive: true, force: true });
  await clusterUp({ prefix: P, nodes: 3, backends: 2, mode });
  const dir = mkdtempSync(path.join(os.tmpdir(), `${P}-`));
  mkdirSync(dir, { recursive: true });
  const nodes = [1, 2, 3].map((k) => new LabNode(k, dir, mode));
  await Promise.all(nodes.map((n) => n.start()));
  await waitFor('three next hops at the router', 20_000, () => nextHops().length === 3, 100);
  return { nodes, dir };
}

async function teardown(nodes: LabNode[], dir: string): Promise<void> {
  await Promise.all(nodes.map((n) => n.stop().catch(() => n.cleanup())));
  await Promise.all(nodes.map((n) => n.cleanup()));
  for (const c of allChildren) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await clusterDown(P);
  for (let k = 1; k <= 3; k++) rmSync(`/sys/fs/bpf/${P}-lb${k}`, { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
}

/** Kill one node hard, then drain another, under 200 long-lived connections. */
async function failoverAndDrain(mode: 'nat' | 'dsr', nodes: LabNode[], log: (s: string) => void): Promise<void> {
  const driver = startDriver({ longConns: 200, intervalMs: 500, newConnRps: 20 });
  await sleep(2500);
  // Every node carries some of the 200 flows before the kill.
  synCountersReset(3);
  await sleep(1000);
  const before = synCounters();
  assert.ok(before.every((n) => n > 0), `ECMP did not spread new connections over all nodes: ${before.join(', ')}`);

  const killedAt = Date.now();
  nodes[2].killHard();
  await waitFor('the router to drop the killed node', 5000, () => !nextHops().includes(nodeUplinkAddress(3)), 10);
  const detectMs = Date.now() - killedAt;
  log(`${mode}: router dropped the killed node from its ECMP set after ${detectMs} ms (BFD 100 ms x 3)`);
  await sleep(3000);

  const drainedAt = Date.now();
  const answer = await nodes[1].command('drain 30');
  assert.equal(answer.event, 'drained');
  assert.equal((answer.status as { drained: boolean }).drained, true);
  const withdrawMs = await waitFor('the router to withdraw the drained node', 5000, () => !nextHops().includes(nodeUplinkAddress(2)));
  const withdrawnAt = Date.now();
  synCountersReset(3);
  await sleep(3000);
  const after = synCounters();
  const report = await driver.stop();

  const kill = summarize(report, killedAt, drainedAt - 1);
  const drain = summarize(report, drainedAt, Date.now());
  log(`${mode}: drain withdrawn at the router after ${withdrawMs} ms`);
  log(`${mode}: ${report.long.length} long connections; ${kill.stalls.length} stalled (> 100 ms) by the kill: p50 ${kill.p50} ms, max ${kill.maxStall} ms; ` +
    `by the drain: ${drain.stalls.length} (max ${drain.maxStall} ms)`);
  assert.equal(report.long.length, 200);
  assert.equal(kill.broken, 0, `connections reset or failed: ${describeError(report)}`);
  assert.equal(kill.moved, 0, `connections answered by another backend: ${describeError(report)}`);
  assert.ok(detectMs < 1500, `the router kept the dead node for ${detectMs} ms`);
  assert.ok(kill.maxStall < 5000, `a connection stalled ${kill.maxStall} ms`);
  assert.equal(after[1], 0, `${after[1]} SYNs reached the drained node after its withdrawal`);
  assert.ok(after[0] > 0, 'no SYN reached node 1 after the drain (is the driver running?)');
  assert.equal(drain.broken, 0);
  const freshAfter = report.fresh.filter((f) => f.at >= withdrawnAt);
  assert.ok(freshAfter.length >= 20, `only ${freshAfter.length} fresh connections after the withdrawal`);
  assert.deepEqual(report.fresh.filter((f) => f.error && f.at >= killedAt + 2000).map((f) => f.error), [], 'fresh connections failed after the failover settled');
}

describe('cluster: 3 nodes behind BGP/ECMP, NAT', { skip }, () => {
  let nodes: LabNode[] = [];
  let dir = '';
  before(async () => { ({ nodes, dir } = await clusterFor('nat')); });
  after(async () => { await teardown(nodes, dir); });

  test('kill -9 of a node: no connection broken or moved; graceful drain: nothing broken, no new connection on it', { timeout: 90_000 }, async (t) => {
    await failoverAndDrain('nat', nodes, (s) => t.diagnostic(s));
  });

  test('rolling restart of every daemon under traffic: 0 failed requests', { timeout: 120_000 }, async (t) => {
    // Bring the killed node back (links up; its daemon adopts the pinned data plane) and undrain node 2.
    ipIn(nodes[2].netns, ['link', 'set', `${P}-lb0`, 'up']);
    ipIn(nodes[2].netns, ['link', 'set', `${P}-lb1`, 'up']);
    // Setting a link down flushes its neighbour entries, the permanent ones too: `lab up` again repairs them.
    await clusterUp({ prefix: P, nodes: 3, backends: 2, mode: 'nat' });
    await nodes[2].start();
    assert.equal((await nodes[1].command('undrain')).event, 'undrained');
    await waitFor('three next hops again', 20_000, () => nextHops().length === 3, 100);
    const status = await nodes[0].command('status');
    assert.deepEqual((status.status as { announced: string[] }).announced, [VIP]);
    assert.equal((status.status as { peers: Array<{ state: string; bfd: string }> }).peers[0].bfd, 'Up');

    const driver = startDriver({ longConns: 100, intervalMs: 250, newConnRps: 20 });
    const report0 = Date.now();
    await sleep(2000);
    const events: string[] = [];
    for (const node of nodes) {
      const t0 = Date.now();
      events.push(`node ${node.k} stop at ${t0 - report0}`);
      await node.stop();
      await waitFor(`node ${node.k} withdrawn`, 5000, () => !nextHops().includes(nodeUplinkAddress(node.k)));
      await node.start();
      await waitFor(`node ${node.k} announced again`, 20_000, () => nextHops().includes(nodeUplinkAddress(node.k)), 50);
      t.diagnostic(`node ${node.k} restarted and announcing again after ${Date.now() - t0} ms`);
      events.push(`node ${node.k} announced at ${Date.now() - report0}`);
      await sleep(1000);
    }
    const report = await driver.stop();
    const failedLong = report.long.reduce((n, c) => n + c.errors.length, 0);
    const failedFresh = report.fresh.filter((f) => f.error).length;
    t.diagnostic(`rolling restart: ${report.long.reduce((n, c) => n + c.ok, 0)} requests on long connections, ${report.fresh.length} fresh connections`);
    assert.equal(failedLong, 0, `failed requests on long connections: ${describeError(report)}`);
    assert.equal(report.long.filter((c) => c.sockets > 1 || c.backends.length > 1).length, 0, describeError(report));
    assert.equal(failedFresh, 0, `failed fresh connections: ${JSON.stringify(report.fresh.filter((f) => f.error).slice(0, 3).map((f) => ({ ...f, at: f.at - report0 })))}; ${events.join(', ')}`);
  });

  test('a node withdraws when no backend is usable and when it loses its data plane, and announces again', { timeout: 60_000 }, async (t) => {
    const node1 = nodeUplinkAddress(1);
    await waitFor('three next hops', 20_000, () => nextHops().length === 3, 100);
    for (const key of ['198.18.1.11:8080', '198.18.1.12:8080']) assert.equal(nodeApi(1, 'PATCH', `/api/v1/services/web/backends/${key}`, { weight: 0 }), 200);
    const noBackendMs = await waitFor('node 1 withdrawn (no usable backend)', 5000, () => !nextHops().includes(node1));
    assert.equal(nextHops().length, 2, 'the other nodes keep announcing');
    for (const key of ['198.18.1.11:8080', '198.18.1.12:8080']) assert.equal(nodeApi(1, 'PATCH', `/api/v1/services/web/backends/${key}`, { weight: 1 }), 200);
    await waitFor('node 1 announced again', 5000, () => nextHops().includes(node1));
    // The data plane is lost: its backend-side interface goes away (renamed here, so it can come back).
    ipIn(`${P}-lb1`, ['link', 'set', `${P}-lb1`, 'down']);
    ipIn(`${P}-lb1`, ['link', 'set', `${P}-lb1`, 'name', `${P}-lbx`]);
    try {
      const lostMs = await waitFor('node 1 withdrawn (data plane lost)', 5000, () => !nextHops().includes(node1));
      t.diagnostic(`withdrawn ${noBackendMs} ms after the last backend became unusable, ${lostMs} ms after the interface went away`);
    } finally {
      ipIn(`${P}-lb1`, ['link', 'set', `${P}-lbx`, 'name', `${P}-lb1`]);
      ipIn(`${P}-lb1`, ['link', 'set', `${P}-lb1`, 'up']);
      await clusterUp({ prefix: P, nodes: 3, backends: 2, mode: 'nat' });
    }
    await waitFor('node 1 announced again after its interface came back', 5000, () => nextHops().includes(node1));
    const status = (await nodes[0].command('status')).status as { state: string; announced: string[]; drained: boolean };
    assert.deepEqual(status, { ...status, state: 'established', announced: [VIP], drained: false });
  });

  test('BIRD supervision: a killed BIRD is restarted; a killed daemon leaves BIRD announcing and the next one adopts it', { timeout: 60_000 }, async (t) => {
    const node = nodes[0];
    const node1 = nodeUplinkAddress(1);
    await waitFor('three next hops', 20_000, () => nextHops().length === 3, 100);
    const first = node.birdPid();
    process.kill(first, 'SIGKILL');
    await waitFor('node 1 dropped with its BIRD', 5000, () => !nextHops().includes(node1));
    const backMs = await waitFor('node 1 back with a new BIRD', 10_000, () => nextHops().includes(node1), 50);
    const second = node.birdPid();
    assert.ok(second > 0 && second !== first && !processGone(second), `BIRD pid ${first} -> ${second}`);
    t.diagnostic(`BIRD restarted by the daemon; announcing again ${backMs} ms after it was dropped`);

    // The daemon dies alone: BIRD (and the pinned program) carry on; the next daemon adopts BIRD.
    const daemon = node.child!;
    const exited = new Promise((r) => daemon.once('exit', r));
    daemon.kill('SIGKILL');
    await exited;
    node.child = null;
    await sleep(1500);
    assert.ok(nextHops().includes(node1), 'the route went with the daemon');
    let missing = 0;
    const watch = setInterval(() => { if (!nextHops().includes(node1)) missing++; }, 20);
    try { await node.start(); await sleep(500); } finally { clearInterval(watch); }
    assert.equal(missing, 0, 'the route flapped while the new daemon adopted BIRD');
    assert.equal(node.birdPid(), second, 'the new daemon started another BIRD instead of adopting');
    const status = (await node.command('status')).status as { state: string; announced: string[] };
    assert.equal(status.state, 'established');
    assert.deepEqual(status.announced, [VIP]);
    assert.ok(nextHops().includes(node1));
  });
});

/** The daemon API of node k (inside its namespace), with the test token. Returns the HTTP status. */
function nodeApi(k: number, method: string, urlPath: string, body?: unknown): number {
  const out = run('ip', ['netns', 'exec', `${P}-lb${k}`, 'curl', '-s', '-m', '5', '-o', '/dev/null', '-w', '%{http_code}', '-X', method,
    '-H', 'Authorization: Bearer xlbg-test-token-0123456789', '-H', 'Content-Type: application/json',
    ...(body === undefined ? [] : ['--data', JSON.stringify(body)]), `http://127.0.0.1:25080${urlPath}`], { allowFail: true });
  return Number(out.stdout);
}

describe('cluster: 3 nodes behind BGP/ECMP, DSR', { skip }, () => {
  let nodes: LabNode[] = [];
  let dir = '';
  before(async () => { ({ nodes, dir } = await clusterFor('dsr')); });
  after(async () => { await teardown(nodes, dir); });

  test('kill -9 of a node: no connection broken or moved; graceful drain: nothing broken, no new connection on it', { timeout: 90_000 }, async (t) => {
    await failoverAndDrain('dsr', nodes, (s) => t.diagnostic(s));
  });
});
