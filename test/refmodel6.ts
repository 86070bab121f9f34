/**
 * The IPv6 half of the reference model (test/refmodel.ts runs IPv6 frames through here when its
 * state has a `v6` part): the packet path policy of /work/wt/notes/V6.md ("Packet path policy",
 * "Hashing") as plain TypeScript, byte for byte as the program should leave each frame. Same
 * structure as the IPv4 model: parse, classify, NAT66 / DSR / reverse NAT / ICMPv6, forward.
 */
import { jhash2, flowCacheHash6 } from '../src/dataplane/jhash';
import {
  REASON, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT, MODE_DSR, BACKEND_ACTIVE,
  type ModelState, type ModelResult, type FibResult, type ReasonName, type ModelMark, type FlowCacheModel,
} from './refmodel';

export interface ModelService6 { id: number; vip: Buffer; port: number; proto: number; tableSize: number; mode: number }
export interface ModelBackend6 { id: number; ip: Buffer; port: number; flags: number; serviceId: number }
export interface ModelReverse6 { ip: Buffer; port: number; proto: number; vip: Buffer; vport: number; serviceId: number; backendId: number }

/** The IPv6 maps (services6, vips6, backends6, reverse6, reverse_frags6) and the AF_INET6 FIB. */
export interface ModelState6 {
  services: ModelService6[];
  /** vips6, as hex strings of the 16 address bytes */
  vips: Set<string>;
  backends: Map<number, ModelBackend6>;
  reverse: ModelReverse6[];
  reverseFrags: ModelReverse6[];
  fib: (dst: Buffer, ingressIfindex: number) => FibResult;
  /** the flows6 map (the flows rules; keys flowKey6()), used in moved slots with settings.flowCache */
  flows: FlowCacheModel;
}

/** The flows6 cache key of an IPv6 5-tuple. */
export function flowKey6(saddr: Buffer, daddr: Buffer, sport: number, dport: number, proto: number): string {
  return `${saddr.toString('hex')}:${daddr.toString('hex')}:${sport}:${dport}:${proto}`;
}

/** Reasons by name, including the ones the v6 ABI adds or renames (numbers per V6.md). */
export type Reason6 = ReasonName | 'not_ip' | 'ext_header';
/** (Looked up when used: refmodel.ts and this file import each other.) */
export function reasonNumber(name: Reason6): number {
  const r = REASON as unknown as Record<string, number | undefined>;
  if (name === 'not_ip') return r.not_ip ?? r.not_ipv4 ?? 4;
  if (name === 'ext_header') return r.ext_header ?? 19;
  return r[name]!;
}

const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;
const IPPROTO_ICMPV6 = 58;
const EXT_HEADERS = new Set([0, 43, 44, 51, 60]);
/** At most this many extension headers are walked (V6.md). */
export const MAX_EXT_HEADERS = 4;

// ---- hashing (V6.md "Hashing") ----------------------------------------------------------------

/** fold6: the XOR of the address's four 32-bit words, each in host order. */
export function fold6(a: Buffer): number {
  return (a.readUInt32BE(0) ^ a.readUInt32BE(4) ^ a.readUInt32BE(8) ^ a.readUInt32BE(12)) >>> 0;
}

/** The Maglev flow hash of an IPv6 flow (jhash_3words with the 0x60000000 seed tweak). */
export function flowHash6(saddr: Buffer, daddr: Buffer, sport: number, dport: number, proto: number, seed: number): number {
  if (proto === IPPROTO_TCP || proto === IPPROTO_UDP) return jhash2([fold6(saddr), fold6(daddr), ((sport << 16) | dport) >>> 0], (seed ^ proto ^ 0x60000000) >>> 0);
  return jhash2([fold6(saddr), fold6(daddr), proto], (seed ^ 0x60000000) >>> 0);
}

// ---- checksum arithmetic (as the program's csum.h) -------------------------------------------

function fold(sum: number): number {
  sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}
const diff16 = (acc: number, from: number, to: number): number => acc + (~from & 0xffff) + to;
function diffAddr(acc: number, from: Buffer, to: Buffer): number {
  for (let i = 0; i < 16; i += 2) acc = diff16(acc, from.readUInt16BE(i), to.readUInt16BE(i));
  return acc;
}
const apply = (check: number, diff: number): number => ~fold((~check & 0xffff) + diff) & 0xffff;
const applyUdp = (check: number, diff: number): number => {
  if (check === 0) return 0;
  const out = apply(check, diff);
  return out === 0 ? 0xffff : out;
};
function sum16(buf: Buffer, initial = 0): number {
  let sum = initial;
  for (let i = 0; i + 1 < buf.length; i += 2) sum += buf.readUInt16BE(i);
  if (buf.length % 2) sum += buf[buf.length - 1] << 8;
  return fold(fold(sum));
}
function pseudoSum(src: Buffer, dst: Buffer, proto: number, length: number): number {
  let sum = 0;
  for (let i = 0; i < 16; i += 2) sum += src.readUInt16BE(i) + dst.readUInt16BE(i);
  return sum + Math.floor(length / 0x10000) + (length & 0xffff) + proto;
}

/** ::, ::1, ff00::/8, fe80::/10, ::ffff:0:0/96. */
export function martianAddr6(a: Buffer): boolean {
  if (a[0] === 0xff) return true;
  if (a[0] === 0xfe && (a[1] & 0xc0) === 0x80) return true;
  for (let i = 0; i < 10; i++) if (a[i] !== 0) return false;
  if (a[10] === 0xff && a[11] === 0xff) return true;              // v4-mapped
  if (a[10] !== 0 || a[11] !== 0 || a[12] !== 0 || a[13] !== 0 || a[14] !== 0) return false;
  return a[15] === 0 || a[15] === 1;                               // :: and ::1
}

const hex = (b: Buffer): string => b.toString('hex');

/** Event fields of an IPv6 verdict (beside ModelResult's IPv4 ones). */
export interface ModelResult6Fields { family: 4 | 6; saddr6: Buffer; daddr6: Buffer }

class Run6 {
  r: ModelResult & ModelResult6Fields;
  readonly v6: ModelState6;
  ip = 14;
  l4 = 0;
  l3end = 0;
  payloadLen = 0;
  hasPorts = false;
  saddr = Buffer.alloc(16);
  daddr = Buffer.alloc(16);

  constructor(readonly st: ModelState, readonly f: Buffer, readonly ingress: number) {
    this.v6 = st.v6!;
    this.r = { action: 0, reason: 0, frame: f, serviceId: 0, backendId: 0, saddr: 0, daddr: 0, sport: 0, dport: 0, proto: 0, family: 6, saddr6: Buffer.alloc(16), daddr6: Buffer.alloc(16) };
  }

  verdict(action: number, reason: Reason6): number {
    this.r.reason = reasonNumber(reason);
    return action;
  }

  process(): number {
    const f = this.f;
    const end = f.length;
    const ownMac = this.st.ifMacs.get(this.ingress);
    if (ownMac && !ownMac.equals(f.subarray(0, 6))) return this.verdict(XDP_PASS, 'other_mac');
    const ip = this.ip;
    if (ip + 40 > end || f[ip] >> 4 !== 6) return this.verdict(XDP_DROP, 'malformed');
    const plen = f.readUInt16BE(ip + 4);
    if (plen === 0 || ip + 40 + plen > end) return this.verdict(XDP_DROP, 'malformed');
    this.l3end = ip + 40 + plen;
    this.saddr = Buffer.from(f.subarray(ip + 8, ip + 24));
    this.daddr = Buffer.from(f.subarray(ip + 24, ip + 40));
    this.r.saddr6 = this.saddr;
    this.r.daddr6 = this.daddr;

    // The extension header chain.
    let nh = f[ip + 6];
    let off = ip + 40;
    let count = 0;
    let err: Reason6 | null = null;
    let frag: { offset: number; more: boolean } | null = null;
    while (EXT_HEADERS.has(nh) && !err) {
      if (count === MAX_EXT_HEADERS || (nh === 0 && count > 0)) { err = 'ext_header'; break; }
      if (nh === 44) {
        if (off + 8 > this.l3end) { err = 'malformed'; break; }
        const fo = f.readUInt16BE(off + 2);
        frag = { offset: fo >> 3, more: (fo & 1) === 1 };
        nh = f[off];
        off += 8;
        count++;
        if (frag.offset !== 0) break;            // what follows is payload, not headers
        continue;
      }
      // Every extension header has at least 8 bytes; a routing header with segments left is
      // refused before its length is looked at.
      if (off + 8 > this.l3end) { err = 'malformed'; break; }
      if (nh === 43 && f[off + 3] !== 0) { err = 'ext_header'; break; }
      const len = nh === 51 ? (f[off + 1] + 2) * 4 : (f[off + 1] + 1) * 8;
      if (off + len > this.l3end) { err = 'malformed'; break; }
      nh = f[off];
      off += len;
      count++;
    }
    // An atomic fragment (offset 0, M 0: RFC 6946) is a whole packet.
    const isFragment = frag !== null && (frag.offset !== 0 || frag.more);
    const laterFragment = frag !== null && frag.offset !== 0;
    const walked = err === null;
    // (A later fragment's next header names the first header of the fragmentable part, which is
    // in the first fragment: an extension header there is no reason to refuse this one.)
    if (walked && nh !== IPPROTO_TCP && nh !== IPPROTO_UDP && nh !== IPPROTO_ICMPV6 && !(laterFragment && EXT_HEADERS.has(nh))) err = 'ext_header';
    this.r.proto = nh;
    this.l4 = off;
    this.payloadLen = this.l3end - off;
    const proto = nh;
    const tcpUdp = walked && (proto === IPPROTO_TCP || proto === IPPROTO_UDP);
    const isVip = this.v6.vips.has(hex(this.daddr));

    if (tcpUdp && !isFragment && this.l4Fits(proto)) {
      this.readPorts();
      const exact = this.v6.services.find((s) => s.vip.equals(this.daddr) && s.port === this.r.dport && s.proto === proto);
      if (exact) return this.toService(exact);
    }
    if (!isVip) {
      if (this.hasPorts) return this.fromBackend();
      if (err === 'malformed') return this.verdict(XDP_DROP, 'malformed');
      if (!tcpUdp || !isFragment) return this.verdict(XDP_PASS, 'not_vip');
      if (laterFragment) {
        const rev = this.v6.reverseFrags.find((e) => e.ip.equals(this.saddr) && e.proto === proto);
        if (!rev) return this.verdict(XDP_PASS, 'not_vip');
        return this.replyToClient(rev);
      }
      if (!this.l4Fits(proto)) return this.verdict(XDP_PASS, 'not_vip');
      this.readPorts();
      return this.fromBackend();
    }
    if (err) return this.verdict(XDP_DROP, err);
    if (proto === IPPROTO_ICMPV6 && !isFragment) {
      if (!this.l4Fits(proto)) return this.verdict(XDP_DROP, 'malformed');
      // Neighbour discovery is the kernel's, whoever sends it.
      if (f[this.l4] >= 133 && f[this.l4] <= 137) return this.verdict(XDP_PASS, 'not_vip');
    }
    if (this.martianToVip()) return this.verdict(XDP_DROP, 'martian');
    if (isFragment) return this.verdict(this.st.settings.fragPolicy === 1 ? XDP_PASS : XDP_DROP, 'fragment');
    if (tcpUdp) {
      if (!this.hasPorts) return this.verdict(XDP_DROP, 'malformed');
      return this.toService(this.v6.services.find((s) => s.vip.equals(this.daddr) && s.port === 0 && s.proto === proto));
    }
    return this.icmpToVip();
  }

  readPorts(): void {
    this.hasPorts = true;
    this.r.sport = this.f.readUInt16BE(this.l4);
    this.r.dport = this.f.readUInt16BE(this.l4 + 2);
  }

  l4Fits(proto: number): boolean {
    const size = proto === IPPROTO_TCP ? 20 : 8;
    return size <= this.payloadLen && this.l4 + size <= this.f.length;
  }

  martianToVip(): boolean {
    return martianAddr6(this.saddr) || this.saddr.equals(this.daddr);
  }

  udpZero(): boolean {
    return this.r.proto === IPPROTO_UDP && this.hasPorts && this.f.readUInt16BE(this.l4 + 6) === 0;
  }

  findService(vip: Buffer, port: number, proto: number): ModelService6 | undefined {
    const s = this.v6.services;
    return s.find((x) => x.vip.equals(vip) && x.port === port && x.proto === proto) ?? s.find((x) => x.vip.equals(vip) && x.port === 0 && x.proto === proto);
  }

  usableBackend(id: number, serviceId: number): ModelBackend6 | undefined {
    if (id === 0) return undefined;
    const b = this.v6.backends.get(id);
    if (!b || !(b.flags & BACKEND_ACTIVE) || b.serviceId !== serviceId) return undefined;
    return b;
  }

  /** pick_backend6(): the slot's backend, or in a moved slot with the flow cache on, the flows6 rules of the IPv4 model. */
  pickBackend(svc: ModelService6, saddr: Buffer, daddr: Buffer, sport: number, dport: number, proto: number, syn = false, remember = false): ModelBackend6 | undefined {
    const hash = flowHash6(saddr, daddr, sport, dport, proto, this.st.seed);
    const table = this.st.maglev.get(svc.id);
    if (!table || svc.tableSize === 0) return undefined;
    const slot = hash % svc.tableSize;
    if (slot >= table.length) return undefined;
    let id = table[slot];
    const mark = this.st.marks?.get(svc.id)?.get(slot);
    if (mark && mark.prev !== 0 && this.st.settings.flowCache) id = this.movedSlot(svc, [saddr, daddr, sport, dport, proto], id, mark, syn, remember);
    const b = this.usableBackend(id, svc.id);
    if (!b) return undefined;
    this.r.backendId = id;
    return b;
  }

  movedSlot(svc: ModelService6, key: [Buffer, Buffer, number, number, number], current: number, mark: ModelMark, syn: boolean, remember: boolean): number {
    const flows = this.v6.flows;
    const k = flowKey6(...key);
    const cacheHash = flowCacheHash6(...key, this.st.seed);
    let id = current;
    if (!syn) {
      const cached = flows.find(cacheHash, k, mark.epoch);
      if (cached && this.usableBackend(cached.backendId, svc.id)) {
        if (cached.backendId !== current && remember) mark.seen = true;
        flows.hotHits++;
        return cached.backendId;
      }
      if ((key[4] === IPPROTO_TCP || mark.young) && this.usableBackend(mark.prev, svc.id)) id = mark.prev;
    }
    if (remember) flows.remember(cacheHash, k, id, mark.epoch);
    return id;
  }

  forward(dst: Buffer, sent: Reason6): number {
    const res = this.v6.fib(dst, this.ingress);
    if (res.kind === 'no_neigh') return this.verdict(XDP_PASS, 'no_neigh');
    if (res.kind !== 'success') return this.verdict(XDP_PASS, 'no_route');
    res.dmac.copy(this.f, 0);
    res.smac.copy(this.f, 6);
    if (res.ifindex === this.ingress) return this.verdict(XDP_TX, sent);
    if (!this.st.txPorts.has(res.ifindex)) return this.verdict(XDP_PASS, 'no_tx_port');
    return this.verdict(XDP_REDIRECT, sent);
  }

  toService(svc: ModelService6 | undefined): number {
    if (!svc) return this.verdict(XDP_DROP, 'no_service');
    if (this.martianToVip()) return this.verdict(XDP_DROP, 'martian');
    if (this.udpZero()) return this.verdict(XDP_DROP, 'bad_checksum');
    this.r.serviceId = svc.id;
    const syn = this.r.proto === IPPROTO_TCP && (this.f[this.l4 + 13] & 0x12) === 0x02;
    const b = this.pickBackend(svc, this.saddr, this.daddr, this.r.sport, this.r.dport, this.r.proto, syn, true);
    if (!b) return this.verdict(XDP_DROP, 'no_backend');
    if (svc.mode === MODE_DSR) return this.forward(b.ip, 'forwarded');
    if (this.f[this.ip + 7] <= 1) return this.timeExceeded();
    this.natRewrite(this.ip + 24, b.ip, this.l4 + 2, b.port);
    return this.forward(b.ip, 'forwarded');
  }

  /** Address at addrOff and (with ports) the port at portOff rewritten; hop limit - 1; L4 checksum updated. */
  natRewrite(addrOff: number, addr: Buffer, portOff: number, port: number): void {
    const f = this.f;
    f[this.ip + 7] = (f[this.ip + 7] - 1) & 0xff;
    let diff = diffAddr(0, f.subarray(addrOff, addrOff + 16), addr);
    addr.copy(f, addrOff);
    if (!this.hasPorts) return;
    const old = f.readUInt16BE(portOff);
    if (port && port !== old) {
      diff = diff16(diff, old, port);
      f.writeUInt16BE(port, portOff);
    }
    if (this.r.proto === IPPROTO_TCP) f.writeUInt16BE(apply(f.readUInt16BE(this.l4 + 16), diff), this.l4 + 16);
    else f.writeUInt16BE(applyUdp(f.readUInt16BE(this.l4 + 6), diff), this.l4 + 6);
  }

  /** ICMPv6 time exceeded (3/0) from the VIP to the client quoting as much of the packet as
   * fits in 1280 bytes (RFC 4443 2.4(c)): the IPv6 packet as received (no Ethernet padding). */
  timeExceeded(): number {
    const f = this.f;
    const quote = f.subarray(this.ip, Math.min(this.l3end, this.ip + 1280 - 48));
    const out = Buffer.alloc(14 + 40 + 8 + quote.length);
    f.copy(out, 0, 6, 12);
    f.copy(out, 6, 0, 6);
    out.writeUInt16BE(0x86dd, 12);
    out.writeUInt32BE(0x60000000, 14);
    out.writeUInt16BE(8 + quote.length, 18);
    out[20] = IPPROTO_ICMPV6;
    out[21] = 64;
    this.daddr.copy(out, 22);
    this.saddr.copy(out, 38);
    out[54] = 3;
    quote.copy(out, 62);
    out.writeUInt16BE(~sum16(out.subarray(54), pseudoSum(this.daddr, this.saddr, IPPROTO_ICMPV6, 8 + quote.length)) & 0xffff, 56);
    this.r.frame = out;
    return this.verdict(XDP_TX, 'ttl');
  }

  fromBackend(): number {
    const r = this.r;
    const rev = this.v6.reverse.find((e) => e.ip.equals(this.saddr) && e.port === r.sport && e.proto === r.proto)
      ?? this.v6.reverse.find((e) => e.ip.equals(this.saddr) && e.port === 0 && e.proto === r.proto);
    if (!rev) return this.verdict(XDP_PASS, 'not_vip');
    return this.replyToClient(rev);
  }

  replyToClient(rev: ModelReverse6): number {
    if (martianAddr6(this.daddr)) return this.verdict(XDP_DROP, 'martian');
    if (this.udpZero()) return this.verdict(XDP_DROP, 'bad_checksum');
    const kind = this.v6.fib(this.daddr, this.ingress).kind;
    if (kind === 'local' || kind === 'no_route') return this.verdict(XDP_PASS, 'not_vip');
    this.r.serviceId = rev.serviceId;
    this.r.backendId = rev.backendId;
    if (this.f[this.ip + 7] <= 1) return this.verdict(XDP_PASS, 'ttl');
    this.natRewrite(this.ip + 8, rev.vip, this.l4, rev.vport);
    return this.forward(this.daddr, 'reversed');
  }

  icmpToVip(): number {
    const type = this.f[this.l4];
    if (type === 128) return this.echoReply();
    if (type >= 1 && type <= 4) return this.icmpError();
    return this.verdict(XDP_DROP, 'icmp_unsupported');
  }

  echoReply(): number {
    const f = this.f;
    const msg = f.subarray(this.l4, this.l3end);
    if (this.payloadLen >= 4100 || sum16(msg, pseudoSum(this.saddr, this.daddr, IPPROTO_ICMPV6, this.payloadLen)) !== 0xffff) {
      return this.verdict(XDP_DROP, 'bad_checksum');
    }
    const dmac = Buffer.from(f.subarray(0, 6));
    f.copy(f, 0, 6, 12);
    dmac.copy(f, 6);
    this.daddr.copy(f, this.ip + 8);
    this.saddr.copy(f, this.ip + 24);
    const old = f.readUInt16BE(this.l4);
    f[this.l4] = 129;
    f.writeUInt16BE(apply(f.readUInt16BE(this.l4 + 2), diff16(0, old, f.readUInt16BE(this.l4))), this.l4 + 2);
    f[this.ip + 7] = 64;
    return this.verdict(XDP_TX, 'icmp_echo');
  }

  icmpError(): number {
    const f = this.f;
    const end = f.length;
    const inner = this.l4 + 8;
    const quoted = this.payloadLen - 8;
    const ports = inner + 40;
    if (quoted < 44 || ports + 4 > end) return this.verdict(XDP_DROP, 'malformed');
    const proto = f[inner + 6];
    const innerSaddr = Buffer.from(f.subarray(inner + 8, inner + 24));
    const innerDaddr = Buffer.from(f.subarray(inner + 24, inner + 40));
    if ((proto !== IPPROTO_TCP && proto !== IPPROTO_UDP) || !innerSaddr.equals(this.daddr)) return this.verdict(XDP_DROP, 'icmp_unsupported');
    const sport = f.readUInt16BE(ports);
    const dport = f.readUInt16BE(ports + 2);
    const svc = this.findService(innerSaddr, sport, proto);
    if (!svc) return this.verdict(XDP_DROP, 'no_service');
    this.r.serviceId = svc.id;
    const b = this.pickBackend(svc, innerDaddr, innerSaddr, dport, sport, proto);
    if (!b) return this.verdict(XDP_DROP, 'no_backend');
    if (svc.mode === MODE_DSR) return this.forward(b.ip, 'icmp_error');
    if (f[this.ip + 7] <= 1) return this.verdict(XDP_PASS, 'ttl');

    let checkOff = 0;
    if (proto === IPPROTO_TCP && 40 + 18 <= quoted) checkOff = 16;
    else if (proto === IPPROTO_UDP && 40 + 8 <= quoted) checkOff = 6;
    f[this.ip + 7] -= 1;
    // The outer destination is in the ICMPv6 pseudo-header; the quoted source in the message.
    let icmpDiff = diffAddr(0, this.daddr, b.ip);
    b.ip.copy(f, this.ip + 24);
    const addrDiff = diffAddr(0, innerSaddr, b.ip);
    icmpDiff += addrDiff;
    let l4Diff = addrDiff;
    b.ip.copy(f, inner + 8);
    if (b.port && b.port !== sport) {
      l4Diff = diff16(l4Diff, sport, b.port);
      icmpDiff = diff16(icmpDiff, sport, b.port);
      f.writeUInt16BE(b.port, ports);
    }
    if (checkOff && ports + checkOff + 2 <= end) {
      const oldCheck = f.readUInt16BE(ports + checkOff);
      const next = checkOff === 16 ? apply(oldCheck, l4Diff) : applyUdp(oldCheck, l4Diff);
      f.writeUInt16BE(next, ports + checkOff);
      icmpDiff = diff16(icmpDiff, oldCheck, next);
    }
    f.writeUInt16BE(apply(f.readUInt16BE(this.l4 + 2), icmpDiff), this.l4 + 2);
    return this.forward(b.ip, 'icmp_error');
  }
}

/** Runs one Ethernet + IPv6 frame (EtherType 0x86DD, >= 14 bytes, no tag) through the v6 model. */
export function runModel6(state: ModelState, frame: Buffer, ingressIfindex: number): ModelResult & ModelResult6Fields {
  const run = new Run6(state, Buffer.from(frame), ingressIfindex);
  run.r.action = run.process();
  return run.r;
}

export interface FibInterface6 { ifindex: number; mac: Buffer; address: Buffer; prefixLen: 64 }
export interface FibNeighbour6 { ifindex: number; ip: Buffer; mac: Buffer }

/**
 * bpf_fib_lookup(AF_INET6) in a namespace with connected /64s and permanent neighbours: the
 * interfaces' own addresses and their subnet-router anycast addresses (prefix::, a forwarding
 * host's) are not forwarded; a connected destination needs a neighbour; the rest has no route.
 */
export function connectedFib6(ifaces: FibInterface6[], neighbours: FibNeighbour6[]): (dst: Buffer, ingress: number) => FibResult {
  return (dst) => {
    for (const i of ifaces) if (dst.equals(i.address)) return { kind: 'local' };
    for (const i of ifaces) {
      if (!dst.subarray(0, 8).equals(i.address.subarray(0, 8))) continue;
      if (dst.subarray(8).every((b) => b === 0)) return { kind: 'local' };
      const n = neighbours.find((x) => x.ifindex === i.ifindex && x.ip.equals(dst));
      return n ? { kind: 'success', ifindex: i.ifindex, smac: i.mac, dmac: n.mac } : { kind: 'no_neigh' };
    }
    return { kind: 'no_route' };
  };
}
