/**
 * A reference model of the XDP data plane (bpf/lb.bpf.c) in plain TypeScript: same inputs
 * (settings, services, VIPs, backends, reverse entries, Maglev tables, flow cache, FIB), same
 * hash, same incremental checksum arithmetic. The fuzz test runs random packets through both
 * and requires identical verdicts and output frames.
 */
import { LB } from '../src/dataplane/abi';
import { LB_REASONS } from '../src/dataplane/lb.generated';
import { flowCacheHash, flowHash } from '../src/dataplane/jhash';
import { runModel6, type ModelState6 } from './refmodel6';

export const XDP_DROP = LB.ACTION_DROP;
export const XDP_PASS = LB.ACTION_PASS;
export const XDP_TX = LB.ACTION_TX;
export const XDP_REDIRECT = LB.ACTION_REDIRECT;

/** Reason numbers by name (LB_REASON_*, generated from bpf/lb_abi.h). */
export const REASON = Object.fromEntries(LB_REASONS.map((name, i) => [name, i])) as { readonly [N in (typeof LB_REASONS)[number]]: number };
export type ReasonName = keyof typeof REASON;

export const MODE_NAT = LB.MODE_NAT;
export const MODE_DSR = LB.MODE_DSR;
export const BACKEND_ACTIVE = LB.BACKEND_F_ACTIVE;

export interface ModelService { id: number; vip: number; port: number; proto: number; tableSize: number; mode: number }
export interface ModelBackend { id: number; ip: number; port: number; flags: number; serviceId: number }
export interface ModelReverse { ip: number; port: number; proto: number; vip: number; vport: number; serviceId: number; backendId: number }
export interface ModelSettings { fragPolicy: number; sampleRate: number; flowCache: boolean }
/** A moved slot: its previous backend, the transition's epoch, the program's seen byte, YOUNG. */
export interface ModelMark { prev: number; epoch: number; seen: boolean; young: boolean }

export type FibResult =
  | { kind: 'success'; ifindex: number; smac: Buffer; dmac: Buffer }
  | { kind: 'no_neigh' }
  | { kind: 'local' }      // BPF_FIB_LKUP_RET_NOT_FWDED: the address is this host's own
  | { kind: 'no_route' };

export interface ModelState {
  seed: number;
  settings: ModelSettings;
  services: ModelService[];
  vips: Set<number>;
  backends: Map<number, ModelBackend>;
  reverse: ModelReverse[];
  /** reverse_frags: {backend ip, proto} -> its only VIP (port 0, vport 0), for non-first reply fragments. */
  reverseFrags: ModelReverse[];
  /** if_macs: ifindex -> the interface's own MAC (an ifindex not here is not MAC-checked). */
  ifMacs: Map<number, Buffer>;
  /** service id -> inner table (index = slot, value = the slot's current backend id); length = inner max_entries. */
  maglev: Map<number, number[]>;
  /** service id -> slot -> its transition mark (struct lb_maglev_slot prev_id/epoch/seen/flags);
   * a slot absent (or prev 0) has not moved. The program sets `seen`. */
  marks?: Map<number, Map<number, ModelMark>>;
  /** the flows map (sets of ways, as the program fills them); only used in moved slots, with settings.flowCache. */
  flows: FlowCacheModel;
  txPorts: Set<number>;
  fib: (dst: number, ingressIfindex: number) => FibResult;
  /** The IPv6 maps and FIB (test/refmodel6.ts); without them an IPv6 frame is not_ip. */
  v6?: ModelState6;
}

export interface ModelResult {
  action: number;
  reason: number;
  frame: Buffer;          // the frame as the program leaves it (also for PASS/DROP)
  serviceId: number;
  backendId: number;
  /** Fields of the trace event (as received). */
  saddr: number; daddr: number; sport: number; dport: number; proto: number;
}

export function flowKey(saddr: number, daddr: number, sport: number, dport: number, proto: number): string {
  return `${saddr}:${daddr}:${sport}:${dport}:${proto}`;
}

const FLOW_WAYS = LB.FLOW_WAYS;

/** One remembered flow of the flows map: set index, way, flowKey(), backend id, epoch, NRU mark. */
export interface FlowCacheEntry { set: number; way: number; key: string; backendId: number; epoch: number; referenced: boolean }
/** A way in use: the flow, its backend id and the epoch of the transition it was remembered in. */
export interface FlowCacheWay { key: string; backendId: number; epoch: number; referenced: boolean }
type Way = FlowCacheWay | null;

/**
 * The program's flows map: `setCount` (a power of two) sets of FLOW_WAYS ways; a flow lives in
 * set (hash & (setCount - 1)). A hit marks its way referenced. A flow is remembered
 * (unreferenced) in the way already holding it, else the first empty way, else the first
 * unreferenced way from way (hash >>> 30) on, else (all referenced) way (hash >>> 30) after
 * clearing every mark; `hash` is flowCacheHash() of the flow.
 */
export class FlowCacheModel {
  private readonly sets = new Map<number, Way[]>();
  /** flows that replaced another flow in a full set */
  evictions = 0;
  /** packets of moved slots sent from the cache (a remembered flow kept its backend) */
  hotHits = 0;
  constructor(readonly setCount: number) {
    if (!Number.isInteger(Math.log2(setCount))) throw new Error(`flow cache: ${setCount} sets is not a power of two`);
  }

  /** The way remembering `key` in transition `epoch` (undefined = none, or the first way with the key is of another epoch); a hit marks it referenced. */
  find(hash: number, key: string, epoch: number): FlowCacheWay | undefined {
    const way = this.sets.get((hash & (this.setCount - 1)) >>> 0)?.find((w) => w?.key === key);
    if (!way || way.epoch !== epoch) return undefined;
    way.referenced = true;
    return way;
  }

  remember(hash: number, key: string, backendId: number, epoch: number): void {
    const index = (hash & (this.setCount - 1)) >>> 0;
    const set = this.sets.get(index) ?? new Array<Way>(FLOW_WAYS).fill(null);
    let victim = set.findIndex((w) => w?.key === key);
    if (victim < 0) victim = set.findIndex((w) => w === null);
    if (victim < 0) {
      const start = hash >>> 30;
      for (let i = 0; i < FLOW_WAYS && victim < 0; i++) {
        if (!set[(start + i) % FLOW_WAYS]!.referenced) victim = (start + i) % FLOW_WAYS;
      }
      if (victim < 0) {
        for (const w of set) w!.referenced = false;
        victim = start;
      }
      this.evictions++;
    }
    set[victim] = { key, backendId, epoch, referenced: false };
    this.sets.set(index, set);
  }

  entries(): FlowCacheEntry[] {
    const out: FlowCacheEntry[] = [];
    for (const [set, ways] of this.sets) {
      ways.forEach((w, way) => { if (w) out.push({ set, way, key: w.key, backendId: w.backendId, epoch: w.epoch, referenced: w.referenced }); });
    }
    return out;
  }

  clear(): void {
    this.sets.clear();
  }
}

// ---- the program's checksum arithmetic (csum.h) --------------------------------------------

function fold(sum: number): number {
  sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}
const diff16 = (acc: number, from: number, to: number): number => acc + (~from & 0xffff) + to;
const diff32 = (acc: number, from: number, to: number): number =>
  diff16(diff16(acc, from >>> 16, to >>> 16), from & 0xffff, to & 0xffff);
const apply = (check: number, diff: number): number => ~fold((~check & 0xffff) + diff) & 0xffff;
const applyUdp = (check: number, diff: number): number => {
  if (check === 0) return 0;
  const out = apply(check, diff);
  return out === 0 ? 0xffff : out;
};

/** Ones'-complement sum of big-endian 16-bit words (odd length: zero-padded), folded to 16 bits. */
function sum16(buf: Buffer): number {
  let sum = 0;
  for (let i = 0; i + 1 < buf.length; i += 2) sum += buf.readUInt16BE(i);
  if (buf.length % 2) sum += buf[buf.length - 1] << 8;
  return fold(fold(sum));
}

/** 0.0.0.0/8, 127.0.0.0/8, 224.0.0.0/4 (multicast) and 240.0.0.0/4 (reserved, broadcast). */
export function martianAddr(addr: number): boolean {
  const first = addr >>> 24;
  return first === 0 || first === 127 || first >= 224;
}

// ---- one packet ------------------------------------------------------------------------------

const IPPROTO_ICMP = 1;
const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;

class Run {
  r: ModelResult;
  ip = 0;          // offset of the IP header
  l4 = 0;          // offset of the L4 header
  payloadLen = 0;
  hasPorts = false; // l4 is a whole TCP/UDP header

  constructor(readonly st: ModelState, readonly f: Buffer, readonly ingress: number) {
    this.r = { action: 0, reason: 0, frame: f, serviceId: 0, backendId: 0, saddr: 0, daddr: 0, sport: 0, dport: 0, proto: 0 };
  }

  verdict(action: number, reason: ReasonName): number {
    this.r.reason = REASON[reason];
    return action;
  }

  /**
   * IPv6 (bpf/lb6.h) for a state with NO IPv6 service, VIP or reverse entry (this model's state has
   * none; the IPv6 model proper is test/refmodel's IPv6 sibling): a bad fixed header (version,
   * payload length 0 or beyond the frame) or an extension header cut by the payload or the frame
   * (bpf/parse6.h walk_ext6) is malformed; everything else is not a VIP. Addresses are not modelled.
   */
  ipv6WithoutServices(): number {
    const f = this.f;
    if (f.length < 54 || f[14] >> 4 !== 6) return this.verdict(XDP_DROP, 'malformed');
    const len = f.readUInt16BE(18);
    if (len === 0 || len > f.length - 54) return this.verdict(XDP_DROP, 'malformed');
    let nh = f[20];
    let off = 54;
    let left = len;
    for (let i = 0; i <= 4; i++) {
      if (nh === 0 ? i !== 0 : ![60, 43, 44, 51].includes(nh)) break;
      if (i === 4) break;
      if (off + 8 > f.length || left < 8) return this.verdict(XDP_DROP, 'malformed');
      const l = nh === 44 ? 8 : nh === 51 ? (f[off + 1] + 2) * 4 : (f[off + 1] + 1) * 8;
      if (nh === 43 && f[off + 3] !== 0) break;
      if (l > left || off + l > f.length) return this.verdict(XDP_DROP, 'malformed');
      nh = f[off];
      off += l;
      left -= l;
    }
    return this.verdict(XDP_PASS, 'not_vip');
  }

  process(): number {
    const f = this.f;
    const end = f.length;
    if (end < 14) return this.verdict(XDP_DROP, 'malformed');
    const type = f.readUInt16BE(12);
    if (type === 0x8100 || type === 0x88a8) return this.verdict(XDP_PASS, 'vlan');
    if (type !== 0x0800 && type !== 0x86dd) return this.verdict(XDP_PASS, 'not_ip');
    const ownMac = this.st.ifMacs.get(this.ingress);
    if (ownMac && !ownMac.equals(f.subarray(0, 6))) return this.verdict(XDP_PASS, 'other_mac');
    if (type === 0x86dd) return this.ipv6WithoutServices();

    // parse_iphdr
    const ip = 14;
    if (ip + 20 > end) return this.verdict(XDP_DROP, 'malformed');
    if (f[ip] >> 4 !== 4) return this.verdict(XDP_DROP, 'malformed');
    const hdrLen = (f[ip] & 0x0f) * 4;
    if (hdrLen < 20 || ip + hdrLen > end) return this.verdict(XDP_DROP, 'malformed');
    const totLen = f.readUInt16BE(ip + 2);
    if (totLen < hdrLen || totLen > end - ip) return this.verdict(XDP_DROP, 'malformed');
    this.ip = ip;
    this.l4 = ip + hdrLen;
    this.payloadLen = totLen - hdrLen;
    const proto = f[ip + 9];
    this.r.saddr = f.readUInt32BE(ip + 12);
    this.r.daddr = f.readUInt32BE(ip + 16);
    this.r.proto = proto;
    if (sum16(f.subarray(ip, ip + hdrLen)) !== 0xffff) return this.verdict(XDP_DROP, 'bad_checksum');
    const isFragment = (f.readUInt16BE(ip + 6) & 0x3fff) !== 0;

    if (!isFragment && (proto === IPPROTO_TCP || proto === IPPROTO_UDP) && this.l4Fits(proto)) {
      this.hasPorts = true;
      this.r.sport = f.readUInt16BE(this.l4);
      this.r.dport = f.readUInt16BE(this.l4 + 2);
      const exact = this.st.services.find((s) => s.vip === this.r.daddr && s.port === this.r.dport && s.proto === proto);
      if (exact) return this.toService(exact);
    }
    if (!this.st.vips.has(this.r.daddr)) {
      if (this.hasPorts) return this.fromBackend();
      if (!isFragment || (proto !== IPPROTO_TCP && proto !== IPPROTO_UDP)) return this.verdict(XDP_PASS, 'not_vip');
      if (f.readUInt16BE(ip + 6) & 0x1fff) {
        // A later fragment of a reply: the backend address's only VIP, if it has one.
        const rev = this.st.reverseFrags.find((e) => e.ip === this.r.saddr && e.proto === proto);
        if (!rev) return this.verdict(XDP_PASS, 'not_vip');
        return this.replyToClient(rev);
      }
      // A first fragment: ports as in a whole reply.
      if (!this.l4Fits(proto)) return this.verdict(XDP_PASS, 'not_vip');
      this.hasPorts = true;
      this.r.sport = f.readUInt16BE(this.l4);
      this.r.dport = f.readUInt16BE(this.l4 + 2);
      return this.fromBackend();
    }
    if (this.martianToVip()) return this.verdict(XDP_DROP, 'martian');
    if (isFragment) return this.verdict(this.st.settings.fragPolicy === 1 ? XDP_PASS : XDP_DROP, 'fragment');
    if (proto === IPPROTO_TCP || proto === IPPROTO_UDP) {
      if (!this.hasPorts) return this.verdict(XDP_DROP, 'malformed');
      return this.toService(this.st.services.find((s) => s.vip === this.r.daddr && s.port === 0 && s.proto === proto));
    }
    if (!this.l4Fits(proto)) return this.verdict(XDP_DROP, 'malformed');
    if (proto === IPPROTO_ICMP) return this.icmpToVip();
    return this.verdict(XDP_DROP, 'no_service');
  }

  /** A martian source toward a VIP (0/8, 127/8, 224/4, 240/4) or the VIP itself. */
  martianToVip(): boolean {
    return martianAddr(this.r.saddr) || this.r.saddr === this.r.daddr;
  }

  l4Fits(proto: number): boolean {
    const size = proto === IPPROTO_TCP ? 20 : proto === IPPROTO_UDP || proto === IPPROTO_ICMP ? 8 : 0;
    return size <= this.payloadLen && this.l4 + size <= this.f.length;
  }

  findService(vip: number, port: number, proto: number): ModelService | undefined {
    const svcs = this.st.services;
    return svcs.find((s) => s.vip === vip && s.port === port && s.proto === proto)
      ?? svcs.find((s) => s.vip === vip && s.port === 0 && s.proto === proto);
  }

  usableBackend(id: number, serviceId: number): ModelBackend | undefined {
    if (id === 0) return undefined;
    const b = this.st.backends.get(id);
    if (!b || !(b.flags & BACKEND_ACTIVE) || b.serviceId !== serviceId) return undefined;
    return b;
  }

  /** The slot's current backend, or in a moved slot with the flow cache on, movedSlot()'s choice (pick_backend()). */
  pickBackend(svc: ModelService, key: [number, number, number, number, number], syn: boolean, remember: boolean): ModelBackend | undefined {
    const hash = flowHash(...key, this.st.seed);
    const table = this.st.maglev.get(svc.id);
    if (!table || svc.tableSize === 0) return undefined;
    const slot = hash % svc.tableSize;
    if (slot >= table.length) return undefined;
    let id = table[slot];
    const mark = this.st.marks?.get(svc.id)?.get(slot);
    if (mark && mark.prev !== 0 && this.st.settings.flowCache) id = this.movedSlot(svc, key, id, mark, syn, remember);
    const b = this.usableBackend(id, svc.id);
    if (!b) return undefined;
    this.r.backendId = id;
    return b;
  }

  /** moved_slot_backend(): SYN -> current (remembered); a remembered flow of this epoch keeps a
   * usable backend (seen when not the current); a miss -> prev (TCP, or UDP while young) when
   * usable, else current (remembered). */
  movedSlot(svc: ModelService, key: [number, number, number, number, number], current: number, mark: ModelMark, syn: boolean, remember: boolean): number {
    const k = flowKey(...key);
    const cacheHash = flowCacheHash(...key, this.st.seed);
    let id = current;
    if (!syn) {
      const cached = this.st.flows.find(cacheHash, k, mark.epoch);
      if (cached && this.usableBackend(cached.backendId, svc.id)) {
        if (cached.backendId !== current && remember) mark.seen = true;
        this.st.flows.hotHits++;
        return cached.backendId;
      }
      if ((key[4] === IPPROTO_TCP || mark.young) && this.usableBackend(mark.prev, svc.id)) id = mark.prev;
    }
    if (remember) this.st.flows.remember(cacheHash, k, id, mark.epoch);
    return id;
  }

  decrementTtl(diff: number): number {
    const f = this.f;
    const old = f.readUInt16BE(this.ip + 8);
    f[this.ip + 8] = (f[this.ip + 8] - 1) & 0xff;
    return diff16(diff, old, f.readUInt16BE(this.ip + 8));
  }

  updateL4Check(diff: number): void {
    const f = this.f;
    if (this.r.proto === IPPROTO_TCP) {
      if (this.l4 + 20 > f.length) return;
      f.writeUInt16BE(apply(f.readUInt16BE(this.l4 + 16), diff), this.l4 + 16);
    } else {
      f.writeUInt16BE(applyUdp(f.readUInt16BE(this.l4 + 6), diff), this.l4 + 6);
    }
  }

  /** Rewrites the 32-bit address at `addrOff` and the port at `portOff` (when newPort != 0 and differs). */
  natRewrite(addrOff: number, newAddr: number, portOff: number, newPort: number): void {
    const f = this.f;
    let ipDiff = this.decrementTtl(0);
    const oldAddr = f.readUInt32BE(addrOff);
    ipDiff = diff32(ipDiff, oldAddr, newAddr);
    let l4Diff = diff32(0, oldAddr, newAddr);
    f.writeUInt32BE(newAddr, addrOff);
    if (!this.hasPorts) {
      // A later reply fragment: no L4 header, the address (and IP checksum) only.
      f.writeUInt16BE(apply(f.readUInt16BE(this.ip + 10), ipDiff), this.ip + 10);
      return;
    }
    const oldPort = f.readUInt16BE(portOff);
    if (newPort && newPort !== oldPort) {
      l4Diff = diff16(l4Diff, oldPort, newPort);
      f.writeUInt16BE(newPort, portOff);
    }
    f.writeUInt16BE(apply(f.readUInt16BE(this.ip + 10), ipDiff), this.ip + 10);
    this.updateL4Check(l4Diff);
  }

  forward(dst: number, sentReason: ReasonName): number {
    const res = this.st.fib(dst, this.ingress);
    if (res.kind === 'no_neigh') return this.verdict(XDP_PASS, 'no_neigh');
    if (res.kind !== 'success') return this.verdict(XDP_PASS, 'no_route');
    res.dmac.copy(this.f, 0);
    res.smac.copy(this.f, 6);
    if (res.ifindex === this.ingress) return this.verdict(XDP_TX, sentReason);
    if (!this.st.txPorts.has(res.ifindex)) return this.verdict(XDP_PASS, 'no_tx_port');
    return this.verdict(XDP_REDIRECT, sentReason);
  }

  toService(svc: ModelService | undefined): number {
    const r = this.r;
    if (!svc) return this.verdict(XDP_DROP, 'no_service');
    if (this.martianToVip()) return this.verdict(XDP_DROP, 'martian');
    r.serviceId = svc.id;
    const syn = r.proto === IPPROTO_TCP && (this.f[this.l4 + 13] & 0x12) === 0x02;
    const b = this.pickBackend(svc, [r.saddr, r.daddr, r.sport, r.dport, r.proto], syn, true);
    if (!b) return this.verdict(XDP_DROP, 'no_backend');
    return this.toBackend(svc, b);
  }

  toBackend(svc: ModelService, b: ModelBackend): number {
    this.r.serviceId = svc.id;
    if (svc.mode === MODE_DSR) return this.forward(b.ip, 'forwarded');
    if (this.f[this.ip + 8] <= 1) return this.timeExceeded();
    this.natRewrite(this.ip + 16, b.ip, this.l4 + 2, b.port);
    return this.forward(b.ip, 'forwarded');
  }

  /**
   * ttl_expired(): ICMP time exceeded from the VIP to the client, quoting the IP header as
   * received and 8 bytes, MACs swapped, sent back (TX). The output frame is a new, shorter one.
   */
  timeExceeded(): number {
    const f = this.f;
    const hdrLen = (f[this.ip] & 0x0f) * 4;
    const quote = f.subarray(this.ip, this.ip + hdrLen + 8);
    const out = Buffer.alloc(14 + 28 + quote.length);
    f.copy(out, 0, 6, 12);
    f.copy(out, 6, 0, 6);
    out.writeUInt16BE(0x0800, 12);
    out[14] = 0x45;
    out[15] = (f[this.ip + 1] & 0x1e) | 0xc0;
    out.writeUInt16BE(28 + quote.length, 16);
    out[22] = 64;
    out[23] = IPPROTO_ICMP;
    out.writeUInt32BE(this.r.daddr, 26);
    out.writeUInt32BE(this.r.saddr, 30);
    out.writeUInt16BE(~sum16(out.subarray(14, 34)) & 0xffff, 24);
    out[34] = 11;
    quote.copy(out, 42);
    out.writeUInt16BE(~sum16(out.subarray(34)) & 0xffff, 36);
    this.r.frame = out;
    return this.verdict(XDP_TX, 'ttl');
  }

  fromBackend(): number {
    const r = this.r;
    const rev = this.st.reverse.find((e) => e.ip === r.saddr && e.port === r.sport && e.proto === r.proto)
      ?? this.st.reverse.find((e) => e.ip === r.saddr && e.port === 0 && e.proto === r.proto);
    if (!rev) return this.verdict(XDP_PASS, 'not_vip');
    return this.replyToClient(rev);
  }

  replyToClient(rev: ModelReverse): number {
    const r = this.r;
    if (martianAddr(r.daddr)) return this.verdict(XDP_DROP, 'martian');
    // The kernel would not forward it (this host's own address, e.g. a health check reply,
    // or no route: BPF_FIB_LKUP_RET_NOT_FWDED covers both): left alone.
    const kind = this.st.fib(r.daddr, this.ingress).kind;
    if (kind === 'local' || kind === 'no_route') return this.verdict(XDP_PASS, 'not_vip');
    r.serviceId = rev.serviceId;
    r.backendId = rev.backendId;
    if (this.f[this.ip + 8] <= 1) return this.verdict(XDP_PASS, 'ttl');
    this.natRewrite(this.ip + 12, rev.vip, this.l4, rev.vport);
    return this.forward(this.f.readUInt32BE(this.ip + 16), 'reversed');
  }

  icmpToVip(): number {
    const type = this.f[this.l4];
    if (type === 8) return this.echoReply();
    if (type === 3 || type === 11) return this.icmpError();
    return this.verdict(XDP_DROP, 'icmp_unsupported');
  }

  echoReply(): number {
    const f = this.f;
    // The ICMP message must verify (messages of 4100 bytes and more are not verified: refused).
    if (this.payloadLen >= 4100 || this.l4 + this.payloadLen > f.length || sum16(f.subarray(this.l4, this.l4 + this.payloadLen)) !== 0xffff) {
      return this.verdict(XDP_DROP, 'bad_checksum');
    }
    const dmac = Buffer.from(f.subarray(0, 6));
    f.copy(f, 0, 6, 12);
    dmac.copy(f, 6);
    const saddr = f.readUInt32BE(this.ip + 12);
    f.copy(f, this.ip + 12, this.ip + 16, this.ip + 20);
    f.writeUInt32BE(saddr, this.ip + 16);
    let old = f.readUInt16BE(this.l4);
    f[this.l4] = 0;
    f.writeUInt16BE(apply(f.readUInt16BE(this.l4 + 2), diff16(0, old, f.readUInt16BE(this.l4))), this.l4 + 2);
    old = f.readUInt16BE(this.ip + 8);
    f[this.ip + 8] = 64;
    f.writeUInt16BE(apply(f.readUInt16BE(this.ip + 10), diff16(0, old, f.readUInt16BE(this.ip + 8))), this.ip + 10);
    return this.verdict(XDP_TX, 'icmp_echo');
  }

  icmpError(): number {
    const f = this.f;
    const end = f.length;
    const inner = this.l4 + 8;
    const quoted = this.payloadLen - 8;
    if (inner + 20 > end || quoted < 20) return this.verdict(XDP_DROP, 'malformed');
    const innerLen = (f[inner] & 0x0f) * 4;
    if (innerLen < 20 || innerLen + 4 > quoted) return this.verdict(XDP_DROP, 'malformed');
    const ports = inner + innerLen;
    if (ports + 4 > end) return this.verdict(XDP_DROP, 'malformed');
    const proto = f[inner + 9];
    const innerSaddr = f.readUInt32BE(inner + 12);
    const innerDaddr = f.readUInt32BE(inner + 16);
    // A quoted later fragment (offset != 0) quotes payload bytes, not ports.
    if ((proto !== IPPROTO_TCP && proto !== IPPROTO_UDP) || innerSaddr !== this.r.daddr || (f.readUInt16BE(inner + 6) & 0x1fff)) {
      return this.verdict(XDP_DROP, 'icmp_unsupported');
    }
    const sport = f.readUInt16BE(ports);
    const dport = f.readUInt16BE(ports + 2);
    const svc = this.findService(innerSaddr, sport, proto);
    if (!svc) return this.verdict(XDP_DROP, 'no_service');
    this.r.serviceId = svc.id;
    const b = this.pickBackend(svc, [innerDaddr, innerSaddr, dport, sport, proto], false, false);
    if (!b) return this.verdict(XDP_DROP, 'no_backend');
    if (svc.mode === MODE_DSR) return this.forward(b.ip, 'icmp_error');
    if (f[this.ip + 8] <= 1) return this.verdict(XDP_PASS, 'ttl');

    let checkOff = 0;
    if (proto === IPPROTO_TCP && innerLen + 18 <= quoted) checkOff = 16;
    else if (proto === IPPROTO_UDP && innerLen + 8 <= quoted) checkOff = 6;

    // outer header
    let ipDiff = this.decrementTtl(0);
    ipDiff = diff32(ipDiff, f.readUInt32BE(this.ip + 16), b.ip);
    f.writeUInt32BE(b.ip, this.ip + 16);
    f.writeUInt16BE(apply(f.readUInt16BE(this.ip + 10), ipDiff), this.ip + 10);
    // quoted header
    const innerDiff = diff32(0, innerSaddr, b.ip);
    let l4Diff = innerDiff;
    let icmpDiff = innerDiff;
    f.writeUInt32BE(b.ip, inner + 12);
    let oldCheck = f.readUInt16BE(inner + 10);
    f.writeUInt16BE(apply(oldCheck, innerDiff), inner + 10);
    icmpDiff = diff16(icmpDiff, oldCheck, f.readUInt16BE(inner + 10));
    if (b.port && b.port !== sport) {
      l4Diff = diff16(l4Diff, sport, b.port);
      icmpDiff = diff16(icmpDiff, sport, b.port);
      f.writeUInt16BE(b.port, ports);
    }
    if (checkOff && ports + checkOff + 2 <= end) {
      oldCheck = f.readUInt16BE(ports + checkOff);
      const next = checkOff === 16 ? apply(oldCheck, l4Diff) : applyUdp(oldCheck, l4Diff);
      f.writeUInt16BE(next, ports + checkOff);
      icmpDiff = diff16(icmpDiff, oldCheck, next);
    }
    f.writeUInt16BE(apply(f.readUInt16BE(this.l4 + 2), icmpDiff), this.l4 + 2);
    return this.forward(b.ip, 'icmp_error');
  }
}

/**
 * Runs one frame through the model (the frame is copied, never modified). `state.flows` is
 * updated as the program updates its flow cache.
 */
export function runModel(state: ModelState, frame: Buffer, ingressIfindex: number): ModelResult {
  if (state.v6 && frame.length >= 14 && frame.readUInt16BE(12) === 0x86dd) return runModel6(state, frame, ingressIfindex);
  const run = new Run(state, Buffer.from(frame), ingressIfindex);
  run.r.action = run.process();
  return run.r;
}

/** Interface and neighbour configuration of a test namespace, as the FIB model sees it. */
export interface FibInterface { ifindex: number; mac: Buffer; address: number; prefixLen: number }
export interface FibNeighbour { ifindex: number; ip: number; mac: Buffer }

/**
 * The kernel's answer to bpf_fib_lookup for a namespace with only connected routes and
 * permanent neighbours: local and broadcast addresses are not forwarded, a connected
 * destination needs a neighbour, everything else has no route.
 */
export function connectedFib(ifaces: FibInterface[], neighbours: FibNeighbour[]): (dst: number, ingress: number) => FibResult {
  return (dst) => {
    for (const i of ifaces) {
      if (dst === i.address) return { kind: 'local' };
    }
    for (const i of ifaces) {
      const mask = i.prefixLen === 0 ? 0 : (0xffffffff << (32 - i.prefixLen)) >>> 0;
      if (((dst & mask) >>> 0) !== ((i.address & mask) >>> 0)) continue;
      if (((dst | ~mask) >>> 0) === dst && i.prefixLen < 31) return { kind: 'no_route' }; // subnet broadcast
      const n = neighbours.find((x) => x.ifindex === i.ifindex && x.ip === dst);
      return n ? { kind: 'success', ifindex: i.ifindex, smac: i.mac, dmac: n.mac } : { kind: 'no_neigh' };
    }
    return { kind: 'no_route' };
  };
}
