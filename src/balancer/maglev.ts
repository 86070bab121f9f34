/**
 * Maglev consistent hashing (Eisenbud et al., NSDI 2016) with integer weights.
 *
 * Each backend walks its own permutation of the M slots (offset and skip from two
 * independent hashes of its key, M prime) and on each of its turns claims the permutation's
 * next slot if it is still free. Turns come in rounds: each backend accumulates its weight
 * and takes a turn whenever the accumulator reaches the largest weight (Katran's weighted
 * scheme). Every backend first fills up to the floor of its weighted share; the fewer than N
 * slots then left go to the first backends to reach them, one at most each. Slot counts so
 * match weights to within one slot.
 *
 * Deliberate departures from the paper's loop, measured in maglev.test.ts: a turn spent on a
 * taken slot is not retried (the paper walks on to the next free one), and shares are capped
 * as above. Disruption then depends on M / N^2. On a removal each remaining backend's share
 * grows by M/N^2 slots, and with counts held to floor/ceil only about (M/N^2) x N backends may
 * gain one: when M < N^2 a freed slot taken by any other backend forces a second move (the
 * cascade of the paper's Fig. 13, where near-exact shares and minimal disruption pull against
 * each other). Rule: M >= N^2 keeps a one-backend change to about 2/N of the slots (at
 * most ~2.0/N at M ~ N^2 for N = 10..1000, 2.2/N the worst seen; ~1.6/N at M ~ 2 N^2).
 * Measured, removing or adding one of N equal backends: N = 100, M = 20011: ~1.55/N;
 * N = 1000, M = 1000003: ~1.87/N (build ~0.4-0.8 s); N = 1000 at the default M = 65537:
 * ~2.9-3.6/N (classic Maglev: ~2.9/N at N = 100, M = 10007 and ~7/N at N = 1000, M = 65537).
 * Known defect of adding: when floor(M/N) drops between N and N+1 while M < N^2 (every ~15th
 * N near 1000 at M = 65537: 963, 978, 992, 1008, 1024, ...; N = 1000 at M = 131071), every
 * backend's phase-1 cap drops at once and ~12-22/N of the slots move. At M >= N^2 the floor
 * drops at almost every step and that cost is already in the ~1.9/N. Per-backend (ranked or
 * jittered) caps avoid the defect but move ~4-6/N on every change at M = 65537, so they are
 * not used. Established flows keep their backends through the flow cache regardless.
 * The hashes depend only on the key bytes, so every node builds the same table.
 */
import { isPrime } from '../config/rules';

// The prime rule is the config's (the validator and the reconciler use it too); re-exported for callers of the table.
export { isPrime };

export interface MaglevBackend {
  /** Stable identity of the backend (e.g. "10.0.0.1:80"); the permutation derives from it. */
  key: string;
  /** Integer >= 0; 0 keeps the backend out of the table. */
  weight: number;
}

/** Largest weight: keeps the turn arithmetic (turns x weight) exact in doubles. */
export const MAX_WEIGHT = 1_000_000;

const OFFSET_SEED = 0x9747b28c;
const SKIP_SEED = 0x5bd1e995;

/** MurmurHash3 x86 32-bit over the UTF-8 bytes of `text`: fixed, well known, process-independent. */
export function murmur3(text: string, seed: number): number {
  const data = Buffer.from(text, 'utf8');
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  let h = seed >>> 0;
  const blocks = data.length >>> 2;
  for (let i = 0; i < blocks; i++) {
    let k = data.readUInt32LE(i * 4);
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = blocks * 4;
  const rest = data.length & 3;
  if (rest > 0) {
    let k = data[tail];
    if (rest > 1) k ^= data[tail + 1] << 8;
    if (rest > 2) k ^= data[tail + 2] << 16;
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
  }
  h ^= data.length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Builds a Maglev lookup table of `size` slots; each entry is an index into `backends`.
 * The result does not depend on the order of `backends` (they are walked sorted by key).
 * Returns an EMPTY table when no backend has a weight > 0 (the caller treats the service
 * as having no usable backend).
 * @throws Error when size is not a prime, is smaller than the number of weighted backends,
 *   when a weight is not an integer in 0..MAX_WEIGHT, or when two backends share a key.
 */
export function buildMaglevTable(backends: MaglevBackend[], size: number): Uint32Array {
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

/** Fraction of the table's slots held by each backend index 0..n-1 (all 0 for an empty table). */
export function tableShares(table: Uint32Array, n: number): number[] {
  const counts = new Array<number>(n).fill(0);
  for (const entry of table) {
    if (entry < n) counts[entry]++;
  }
  return counts.map((c) => (table.length === 0 ? 0 : c / table.length));
}
