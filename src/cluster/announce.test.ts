import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { announcedVips, usableBackend, withdrawReason } from './announce';
import { birdConfigText } from './bird';
import type { BackendView } from '../domain/types';

function backend(over: Partial<BackendView> = {}): BackendView {
  return { address: '198.18.1.11', port: 8080, weight: 1, id: 1, key: '198.18.1.11:8080', health: 'up', draining: false, inTable: true, tableShare: 1, ...over };
}
const ok = { attached: true, storeFresh: true, drained: false };

describe('announcedVips: the one announce decision', () => {
  test('a VIP is announced when one of its services has a usable backend', () => {
    const services = [
      { vip: '198.18.100.2', backends: [backend({ health: 'down' }), backend({ health: 'unchecked' })] },
      { vip: '198.18.100.1', backends: [backend()] },
      { vip: '198.18.100.3', backends: [backend({ health: 'down' })] },
      { vip: '198.18.100.1', backends: [backend({ health: 'down' })] },
    ];
    assert.deepEqual(announcedVips({ ...ok, services }), ['198.18.100.1', '198.18.100.2']);
  });

  test('no usable backend: health down/checking, weight 0, draining', () => {
    for (const b of [backend({ health: 'down' }), backend({ health: 'checking' }), backend({ weight: 0 }), backend({ draining: true }), backend({ drain: true })]) {
      assert.equal(usableBackend(b), false, JSON.stringify(b));
      assert.deepEqual(announcedVips({ ...ok, services: [{ vip: '198.18.100.1', backends: [b] }] }), []);
    }
    assert.deepEqual(announcedVips({ ...ok, services: [{ vip: '198.18.100.1', backends: [] }] }), []);
  });

  test('data plane detached, stale store or drained node: nothing at all, with the reason', () => {
    const services = [{ vip: '198.18.100.1', backends: [backend()] }];
    assert.deepEqual(announcedVips({ ...ok, attached: false, services }), []);
    assert.deepEqual(announcedVips({ ...ok, storeFresh: false, services }), []);
    assert.deepEqual(announcedVips({ ...ok, drained: true, services }), []);
    assert.equal(withdrawReason({ ...ok, attached: false }), 'data plane not attached');
    assert.equal(withdrawReason({ ...ok, storeFresh: false }), 'desired state not fresh');
    assert.equal(withdrawReason({ ...ok, drained: true }), 'node drained');
    assert.equal(withdrawReason(ok), '');
  });

  test('sorted numerically, without duplicates', () => {
    const services = ['198.18.100.10', '198.18.100.9', '198.18.100.10', '198.18.99.200'].map((vip) => ({ vip, backends: [backend()] }));
    assert.deepEqual(announcedVips({ ...ok, services }), ['198.18.99.200', '198.18.100.9', '198.18.100.10']);
  });

  test('IPv6 VIPs follow the same rule, canonical, after the IPv4 ones; BIRD gets each family in its own static protocol', () => {
    const v6 = (over: Partial<BackendView> = {}) => backend({ address: '2001:2::1', key: '[2001:2::1]:8080', ...over });
    const services = [
      { vip: '2001:2:0:c100::1', backends: [v6()] },
      { vip: '2001:2:0:c100::2', backends: [v6({ health: 'down' }), v6({ weight: 0 })] },
      { vip: '2001:2:0:c100::3', backends: [v6({ drain: true })] },
      { vip: '198.18.100.10', backends: [backend()] },
      { vip: '2001:2:0:c100::1', backends: [v6({ health: 'down' })] },
      { vip: '198.18.100.9', backends: [backend()] },
    ];
    assert.deepEqual(announcedVips({ ...ok, services }), ['198.18.100.9', '198.18.100.10', '2001:2:0:c100::1']);
    assert.deepEqual(announcedVips({ ...ok, drained: true, services }), []);
    assert.deepEqual(announcedVips({ ...ok, attached: false, services }), []);
    const text = birdConfigText({ localAs: 65001, peers: [{ address: '198.18.10.1', as: 65000 }], bfd: false, holdTime: 3, birdBinary: '/usr/sbin/bird' },
      announcedVips({ ...ok, services }));
    assert.match(text, /protocol static xdplb_vips \{\n {2}ipv4;\n {2}route 198\.18\.100\.9\/32 blackhole;\n {2}route 198\.18\.100\.10\/32 blackhole;\n\}/);
    assert.match(text, /protocol static xdplb_vips6 \{\n {2}ipv6;\n {2}route 2001:2:0:c100::1\/128 blackhole;\n\}/);
  });
});
