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
  // grows (NSDI 2016, Fig. 13). On a removal each remaining backend's share grows by M/N^2
  // slots; with counts held to floor/ceil only about (M/N^2) x N backends may gain one, so when
  // M < N^2 a freed slot taken by any other backend forces a second move. Rule: M >= N^2 keeps
  // a one-backend change to about 2/N (at most ~2.0/N at M ~ N^2, 2.2/N the worst seen;
  // ~1.6/N at M ~ 2 N^2). Measured with this builder (victims first/middle/last):
  //   N=3 M=307: 1.00-1.02/N    N=10 M=2003: 1.12-1.16/N    N=100 M=20011: 1.50-1.56/N
  //   N=1000 M=65537 (the default, M/N^2 = 0.07): 2.90-3.49/N (3.59 for victim 37)
  //   N=1000 M=131071: 3.38-3.59/N    N=1000 M=1000003 (M/N^2 = 1.0): 1.84-1.90/N
  // Classic Maglev: ~2.9/N at N = 100, M = 10007; ~7/N at N = 1000, M = 65537.
  const disruptionCases: Array<{ n: number; size: number; bound: number; victims: number[] }> = [
    { n: 3, size: 307, bound: 2, victims: [0, 1, 2] },
    { n: 10, size: 2003, bound: 2, victims: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] },
    { n: 100, size: 20011, bound: 2, victims: [0, 13, 37, 50, 71, 99] },
    { n: 1000, size: 65537, bound: 4, victims: [0, 37, 500, 999] }, // M << N^2: the honest bound
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

  // Adding a backend moves as much as a removal (measured: N=3 M=307 1.03/N, N=10 M=2003
  // 1.16/N, N=100 M=20011 1.56/N, N=1000 M=65537 3.1-3.5/N, N=1000 M=1000003 1.87-1.89/N)
  // except for the floor boundary below.
  const addCases: Array<{ n: number; size: number; bound: number }> = [
    { n: 3, size: 307, bound: 2 },
    { n: 10, size: 2003, bound: 2 },
    { n: 100, size: 20011, bound: 2 },
    { n: 1000, size: 65537, bound: 4 },
  ];
  for (const { n, size, bound } of addCases) {
    test(`adding one backend to N=${n} (M=${size}) moves at most ${bound}/(N+1) of the slots`, () => {
      const before = pool(n);
      const tableBefore = buildMaglevTable(before, size);
      const after = [...before, { key: '203.0.113.7:8080', weight: 1 }];
      const moved = movedFraction(tableBefore, before, buildMaglevTable(after, size), after);
      assert.ok(moved >= 1 / (n + 1) - 1 / size, `N=${n}: at least the new backend's slots move (${moved})`);
      assert.ok(moved <= bound / (n + 1), `N=${n} M=${size}: ${moved} of the slots moved, more than ${bound}/(N+1)`);
    });
  }

  // Known defect of adding: when floor(M/N) drops between N and N+1 while M < N^2, every
  // backend's phase-1 cap drops at once and ~12-22/N of the slots move (N=1008 at M=65537:
  // 21.7/N; N=992: 21.0/N; every ~15th N near 1000 there; N=1000 at M=131071: 12.7/N; the
  // other N from 960 to 1040 at M=65537 move <= 4/N). At M >= N^2 the floor changes at almost
  // every step anyway and the cost is in the figures above. Established flows keep their
  // backends through the flow cache either way. The bound pins the defect's size, not a goal.
  test('adding a backend across a floor(M/N) boundary (N=1008, M=65537): the known defect, under 24/(N+1)', () => {
    const before = pool(1008);
    const after = [...before, { key: '203.0.113.7:8080', weight: 1 }];
    assert.equal(Math.floor(65537 / 1008), 65);
    assert.equal(Math.floor(65537 / 1009), 64);
    const moved = movedFraction(buildMaglevTable(before, 65537), before, buildMaglevTable(after, 65537), after);
    assert.ok(moved <= 24 / 1009, `${moved * 1009}/(N+1) moved`);
  });

  test('N=1000 at M=1000003 (M >= N^2): removing or adding one backend moves at most 2/N', () => {
    const n = 1000;
    const size = 1000003;
    const before = pool(n);
    const start = process.hrtime.bigint();
    const tableBefore = buildMaglevTable(before, size);
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    assert.ok(ms < 5000, `took ${ms} ms`); // ~0.4-0.8 s on an idle machine
    for (const victim of [0, 500, 999]) { // first, middle and last in key order
      const after = before.filter((_, i) => i !== victim);
      const moved = movedFraction(tableBefore, before, buildMaglevTable(after, size), after);
      assert.ok(moved >= 1 / n - 1 / size, `victim ${victim}: at least the victim's slots move (${moved})`);
      assert.ok(moved <= 2 / n, `victim ${victim}: ${moved * n}/N of the slots moved`);
    }
    const after = [...before, { key: '203.0.113.7:8080', weight: 1 }];
    const moved = movedFraction(tableBefore, before, buildMaglevTable(after, size), after);
    assert.ok(moved >= 1 / (n + 1) - 1 / size, `adding: at least the new backend's slots move (${moved})`);
    assert.ok(moved <= 2 / n, `adding: ${moved * n}/N of the slots moved`);
    const shares = tableShares(tableBefore, n);
    for (const share of shares) assert.ok(Math.abs(share * size - size / n) <= 1, 'equal shares to one slot');
  });

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
