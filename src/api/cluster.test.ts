import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import pino from 'pino';
import { createApiServer } from './server';
import { AuthStore } from './auth';
import { MemoryController } from './memory-controller';
import { ClusterService, computeDisagreements, type NodeStatus } from '../cluster/status';
import { describeChanges, mergeConfig, parseStoreUrl, clusterPart, localPart } from '../store/layout';
import { parseConfigText } from '../config/config';
import { validateState } from '../config/state';
import { XdplbError } from '../domain/errors';
import type { TransitionsView } from '../domain/types';
import type { EtcdStore } from '../store/etcd';

const WEB = {
  name: 'web', vip: '198.18.100.1', port: 80, protocol: 'tcp' as const, mode: 'nat' as const,
  backends: [{ address: '198.18.1.11', port: 8080, weight: 1 }, { address: '198.18.1.12', port: 8080, weight: 1 }],
};
const TOKEN = 'xlbs-unit-token-0123456789abcdef';

describe('store URL and layout', () => {
  test('etcd://HOST:PORT[,HOST:PORT]/PREFIX parses; anything else is refused naming /store', () => {
    assert.deepEqual(parseStoreUrl('etcd://127.0.0.1:2379/xdplb'), { url: 'etcd://127.0.0.1:2379/xdplb', hosts: ['127.0.0.1:2379'], prefix: '/xdplb' });
    assert.deepEqual(parseStoreUrl('etcd://e1.lab:2379,[2001:2::1]:2379/prod/lb').hosts, ['e1.lab:2379', '[2001:2::1]:2379']);
    for (const bad of ['http://127.0.0.1:2379/x', 'etcd://127.0.0.1:2379', 'etcd://127.0.0.1/x', 'etcd://127.0.0.1:0/x', 'etcd://127.0.0.1:2379/a/../b', 'etcd://h:1/a b']) {
      assert.throws(() => parseStoreUrl(bad), (e: XdplbError) => e.code === 'XDPLB_ERR_VALIDATION' && e.field === '/store', bad);
    }
  });

  test('the config file takes store and node.name, validated by the schema', () => {
    const config = parseConfigText('store: etcd://127.0.0.1:24001/xlbs\nnode: { name: lb1.example }\n');
    assert.equal(config.store, 'etcd://127.0.0.1:24001/xlbs');
    assert.equal(config.node?.name, 'lb1.example');
    assert.throws(() => parseConfigText('store: etcd://127.0.0.1:24001\n'), /\/store: must be etcd:\/\/HOST:PORT/);
    assert.throws(() => parseConfigText('store: etcd://127.0.0.1:24001/x\nnode: { name: "-bad" }\n'), /\/node\/name/);
  });

  test('cluster fields go to the store, node-local ones stay; merged, the node runs both', () => {
    const config = validateState({ interfaces: [{ name: 'eth0' }], store: 'etcd://127.0.0.1:24001/x', hashSeed: 7, services: [WEB] });
    const cluster = clusterPart(config);
    assert.deepEqual(Object.keys(cluster).sort(), ['flowCache', 'fragments', 'hashSeed', 'maglev', 'sampling', 'services', 'tokens', 'users']);
    assert.deepEqual(Object.keys(localPart(config)).sort(), ['api', 'interfaces', 'store']);
    const merged = validateState(mergeConfig(validateState({ interfaces: [{ name: 'eth1' }], store: 'etcd://127.0.0.1:24001/x' }), cluster));
    assert.equal(merged.interfaces[0].name, 'eth1');
    assert.equal(merged.hashSeed, 7);
    assert.deepEqual(merged.services, config.services);
  });

  test('describeChanges names what another writer changed', () => {
    const before = clusterPart(validateState({ services: [WEB], allowEmpty: true }));
    const after = clusterPart(validateState({ services: [{ ...WEB, backends: WEB.backends.slice(1) }, { ...WEB, name: 'api', vip: '198.18.100.2', backends: [{ address: '198.18.1.21', port: 8080, weight: 1 }] }], hashSeed: 9, fragments: 'pass' }));
    assert.deepEqual(describeChanges(before, after), ['service web changed', 'service api added', 'hashSeed changed', 'settings changed']);
    assert.deepEqual(describeChanges(after, before), ['service web changed', 'service api removed', 'hashSeed changed', 'settings changed']);
    assert.deepEqual(describeChanges(before, before), []);
  });
});

describe('cluster view', () => {
  test('disagreements: backends whose health differs between nodes (absent counts)', () => {
    const nodes: Array<Pick<NodeStatus, 'name' | 'health'>> = [
      { name: 'a', health: { web: { '198.18.1.11:8080': 'up' as const, '198.18.1.12:8080': 'up' as const } } },
      { name: 'b', health: { web: { '198.18.1.11:8080': 'down' as const, '198.18.1.12:8080': 'up' as const } } },
      { name: 'c', health: { web: { '198.18.1.11:8080': 'up' as const } } },
    ];
    assert.deepEqual(computeDisagreements(nodes), [
      { service: 'web', backend: '198.18.1.11:8080', views: { a: 'up', b: 'down', c: 'up' } },
      { service: 'web', backend: '198.18.1.12:8080', views: { a: 'up', b: 'up', c: 'absent' } },
    ]);
    assert.deepEqual(computeDisagreements(nodes.slice(0, 1)), []);
  });

  function fileMode() {
    const controller = new MemoryController({ services: [WEB] });
    const drains: Array<[boolean, number]> = [];
    const cluster = new ClusterService({ nodeName: 'lb1', source: controller, store: null, logger: pino({ level: 'silent' }), hooks: { onDrain: (d, g) => { drains.push([d, g]); } } });
    const auth = new AuthStore([], [{ name: 'ops', role: 'admin', token: TOKEN }, { name: 'view', role: 'viewer', token: `${TOKEN}-viewer` }]);
    const app = createApiServer(controller, { auth, cluster });
    return { app, cluster, drains };
  }
  const as = (token: string) => ({ authorization: `Bearer ${token}` });

  test('file mode: GET /api/v1/cluster is this node alone at revision 0; no stale header', async () => {
    const { app } = fileMode();
    const res = await app.inject({ method: 'GET', url: '/api/v1/cluster', headers: as(`${TOKEN}-viewer`) });
    assert.equal(res.statusCode, 200, res.body);
    const view = res.json();
    assert.equal(view.mode, 'file');
    assert.equal(view.self, 'lb1');
    assert.equal(view.revision, 0);
    assert.deepEqual(view.store, { url: null, connected: true, stale: false });
    assert.equal(view.nodes.length, 1);
    assert.deepEqual(Object.keys(view.nodes[0]).sort(), ['alive', 'appliedRevision', 'bgp', 'cpu', 'dataplane', 'health', 'lag', 'movedSlots', 'name', 'rates', 'self', 'updatedAt']);
    assert.deepEqual(view.nodes[0].health, { web: { '198.18.1.11:8080': 'unchecked', '198.18.1.12:8080': 'unchecked' } });
    assert.equal(view.nodes[0].movedSlots, 0);
    assert.deepEqual(view.disagreements, []);
    assert.equal(res.headers['x-xdplb-stale'], undefined);
    assert.equal((await app.inject({ method: 'GET', url: '/api/v1/cluster' })).statusCode, 401);
  });

  test('file mode: PUT /api/v1/nodes/{self}/drain sets the local flag and calls onDrain once per change; admins only', async () => {
    const { app, cluster, drains } = fileMode();
    const put = (name: string, body: unknown, token = TOKEN) => app.inject({ method: 'PUT', url: `/api/v1/nodes/${name}/drain`, headers: as(token), payload: body as object });
    const res = await put('lb1', { drain: true, graceSeconds: 30 });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.json().name, 'lb1');
    assert.deepEqual(cluster.drained(), { drain: true, graceSeconds: 30 });
    assert.equal((await put('lb1', { drain: true, graceSeconds: 30 })).statusCode, 200);
    assert.deepEqual(drains, [[true, 30]], 'the same drain again is not a change');
    assert.equal((await put('lb1', { drain: false })).statusCode, 200);
    assert.deepEqual(drains, [[true, 30], [false, 0]]);
    const other = await put('lb2', { drain: true });
    assert.equal(other.statusCode, 404);
    assert.match(other.json().error.message, /file mode, its only node is "lb1"/);
    assert.equal((await put('lb1', { drain: true }, `${TOKEN}-viewer`)).statusCode, 403);
    assert.equal((await put('lb1', { drain: true, graceSeconds: -1 })).statusCode, 400);
    assert.equal((await put('lb1', { drain: true, extra: 1 })).statusCode, 400);
    assert.equal((await put('bad%20name', { drain: true })).statusCode, 400);
    assert.deepEqual(drains, [[true, 30], [false, 0]], 'refused requests changed nothing');
  });

  test('a drain during a Maglev transition is refused (409, nothing changes) unless force; undrain always goes; with the flow cache off nothing is held', async () => {
    const controller = new MemoryController({ services: [WEB] });
    const drains: Array<[boolean, number]> = [];
    let view: TransitionsView = { transitionSeconds: 60, nextSweepAt: null, flowCache: true, services: [
      { service: 'web', tableSize: 251, movedSlots: 17, movedShare: 17 / 251, seenSlots: 3, youngSlots: 17, since: Date.now() },
    ] };
    const source = { listServices: () => controller.listServices(), stats: () => controller.stats(), interfaces: () => controller.interfaces(), transitions: () => view };
    const cluster = new ClusterService({ nodeName: 'lb1', source, store: null, logger: pino({ level: 'silent' }), hooks: { onDrain: (d, g) => { drains.push([d, g]); } } });
    const app = createApiServer(controller, { auth: new AuthStore([], [{ name: 'ops', role: 'admin', token: TOKEN }]), cluster });
    const put = (body: unknown) => app.inject({ method: 'PUT', url: '/api/v1/nodes/lb1/drain', headers: as(TOKEN), payload: body as object });
    assert.equal(cluster.selfStatus().movedSlots, 17);
    const refused = await put({ drain: true, graceSeconds: 5 });
    assert.equal(refused.statusCode, 409, refused.body);
    assert.equal(refused.json().error.code, 'XDPLB_ERR_CONFLICT');
    assert.match(refused.json().error.message, /^node "lb1" is in a Maglev transition \(17 moved slots\): .*reset them; drain when `xdplb transitions` shows no moved slots \(at most 120 s after the last change\), or with force/);
    assert.deepEqual([drains, cluster.drained()], [[], { drain: false, graceSeconds: 0 }], 'a refused drain changes nothing');
    assert.equal((await put({ drain: true, force: 'yes' })).statusCode, 400);
    const forced = await put({ drain: true, graceSeconds: 5, force: true });
    assert.equal(forced.statusCode, 200, forced.body);
    assert.deepEqual(drains, [[true, 5]]);
    assert.equal((await put({ drain: true, graceSeconds: 5 })).statusCode, 200, 'the node is drained already: nothing to protect');
    assert.equal((await put({ drain: false })).statusCode, 200, 'an undrain is never refused');
    // The flow cache off: no node remembers a flow, so none holds what the others lack.
    view = { ...view, flowCache: false };
    assert.equal(cluster.selfStatus().movedSlots, 0);
    assert.equal((await put({ drain: true })).statusCode, 200);
    assert.equal((await put({ drain: false })).statusCode, 200);
    // The transition over: a drain goes.
    view = { ...view, flowCache: true, services: view.services.map((s) => ({ ...s, movedSlots: 0, movedShare: 0, seenSlots: 0, youngSlots: 0, since: null })) };
    assert.equal((await put({ drain: true })).statusCode, 200);
    assert.deepEqual(drains, [[true, 5], [false, 0], [true, 0], [false, 0], [true, 0]]);
  });

  test('etcd mode: a drain is refused while any alive, undrained node that would take the flows has moved slots, though neither the target nor this node has', async () => {
    const controller = new MemoryController({ services: [WEB] });
    const steady: TransitionsView = { transitionSeconds: 60, nextSweepAt: null, flowCache: true, services: [
      { service: 'web', tableSize: 251, movedSlots: 0, movedShare: 0, seenSlots: 0, youngSlots: 0, since: null },
    ] };
    const source = { listServices: () => controller.listServices(), stats: () => controller.stats(), interfaces: () => controller.interfaces(), transitions: () => steady };
    const now = () => new Date().toISOString();
    const status = (name: string, movedSlots: number, extra: Partial<NodeStatus> = {}) => ({ name, movedSlots, updatedAt: now(), bgp: null, ...extra });
    // lb2 is the target (steady); lb3 saw a health check's change alone: its slots moved.
    let nodes: unknown[] = [];
    const written: Array<[string, unknown]> = [];
    const store = Object.assign(new EventEmitter(), {
      readDrain: async () => ({ drain: false, graceSeconds: 0 }),
      publish: async () => undefined,
      nodes: async () => nodes,
      setDrain: async (name: string, state: unknown) => { written.push([name, state]); },
      fresh: () => true, connected: true, appliedModRevision: 1, latestModRevision: 1,
    });
    const cluster = new ClusterService({ nodeName: 'lb1', source, store: store as unknown as EtcdStore, logger: pino({ level: 'silent' }), publishIntervalMs: 60_000, hooks: { onDrain: () => undefined } });
    const drain = (name: string, force = false) => cluster.setDrain(name, true, 5, force);
    nodes = [status('lb1', 0), status('lb2', 0), status('lb3', 7)];
    await assert.rejects(drain('lb2'), (err: XdplbError) => err.code === 'XDPLB_ERR_CONFLICT'
      && /^node "lb2" cannot be drained now: node "lb3", which would take its flows, is in a Maglev transition \(7 moved slots\): /.test(err.message));
    await assert.rejects(drain('lb1'), /^XdplbError: node "lb1" cannot be drained now: node "lb3"|node "lb1" cannot be drained now: node "lb3"/, 'this node too: lb3 would take its flows');
    assert.equal(written.length, 0, 'a refused drain writes nothing');
    // lb3 itself may go: no other node holds moved slots (its own are what it would take along).
    await assert.rejects(drain('lb3'), /node "lb3" is in a Maglev transition \(7 moved slots\)/, 'the target\'s own count, as before');
    // A node that is not alive, or is drained, takes no flows: it does not hold a drain back.
    nodes = [status('lb1', 0), status('lb2', 0), status('lb3', 7, { updatedAt: new Date(Date.now() - 3_600_000).toISOString() })];
    await drain('lb2');
    nodes = [status('lb1', 0), status('lb2', 0), status('lb3', 7, { bgp: { drained: true } as NodeStatus['bgp'] })];
    await drain('lb2');
    nodes = [status('lb1', 0), status('lb2', 0), status('lb3', 7)];
    await drain('lb2', true);
    assert.deepEqual(written.map(([n]) => n), ['lb2', 'lb2', 'lb2'], 'stale, drained or forced: written');
    nodes = [status('lb1', 0), status('lb2', 0), status('lb3', 0)];
    await drain('lb2');
    assert.equal(written.length, 4, 'steady everywhere: written');
  });

  test('a transition\'s start and end are published at once (the moved-slot count changed), not at the next period; stop() unsubscribes', async () => {
    const controller = new MemoryController({ services: [WEB] });
    let view: TransitionsView = { transitionSeconds: 1, nextSweepAt: null, flowCache: true, services: [
      { service: 'web', tableSize: 251, movedSlots: 0, movedShare: 0, seenSlots: 0, youngSlots: 0, since: null },
    ] };
    const listeners = new Set<() => void>();
    const source = {
      listServices: () => controller.listServices(), stats: () => controller.stats(), interfaces: () => controller.interfaces(),
      transitions: () => view,
      onTransitionsChange: (l: () => void) => { listeners.add(l); return () => { listeners.delete(l); }; },
    };
    // The store's side ClusterService uses (src/store/etcd.ts): what it publishes is recorded.
    const published: NodeStatus[] = [];
    const store = Object.assign(new EventEmitter(), {
      readDrain: async () => ({ drain: false, graceSeconds: 0 }),
      publish: async (s: NodeStatus) => { published.push(s); },
      fresh: () => true, appliedModRevision: 1, latestModRevision: 1,
    });
    const cluster = new ClusterService({ nodeName: 'lb1', source, store: store as unknown as EtcdStore, logger: pino({ level: 'silent' }), publishIntervalMs: 60_000 });
    await cluster.start();
    try {
      assert.deepEqual(published.map((s) => s.movedSlots), [0]);
      assert.equal(listeners.size, 1);
      // A change moved slots (an API change or a health check's: no store revision says so).
      view = { ...view, services: view.services.map((s) => ({ ...s, movedSlots: 9, movedShare: 9 / 251, youngSlots: 9, since: Date.now() })) };
      for (const l of listeners) l();
      await new Promise((r) => setTimeout(r, 200));
      assert.deepEqual(published.map((s) => s.movedSlots), [0, 9], 'the start, published within 200 ms with publishIntervalMs 60 s');
      // A sweep cleared them.
      view = { ...view, services: view.services.map((s) => ({ ...s, movedSlots: 0, movedShare: 0, youngSlots: 0, since: null })) };
      for (const l of listeners) l();
      await new Promise((r) => setTimeout(r, 200));
      assert.deepEqual(published.map((s) => s.movedSlots), [0, 9, 0], 'the end, likewise');
    } finally {
      cluster.stop();
    }
    assert.equal(listeners.size, 0, 'stop() unsubscribes');
  });
});
