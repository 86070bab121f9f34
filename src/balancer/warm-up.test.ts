/**
 * The apply path's warm-up (src/balancer/warm-up.ts): it runs the reconciler's real apply over
 * maps in memory (the in-place slot writes included) and touches nothing else.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { warmUpApplyPath } from './warm-up';
import { buildMaglevTable } from './maglev';

test('warm-up: one install and `rounds` in-place changes per table size, over maps in memory', () => {
  const r = warmUpApplyPath([65537, 65537, 251], 4);
  assert.equal(r.applies, 2 * (1 + 4), 'each distinct size once');
  // Each drain moves about 1/10 of the slots: the in-place writer got them (not a table swap).
  assert.ok(r.slotsWritten > 4 * 65537 / 20, `slots written in place: ${r.slotsWritten}`);
  const none = warmUpApplyPath([], 4);
  assert.deepEqual({ applies: none.applies, slotsWritten: none.slotsWritten }, { applies: 0, slotsWritten: 0 });
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
    assert.equal(r.applies, 13);
    // writeMaglevSlotsFlat returned true for every change: the real arrays existed and took the slots.
    assert.ok(r.slotsWritten > 12 * 65537 / 20, `slots written in place: ${r.slotsWritten}`);
    for (const name of ['maglev', 'maglev_marks', 'services', 'backends', 'reverse', 'vips'] as const) {
      assert.equal([...d.map(name).keys()].filter((k) => d.map(name).lookup(k)?.some((b) => b !== 0)).length, 0, `${name} untouched`);
    }
  } finally {
    d.close();
  }
});
