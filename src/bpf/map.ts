/** BpfMap: a typed handle on a BPF map (lookup/update/delete/iterate/batch, per-CPU values, pinning). */
import type { MapCreateOptions, MapInfo } from './api';
import { bpfError } from './errors';
import { FdHandle } from './handle';
import { native } from './native';

export type UpdateFlag = 'any' | 'noexist' | 'exist';
const UPDATE_FLAGS: Record<UpdateFlag, number> = { any: 0, noexist: 1, exist: 2 };

/** BPF_F_INNER_MAP: an inner map with this flag may be swapped for one of another max_entries. */
export const BPF_F_INNER_MAP = 1 << 12;
/** BPF_F_MMAPABLE: an ARRAY whose data user space can map (BpfMap.storeWords/readWords). */
export const BPF_F_MMAPABLE = 1 << 10;
/** BPF_F_NO_PREALLOC, needed by some hash maps and required by LPM tries. */
export const BPF_F_NO_PREALLOC = 1 << 0;

let mapTypeNameCache: string[] | undefined;
function mapTypeNames(): string[] {
  mapTypeNameCache ??= native().mapTypeNames();
  return mapTypeNameCache;
}

/**
 * BPF_MAP_TYPE_* number of a type given as a number, as libbpf's name ('hash', 'array_of_maps') or
 * as the C name ('BPF_MAP_TYPE_HASH').
 * @throws BpfError EINVAL for an unknown name.
 */
export function mapTypeNumber(type: number | string): number {
  if (typeof type === 'number') return type;
  const name = type.toLowerCase().replace(/^bpf_map_type_/, '');
  const index = mapTypeNames().indexOf(name);
  if (index < 0) throw bpfError('map create', `type '${type}'`, 'EINVAL', `unknown map type; known: ${mapTypeNames().join(', ')}`);
  return index;
}

const PER_CPU_TYPES = new Set(['percpu_hash', 'percpu_array', 'lru_percpu_hash', 'percpu_cgroup_storage']);

export class BpfMap extends FdHandle {
  readonly id: number;
  readonly name: string;
  readonly type: number;
  readonly typeName: string;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  readonly flags: number;
  readonly isPerCpu: boolean;
  /** Bytes of a value buffer: valueSize, or possibleCpus() * round_up(valueSize, 8) for per-CPU maps. */
  readonly valueBufferSize: number;
  /** Bytes of one CPU's slot inside a per-CPU value buffer (round_up(valueSize, 8)); valueSize otherwise. */
  readonly perCpuStride: number;

  /**
   * Wraps a map fd this process owns (closed by close()). `name` overrides the kernel's name, which
   * is truncated to 15 characters.
   * @throws BpfError when the fd is not a BPF map.
   */
  constructor(fd: number, name?: string) {
    super(fd);
    let info: MapInfo;
    try {
      info = native().mapInfo(fd, name ?? `fd ${fd}`);
    } catch (err) {
      native().closeFd(fd);
      throw err;
    }
    this.id = info.id;
    this.name = name ?? info.name;
    this.type = info.type;
    this.typeName = info.typeName;
    this.keySize = info.keySize;
    this.valueSize = info.valueSize;
    this.maxEntries = info.maxEntries;
    this.flags = info.flags;
    this.isPerCpu = PER_CPU_TYPES.has(info.typeName);
    this.perCpuStride = this.isPerCpu ? Math.ceil(info.valueSize / 8) * 8 : info.valueSize;
    this.valueBufferSize = this.isPerCpu ? native().possibleCpus() * this.perCpuStride : info.valueSize;
  }

  get label(): string {
    return `map '${this.name}'`;
  }

  /**
   * Creates a map (any type; map-in-map with innerMapFd).
   * @throws BpfError (op 'map create') naming the map, e.g. EINVAL for bad sizes or flags, EPERM without root.
   */
  static create(opts: MapCreateOptions): BpfMap {
    const fd = native().mapCreate(mapTypeNumber(opts.type), opts.name, opts.keySize, opts.valueSize, opts.maxEntries,
      opts.flags ?? 0, opts.innerMapFd ?? -1);
    return new BpfMap(fd, opts.name);
  }

  /**
   * Opens a map pinned on bpffs.
   * @throws BpfError ENOENT when nothing is pinned there; EINVAL when the pin is not a map.
   */
  static fromPin(pinPath: string): BpfMap {
    return new BpfMap(native().objGet(pinPath, 'map'));
  }

  /**
   * Opens a map by its kernel id.
   * @throws BpfError ENOENT when no map has that id.
   */
  static fromId(id: number): BpfMap {
    return new BpfMap(native().mapFdFromId(id));
  }

  /** The kernel's view of the map behind `fd` (not owned: left open). @throws BpfError */
  static infoOfFd(fd: number): MapInfo {
    return native().mapInfo(fd, `fd ${fd}`);
  }

  /** The kernel's current view of the map. @throws BpfError */
  info(): MapInfo {
    return native().mapInfo(this.fd, this.name);
  }

  private checkKey(op: string, key: Buffer): void {
    if (!Buffer.isBuffer(key) || key.length !== this.keySize) {
      throw bpfError(op, this.label, 'EINVAL', `key must be ${this.keySize} bytes, got ${Buffer.isBuffer(key) ? key.length : typeof key}`);
    }
  }

  private checkValue(op: string, value: Buffer): void {
    if (!Buffer.isBuffer(value) || value.length !== this.valueBufferSize) {
      const perCpu = this.isPerCpu ? ` (per-CPU: ${native().possibleCpus()} CPUs x ${this.perCpuStride})` : '';
      throw bpfError(op, this.label, 'EINVAL',
        `value must be ${this.valueBufferSize} bytes${perCpu}, got ${Buffer.isBuffer(value) ? value.length : typeof value}`);
    }
  }

  /**
   * The value at `key` (for per-CPU maps all CPUs' slots, see splitPerCpu), or null when absent.
   * @throws BpfError EINVAL (op 'map lookup') when the key has the wrong size.
   */
  lookup(key: Buffer): Buffer | null {
    this.checkKey('map lookup', key);
    return native().mapLookup(this.fd, key, this.keySize, this.valueBufferSize, this.name);
  }

  /** A per-CPU value split into one Buffer per CPU (each valueSize bytes). */
  splitPerCpu(value: Buffer): Buffer[] {
    const out: Buffer[] = [];
    for (let off = 0; off + this.perCpuStride <= value.length; off += this.perCpuStride) {
      out.push(value.subarray(off, off + this.valueSize));
    }
    return out;
  }

  /**
   * Lookup of a per-CPU map, one Buffer per possible CPU; null when absent.
   * @throws BpfError EINVAL when the map is not per-CPU or the key has the wrong size.
   */
  lookupPerCpu(key: Buffer): Buffer[] | null {
    if (!this.isPerCpu) throw bpfError('map lookup', this.label, 'EINVAL', `not a per-CPU map (type ${this.typeName})`);
    const value = this.lookup(key);
    return value ? this.splitPerCpu(value) : null;
  }

  /**
   * Writes `value` at `key`. flag 'noexist' fails with EEXIST if present, 'exist' with ENOENT if absent.
   * @throws BpfError EINVAL before the syscall on a size mismatch; kernel errors (E2BIG full, ...).
   */
  update(key: Buffer, value: Buffer, flag: UpdateFlag = 'any'): void {
    this.checkKey('map update', key);
    this.checkValue('map update', value);
    native().mapUpdate(this.fd, key, this.keySize, value, this.valueBufferSize, UPDATE_FLAGS[flag], this.name);
  }

  /**
   * For ARRAY_OF_MAPS / HASH_OF_MAPS: points `key` at `inner` in one atomic update.
   * @throws BpfError when this is not a map-in-map or the inner map is incompatible.
   */
  setInnerMap(key: Buffer, inner: BpfMap, flag: UpdateFlag = 'any'): void {
    if (!/_of_maps$/.test(this.typeName)) {
      throw bpfError('map update', this.label, 'EINVAL', `not a map-in-map (type ${this.typeName})`);
    }
    const value = Buffer.alloc(4);
    value.writeUInt32LE(inner.fd);
    this.update(key, value, flag);
  }

  /**
   * Removes `key`; false when it was absent.
   * @throws BpfError EINVAL for a wrong key size, or from the kernel (arrays cannot delete).
   */
  delete(key: Buffer): boolean {
    this.checkKey('map delete', key);
    return native().mapDelete(this.fd, key, this.keySize, this.name);
  }

  /**
   * Every key, in the kernel's order. The walk is taken whole before the first yield, so deleting
   * keys while iterating is safe; when a key vanishes mid-walk the kernel restarts from the first
   * key, and keys already seen are skipped (the walk is bounded by 4 x max_entries steps).
   * @throws BpfError
   */
  *keys(): Generator<Buffer> {
    const seen = new Set<string>();
    const keys: Buffer[] = [];
    let key: Buffer | null = null;
    for (let steps = 0; steps < 4 * this.maxEntries + 1; steps++) {
      key = native().mapNextKey(this.fd, key, this.keySize, this.name);
      if (key === null) break;
      const hex = key.toString('hex');
      if (seen.has(hex)) continue;
      seen.add(hex);
      keys.push(key);
    }
    yield* keys;
  }

  /** Every [key, value]; entries deleted while iterating are skipped. @throws BpfError */
  *entries(): Generator<[Buffer, Buffer]> {
    for (const key of this.keys()) {
      const value = this.lookup(key);
      if (value !== null) yield [key, value];
    }
  }

  /** Number of keys present (walks the map). @throws BpfError */
  count(): number {
    let n = 0;
    for (const _ of this.keys()) n++;
    return n;
  }

  /**
   * Every entry in a few BPF_MAP_LOOKUP_BATCH calls.
   * @throws BpfError (op 'map lookup batch'), e.g. EINVAL/ENOTSUPP for map types without batch support.
   */
  lookupBatch(): [Buffer, Buffer][] {
    const { keys, values, count } = native().mapLookupBatch(this.fd, this.keySize, this.valueBufferSize,
      this.maxEntries, this.name);
    const out: [Buffer, Buffer][] = [];
    for (let i = 0; i < count; i++) {
      out.push([
        keys.subarray(i * this.keySize, (i + 1) * this.keySize),
        values.subarray(i * this.valueBufferSize, (i + 1) * this.valueBufferSize),
      ]);
    }
    return out;
  }

  /**
   * Writes many entries with one BPF_MAP_UPDATE_BATCH.
   * @throws BpfError EINVAL before the syscall when lengths or sizes differ; kernel errors after.
   */
  updateBatch(keys: Buffer[], values: Buffer[], flag: UpdateFlag = 'any'): void {
    if (keys.length !== values.length) {
      throw bpfError('map update batch', this.label, 'EINVAL', `${keys.length} keys but ${values.length} values`);
    }
    keys.forEach((k) => this.checkKey('map update batch', k));
    values.forEach((v) => this.checkValue('map update batch', v));
    this.updateBatchFlat(Buffer.concat(keys), Buffer.concat(values), keys.length, flag);
  }

  /** True for an ARRAY created with BPF_F_MMAPABLE (storeWords/readWords work on it). */
  get mmapable(): boolean {
    return this.typeName === 'array' && (this.flags & BPF_F_MMAPABLE) !== 0;
  }

  /** Bytes of an ARRAY's data: entries of round_up(valueSize, 8) bytes (the kernel's elem_size). */
  get dataBytes(): number {
    return Math.ceil(this.valueSize / 8) * 8 * this.maxEntries;
  }

  /**
   * Stores u32 words into the data of a BPF_F_MMAPABLE array through a mapping of it (no
   * syscall per entry, no RCU wait): values[i] at u32 offset offsets[i] (entry e starts at
   * offset e x round_up(valueSize, 8) / 4), in index order, each one aligned 32-bit store, so a
   * program reading a word meets the old or the new value, never a mix.
   * @throws BpfError EINVAL when the map is not mmapable or an offset is out of its data.
   */
  storeWords(offsets: Uint32Array, values: Uint32Array): void {
    if (!this.mmapable) throw bpfError('map mmap write', this.label, 'EINVAL', 'the map is not a BPF_F_MMAPABLE array');
    native().mapStoreWords(this.fd, this.dataBytes, offsets, values, this.name);
  }

  /**
   * A copy of the data of a BPF_F_MMAPABLE array as u32 words (entry e at e x round_up(valueSize,
   * 8) / 4); one mapping instead of a lookup per entry.
   * @throws BpfError EINVAL when the map is not mmapable.
   */
  readWords(): Uint32Array {
    if (!this.mmapable) throw bpfError('map mmap read', this.label, 'EINVAL', 'the map is not a BPF_F_MMAPABLE array');
    const buf = native().mapReadWords(this.fd, this.dataBytes, this.name);
    return new Uint32Array(buf.buffer, buf.byteOffset, buf.length / 4);
  }

  /**
   * mapData() of the map behind an fd this process does not wrap (e.g. one just put into an
   * outer map); the fd stays the caller's.
   * @throws BpfError EINVAL when the map is not a BPF_F_MMAPABLE array.
   */
  static mapDataOfFd(fd: number): MappedWords {
    const info = BpfMap.infoOfFd(fd);
    if (info.typeName !== 'array' || (info.flags & BPF_F_MMAPABLE) === 0) throw bpfError('map mmap', `map '${info.name}'`, 'EINVAL', 'the map is not a BPF_F_MMAPABLE array');
    const bytes = Math.ceil(info.valueSize / 8) * 8 * info.maxEntries;
    return new MappedWords(native().mapMmap(fd, bytes, info.name), bytes, info.id);
  }

  /**
   * A mapping of the data of a BPF_F_MMAPABLE array kept until its close(): storeWords() and
   * readWords() without an mmap/munmap (and the page faults of a fresh mapping) per call. The
   * mapping holds its own reference on the map: the map (and its id) lives at least until the
   * mapping is closed, even after this BpfMap is closed.
   * @throws BpfError EINVAL when the map is not mmapable.
   */
  mapData(): MappedWords {
    if (!this.mmapable) throw bpfError('map mmap', this.label, 'EINVAL', 'the map is not a BPF_F_MMAPABLE array');
    return new MappedWords(native().mapMmap(this.fd, this.dataBytes, this.name), this.dataBytes, this.id);
  }

  /**
   * updateBatch() of `count` entries laid out back to back: keys[i] at i * keySize, values[i] at
   * i * valueBufferSize (no per-entry Buffer: a 1M-entry Maglev table is written ~4x faster).
   * @throws BpfError EINVAL before the syscall when a length is not count x the size.
   */
  updateBatchFlat(keys: Buffer, values: Buffer, count: number, flag: UpdateFlag = 'any'): void {
    if (!Number.isInteger(count) || count < 0 || keys.length !== count * this.keySize || values.length !== count * this.valueBufferSize) {
      throw bpfError('map update batch', this.label, 'EINVAL',
        `${count} entries need ${count * this.keySize} key bytes and ${count * this.valueBufferSize} value bytes, got ${keys.length} and ${values.length}`);
    }
    if (count === 0) return;
    native().mapUpdateBatch(this.fd, keys, values, count, UPDATE_FLAGS[flag], this.name);
  }

  /**
   * Pins the map at `pinPath` on bpffs.
   * @throws BpfError EEXIST when the path is taken, ENOENT when the directory is missing.
   */
  pin(pinPath: string): void {
    native().objPin(this.fd, pinPath, 'map');
  }
}

/**
 * A kept mapping of a BPF_F_MMAPABLE array's data (BpfMap.mapData()). The address stays in the
 * native addon: after close() no call can reach the memory (they throw EBADF).
 */
export class MappedWords {
  private open = true;
  constructor(private readonly handle: number, readonly bytes: number, readonly mapId: number) {}
  /** True until close(). */
  get isOpen(): boolean { return this.open; }
  /**
   * values[i] at u32 offset offsets[i], in index order, each one aligned 32-bit store (as
   * BpfMap.storeWords); every offset is checked before the first store.
   * @throws BpfError EINVAL (an offset beyond the data), EBADF after close()
   */
  storeWords(offsets: Uint32Array, values: Uint32Array): void {
    native().mapMmapStore(this.handle, offsets, values);
  }
  /**
   * Maglev slots written in place through this mapping (a table's ids) and `marks` (its marks
   * array; null: none): slot indices[k] takes words[4k..4k+3] = {backend, prev, epoch, seen}, in
   * the three steps native/maps.cc mapMmapStoreSlots describes; ids every `idStride` words, marks
   * every `markStride`; a moved slot's id gets `movedBit`. False, nothing stored, when a slot is
   * moved and there is no marks mapping.
   * @throws BpfError EINVAL (a slot beyond either mapping: nothing stored), EBADF after close()
   */
  storeSlots(marks: MappedWords | null, indices: Uint32Array, words: Uint32Array, idStride: number, markStride: number, movedBit: number): boolean {
    if (marks && !marks.open) throw bpfError('map mmap write', `mapping of map ${marks.mapId}`, 'EBADF', 'unmapped already');
    return native().mapMmapStoreSlots(this.handle, marks ? marks.handle : 0, indices, words, idStride, markStride, movedBit);
  }
  /** A copy of the data as u32 words. @throws BpfError EBADF after close() */
  readWords(): Uint32Array {
    const buf = native().mapMmapRead(this.handle);
    return new Uint32Array(buf.buffer, buf.byteOffset, buf.length / 4);
  }
  /** Unmaps (idempotent): the mapping's reference on the map goes. */
  close(): void {
    if (!this.open) return;
    this.open = false;
    native().mapMunmap(this.handle);
  }
}
