/**
 * lbLoadOptions: the one place the load options of bpf/lb.o are built (pure, no kernel).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { encodeU32 } from './abi';
import { lbLoadOptions, MAP_NAMES, OPTIONAL_MAPS } from './load-options';

test('a fresh load sizes every map group and sets hash_seed and flow_sets_mask', () => {
  const o = lbLoadOptions({
    hashSeed: 0xdeadbeef, flowSets: 64, flowSets6: 32, maglevMaxSize: 65537,
    maxServices: 8, maxBackends: 32, maxVips: 5, maxReverse: 9,
  });
  assert.deepEqual(o.maxEntries, {
    flows: 64, flows6: 32,
    services: 8, maglev: 8, maglev_marks: 8, service_stats: 8, services6: 8, maglev_std: 8, retired_stats: 8,
    backends: 32, backend_stats: 32, next_hops: 32, reverse_frags: 32, backends6: 32, next_hops6: 32, reverse_frags6: 32,
    backend_fast_stats: 64,
    vips: 5, vips6: 5, reverse: 9, reverse6: 9,
  });
  assert.deepEqual(o.innerMaxEntries, { maglev: 65537, maglev_marks: 65537 });
  assert.deepEqual(o.globals, { hash_seed: encodeU32(0xdeadbeef), flow_sets_mask: encodeU32(63), flow_sets_mask6: encodeU32(31), fast_redirect_base: encodeU32(32) });
  assert.throws(() => lbLoadOptions({ hashSeed: 0, flowSets: 64, flowSets6: 48 }), /IPv6 flow sets 48 is not a power of two/);
  assert.equal(o.reuseMaps, undefined);
});

test('sizes not given are left to the object; nexthop_ttl_ns is a little-endian u64 when given', () => {
  const o = lbLoadOptions({ hashSeed: 0, flowSets: 16, nexthopTtlNs: 0x0102030405060708n });
  assert.deepEqual(o.maxEntries, { flows: 16 });
  assert.equal(o.innerMaxEntries, undefined);
  assert.deepEqual(o.globals!.nexthop_ttl_ns, Buffer.from([8, 7, 6, 5, 4, 3, 2, 1]));
  assert.deepEqual(Object.keys(lbLoadOptions({ hashSeed: 0, flowSets: 16 }).globals!).sort(), ['flow_sets_mask', 'hash_seed']);
});

test('over pinned maps: every map reused, only the unpinned ones (next_hops) sized, globals as fresh', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xdplb-pins-'));
  try {
    // An optional map (maglev_std, backend_fast_stats, retired_stats) is reused when pinned...
    fs.mkdirSync(path.join(dir, 'maps'));
    for (const n of OPTIONAL_MAPS) fs.writeFileSync(path.join(dir, 'maps', n), '');
    const o = lbLoadOptions({ hashSeed: 3, flowSets: 128, maxServices: 8, maxBackends: 40, reusePinDir: dir });
    assert.deepEqual(o.reuseMaps, Object.fromEntries(MAP_NAMES.map((n) => [n, path.join(dir, 'maps', n)])));
    assert.deepEqual(o.maxEntries, { next_hops: 40, next_hops6: 40 });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  // ... and created (sized like the other per-service maps) over the pins of a build without it.
  const o = lbLoadOptions({ hashSeed: 3, flowSets: 128, flowSets6: 16, maglevMaxSize: 251, maxServices: 8, maxBackends: 40, reusePinDir: '/sys/fs/bpf/x' });
  assert.deepEqual(o.reuseMaps, Object.fromEntries(MAP_NAMES.filter((n) => !OPTIONAL_MAPS.has(n)).map((n) => [n, path.join('/sys/fs/bpf/x', 'maps', n)])));
  assert.deepEqual([...OPTIONAL_MAPS].sort(), ['backend_fast_stats', 'maglev_std', 'retired_stats']);
  assert.deepEqual(o.maxEntries, { next_hops: 40, next_hops6: 40, maglev_std: 8, retired_stats: 8, backend_fast_stats: 80 });
  assert.deepEqual(o.globals, { hash_seed: encodeU32(3), flow_sets_mask: encodeU32(127), flow_sets_mask6: encodeU32(15), fast_redirect_base: encodeU32(40) });
  assert.deepEqual(o.innerMaxEntries, { maglev: 251, maglev_marks: 251 });
});

test('a hash seed outside u32 or a flow set count that is not a power of two is refused by name', () => {
  for (const bad of [-1, 2 ** 32, 1.5, Number.NaN]) {
    assert.throws(() => lbLoadOptions({ hashSeed: bad, flowSets: 16 }), /^Error: dataplane: hashSeed .* is not an integer in 0\.\.2\^32-1$/);
  }
  for (const bad of [0, 3, 96, 1.5]) {
    assert.throws(() => lbLoadOptions({ hashSeed: 1, flowSets: bad }), /^Error: dataplane: flow sets .* is not a power of two$/);
  }
});
