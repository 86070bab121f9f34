/**
 * Codecs for every struct and constant of bpf/lb_abi.h (the kernel/user ABI).
 *
 * The layouts (offsets, sizes, field kinds) and the LB_* constants are generated from the BTF
 * of bpf/lb.o and the header by scripts/gen-abi.mjs into lb.generated.ts; this module only
 * turns each layout into an encode/decode pair. lb-generated.test.ts regenerates the file and
 * fails when it differs, abi.test.ts compares the codecs with the BTF through libbpf.
 * Byte order: `__be*` fields are network order (addresses as dotted quads, ports as numbers),
 * lb_in6 fields are 16 network-order bytes (canonical RFC 5952 text; encoded from any valid
 * RFC 4291 text form), every other field is host order.
 */
import * as os from 'node:os';
import {
  LB, LB_LAYOUTS, type FieldKind, type LbStructName, type LbStructs, type StructLayout,
} from './lb.generated';
import { ipv6ToBytes, bytesToIpv6 } from './address-text';

const HOST_LE = os.endianness() === 'LE';

/** The LB_* constants of bpf/lb_abi.h (generated; checked against the header by abi.test.ts). */
export { LB };
export type { FieldKind };
export type {
  LbServiceKey, LbService, LbVip, LbBackend, LbReverseKey, LbReverse, LbIfMac, LbSettings, LbFlowKey,
  LbFlowEntry, LbFlowSet, LbFlowStats, LbCounter, LbEvent,
  LbService6Key, LbService6Slot, LbBackend6, LbReverse6Key, LbReverse6, LbFlowKey6, LbFlowEntry6, LbFlowSet6,
} from './lb.generated';

export interface FieldSpec {
  /** member name in lb_abi.h */
  c: string;
  /** property name in the decoded object ('' for padding) */
  name: string;
  kind: FieldKind;
  offset: number;
  size: number;
  /** kind 'struct': the member's codec */
  codec?: StructCodec<unknown>;
  /** element count when the member is an array (of structs or of scalars) */
  count?: number;
}

export interface StructCodec<T> {
  /** struct name in lb_abi.h, e.g. 'lb_service' */
  cName: string;
  size: number;
  /** C alignment of the struct (its widest scalar member) */
  align: number;
  fields: readonly FieldSpec[];
  encode(value: T): Buffer;
  /** @throws RangeError when buf holds fewer than `size` bytes after offset */
  decode(buf: Buffer, offset?: number): T;
}

/** Dotted quad -> 4 network-order bytes. @throws Error naming the bad address */
export function ipv4ToBytes(address: string): Buffer {
  const parts = address.split('.');
  const octets = parts.map((p) => (/^\d{1,3}$/.test(p) ? Number(p) : NaN));
  if (parts.length !== 4 || octets.some((o) => !(o >= 0 && o <= 255))) {
    throw new Error(`abi: "${address}" is not an IPv4 dotted quad`);
  }
  return Buffer.from(octets);
}

export function bytesToIpv4(buf: Buffer, offset = 0): string {
  return `${buf[offset]}.${buf[offset + 1]}.${buf[offset + 2]}.${buf[offset + 3]}`;
}

/**
 * lb_in6 text <-> bytes: the one IPv6 codec (address-text.ts, also behind src/domain/address.ts).
 * ipv6ToBytes takes any RFC 4291 text form and throws a one-line reason naming the bad text;
 * bytesToIpv6(buf, offset) gives the canonical RFC 5952 text.
 */
export { ipv6ToBytes, bytesToIpv6 } from './address-text';

/** Any valid IPv6 text -> its canonical form. @throws Error naming the bad address */
export function canonicalIpv6(address: string): string {
  return bytesToIpv6(ipv6ToBytes(address));
}

function checkInt(value: unknown, bits: number, field: string): number {
  const max = 2 ** bits - 1;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
    throw new Error(`abi: ${field} = ${String(value)} is not an integer in 0..${max}`);
  }
  return value;
}

function writeField(buf: Buffer, f: FieldSpec, value: unknown, where: string): void {
  const label = `${where}.${f.c}`;
  if (f.count !== undefined && f.kind !== 'struct') {
    if (!Array.isArray(value) || value.length !== f.count) throw new Error(`abi: ${label} must be an array of ${f.count}`);
    const one = f.size / f.count;
    value.forEach((v, i) => writeField(buf, { ...f, count: undefined, offset: f.offset + i * one, size: one }, v, where));
    return;
  }
  switch (f.kind) {
    case 'pad': return;
    case 'struct': {
      const codec = f.codec!;
      const items = f.count === undefined ? [value] : value;
      if (!Array.isArray(items) || items.length !== (f.count ?? 1)) {
        throw new Error(`abi: ${label} must be ${f.count === undefined ? `a ${codec.cName}` : `an array of ${f.count} ${codec.cName}`}`);
      }
      items.forEach((item, i) => codec.encode(item).copy(buf, f.offset + i * codec.size));
      return;
    }
    case 'u8': buf.writeUInt8(checkInt(value, 8, label), f.offset); return;
    case 'u16':
      if (HOST_LE) buf.writeUInt16LE(checkInt(value, 16, label), f.offset);
      else buf.writeUInt16BE(checkInt(value, 16, label), f.offset);
      return;
    case 'u32':
      if (HOST_LE) buf.writeUInt32LE(checkInt(value, 32, label), f.offset);
      else buf.writeUInt32BE(checkInt(value, 32, label), f.offset);
      return;
    case 'u64': {
      const v = BigInt(checkInt(value, 53, label));
      if (HOST_LE) buf.writeBigUInt64LE(v, f.offset);
      else buf.writeBigUInt64BE(v, f.offset);
      return;
    }
    case 'be16': buf.writeUInt16BE(checkInt(value, 16, label), f.offset); return;
    case 'ipv4':
      if (typeof value !== 'string') throw new Error(`abi: ${label} must be a dotted quad string`);
      ipv4ToBytes(value).copy(buf, f.offset);
      return;
    case 'ipv6':
      if (typeof value !== 'string') throw new Error(`abi: ${label} must be an IPv6 address string`);
      ipv6ToBytes(value).copy(buf, f.offset);
      return;
  }
}

function readField(buf: Buffer, at: number, f: FieldSpec): unknown {
  if (f.count !== undefined && f.kind !== 'struct') {
    const one = f.size / f.count;
    return Array.from({ length: f.count }, (_, i) => readField(buf, at + i * one, { ...f, count: undefined, size: one }));
  }
  switch (f.kind) {
    case 'struct': {
      const codec = f.codec!;
      if (f.count === undefined) return codec.decode(buf, at);
      return Array.from({ length: f.count }, (_, i) => codec.decode(buf, at + i * codec.size));
    }
    case 'u8': return buf.readUInt8(at);
    case 'u16': return HOST_LE ? buf.readUInt16LE(at) : buf.readUInt16BE(at);
    case 'u32': return HOST_LE ? buf.readUInt32LE(at) : buf.readUInt32BE(at);
    // Counters stay far below 2^53 in practice; a number keeps the API JSON-friendly.
    case 'u64': return Number(HOST_LE ? buf.readBigUInt64LE(at) : buf.readBigUInt64BE(at));
    case 'be16': return buf.readUInt16BE(at);
    case 'ipv4': return bytesToIpv4(buf, at);
    case 'ipv6': return bytesToIpv6(buf, at);
    case 'pad': return 0;
  }
}

/** The codec of one generated layout; nested structs through `codecOf`. */
function codecFromLayout<T>(layout: StructLayout, codecOf: (cName: string) => StructCodec<unknown>): StructCodec<T> {
  const { cName, size, align } = layout;
  const fields: FieldSpec[] = layout.fields.map((f) => ({
    c: f.c, name: f.name, kind: f.kind, offset: f.offset, size: f.size,
    ...(f.struct !== undefined ? { codec: codecOf(f.struct) } : {}),
    ...(f.count !== undefined ? { count: f.count } : {}),
  }));
  return {
    cName,
    size,
    align,
    fields,
    encode(value: T): Buffer {
      const buf = Buffer.alloc(size);
      const record = value as unknown as Record<string, unknown>;
      for (const f of fields) if (f.kind !== 'pad') writeField(buf, f, record[f.name], cName);
      return buf;
    },
    decode(buf: Buffer, at = 0): T {
      if (buf.length - at < size) {
        throw new RangeError(`abi: ${cName} needs ${size} bytes, got ${buf.length - at}`);
      }
      const out: Record<string, unknown> = {};
      for (const f of fields) if (f.kind !== 'pad') out[f.name] = readField(buf, at + f.offset, f);
      return out as T;
    },
  };
}

/** Every struct codec by C name, built in header order (a nested struct is declared before use). */
export const CODECS = (() => {
  const out = new Map<string, StructCodec<unknown>>();
  const codecOf = (name: string): StructCodec<unknown> => {
    const c = out.get(name);
    if (!c) throw new Error(`abi: struct ${name} is used before it is declared`);
    return c;
  };
  for (const layout of Object.values(LB_LAYOUTS) as StructLayout[]) out.set(layout.cName, codecFromLayout(layout, codecOf));
  return Object.fromEntries(out) as { [N in LbStructName]: StructCodec<LbStructs[N]> };
})();

export const LbServiceKeyCodec = CODECS.lb_service_key;
export const LbServiceCodec = CODECS.lb_service;
export const LbServiceSlotCodec = CODECS.lb_service_slot;
export const LbVipCodec = CODECS.lb_vip;
export const LbBackendCodec = CODECS.lb_backend;
export const LbReverseKeyCodec = CODECS.lb_reverse_key;
export const LbReverseCodec = CODECS.lb_reverse;
/** if_macs value: an attached interface's own MAC (slot = ifindex & (LB.IF_SLOTS - 1)). */
export const LbIfMacCodec = CODECS.lb_if_mac;
export const LbSettingsCodec = CODECS.lb_settings;
export const LbFlowKeyCodec = CODECS.lb_flow_key;
export const LbFlowEntryCodec = CODECS.lb_flow_entry;
export const LbFlowSetCodec = CODECS.lb_flow_set;
export const LbFlowStatsCodec = CODECS.lb_flow_stats;
export const LbCounterCodec = CODECS.lb_counter;
export const LbRetiredStatsCodec = CODECS.lb_retired_stats;
export const LbEventCodec = CODECS.lb_event;
export const LbService6KeyCodec = CODECS.lb_service6_key;
export const LbService6SlotCodec = CODECS.lb_service6_slot;
export const LbBackend6Codec = CODECS.lb_backend6;
export const LbReverse6KeyCodec = CODECS.lb_reverse6_key;
export const LbReverse6Codec = CODECS.lb_reverse6;
export const LbFlowKey6Codec = CODECS.lb_flow_key6;
export const LbFlowEntry6Codec = CODECS.lb_flow_entry6;
export const LbFlowSet6Codec = CODECS.lb_flow_set6;

/** Every struct codec of the header (the ABI test walks this list). */
export const STRUCT_CODECS: readonly StructCodec<unknown>[] = Object.values(CODECS) as StructCodec<unknown>[];

export const LB_SERVICE_KEY_SIZE = LbServiceKeyCodec.size;
export const LB_SERVICE_SIZE = LbServiceCodec.size;
export const LB_VIP_SIZE = LbVipCodec.size;
export const LB_BACKEND_SIZE = LbBackendCodec.size;
export const LB_REVERSE_KEY_SIZE = LbReverseKeyCodec.size;
export const LB_REVERSE_SIZE = LbReverseCodec.size;
export const LB_SETTINGS_SIZE = LbSettingsCodec.size;
export const LB_FLOW_KEY_SIZE = LbFlowKeyCodec.size;
export const LB_FLOW_SET_SIZE = LbFlowSetCodec.size;
export const LB_FLOW_STATS_SIZE = LbFlowStatsCodec.size;
export const LB_COUNTER_SIZE = LbCounterCodec.size;
export const LB_EVENT_SIZE = LbEventCodec.size;

/** Host-order u32 (array indexes, ids, ifindexes). */
export function encodeU32(value: number): Buffer {
  const buf = Buffer.alloc(4);
  if (HOST_LE) buf.writeUInt32LE(checkInt(value, 32, 'u32'), 0);
  else buf.writeUInt32BE(checkInt(value, 32, 'u32'), 0);
  return buf;
}

export function decodeU32(buf: Buffer, offset = 0): number {
  return HOST_LE ? buf.readUInt32LE(offset) : buf.readUInt32BE(offset);
}

/** The vips map key: a __be32 address. */
export function encodeIpv4Key(address: string): Buffer {
  return ipv4ToBytes(address);
}

/** The vips6 map key: an lb_in6 address. */
export function encodeIpv6Key(address: string): Buffer {
  return ipv6ToBytes(address);
}

/**
 * Sums a per-CPU value (as the kernel returns it: one slot per possible CPU, each
 * round_up(size, 8) bytes) field by field.
 * @throws RangeError when buf is not a whole number of slots
 */
export function decodePerCpuSum<T>(codec: StructCodec<T>, buf: Buffer, cpus?: number): T {
  const stride = Math.ceil(codec.size / 8) * 8;
  const count = cpus ?? buf.length / stride;
  if (!Number.isInteger(count) || count * stride > buf.length) {
    throw new RangeError(`abi: per-CPU ${codec.cName} buffer of ${buf.length} bytes is not ${stride}-byte slots`);
  }
  const sum: Record<string, number> = {};
  for (let cpu = 0; cpu < count; cpu++) {
    const one = codec.decode(buf, cpu * stride) as unknown as Record<string, number>;
    for (const [k, v] of Object.entries(one)) sum[k] = (sum[k] ?? 0) + v;
  }
  return sum as unknown as T;
}

/** Builds a per-CPU value that holds `value` on every one of `cpus` CPUs (map writes). */
export function encodePerCpu<T>(codec: StructCodec<T>, value: T, cpus: number): Buffer {
  const stride = Math.ceil(codec.size / 8) * 8;
  const buf = Buffer.alloc(stride * cpus);
  const one = codec.encode(value);
  for (let cpu = 0; cpu < cpus; cpu++) one.copy(buf, cpu * stride);
  return buf;
}
