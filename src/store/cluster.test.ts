/**
 * Issue 13 items 1, 2 and 5 (API/CLI) with a real etcd and real data planes: two (then three)
 * daemons in this process, each with its own pinned kernel maps (/sys/fs/bpf/xlbs-*), the
 * desired state in etcd (ports 24101/24102, node b reaching etcd through a relay on 24103 that
 * the test can cut). The Maglev tables are read back from the kernel and translated from
 * backend ids to backend addresses.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { setTimeout as sleep } from 'node:timers/promises';
import { Etcd3 } from 'etcd3';
import { kernelTestSkip } from '../../test/support/kernel-env';
import { Relay, TestEtcd, waitFor, whyEtcdCannotRun } from '../../test/support/etcd';
import { startDaemon, type RunningDaemon } from '../cli/daemon-process';
import { cliCommand } from '../daemon/spawn';
import { BpfMap } from '../bpf';
import { LB, LbBackendCodec, decodeU32, encodeU32 } from '../dataplane/abi';
import { pinnedTableOuterValue } from '../dataplane/maglev-tables';
import { parseConfigText } from '../config/config';
import { clusterPart } from './layout';
import { seedStore } from './etcd';
import type { ClusterView } from '../cluster/status';

const skip = kernelTestSkip('store cluster tests') || whyEtcdCannotRun() || false;
const TOKEN = 'xlbs-admin-token-0123456789abcdef';
const ETCD_CLIENT = 24101;
const ETCD_PEER = 24102;
const RELAY = 24103;
const PREFIX = '/xlbs-test';
const logger = pino({ level: process.env.XLBS_LOG ?? 'silent' });

const SEED = `
hashSeed: 1234
maglev: { tableSize: 251 }
tokens: [{ name: ops, role: admin, token: ${TOKEN} }]
services:
  - name: web
    vip: 198.18.200.1
    port: 80
    protocol: tcp
    mode: nat
    backends:
      - { address: 198.18.201.1, port: 8080, weight: 1 }
      - { address: 198.18.201.2, port: 8080, weight: 2 }
      - { address: 198.18.201.3, port: 8080, weight: 1 }
`;

/** "address:port" of the backend in every slot of the service's kernel Maglev table. */
function kernelTable(pinDir: string, serviceId: number): string[] {
  const backends = BpfMap.fromPin(path.join(pinDir, 'maps', 'backends'));
  try {
    const outer = pinnedTableOuterValue(path.join(pinDir, 'maps'), serviceId);
    assert.ok(outer, `no Maglev table for service id ${serviceId} in ${pinDir}`);
    const inner = BpfMap.fromId(decodeU32(outer));
    try {
      const ids = new Uint32Array(inner.maxEntries);
      for (const [k, v] of inner.lookupBatch()) ids[decodeU32(k)] = decodeU32(v) & LB.SLOT_ID_MASK;   // the id; the top bit marks a moved slot
      return [...ids].map((id) => {
        const value = backends.lookup(encodeU32(id));
        assert.ok(value, `backend id ${id} of ${pinDir} has no entry`);
        const b = LbBackendCodec.decode(value);
        return `${b.ip}:${b.port}`;
      });
    } finally { inner.close(); }
  } finally { backends.close(); }
}

function tableOf(d: RunningDaemon, pinDir: string, service = 'web'): string[] {
  return kernelTable(pinDir, d.controller.getService(service).id);
}

async function api(d: RunningDaemon, method: string, url: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(d.url + url, {
    method, headers: { authorization: `Bearer ${TOKEN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
}

function backendKeys(d: RunningDaemon, service = 'web'): string[] {
  return d.controller.getService(service).backends.map((b) => b.key).sort();
}

/** The CLI as a child process. */
function run(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const [cmd, ...pre] = cliCommand();
  return new Promise((resolve) => {
    execFile(cmd, [...pre, ...args], { timeout: 20_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (err as { code?: number }).code ?? 1 : 0, stdout, stderr }));
  });
}

describe('cluster store: etcd + kernel data planes', { skip, timeout: 240_000 }, () => {
  const etcd = new TestEtcd(ETCD_CLIENT, ETCD_PEER);
  const relay = new Relay(RELAY, ETCD_CLIENT);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xlbs-'));
  const pins = { a: '/sys/fs/bpf/xlbs-a', b: '/sys/fs/bpf/xlbs-b', c: '/sys/fs/bpf/xlbs-c' };
  const drains: Array<[string, boolean, number]> = [];
  const nodes: Record<string, RunningDaemon | null> = { a: null, b: null, c: null };
  const urlVia = (endpoint: string) => `etcd://${endpoint}${PREFIX}`;

  async function start(name: 'a' | 'b' | 'c', endpoint: string): Promise<RunningDaemon> {
    const file = path.join(dir, `${name}.yaml`);
    // c gets its store and name from the command line (`xdplb daemon --store --node-name`), its file holds nothing.
    fs.writeFileSync(file, name === 'c' ? '# node c: everything from the command line\n{}\n' : `store: ${urlVia(endpoint)}\nnode: { name: ${name} }\n`);
    const d = await startDaemon({
      ...(name === 'c' ? { store: urlVia(endpoint), nodeName: 'c' } : {}),
      configPath: file, pinDir: pins[name], listen: '127.0.0.1:0', logger: logger.child({ node: name }),
      storeOptions: { probeIntervalMs: 300, callTimeoutMs: 800, leaseTtlSeconds: 3 }, publishIntervalMs: 300,
      cluster: { onDrain: (drain, grace) => { drains.push([name, drain, grace]); } },
    });
    nodes[name] = d;
    return d;
  }
  const converged = (...ds: RunningDaemon[]) => {
    const revs = ds.map((d) => d.store!.appliedModRevision);
    return revs.every((r) => r === revs[0]) && ds.every((d) => d.store!.fresh());
  };

  before(async () => {
    for (const p of Object.values(pins)) fs.rmSync(p, { recursive: true, force: true });
    await etcd.start();
    await relay.open();
  });
  after(async () => {
    for (const d of Object.values(nodes)) await d?.stop({ detach: true }).catch(() => undefined);
    await relay.cut();
    await etcd.destroy();
    for (const p of Object.values(pins)) fs.rmSync(p, { recursive: true, force: true });
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('a daemon refuses an empty prefix, naming `xdplb store init`; store init seeds once', async () => {
    await assert.rejects(start('a', etcd.endpoint), /holds no desired state: seed it once with `xdplb store init/);
    assert.equal(fs.existsSync(pins.a), false, 'nothing was loaded into the kernel');
    const seedFile = path.join(dir, 'seed.yaml');
    fs.writeFileSync(seedFile, SEED.replace('port: 80\n', 'port: 99999\n'));
    const bad = await run('store', 'init', '--store', urlVia(etcd.endpoint), '-f', seedFile);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^xdplb: XDPLB_ERR_VALIDATION: .*seed\.yaml:\d+:\d+: \/services\/0\/port: must be <= 65535/m);
    fs.writeFileSync(seedFile, SEED);
    const ok = await run('store', 'init', '--store', urlVia(etcd.endpoint), '-f', seedFile);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^seeded etcd:\/\/127\.0\.0\.1:24101\/xlbs-test at revision \d+: 1 services, 0 users/);
    const again = await run('store', 'init', '--store', urlVia(etcd.endpoint), '-f', seedFile);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /XDPLB_ERR_CONFLICT: \/xlbs-test\/desired already holds a desired state: nothing written/);
    await assert.rejects(seedStore(urlVia(etcd.endpoint), clusterPart(parseConfigText(SEED))), /already holds a desired state/);
  });

  test('a change through node A\'s API reaches node B\'s kernel maps; both tables are the same', async () => {
    const a = await start('a', etcd.endpoint);
    const b = await start('b', relay.endpoint);
    assert.equal(a.controller.runningHashSeed(), 1234);
    assert.deepEqual(tableOf(a, pins.a), tableOf(b, pins.b));
    const res = await api(a, 'POST', '/api/v1/services/web/backends', { address: '198.18.201.4', port: 8080, weight: 3 });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    await waitFor('b to apply a\'s change', () => backendKeys(b).includes('198.18.201.4:8080') && converged(a, b));
    const ta = tableOf(a, pins.a);
    assert.deepEqual(ta, tableOf(b, pins.b));
    assert.equal(new Set(ta).size, 4, 'every backend holds slots');
    assert.ok(Math.abs(ta.filter((k) => k === '198.18.201.4:8080').length - (251 * 3) / 7) <= 1, 'weights are honoured');
    // The cluster view from either node shows both, at the same revision, without lag.
    await waitFor('both statuses published at the new revision', async () => {
      const view = (await api(b, 'GET', '/api/v1/cluster')).body as ClusterView;
      return view.nodes.length === 2 && view.nodes.every((n) => n.alive && n.lag === 0 && n.appliedRevision === a.store!.appliedModRevision);
    });
    const view = (await api(b, 'GET', '/api/v1/cluster')).body as ClusterView;
    assert.equal(view.mode, 'etcd');
    assert.equal(view.self, 'b');
    assert.equal(view.revision, a.store!.appliedModRevision);
    assert.deepEqual(view.store, { url: urlVia(relay.endpoint), connected: true, stale: false });
    assert.deepEqual(view.nodes.map((n) => [n.name, n.self]), [['b', true], ['a', false]]);
    assert.deepEqual(view.nodes[1].health.web, { '198.18.201.1:8080': 'unchecked', '198.18.201.2:8080': 'unchecked', '198.18.201.3:8080': 'unchecked', '198.18.201.4:8080': 'unchecked' });
    assert.equal(view.nodes[0].bgp, null);
    assert.deepEqual(view.disagreements, []);
  });

  test('two concurrent writes from the same revision on two nodes: one wins, the other gets 409; nothing is lost', async () => {
    const a = nodes.a!; const b = nodes.b!;
    let conflicts = 0;
    for (let i = 0; i < 8 && conflicts < 2; i++) {
      await waitFor('a and b at the same revision', () => converged(a, b));
      const mine = `198.18.202.${10 + i}:8080`;
      const theirs = `198.18.203.${10 + i}:8080`;
      const [ra, rb] = await Promise.all([
        api(a, 'POST', '/api/v1/services/web/backends', { address: mine.split(':')[0], port: 8080 }),
        api(b, 'POST', '/api/v1/services/web/backends', { address: theirs.split(':')[0], port: 8080 }),
      ]);
      const statuses = [ra.status, rb.status].sort();
      assert.notDeepEqual(statuses, [409, 409], 'both writes refused');
      await waitFor('convergence', () => converged(a, b));
      for (const [r, key] of [[ra, mine], [rb, theirs]] as const) {
        if (r.status === 201) {
          assert.ok(backendKeys(a).includes(key) && backendKeys(b).includes(key), `the accepted ${key} is on both nodes`);
        } else {
          assert.equal(r.status, 409, JSON.stringify(r.body));
          assert.equal(r.body.error.code, 'XDPLB_ERR_CONFLICT');
          assert.match(r.body.error.message, /changed since this node read it \(revision \d+ -> \d+: service web changed\)/);
          assert.ok(!backendKeys(a).includes(key) && !backendKeys(b).includes(key), `the refused ${key} is nowhere`);
          conflicts++;
        }
      }
    }
    assert.ok(conflicts >= 1, 'concurrent writes from one revision never conflicted');
    assert.deepEqual(tableOf(a, pins.a), tableOf(b, pins.b));
  });

  test('If-Match: a change based on a revision the cluster has moved past is refused, naming what changed', async () => {
    const a = nodes.a!; const b = nodes.b!;
    await waitFor('a and b at the same revision', () => converged(a, b));
    const read = await api(b, 'GET', '/api/v1/services/web');
    const revision = read.headers.get('x-xdplb-revision')!;
    assert.equal(revision, String(b.store!.appliedModRevision));
    assert.equal((await api(a, 'POST', '/api/v1/services/web/backends', { address: '198.18.207.1', port: 8080 })).status, 201);
    await waitFor('b to apply it', () => backendKeys(b).includes('198.18.207.1:8080') && converged(a, b));
    const stale = await api(b, 'PATCH', '/api/v1/services/web/backends/198.18.201.1:8080', { weight: 9 }, { 'if-match': `"${revision}"` });
    assert.equal(stale.status, 409, JSON.stringify(stale.body));
    assert.match(stale.body.error.message, new RegExp(`is at revision \\d+, this change was based on revision ${revision} \\(since then: service web changed\\); nothing was changed`));
    assert.equal(b.controller.getService('web').backends.find((x) => x.key === '198.18.201.1:8080')!.weight, 1);
    const current = (await api(b, 'GET', '/api/v1/services/web')).headers.get('x-xdplb-revision')!;
    const ok = await api(b, 'PATCH', '/api/v1/services/web/backends/198.18.201.1:8080', { weight: 1 }, { 'if-match': current });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    const bad = await api(b, 'PATCH', '/api/v1/services/web/backends/198.18.201.1:8080', { weight: 1 }, { 'if-match': 'yesterday' });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error.message, /^if-match: must be one revision number/);
  });

  test('etcd killed: forwarding state unchanged, writes 503, reads marked stale; etcd back: every node converges', async () => {
    const a = nodes.a!; const b = nodes.b!;
    const before = [tableOf(a, pins.a), tableOf(b, pins.b)];
    const applied = a.store!.appliedModRevision;
    await etcd.kill();
    await waitFor('both nodes to see etcd gone', () => !a.store!.connected && !b.store!.connected);
    const write = await api(a, 'POST', '/api/v1/services/web/backends', { address: '198.18.204.1', port: 8080 });
    assert.equal(write.status, 503);
    assert.equal(write.body.error.code, 'XDPLB_ERR_UNAVAILABLE');
    assert.match(write.body.error.message, /cluster store \(etcd at 127\.0\.0\.1:24101\) is unreachable .*changes are refused until it returns; this node keeps forwarding revision \d+/);
    const read = await api(b, 'GET', '/api/v1/services');
    assert.equal(read.status, 200);
    assert.match(read.headers.get('x-xdplb-stale') ?? '', /unreachable/);
    assert.equal(read.headers.get('x-xdplb-revision'), String(applied));
    const view = (await api(a, 'GET', '/api/v1/cluster')).body as ClusterView;
    assert.equal(view.store.connected, false);
    assert.equal(view.store.stale, true);
    assert.equal(a.cluster.fresh(), false, 'announce-side freshness drops');
    // Forwarding: the kernel tables and the attached programs' maps are what they were.
    assert.deepEqual([tableOf(a, pins.a), tableOf(b, pins.b)], before);
    assert.ok(!backendKeys(a).includes('198.18.204.1:8080'));

    const resyncs = a.store!.resyncCount + b.store!.resyncCount;
    await etcd.start();
    await waitFor('both nodes reconnected', () => a.store!.connected && b.store!.connected && a.cluster.fresh() && b.cluster.fresh(), 20_000);
    const res = await api(b, 'POST', '/api/v1/services/web/backends', { address: '198.18.204.2', port: 8080 });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    await waitFor('a to apply b\'s change', () => backendKeys(a).includes('198.18.204.2:8080') && converged(a, b));
    assert.equal((await api(a, 'GET', '/api/v1/services')).headers.get('x-xdplb-stale'), null);
    assert.equal(a.store!.resyncCount + b.store!.resyncCount, resyncs, 'the watches resumed from their last revision (no full resync)');
    assert.deepEqual(tableOf(a, pins.a), tableOf(b, pins.b));
  });

  test('history compacted while node B was cut off from etcd: B resyncs fully and holds the same table', async () => {
    const a = nodes.a!; const b = nodes.b!;
    const resyncs = b.store!.resyncCount;
    await relay.cut();
    await waitFor('b to lose etcd', () => !b.store!.connected);
    assert.equal((await api(a, 'PATCH', '/api/v1/services/web/backends/198.18.201.1:8080', { weight: 5 })).status, 200);
    assert.equal((await api(a, 'DELETE', '/api/v1/services/web/backends/198.18.201.3:8080')).status, 204);
    assert.equal((await api(a, 'POST', '/api/v1/services', {
      name: 'dns', vip: '198.18.200.2', port: 53, protocol: 'udp', mode: 'dsr', tableSize: 13,
      backends: [{ address: '198.18.205.2', port: 53 }, { address: '198.18.205.1', port: 53 }],
    })).status, 201);
    const client = new Etcd3({ hosts: `http://${etcd.endpoint}` });
    try {
      const { header } = await client.kv.range({ key: Buffer.from(`${PREFIX}/desired`) });
      await client.kv.compact({ revision: header.revision, physical: true });
    } finally { client.close(); }
    await relay.open();
    await waitFor('b to resync', () => converged(a, b) && backendKeys(b, 'dns').length === 2, 20_000);
    assert.ok(b.store!.resyncCount > resyncs, 'b went through a full resync');
    assert.deepEqual(backendKeys(b), backendKeys(a));
    assert.deepEqual(tableOf(a, pins.a), tableOf(b, pins.b));
    assert.deepEqual(tableOf(a, pins.a, 'dns'), tableOf(b, pins.b, 'dns'));
  });

  test('same table on every node whatever the history: restart (adopted ids), a fresh node, reordered backends', async () => {
    const a = nodes.a!;
    await nodes.b!.stop();   // stays pinned: the restart adopts its ids
    nodes.b = null;
    // Changes while b is away, in an order b never sees: remove and re-add with another weight.
    assert.equal((await api(a, 'DELETE', '/api/v1/services/web/backends/198.18.201.2:8080')).status, 204);
    assert.equal((await api(a, 'POST', '/api/v1/services/web/backends', { address: '198.18.206.1', port: 8080, weight: 2 })).status, 201);
    assert.equal((await api(a, 'POST', '/api/v1/services/web/backends', { address: '198.18.201.2', port: 8080, weight: 4 })).status, 201);
    // The spec with its backends in reverse order is the same desired state: the table does not move.
    const spec = a.controller.state.config.services.find((s) => s.name === 'web')!;
    const beforeReorder = tableOf(a, pins.a);
    const put = await api(a, 'PUT', '/api/v1/services/web', { ...spec, backends: [...spec.backends].reverse() });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.deepEqual(tableOf(a, pins.a), beforeReorder);
    const b = await start('b', relay.endpoint);
    const c = await start('c', etcd.endpoint);
    await waitFor('three nodes converged', () => converged(a, b, c));
    const ids = (d: RunningDaemon) => d.controller.getService('web').backends.map((x) => `${x.key}#${x.id}`).sort();
    assert.notDeepEqual(ids(a), ids(c), 'the histories gave different backend ids (else this test proves little)');
    for (const service of ['web', 'dns']) {
      const ta = tableOf(a, pins.a, service);
      assert.deepEqual(tableOf(b, pins.b, service), ta, `${service}: b (restarted) differs from a`);
      assert.deepEqual(tableOf(c, pins.c, service), ta, `${service}: c (fresh) differs from a`);
    }
  });

  test('the flow hash seed is the cluster\'s: set on one node, every data plane takes it', async () => {
    const [a, b, c] = [nodes.a!, nodes.b!, nodes.c!];
    const res = await api(b, 'PUT', '/api/v1/hash-seed', { hashSeed: 98765 });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    await waitFor('every node on the new seed', () => [a, b, c].every((d) => d.controller.runningHashSeed() === 98765) && converged(a, b, c));
    assert.deepEqual((await api(c, 'GET', '/api/v1/hash-seed')).body, { hashSeed: 98765 });
    assert.deepEqual(tableOf(c, pins.c), tableOf(a, pins.a));
  });

  test('a reload of a node\'s file in cluster mode changes only its local settings', async () => {
    const a = nodes.a!;
    const revision = a.store!.appliedModRevision;
    const services = a.controller.listServices().map((x) => x.name).sort();
    fs.writeFileSync(path.join(dir, 'a.yaml'), `store: ${urlVia(etcd.endpoint)}\nnode: { name: a }\napi: { allowedHosts: [lb-a.example] }\nfragments: pass\n`);
    assert.notEqual(await a.reload('test'), 'invalid');
    await waitFor('the reload', () => a.controller.state.config.api.allowedHosts?.[0] === 'lb-a.example');
    assert.equal(a.controller.state.config.fragments, 'drop', 'a cluster field in the file is ignored');
    assert.deepEqual(a.controller.listServices().map((x) => x.name).sort(), services);
    assert.equal(a.store!.appliedModRevision, revision, 'nothing was written to the store');
    // The store's next change keeps the reloaded local part.
    assert.equal((await api(nodes.b!, 'PATCH', '/api/v1/settings', { fragPolicy: 'pass' })).status, 200);
    await waitFor('a applies b\'s settings', () => a.controller.state.config.fragments === 'pass');
    assert.deepEqual(a.controller.state.config.api.allowedHosts, ['lb-a.example']);
  });

  test('drain through any node: the store key reaches the named node\'s hook; CLI cluster status and node drain', async () => {
    const a = nodes.a!;
    drains.length = 0;
    // The tests before changed backends: every node is in a Maglev transition, and a drain now
    // could reset connections only the drained node knows. Refused, nothing written; forced, it goes.
    assert.ok(a.cluster.selfStatus().movedSlots > 0, 'moved slots after the backend changes before');
    const refused = await api(a, 'PUT', '/api/v1/nodes/c/drain', { drain: true, graceSeconds: 5 });
    assert.equal(refused.status, 409, JSON.stringify(refused.body));
    assert.match(refused.body.error.message, /^node "c" is in a Maglev transition \(\d+ moved slots( on this node)?\): /);
    await sleep(300);
    assert.deepEqual([drains, nodes.c!.cluster.drained()], [[], { drain: false, graceSeconds: 0 }], 'a refused drain reaches no node');
    const res = await api(a, 'PUT', '/api/v1/nodes/c/drain', { drain: true, graceSeconds: 5, force: true });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.name, 'c');
    await waitFor('c\'s drain hook', () => drains.some(([n, d, g]) => n === 'c' && d && g === 5));
    assert.deepEqual(drains.filter(([n]) => n !== 'c'), [], 'only c is drained');
    assert.deepEqual(nodes.c!.cluster.drained(), { drain: true, graceSeconds: 5 });
    const missing = await api(a, 'PUT', '/api/v1/nodes/nosuch/drain', { drain: true });
    assert.equal(missing.status, 404);
    assert.match(missing.body.error.message, /no node "nosuch" in the cluster \(alive nodes: a, b, c\)/);
    assert.equal((await api(a, 'PUT', '/api/v1/nodes/c/drain', { drain: 'yes' })).status, 400);

    const cli = (...args: string[]) => run(...args, '--api', a.url, '--token', TOKEN);
    const undrain = await cli('node', 'undrain', 'c');
    assert.equal(undrain.code, 0, undrain.stderr);
    assert.match(undrain.stdout, /node c: undrained/);
    await waitFor('c undrained', () => drains.some(([n, d]) => n === 'c' && !d));
    // The CLI: refused in the transition (exit 1, the API's message), drained with --force.
    const early = await cli('node', 'drain', '--grace', '7');
    assert.equal(early.code, 1, early.stdout);
    assert.match(early.stderr, /is in a Maglev transition/);
    const self = await cli('node', 'drain', '--grace', '7', '--force');
    assert.equal(self.code, 0, self.stderr);
    assert.deepEqual(a.cluster.drained(), { drain: true, graceSeconds: 7 }, 'no NAME: the node at --api');
    const json = await cli('cluster', 'status', '--json');
    assert.equal(json.code, 0, json.stderr);
    const view = JSON.parse(json.stdout) as ClusterView;
    assert.deepEqual(view.nodes.map((n) => n.name), ['a', 'b', 'c']);
    const table = await cli('cluster', 'status');
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^mode etcd etcd:\/\/127\.0\.0\.1:24101\/xlbs-test; revision \d+; store connected/);
    assert.match(table.stdout, /\ba\*\s+alive\s+\d+\s+0\s+detached/);
  });
});
