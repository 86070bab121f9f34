/**
 * The fast Maglev builder (maglev.ts) against the plain turn-by-turn loop it replaced, kept
 * here verbatim as the reference: every node of a cluster must compute the same table, so the
 * output must stay byte-identical for every input (weights 0, key orders, sizes from small
 * primes to 1048573). Both engines are checked: the TypeScript turn loop and its C++ twin in
 * the addon (native/maglev.cc), which the daemon uses.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { buildMaglevTable, isPrime, maglevEngine, murmur3, MAX_WEIGHT, type MaglevBackend } from './maglev';
import { buildMaglevTablesOffThread } from './maglev-offthread';
import { rng } from '../../test/support/rng';

const OFFSET_SEED = 0x9747b28c;
const SKIP_SEED = 0x5bd1e995;

/** The builder as it was before issue 16 (unchanged but for its name). */
function referenceMaglevTable(backends: MaglevBackend[], size: number): Uint32Array {
  if (!isPrime(size)) throw new Error(`maglev: table size ${size} is not a prime number`);
  const seen = new Set<string>();
  for (const b of backends) {
    if (!Number.isInteger(b.weight) || b.weight < 0 || b.weight > MAX_WEIGHT) {
      throw new Error(`maglev: backend "${b.key}" weight ${b.weight} is not an integer in 0..${MAX_WEIGHT}`);
    }
    if (seen.has(b.key)) throw new Error(`maglev: duplicate backend key "${b.key}"`);
    seen.add(b.key);
  }
  // Sorted by key (code point order, locale-independent) so input order does not matter.
  const order = backends
    .map((b, index) => ({ index, key: b.key, weight: b.weight }))
    .filter((b) => b.weight > 0)
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const n = order.length;
  if (n === 0) return new Uint32Array(0);
  if (size < n) throw new Error(`maglev: table size ${size} is smaller than the ${n} weighted backends`);

  const total = order.reduce((sum, b) => sum + b.weight, 0);
  const floorShare = order.map((b) => Math.floor((size * b.weight) / total));
  const position = new Uint32Array(n); // slot of each backend's next permutation entry
  const skip = new Uint32Array(n);
  const weight = new Float64Array(n);
  const probes = new Float64Array(n);
  const claimed = new Float64Array(n);
  const round = new Float64Array(n); // round of each backend's next turn
  let maxWeight = 0;
  for (let i = 0; i < n; i++) {
    position[i] = murmur3(order[i].key, OFFSET_SEED) % size;
    skip[i] = (murmur3(order[i].key, SKIP_SEED) % (size - 1)) + 1;
    weight[i] = order[i].weight;
    if (weight[i] > maxWeight) maxWeight = weight[i];
  }
  // Backend i's k-th turn falls in round ceil(k * maxWeight / weight): the round where its
  // accumulated weight reaches k * maxWeight. Rounds are visited in order, skipping those in
  // which no backend has a turn (light backends left alone would otherwise spin through them);
  // within a round, turns go in index (key) order.
  const due = (i: number) => Math.ceil(((probes[i] + 1) * maxWeight) / weight[i]);
  const table = new Uint32Array(size);
  const taken = new Uint8Array(size);
  const active = new Int32Array(n);
  let filled = 0;
  // Phase 1 fills every backend up to the floor of its share; phase 2 hands the few slots
  // left (fewer than n) to the first backends to reach them, at most one each. Deciding those
  // +1s last, by position, keeps the knock-on moves of a pool change short.
  for (const extra of [0, 1]) {
    let activeCount = 0;
    let current = Infinity;
    for (let i = 0; i < n; i++) {
      if (claimed[i] >= floorShare[i] + extra) continue;
      active[activeCount++] = i;
      round[i] = due(i);
      if (round[i] < current) current = round[i];
    }
    while (filled < size && activeCount > 0) {
      let stillActive = 0;
      let nextRound = Infinity;
      for (let k = 0; k < activeCount; k++) {
        const i = active[k];
        if (round[i] === current) {
          // A turn consumes one permutation entry even when that slot is taken: a backend's
          // claims then happen at fixed "times", so a freed slot does not shift all of its
          // later claims (which is what makes classic Maglev's changes cascade).
          const slot = position[i];
          const next = slot + skip[i];
          position[i] = next >= size ? next - size : next;
          probes[i]++;
          if (taken[slot] === 0) {
            taken[slot] = 1;
            table[slot] = order[i].index;
            filled++;
            claimed[i]++;
          }
          round[i] = due(i);
        }
        if (claimed[i] < floorShare[i] + extra) {
          active[stillActive++] = i;
          if (round[i] < nextRound) nextRound = round[i];
        }
      }
      activeCount = stillActive;
      current = nextRound;
    }
  }
  return table;
}


function nextPrime(x: number): number {
  let p = Math.max(2, Math.floor(x));
  while (!isPrime(p)) p++;
  return p;
}

function firstDifference(a: Uint32Array, b: Uint32Array): string {
  if (a.length !== b.length) return `length ${a.length} vs ${b.length}`;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return `slot ${i}: ${a[i]} vs ${b[i]}`;
  return 'none';
}

function assertSame(backends: MaglevBackend[], size: number, what: string): void {
  const want = referenceMaglevTable(backends, size);
  for (const engine of ['js', 'native'] as const) {
    const got = buildMaglevTable(backends, size, engine);
    assert.ok(Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(Buffer.from(want.buffer, want.byteOffset, want.byteLength)),
      `${what} (${engine}): first difference ${firstDifference(got, want)}`);
  }
}

/** A random pool: address-like keys (or arbitrary text), weights incl. 0 and large ones. */
function randomPool(r: () => number, n: number): MaglevBackend[] {
  const keys = new Set<string>();
  while (keys.size < n) {
    keys.add(r() < 0.8
      ? `198.18.${Math.floor(r() * 256)}.${Math.floor(r() * 256)}:${1 + Math.floor(r() * 65535)}`
      : `k${Math.floor(r() * 1e9).toString(36)}é${keys.size}`);
  }
  const kind = r();
  return [...keys].map((key) => {
    let weight: number;
    if (kind < 0.4) weight = 1;                                   // equal
    else if (kind < 0.6) weight = r() < 0.25 ? 0 : 1;             // some weight 0
    else if (kind < 0.85) weight = Math.floor(r() * 10);          // small, 0 included
    else weight = r() < 0.1 ? MAX_WEIGHT : 1 + Math.floor(r() * 1000);
    return { key, weight };
  });
}

function shuffled<T>(r: () => number, xs: T[]): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

describe('buildMaglevTable is byte-identical to the reference builder', () => {
  test('the addon is built, so the native engine is the one in use (else this file would compare js with js)', () => {
    assert.equal(maglevEngine(), 'native');
  });

  test('small primes, random pools (weights 0, unequal, equal), any key order', () => {
    for (let seed = 1; seed <= 400; seed++) {
      const r = rng(seed);
      const n = 1 + Math.floor(r() * 40);
      const size = nextPrime(n + Math.floor(r() * r() * 5000));
      const pool = randomPool(r, n);
      if (pool.filter((b) => b.weight > 0).length > size) continue;
      assertSame(pool, size, `seed ${seed} n=${n} M=${size}`);
      assertSame(shuffled(r, pool), size, `seed ${seed} shuffled`);
    }
  });

  test('M = N and tiny tables (every slot contested)', () => {
    for (const n of [1, 2, 3, 5, 7, 11, 13]) {
      const pool = Array.from({ length: n }, (_, i) => ({ key: `198.18.0.${i}:80`, weight: 1 + (i % 3) }));
      for (const size of [n, nextPrime(n), nextPrime(n + 1), nextPrime(2 * n), 2, 3]) {
        if (!isPrime(size) || size < n) continue;
        assertSame(pool, size, `n=${n} M=${size}`);
      }
    }
  });

  test('the sizes the daemon uses, 10 to 1000 backends', () => {
    const r = rng(16);
    for (const [n, size] of [[10, 65537], [100, 65537], [1000, 65537], [3, 131071], [250, 131071], [1000, 131071]]) {
      assertSame(randomPool(r, n), size, `n=${n} M=${size} random weights`);
      assertSame(Array.from({ length: n }, (_, i) => ({ key: `198.18.${214 + (i >> 8)}.${i & 255}:8080`, weight: 1 })), size, `n=${n} M=${size} equal`);
    }
  });

  test('M = 1048573 at 1000 and 7 backends', () => {
    const r = rng(1048573);
    assertSame(randomPool(r, 1000), 1048573, 'n=1000 random weights');
    assertSame(Array.from({ length: 7 }, (_, i) => ({ key: `198.18.1.${i}:80`, weight: 1 + i })), 1048573, 'n=7 1..7');
  });

  test('one-backend changes of a pool (what a rebuild after a change sees)', () => {
    const r = rng(99);
    let pool = randomPool(r, 60);
    for (let step = 0; step < 60; step++) {
      const i = Math.floor(r() * pool.length);
      const roll = r();
      if (roll < 0.3) pool = pool.filter((_, j) => j !== i);
      else if (roll < 0.6) pool = [...pool, { key: `198.18.9.${step}:80`, weight: 1 + Math.floor(r() * 5) }];
      else pool = pool.map((b, j) => (j === i ? { ...b, weight: Math.floor(r() * 4) } : b));
      assertSame(pool, 4099, `change ${step}`);
    }
  });

  test('murmur3 still gives the permutations (hash cache does not change them)', () => {
    // Same key, different seeds and sizes: the cached hashes must be reduced per size.
    const pool = [{ key: '198.18.0.1:80', weight: 1 }, { key: '198.18.0.2:80', weight: 2 }];
    for (const size of [5, 7, 65537]) assertSame(pool, size, `M=${size}`);
    assert.notEqual(murmur3('198.18.0.1:80', OFFSET_SEED), murmur3('198.18.0.1:80', SKIP_SEED));
  });
});

describe('buildMaglevTablesOffThread', () => {
  test('the shared worker builds the same tables, call after call; a refused job rejects and the worker goes on', async () => {
    const r = rng(7);
    const jobs = [{ backends: randomPool(r, 300), size: 131071 }, { backends: randomPool(r, 5), size: 65537 }];
    for (let round = 0; round < 2; round++) {
      const tables = await buildMaglevTablesOffThread(jobs);
      jobs.forEach((job, i) => assert.deepEqual(tables[i], referenceMaglevTable(job.backends, job.size), `round ${round} job ${i}`));
    }
    await assert.rejects(buildMaglevTablesOffThread([{ backends: jobs[1].backends, size: 65536 }]), /not a prime/);
    const [again] = await buildMaglevTablesOffThread([jobs[1]]);
    assert.deepEqual(again, referenceMaglevTable(jobs[1].backends, jobs[1].size));
  });
});
