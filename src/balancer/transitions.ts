/**
 * Transition marks of the Maglev slots (struct lb_maglev_slot, docs/decisions.md "Stateless
 * steady state"): pure functions over flat slot tables (SLOT_WORDS u32 words per slot:
 * backend_id, prev_id, epoch, seen | flags << 8). The marks derive only from the sequence of
 * tables a data plane installed (and the epoch, which only this node's flow cache compares), so
 * two nodes that applied the same changes hold the same current and previous backend per slot.
 */
import { LB } from '../dataplane/abi';
import { SLOT, SLOT_WORDS } from '../dataplane/maglev-tables';
import { nativeTransitionPass } from '../bpf/maglev-fill';

/** Default settings.transitionSeconds: the sweep period (a mark lasts >= 2 periods). */
export const DEFAULT_TRANSITION_SECONDS = 60;

const YOUNG = LB.SLOT_F_YOUNG << 8;
const SEEN = 1;

/** The slot table of a first install (or a size change): current backends, no marks. */
export function unmarkedSlots(ids: Uint32Array): Uint32Array {
  const out = new Uint32Array(ids.length * SLOT_WORDS);
  for (let i = 0; i < ids.length; i++) out[i * SLOT_WORDS] = ids[i];
  return out;
}

/** True when `slots` holds exactly `ids` as its current backends. */
export function sameCurrent(slots: Uint32Array | undefined, ids: Uint32Array): boolean {
  if (!slots || slots.length !== ids.length * SLOT_WORDS) return false;
  for (let i = 0; i < ids.length; i++) if (slots[i * SLOT_WORDS] !== ids[i]) return false;
  return true;
}

/** A set of backend ids as a byte per id (ids are small: below the backends map's size), so
 * that a pass over 65537 slots does no hashing. */
export function idBitmap(ids: ReadonlySet<number>): Uint8Array {
  let max = 0;
  for (const id of ids) if (id > max) max = id;
  const out = new Uint8Array(max + 1);
  for (const id of ids) out[id] = 1;
  return out;
}

/**
 * When each moved slot's YOUNG window started (ms), by slot index, in a typed array: the
 * reconciler sets thousands of them per change (a Map of that size cost ~1 ms a change).
 */
export class SlotTimes {
  private times: Float64Array;
  private count = 0;
  constructor(slots = 0) { this.times = new Float64Array(slots).fill(NaN); }
  get size(): number { return this.count; }
  get(i: number): number | undefined {
    const t = i < this.times.length ? this.times[i] : NaN;
    return Number.isNaN(t) ? undefined : t;
  }
  set(i: number, t: number): this {
    if (i >= this.times.length) {
      const grown = new Float64Array(Math.max(i + 1, this.times.length * 2)).fill(NaN);
      grown.set(this.times);
      this.times = grown;
    }
    if (Number.isNaN(this.times[i])) this.count++;
    this.times[i] = t;
    return this;
  }
  delete(i: number): boolean {
    if (i >= this.times.length || Number.isNaN(this.times[i])) return false;
    this.times[i] = NaN;
    this.count--;
    return true;
  }
  clear(): void { this.times.fill(NaN); this.count = 0; }
}

/** Number of marked (moved) slots of a table. */
export function markedCount(slots: Uint32Array): number {
  let n = 0;
  for (let i = SLOT.prev; i < slots.length; i += SLOT_WORDS) if (slots[i] !== 0) n++;
  return n;
}

/**
 * The slots after a table change from `old` (installed) to the current backends `ids`:
 * - a slot whose backend changed and was not marked is marked: prev = its old backend (when that
 *   backend is still one of the service's, `known`; a removed backend's flows cannot be kept, so
 *   the slot is not marked), epoch = `epoch`, seen and YOUNG set;
 * - a marked slot keeps its prev (the backend before the whole transition: its flows that sent
 *   nothing yet are not in the flow cache) and its epoch (the flows remembered since stay
 *   valid); a removed prev becomes the current backend (misses go there, remembered flows stay);
 *   when its backend changed again, seen and YOUNG are set again (the window restarts); a marked
 *   slot is always left seen (the kernel's `seen` of the old table is not read: at worst a mark
 *   lives one sweep longer);
 * - anything else is unmarked.
 * A size change (or no old table) unmarks everything: slots of different sizes hash other flows.
 * `movedSlots` receives the index of every slot whose window (re)started.
 */
export function transitionSlots(old: Uint32Array | undefined, ids: Uint32Array, known: ReadonlySet<number>, epoch: number, movedSlots?: number[],
  diff?: SlotDiff, buffers?: SlotBuffers, engine: TransitionEngine = 'native'): Uint32Array {
  if (!old || old.length !== ids.length * SLOT_WORDS) {
    if (diff) diff.changed = null;
    return unmarkedSlots(ids);
  }
  // `out` starts as a copy of `old` (one memory copy): the loop writes only the slots that
  // differ, most slots of a change keep their backend and carry no mark.
  const out = buffers?.out && buffers.out.length === old.length && buffers.out !== old ? buffers.out : new Uint32Array(old.length);
  out.set(old);
  const isKnown = idBitmap(known);
  const knownLength = isKnown.length;
  // The slots that differ from `old` and the marked count, worked out in the same pass.
  let changed: Uint32Array | null = null;
  if (diff) {
    changed = buffers?.changed && buffers.changed.length >= ids.length ? buffers.changed : new Uint32Array(ids.length);
    if (buffers) buffers.changed = changed;
  }
  // The addon's twin of the loop below (native/slots.cc), when nobody asks for movedSlots.
  const pass = !movedSlots && engine === 'native' ? nativeTransitionPass() : null;
  if (pass) {
    const [n, marked] = pass(old, ids, isKnown, epoch >>> 0, YOUNG, out, changed ?? scratchChanged(ids.length));
    if (diff) {
      diff.changed = changed!.subarray(0, n);
      diff.marked = marked;
    }
    return out;
  }
  let n = 0;
  let marked = 0;
  for (let i = 0, at = 0; i < ids.length; i++, at += SLOT_WORDS) {
    const cur = ids[i];
    const oldCur = old[at];
    const oldPrev = old[at + 1];
    const oldEpoch = old[at + 2];
    const oldSeen = old[at + 3];
    if (cur === oldCur && (oldPrev | oldEpoch | oldSeen) === 0) continue;   // unmarked, unchanged: `out` holds it
    let prev = 0;
    let ep = 0;
    let seen = 0;
    if (oldPrev !== 0) {
      prev = oldPrev < knownLength && isKnown[oldPrev] ? oldPrev : cur;
      ep = oldEpoch;
      if (cur !== oldCur) {
        seen = SEEN | YOUNG;
        movedSlots?.push(i);
      } else {
        seen = (oldSeen & YOUNG) | SEEN;
      }
    } else if (cur !== oldCur && oldCur !== 0 && oldCur < knownLength && isKnown[oldCur]) {
      prev = oldCur;
      ep = epoch;
      seen = SEEN | YOUNG;
      movedSlots?.push(i);
    }
    if (prev !== 0) marked++;
    if (cur !== oldCur || prev !== oldPrev || ep !== oldEpoch || seen !== oldSeen) {
      out[at] = cur;
      out[at + 1] = prev;
      out[at + 2] = ep;
      out[at + 3] = seen;
      if (changed !== null) changed[n++] = i;
    }
  }
  if (diff) {
    diff.changed = changed!.subarray(0, n);
    diff.marked = marked;
  }
  return out;
}

/** Which loop transitionSlots() runs: the addon's (when built) or the TypeScript one. */
export type TransitionEngine = 'native' | 'js';

/** A `changed` array for the addon's pass when the caller wants no diff (kept: no garbage). */
let scratch = new Uint32Array(0);
function scratchChanged(length: number): Uint32Array {
  if (scratch.length < length) scratch = new Uint32Array(length);
  return scratch;
}

/**
 * Starts at `now` the window of every slot whose window transitionSlots() (re)started going
 * from `old` to `slots` (the slots its `movedSlots` lists: backend changed, marked before or
 * after), looking only at `changed` (its diff.changed): no list of thousands of indexes built
 * per change.
 */
export function startWindows(old: Uint32Array, slots: Uint32Array, changed: ArrayLike<number>, young: SlotTimes, now: number): void {
  for (let k = 0; k < changed.length; k++) {
    const at = changed[k] * SLOT_WORDS;
    if (slots[at] !== old[at] && (old[at + 1] !== 0 || slots[at + 1] !== 0)) young.set(changed[k], now);
  }
}

/**
 * Arrays transitionSlots() may write into instead of allocating (a 65537-slot table is 1 MiB:
 * one per change kept the garbage collector busy, and its pauses landed on changes): `out`, a
 * table of the same size that nothing else holds (never `old`), and `changed`, a scratch array
 * the result's `diff.changed` is then a view of (valid until the next call with these buffers).
 */
export interface SlotBuffers { out?: Uint32Array; changed?: Uint32Array }

/** What transitionSlots() changed against the old table: the slot indexes (null: no old table
 * of the same size, everything is new) and how many slots of the result are marked. */
export interface SlotDiff { changed: Uint32Array | null; marked: number }

/**
 * One sweep over a table read back from the kernel: what to write, slot by slot. A YOUNG slot
 * whose window began at least `periodMs` ago (`youngSince`, ms) loses YOUNG and seen; a marked
 * slot that was seen is left unseen; a marked slot not seen since the last sweep (and not YOUNG)
 * is unmarked. Slots YOUNG for less than a period are left alone.
 */
export function sweepSlots(kernel: Uint32Array, youngSince: { get(i: number): number | undefined }, now: number, periodMs: number): Array<[number, Uint32Array]> {
  const writes: Array<[number, Uint32Array]> = [];
  for (let i = 0, at = 0; at < kernel.length; i++, at += SLOT_WORDS) {
    if (kernel[at + SLOT.prev] === 0) continue;
    const word = kernel[at + SLOT.seenFlags];
    const cur = kernel[at + SLOT.backend];
    if (word & YOUNG) {
      if (now - (youngSince.get(i) ?? now) < periodMs) continue;
      writes.push([i, Uint32Array.of(cur, kernel[at + SLOT.prev], kernel[at + SLOT.epoch], 0)]);
    } else if (word & 0xff) {
      writes.push([i, Uint32Array.of(cur, kernel[at + SLOT.prev], kernel[at + SLOT.epoch], 0)]);
    } else {
      writes.push([i, Uint32Array.of(cur, 0, 0, 0)]);
    }
  }
  return writes;
}

/**
 * What a flat table's marks say (GET /api/v1/transitions): slots, moved slots and their share,
 * moved slots seen since the last sweep and still YOUNG, and when the oldest running transition
 * began (its epoch: seconds of the reconciler's clock when it was first marked; ms here).
 */
export function transitionSummary(slots: Uint32Array): { tableSize: number; movedSlots: number; movedShare: number; seenSlots: number; youngSlots: number; since: number | null } {
  const tableSize = slots.length / SLOT_WORDS;
  let moved = 0;
  let seen = 0;
  let young = 0;
  let oldest = 0;
  for (let at = 0; at < slots.length; at += SLOT_WORDS) {
    if (slots[at + SLOT.prev] === 0) continue;
    moved++;
    const word = slots[at + SLOT.seenFlags];
    if (word & 0xff) seen++;
    if (word & YOUNG) young++;
    const epoch = slots[at + SLOT.epoch];
    if (epoch && (!oldest || epoch < oldest)) oldest = epoch;
  }
  return { tableSize, movedSlots: moved, movedShare: tableSize ? moved / tableSize : 0, seenSlots: seen, youngSlots: young, since: oldest ? oldest * 1000 : null };
}
