/**
 * Frame building, parsing and from-scratch checksums for data-plane tests and benchmarks.
 * Builders write exactly what they are told (arbitrary IHL, total length, fragment bits,
 * checksums), so tests can craft malformed packets; checksums default to the correct value.
 */
import { ipv6ToBytes as ip6ToBuffer, bytesToIpv6 as bufferToIp6 } from './address-text';

export const ETH_P_IP = 0x0800;
export const ETH_P_ARP = 0x0806;
export const ETH_P_IPV6 = 0x86dd;
export const ETH_P_8021Q = 0x8100;
export const ETH_P_8021AD = 0x88a8;
export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const ETH_HLEN = 14;

/** Parses a dotted-quad IPv4 address. Throws on anything else. */
export function ipToU32(ip: string): number {
  const parts = ip.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) {
    throw new Error(`invalid IPv4 address: ${JSON.stringify(ip)}`);
  }
  return parts.reduce((acc, p) => ((acc << 8) | Number(p)) >>> 0, 0);
}

export function u32ToIp(value: number): string {
  return [24, 16, 8, 0].map((s) => (value >>> s) & 0xff).join('.');
}

/** Parses "aa:bb:cc:dd:ee:ff". Throws on anything else. */
export function macToBuffer(mac: string): Buffer {
  if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(mac)) throw new Error(`invalid MAC address: ${JSON.stringify(mac)}`);
  return Buffer.from(mac.split(':').map((h) => parseInt(h, 16)));
}

export function bufferToMac(buf: Buffer): string {
  return [...buf.subarray(0, 6)].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

// ---- checksums (from scratch) ----------------------------------------------------------------

/** Ones'-complement sum of big-endian 16-bit words (odd length padded with a zero byte), folded. */
export function onesComplementSum(buf: Buffer, initial = 0): number {
  let sum = initial;
  for (let i = 0; i + 1 < buf.length; i += 2) sum += buf.readUInt16BE(i);
  if (buf.length % 2) sum += buf[buf.length - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/** The Internet checksum of `buf` (RFC 1071), i.e. the value to store in a zeroed field. */
export function internetChecksum(buf: Buffer, initial = 0): number {
  return ~onesComplementSum(buf, initial) & 0xffff;
}

function pseudoHeaderSum(src: number, dst: number, proto: number, length: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + proto + length;
}

/**
 * TCP/UDP checksum of `segment` (its checksum field zeroed or not: it is excluded).
 * @throws Error when the segment is shorter than its header (20 bytes TCP, 8 UDP).
 */
export function l4Checksum(src: number, dst: number, proto: number, segment: Buffer): number {
  const header = proto === IPPROTO_TCP ? 20 : 8;
  if (segment.length < header) throw new Error(`l4Checksum: ${segment.length}-byte segment is shorter than its ${header}-byte header`);
  const copy = Buffer.from(segment);
  const off = proto === IPPROTO_TCP ? 16 : 6;
  copy.writeUInt16BE(0, off);
  const sum = internetChecksum(copy, pseudoHeaderSum(src, dst, proto, segment.length));
  // UDP: a computed 0 is transmitted as 0xffff (0 means "no checksum").
  return proto === IPPROTO_UDP && sum === 0 ? 0xffff : sum;
}

/** The receiver's check: the segment including its checksum sums to 0xffff with the pseudo-header. */
export function l4ChecksumValid(src: number, dst: number, proto: number, segment: Buffer): boolean {
  return onesComplementSum(segment, pseudoHeaderSum(src, dst, proto, segment.length)) === 0xffff;
}

// ---- building ----------------------------------------------------------------------------------

export interface EthernetSpec {
  dst?: string;
  src?: string;
  etherType?: number;     // default IPv4
  vlan?: number;          // VLAN id: inserts a tag with tpid (default 0x8100)
  tpid?: number;
}

export interface Ipv4Spec {
  src: string;
  dst: string;
  proto: number;
  ttl?: number;           // default 64
  tos?: number;
  id?: number;
  df?: boolean;
  mf?: boolean;
  fragOffset?: number;    // in 8-byte units
  options?: Buffer;       // appended after the 20-byte header (a multiple of 4 unless ihl is forced)
  ihl?: number;           // override (default from options)
  totalLength?: number;   // override (default header + payload)
  checksum?: number;      // override (default correct)
}

export interface TcpSpec {
  sport: number; dport: number; seq?: number; ack?: number; flags?: number; window?: number;
  payload?: Buffer;
  checksum?: number;      // override (default correct, computed over the IP addresses)
}

export interface UdpSpec {
  sport: number; dport: number; payload?: Buffer;
  checksum?: number;      // override; 0 = "no checksum"
  length?: number;        // override of the UDP length field
}

export interface IcmpSpec {
  type: number; code?: number;
  rest?: number;          // the 4 bytes after the checksum (echo id/seq, MTU), big-endian
  payload?: Buffer;       // echo data, or the quoted datagram of an error
  checksum?: number;      // override
}

/** What to put in an IPv4 packet: one L4 kind or raw payload bytes. */
export interface Ipv4PacketSpec {
  ip: Ipv4Spec;
  tcp?: TcpSpec;
  udp?: UdpSpec;
  icmp?: IcmpSpec;
  payload?: Buffer;       // raw L4 bytes when no tcp/udp/icmp is given
}

export interface FrameSpec extends Ipv4PacketSpec {
  eth?: EthernetSpec;
  trailer?: Buffer;       // bytes after the IP datagram (Ethernet padding)
  truncate?: number;      // cut the finished frame to this many bytes
}

export const DEFAULT_SRC_MAC = '02:00:00:00:00:01';
export const DEFAULT_DST_MAC = '02:00:00:00:00:02';

/** Ethernet header (with an optional VLAN tag) in front of `payload`. */
export function buildEthernet(eth: EthernetSpec, payload: Buffer): Buffer {
  const parts = [macToBuffer(eth.dst ?? DEFAULT_DST_MAC), macToBuffer(eth.src ?? DEFAULT_SRC_MAC)];
  if (eth.vlan !== undefined) {
    const tag = Buffer.alloc(4);
    tag.writeUInt16BE(eth.tpid ?? ETH_P_8021Q, 0);
    tag.writeUInt16BE(eth.vlan & 0x0fff, 2);
    parts.push(tag);
  }
  const type = Buffer.alloc(2);
  type.writeUInt16BE(eth.etherType ?? ETH_P_IP, 0);
  parts.push(type, payload);
  return Buffer.concat(parts);
}

function buildL4(spec: Ipv4PacketSpec, src: number, dst: number): Buffer {
  if (spec.tcp) {
    const t = spec.tcp;
    const payload = t.payload ?? Buffer.alloc(0);
    const seg = Buffer.alloc(20 + payload.length);
    seg.writeUInt16BE(t.sport, 0);
    seg.writeUInt16BE(t.dport, 2);
    seg.writeUInt32BE((t.seq ?? 1) >>> 0, 4);
    seg.writeUInt32BE((t.ack ?? 0) >>> 0, 8);
    seg[12] = 5 << 4;
    seg[13] = t.flags ?? 0x02;
    seg.writeUInt16BE(t.window ?? 65535, 14);
    payload.copy(seg, 20);
    seg.writeUInt16BE(t.checksum ?? l4Checksum(src, dst, IPPROTO_TCP, seg), 16);
    return seg;
  }
  if (spec.udp) {
    const u = spec.udp;
    const payload = u.payload ?? Buffer.alloc(0);
    const seg = Buffer.alloc(8 + payload.length);
    seg.writeUInt16BE(u.sport, 0);
    seg.writeUInt16BE(u.dport, 2);
    seg.writeUInt16BE(u.length ?? seg.length, 4);
    payload.copy(seg, 8);
    seg.writeUInt16BE(u.checksum ?? l4Checksum(src, dst, IPPROTO_UDP, seg), 6);
    return seg;
  }
  if (spec.icmp) {
    const c = spec.icmp;
    const payload = c.payload ?? Buffer.alloc(0);
    const msg = Buffer.alloc(8 + payload.length);
    msg[0] = c.type;
    msg[1] = c.code ?? 0;
    msg.writeUInt32BE((c.rest ?? 0) >>> 0, 4);
    payload.copy(msg, 8);
    msg.writeUInt16BE(c.checksum ?? internetChecksum(msg), 2);
    return msg;
  }
  return spec.payload ?? Buffer.alloc(0);
}

/** An IPv4 datagram (no Ethernet header). Throws on invalid addresses. */
export function buildIpv4(spec: Ipv4PacketSpec): Buffer {
  const ip = spec.ip;
  const src = ipToU32(ip.src);
  const dst = ipToU32(ip.dst);
  const options = ip.options ?? Buffer.alloc(0);
  const l4 = buildL4(spec, src, dst);
  const header = Buffer.alloc(20 + options.length);
  header[0] = (4 << 4) | ((ip.ihl ?? (20 + options.length) / 4) & 0x0f);
  header[1] = ip.tos ?? 0;
  header.writeUInt16BE((ip.totalLength ?? header.length + l4.length) & 0xffff, 2);
  header.writeUInt16BE(ip.id ?? 0x1234, 4);
  const flags = (ip.df ? 0x4000 : 0) | (ip.mf ? 0x2000 : 0) | ((ip.fragOffset ?? 0) & 0x1fff);
  header.writeUInt16BE(flags, 6);
  header[8] = ip.ttl ?? 64;
  header[9] = ip.proto;
  header.writeUInt32BE(src, 12);
  header.writeUInt32BE(dst, 16);
  options.copy(header, 20);
  header.writeUInt16BE(ip.checksum ?? internetChecksum(header), 10);
  return Buffer.concat([header, l4]);
}

/** A whole Ethernet + IPv4 frame. Throws on invalid addresses. */
export function buildFrame(spec: FrameSpec): Buffer {
  const frame = buildEthernet(spec.eth ?? {}, Buffer.concat([buildIpv4(spec), spec.trailer ?? Buffer.alloc(0)]));
  return spec.truncate === undefined ? frame : frame.subarray(0, spec.truncate);
}

/** An ARP request "who has targetIp, tell senderIp". */
export function buildArpRequest(senderIp: string, targetIp: string, senderMac = DEFAULT_SRC_MAC): Buffer {
  const arp = Buffer.alloc(28);
  arp.writeUInt16BE(1, 0);          // Ethernet
  arp.writeUInt16BE(ETH_P_IP, 2);
  arp[4] = 6;
  arp[5] = 4;
  arp.writeUInt16BE(1, 6);          // request
  macToBuffer(senderMac).copy(arp, 8);
  arp.writeUInt32BE(ipToU32(senderIp), 14);
  arp.writeUInt32BE(ipToU32(targetIp), 24);
  return buildEthernet({ dst: 'ff:ff:ff:ff:ff:ff', src: senderMac, etherType: ETH_P_ARP }, arp);
}

/** An IPv6 UDP frame (the program passes it untouched; no real addresses needed). */
export function buildIpv6Udp(sport: number, dport: number, payload = Buffer.alloc(8)): Buffer {
  const ip6 = Buffer.alloc(40 + 8 + payload.length);
  ip6.writeUInt32BE(0x60000000, 0);
  ip6.writeUInt16BE(8 + payload.length, 4);
  ip6[6] = IPPROTO_UDP;
  ip6[7] = 64;
  ip6[8] = 0x20; ip6[9] = 0x01; ip6[10] = 0x0d; ip6[11] = 0xb8; ip6[23] = 1; // 2001:db8::1
  ip6[24] = 0x20; ip6[25] = 0x01; ip6[26] = 0x0d; ip6[27] = 0xb8; ip6[39] = 2; // 2001:db8::2
  ip6.writeUInt16BE(sport, 40);
  ip6.writeUInt16BE(dport, 42);
  ip6.writeUInt16BE(8 + payload.length, 44);
  payload.copy(ip6, 48);
  return buildEthernet({ etherType: ETH_P_IPV6 }, ip6);
}

// ---- parsing -------------------------------------------------------------------------------

export interface ParsedIpv4 {
  offset: number;         // of the IP header in the buffer
  ihl: number; tos: number; totalLength: number; id: number;
  df: boolean; mf: boolean; fragOffset: number;
  ttl: number; proto: number; checksum: number;
  src: string; dst: string; options: Buffer;
}
export interface ParsedPorts { offset: number; sport: number; dport: number; checksum: number }
export interface ParsedIcmp { offset: number; type: number; code: number; checksum: number; rest: number }

export interface ParsedFrame {
  dst: string; src: string;
  etherType: number;      // after any VLAN tag
  vlan?: number;
  ipv4?: ParsedIpv4;
  tcp?: ParsedPorts & { seq: number; ack: number; flags: number };
  udp?: ParsedPorts & { length: number };
  icmp?: ParsedIcmp;
  /** For ICMP errors: the quoted datagram's header and ports, when they are present. */
  quoted?: { ipv4: ParsedIpv4; ports?: ParsedPorts };
}

function parseIpv4At(buf: Buffer, off: number): ParsedIpv4 | undefined {
  if (buf.length < off + 20 || buf[off] >> 4 !== 4) return undefined;
  const ihl = buf[off] & 0x0f;
  const flags = buf.readUInt16BE(off + 6);
  return {
    offset: off, ihl, tos: buf[off + 1], totalLength: buf.readUInt16BE(off + 2), id: buf.readUInt16BE(off + 4),
    df: (flags & 0x4000) !== 0, mf: (flags & 0x2000) !== 0, fragOffset: flags & 0x1fff,
    ttl: buf[off + 8], proto: buf[off + 9], checksum: buf.readUInt16BE(off + 10),
    src: u32ToIp(buf.readUInt32BE(off + 12)), dst: u32ToIp(buf.readUInt32BE(off + 16)),
    options: Buffer.from(buf.subarray(off + 20, Math.min(buf.length, off + ihl * 4))),
  };
}

function parsePortsAt(buf: Buffer, off: number, proto: number): ParsedPorts | undefined {
  if (buf.length < off + 4) return undefined;
  const checkOff = off + (proto === IPPROTO_TCP ? 16 : 6);
  return {
    offset: off, sport: buf.readUInt16BE(off), dport: buf.readUInt16BE(off + 2),
    checksum: buf.length >= checkOff + 2 ? buf.readUInt16BE(checkOff) : -1,
  };
}

/** Parses as far as the bytes allow; absent layers stay undefined. Throws if shorter than 14 bytes. */
export function parseFrame(buf: Buffer): ParsedFrame {
  if (buf.length < ETH_HLEN) throw new Error(`frame too short: ${buf.length} bytes`);
  let off = 12;
  let etherType = buf.readUInt16BE(off);
  const out: ParsedFrame = { dst: bufferToMac(buf.subarray(0, 6)), src: bufferToMac(buf.subarray(6, 12)), etherType };
  if ((etherType === ETH_P_8021Q || etherType === ETH_P_8021AD) && buf.length >= 18) {
    out.vlan = buf.readUInt16BE(14) & 0x0fff;
    off += 4;
    etherType = buf.readUInt16BE(off);
    out.etherType = etherType;
  }
  off += 2;
  if (etherType !== ETH_P_IP) return out;
  const ip = parseIpv4At(buf, off);
  if (!ip) return out;
  out.ipv4 = ip;
  const l4 = off + ip.ihl * 4;
  if (ip.ihl < 5 || ip.fragOffset !== 0) return out;
  if (ip.proto === IPPROTO_TCP && buf.length >= l4 + 20) {
    out.tcp = { ...parsePortsAt(buf, l4, IPPROTO_TCP)!, seq: buf.readUInt32BE(l4 + 4), ack: buf.readUInt32BE(l4 + 8), flags: buf[l4 + 13] };
  } else if (ip.proto === IPPROTO_UDP && buf.length >= l4 + 8) {
    out.udp = { ...parsePortsAt(buf, l4, IPPROTO_UDP)!, length: buf.readUInt16BE(l4 + 4) };
  } else if (ip.proto === IPPROTO_ICMP && buf.length >= l4 + 8) {
    out.icmp = { offset: l4, type: buf[l4], code: buf[l4 + 1], checksum: buf.readUInt16BE(l4 + 2), rest: buf.readUInt32BE(l4 + 4) };
    if (out.icmp.type === 3 || out.icmp.type === 11) {
      const inner = parseIpv4At(buf, l4 + 8);
      if (inner) out.quoted = { ipv4: inner, ports: parsePortsAt(buf, l4 + 8 + inner.ihl * 4, inner.proto) };
    }
  }
  return out;
}

// ---- checksum verification -----------------------------------------------------------------

/**
 * Recomputes every checksum the frame carries (IPv4 header, TCP/UDP over the pseudo-header
 * unless the frame is a first fragment,
 * ICMP message, and for ICMP errors the quoted IP header and, when the quoted segment is
 * complete, the quoted TCP/UDP checksum) and returns a description of each that is wrong.
 * An empty list means every checksum is right. Throws if the frame is shorter than 14 bytes.
 */
export function checksumProblems(frame: Buffer): string[] {
  const parsed = parseFrame(frame);
  const ip = parsed.ipv4;
  if (!ip) return [];
  const problems: string[] = [];
  const header = frame.subarray(ip.offset, ip.offset + ip.ihl * 4);
  if (onesComplementSum(header) !== 0xffff) problems.push(`IPv4 header checksum 0x${ip.checksum.toString(16)} is wrong`);
  const end = Math.min(frame.length, ip.offset + ip.totalLength);
  const l4 = frame.subarray(ip.offset + ip.ihl * 4, end);
  const src = ipToU32(ip.src);
  const dst = ipToU32(ip.dst);
  // A first fragment (MF) holds only part of the segment its L4 checksum covers: not checkable.
  if ((parsed.tcp || parsed.udp) && !ip.mf) {
    const proto = parsed.tcp ? IPPROTO_TCP : IPPROTO_UDP;
    const got = (parsed.tcp ?? parsed.udp)!.checksum;
    if (l4.length < (proto === IPPROTO_TCP ? 20 : 8)) {
      problems.push(`${proto === IPPROTO_TCP ? 'TCP' : 'UDP'} segment of ${l4.length} bytes (per total length) is shorter than its header`);
    } else if (!(proto === IPPROTO_UDP && got === 0) && !l4ChecksumValid(src, dst, proto, l4)) {
      const want = l4Checksum(src, dst, proto, l4);
      problems.push(`${proto === IPPROTO_TCP ? 'TCP' : 'UDP'} checksum 0x${got.toString(16)}, expected 0x${want.toString(16)}`);
    }
  }
  if (parsed.icmp) {
    if (onesComplementSum(l4) !== 0xffff) problems.push(`ICMP checksum 0x${parsed.icmp.checksum.toString(16)} is wrong`);
    const q = parsed.quoted;
    if (q) {
      const qHeader = frame.subarray(q.ipv4.offset, q.ipv4.offset + q.ipv4.ihl * 4);
      if (qHeader.length === q.ipv4.ihl * 4 && onesComplementSum(qHeader) !== 0xffff) {
        problems.push(`quoted IPv4 header checksum 0x${q.ipv4.checksum.toString(16)} is wrong`);
      }
      const qStart = q.ipv4.offset + q.ipv4.ihl * 4;
      const qEnd = q.ipv4.offset + q.ipv4.totalLength;
      const isL4 = q.ipv4.proto === IPPROTO_TCP || q.ipv4.proto === IPPROTO_UDP;
      const qHeaderLen = q.ipv4.proto === IPPROTO_TCP ? 20 : 8;
      if (isL4 && q.ports && qEnd <= end && qEnd - qStart >= qHeaderLen && q.ports.checksum >= 0 && !(q.ipv4.proto === IPPROTO_UDP && q.ports.checksum === 0)) {
        const qSrc = ipToU32(q.ipv4.src);
        const qDst = ipToU32(q.ipv4.dst);
        const segment = frame.subarray(qStart, qEnd);
        const want = l4Checksum(qSrc, qDst, q.ipv4.proto, segment);
        if (!l4ChecksumValid(qSrc, qDst, q.ipv4.proto, segment)) problems.push(`quoted L4 checksum 0x${q.ports.checksum.toString(16)}, expected 0x${want.toString(16)}`);
      }
    }
  }
  return problems;
}

// ---- IPv6 (beside the IPv4 functions above, which stay as they are) ---------------------------

export const IPPROTO_HOPOPTS = 0;
export const IPPROTO_ROUTING = 43;
export const IPPROTO_FRAGMENT = 44;
export const IPPROTO_ESP = 50;
export const IPPROTO_AH = 51;
export const IPPROTO_ICMPV6 = 58;
export const IPPROTO_NONE = 59;
export const IPPROTO_DSTOPTS = 60;

/**
 * IPv6 text (any RFC 4291 form) -> its 16 bytes, and 16 bytes -> the canonical RFC 5952 text:
 * the one codec of address-text.ts under this module's names (its frame builders and parsers,
 * and the tests that craft frames, use them). ip6ToBuffer throws a reason naming the bad text.
 */
export { ipv6ToBytes as ip6ToBuffer, bytesToIpv6 as bufferToIp6 } from './address-text';

/** Sum of the IPv6 pseudo-header (RFC 8200 8.1): addresses, upper-layer length, next header. */
function pseudoHeaderSum6(src: Buffer, dst: Buffer, proto: number, length: number): number {
  let sum = 0;
  for (let i = 0; i < 16; i += 2) sum += src.readUInt16BE(i) + dst.readUInt16BE(i);
  return sum + Math.floor(length / 0x10000) + (length & 0xffff) + proto;
}

const checkOffset6 = (proto: number): number => (proto === IPPROTO_TCP ? 16 : proto === IPPROTO_UDP ? 6 : 2);
const headerLen6 = (proto: number): number => (proto === IPPROTO_TCP ? 20 : 8);

/**
 * TCP, UDP or ICMPv6 checksum of `segment` over the IPv6 pseudo-header (its checksum field is
 * excluded). UDP: a computed 0 is sent as 0xffff. @throws Error for another protocol or a segment
 * shorter than its header.
 */
export function l4Checksum6(src: Buffer, dst: Buffer, proto: number, segment: Buffer): number {
  if (proto !== IPPROTO_TCP && proto !== IPPROTO_UDP && proto !== IPPROTO_ICMPV6) throw new Error(`l4Checksum6: protocol ${proto} has no checksum here`);
  if (segment.length < headerLen6(proto)) throw new Error(`l4Checksum6: ${segment.length}-byte segment is shorter than its ${headerLen6(proto)}-byte header`);
  const copy = Buffer.from(segment);
  copy.writeUInt16BE(0, checkOffset6(proto));
  const sum = internetChecksum(copy, pseudoHeaderSum6(src, dst, proto, segment.length));
  return proto === IPPROTO_UDP && sum === 0 ? 0xffff : sum;
}

/** The receiver's check of a TCP/UDP/ICMPv6 segment over the IPv6 pseudo-header. */
export function l4ChecksumValid6(src: Buffer, dst: Buffer, proto: number, segment: Buffer): boolean {
  return onesComplementSum(segment, pseudoHeaderSum6(src, dst, proto, segment.length)) === 0xffff;
}

/**
 * One IPv6 extension header. The next-header byte is filled in from what follows. Hop-by-hop
 * (0), destination options (60): `body` after the 2 fixed bytes (padded with PadN to a multiple
 * of 8). Routing (43): type `routingType` (default 4, segment routing), `segmentsLeft`, `body`
 * after the 4 fixed bytes. Fragment (44): offset in 8-byte units, M flag, id. AH (51): `body`
 * (ICV etc.) after 12 fixed bytes. `raw` replaces the whole header (its first byte is still
 * set to the next header unless `keepNext`).
 */
export interface Ext6Spec {
  type: number;
  body?: Buffer;
  segmentsLeft?: number;
  routingType?: number;
  fragOffset?: number;
  more?: boolean;
  id?: number;
  raw?: Buffer;
  keepNext?: boolean;
  /** override of the length byte (hdr ext len) */
  lengthByte?: number;
}

export interface Ipv6Spec {
  src: string;
  dst: string;
  /** upper-layer protocol for raw payloads (default from tcp/udp/icmp6; 59 with no payload) */
  proto?: number;
  hopLimit?: number;      // default 64
  trafficClass?: number;
  flowLabel?: number;
  version?: number;       // override (default 6)
  payloadLength?: number; // override (default: extension headers + L4)
  /** override of the first next-header byte (default: the first extension header's type, or the protocol) */
  nextHeader?: number;
}

export interface Ipv6PacketSpec {
  ip: Ipv6Spec;
  ext?: Ext6Spec[];
  tcp?: TcpSpec;
  udp?: UdpSpec;
  icmp6?: IcmpSpec;
  payload?: Buffer;       // raw upper-layer bytes when no tcp/udp/icmp6 is given
}

export interface Frame6Spec extends Ipv6PacketSpec {
  eth?: EthernetSpec;
  trailer?: Buffer;
  truncate?: number;
}

function padOptions(body: Buffer, fixed: number, unit: number): Buffer {
  const total = Math.ceil((fixed + body.length) / unit) * unit;
  const pad = total - fixed - body.length;
  if (pad === 0) return body;
  // Pad1 for one byte, PadN otherwise (RFC 8200 4.2).
  const p = pad === 1 ? Buffer.from([0]) : Buffer.concat([Buffer.from([1, pad - 2]), Buffer.alloc(pad - 2)]);
  return Buffer.concat([body, p]);
}

function buildExt6(e: Ext6Spec, next: number): Buffer {
  let h: Buffer;
  if (e.raw) {
    h = Buffer.from(e.raw);
    if (!e.keepNext && h.length) h[0] = next;
    return h;
  }
  if (e.type === IPPROTO_FRAGMENT) {
    h = Buffer.alloc(8);
    h.writeUInt16BE((((e.fragOffset ?? 0) & 0x1fff) << 3) | (e.more ? 1 : 0), 2);
    h.writeUInt32BE((e.id ?? 0x12345678) >>> 0, 4);
  } else if (e.type === IPPROTO_ROUTING) {
    const body = padOptions(e.body ?? Buffer.alloc(4), 4, 8);
    h = Buffer.concat([Buffer.alloc(4), body]);
    h[2] = e.routingType ?? 4;
    h[3] = e.segmentsLeft ?? 0;
    h[1] = h.length / 8 - 1;
  } else if (e.type === IPPROTO_AH) {
    const body = padOptions(e.body ?? Buffer.alloc(12), 12, 8); // SPI, sequence, ICV
    h = Buffer.concat([Buffer.alloc(12), body]);
    h.writeUInt32BE(0x100, 4); // SPI
    h[1] = h.length / 4 - 2;
  } else {
    const body = padOptions(e.body ?? Buffer.alloc(0), 2, 8);
    h = Buffer.concat([Buffer.alloc(2), body]);
    h[1] = h.length / 8 - 1;
  }
  h[0] = next;
  if (e.lengthByte !== undefined) h[1] = e.lengthByte;
  return h;
}

function buildL4v6(spec: Ipv6PacketSpec, src: Buffer, dst: Buffer): { proto: number; bytes: Buffer } {
  if (spec.tcp || spec.udp) {
    // The v4 builder writes the same bytes; only the checksum differs (over the v6 pseudo-header).
    const proto = spec.tcp ? IPPROTO_TCP : IPPROTO_UDP;
    const given = spec.tcp ? spec.tcp.checksum : spec.udp!.checksum;
    const seg = buildL4(spec.tcp ? { ip: { src: '0.0.0.0', dst: '0.0.0.0', proto }, tcp: { ...spec.tcp, checksum: 0 } } : { ip: { src: '0.0.0.0', dst: '0.0.0.0', proto }, udp: { ...spec.udp!, checksum: 0 } }, 0, 0);
    seg.writeUInt16BE(given ?? l4Checksum6(src, dst, proto, seg), checkOffset6(proto));
    return { proto, bytes: seg };
  }
  if (spec.icmp6) {
    const msg = buildL4({ ip: { src: '0.0.0.0', dst: '0.0.0.0', proto: IPPROTO_ICMP }, icmp: { ...spec.icmp6, checksum: 0 } }, 0, 0);
    msg.writeUInt16BE(spec.icmp6.checksum ?? l4Checksum6(src, dst, IPPROTO_ICMPV6, msg), 2);
    return { proto: IPPROTO_ICMPV6, bytes: msg };
  }
  return { proto: spec.ip.proto ?? IPPROTO_NONE, bytes: spec.payload ?? Buffer.alloc(0) };
}

/** An IPv6 packet (no Ethernet header): fixed header, extension headers, upper layer. Throws on invalid addresses. */
export function buildIpv6(spec: Ipv6PacketSpec): Buffer {
  const ip = spec.ip;
  const src = ip6ToBuffer(ip.src);
  const dst = ip6ToBuffer(ip.dst);
  const l4 = buildL4v6(spec, src, dst);
  const exts = spec.ext ?? [];
  const parts = exts.map((e, i) => buildExt6(e, i + 1 < exts.length ? exts[i + 1].type : l4.proto));
  const payload = Buffer.concat([...parts, l4.bytes]);
  const h = Buffer.alloc(40);
  h.writeUInt32BE((((ip.version ?? 6) & 0xf) << 28 | ((ip.trafficClass ?? 0) & 0xff) << 20 | ((ip.flowLabel ?? 0) & 0xfffff)) >>> 0, 0);
  h.writeUInt16BE((ip.payloadLength ?? payload.length) & 0xffff, 4);
  h[6] = ip.nextHeader ?? (exts.length ? exts[0].type : l4.proto);
  h[7] = ip.hopLimit ?? 64;
  src.copy(h, 8);
  dst.copy(h, 24);
  return Buffer.concat([h, payload]);
}

/** A whole Ethernet + IPv6 frame. Throws on invalid addresses. */
export function buildFrame6(spec: Frame6Spec): Buffer {
  const frame = buildEthernet({ ...spec.eth, etherType: spec.eth?.etherType ?? ETH_P_IPV6 }, Buffer.concat([buildIpv6(spec), spec.trailer ?? Buffer.alloc(0)]));
  return spec.truncate === undefined ? frame : frame.subarray(0, spec.truncate);
}

export interface ParsedExt6 { type: number; offset: number; length: number; segmentsLeft?: number; fragOffset?: number; more?: boolean; id?: number }

export interface ParsedIpv6 {
  offset: number;         // of the IPv6 header in the buffer
  version: number; trafficClass: number; flowLabel: number;
  payloadLength: number; nextHeader: number; hopLimit: number;
  src: string; dst: string;
  /** the extension headers walked (as far as the bytes allow; at most 8) */
  ext: ParsedExt6[];
  /** the upper-layer protocol (the next header after the last extension header walked) and its offset */
  proto: number; l4Offset: number;
  /** the fragment header, if any */
  fragment?: ParsedExt6;
}

export interface ParsedFrame6 {
  dst: string; src: string; etherType: number;
  ipv6?: ParsedIpv6;
  tcp?: ParsedPorts & { seq: number; ack: number; flags: number };
  udp?: ParsedPorts & { length: number };
  icmp6?: ParsedIcmp;
  /** For ICMPv6 errors (types 1..4): the quoted packet's fixed header and ports, when present. */
  quoted?: { ipv6: ParsedIpv6; ports?: ParsedPorts };
}

const EXT6 = new Set([IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_FRAGMENT, IPPROTO_DSTOPTS, IPPROTO_AH]);

function parseIpv6At(buf: Buffer, off: number): ParsedIpv6 | undefined {
  if (buf.length < off + 40 || buf[off] >> 4 !== 6) return undefined;
  const w = buf.readUInt32BE(off);
  const out: ParsedIpv6 = {
    offset: off, version: 6, trafficClass: (w >>> 20) & 0xff, flowLabel: w & 0xfffff,
    payloadLength: buf.readUInt16BE(off + 4), nextHeader: buf[off + 6], hopLimit: buf[off + 7],
    src: bufferToIp6(buf.subarray(off + 8, off + 24)), dst: bufferToIp6(buf.subarray(off + 24, off + 40)),
    ext: [], proto: buf[off + 6], l4Offset: off + 40,
  };
  const end = Math.min(buf.length, off + 40 + out.payloadLength);
  let at = off + 40;
  let nh = out.nextHeader;
  while (EXT6.has(nh) && out.ext.length < 8 && at + 8 <= end) {
    const len = nh === IPPROTO_FRAGMENT ? 8 : nh === IPPROTO_AH ? (buf[at + 1] + 2) * 4 : (buf[at + 1] + 1) * 8;
    const e: ParsedExt6 = { type: nh, offset: at, length: len };
    if (nh === IPPROTO_ROUTING) e.segmentsLeft = buf[at + 3];
    if (nh === IPPROTO_FRAGMENT) {
      const fo = buf.readUInt16BE(at + 2);
      e.fragOffset = fo >> 3; e.more = (fo & 1) === 1; e.id = buf.readUInt32BE(at + 4);
      out.fragment = e;
    }
    out.ext.push(e);
    nh = buf[at];
    at += len;
  }
  out.proto = nh;
  out.l4Offset = at;
  return out;
}

/** Parses an Ethernet + IPv6 frame as far as the bytes allow. Throws if shorter than 14 bytes. */
export function parseFrame6(buf: Buffer): ParsedFrame6 {
  if (buf.length < ETH_HLEN) throw new Error(`frame too short: ${buf.length} bytes`);
  const out: ParsedFrame6 = { dst: bufferToMac(buf.subarray(0, 6)), src: bufferToMac(buf.subarray(6, 12)), etherType: buf.readUInt16BE(12) };
  if (out.etherType !== ETH_P_IPV6) return out;
  const ip = parseIpv6At(buf, ETH_HLEN);
  if (!ip) return out;
  out.ipv6 = ip;
  if (ip.fragment && ip.fragment.fragOffset !== 0) return out;
  const l4 = ip.l4Offset;
  if (ip.proto === IPPROTO_TCP && buf.length >= l4 + 20) {
    out.tcp = { ...parsePortsAt(buf, l4, IPPROTO_TCP)!, seq: buf.readUInt32BE(l4 + 4), ack: buf.readUInt32BE(l4 + 8), flags: buf[l4 + 13] };
  } else if (ip.proto === IPPROTO_UDP && buf.length >= l4 + 8) {
    out.udp = { ...parsePortsAt(buf, l4, IPPROTO_UDP)!, length: buf.readUInt16BE(l4 + 4) };
  } else if (ip.proto === IPPROTO_ICMPV6 && buf.length >= l4 + 8) {
    out.icmp6 = { offset: l4, type: buf[l4], code: buf[l4 + 1], checksum: buf.readUInt16BE(l4 + 2), rest: buf.readUInt32BE(l4 + 4) };
    if (out.icmp6.type >= 1 && out.icmp6.type <= 4) {
      const inner = parseIpv6At(buf, l4 + 8);
      if (inner) out.quoted = { ipv6: inner, ports: parsePortsAt(buf, inner.l4Offset, inner.proto) };
    }
  }
  return out;
}

/**
 * Recomputes every checksum an IPv6 frame carries (TCP/UDP/ICMPv6 over the v6 pseudo-header,
 * unless the packet is a fragment other than an atomic one; for ICMPv6 errors, a completely
 * quoted TCP/UDP segment's checksum over the quoted addresses) and describes each that is
 * wrong. UDP checksum 0 is wrong over IPv6 (RFC 8200 8.1). Not IPv6: []. Throws if shorter than 14 bytes.
 */
export function checksumProblems6(frame: Buffer): string[] {
  const parsed = parseFrame6(frame);
  const ip = parsed.ipv6;
  if (!ip) return [];
  const problems: string[] = [];
  const end = Math.min(frame.length, ip.offset + 40 + ip.payloadLength);
  const seg = frame.subarray(ip.l4Offset, end);
  const src = ip6ToBuffer(ip.src);
  const dst = ip6ToBuffer(ip.dst);
  const whole = !ip.fragment || (ip.fragment.fragOffset === 0 && !ip.fragment.more);
  const name = (p: number) => (p === IPPROTO_TCP ? 'TCP' : p === IPPROTO_UDP ? 'UDP' : 'ICMPv6');
  if ((parsed.tcp || parsed.udp || parsed.icmp6) && whole) {
    const proto = ip.proto;
    const got = parsed.tcp?.checksum ?? parsed.udp?.checksum ?? parsed.icmp6!.checksum;
    if (seg.length < headerLen6(proto)) problems.push(`${name(proto)} segment of ${seg.length} bytes (per payload length) is shorter than its header`);
    else if (proto === IPPROTO_UDP && got === 0) problems.push('UDP checksum 0 over IPv6');
    else if (!l4ChecksumValid6(src, dst, proto, seg)) problems.push(`${name(proto)} checksum 0x${got.toString(16)}, expected 0x${l4Checksum6(src, dst, proto, seg).toString(16)}`);
  }
  const q = parsed.quoted;
  if (q && (q.ipv6.proto === IPPROTO_TCP || q.ipv6.proto === IPPROTO_UDP) && q.ports && q.ports.checksum >= 0 && !q.ipv6.fragment) {
    const qEnd = q.ipv6.offset + 40 + q.ipv6.payloadLength;
    const qSeg = frame.subarray(q.ipv6.l4Offset, qEnd);
    if (qEnd <= end && qSeg.length >= headerLen6(q.ipv6.proto) && !(q.ipv6.proto === IPPROTO_UDP && q.ports.checksum === 0)) {
      const qs = ip6ToBuffer(q.ipv6.src); const qd = ip6ToBuffer(q.ipv6.dst);
      if (!l4ChecksumValid6(qs, qd, q.ipv6.proto, qSeg)) problems.push(`quoted ${name(q.ipv6.proto)} checksum 0x${q.ports.checksum.toString(16)}, expected 0x${l4Checksum6(qs, qd, q.ipv6.proto, qSeg).toString(16)}`);
    }
  }
  return problems;
}

/** checksumProblems() for IPv4 frames, checksumProblems6() for IPv6 frames. */
export function checksumProblemsAny(frame: Buffer): string[] {
  return frame.length >= ETH_HLEN && frame.readUInt16BE(12) === ETH_P_IPV6 ? checksumProblems6(frame) : checksumProblems(frame);
}
