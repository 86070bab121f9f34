/**
 * IPv6 frames for data-plane tests and benchmarks (the IPv6 sibling of packet.ts): built exactly
 * as told (extension headers, payload length, hop limit, checksums default to the correct value),
 * and a from-scratch checksum check of a finished frame.
 */
import { ipv6ToBytes } from './abi';
import { buildEthernet, onesComplementSum, ETH_P_IPV6, type EthernetSpec } from './packet';

export const IPPROTO_ICMPV6 = 58;
export const NH_HOPOPTS = 0;
export const NH_ROUTING = 43;
export const NH_FRAGMENT = 44;
export const NH_ESP = 50;
export const NH_AH = 51;
export const NH_NONE = 59;
export const NH_DSTOPTS = 60;

/** One extension header: its type and, for options/routing/AH, its body after the 2 first bytes. */
export interface Ext6Spec {
  type: number;
  /** hop-by-hop / destination options / routing / AH: bytes after next-header and length (padded
   * to the header's unit); routing: [routing type, segments left, ...]. Default: zero padding. */
  body?: Buffer;
  /** fragment header: offset in 8-byte units, more-fragments flag, identification */
  fragOffset?: number; more?: boolean; id?: number;
}

export interface Ipv6Spec {
  src: string;
  dst: string;
  /** the upper-layer protocol (the last next header); default from tcp/udp/icmp6 */
  proto?: number;
  hopLimit?: number;       // default 64
  trafficClass?: number;
  flowLabel?: number;
  version?: number;        // default 6
  ext?: Ext6Spec[];
  payloadLength?: number;  // override (default: extension headers + upper layer)
}

export interface Tcp6Spec { sport: number; dport: number; seq?: number; ack?: number; flags?: number; payload?: Buffer; checksum?: number }
export interface Udp6Spec { sport: number; dport: number; payload?: Buffer; checksum?: number }
export interface Icmp6Spec { type: number; code?: number; rest?: number; payload?: Buffer; checksum?: number }

export interface Frame6Spec {
  eth?: EthernetSpec;
  ip6: Ipv6Spec;
  tcp?: Tcp6Spec;
  udp?: Udp6Spec;
  icmp6?: Icmp6Spec;
  payload?: Buffer;        // raw upper-layer bytes
  trailer?: Buffer;
  truncate?: number;
}

/** The pseudo-header sum (RFC 8200 8.1) as a 16-bit folded start value. */
export function pseudo6Sum(src: Buffer, dst: Buffer, nh: number, length: number): number {
  const p = Buffer.alloc(40);
  src.copy(p, 0);
  dst.copy(p, 16);
  p.writeUInt32BE(length, 32);
  p.writeUInt32BE(nh, 36);
  return onesComplementSum(p);
}

/** The upper-layer checksum of `segment` (checksum field zeroed by the caller or not: computed over what is there). */
export function l4Checksum6(src: Buffer, dst: Buffer, nh: number, segment: Buffer): number {
  return ~onesComplementSum(segment, pseudo6Sum(src, dst, nh, segment.length)) & 0xffff;
}

function extBytes(e: Ext6Spec, next: number): Buffer {
  if (e.type === NH_FRAGMENT) {
    const b = Buffer.alloc(8);
    b[0] = next;
    b.writeUInt16BE(((e.fragOffset ?? 0) << 3) | (e.more ? 1 : 0), 2);
    b.writeUInt32BE(e.id ?? 0x1234, 4);
    return b;
  }
  const unit = e.type === NH_AH ? 4 : 8;
  const body = e.body ?? Buffer.alloc(e.type === NH_AH ? 10 : 6);
  const total = Math.ceil((body.length + 2) / unit) * unit;
  const b = Buffer.alloc(Math.max(total, 8));
  b[0] = next;
  b[1] = e.type === NH_AH ? b.length / 4 - 2 : b.length / 8 - 1;
  body.copy(b, 2);
  return b;
}

/** The IPv6 packet (fixed header, extension headers, upper layer) of `spec`. */
export function buildIpv6(spec: Omit<Frame6Spec, 'eth' | 'trailer' | 'truncate'>): Buffer {
  const src = ipv6ToBytes(spec.ip6.src);
  const dst = ipv6ToBytes(spec.ip6.dst);
  let upper: Buffer;
  let proto: number;
  if (spec.tcp) {
    const t = spec.tcp;
    const payload = t.payload ?? Buffer.alloc(0);
    upper = Buffer.alloc(20 + payload.length);
    upper.writeUInt16BE(t.sport, 0); upper.writeUInt16BE(t.dport, 2);
    upper.writeUInt32BE(t.seq ?? 1, 4); upper.writeUInt32BE(t.ack ?? 0, 8);
    upper[12] = 5 << 4; upper[13] = t.flags ?? 0x02; upper.writeUInt16BE(0xffff, 14);
    payload.copy(upper, 20);
    proto = 6;
    upper.writeUInt16BE(t.checksum ?? l4Checksum6(src, dst, proto, upper), 16);
  } else if (spec.udp) {
    const u = spec.udp;
    const payload = u.payload ?? Buffer.alloc(0);
    upper = Buffer.alloc(8 + payload.length);
    upper.writeUInt16BE(u.sport, 0); upper.writeUInt16BE(u.dport, 2); upper.writeUInt16BE(upper.length, 4);
    payload.copy(upper, 8);
    proto = 17;
    const sum = l4Checksum6(src, dst, proto, upper);
    upper.writeUInt16BE(u.checksum ?? (sum === 0 ? 0xffff : sum), 6);
  } else if (spec.icmp6) {
    const c = spec.icmp6;
    const payload = c.payload ?? Buffer.alloc(0);
    upper = Buffer.alloc(8 + payload.length);
    upper[0] = c.type; upper[1] = c.code ?? 0; upper.writeUInt32BE((c.rest ?? 0) >>> 0, 4);
    payload.copy(upper, 8);
    proto = IPPROTO_ICMPV6;
    upper.writeUInt16BE(c.checksum ?? l4Checksum6(src, dst, proto, upper), 2);
  } else {
    upper = spec.payload ?? Buffer.alloc(0);
    proto = spec.ip6.proto ?? NH_NONE;
  }
  proto = spec.ip6.proto ?? proto;
  const exts = spec.ip6.ext ?? [];
  const extBufs = exts.map((e, i) => extBytes(e, i + 1 < exts.length ? exts[i + 1].type : proto));
  const body = Buffer.concat([...extBufs, upper]);
  const hdr = Buffer.alloc(40);
  hdr.writeUInt32BE((((spec.ip6.version ?? 6) & 0xf) << 28 | ((spec.ip6.trafficClass ?? 0) & 0xff) << 20 | ((spec.ip6.flowLabel ?? 0) & 0xfffff)) >>> 0, 0);
  hdr.writeUInt16BE(spec.ip6.payloadLength ?? body.length, 4);
  hdr[6] = exts.length ? exts[0].type : proto;
  hdr[7] = spec.ip6.hopLimit ?? 64;
  src.copy(hdr, 8);
  dst.copy(hdr, 24);
  return Buffer.concat([hdr, body]);
}

/** An Ethernet frame carrying the IPv6 packet of `spec`. */
export function buildFrame6(spec: Frame6Spec): Buffer {
  let frame = buildEthernet({ ...spec.eth, etherType: ETH_P_IPV6 }, buildIpv6(spec));
  if (spec.trailer) frame = Buffer.concat([frame, spec.trailer]);
  if (spec.truncate !== undefined) frame = frame.subarray(0, spec.truncate);
  return frame;
}

/**
 * What is wrong with the checksums of an IPv6 frame (untagged Ethernet), recomputed from scratch:
 * the TCP/UDP/ICMPv6 checksum of the upper layer after the extension headers, and of a quoted
 * packet inside an ICMPv6 error when its upper layer is wholly quoted. [] when all verify.
 */
export function checksumProblems6(frame: Buffer): string[] {
  const out: string[] = [];
  if (frame.length < 54 || frame.readUInt16BE(12) !== ETH_P_IPV6) return ['not an IPv6 frame'];
  const ip = frame.subarray(14);
  const len = ip.readUInt16BE(4);
  if (40 + len > ip.length) return ['payload length beyond the frame'];
  let nh = ip[6];
  let off = 40;
  for (let i = 0; i < 8 && [NH_HOPOPTS, NH_DSTOPTS, NH_ROUTING, NH_FRAGMENT, NH_AH].includes(nh); i++) {
    const l = nh === NH_FRAGMENT ? 8 : nh === NH_AH ? (ip[off + 1] + 2) * 4 : (ip[off + 1] + 1) * 8;
    nh = ip[off];
    off += l;
  }
  const upper = ip.subarray(off, 40 + len);
  const src = ip.subarray(8, 24);
  const dst = ip.subarray(24, 40);
  if (nh === 6 || nh === 17 || nh === IPPROTO_ICMPV6) {
    if (nh === 17 && upper.readUInt16BE(6) === 0) out.push('UDP checksum 0');
    else if (onesComplementSum(upper, pseudo6Sum(src, dst, nh, upper.length)) !== 0xffff) out.push(`${nh === 6 ? 'TCP' : nh === 17 ? 'UDP' : 'ICMPv6'} checksum`);
  }
  if (nh === IPPROTO_ICMPV6 && upper[0] < 128 && upper.length >= 48) {
    const inner = upper.subarray(8);
    const ilen = inner.readUInt16BE(4);
    const inh = inner[6];
    const seg = inner.subarray(40, 40 + ilen);
    if ((inh === 6 || inh === 17) && 40 + ilen <= inner.length && onesComplementSum(seg, pseudo6Sum(inner.subarray(8, 24), inner.subarray(24, 40), inh, seg.length)) !== 0xffff) {
      out.push('quoted L4 checksum');
    }
  }
  return out;
}
