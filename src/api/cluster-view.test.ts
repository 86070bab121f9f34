/** findDisagreements: the backends whose health the alive nodes judge differently (the Cluster page's table). */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { findDisagreements, type NodeStatus } from './cluster-view';

describe('findDisagreements', () => {
  const node = (name: string, health: NodeStatus['health'], alive = true): NodeStatus => ({
    name, self: false, alive, appliedRevision: 1, lag: 0, dataplane: { attached: true, interfaces: [] }, bgp: null,
    health, rates: { pps: 0, bps: 0 }, cpu: 0, movedSlots: 0, updatedAt: new Date(0).toISOString(),
  });

  test('lists each backend that alive nodes judge differently, with every node\'s view, sorted', () => {
    const nodes = [
      node('a', { web: { '198.18.1.1:80': 'up', '198.18.1.2:80': 'up' }, dns: { '198.18.2.1:53': 'up' } }),
      node('b', { web: { '198.18.1.1:80': 'up', '198.18.1.2:80': 'down' }, dns: { '198.18.2.1:53': 'checking' } }),
      node('c', { web: { '198.18.1.1:80': 'down', '198.18.1.2:80': 'down' } }, false),
    ];
    assert.deepEqual(findDisagreements(nodes), [
      { service: 'dns', backend: '198.18.2.1:53', views: { a: 'up', b: 'checking' } },
      { service: 'web', backend: '198.18.1.2:80', views: { a: 'up', b: 'down' } },
    ]);
  });

  test('one node, or nodes that agree: nothing; a backend only some nodes have: absent on the others', () => {
    assert.deepEqual(findDisagreements([node('a', { web: { '198.18.1.1:80': 'down' } })]), []);
    assert.deepEqual(findDisagreements([node('a', { web: { '198.18.1.1:80': 'up' } }), node('b', { web: { '198.18.1.1:80': 'up' } })]), []);
    assert.deepEqual(findDisagreements([node('a', { web: { '198.18.1.1:80': 'up' } }), node('b', { web: { '198.18.1.1:80': 'up', '198.18.1.9:80': 'down' } })]),
      [{ service: 'web', backend: '198.18.1.9:80', views: { a: 'absent', b: 'down' } }]);
  });
});
