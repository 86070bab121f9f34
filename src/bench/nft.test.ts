import { test } from 'node:test';
import assert from 'node:assert/strict';
import { iptablesDnatRules, nftDnatScript } from './nft';

const spec = { netns: 'xlbb-x', vip: '198.18.210.1', port: 9, proto: 'udp' as const, backends: ['198.18.201.11', '198.18.201.12', '198.18.201.13'] };

test('nft script maps jhash buckets to every backend', () => {
  const s = nftDnatScript(spec);
  assert.match(s, /ip daddr 198\.18\.210\.1 udp dport 9 dnat to jhash ip saddr \. udp sport mod 3 map \{ 0 : 198\.18\.201\.11, 1 : 198\.18\.201\.12, 2 : 198\.18\.201\.13 \}/);
  assert.throws(() => nftDnatScript({ ...spec, backends: [] }), /no backends/);
});

test('nft script for an IPv6 VIP: table ip6, ip6 daddr, jhash over the IPv6 source', () => {
  const s = nftDnatScript({ ...spec, vip: '2001:2:0:210::1', backends: ['2001:2:0:201::11', '2001:2:0:201::12'] });
  assert.match(s, /^table ip6 xlbb_dnat \{/);
  assert.match(s, /ip6 daddr 2001:2:0:210::1 udp dport 9 dnat to jhash ip6 saddr \. udp sport mod 2 map \{ 0 : 2001:2:0:201::11, 1 : 2001:2:0:201::12 \}/);
  assert.throws(() => nftDnatScript({ ...spec, vip: '2001:2:0:210::1' }), /backend 198\.18\.201\.11 is not of the VIP 2001:2:0:210::1's family/);
});

test('iptables rules split traffic evenly: 1/3, then 1/2 of the rest, then the rest', () => {
  const rules = iptablesDnatRules(spec);
  assert.equal(rules.length, 3);
  assert.ok(rules[0].includes('0.33333333'));
  assert.ok(rules[1].includes('0.50000000'));
  assert.ok(!rules[2].includes('statistic'));
  assert.equal(rules[2][rules[2].length - 1], '198.18.201.13');
});
