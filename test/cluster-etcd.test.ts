/**
 * The whole cluster together (issue 13): `lab up --nodes 3 --etcd 1`, three daemons in etcd mode
 * with BIRD, started with the real CLI (`xdplb daemon --store --node-name --bird-dir --pin-dir`)
 * inside their namespaces and stopped by pid, real TCP traffic from the client through the
 * router's ECMP. Prefix `xlbc` (namespaces, links, pins), API port 28080 inside each node,
 * host forwards on 28101..28103.
 *
 * - a backend change through lb1's API reaches every node's kernel maps; the translated Maglev
 *   tables (and the hash seed) are the same on every node before and after, and 32 fresh
 *   5-tuples run through each node's pinned program (BPF_PROG_TEST_RUN) reach the same backend;
 * - PUT /api/v1/nodes/lb2/drain sent to lb1 withdraws lb2 at the router; long connections survive;
 * - etcd kill -9: traffic flows, routes stay, writes 503, reads X-Xdplb-Stale; etcd back:
 *   writes work, every node converges to the same revision;
 * - rolling upgrade: drain, stop, start with another build of the BPF object (adopt + replace
 *   the program in place), undrain, node by node under traffic: 0 failed requests, every
 *   node's program tag changed.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { kernelTestSkip } from './support/kernel-env';
import { clusterUp, clusterDown, routerEcmp, readClusterState, stopEtcdMember, startEtcdMember } from '../src/lab/cluster-lab';
import { nodeUplinkAddress } from '../src/lab/cluster-topology';
import { ClusterNodes, kernelMaglevTable, transitionTables } from '../src/lab/cluster-nodes';
import { run } from '../src/lab/netns';
import { repoPath } from '../src/daemon/paths';
import type { FlowReport } from './cluster/flow-driver';
import type { ClusterView } from '../src/domain/cluster';
import { waitFor as waitUntil } from '../src/lab/wait';
import { buildVariantObject } from './support/variant-object';

const P = 'xlbc';
const VIP = '198.18.100.1';
const TOKEN = 'xlbc-test-admin-token-0123456789';
const WEB = { vip: VIP, port: 80, protocol: 'tcp' as const };
const skip = kernelTestSkip('cluster etcd tests')
  || (existsSync('/usr/sbin/bird') ? false : 'BIRD 2 is not installed (/usr/sbin/bird)')
  || (existsSync('/usr/bin/etcd') ? false : 'etcd is not installed (/usr/bin/etcd)');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const SEED = `
hashSeed: 4242
maglev: { tableSize: 251 }
# Short transitions: a node that leaves the ECMP set while slots are moved takes with it what
# only it remembered (docs/cluster.md, "Transitions and ECMP"); the drain below waits them out.
transitionSeconds: 1
tokens: [{ name: t, role: admin, token: ${TOKEN} }]
services:
  - name: web
    vip: ${VIP}
    port: 80
    protocol: tcp
    mode: nat
    backends:
      - { address: 198.18.1.11, port: 8080, weight: 1 }
      - { address: 198.18.1.12, port: 8080, weight: 1 }
`;

function nextHops(): string[] { return routerEcmp(P)[VIP] ?? []; }

const waitFor = (what: string, timeoutMs: number, pred: () => boolean | Promise<boolean>, stepMs = 50): Promise<number> =>
  waitUntil(what, timeoutMs, pred, stepMs, () => `router next hops: ${nextHops().join(', ') || 'none'}`);

/** The flow driver (test/cluster/flow-driver.ts) in the client namespace; stop() ends it and returns its report. */
function startDriver(o: { longConns: number; intervalMs: number; newConnRps: number }): { stop(): Promise<FlowReport> } {
  const child = spawn('ip', ['netns', 'exec', `${P}-client`, process.execPath, repoPath('dist/test/cluster/flow-driver.js'),
    JSON.stringify({ host: VIP, port: 80, maxSec: 120, ...o })], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  const done = new Promise<FlowReport>((resolve, reject) => child.on('close', (code) => {
    try { resolve(JSON.parse(out.trim().split('\n').at(-1)!) as FlowReport); } catch { reject(new Error(`flow driver failed (exit ${code})`)); }
  }));
  return { stop: async () => { child.kill('SIGTERM'); return done; } };
}

function failures(report: FlowReport, since = 0): { long: number; fresh: number; moved: number; detail: string } {
  const bad = report.long.filter((c) => c.errors.some((e) => e.at >= since) || c.sockets > 1 || c.backends.length > 1);
  const fresh = report.fresh.filter((f) => f.error && f.at >= since);
  return {
    long: report.long.reduce((n, c) => n + c.errors.filter((e) => e.at >= since).length, 0),
    fresh: fresh.length,
    moved: report.long.filter((c) => c.backends.length > 1 || c.sockets > 1).length,
    detail: JSON.stringify({ long: bad.slice(0, 3), fresh: fresh.slice(0, 3) }),
  };
}

describe('cluster: 3 nodes in etcd mode with BIRD, real traffic', { skip }, () => {
  let nodes: ClusterNodes;
  let dir = '';

  const view = async (k: number) => (await nodes.api(k, 'GET', '/api/v1/cluster')).body as ClusterView;
  const tables = () => [1, 2, 3].map((k) => kernelMaglevTable(nodes.pinDir(k), WEB));
  /** Where each node's program sends each of `n` fresh 5-tuples (BPF_PROG_TEST_RUN on its pinned program). */
  let tupleBase = 0;
  const routes = (n: number): string[][] => {
    const base = tupleBase;
    tupleBase += n;
    return Array.from({ length: n }, (_, i) => {
      const tuple = { src: `198.18.0.${100 + ((base + i) >> 8)}`, sport: 20000 + ((base + i) & 0xff) * 7, vip: VIP, port: 80 };
      return [1, 2, 3].map((k) => nodes.route(k, tuple));
    });
  };

  before(async () => {
    if (readClusterState(P)) await clusterDown(P);
    for (let k = 1; k <= 3; k++) rmSync(`/sys/fs/bpf/${P}-lb${k}`, { recursive: true, force: true });
    dir = mkdtempSync(path.join(os.tmpdir(), `${P}-`));
    await clusterUp({ prefix: P, nodes: 3, backends: 3, mode: 'nat', etcd: 1 });
    nodes = new ClusterNodes({ prefix: P, nodes: 3, apiPort: 28080, hostPortBase: 28100, token: TOKEN, dir });
    nodes.seed(SEED);
    await Promise.all([1, 2, 3].map((k) => nodes.start(k)));
    await waitFor('three next hops at the router', 30_000, () => nextHops().length === 3, 100);
  });

  after(async () => {
    await nodes?.cleanup();
    await clusterDown(P);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('a backend change through lb1\'s API reaches every node\'s kernel maps; same table (slot -> backend) on every node before and after', { timeout: 60_000 }, async (t) => {
    for (const k of [1, 2, 3]) assert.deepEqual((await nodes.api(k, 'GET', '/api/v1/hash-seed')).body, { hashSeed: 4242 }, `lb${k}'s hash seed`);
    const before = tables();
    assert.equal(new Set(before[0]).size, 2);
    assert.deepEqual(before[1], before[0], 'lb2 differs from lb1 before the change');
    assert.deepEqual(before[2], before[0], 'lb3 differs from lb1 before the change');
    const routedBefore = routes(32);
    for (const r of routedBefore) assert.ok(r.every((x) => x === r[0]) && /^198\.18\.1\.1[12]:8080$/.test(r[0]), `nodes disagree on a 5-tuple: ${r.join(' / ')}`);
    assert.equal(new Set(routedBefore.map((r) => r[0])).size, 2, 'the 32 tuples all went to one backend');
    const t0 = Date.now();
    const res = await nodes.api(1, 'POST', '/api/v1/services/web/backends', { address: '198.18.1.13', port: 8080, weight: 2 });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const ms = await waitFor('every node\'s kernel table to hold the new backend', 10_000,
      () => tables().every((tb) => tb.includes('198.18.1.13:8080')), 5);
    t.diagnostic(`lb1 API write -> every node's kernel Maglev table: ${Date.now() - t0} ms (waited ${ms} ms after the 201)`);
    const after = tables();
    assert.deepEqual(after[1], after[0], 'lb2 differs from lb1 after the change');
    assert.deepEqual(after[2], after[0], 'lb3 differs from lb1 after the change');
    const routedAfter = routes(32);
    for (const r of routedAfter) assert.ok(r.every((x) => x === r[0]) && /^198\.18\.1\.1[123]:8080$/.test(r[0]), `nodes disagree on a 5-tuple: ${r.join(' / ')}`);
    assert.ok(routedAfter.some((r) => r[0] === '198.18.1.13:8080'), 'no fresh 5-tuple went to the new backend');
    const share = after[0].filter((b) => b === '198.18.1.13:8080').length;
    assert.ok(Math.abs(share - 251 / 2) <= 2, `weight 2 of 4 should own about half the slots, got ${share}`);
    // Maglev's minimal disruption: slots of the old backends move only to the new one.
    const moved = before[0].filter((b, i) => after[0][i] !== b);
    assert.ok(moved.length > 0 && after[0].every((b, i) => b === before[0][i] || b === '198.18.1.13:8080'));
    const revisions = await Promise.all([1, 2, 3].map(async (k) => (await view(k)).nodes.find((n) => n.self)!.appliedRevision));
    assert.ok(revisions.every((r) => r === revisions[0] && r > 0), `applied revisions ${revisions.join(', ')}`);
  });

  test('PUT /api/v1/nodes/lb2/drain sent to lb1 withdraws lb2 at the router; long connections survive', { timeout: 60_000 }, async (t) => {
    await waitFor('three next hops', 20_000, () => nextHops().length === 3, 100);
    const driver = startDriver({ longConns: 60, intervalMs: 200, newConnRps: 10 });
    try {
      await sleep(2000);
      // The change of the test before moved slots; a drain during that transition would move
      // connections that started on lb2 after the change to nodes that send their non-SYN
      // packets to the previous backend (docs/cluster.md). Drain once every node's marks are gone.
      await waitFor('the transition to end on every node', 20_000, () => [1, 2, 3].every((k) => transitionTables(nodes.pinDir(k)) === 0), 100);
      // And published so (a drain during a transition is refused: NodeStatus.movedSlots).
      await waitFor('every node published as steady', 10_000, async () => (await view(1)).nodes.every((n) => n.movedSlots === 0), 100);
      const t0 = Date.now();
      const res = await nodes.api(1, 'PUT', '/api/v1/nodes/lb2/drain', { drain: true, graceSeconds: 30 });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.name, 'lb2');
      await waitFor('lb2 gone from the VIP\'s next hops', 5000, () => !nextHops().includes(nodeUplinkAddress(2)), 10);
      t.diagnostic(`drain via lb1 -> lb2 withdrawn at the router after ${Date.now() - t0} ms`);
      assert.deepEqual(nextHops(), [nodeUplinkAddress(1), nodeUplinkAddress(3)]);
      const lb2 = (await view(3)).nodes.find((n) => n.name === 'lb2')!;
      await waitFor('lb2 published as drained', 5000, async () => (await view(3)).nodes.find((n) => n.name === 'lb2')?.bgp?.drained === true);
      assert.ok(lb2.alive);
      await sleep(2500);
    } finally {
      const report = await driver.stop();
      const f = failures(report);
      t.diagnostic(`drain: ${report.long.reduce((n, c) => n + c.ok, 0)} requests on ${report.long.length} long connections, ${report.fresh.length} fresh connections`);
      assert.equal(report.long.length, 60);
      assert.equal(f.long, 0, `failed requests on long connections: ${f.detail}`);
      assert.equal(f.moved, 0, `long connections reset or moved: ${f.detail}`);
      assert.equal(f.fresh, 0, `failed fresh connections: ${f.detail}`);
    }
    assert.equal((await nodes.api(3, 'PUT', '/api/v1/nodes/lb2/drain', { drain: false })).status, 200);
    await waitFor('lb2 announced again', 10_000, () => nextHops().includes(nodeUplinkAddress(2)));
  });

  test('etcd killed: traffic flows, routes stay, writes 503, reads stale; etcd back: writes work, every node converges', { timeout: 90_000 }, async (t) => {
    await waitFor('three next hops', 20_000, () => nextHops().length === 3, 100);
    const before = tables();
    const driver = startDriver({ longConns: 60, intervalMs: 200, newConnRps: 10 });
    let minHops = 3;
    const watch = setInterval(() => { minHops = Math.min(minHops, nextHops().length); }, 100);
    let report: FlowReport;
    try {
      await sleep(1500);
      await stopEtcdMember(P, 1, { kill: true });
      const killedAt = Date.now();
      await waitFor('every node to see etcd gone', 15_000, async () => {
        const views = await Promise.all([1, 2, 3].map(view));
        return views.every((v) => !v.store.connected && v.store.stale);
      }, 200);
      t.diagnostic(`etcd kill -9 -> every node stale after ${Date.now() - killedAt} ms`);
      const write = await nodes.api(2, 'PATCH', '/api/v1/services/web/backends/198.18.1.13:8080', { weight: 1 });
      assert.equal(write.status, 503, JSON.stringify(write.body));
      assert.equal(write.body.error.code, 'XDPLB_ERR_UNAVAILABLE');
      assert.match(write.body.error.message, /etcd .*unreachable/);
      for (const k of [1, 2, 3]) {
        const read = await nodes.api(k, 'GET', '/api/v1/services');
        assert.equal(read.status, 200);
        assert.match(read.headers.get('x-xdplb-stale') ?? '', /unreachable/, `lb${k}'s read carries X-Xdplb-Stale`);
      }
      await sleep(3000);
      assert.deepEqual(tables(), before, 'the kernel tables moved while etcd was down');
      assert.equal(nextHops().length, 3, 'routes withdrawn while etcd was down');
    } finally {
      clearInterval(watch);
      report = await driver.stop();
    }
    const f = failures(report);
    t.diagnostic(`etcd down: ${report.long.reduce((n, c) => n + c.ok, 0)} requests on long connections, ${report.fresh.length} fresh connections, fewest next hops ${minHops}`);
    assert.equal(minHops, 3, 'the router lost a next hop while etcd was down');
    assert.equal(f.long + f.fresh + f.moved, 0, `traffic failed while etcd was down: ${f.detail}`);
    assert.ok(report.fresh.length >= 30, `only ${report.fresh.length} fresh connections`);

    const t0 = Date.now();
    await startEtcdMember(P, 1);
    await waitFor('every node reconnected', 30_000, async () => {
      const views = await Promise.all([1, 2, 3].map(view));
      return views.every((v) => v.store.connected && !v.store.stale);
    }, 200);
    t.diagnostic(`etcd restarted -> every node connected after ${Date.now() - t0} ms`);
    const res = await nodes.api(3, 'PATCH', '/api/v1/services/web/backends/198.18.1.13:8080', { weight: 1 });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    await waitFor('every node at the same, current revision', 15_000, async () => {
      const views = await Promise.all([1, 2, 3].map(view));
      const applied = views.map((v) => v.nodes.find((n) => n.self)!.appliedRevision);
      return applied.every((r) => r === views[0].revision) && views.every((v) => v.revision === views[0].revision)
        && views[0].nodes.length === 3 && views[0].nodes.every((n) => n.alive && n.lag === 0);
    }, 200);
    const after = tables();
    assert.ok(Math.abs(after[0].filter((b) => b === '198.18.1.13:8080').length - 251 / 3) <= 2, 'the write after etcd came back is applied');
    assert.deepEqual(after[1], after[0]);
    assert.deepEqual(after[2], after[0]);
    assert.equal((await nodes.api(1, 'GET', '/api/v1/services')).headers.get('x-xdplb-stale'), null);
  });

  test('rolling upgrade: drain, restart with another build of the program, undrain, node by node under traffic: 0 failed requests', { timeout: 180_000 }, async (t) => {
    const object = buildVariantObject(dir);
    await waitFor('three next hops', 20_000, () => nextHops().length === 3, 100);
    const tagsBefore = [1, 2, 3].map((k) => nodes.programTag(k));
    const driver = startDriver({ longConns: 60, intervalMs: 200, newConnRps: 10 });
    // When each step happened (epoch ms), printed beside the driver's error times on a failure.
    const events: string[] = [];
    const mark = (what: string) => events.push(`${what} ${Date.now()}`);
    let report: FlowReport;
    try {
      await sleep(1500);
      // The test before ends with a weight change, which moved slots: as in the drain test, a
      // node drained during that transition takes with it the flows only it remembered, and the
      // others send their non-SYN packets to the previous backend, which resets them (seen in
      // CI: one reset 27 ms after lb1's drain; docs/cluster.md). Drain once the marks are gone.
      await waitFor('the transition to end on every node', 20_000, () => [1, 2, 3].every((k) => transitionTables(nodes.pinDir(k)) === 0), 100);
      // Every node's view: the drains below go through another node, which reads the drained
      // one's published status (a CI run had lb2 refuse lb1's drain: lb2 still held lb1's status from before the sweep).
      await waitFor('every node published as steady, in every node\'s view', 10_000,
        async () => (await Promise.all([1, 2, 3].map(view))).every((v) => v.nodes.every((n) => n.movedSlots === 0)), 100);
      mark('transition over');
      for (const k of [1, 2, 3]) {
        const t0 = Date.now();
        const other = k === 1 ? 2 : 1;
        mark(`lb${k} drain`);
        const drained = await nodes.api(other, 'PUT', `/api/v1/nodes/lb${k}/drain`, { drain: true, graceSeconds: 2 });
        assert.equal(drained.status, 200, JSON.stringify(drained.body));
        await waitFor(`lb${k} withdrawn`, 5000, () => !nextHops().includes(nodeUplinkAddress(k)), 10);
        mark(`lb${k} withdrawn`);
        await sleep(2000);   // the grace period: what the router sent before the withdrawal is forwarded
        mark(`lb${k} stop`);
        await nodes.stop(k);
        mark(`lb${k} start`);
        await nodes.start(k, { object });
        mark(`lb${k} started`);
        const tag = nodes.programTag(k);
        assert.notEqual(tag.tag, tagsBefore[k - 1].tag, `lb${k}'s program was not replaced`);
        assert.deepEqual(tag.attachedIds, [tag.id, tag.id], `lb${k}'s interfaces do not run the pinned program`);
        assert.equal(tag.backendsMapId, tagsBefore[k - 1].backendsMapId, `lb${k} loaded fresh maps instead of adopting the pinned ones`);
        // The drain lives in etcd: the restarted node stays withdrawn until undrained.
        await sleep(1000);
        assert.ok(!nextHops().includes(nodeUplinkAddress(k)), `lb${k} announced before its undrain`);
        mark(`lb${k} undrain`);
        assert.equal((await nodes.api(k, 'PUT', `/api/v1/nodes/lb${k}/drain`, { drain: false })).status, 200);
        await waitFor(`lb${k} announced again`, 20_000, () => nextHops().includes(nodeUplinkAddress(k)), 50);
        mark(`lb${k} announced`);
        t.diagnostic(`lb${k}: drained, upgraded (tag ${tagsBefore[k - 1].tag} -> ${tag.tag}) and announced again in ${Date.now() - t0} ms`);
        await sleep(1000);
      }
    } finally {
      report = await driver.stop();
    }
    const f = failures(report);
    t.diagnostic(`rolling upgrade: ${report.long.reduce((n, c) => n + c.ok, 0)} requests on ${report.long.length} long connections, ${report.fresh.length} fresh connections`);
    if (f.long || f.moved || f.fresh) {
      // What each node's program did with the packets it did not forward (a PASS to a node's own
      // kernel answers an unknown connection with a reset), and when the driver saw the errors.
      t.diagnostic(`driver ${report.startedAt}..${report.endedAt}; router next hops now: ${nextHops().join(', ')}`);
      t.diagnostic(`steps: ${events.join(', ')}`);
      for (const k of [1, 2, 3]) {
        const stats = (await nodes.api(k, 'GET', '/api/v1/stats')).body as { reasons?: Array<{ name: string; packets: number }> };
        const notForwarded = (stats.reasons ?? []).filter((r) => r.packets > 0 && r.name !== 'forwarded' && r.name !== 'reversed').map((r) => `${r.name} ${r.packets}`);
        t.diagnostic(`lb${k} verdicts other than forwarded/reversed: ${notForwarded.join(', ') || 'none'}`);
      }
    }
    assert.equal(f.long, 0, `failed requests on long connections: ${f.detail}`);
    assert.equal(f.moved, 0, `long connections reset or moved: ${f.detail}`);
    assert.equal(f.fresh, 0, `failed fresh connections: ${f.detail}`);
    assert.ok(report.fresh.length >= 100, `only ${report.fresh.length} fresh connections`);
    const tagsAfter = [1, 2, 3].map((k) => nodes.programTag(k).tag);
    assert.ok(tagsAfter.every((x) => x === tagsAfter[0]), `nodes run different programs after the upgrade: ${tagsAfter.join(', ')}`);
    const tb = tables();
    assert.deepEqual(tb[1], tb[0]);
    assert.deepEqual(tb[2], tb[0]);
  });
});
