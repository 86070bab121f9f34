/**
 * TypedMap<K, V>: a map of bpf/lb.o read and written in decoded values, with the key and value
 * codecs the generated table LB_MAPS names (lb.generated.ts). `lbMap(source, 'services')` is a
 * TypedMap<LbServiceKey, LbService>; the raw map underneath stays reachable (`raw`) for code
 * that compares bytes (the reconciler writes only what differs).
 */
import * as os from 'node:os';
import { LB_MAPS, type LbMapName, type LbMapTypes, type MapLayout, type MapSlot } from './lb.generated';
import { CODECS, bytesToIpv4, bytesToIpv6, ipv4ToBytes, ipv6ToBytes } from './abi';

const HOST_LE = os.endianness() === 'LE';

/** Encodes and decodes one key or value. */
export interface Codec<T> {
  readonly size: number;
  encode(value: T): Buffer;
  /** @throws RangeError when buf holds fewer than `size` bytes after offset */
  decode(buf: Buffer, offset?: number): T;
}

/** The raw operations of a bridge BpfMap that TypedMap uses. */
export interface RawMap {
  lookup(key: Buffer): Buffer | null;
  update(key: Buffer, value: Buffer, flag?: 'any' | 'noexist' | 'exist'): void;
  delete(key: Buffer): boolean | void;
  keys(): Iterable<Buffer>;
}

function need(buf: Buffer, at: number, size: number, what: string): void {
  if (buf.length - at < size) throw new RangeError(`typed map: ${what} needs ${size} bytes, got ${buf.length - at}`);
}

function uint(bits: 8 | 16 | 32, bigEndian: boolean, what: string): Codec<number> {
  const size = bits / 8;
  const max = 2 ** bits - 1;
  return {
    size,
    encode(value) {
      if (!Number.isInteger(value) || value < 0 || value > max) throw new Error(`typed map: ${what} ${String(value)} is not an integer in 0..${max}`);
      const buf = Buffer.alloc(size);
      buf.writeUIntBE(value, 0, size);
      if (!bigEndian && HOST_LE) buf.reverse();
      return buf;
    },
    decode(buf, at = 0) {
      need(buf, at, size, what);
      return !bigEndian && HOST_LE ? buf.readUIntLE(at, size) : buf.readUIntBE(at, size);
    },
  };
}

const U64: Codec<number> = {
  size: 8,
  encode(value) {
    if (!Number.isSafeInteger(value) || value < 0) throw new Error(`typed map: u64 ${String(value)} is not an integer in 0..2^53-1`);
    const buf = Buffer.alloc(8);
    if (HOST_LE) buf.writeBigUInt64LE(BigInt(value)); else buf.writeBigUInt64BE(BigInt(value));
    return buf;
  },
  decode(buf, at = 0) {
    need(buf, at, 8, 'u64');
    return Number(HOST_LE ? buf.readBigUInt64LE(at) : buf.readBigUInt64BE(at));
  },
};

const IPV4: Codec<string> = {
  size: 4,
  encode: (value) => ipv4ToBytes(value),
  decode(buf, at = 0) {
    need(buf, at, 4, 'ipv4');
    return bytesToIpv4(buf, at);
  },
};

const IPV6: Codec<string> = {
  size: 16,
  encode: (value) => ipv6ToBytes(value),
  decode(buf, at = 0) {
    need(buf, at, 16, 'ipv6');
    return bytesToIpv6(buf, at);
  },
};

function bytes(size: number, what: string): Codec<Uint8Array> {
  return {
    size,
    encode(value) {
      if (!(value instanceof Uint8Array) || value.length !== size) throw new Error(`typed map: ${what} must be ${size} bytes`);
      return Buffer.from(value);
    },
    decode(buf, at = 0) {
      need(buf, at, size, what);
      return Buffer.from(buf.subarray(at, at + size));
    },
  };
}

/** The codec of a generated key/value slot. @throws Error for a slot kind with no codec */
export function slotCodec(slot: MapSlot, what: string): Codec<unknown> {
  if (slot.count !== undefined) throw new Error(`typed map: ${what} is an array (no codec)`);
  switch (slot.kind) {
    case 'struct': return CODECS[slot.struct as keyof typeof CODECS] as Codec<unknown>;
    case 'u8': return uint(8, false, what) as Codec<unknown>;
    case 'u16': return uint(16, false, what) as Codec<unknown>;
    case 'u32': return uint(32, false, what) as Codec<unknown>;
    case 'be16': return uint(16, true, what) as Codec<unknown>;
    case 'u64': return U64 as Codec<unknown>;
    case 'ipv4': return IPV4 as Codec<unknown>;
    case 'ipv6': return IPV6 as Codec<unknown>;
    case 'bytes': return bytes(slot.size, what) as Codec<unknown>;
    default: throw new Error(`typed map: ${what} of kind ${slot.kind} has no codec`);
  }
}

export class TypedMap<K, V> {
  constructor(
    /** for messages */
    readonly name: string,
    readonly raw: RawMap,
    readonly keyCodec: Codec<K>,
    readonly valueCodec: Codec<V>,
  ) {}

  /** The value at `key`, or null when there is none. */
  get(key: K): V | null {
    const value = this.raw.lookup(this.keyCodec.encode(key));
    return value ? this.valueCodec.decode(value) : null;
  }

  set(key: K, value: V, flag: 'any' | 'noexist' | 'exist' = 'any'): void {
    // Both encoded before the write: a bad key or value changes nothing.
    const k = this.keyCodec.encode(key);
    const v = this.valueCodec.encode(value);
    this.raw.update(k, v, flag);
  }

  /**
   * Writes `value` only when the map does not already hold exactly its bytes (a second apply of
   * the same state writes nothing). @returns whether it wrote
   */
  setIfChanged(key: K, value: V): boolean {
    const k = this.keyCodec.encode(key);
    const v = this.valueCodec.encode(value);
    if (this.raw.lookup(k)?.equals(v)) return false;
    this.raw.update(k, v, 'any');
    return true;
  }

  /** @returns false when there was no such key (hash maps; arrays cannot delete) */
  delete(key: K): boolean {
    return this.raw.delete(this.keyCodec.encode(key)) !== false;
  }

  keys(): K[] {
    return [...this.raw.keys()].map((k) => this.keyCodec.decode(k));
  }

  /** Every [key, value] present (a key deleted meanwhile is skipped). */
  entries(): Array<[K, V]> {
    const out: Array<[K, V]> = [];
    for (const k of this.raw.keys()) {
      const v = this.raw.lookup(k);
      if (v) out.push([this.keyCodec.decode(k), this.valueCodec.decode(v)]);
    }
    return out;
  }
}

export type LbTypedMap<N extends LbMapName> = TypedMap<LbMapTypes[N]['key'], LbMapTypes[N]['value']>;

/**
 * The map `name` of bpf/lb.o over `raw` (a BpfMap, or anything with its lookup/update/delete/keys),
 * typed by the generated table. Per-CPU maps and maps without key or value (the ring buffer) are
 * refused: their values are per-CPU arrays (decodePerCpuSum) or records (LbEventCodec).
 * @throws Error naming the map when it is not a plain keyed map of lb.o
 */
export function typedLbMap<N extends LbMapName>(name: N, raw: RawMap): LbTypedMap<N> {
  const layout = (LB_MAPS as Record<string, MapLayout>)[name];
  if (!layout) throw new Error(`typed map: ${String(name)} is not a map of bpf/lb.o`);
  if (layout.perCpu) throw new Error(`typed map: ${name} is per-CPU (read it with decodePerCpuSum)`);
  if (!layout.key || !layout.value) throw new Error(`typed map: ${name} (${layout.type}) has no key/value`);
  return new TypedMap(name, raw, slotCodec(layout.key, `${name} key`), slotCodec(layout.value, `${name} value`)) as LbTypedMap<N>;
}

/** typedLbMap over `source.map(name)` (a Dataplane, a BpfObject, the test target). */
export function lbMap<N extends LbMapName>(source: { map(name: NoInfer<N>): RawMap }, name: N): LbTypedMap<N> {
  return typedLbMap(name, source.map(name));
}
