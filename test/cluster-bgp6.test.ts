/**
 * IPv6 VIPs over BGP, for real: `lab up --nodes 2` (dual stack: the router runs BIRD with an
 * IPv4 and an IPv6 session per node, kernel ECMP for both families), two daemons in file mode
 * with the same YAML (an IPv4 and an IPv6 peer), each running its own BIRD. Prefix `xlbb6`
 * (namespaces, links, pins), ports 28950-28952.
 *
 * - an IPv6 VIP is announced by every node whose service has a usable backend, and the router
 *   holds one ECMP IPv6 route over both nodes (beside the IPv4 VIP's);
 * - the config BIRD runs (both families) passes `birdc configure check`;
 * - a service whose backends all fail their health check is withdrawn by every node;
 * - draining a node withdraws its IPv6 route (and its IPv4 one); undraining announces again;
 * - real IPv6 HTTP from the lab client through the router's ECMP route to the VIP (NAT66).
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { kernelTestSkip } from './support/kernel-env';
import { clusterUp, clusterDown, routerEcmp, routerEcmp6, readClusterState } from '../src/lab/cluster-lab';
import { nodeUplinkAddress, nodeUplinkAddress6, backendAddress6 } from '../src/lab/cluster-topology';
import { run, processGone } from '../src/lab/netns';
import { repoPath } from '../src/daemon/paths';
import { waitFor as waitUntil } from '../src/lab/wait';

const P = 'xlbb6';
const VIP4 = '198.18.100.1';
const VIP6 = '2001:2:0:c100::1';
const DEAD6 = '2001:2:0:c100::2';
const API_PORT = 28950;
const WEB_PORT = 28951;
const DEAD_PORT = 28952;
const BIRD = '/usr/sbin/bird';
const skip = kernelTestSkip('cluster BGP IPv6 tests') || (existsSync(BIRD) ? false : 'BIRD 2 is not installed (/usr/sbin/bird)');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function nodeConfig(): string {
  return [
    'interfaces:', `  - { name: ${P}-lb0, mode: native }`, `  - { name: ${P}-lb1, mode: native }`,
    `api: { listen: 127.0.0.1:${API_PORT} }`,
    'tokens:', '  - { name: t, role: admin, token: xlbb6-test-token-0123456789 }',
    'services:',
    '  - name: web4', `    vip: ${VIP4}`, '    port: 80', '    protocol: tcp', '    mode: nat',
    '    backends:', '      - { address: 198.18.1.11, port: 8080, weight: 1 }',
    '  - name: web6', `    vip: "${VIP6}"`, '    port: 80', '    protocol: tcp', '    mode: nat',
    '    backends:', `      - { address: "${backendAddress6(1)}", port: ${WEB_PORT}, weight: 1 }`, `      - { address: "${backendAddress6(2)}", port: ${WEB_PORT}, weight: 1 }`,
    '  - name: dead6', `    vip: "${DEAD6}"`, '    port: 80', '    protocol: tcp', '    mode: nat',
    '    healthCheck: { type: tcp, intervalMs: 300, timeoutMs: 200, rise: 1, fall: 1, initialState: up }',
    '    backends:', `      - { address: "${backendAddress6(1)}", port: ${DEAD_PORT}, weight: 1 }`,
    'bgp: { localAs: 65001, peers: [{ address: 198.18.10.1, as: 65000 }, { address: "2001:2:0:c010::1", as: 65000 }], bfd: true, holdTime: 3 }',
    '',
  ].join('\n');
}

const allChildren: ChildProcess[] = [];

/** One lb node: the real daemon in its namespace (test/cluster/node-runner.ts), driven over stdin. */
class LabNode {
  child: ChildProcess | null = null;
  private lines: string[] = [];
  private waiters: Array<() => void> = [];
  constructor(readonly k: number, readonly dir: string) {}

  get birdDir(): string { return path.join(this.dir, `bird${this.k}`); }
  get pinDir(): string { return `/sys/fs/bpf/${P}-lb${this.k}`; }
  get netns(): string { return `${P}-lb${this.k}`; }
  birdPid(): number {
    try { return Number(readFileSync(path.join(this.birdDir, 'bird.pid'), 'utf8').trim()); } catch { return 0; }
  }

  async start(): Promise<void> {
    const config = path.join(this.dir, `node${this.k}.yaml`);
    if (!existsSync(config)) writeFileSync(config, nodeConfig());
    this.lines = [];
    const child = spawn('nsenter', [`--net=/run/netns/${this.netns}`, process.execPath, repoPath('dist/test/cluster/node-runner.js'), '--config', config,
      '--pin-dir', this.pinDir, '--bird-dir', this.birdDir, '--log', path.join(this.dir, `daemon${this.k}.log`)], { stdio: ['pipe', 'pipe', 'inherit'], cwd: repoPath('.') });
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

  async stop(): Promise<void> {
    if (!this.child || this.child.exitCode !== null) return;
    const answer = await this.command('stop');
    assert.equal(answer.event, 'stopped');
    await new Promise<void>((r) => (this.child!.exitCode !== null ? r() : this.child!.once('exit', () => r())));
    this.child = null;
  }

  /** Leftovers after a failed test: our own daemon and BIRD, by pid. */
  cleanup(): void {
    if (this.child && this.child.exitCode === null) this.child.kill('SIGKILL');
    const bird = this.birdPid();
    if (bird && !processGone(bird) && readFileSync(`/proc/${bird}/cmdline`, 'utf8').includes(this.birdDir)) process.kill(bird, 'SIGKILL');
    this.child = null;
  }
}

/** An IPv6 HTTP listener on [address]:port inside a backend namespace, answering its name. */
class Listener {
  readonly child: ChildProcess;
  readonly ready: Promise<void>;
  constructor(readonly netns: string, readonly address: string, readonly port: number, readonly name: string) {
    const script = "const [a, p, n] = process.argv.slice(1); require('node:http').createServer((q, s) => s.end(n)).listen(Number(p), a, () => console.log('ready'));";
    this.child = spawn('ip', ['netns', 'exec', netns, process.execPath, '-e', script, address, String(port), name], { stdio: ['ignore', 'pipe', 'inherit'] });
    allChildren.push(this.child);
    this.ready = new Promise((resolve, reject) => {
      this.child.stdout!.once('data', () => resolve());
      this.child.once('exit', (code) => reject(new Error(`listener ${name} [${address}]:${port} exited (${code})`)));
    });
  }
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const gone = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGTERM');
    await gone;
  }
}

const hops6 = (vip: string) => routerEcmp6(P)[vip] ?? [];
const hops4 = (vip: string) => routerEcmp(P)[vip] ?? [];
const both6 = [nodeUplinkAddress6(1), nodeUplinkAddress6(2)];
const both4 = [nodeUplinkAddress(1), nodeUplinkAddress(2)];
const waitFor = (what: string, timeoutMs: number, pred: () => boolean, stepMs = 50): Promise<number> =>
  waitUntil(what, timeoutMs, pred, stepMs, () => `router IPv6 routes: ${JSON.stringify(routerEcmp6(P))}; IPv4: ${JSON.stringify(routerEcmp(P))}`);
const same = (a: string[], b: string[]) => a.join(',') === b.join(',');

/** nftables counters of IPv6 SYNs to the VIP range that the router hands to each node's bridge port. */
const NFT_TABLE = 'xlbb6syn';
function synCountersReset(): void {
  run('ip', ['netns', 'exec', `${P}-router`, 'nft', 'delete', 'table', 'bridge', NFT_TABLE], { allowFail: true });
  const rules = [1, 2].map((k) => `oifname "${P}-r${k}" ip6 daddr 2001:2:0:c100::/64 tcp flags & (syn | ack) == syn counter`);
  run('ip', ['netns', 'exec', `${P}-router`, 'nft', '-f', '-'], {
    input: `table bridge ${NFT_TABLE} {\n chain out {\n  type filter hook output priority 0; policy accept;\n${rules.join('\n')}\n }\n}\n`,
  });
}
function synCounters(): number[] {
  const out = run('ip', ['netns', 'exec', `${P}-router`, 'nft', '-j', 'list', 'table', 'bridge', NFT_TABLE]).stdout;
  const items = (JSON.parse(out) as { nftables: Array<{ rule?: { expr: Array<{ counter?: { packets: number } }> } }> }).nftables;
  return items.filter((x) => x.rule).map((x) => x.rule!.expr.find((e) => e.counter)!.counter!.packets);
}

describe('cluster: IPv6 VIPs over BGP (2 nodes, dual stack)', { skip }, () => {
  let nodes: LabNode[] = [];
  let listeners: Listener[] = [];
  let dead: Listener | undefined;
  let dir = '';

  before(async () => {
    if (readClusterState(P)) await clusterDown(P);
    for (let k = 1; k <= 2; k++) rmSync(`/sys/fs/bpf/${P}-lb${k}`, { recursive: true, force: true });
    await clusterUp({ prefix: P, nodes: 2, backends: 2, mode: 'nat' });
    dir = mkdtempSync(path.join(os.tmpdir(), `${P}-`));
    listeners = [1, 2].map((i) => new Listener(`${P}-be${i}`, backendAddress6(i), WEB_PORT, `be${i}`));
    dead = new Listener(`${P}-be1`, backendAddress6(1), DEAD_PORT, 'be1-dead');
    await Promise.all([...listeners, dead].map((l) => l.ready));
    nodes = [1, 2].map((k) => new LabNode(k, dir));
    await Promise.all(nodes.map((n) => n.start()));
  });

  after(async () => {
    await Promise.all(nodes.map((n) => n.stop().catch(() => n.cleanup())));
    nodes.forEach((n) => n.cleanup());
    await Promise.all([...listeners, ...(dead ? [dead] : [])].map((l) => l.stop()));
    for (const c of allChildren) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await clusterDown(P);
    for (let k = 1; k <= 2; k++) rmSync(`/sys/fs/bpf/${P}-lb${k}`, { recursive: true, force: true });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('every healthy node announces the IPv6 VIP: the router holds an ECMP IPv6 route over both, beside the IPv4 one', { timeout: 60_000 }, async (t) => {
    const ms = await waitFor('the IPv6 VIP via both nodes', 30_000, () => same(hops6(VIP6), both6) && same(hops6(DEAD6), both6), 100);
    t.diagnostic(`IPv6 ECMP route over both nodes ${ms} ms after the daemons were ready`);
    await waitFor('the IPv4 VIP via both nodes', 10_000, () => same(hops4(VIP4), both4));
    // The kernel route is one multipath route with both next hops.
    const route = run('ip', ['netns', 'exec', `${P}-router`, 'ip', '-6', 'route', 'show', `${VIP6}/128`]).stdout;
    assert.match(route, /nexthop via 2001:2:0:c010::11 .*\n.*nexthop via 2001:2:0:c010::12 /, route);
    for (const node of nodes) {
      const status = (await node.command('status')).status as { state: string; announced: string[]; peers: Array<{ peer: string; state: string; bfd: string }> };
      assert.equal(status.state, 'established', JSON.stringify(status));
      assert.deepEqual(status.announced, [VIP4, VIP6, DEAD6]);
      assert.deepEqual(status.peers.map((p) => [p.peer, p.state, p.bfd]), [['198.18.10.1', 'Established', 'Up'], ['2001:2:0:c010::1', 'Established', 'Up']]);
    }
  });

  test('the config BIRD runs carries both families and passes birdc configure check', () => {
    for (const node of nodes) {
      const conf = path.join(node.birdDir, 'bird.conf');
      const text = readFileSync(conf, 'utf8');
      assert.match(text, /protocol static xdplb_vips \{\n {2}ipv4;\n {2}route 198\.18\.100\.1\/32 blackhole;\n\}/);
      assert.match(text, /protocol static xdplb_vips6 \{\n {2}ipv6;\n {2}route 2001:2:0:c100::1\/128 blackhole;\n {2}route 2001:2:0:c100::2\/128 blackhole;\n\}/);
      const out = run('ip', ['netns', 'exec', node.netns, 'birdc', '-s', path.join(node.birdDir, 'bird.ctl'), 'configure', 'check', `"${conf}"`]).stdout;
      assert.match(out, /Configuration OK/, out);
      // The check is not a rubber stamp: the old mistake (an IPv6 route in the ipv4 protocol) is refused.
      const bad = path.join(node.birdDir, 'bad.conf');
      writeFileSync(bad, text.replace('route 198.18.100.1/32 blackhole;', `route ${VIP6}/128 blackhole;`));
      const refused = run('ip', ['netns', 'exec', node.netns, 'birdc', '-s', path.join(node.birdDir, 'bird.ctl'), 'configure', 'check', `"${bad}"`], { allowFail: true }).stdout;
      assert.doesNotMatch(refused, /Configuration OK/, refused);
    }
  });

  test('real IPv6 traffic: the lab client reaches the IPv6 VIP through the router\'s ECMP route (NAT66, both backends)', { timeout: 30_000 }, async () => {
    synCountersReset();
    const seen = new Map<string, number>();
    for (let i = 0; i < 24; i++) {
      const r = run('ip', ['netns', 'exec', `${P}-client`, 'curl', '-s', '-m', '3', '-g', `http://[${VIP6}]:80/`], { allowFail: true });
      assert.equal(r.status, 0, `request ${i} failed: curl exit ${r.status} ${r.stderr}`);
      seen.set(r.stdout, (seen.get(r.stdout) ?? 0) + 1);
    }
    assert.deepEqual([...seen.keys()].sort(), ['be1', 'be2'], JSON.stringify([...seen]));
    // The router spread the connections over both nodes (its ECMP IPv6 route, L4 hash).
    const syns = synCounters();
    assert.equal(syns.reduce((a, b) => a + b, 0), 24, `SYNs per node: ${syns.join(', ')}`);
    assert.ok(syns.every((n) => n > 0), `ECMP did not spread IPv6 connections over both nodes: ${syns.join(', ')}`);
  });

  test('a service whose backends are all down is withdrawn by every node; the other IPv6 VIP stays', { timeout: 30_000 }, async (t) => {
    await waitFor('the dead service announced by both nodes first', 10_000, () => same(hops6(DEAD6), both6));
    await dead!.stop();
    const ms = await waitFor('the service without backends withdrawn', 10_000, () => hops6(DEAD6).length === 0);
    t.diagnostic(`withdrawn at the router ${ms} ms after its last backend stopped listening`);
    assert.deepEqual(hops6(VIP6), both6);
    for (const node of nodes) {
      const status = (await node.command('status')).status as { announced: string[] };
      assert.deepEqual(status.announced, [VIP4, VIP6]);
    }
    assert.doesNotMatch(readFileSync(path.join(nodes[0].birdDir, 'bird.conf'), 'utf8'), /c100::2/);
  });

  test('draining a node withdraws its IPv6 route (and its IPv4 one); undrain announces again', { timeout: 30_000 }, async (t) => {
    await waitFor('both nodes announcing', 10_000, () => same(hops6(VIP6), both6));
    const answer = await nodes[1].command('drain 5');
    assert.equal(answer.event, 'drained');
    assert.deepEqual((answer.status as { announced: string[] }).announced, []);
    const ms = await waitFor('node 2 withdrawn from the IPv6 route', 5000, () => same(hops6(VIP6), [nodeUplinkAddress6(1)]), 10);
    t.diagnostic(`drain: IPv6 route down to node 1 only after ${ms} ms`);
    await waitFor('node 2 withdrawn from the IPv4 route', 5000, () => same(hops4(VIP4), [nodeUplinkAddress(1)]));
    // Traffic keeps flowing through the remaining node.
    const r = run('ip', ['netns', 'exec', `${P}-client`, 'curl', '-s', '-m', '3', '-g', `http://[${VIP6}]:80/`], { allowFail: true });
    assert.equal(r.status, 0, r.stderr);
    assert.equal((await nodes[1].command('undrain')).event, 'undrained');
    await waitFor('node 2 announcing again', 10_000, () => same(hops6(VIP6), both6) && same(hops4(VIP4), both4));
  });

  test('a stopped daemon withdraws its IPv6 VIPs', { timeout: 30_000 }, async () => {
    await nodes[1].stop();
    await waitFor('node 2 gone from the IPv6 route', 5000, () => same(hops6(VIP6), [nodeUplinkAddress6(1)]));
    assert.deepEqual(hops4(VIP4), [nodeUplinkAddress(1)]);
  });

  test('a node that dies hard (kill -9, links down) leaves the IPv6 ECMP set through BFD within about a second', { timeout: 60_000 }, async (t) => {
    const node = nodes[1];
    await node.start();
    await waitFor('node 2 announcing again', 20_000, () => same(hops6(VIP6), both6), 100);
    // BGP announces before BFD is up (BFD's handshake starts once the session is established):
    // a kill in between is detected by the hold time (3 s; seen once in CI), not by BFD.
    const bfdBy = Date.now() + 10_000;
    for (;;) {
      const status = (await node.command('status')).status as { peers: Array<{ peer: string; state: string; bfd: string }> };
      if (status.peers.length === 2 && status.peers.every((p) => p.state === 'Established' && p.bfd === 'Up')) break;
      if (Date.now() > bfdBy) throw new Error(`BFD not up on node 2's sessions after 10 s: ${JSON.stringify(status.peers)}`);
      await sleep(100);
    }
    const bird = node.birdPid();
    const killedAt = Date.now();
    // Links first: a dead host sends nothing, not even the FIN its kernel would send for BIRD's sockets.
    run('ip', ['netns', 'exec', node.netns, 'ip', 'link', 'set', `${P}-lb0`, 'down']);
    run('ip', ['netns', 'exec', node.netns, 'ip', 'link', 'set', `${P}-lb1`, 'down']);
    node.child!.kill('SIGKILL');
    if (bird) process.kill(bird, 'SIGKILL');
    node.child = null;
    await waitFor('the router to drop the dead node from the IPv6 route', 5000, () => same(hops6(VIP6), [nodeUplinkAddress6(1)]), 10);
    const detectMs = Date.now() - killedAt;
    t.diagnostic(`IPv6: the router dropped the dead node after ${detectMs} ms (BFD 100 ms x 3 on the IPv6 session)`);
    assert.ok(detectMs < 1500, `the router kept the dead node for ${detectMs} ms`);
    // The survivor still serves the IPv6 VIP.
    const r = run('ip', ['netns', 'exec', `${P}-client`, 'curl', '-s', '-m', '3', '-g', `http://[${VIP6}]:80/`], { allowFail: true });
    assert.equal(r.status, 0, r.stderr);
  });
});
