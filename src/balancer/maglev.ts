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
 * The turn loop runs in the addon (native/maglev.cc, the same steps) when it is built; the
 * TypeScript fillTable below is its fallback and twin (maglev-identical.test.ts checks both).
 */
import { performance } from 'node:perf_hooks';
import { isPrime } from '../config/rules';
import { nativeMaglevFill } from '../bpf/maglev-fill';

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

/** Per-key hashes (offset and skip seeds, before the modulo): a permutation depends only on its key. */
const keyHashes = new Map<string, { offset: number; skip: number }>();
/** Bound of the hash cache (then it starts over): ~100 bytes per key. */
const KEY_HASH_CACHE_LIMIT = 100_000;

/**
 * The two hashes of a backend key that give its permutation (offset = h1 % M, skip = h2 % (M-1) + 1),
 * remembered across builds: a rebuild after a pool change hashes only the backends it has not seen.
 */
function hashesOf(key: string): { offset: number; skip: number } {
  let h = keyHashes.get(key);
  if (h === undefined) {
    if (keyHashes.size >= KEY_HASH_CACHE_LIMIT) keyHashes.clear();
    h = { offset: murmur3(key, OFFSET_SEED), skip: murmur3(key, SKIP_SEED) };
    keyHashes.set(key, h);
  }
  return h;
}

/** Largest table + 1 for which the sparse claims' products (slot x inverse) are exact doubles. */
const SPARSE_MAX_SIZE = 2 ** 26;

/** x^-1 mod p (p prime, 0 < x < p), by the extended Euclidean algorithm. */
function inverseMod(x: number, p: number): number {
  let [r0, r1] = [p, x];
  let [t0, t1] = [0, 1];
  while (r1 !== 0) {
    const q = Math.floor(r0 / r1);
    [r0, r1] = [r1, r0 - q * r1];
    [t0, t1] = [t1, t0 - q * t1];
  }
  return t0 < 0 ? t0 + p : t0;
}

/**
 * Builds a Maglev lookup table of `size` slots; each entry is an index into `backends`.
 * The result does not depend on the order of `backends` (they are walked sorted by key).
 * Returns an EMPTY table when no backend has a weight > 0 (the caller treats the service
 * as having no usable backend).
 *
 * The table is exactly the one of the plain turn-by-turn loop (kept as the reference in
 * maglev-identical.test.ts, which compares the two over random pools); it is only computed
 * faster: typed arrays and no closure in the turn loop, key hashes remembered across builds,
 * and once few slots are free (F^2-ish below M), no walking through taken slots: backend i
 * reaches free slot s after ((s - position_i) x skip_i^-1) mod M more turns, so the next claim
 * of every backend is computed, and claims are replayed in the same (round, key) order.
 * @throws Error when size is not a prime, is smaller than the number of weighted backends,
 *   when a weight is not an integer in 0..MAX_WEIGHT, or when two backends share a key.
 */
export function buildMaglevTable(backends: MaglevBackend[], size: number, engine: MaglevEngine = maglevEngine()): Uint32Array {
  const started = performance.now();
  try {
    return build(backends, size, engine);
  } finally {
    buildTimeMs += performance.now() - started;
  }
}

/** Time this thread spent in buildMaglevTable, plus what addBuildTime() added (ms, ever growing). */
export function maglevBuildTime(): number {
  return buildTimeMs;
}

/** Counts a build done elsewhere (on a worker thread, waited for) in maglevBuildTime(). */
export function addBuildTime(ms: number): void {
  buildTimeMs += ms;
}

let buildTimeMs = 0;

/**
 * Which code runs the turn loop: 'native' is fillTable's C++ twin in the addon
 * (native/maglev.cc, the same steps and arithmetic, ~3-4x faster); 'js' is fillTable below.
 * Both give the same table (maglev-identical.test.ts checks them against the plain loop).
 */
export type MaglevEngine = 'native' | 'js';

/** 'native' when the addon (build/Release/xdplb_native.node) loads, else 'js'. */
export function maglevEngine(): MaglevEngine {
  return nativeMaglevFill() ? 'native' : 'js';
}

function build(backends: MaglevBackend[], size: number, engine: MaglevEngine): Uint32Array {
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
  if (size >= 2 ** 30) throw new Error(`maglev: table size ${size} is too large (at most 2^30 - 1 slots)`);

  let total = 0;
  for (const b of order) total += b.weight;
  const cap = new Int32Array(n);        // floor of the weighted share
  // Slots fit an int32 (size < 2^30, checked above), so slot arithmetic stays small-integer.
  const position = new Int32Array(n);   // slot of each backend's next permutation entry
  const skip = new Int32Array(n);
  const weight = new Float64Array(n);
  const owner = new Uint32Array(n);     // index into `backends`
  let maxWeight = 0;
  let equal = true;
  for (let i = 0; i < n; i++) {
    const h = hashesOf(order[i].key);
    cap[i] = Math.floor((size * order[i].weight) / total);
    position[i] = h.offset % size;
    skip[i] = (h.skip % (size - 1)) + 1;
    weight[i] = order[i].weight;
    owner[i] = order[i].index;
    if (weight[i] > maxWeight) maxWeight = weight[i];
    if (weight[i] !== weight[0]) equal = false;
  }
  const table = new Uint32Array(size);
  const native = engine === 'native' ? nativeMaglevFill() : null;
  if (native) native(size, n, equal, maxWeight, cap, position, skip, weight, owner, table);
  else fillTable(size, n, equal, maxWeight, cap, position, skip, weight, owner, table);
  return table;
}

/**
 * The turn loop of buildMaglevTable over typed arrays only (one shape of arguments, so the
 * optimiser keeps it): fills `table` with `owner` indexes.
 */
function fillTable(size: number, n: number, equal: boolean, maxWeight: number, cap: Int32Array, position: Int32Array,
  skip: Int32Array, weight: Float64Array, owner: Uint32Array, table: Uint32Array): void {
  // Backend i's k-th turn falls in round ceil(k * maxWeight / weight): the round where its
  // accumulated weight reaches k * maxWeight (with equal weights: round k). Rounds are visited
  // in order, skipping those in which no backend has a turn; within a round, turns go in index
  // (key) order. A turn consumes one permutation entry even when that slot is taken: a
  // backend's claims then happen at fixed "times", so a freed slot does not shift all of its
  // later claims (which is what makes classic Maglev's changes cascade).
  // 1 + index of the slot's backend; 0 = free (16 bits while they fit: half the cache lines of 32)
  const own = n < 0xffff ? new Uint16Array(size) : new Int32Array(size);
  const probes = new Float64Array(n);
  const claimed = new Int32Array(n);
  const round = new Float64Array(n);    // round of each backend's next turn
  const active = new Int32Array(n);
  let filled = 0;
  // Sparse phase state (allocated on first use).
  let inverse: Float64Array | null = null;
  let free: Int32Array | null = null;
  // Phase 1 fills every backend up to the floor of its share; phase 2 hands the few slots
  // left (fewer than n) to the first backends to reach them, at most one each.
  for (let extra = 0; extra <= 1; extra++) {
    let activeCount = 0;
    for (let i = 0; i < n; i++) if (claimed[i] < cap[i] + extra) active[activeCount++] = i;
    if (equal && extra === 0) {
      // Equal weights, phase 1: every active backend takes a turn in every round (round r =
      // its r-th turn). The same turns as the loop below, without its bookkeeping or
      // data-dependent branches (a claim is the free slot test as 0/1).
      let r = 0;
      while (filled < size && activeCount > 0) {
        const left = size - filled;
        if (left * (activeCount + 2 * left) < size) break;
        r++;
        let stillActive = 0;
        let hits = 0;
        for (let k = 0; k < activeCount; k++) {
          const i = active[k];
          const slot = position[i];
          const next = slot + skip[i];
          position[i] = next - (size & ((size - 1 - next) >> 31));
          const o = own[slot];
          const hit = (o - 1) >>> 31;
          own[slot] = o | ((i + 1) & -hit);
          hits += hit;
          const c = claimed[i] + hit;
          claimed[i] = c;
          active[stillActive] = i;
          const stays = (c - cap[i]) >>> 31;
          // A backend leaving the phase keeps the round of its last turn; the others get theirs
          // when the loop ends (one store per backend, not per turn).
          if (stays === 0) probes[i] = r;
          stillActive += stays;
        }
        filled += hits;
        activeCount = stillActive;
      }
      for (let k = 0; k < activeCount; k++) probes[active[k]] = r;
    }
    let current = Infinity;
    for (let k = 0; k < activeCount; k++) {
      const i = active[k];
      const r = equal ? probes[i] + 1 : Math.ceil(((probes[i] + 1) * maxWeight) / weight[i]);
      round[i] = r;
      if (r < current) current = r;
    }
    while (filled < size && activeCount > 0) {
      const left = size - filled;
      // Walking costs ~M/F turns per claim; computing the next claims ~A + 2F per claim.
      if (size < SPARSE_MAX_SIZE && left * (activeCount + 2 * left) < size) {
        inverse ??= new Float64Array(n).fill(0);
        free ??= new Int32Array(left);
        filled = sparseClaims(size, extra, active, activeCount, equal, maxWeight, weight, position, skip, probes,
          claimed, cap, inverse, free, own, filled);
        break;
      }
      let stillActive = 0;
      let nextRound = Infinity;
      for (let k = 0; k < activeCount; k++) {
        const i = active[k];
        let r = round[i];
        if (r === current) {
          const slot = position[i];
          const next = slot + skip[i];
          position[i] = next - (size & ((size - 1 - next) >> 31));
          const p = ++probes[i];
          const o = own[slot];
          const hit = (o - 1) >>> 31;
          own[slot] = o | ((i + 1) & -hit);
          filled += hit;
          claimed[i] += hit;
          r = equal ? p + 1 : Math.ceil(((p + 1) * maxWeight) / weight[i]);
          round[i] = r;
        }
        if (claimed[i] < cap[i] + extra) {
          active[stillActive++] = i;
          if (r < nextRound) nextRound = r;
        }
      }
      activeCount = stillActive;
      current = nextRound;
    }
  }
  for (let s = 0; s < size; s++) table[s] = owner[own[s] - 1];
}

/**
 * The rest of a phase when few slots are free: each active backend's next claim is the free
 * slot its permutation reaches first (turns in between all meet taken slots, and a taken slot
 * stays taken), at the round of that turn; claims are made in (round, index) order, as the
 * turn-by-turn loop makes them, and a backend whose target another claimed looks again.
 * Leaves position/probes/claimed as the loop would after the same claims.
 * @returns the new count of filled slots
 */
function sparseClaims(size: number, extra: number, active: Int32Array, activeCount: number, equal: boolean, maxWeight: number,
  weight: Float64Array, position: Int32Array, skip: Int32Array, probes: Float64Array, claimed: Int32Array, cap: Int32Array,
  inverse: Float64Array, free: Int32Array, own: Int32Array | Uint16Array, filled: number): number {
  let freeCount = 0;
  for (let s = 0; s < size; s++) if (own[s] === 0) free[freeCount++] = s;
  const target = new Float64Array(activeCount);   // slot each active backend claims next
  const steps = new Float64Array(activeCount);    // turns until then (0 = its next turn)
  const at = new Float64Array(activeCount);       // round of that turn
  const reciprocal = 1 / size;
  const look = (k: number): void => {
    const i = active[k];
    if (inverse[i] === 0) inverse[i] = inverseMod(skip[i], size);
    const inv = inverse[i];
    const from = position[i];
    let best = Infinity;
    let bestSlot = -1;
    for (let f = 0; f < freeCount; f++) {
      const s = free[f];
      const d = s >= from ? s - from : s - from + size;
      // (d * inv) mod size: the product is exact (size < 2^26), the quotient from the
      // reciprocal is off by at most one, which the two corrections take back.
      const x = d * inv;
      let t = x - Math.floor(x * reciprocal) * size;
      if (t < 0) t += size;
      else if (t >= size) t -= size;
      if (t < best) { best = t; bestSlot = s; }
    }
    target[k] = bestSlot;
    steps[k] = best;
    const turn = probes[i] + best + 1;
    at[k] = equal ? turn : Math.ceil((turn * maxWeight) / weight[i]);
  };
  for (let k = 0; k < activeCount; k++) look(k);
  while (filled < size && activeCount > 0) {
    // The earliest claim: lowest round, then lowest index (active is in index order).
    let first = 0;
    for (let k = 1; k < activeCount; k++) if (at[k] < at[first]) first = k;
    const i = active[first];
    const slot = target[first];
    probes[i] += steps[first] + 1;
    const next = slot + skip[i];
    position[i] = next >= size ? next - size : next;
    own[slot] = i + 1;
    filled++;
    claimed[i]++;
    for (let f = 0; f < freeCount; f++) {
      if (free[f] === slot) { free[f] = free[--freeCount]; break; }
    }
    if (claimed[i] >= cap[i] + extra) {
      // Out of this phase: drop it, keeping index order.
      for (let k = first; k + 1 < activeCount; k++) {
        active[k] = active[k + 1]; target[k] = target[k + 1]; steps[k] = steps[k + 1]; at[k] = at[k + 1];
      }
      activeCount--;
    } else {
      look(first);
    }
    if (filled >= size) break;
    for (let k = 0; k < activeCount; k++) {
      if (target[k] === slot) {
        // Its turns up to the lost slot stay unspent; it looks again from where it stands.
        look(k);
      }
    }
  }
  return filled;
}

/** Fraction of the table's slots held by each backend index 0..n-1 (all 0 for an empty table). */
export function tableShares(table: Uint32Array, n: number): number[] {
  const counts = new Array<number>(n).fill(0);
  for (const entry of table) {
    if (entry < n) counts[entry]++;
  }
  return counts.map((c) => (table.length === 0 ? 0 : c / table.length));
}
