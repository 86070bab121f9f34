/**
 * The apply path's warm-up (src/balancer/warm-up.ts): it runs the reconciler's real apply over
 * maps in memory (the in-place slot writes included) and touches nothing else.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { warmUpApplyPath, warmUpBulkPath, WARM_UP_POOL } from './warm-up';
import { buildMaglevTable, maglevBuildTime } from './maglev';

test('warm-up: one install and `rounds` in-place changes per table size, over maps in memory', () => {
  const r = warmUpApplyPath([65537, 65537, 251], 4);
  assert.equal(r.applies, 2 * (1 + 4), 'each distinct size once');
  // Each drain moves about 1/10 of the slots: the in-place writer got them (not a table swap).
  assert.ok(r.slotsWritten > 4 * 65537 / 20, `slots written in place: ${r.slotsWritten}`);
  const none = warmUpApplyPath([], 4);
  assert.deepEqual({ applies: none.applies, slotsWritten: none.slotsWritten }, { applies: 0, slotsWritten: 0 });
});

test('warmUpBulkPath: a pool of 1000 whose slots left after the equal shares are walked, 100 drained and undrained; nothing else', () => {
  // The build's phase 2 hands out the M mod n slots left; it walks the permutations (the loop a
  // 1000-backend pool at 65537 slots runs, cold otherwise: ~20 ms instead of ~4) unless so few are
  // left that it claims them directly (left x (n + 2 left) < M), as with 1024 backends (1 left).
  const left = 65537 % WARM_UP_POOL;
  assert.ok(left * (WARM_UP_POOL + 2 * left) >= 65537, `${left} slots left: walked`);
  const pool = Array.from({ length: 10 }, (_, i) => ({ key: `198.18.7.${i + 1}:80`, weight: 1 }));
  const before = buildMaglevTable(pool, 65537);
  const t = maglevBuildTime();
  const r = warmUpBulkPath(65537);
  assert.equal(r.applies, 3, 'installed, drained, undrained');
  // 100 of 1000 drained moves about a tenth of the slots, and undrained moves them back.
  assert.ok(r.slotsWritten > 2 * 65537 / 20, `slots written in place: ${r.slotsWritten}`);
  assert.ok(maglevBuildTime() > t, 'its pools were built');
  assert.deepEqual(Array.from(buildMaglevTable(pool, 65537)), Array.from(before), 'tables as before');
  for (const size of [WARM_UP_POOL, 65536, 0]) assert.deepEqual(warmUpBulkPath(size), { ms: 0, applies: 0, slotsWritten: 0 }, `size ${size}`);
});

test('warm-up leaves Maglev tables as they are (same table for the same pool after it)', () => {
  const pool = Array.from({ length: 10 }, (_, i) => ({ key: `198.18.7.${i + 1}:80`, weight: 1 }));
  const before = buildMaglevTable(pool, 251);
  warmUpApplyPath([251], 6);
  assert.deepEqual(Array.from(buildMaglevTable(pool, 251)), Array.from(before));
});

test('Balancer.warmUp: real throwaway tables written in place, the data plane\'s maps untouched', async () => {
  const { Dataplane } = await import('../dataplane/dataplane');
  const { Balancer } = await import('./balancer');
  const d = Dataplane.load({ hashSeed: 5, maxServices: 8, maxBackends: 64, maxFlows: 256 });
  try {
    const lb = new Balancer(d);
    const { openFdCount } = await import('../bpf');
    const fds = openFdCount();
    const r = lb.warmUp([65537]);
    // No fd of a throwaway table is left open (nothing else holds them: the kernel frees them).
    assert.equal(openFdCount(), fds, 'no throwaway table left open');
    assert.equal(r.applies, 13 + 3, '13 single changes at 10 backends, then a bulk change at 1000 installed, drained and undrained');
    // writeMaglevSlotsFlat returned true for every change: the real arrays existed and took the slots.
    assert.ok(r.slotsWritten > 12 * 65537 / 20, `slots written in place: ${r.slotsWritten}`);
    for (const name of ['maglev', 'maglev_marks', 'services', 'backends', 'reverse', 'vips'] as const) {
      assert.equal([...d.map(name).keys()].filter((k) => d.map(name).lookup(k)?.some((b) => b !== 0)).length, 0, `${name} untouched`);
    }
  } finally {
    d.close();
  }
});
