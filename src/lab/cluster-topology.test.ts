import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clusterTopology, clusterNamespaces, isClusterNetns, routerBirdConfig } from './cluster-topology';

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
  assert.equal(text.match(/protocol bgp lb\d/g)?.length, 3);
  assert.match(text, /merge paths on/);
  assert.match(text, /route 198\.18\.0\.0\/24 via 198\.18\.10\.11 bfd via 198\.18\.10\.12 bfd via 198\.18\.10\.13 bfd;/);
});
