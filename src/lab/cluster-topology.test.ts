import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clusterTopology, clusterNamespaces, isClusterNetns, isLabVip6, labNodeBgp, routerBirdConfig } from './cluster-topology';
import { canonicalAddress, inPrefix, parseAddress } from '../domain/address';

test('cluster topology: names fit IFNAMSIZ, addresses stay in 198.18.0.0/15, every node has the same interface names', () => {
  const t = clusterTopology({ prefix: 'abcdefgh', nodes: 4, backends: 50, etcd: 3 });
  const names = [t.client.ifname, t.router.clientLeg, t.router.bridge, t.router.backendLeg, t.router.switchPort, t.switch.bridge,
    ...t.nodes.flatMap((n) => [n.uplink, n.downlink, n.routerPort, n.switchPort]), ...t.backends.flatMap((b) => [b.ifname, b.switchPort]),
    ...t.etcd.flatMap((e) => [e.ifname, e.switchPort])];
  for (const n of names) assert.ok(n.length <= 15, n);
  assert.equal(new Set(t.nodes.map((n) => n.uplink)).size, 1);
  const addresses = [t.client.address, ...t.nodes.flatMap((n) => [n.uplinkAddress, n.backendAddress]), ...t.backends.map((b) => b.address), ...t.etcd.map((e) => e.address)];
  for (const a of addresses) assert.match(a, /^198\.1[89]\./);
  assert.equal(new Set(addresses).size, addresses.length);
  for (const ns of clusterNamespaces(t)) assert.ok(isClusterNetns('abcdefgh', ns), ns);
  assert.equal(isClusterNetns('abcdefgh', 'abcdefgh-lb'), false);
  assert.equal(isClusterNetns('abcdefgh', 'abcdefgh2-lb1'), false);
});

test('cluster topology: bad input is refused with the field named', () => {
  assert.throws(() => clusterTopology({ nodes: 0 }), /node count 0 must be an integer in 1\.\.4/);
  assert.throws(() => clusterTopology({ nodes: 5 }), /node count 5/);
  assert.throws(() => clusterTopology({ nodes: 2, etcd: 2 }), /etcd member count 2 must be 0, 1 or 3/);
  assert.throws(() => clusterTopology({ nodes: 2, prefix: 'Bad' }), /lab prefix/);
});

test('router config: a BGP session with BFD per node, merge paths, the NAT return route over every node', () => {
  const text = routerBirdConfig(clusterTopology({ prefix: 'xlbg', nodes: 3 }));
  assert.equal(text.match(/protocol bgp lb\d /g)?.length, 3);
  assert.match(text, /merge paths on/);
  assert.match(text, /route 198\.18\.0\.0\/24 via 198\.18\.10\.11 bfd via 198\.18\.10\.12 bfd via 198\.18\.10\.13 bfd;/);
});

test('cluster topology, IPv6: every address canonical, unique, inside 2001:2:0:c000::/52 and outside the single-node lab\'s /64s', () => {
  const t = clusterTopology({ prefix: 'xlbb6', nodes: 4, backends: 50 });
  const addresses = [...t.nodes.flatMap((n) => [n.uplinkAddress6, n.backendAddress6]), ...t.backends.map((b) => b.address6)];
  for (const a of addresses) {
    assert.equal(canonicalAddress(a), a);
    assert.ok(inPrefix(parseAddress(a), '2001:2:0:c000::/52'), a);
    for (const single of ['2001:2::/64', '2001:2:0:1::/64', '2001:2:0:100::/64']) assert.ok(!inPrefix(parseAddress(a), single), a);
  }
  assert.equal(new Set(addresses).size, addresses.length);
  assert.equal(t.backends[0].address6, '2001:2:0:c001::11');
  assert.equal(isLabVip6('2001:2:0:c100::1'), true);
  assert.equal(isLabVip6('2001:2:0:c100::'), false);
  assert.equal(isLabVip6('2001:2:0:c101::1'), false);
  assert.deepEqual(labNodeBgp().peers.map((p) => p.address), ['198.18.10.1', '2001:2:0:c010::1']);
});

test('router config, IPv6: an IPv6 session per node taking only VIP /128s, ECMP into the kernel, the NAT return route', () => {
  const text = routerBirdConfig(clusterTopology({ prefix: 'xlbb6', nodes: 2 }));
  assert.match(text, /protocol bgp lb1_6 \{ local as 65000; neighbor 2001:2:0:c010::11 as 65001; [^}]*bfd on; ipv6 \{ import where net ~ \[ 2001:2:0:c100::\/64\{128,128\} \]; export none; \}; \}/);
  assert.match(text, /protocol bgp lb2_6 /);
  assert.match(text, /protocol kernel kmain6 \{ ipv6 \{ import none; export all; \}; merge paths on; \}/);
  assert.match(text, /route 2001:2:0:c000::\/64 via 2001:2:0:c010::11 bfd via 2001:2:0:c010::12 bfd;/);
});
