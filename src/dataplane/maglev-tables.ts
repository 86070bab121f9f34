/**
 * The inner Maglev arrays of the maglev map (an ARRAY_OF_MAPS: service id -> inner array of
 * u32 backend id | LB_SLOT_MOVED) and of maglev_marks (service id -> inner array of struct
 * lb_slot_mark, present while some slot is moved): created at their own sizes (BPF_F_INNER_MAP),
 * read back after adopt and by the transition sweep, written slot by slot when a mark changes,
 * sized for map browsing. The reconciler (src/balancer) creates and reads them through these
 * functions.
 *
 * User space handles a table as one flat Uint32Array of SLOT_WORDS host-order words per slot:
 * the current backend id, then the slot's mark (prev_id, epoch, and a word whose low byte is
 * `seen` and second byte `flags`, as struct lb_slot_mark lies on little-endian hosts); a slot is
 * moved when its prev word is not 0.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BpfMap, BPF_F_MMAPABLE, type MappedWords } from '../bpf';

/** u32 words per entry in the data of an mmapable inner table (the kernel's elem_size is
 * round_up(value_size, 8)): ids 4 -> 8 bytes, marks 12 -> 16 bytes. */
const ID_STRIDE = 2;
const MARK_STRIDE = 4;
import { decodeU32, encodeU32, LB } from './abi';
import { LB_LAYOUTS, LB_MAPS } from './lb.generated';

/** u32 words per slot in the flat form: current backend, then struct lb_slot_mark. */
export const SLOT_WORDS = 4;
const MARK_BYTES = 12;
if (LB_LAYOUTS.lb_slot_mark.size !== MARK_BYTES) throw new Error('lb_slot_mark is not 12 bytes');
/** Word offsets of a slot's fields in the flat table. */
export const SLOT = { backend: 0, prev: 1, epoch: 2, seenFlags: 3 } as const;

/** The part of a BpfMap the service table outer maps are used through (the reconciler's KernelMap). */
export interface OuterMap {
  lookup(key: Buffer): Buffer | null;
  update(key: Buffer, value: Buffer, flag?: 'any' | 'noexist' | 'exist'): void;
  delete(key: Buffer): boolean | void;
  keys(): Iterable<Buffer>;
}

/**
 * The two outer maps of the services' Maglev tables as one: `maglev_std` holds a table of the
 * default size (LB.MAGLEV_DEFAULT_SIZE, a fixed-size inner array the program's lookup is inlined
 * for), `maglev` a table of any other size (BPF_F_INNER_MAP: a lookup is a kernel call). The
 * program looks in maglev_std first for a service of the default size, then in maglev, so:
 * - update() puts the table into the map of its size and only then takes the service's entry
 *   out of the other one (a packet finds the old table or the new one, never none);
 * - lookup() answers from maglev_std, else maglev; delete() removes from both.
 * Without maglev_std (`std` null: pins of a build without it) it is maglev alone.
 */
export class MaglevOuterMaps implements OuterMap {
  /** `mappings`: kept mappings of the tables (InnerTableMappings); a table this object swaps
   * out or removes loses its mapping. */
  constructor(readonly maglev: OuterMap, readonly std: OuterMap | null, private readonly mappings: InnerTableMappings | null = null) {}

  /** True when a table of `size` slots goes into maglev_std. */
  isStd(size: number): boolean {
    return this.std !== null && size === LB.MAGLEV_DEFAULT_SIZE;
  }

  lookup(key: Buffer): Buffer | null {
    return this.std?.lookup(key) ?? this.maglev.lookup(key);
  }

  /** True when the service's table of `size` slots belongs in maglev_std but is not there (one
   * installed by a build without maglev_std): the next change swaps in a new table rather than
   * writing slots in place, and so moves it. */
  misplaced(key: Buffer, size: number): boolean {
    return this.isStd(size) && !this.std!.lookup(key);
  }

  /** `value`: the inner table's fd (as an outer-map update takes it). */
  update(key: Buffer, value: Buffer, flag?: 'any' | 'noexist' | 'exist'): void {
    const info = BpfMap.infoOfFd(decodeU32(value));
    const std = this.isStd(info.maxEntries);
    const into = std ? this.std! : this.maglev;
    const other = std ? this.maglev : this.std;
    const replaced = this.mappings ? into.lookup(key) : null;
    into.update(key, value, flag);
    const moved = other?.lookup(key);
    if (moved) other!.delete(key);
    for (const gone of [replaced, moved]) if (gone && decodeU32(gone) !== info.id) this.mappings?.forget(gone);
    this.mappings?.installed(decodeU32(value));
  }

  delete(key: Buffer): boolean {
    let found = false;
    for (const m of [this.std, this.maglev]) {
      const gone = m?.lookup(key);
      if (gone) {
        m!.delete(key);
        this.mappings?.forget(gone);
        found = true;
      }
    }
    return found;
  }

  *keys(): Iterable<Buffer> {
    const seen = new Set<string>();
    for (const m of [this.std, this.maglev]) {
      if (!m) continue;
      for (const k of m.keys()) {
        const hex = k.toString('hex');
        if (!seen.has(hex) && m.lookup(k)) { seen.add(hex); yield k; }
      }
    }
  }
}

/** A kept mapping of one inner table (InnerTableMappings). */
interface KeptTable { words: MappedWords; maxEntries: number; valueSize: number }

/**
 * Mappings of installed inner tables (maglev's and maglev_marks' mmapable arrays) kept between
 * changes, by map id: a change's in-place stores go through the table's mapping without an
 * mmap/munmap (and the page faults of a fresh mapping) for each of its three steps. An id names
 * one map for as long as the map lives, and a kept mapping holds a reference on its map, so a
 * kept mapping is always that of the table the outer map's value names: a table swapped in
 * has a new id and gets a mapping of its own. The outer maps' writers (MaglevOuterMaps,
 * TrackedOuterMap) forget the mapping of a table they swap out or remove (it would keep the
 * old table alive); a bound on the bytes mapped (least recently used out) covers tables
 * replaced behind their back. clear() when the data plane is closed.
 */
export class InnerTableMappings {
  private readonly kept = new Map<number, KeptTable>();
  private bytes = 0;
  /** `maxBytes`: mapped bytes kept in all (default 256 MiB: 4 tables of 1048573 slots with
   * their marks, or 170 of 65537). */
  constructor(private readonly maxBytes = 256 << 20) {}

  /** Tables mapped now. */
  get size(): number { return this.kept.size; }

  /** True when the table with this id has a kept mapping. */
  has(id: number): boolean { return this.kept.has(id); }

  /**
   * The kept mapping of the table an outer-map value names (made on first use), or null when
   * the table is gone or not mmapable (the caller goes the syscall way then).
   */
  get(outerValue: Buffer): KeptTable | null {
    const id = decodeU32(outerValue);
    const hit = this.kept.get(id);
    if (hit) {
      this.kept.delete(id);   // most recently used last
      this.kept.set(id, hit);
      return hit;
    }
    const inner = openInner(outerValue);
    if (!inner) return null;
    let table: KeptTable;
    try {
      if (!inner.mmapable) return null;
      table = { words: inner.mapData(), maxEntries: inner.maxEntries, valueSize: inner.valueSize };
    } finally {
      inner.close();   // the mapping keeps its own reference on the map
    }
    this.keep(id, table);
    return table;
  }

  private keep(id: number, table: KeptTable): void {
    this.kept.set(id, table);
    this.bytes += table.words.bytes;
    for (const [old, t] of this.kept) {
      if (this.bytes <= this.maxBytes || old === id) break;
      this.drop(old, t);
    }
  }

  /**
   * Maps a table just installed (its fd), pages populated, so that the first change written
   * into it does not pay the mapping (outer-map writers call it after the update; an install
   * pays an RCU grace period anyway). Tables that are not mmapable are left alone.
   */
  installed(fd: number): void {
    try {
      const info = BpfMap.infoOfFd(fd);
      if (this.kept.has(info.id) || info.typeName !== 'array' || (info.flags & BPF_F_MMAPABLE) === 0) return;
      this.keep(info.id, { words: BpfMap.mapDataOfFd(fd), maxEntries: info.maxEntries, valueSize: info.valueSize });
    } catch {
      // Best effort: the table is installed either way; its first write maps it then.
    }
  }

  /** Unmaps the table an outer-map value (or id) names, if mapped. */
  forget(outerValue: Buffer | number): void {
    const id = typeof outerValue === 'number' ? outerValue : decodeU32(outerValue);
    const t = this.kept.get(id);
    if (t) this.drop(id, t);
  }

  /** Unmaps every table. */
  clear(): void {
    for (const [id, t] of [...this.kept]) this.drop(id, t);
  }

  private drop(id: number, t: KeptTable): void {
    this.kept.delete(id);
    this.bytes -= t.words.bytes;
    t.words.close();
  }
}

/**
 * An outer map (maglev_marks) whose update() and delete() forget the kept mapping of the table
 * they replace or remove (see InnerTableMappings).
 */
export class TrackedOuterMap implements OuterMap {
  constructor(private readonly map: OuterMap, private readonly mappings: InnerTableMappings) {}
  lookup(key: Buffer): Buffer | null { return this.map.lookup(key); }
  /** `value`: the inner table's fd. */
  update(key: Buffer, value: Buffer, flag?: 'any' | 'noexist' | 'exist'): void {
    const replaced = this.map.lookup(key);
    this.map.update(key, value, flag);
    if (replaced && decodeU32(replaced) !== BpfMap.infoOfFd(decodeU32(value)).id) this.mappings.forget(replaced);
    this.mappings.installed(decodeU32(value));
  }
  delete(key: Buffer): boolean | void {
    const gone = this.map.lookup(key);
    const result = this.map.delete(key);
    if (gone) this.mappings.forget(gone);
    return result;
  }
  keys(): Iterable<Buffer> { return this.map.keys(); }
}

/**
 * The outer-map value (inner table id) of service `serviceId`'s Maglev table in the maps pinned
 * under `mapsDir` (maglev_std, then maglev), or null.
 */
export function pinnedTableOuterValue(mapsDir: string, serviceId: number): Buffer | null {
  const open = (name: string) => (fs.existsSync(path.join(mapsDir, name)) ? BpfMap.fromPin(path.join(mapsDir, name)) : null);
  const maglev = open('maglev');
  const std = open('maglev_std');
  try {
    return maglev ? new MaglevOuterMaps(maglev, std).lookup(encodeU32(serviceId)) : null;
  } finally {
    maglev?.close();
    std?.close();
  }
}

/** Entries of the inner map with this id, or null when it is gone. */
export function innerTableSize(id: number): number | null {
  try {
    const inner = BpfMap.fromId(id);
    const size = inner.maxEntries;
    inner.close();
    return size;
  } catch {
    return null;
  }
}

function openInner(outerValue: Buffer | null): BpfMap | null {
  if (!outerValue) return null;
  try {
    return BpfMap.fromId(decodeU32(outerValue));
  } catch {
    return null; // freed meanwhile: the next apply installs a fresh one
  }
}

/** True when the flat table has a moved slot (it then needs a marks table). */
export function hasMarks(slots: Uint32Array): boolean {
  for (let i = SLOT.prev; i < slots.length; i += SLOT_WORDS) if (slots[i] !== 0) return true;
  return false;
}

/**
 * The flat slots of an installed table from its outer-map values (maglev's, and maglev_marks' or
 * null); null when the table is gone or has another layout.
 */
export function readMaglevTable(outerValue: Buffer, marksOuterValue: Buffer | null = null, mappings: InnerTableMappings | null = null): Uint32Array | null {
  if (mappings) {
    const table = readKept(mappings, outerValue, marksOuterValue);
    if (table) return table;
  }
  const inner = openInner(outerValue);
  if (!inner) return null;
  let table: Uint32Array;
  try {
    if (inner.valueSize !== 4) return null; // another layout: replaced by the next apply
    table = new Uint32Array(inner.maxEntries * SLOT_WORDS);
    if (inner.mmapable) {
      const words = inner.readWords();
      for (let i = 0; i < inner.maxEntries; i++) table[i * SLOT_WORDS] = words[i * ID_STRIDE];
    } else {
      for (const [key, value] of inner.lookupBatch()) table[decodeU32(key) * SLOT_WORDS] = decodeU32(value);
    }
  } finally {
    inner.close();
  }
  const marks = openInner(marksOuterValue);
  const moved = (i: number) => (table[i * SLOT_WORDS] & LB.SLOT_MOVED) !== 0;
  try {
    if (marks && marks.valueSize === MARK_BYTES && marks.maxEntries * SLOT_WORDS === table.length && marks.mmapable) {
      const words = marks.readWords();
      for (let i = 0; i < marks.maxEntries; i++) {
        if (!moved(i)) continue;
        table[i * SLOT_WORDS + SLOT.prev] = words[i * MARK_STRIDE];
        table[i * SLOT_WORDS + SLOT.epoch] = words[i * MARK_STRIDE + 1];
        table[i * SLOT_WORDS + SLOT.seenFlags] = words[i * MARK_STRIDE + 2] & 0xffff;
      }
    } else if (marks && marks.valueSize === MARK_BYTES && marks.maxEntries * SLOT_WORDS === table.length) {
      for (const [key, value] of marks.lookupBatch()) {
        const i = decodeU32(key);
        if (!moved(i)) continue;
        table[i * SLOT_WORDS + SLOT.prev] = value.readUInt32LE(0);
        table[i * SLOT_WORDS + SLOT.epoch] = value.readUInt32LE(4);
        table[i * SLOT_WORDS + SLOT.seenFlags] = value[8] | (value[9] << 8);
      }
    }
  } finally {
    marks?.close();
  }
  for (let at = 0; at < table.length; at += SLOT_WORDS) table[at] &= LB.SLOT_ID_MASK;
  return table;
}

/** readMaglevTable() through kept mappings; null when the tables cannot be read that way. */
function readKept(mappings: InnerTableMappings, outerValue: Buffer, marksOuterValue: Buffer | null): Uint32Array | null {
  const inner = mappings.get(outerValue);
  if (!inner || inner.valueSize !== 4) return null;
  const marks = marksOuterValue ? mappings.get(marksOuterValue) : null;
  if (marksOuterValue && !marks) return null;
  const count = inner.maxEntries;
  const table = new Uint32Array(count * SLOT_WORDS);
  const ids = inner.words.readWords();
  for (let i = 0; i < count; i++) table[i * SLOT_WORDS] = ids[i * ID_STRIDE];
  if (marks && marks.valueSize === MARK_BYTES && marks.maxEntries === count) {
    const words = marks.words.readWords();
    for (let i = 0; i < count; i++) {
      if ((table[i * SLOT_WORDS] & LB.SLOT_MOVED) === 0) continue;
      table[i * SLOT_WORDS + SLOT.prev] = words[i * MARK_STRIDE];
      table[i * SLOT_WORDS + SLOT.epoch] = words[i * MARK_STRIDE + 1];
      table[i * SLOT_WORDS + SLOT.seenFlags] = words[i * MARK_STRIDE + 2] & 0xffff;
    }
  }
  for (let at = 0; at < table.length; at += SLOT_WORDS) table[at] &= LB.SLOT_ID_MASK;
  return table;
}

function idValue(words: ArrayLike<number>, at: number): number {
  return (words[at + SLOT.prev] !== 0 ? (words[at] | LB.SLOT_MOVED) : words[at]) >>> 0;
}

function markBytes(values: Buffer, n: number, words: ArrayLike<number>, at: number): void {
  values.writeUInt32LE(words[at + SLOT.prev] >>> 0, n * MARK_BYTES);
  values.writeUInt32LE(words[at + SLOT.epoch] >>> 0, n * MARK_BYTES + 4);
  values[n * MARK_BYTES + 8] = words[at + SLOT.seenFlags] & 0xff;
  values[n * MARK_BYTES + 9] = (words[at + SLOT.seenFlags] >> 8) & 0xff;
}

/**
 * Writes slots of an installed table in place: `indices` are slot indexes, `words` their new
 * SLOT_WORDS words each, back to back. One batch update per step, in an order where a packet
 * meets no half state (each slot is one u32 the program reads once; the marks are read only
 * for a slot whose id says LB_SLOT_MOVED):
 *   1. the marks of the slots that are moved after the write (a slot gains its moved bit only
 *      after its mark is there);
 *   2. the ids;
 *   3. the zeroed marks of slots that are no longer moved (their moved bit is gone first).
 * An array map update takes no RCU grace period (an outer-map update does: docs/decisions.md,
 * "Control plane at kernel speed"). False when a table is gone, or a slot gets a mark and the
 * service has no marks table (nothing written then).
 */
export function writeMaglevSlotsFlat(outerValue: Buffer, marksOuterValue: Buffer | null, indices: ArrayLike<number>, words: ArrayLike<number>,
  mappings: InnerTableMappings | null = null): boolean {
  const n = indices.length;
  if (!n) return true;
  let markedN = 0;
  for (let k = 0; k < n; k++) if (words[k * SLOT_WORDS + SLOT.prev] !== 0) markedN++;
  if (mappings) {
    // Through the tables' kept mappings (both mmapable and there); otherwise as below.
    const kept = mappings.get(outerValue);
    const keptMarks = kept && marksOuterValue ? mappings.get(marksOuterValue) : null;
    // (Both still open: a bound smaller than the pair could have unmapped the first.)
    if (kept && kept.words.isOpen && (keptMarks || !marksOuterValue)) {
      if (markedN && !keptMarks) return false;
      return storeSlots(kept.words, keptMarks?.words ?? null, indices, words);
    }
  }
  const inner = openInner(outerValue);
  if (!inner) return false;
  const marks = openInner(marksOuterValue);
  try {
    if (markedN && !marks) return false;
    if (inner.mmapable && (!marks || marks.mmapable)) {
      // Mappings for this one write (the daemon keeps them: InnerTableMappings).
      const innerWords = inner.mapData();
      const markWords = marks ? marks.mapData() : null;
      try {
        return storeSlots(innerWords, markWords, indices, words);
      } finally {
        innerWords.close();
        markWords?.close();
      }
    }
    const markStep = (moved: boolean, count: number): void => {
      if (!marks || !count) return;
      const keys = Buffer.alloc(count * 4);
      const values = Buffer.alloc(count * MARK_BYTES);
      let m = 0;
      for (let k = 0; k < n; k++) {
        const at = k * SLOT_WORDS;
        if ((words[at + SLOT.prev] !== 0) !== moved) continue;
        keys.writeUInt32LE(indices[k], m * 4);
        markBytes(values, m, words, at);
        m++;
      }
      marks.updateBatchFlat(keys, values, count);
    };
    markStep(true, markedN);
    const keys = Buffer.alloc(n * 4);
    const ids = Buffer.alloc(n * 4);
    for (let k = 0; k < n; k++) {
      keys.writeUInt32LE(indices[k], k * 4);
      ids.writeUInt32LE(idValue(words, k * SLOT_WORDS), k * 4);
    }
    inner.updateBatchFlat(keys, ids, n);
    markStep(false, n - markedN);
    return true;
  } finally {
    inner.close();
    marks?.close();
  }
}

/**
 * The three steps of writeMaglevSlotsFlat() as stores through mappings of the tables, in the
 * addon (native/maps.cc mapMmapStoreSlots: the JIT's loops building offsets for thousands of
 * slots cost more than the stores). False when a slot is moved and there are no marks.
 */
function storeSlots(inner: MappedWords, marks: MappedWords | null, indices: ArrayLike<number>, words: ArrayLike<number>): boolean {
  return inner.storeSlots(marks, indices instanceof Uint32Array ? indices : Uint32Array.from(indices),
    words instanceof Uint32Array ? words : Uint32Array.from(words), ID_STRIDE, MARK_STRIDE, LB.SLOT_MOVED);
}

/** Stores the marks of `indices` (SLOT_WORDS `words` each) through a mapping of the marks table. */
function storeMarks(marks: BpfMap, indices: Uint32Array, words: Uint32Array): void {
  const offsets = new Uint32Array(indices.length * 3);
  const values = new Uint32Array(indices.length * 3);
  for (let k = 0, m = 0; k < indices.length; k++) {
    const base = indices[k] * MARK_STRIDE;
    offsets[m] = base; values[m++] = words[k * SLOT_WORDS + SLOT.prev];
    offsets[m] = base + 1; values[m++] = words[k * SLOT_WORDS + SLOT.epoch];
    offsets[m] = base + 2; values[m++] = words[k * SLOT_WORDS + SLOT.seenFlags] & 0xffff;
  }
  marks.storeWords(offsets, values);
}

/** writeMaglevSlotsFlat() of [slot index, its SLOT_WORDS words] pairs. */
export function writeMaglevSlots(outerValue: Buffer, marksOuterValue: Buffer | null, slots: Array<[number, Uint32Array]>): boolean {
  const indices = new Uint32Array(slots.length);
  const words = new Uint32Array(slots.length * SLOT_WORDS);
  slots.forEach(([index, w], k) => { indices[k] = index; words.set(w.subarray(0, SLOT_WORDS), k * SLOT_WORDS); });
  return writeMaglevSlotsFlat(outerValue, marksOuterValue, indices, words);
}

/**
 * New inner arrays (BPF_F_INNER_MAP, so their size may differ from the template; the ids array of
 * a default-size table with `stdFlags`, maglev_std's template flags, when given) holding the
 * flat `slots`: `fd` the ids (with LB_SLOT_MOVED), `marksFd` the marks (null: no slot moved and
 * not `withMarks`; with `withMarks` a marks table is made even when every mark is zero, so that
 * later changes can mark slots in place without an outer-map update). `flags` must be the
 * outer maps' template flags (Dataplane.innerTableFlags; default: this build's); mmapable
 * tables are filled through a mapping, others with a batch update.
 */
export function createMaglevTable(slots: Uint32Array, withMarks = false, flags: number = LB_MAPS.maglev.inner.flags,
  stdFlags: number | null = null): { fd: number; marksFd: number | null; close(): void } {
  const count = slots.length / SLOT_WORDS;
  // A table of the default size for maglev_std (stdFlags: its template's flags, no BPF_F_INNER_MAP).
  const idFlags = stdFlags !== null && count === LB.MAGLEV_DEFAULT_SIZE ? stdFlags : flags;
  const flatKeys = Buffer.from(Uint32Array.from({ length: count }, (_, i) => i).buffer);
  const made: BpfMap[] = [];
  const close = () => { for (const m of made) m.close(); };
  try {
    const table = BpfMap.create({ type: 'array', name: 'maglev_table', keySize: 4, valueSize: 4, maxEntries: count, flags: idFlags });
    made.push(table);
    const ids = new Uint32Array(count);
    for (let i = 0; i < count; i++) ids[i] = idValue(slots, i * SLOT_WORDS);
    if (table.mmapable) table.storeWords(Uint32Array.from({ length: count }, (_, i) => i * ID_STRIDE), ids);
    else table.updateBatchFlat(flatKeys, Buffer.from(ids.buffer), count);
    let marksFd: number | null = null;
    if (withMarks || hasMarks(slots)) {
      const marks = BpfMap.create({ type: 'array', name: 'slot_marks', keySize: 4, valueSize: MARK_BYTES, maxEntries: count, flags });
      made.push(marks);
      // Only the marked slots: a new array is zeroed.
      const marked: number[] = [];
      for (let i = 0; i < count; i++) if (slots[i * SLOT_WORDS + SLOT.prev] !== 0) marked.push(i);
      const keys = Buffer.alloc(marked.length * 4);
      const values = Buffer.alloc(marked.length * MARK_BYTES);
      marked.forEach((i, n) => { keys.writeUInt32LE(i, n * 4); markBytes(values, n, slots, i * SLOT_WORDS); });
      if (marks.mmapable) {
        const idx = Uint32Array.from(marked);
        const words = new Uint32Array(marked.length * SLOT_WORDS);
        marked.forEach((i, n) => words.set(slots.subarray(i * SLOT_WORDS, i * SLOT_WORDS + SLOT_WORDS), n * SLOT_WORDS));
        storeMarks(marks, idx, words);
      } else {
        marks.updateBatchFlat(keys, values, marked.length);
      }
      marksFd = marks.fd;
    }
    return { fd: table.fd, marksFd, close };
  } catch (err) {
    close();
    throw err;
  }
}
