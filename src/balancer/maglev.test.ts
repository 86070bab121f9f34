import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { buildMaglevTable, isPrime, tableShares, murmur3, type MaglevBackend } from './maglev';

function pool(n: number, weight: (i: number) => number = () => 1): MaglevBackend[] {
  return Array.from({ length: n }, (_, i) => ({
    key: `198.18.${(i >> 8) & 255}.${i & 255}:80`,
    weight: weight(i),
  }));
}

/** Fraction of slots whose backend key differs between two tables built from two pools. */
function movedFraction(a: Uint32Array, aPool: MaglevBackend[], b: Uint32Array, bPool: MaglevBackend[]): number {
  let moved = 0;
  for (let s = 0; s < a.length; s++) {
    if (aPool[a[s]].key !== bPool[b[s]].key) moved++;
  }
  return moved / a.length;
}

describe('isPrime', () => {
  test('known primes and composites', () => {
    for (const p of [2, 3, 5, 7, 251, 65537, 131071, 2147483647]) assert.equal(isPrime(p), true, `${p}`);
    for (const c of [-7, 0, 1, 4, 9, 25, 65535, 65536, 131073, 2.5, 4294967297]) assert.equal(isPrime(c), false, `${c}`);
  });
});

describe('murmur3', () => {
  test('matches the reference vectors', () => {
    // Published MurmurHash3_x86_32 test vectors.
    assert.equal(murmur3('', 0), 0);
    assert.equal(murmur3('', 1), 0x514e28b7);
    assert.equal(murmur3('hello', 0), 0x248bfa47);
    assert.equal(murmur3('The quick brown fox jumps over the lazy dog', 0), 0x2e4ff723);
  });
});

describe('buildMaglevTable', () => {
  test('every slot holds a valid index and every weighted backend appears', () => {
    const backends = pool(7);
    const table = buildMaglevTable(backends, 1009);
    assert.equal(table.length, 1009);
    const seen = new Set(table);
    assert.deepEqual([...seen].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6]);
  });

  test('shares track weights within 1% when M >= 100 x N', () => {
    const mixes: Array<{ name: string; weights: number[]; size: number }> = [
      { name: 'equal x3', weights: [1, 1, 1], size: 307 },
      { name: '1:2:3', weights: [1, 2, 3], size: 65537 },
      { name: '1:10', weights: [1, 10], size: 65537 },
      { name: '100:1:50:7', weights: [100, 1, 50, 7], size: 65537 },
      { name: 'ramp x100', weights: Array.from({ length: 100 }, (_, i) => i + 1), size: 65537 },
      { name: 'equal x1000', weights: new Array(1000).fill(3), size: 131071 },
    ];
    for (const mix of mixes) {
      const backends = pool(mix.weights.length, (i) => mix.weights[i]);
      const total = mix.weights.reduce((a, b) => a + b, 0);
      const shares = tableShares(buildMaglevTable(backends, mix.size), backends.length);
      shares.forEach((share, i) => {
        const want = mix.weights[i] / total;
        // 1% of the weight share, or one slot where a share is under 100 slots (ramp x100).
        const tolerance = Math.max(0.01 * want, 1 / mix.size + 1e-12);
        assert.ok(Math.abs(share - want) <= tolerance,
          `${mix.name}: backend ${i} share ${share} vs weight share ${want}`);
      });
    }
  });

  test('weight 0 keeps a backend out of the table', () => {
    const backends = pool(4, (i) => (i === 2 ? 0 : 1));
    const shares = tableShares(buildMaglevTable(backends, 401), 4);
    assert.equal(shares[2], 0);
    for (const i of [0, 1, 3]) assert.ok(Math.abs(shares[i] - 1 / 3) < 0.01);
  });

  test('no weighted backend gives an empty table', () => {
    assert.equal(buildMaglevTable([], 7).length, 0);
    assert.equal(buildMaglevTable(pool(3, () => 0), 7).length, 0);
  });

  // Maglev is not minimal-disruption: a freed slot cascades into other changes, more as N/M
  // grows (NSDI 2016, Fig. 13). Measured with this builder: <= 2/N for N <= 100 at M >= 200 N,
  // ~3.5/N for N = 1000 at M = 65537..131071 (classic Maglev: ~7/N there).
  const disruptionCases: Array<{ n: number; size: number; bound: number; victims: number[] }> = [
    { n: 3, size: 307, bound: 2, victims: [0, 1, 2] },
    { n: 10, size: 2003, bound: 2, victims: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] },
    { n: 100, size: 20011, bound: 2, victims: [0, 13, 37, 50, 71, 99] },
    { n: 1000, size: 65537, bound: 4, victims: [0, 500, 999] },
    { n: 1000, size: 131071, bound: 4, victims: [0, 500, 999] },
  ];
  for (const { n, size, bound, victims } of disruptionCases) {
    test(`removing one of N=${n} backends (M=${size}) moves at most ${bound}/N of the slots`, () => {
      const before = pool(n);
      const tableBefore = buildMaglevTable(before, size);
      for (const victim of victims) {
        const after = before.filter((_, i) => i !== victim);
        const moved = movedFraction(tableBefore, before, buildMaglevTable(after, size), after);
        assert.ok(moved >= 1 / n - 1 / size, `N=${n}: at least the victim's slots move (${moved})`);
        assert.ok(moved <= bound / n, `N=${n} M=${size} victim ${victim}: ${moved} of the slots moved, more than ${bound}/N`);
      }
    });
  }

  test('identical inputs give identical tables; input order does not matter', () => {
    const backends = pool(50, (i) => (i % 5) + 1);
    const a = buildMaglevTable(backends, 5003);
    const b = buildMaglevTable(backends.map((x) => ({ ...x })), 5003);
    assert.deepEqual(a, b);
    const reversed = [...backends].reverse();
    const c = buildMaglevTable(reversed, 5003);
    for (let s = 0; s < a.length; s++) assert.equal(reversed[c[s]].key, backends[a[s]].key);
  });

  test('bad sizes and weights are refused with a clear error', () => {
    assert.throws(() => buildMaglevTable(pool(3), 100), /100 is not a prime/);
    assert.throws(() => buildMaglevTable(pool(3), 1), /not a prime/);
    assert.throws(() => buildMaglevTable(pool(10), 7), /size 7 is smaller than the 10 weighted backends/);
    assert.throws(() => buildMaglevTable([{ key: 'a', weight: 1.5 }], 7), /weight 1.5 is not an integer/);
    assert.throws(() => buildMaglevTable([{ key: 'a', weight: 2_000_000 }], 7), /weight 2000000 is not an integer in 0..1000000/);
    assert.throws(() => buildMaglevTable([{ key: 'a', weight: -1 }], 7), /weight -1/);
    assert.throws(() => buildMaglevTable([{ key: 'a', weight: 1 }, { key: 'a', weight: 2 }], 7), /duplicate backend key "a"/);
  });

  test('extreme weight ratios (1000:1, the config maximum) build quickly and exactly', () => {
    const backends = pool(100, (i) => (i === 0 ? 1000 : 1));
    const start = process.hrtime.bigint();
    const table = buildMaglevTable(backends, 65537);
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    assert.ok(ms < 2000, `took ${ms} ms`); // rounds where only light backends are left are skipped
    const shares = tableShares(table, 100);
    assert.ok(Math.abs(shares[0] * 65537 - (65537 * 1000) / 1099) <= 1);
    for (let i = 1; i < 100; i++) assert.ok(Math.abs(shares[i] * 65537 - 65537 / 1099) <= 1);
  });

  test('M = 65537 with 1000 backends builds well under a second', () => {
    const backends = pool(1000, (i) => (i % 3) + 1);
    const start = process.hrtime.bigint();
    buildMaglevTable(backends, 65537);
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    assert.ok(ms < 1000, `took ${ms} ms`); // ~30-100 ms on an idle machine; the bound leaves room for a loaded CI
  });
});
