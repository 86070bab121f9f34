import { test } from 'node:test';
import assert from 'node:assert/strict';
import { iptablesDnatRules, nftDnatScript } from './nft';

const spec = { netns: 'xlbb-x', vip: '198.18.210.1', port: 9, proto: 'udp' as const, backends: ['198.18.201.11', '198.18.201.12', '198.18.201.13'] };

test('nft script maps jhash buckets to every backend', () => {
  const s = nftDnatScript(spec);
  assert.match(s, /ip daddr 198\.18\.210\.1 udp dport 9 dnat to jhash ip saddr \. udp sport mod 3 map \{ 0 : 198\.18\.201\.11, 1 : 198\.18\.201\.12, 2 : 198\.18\.201\.13 \}/);
  assert.throws(() => nftDnatScript({ ...spec, backends: [] }), /no backends/);
});

test('iptables rules split traffic evenly: 1/3, then 1/2 of the rest, then the rest', () => {
  const rules = iptablesDnatRules(spec);
  assert.equal(rules.length, 3);
  assert.ok(rules[0].includes('0.33333333'));
  assert.ok(rules[1].includes('0.50000000'));
  assert.ok(!rules[2].includes('statistic'));
  assert.equal(rules[2][rules[2].length - 1], '198.18.201.13');
});
