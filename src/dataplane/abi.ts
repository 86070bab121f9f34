/**
 * Codecs for every struct and constant of bpf/lb_abi.h (the kernel/user ABI).
 *
 * Each struct is described once as a field table (C name, offset, size, kind); encode and
 * decode are driven by that table, and abi.test.ts compares the table with the BTF of
 * bpf/lb.o and the constants with the header text, so a drift fails the suite.
 * Byte order: `__be*` fields are network order (addresses as dotted quads, ports as numbers),
 * every other field is host order.
 */
import * as os from 'node:os';

const HOST_LE = os.endianness() === 'LE';

/** The LB_* constants of bpf/lb_abi.h (checked against the header by abi.test.ts). */
export const LB = {
  MAX_SERVICES: 256,
  MAX_BACKENDS: 4096,
  MAX_VIPS: 256,
  MAX_REVERSE: 16384,
  MAX_TX_PORTS: 64,
  MAX_FLOWS: 262144,
  FLOW_WAYS_BITS: 2,
  FLOW_WAYS: 4,
  FLOW_CHECK_MUL: 2654435761,
  VIP_FILTER_WORDS: 8,
  VIP_FILTER_MUL: 2654435761,
  MAGLEV_DEFAULT_SIZE: 65537,
  EVENTS_BYTES: 1 << 20,
  IF_SLOTS: 1024,
  MODE_NAT: 0,
  MODE_DSR: 1,
  FRAG_DROP: 0,
  FRAG_PASS: 1,
  BACKEND_F_ACTIVE: 1,
  BACKEND_F_DRAINING: 2,
  REASON_FORWARDED: 0,
  REASON_REVERSED: 1,
  REASON_ICMP_ECHO: 2,
  REASON_ICMP_ERROR: 3,
  REASON_NOT_IPV4: 4,
  REASON_VLAN: 5,
  REASON_NOT_VIP: 6,
  REASON_MALFORMED: 7,
  REASON_FRAGMENT: 8,
  REASON_NO_SERVICE: 9,
  REASON_NO_BACKEND: 10,
  REASON_TTL: 11,
  REASON_NO_NEIGH: 12,
  REASON_NO_ROUTE: 13,
  REASON_NO_TX_PORT: 14,
  REASON_ICMP_UNSUPPORTED: 15,
  REASON_OTHER_MAC: 16,
  REASON_MARTIAN: 17,
  REASON_BAD_CHECKSUM: 18,
  REASON_COUNT: 19,
  REASON_SLOTS: 32,
  ACTION_SLOTS: 8,
  VERDICT_SLOTS: 256,
} as const;

/** How a field's bytes map to a JS value. `ipv4` is a network-order __be32 address; `struct`
 * is a nested struct (or an array of them), decoded with its own codec. */
export type FieldKind = 'u8' | 'u16' | 'u32' | 'u64' | 'be16' | 'ipv4' | 'pad' | 'struct';

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

const KIND_SIZE: Record<Exclude<FieldKind, 'pad' | 'struct'>, number> = { u8: 1, u16: 2, u32: 4, u64: 8, be16: 2, ipv4: 4 };

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
    case 'pad': return 0;
  }
}

/**
 * Lays fields out in order with C alignment rules: `[name, kind]`, `[name, kind, count]` for
 * an array of scalars, `[name, 'pad', bytes]`, or `[name, codec]` / `[name, codec, count]` for
 * a nested struct / array of structs.
 */
function defineStruct<T>(cName: string, members: Array<[string, FieldKind | StructCodec<unknown>, number?]>): StructCodec<T> {
  const fields: FieldSpec[] = [];
  let offset = 0;
  let align = 1;
  for (const [c, kindOrCodec, extra] of members) {
    const codec = typeof kindOrCodec === 'string' ? undefined : kindOrCodec;
    const kind: FieldKind = codec ? 'struct' : (kindOrCodec as FieldKind);
    const scalar = codec || kind === 'pad' ? 0 : KIND_SIZE[kind as keyof typeof KIND_SIZE];
    const size = codec ? codec.size * (extra ?? 1) : kind === 'pad' ? (extra ?? 1) : scalar * (extra ?? 1);
    const fieldAlign = codec ? codec.align : kind === 'pad' ? 1 : scalar;
    offset = Math.ceil(offset / fieldAlign) * fieldAlign;
    align = Math.max(align, fieldAlign);
    const name = kind === 'pad' ? '' : c.replace(/_([a-z])/g, (_, ch: string) => ch.toUpperCase());
    fields.push({ c, name, kind, offset, size, ...(codec ? { codec } : {}), ...(kind !== 'pad' && extra !== undefined ? { count: extra } : {}) });
    offset += size;
  }
  const size = Math.ceil(offset / align) * align;
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

export interface LbServiceKey { vip: string; port: number; proto: number }
export interface LbService { id: number; tableSize: number; mode: number; flags: number }
export interface LbVip { services: number }
export interface LbBackend {
  ip: string; port: number; flags: number; mode: number; serviceId: number;
  /** the owner service's key */
  vip: string; vport: number; proto: number;
}
export interface LbReverseKey { ip: string; port: number; proto: number }
export interface LbReverse { vip: string; vport: number; serviceId: number; backendId: number }
export interface LbSettings { fragPolicy: number; sampleRate: number; flowCache: number; txRedirect: number; vipFilter: number[] }
export interface LbFlowKey { saddr: string; daddr: string; sport: number; dport: number; proto: number }
export interface LbFlowEntry { key: LbFlowKey; backendId: number; backendIp: string; check: number; referenced: number }
export interface LbFlowSet { way: LbFlowEntry[] }

export interface LbFlowStats { fwdPackets: number; fwdBytes: number; revPackets: number; revBytes: number }
export interface LbCounter { packets: number; bytes: number }
export interface LbEvent {
  tsNs: number; ifindex: number; pktLen: number; serviceId: number; backendId: number;
  saddr: string; daddr: string; sport: number; dport: number; proto: number; action: number; reason: number;
}

export const LbServiceKeyCodec = defineStruct<LbServiceKey>('lb_service_key',
  [['vip', 'ipv4'], ['port', 'be16'], ['proto', 'u8'], ['pad', 'pad']]);
export const LbServiceCodec = defineStruct<LbService>('lb_service',
  [['id', 'u32'], ['table_size', 'u32'], ['mode', 'u8'], ['flags', 'u8'], ['pad', 'pad', 2]]);
export const LbVipCodec = defineStruct<LbVip>('lb_vip', [['services', 'u32']]);
export const LbBackendCodec = defineStruct<LbBackend>('lb_backend',
  [['ip', 'ipv4'], ['port', 'be16'], ['flags', 'u8'], ['mode', 'u8'], ['service_id', 'u32'],
    ['vip', 'ipv4'], ['vport', 'be16'], ['proto', 'u8'], ['pad', 'pad']]);
export const LbReverseKeyCodec = defineStruct<LbReverseKey>('lb_reverse_key',
  [['ip', 'ipv4'], ['port', 'be16'], ['proto', 'u8'], ['pad', 'pad']]);
export const LbReverseCodec = defineStruct<LbReverse>('lb_reverse',
  [['vip', 'ipv4'], ['vport', 'be16'], ['pad', 'pad', 2], ['service_id', 'u32'], ['backend_id', 'u32']]);
export interface LbIfMac { ifindex: number; mac: number[] }
/** if_macs value: an attached interface's own MAC (slot = ifindex & (LB.IF_SLOTS - 1)). */
export const LbIfMacCodec = defineStruct<LbIfMac>('lb_if_mac', [['ifindex', 'u32'], ['mac', 'u8', 6], ['pad', 'pad', 2]]);
export const LbSettingsCodec = defineStruct<LbSettings>('lb_settings',
  [['frag_policy', 'u32'], ['sample_rate', 'u32'], ['flow_cache', 'u32'], ['tx_redirect', 'u32'], ['vip_filter', 'u32', LB.VIP_FILTER_WORDS]]);
export const LbFlowKeyCodec = defineStruct<LbFlowKey>('lb_flow_key',
  [['saddr', 'ipv4'], ['daddr', 'ipv4'], ['sport', 'be16'], ['dport', 'be16'], ['proto', 'u8'], ['pad', 'pad', 3]]);
export const LbFlowEntryCodec = defineStruct<LbFlowEntry>('lb_flow_entry',
  [['key', LbFlowKeyCodec as StructCodec<unknown>], ['backend_id', 'u32'], ['backend_ip', 'ipv4'], ['check', 'u32'], ['referenced', 'u32']]);
export const LbFlowSetCodec = defineStruct<LbFlowSet>('lb_flow_set',
  [['way', LbFlowEntryCodec as StructCodec<unknown>, LB.FLOW_WAYS]]);

export const LbFlowStatsCodec = defineStruct<LbFlowStats>('lb_flow_stats',
  [['fwd_packets', 'u64'], ['fwd_bytes', 'u64'], ['rev_packets', 'u64'], ['rev_bytes', 'u64']]);
export const LbCounterCodec = defineStruct<LbCounter>('lb_counter', [['packets', 'u64'], ['bytes', 'u64']]);
export const LbEventCodec = defineStruct<LbEvent>('lb_event', [
  ['ts_ns', 'u64'], ['ifindex', 'u32'], ['pkt_len', 'u32'], ['service_id', 'u32'], ['backend_id', 'u32'],
  ['saddr', 'ipv4'], ['daddr', 'ipv4'], ['sport', 'be16'], ['dport', 'be16'],
  ['proto', 'u8'], ['action', 'u8'], ['reason', 'u8'], ['pad', 'pad'],
]);

/** Every struct codec, keyed by its C name (the ABI test walks this list). */
export const STRUCT_CODECS: readonly StructCodec<unknown>[] = [
  LbServiceKeyCodec, LbServiceCodec, LbVipCodec, LbBackendCodec, LbReverseKeyCodec, LbReverseCodec,
  LbSettingsCodec, LbIfMacCodec, LbFlowKeyCodec, LbFlowEntryCodec, LbFlowSetCodec, LbFlowStatsCodec, LbCounterCodec, LbEventCodec,
] as readonly StructCodec<unknown>[];

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
