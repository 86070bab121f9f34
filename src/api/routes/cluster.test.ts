/**
 * The file-mode cluster routes (src/api/routes/cluster.ts) through the real API server over the
 * in-memory controller: GET /api/v1/cluster answers with this node alone, from the controller's
 * state; PUT /api/v1/nodes/{name}/drain reaches the daemon's drain hook and refuses what it
 * cannot do.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import { AuthStore } from '../auth';
import { MemoryController } from '../memory-controller';
import { createApiServer } from '../server';
import type { NodeBgp, NodeStatus } from '../cluster-view';
import type { ClusterHooks } from './cluster';

const WEB = { name: 'web', vip: '198.18.0.10', port: 80, protocol: 'tcp', mode: 'nat', backends: [{ address: '198.18.1.11', port: 8080 }, { address: '198.18.1.12', port: 8080 }] };

function setup(hooks: ClusterHooks = {}): { app: FastifyInstance; controller: MemoryController & ClusterHooks } {
  const controller = Object.assign(new MemoryController({ services: [WEB] }), hooks);
  const auth = new AuthStore([], [{ name: 'ops', role: 'admin', token: 'admin-token-0123456789abcdef' }, { name: 'watch', role: 'viewer', token: 'viewer-token-0123456789abcdef' }]);
  return { app: createApiServer(controller, { auth }), controller };
}
const admin = { authorization: 'Bearer admin-token-0123456789abcdef' };
const viewer = { authorization: 'Bearer viewer-token-0123456789abcdef' };

describe('GET /api/v1/cluster in file mode', () => {
  test('this node alone, named by the hook, with its real health view, rates and data plane', async () => {
    const { app, controller } = setup({ nodeName: () => 'lb-a' });
    controller.health.set('web/198.18.1.11:8080', 'up');
    controller.health.set('web/198.18.1.12:8080', 'down');
    const res = await app.inject({ method: 'GET', url: '/api/v1/cluster', headers: viewer });
    assert.equal(res.statusCode, 200, res.body);
    const view = res.json();
    assert.equal(view.mode, 'file');
    assert.equal(view.self, 'lb-a');
    assert.equal(view.revision, 0);
    assert.deepEqual(view.store, { url: null, connected: true, stale: false });
    assert.equal(view.nodes.length, 1);
    const node = view.nodes[0] as NodeStatus;
    assert.equal(node.name, 'lb-a');
    assert.equal(node.self, true);
    assert.equal(node.alive, true);
    assert.equal(node.lag, 0);
    assert.deepEqual(node.health, { web: { '198.18.1.11:8080': 'up', '198.18.1.12:8080': 'down' } });
    assert.deepEqual(node.dataplane, { attached: false, interfaces: [] }, 'the in-memory controller has no interface');
    assert.equal(node.bgp, null, 'no BGP hook: no BGP');
    assert.equal(typeof node.rates.pps, 'number');
    assert.ok(node.cpu >= 0 && Number.isFinite(node.cpu), `cpu ${node.cpu}`);
    assert.ok(Math.abs(Date.parse(node.updatedAt) - Date.now()) < 10_000);
    assert.deepEqual(view.disagreements, []);
    await app.close();
  });

  test('needs a login', async () => {
    const { app } = setup();
    assert.equal((await app.inject({ method: 'GET', url: '/api/v1/cluster' })).statusCode, 401);
    await app.close();
  });
});

describe('PUT /api/v1/nodes/{name}/drain in file mode', () => {
  const bgpOf = (drained: boolean): NodeBgp => ({ state: 'established', peers: [{ peer: '198.18.250.1', state: 'established', bfd: 'up' }], announced: drained ? [] : ['198.18.0.10/32'], drained });

  test('reaches the drain hook with the grace period (default 0 s) and answers the node status', async () => {
    let drained = false;
    const calls: Array<[boolean, number]> = [];
    const { app } = setup({ nodeName: () => 'lb-a', bgpStatus: () => bgpOf(drained), onDrain: (d, g) => { calls.push([d, g]); drained = d; } });
    const res = await app.inject({ method: 'PUT', url: '/api/v1/nodes/lb-a/drain', headers: admin, payload: { drain: true, graceSeconds: 12 } });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.json().bgp.drained, true);
    assert.deepEqual(res.json().bgp.announced, []);
    const again = await app.inject({ method: 'PUT', url: '/api/v1/nodes/lb-a/drain', headers: admin, payload: { drain: false } });
    assert.equal(again.statusCode, 200, again.body);
    assert.deepEqual(calls, [[true, 12], [false, 0]]);
    await app.close();
  });

  test('refuses a viewer, another node, a node without BGP and a bad body, calling nothing', async () => {
    const calls: unknown[] = [];
    const { app } = setup({ nodeName: () => 'lb-a', bgpStatus: () => bgpOf(false), onDrain: (d, g) => { calls.push([d, g]); } });
    const put = (url: string, payload: unknown, headers = admin) => app.inject({ method: 'PUT', url, headers, payload: payload as object });
    const cases: Array<[string, Awaited<ReturnType<typeof put>>, number, RegExp]> = [
      ['viewer', await put('/api/v1/nodes/lb-a/drain', { drain: true }, viewer), 403, /viewer/],
      ['other node', await put('/api/v1/nodes/lb-b/drain', { drain: true }), 404, /no node named "lb-b".*"lb-a"/],
      ['no drain field', await put('/api/v1/nodes/lb-a/drain', { graceSeconds: 3 }), 400, /drain/],
      ['drain not boolean', await put('/api/v1/nodes/lb-a/drain', { drain: 'yes' }), 400, /drain/],
      ['negative grace', await put('/api/v1/nodes/lb-a/drain', { drain: true, graceSeconds: -1 }), 400, /graceSeconds/],
      ['grace over a day', await put('/api/v1/nodes/lb-a/drain', { drain: true, graceSeconds: 86401 }), 400, /graceSeconds/],
      ['unknown field', await put('/api/v1/nodes/lb-a/drain', { drain: true, force: true }), 400, /force/],
    ];
    for (const [name, res, status, message] of cases) {
      assert.equal(res.statusCode, status, `${name}: ${res.body}`);
      assert.match(res.json().error.message, message, name);
    }
    assert.deepEqual(calls, [], 'the hook was never called');
    await app.close();

    const plain = setup({ nodeName: () => 'lb-a' });
    const res = await plain.app.inject({ method: 'PUT', url: '/api/v1/nodes/lb-a/drain', headers: admin, payload: { drain: true } });
    assert.equal(res.statusCode, 409, res.body);
    assert.match(res.json().error.message, /announces nothing over BGP/);
    await plain.app.close();
  });
});
