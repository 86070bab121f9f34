/**
 * Writes a reference-model state (test/refmodel.ts) into the program's maps byte for byte as
 * bpf/lb_abi.h lays them out, and reads the counters back. The data-plane tests drive the
 * maps directly (exact ids, inactive backends, odd table sizes) instead of going through the
 * reconciler, so that every branch of the program can be reached on purpose.
 */
import { flowCacheHash, flowCacheHash6, serviceSlotIndex, serviceSlotIndex6, vipFilterWords, vipFilterWords6 } from '../src/dataplane/jhash';
import { LB, LbFlowEntryCodec, LbFlowEntry6Codec, LbService6SlotCodec, LbService6KeyCodec, LbServiceCodec, LbBackend6Codec, LbReverse6KeyCodec, LbReverse6Codec, LbVipCodec } from '../src/dataplane/abi';
import { bufferToIp6 } from '../src/dataplane/packet';
import { type ModelMark, type ModelService, type ModelState } from './refmodel';

/** Sets of the flows map in the data-path tests (program and model alike). */
export const TEST_FLOW_SETS = 256;
/** sizeof(struct lb_flow_entry) */
const FLOW_ENTRY_BYTES = LbFlowEntryCodec.size;
/** Offsets of struct lb_flow_entry's fields (from the codec, itself checked against the BTF). */
const FLOW_AT = Object.fromEntries(LbFlowEntryCodec.fields.map((f) => [f.c, f.offset])) as Record<'backend_id' | 'epoch' | 'check' | 'referenced', number>;

/** The few map operations the harness needs (implemented over src/bpf by the tests). */
export interface MapAccess {
  update(map: string, key: Buffer, value: Buffer): void;
  delete(map: string, key: Buffer): void;
  /** Raw value bytes; per-CPU maps return every CPU's value, each padded to 8 bytes. */
  lookup(map: string, key: Buffer): Buffer | null;
  keys(map: string): Buffer[];
  /** The map's max_entries. */
  maxEntries(map: string): number;
  /** Creates an ARRAY u32 -> `valueSize` bytes (flags BPF_F_INNER_MAP) holding `values`: an
   * inner maglev table (4-byte ids) or maglev_marks table (struct lb_slot_mark); returns its fd. */
  createInnerTable(maxEntries: number, valueSize: number, values: Buffer): number;
  /** The values of an inner table created by createInnerTable, back to back. */
  readInnerTable(fd: number): Buffer;
  closeFd(fd: number): void;
  possibleCpus: number;
}

const u32le = (v: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32LE(v >>> 0); return b; };
const be32 = (v: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32BE(v >>> 0); return b; };

export function serviceKey(vip: number, port: number, proto: number): Buffer {
  const k = Buffer.alloc(8);
  k.writeUInt32BE(vip >>> 0, 0); k.writeUInt16BE(port, 4); k[6] = proto;
  return k;
}
export function serviceValue(id: number, tableSize: number, mode: number): Buffer {
  const v = Buffer.alloc(12);
  v.writeUInt32LE(id, 0); v.writeUInt32LE(tableSize, 4); v[8] = mode;
  return v;
}
/** A backends entry; the owner service's key and mode come from `services` (zeros if absent). */
export function backendValue(ip: number, port: number, flags: number, serviceId: number, services: readonly ModelService[]): Buffer {
  const v = Buffer.alloc(20);
  const svc = services.find((s) => s.id === serviceId);
  v.writeUInt32BE(ip >>> 0, 0); v.writeUInt16BE(port, 4); v[6] = flags; v[7] = svc?.mode ?? 0; v.writeUInt32LE(serviceId, 8);
  v.writeUInt32BE((svc?.vip ?? 0) >>> 0, 12); v.writeUInt16BE(svc?.port ?? 0, 16); v[18] = svc?.proto ?? 0;
  return v;
}
export function reverseKey(ip: number, port: number, proto: number): Buffer {
  return serviceKey(ip, port, proto);
}
export function reverseValue(vip: number, vport: number, serviceId: number, backendId: number): Buffer {
  const v = Buffer.alloc(16);
  v.writeUInt32BE(vip >>> 0, 0); v.writeUInt16BE(vport, 4); v.writeUInt32LE(serviceId, 8); v.writeUInt32LE(backendId, 12);
  return v;
}
/** The settings entry; `vips` (host-order addresses) fill its VIP filter, as the reconciler does. */
export function settingsValue(fragPolicy: number, sampleRate: number, flowCache: boolean, vips: Iterable<number>, vips6: Iterable<string> = []): Buffer {
  const v = Buffer.alloc(16 + 8 * LB.VIP_FILTER_WORDS);
  v.writeUInt32LE(fragPolicy, 0); v.writeUInt32LE(sampleRate, 4); v.writeUInt32LE(flowCache ? 1 : 0, 8);
  vipFilterWords(vips).forEach((w, i) => v.writeUInt32LE(w, 16 + 4 * i));
  vipFilterWords6(vips6).forEach((w, i) => v.writeUInt32LE(w, 16 + 4 * LB.VIP_FILTER_WORDS + 4 * i));
  return v;
}
export function flowKeyBytes(saddr: number, daddr: number, sport: number, dport: number, proto: number): Buffer {
  const k = Buffer.alloc(16);
  k.writeUInt32BE(saddr >>> 0, 0); k.writeUInt32BE(daddr >>> 0, 4); k.writeUInt16BE(sport, 8); k.writeUInt16BE(dport, 10); k[12] = proto;
  return k;
}

/** The flows map's check word of an entry (see struct lb_flow_entry). */
export function flowCheck(hash: number, backendId: number, epoch: number): number {
  return (hash ^ Math.imul(backendId, LB.FLOW_CHECK_MUL) ^ epoch) >>> 0;
}

/** The inner maglev table's values: current ids, LB_SLOT_MOVED on slots with a mark (prev != 0). */
export function slotIdBytes(table: readonly number[], marks?: Map<number, ModelMark>): Buffer {
  const out = Buffer.alloc(table.length * 4);
  table.forEach((id, slot) => out.writeUInt32LE(((marks?.get(slot)?.prev ?? 0) !== 0 ? (id | LB.SLOT_MOVED) : id) >>> 0, slot * 4));
  return out;
}

/** sizeof(struct lb_slot_mark) */
export const MARK_BYTES = 12;

/** The maglev_marks inner table's values (struct lb_slot_mark per slot). */
export function slotMarkBytes(size: number, marks: Map<number, ModelMark>): Buffer {
  const out = Buffer.alloc(size * MARK_BYTES);
  for (const [slot, m] of marks) {
    if (slot >= size) continue;
    out.writeUInt32LE(m.prev >>> 0, slot * MARK_BYTES);
    out.writeUInt32LE(m.epoch >>> 0, slot * MARK_BYTES + 4);
    out[slot * MARK_BYTES + 8] = m.seen ? 1 : 0;
    out[slot * MARK_BYTES + 9] = m.young ? LB.SLOT_F_YOUNG : 0;
  }
  return out;
}

/** The v6 VIPs of a state as text (for settings.vip_filter6). */
export function vips6Of(state: ModelState): string[] {
  return [...(state.v6?.vips ?? [])].map((h) => bufferToIp6(Buffer.from(h, 'hex')));
}

/** The settings entry for `state`'s VIPs (both families) with the given knobs. */
export function settingsFor(state: ModelState, s: { fragPolicy: number; sampleRate: number; flowCache: boolean }): Buffer {
  return settingsValue(s.fragPolicy, s.sampleRate, s.flowCache, state.vips, vips6Of(state));
}

/** A backends6 entry; the owner service's key and mode come from `state.v6` (zeros if absent). */
export function backend6Value(state: ModelState, id: number): Buffer {
  const b = state.v6!.backends.get(id)!;
  const svc = state.v6!.services.find((s) => s.id === b.serviceId);
  return LbBackend6Codec.encode({
    ip: bufferToIp6(b.ip), port: b.port, flags: b.flags, mode: svc?.mode ?? 0, serviceId: b.serviceId,
    vip: bufferToIp6(svc?.vip ?? Buffer.alloc(16)), vport: svc?.port ?? 0, proto: svc?.proto ?? 0,
  });
}

/** Writes the IPv6 maps of `state.v6` (services6, vips6, backends6, reverse6, reverse_frags6), replacing what they held. */
function installState6(maps: MapAccess, state: ModelState): void {
  for (const name of ['services6', 'vips6', 'reverse6', 'reverse_frags6']) {
    for (const k of maps.keys(name)) maps.delete(name, k);
  }
  const v6 = state.v6;
  if (!v6) return;
  const text = (b: Buffer) => bufferToIp6(b);
  // service_slots6: every slot emptied, then the first service of each slot (as the reconciler).
  for (const k of maps.keys('service_slots6')) {
    const v = maps.lookup('service_slots6', k);
    if (v && v.some((byte) => byte !== 0)) maps.update('service_slots6', k, Buffer.alloc(v.length));
  }
  const slotted = new Set<number>();
  for (const s of v6.services) {
    const key = { vip: text(s.vip), port: s.port, proto: s.proto };
    const svc = { id: s.id, tableSize: s.tableSize, mode: s.mode, flags: 0 };
    maps.update('services6', LbService6KeyCodec.encode(key), LbServiceCodec.encode(svc));
    const index = serviceSlotIndex6(s.vip, s.port, s.proto);
    if (!slotted.has(index)) {
      slotted.add(index);
      maps.update('service_slots6', u32le(index), LbService6SlotCodec.encode({ key, svc }));
    }
  }
  for (const h of v6.vips) {
    const vip = Buffer.from(h, 'hex');
    maps.update('vips6', vip, LbVipCodec.encode({ services: v6.services.filter((s) => s.vip.equals(vip)).length }));
  }
  for (const id of v6.backends.keys()) maps.update('backends6', u32le(id), backend6Value(state, id));
  for (const r of v6.reverse) {
    maps.update('reverse6', LbReverse6KeyCodec.encode({ ip: text(r.ip), port: r.port, proto: r.proto }), LbReverse6Codec.encode({ vip: text(r.vip), vport: r.vport, serviceId: r.serviceId, backendId: r.backendId }));
  }
  for (const r of v6.reverseFrags) {
    maps.update('reverse_frags6', LbReverse6KeyCodec.encode({ ip: text(r.ip), port: 0, proto: r.proto }), LbReverse6Codec.encode({ vip: text(r.vip), vport: 0, serviceId: r.serviceId, backendId: r.backendId }));
  }
}

/** sizeof(struct lb_flow_entry6) and its fields' offsets (from the codec, checked against the BTF). */
const FLOW6_ENTRY_BYTES = LbFlowEntry6Codec.size;
const FLOW6_AT = Object.fromEntries(LbFlowEntry6Codec.fields.map((f) => [f.c, f.offset])) as Record<'backend_id' | 'epoch' | 'check' | 'referenced', number>;

/** Makes the flows6 map hold exactly `state.v6.flows` (keys flowKey6: hex addresses). */
export function installFlows6(maps: MapAccess, state: ModelState): void {
  for (const k of maps.keys('flows6')) {
    const v = maps.lookup('flows6', k);
    if (v && v.some((byte) => byte !== 0)) maps.update('flows6', k, Buffer.alloc(v.length));
  }
  const sets = new Map<number, Buffer>();
  for (const e of state.v6?.flows.entries() ?? []) {
    const [s, d, sport, dport, proto] = e.key.split(':');
    const saddr = Buffer.from(s, 'hex');
    const daddr = Buffer.from(d, 'hex');
    const set = sets.get(e.set) ?? Buffer.alloc(LB.FLOW_WAYS * FLOW6_ENTRY_BYTES);
    const at = e.way * FLOW6_ENTRY_BYTES;
    saddr.copy(set, at); daddr.copy(set, at + 16);
    set.writeUInt16BE(Number(sport), at + 32); set.writeUInt16BE(Number(dport), at + 34); set[at + 36] = Number(proto);
    set.writeUInt32LE(e.backendId, at + FLOW6_AT.backend_id);
    set.writeUInt32LE(e.epoch >>> 0, at + FLOW6_AT.epoch);
    set.writeUInt32LE(flowCheck(flowCacheHash6(saddr, daddr, Number(sport), Number(dport), Number(proto), state.seed), e.backendId, e.epoch), at + FLOW6_AT.check);
    set.writeUInt32LE(e.referenced ? 1 : 0, at + FLOW6_AT.referenced);
    sets.set(e.set, set);
  }
  for (const [index, set] of sets) maps.update('flows6', u32le(index), set);
}

/** The flows6 map's flows as `flowKey6=backendId@epoch` (`*` referenced, ' (bad check)' marked). */
export function readFlows6(maps: MapAccess, seed: number): string[] {
  const out: string[] = [];
  for (const k of maps.keys('flows6')) {
    const v = maps.lookup('flows6', k);
    if (!v) continue;
    for (let at = 0; at + FLOW6_ENTRY_BYTES <= v.length; at += FLOW6_ENTRY_BYTES) {
      const backendId = v.readUInt32LE(at + FLOW6_AT.backend_id);
      if (backendId === 0) continue;
      const saddr = Buffer.from(v.subarray(at, at + 16));
      const daddr = Buffer.from(v.subarray(at + 16, at + 32));
      const sport = v.readUInt16BE(at + 32); const dport = v.readUInt16BE(at + 34); const proto = v[at + 36];
      const epoch = v.readUInt32LE(at + FLOW6_AT.epoch);
      const good = v.readUInt32LE(at + FLOW6_AT.check) === flowCheck(flowCacheHash6(saddr, daddr, sport, dport, proto, seed), backendId, epoch);
      out.push(`${saddr.toString('hex')}:${daddr.toString('hex')}:${sport}:${dport}:${proto}=${backendId}@${epoch}${v.readUInt32LE(at + FLOW6_AT.referenced) ? '*' : ''}${good ? '' : ' (bad check)'}`);
    }
  }
  return out;
}

/** Makes the flows map hold exactly the model's flow cache (zeroes every set in use first; flows6 too, from state.v6). */
export function installFlows(maps: MapAccess, state: ModelState): void {
  if (state.v6) installFlows6(maps, state);
  for (const k of maps.keys('flows')) {
    const v = maps.lookup('flows', k);
    if (v && v.some((byte) => byte !== 0)) maps.update('flows', k, Buffer.alloc(v.length));
  }
  const sets = new Map<number, Buffer>();
  for (const e of state.flows.entries()) {
    const [saddr, daddr, sport, dport, proto] = e.key.split(':').map(Number);
    const set = sets.get(e.set) ?? Buffer.alloc(LB.FLOW_WAYS * FLOW_ENTRY_BYTES);
    const at = e.way * FLOW_ENTRY_BYTES;
    flowKeyBytes(saddr, daddr, sport, dport, proto).copy(set, at);
    set.writeUInt32LE(e.backendId, at + FLOW_AT.backend_id);
    set.writeUInt32LE(e.epoch >>> 0, at + FLOW_AT.epoch);
    set.writeUInt32LE(flowCheck(flowCacheHash(saddr, daddr, sport, dport, proto, state.seed), e.backendId, e.epoch), at + FLOW_AT.check);
    set.writeUInt32LE(e.referenced ? 1 : 0, at + FLOW_AT.referenced);
    sets.set(e.set, set);
  }
  for (const [index, set] of sets) maps.update('flows', u32le(index), set);
}

/**
 * The flows the map holds, as `flowKey=backendId` strings (`flowKey=backendId@epoch` with
 * `withEpoch`), `*` after a referenced one (entries whose check is wrong included, marked).
 */
export function readFlows(maps: MapAccess, seed: number, withEpoch = false): string[] {
  const out: string[] = [];
  for (const k of maps.keys('flows')) {
    const v = maps.lookup('flows', k);
    if (!v) continue;
    for (let at = 0; at + FLOW_ENTRY_BYTES <= v.length; at += FLOW_ENTRY_BYTES) {
      const backendId = v.readUInt32LE(at + FLOW_AT.backend_id);
      if (backendId === 0) continue;
      const f = [v.readUInt32BE(at), v.readUInt32BE(at + 4), v.readUInt16BE(at + 8), v.readUInt16BE(at + 10), v[at + 12]] as const;
      const epoch = v.readUInt32LE(at + FLOW_AT.epoch);
      const good = v.readUInt32LE(at + FLOW_AT.check) === flowCheck(flowCacheHash(...f, seed), backendId, epoch);
      const ip = withEpoch ? `@${epoch}` : '';
      out.push(`${f.join(':')}=${backendId}${ip}${v.readUInt32LE(at + FLOW_AT.referenced) ? '*' : ''}${good ? '' : ' (bad check)'}`);
    }
  }
  return out;
}

/** if_macs slot of an ifindex (lb_abi.h LB_IF_SLOTS). */
export function ifMacSlot(ifindex: number): number {
  return ifindex & (LB.IF_SLOTS - 1);
}

/** Makes if_macs hold exactly `macs` (ifindex -> MAC): every other slot zeroed (unknown). */
export function installIfMacs(maps: MapAccess, macs: Map<number, Buffer>): void {
  const want = new Map<number, Buffer>();
  for (const [ifindex, mac] of macs) {
    const v = Buffer.alloc(12);
    v.writeUInt32LE(ifindex >>> 0, 0);
    mac.copy(v, 4, 0, 6);
    want.set(ifMacSlot(ifindex), v);
  }
  for (const k of maps.keys('if_macs')) {
    const slot = k.readUInt32LE(0);
    const v = maps.lookup('if_macs', k);
    const next = want.get(slot) ?? Buffer.alloc(12);
    if (!v || !v.equals(next)) maps.update('if_macs', k, next);
  }
}

/** Installed inner tables (marks tables by service id), to close when the state is replaced. */
export interface Installed { innerFds: number[]; marksFdByService?: Map<number, number> }

/** The `seen` bytes the program left in the installed marks tables: service id -> slots seen. */
export function readSeen(maps: MapAccess, installed: Installed): Map<number, number[]> {
  const out = new Map<number, number[]>();
  for (const [id, fd] of installed.marksFdByService ?? []) {
    const bytes = maps.readInnerTable(fd);
    const seen: number[] = [];
    for (let slot = 0; (slot + 1) * MARK_BYTES <= bytes.length; slot++) if (bytes[slot * MARK_BYTES + 8]) seen.push(slot);
    out.set(id, seen);
  }
  return out;
}

/**
 * Writes `state` into the maps (replacing services, vips, backends, reverse, maglev, settings,
 * tx_ports and flows wholesale). @throws whatever the map operations throw.
 */
export function installState(maps: MapAccess, state: ModelState, previous?: Installed): Installed {
  for (const name of ['services', 'vips', 'reverse', 'reverse_frags', 'tx_ports']) {
    for (const k of maps.keys(name)) maps.delete(name, k);
  }
  for (const id of [...state.maglev.keys(), ...state.services.map((s) => s.id)]) {
    maps.delete('maglev', u32le(id));
    maps.delete('maglev_marks', u32le(id));
  }
  for (const fd of previous?.innerFds ?? []) maps.closeFd(fd);

  maps.update('settings', u32le(0), settingsFor(state, state.settings));
  installState6(maps, state);
  // service_slots: every slot zeroed, then the first service of each slot (as the reconciler).
  for (const k of maps.keys('service_slots')) {
    const v = maps.lookup('service_slots', k);
    if (v && v.some((byte) => byte !== 0)) maps.update('service_slots', k, Buffer.alloc(v.length));
  }
  const slotted = new Set<number>();
  for (const s of state.services) {
    const key = serviceKey(s.vip, s.port, s.proto);
    const value = serviceValue(s.id, s.tableSize, s.mode);
    maps.update('services', key, value);
    const index = serviceSlotIndex(key);
    if (!slotted.has(index)) {
      slotted.add(index);
      maps.update('service_slots', u32le(index), Buffer.concat([key, value.subarray(0, 12)]));
    }
  }
  for (const vip of state.vips) maps.update('vips', be32(vip), u32le(state.services.filter((s) => s.vip === vip).length));
  for (const b of state.backends.values()) maps.update('backends', u32le(b.id), backendValue(b.ip, b.port, b.flags, b.serviceId, state.services));
  for (const r of state.reverse) maps.update('reverse', reverseKey(r.ip, r.port, r.proto), reverseValue(r.vip, r.vport, r.serviceId, r.backendId));
  for (const r of state.reverseFrags) maps.update('reverse_frags', reverseKey(r.ip, 0, r.proto), reverseValue(r.vip, 0, r.serviceId, r.backendId));
  for (const p of state.txPorts) maps.update('tx_ports', u32le(p), u32le(p));
  installIfMacs(maps, state.ifMacs);
  const innerFds: number[] = [];
  const marksFdByService = new Map<number, number>();
  for (const [id, table] of state.maglev) {
    const marks = state.marks?.get(id);
    if (marks?.size) {
      const mfd = maps.createInnerTable(table.length, MARK_BYTES, slotMarkBytes(table.length, marks));
      innerFds.push(mfd);
      marksFdByService.set(id, mfd);
      maps.update('maglev_marks', u32le(id), u32le(mfd));
    }
    const fd = maps.createInnerTable(table.length, 4, slotIdBytes(table, marks));
    innerFds.push(fd);
    maps.update('maglev', u32le(id), u32le(fd));
  }
  installFlows(maps, state);
  return { innerFds, marksFdByService };
}

// ---- counters ----------------------------------------------------------------------------------

/** Sums a per-CPU value of `fields` u64 counters over every CPU. */
function perCpuSum(maps: MapAccess, map: string, index: number, fields: number): bigint[] {
  const raw = maps.lookup(map, u32le(index));
  const sums = new Array<bigint>(fields).fill(0n);
  if (!raw) return sums;
  const stride = fields * 8;
  for (let cpu = 0; cpu < maps.possibleCpus; cpu++) {
    for (let f = 0; f < fields; f++) sums[f] += raw.readBigUInt64LE(cpu * stride + f * 8);
  }
  return sums;
}

export interface Counters {
  /** [reason * LB.ACTION_SLOTS + action][packets, bytes]: the verdicts as reported (verdict_stats
   * with the backend_fast_stats slots read added as forwarded/reversed, tx/redirect:
   * src/dataplane/counters.ts) */
  verdicts: bigint[][];
  actions: bigint[][];     // [action][packets, bytes]: verdicts summed per action
  reasons: bigint[][];     // [reason][packets, bytes]: verdicts summed per reason
  /** The maps as they are: verdict_stats by slot, backend_fast_stats by slot (those read) */
  verdictStats: bigint[][];
  fast: Map<number, bigint[]>;   // backend id (+ half the map for REDIRECT) -> [fwdP, fwdB, revP, revB]
  services: Map<number, bigint[]>;   // service_stats: id -> [fwdP, fwdB, revP, revB]
  backends: Map<number, bigint[]>;   // backend_stats
}

/** The program's fast_redirect_base: half of backend_fast_stats (its REDIRECT slots' offset). */
export function fastRedirectBase(maps: MapAccess): number {
  return maps.maxEntries('backend_fast_stats') / 2;
}

/** Reads the verdict counters (and their per-action, per-reason sums) and the service/backend
 * counters of the given ids; the fast counters of `backendIds`, or of every backend id when
 * none is given. */
export function readCounters(maps: MapAccess, serviceIds: number[], backendIds: number[]): Counters {
  const range = (n: number) => Array.from({ length: n }, (_, i) => i);
  const verdictStats = range(LB.VERDICT_SLOTS).map((i) => perCpuSum(maps, 'verdict_stats', i, 2));
  const base = fastRedirectBase(maps);
  const fastSlots = backendIds.length
    ? backendIds.flatMap((id) => [id, id + base])
    : maps.keys('backend_fast_stats').map((k) => k.readUInt32LE(0));
  const fast = new Map(fastSlots.map((i) => [i, perCpuSum(maps, 'backend_fast_stats', i, 4)]));
  const verdicts = verdictStats.map((c) => [...c]);
  for (const [slot, c] of fast) {
    const action = slot >= base ? LB.ACTION_REDIRECT : LB.ACTION_TX;
    for (const [reason, p, b] of [[LB.REASON_FORWARDED, c[0], c[1]], [LB.REASON_REVERSED, c[2], c[3]]] as const) {
      const row = verdicts[reason * LB.ACTION_SLOTS + action];
      row[0] += p;
      row[1] += b;
    }
  }
  const total = (slots: number[]) => slots.reduce((s, i) => [s[0] + verdicts[i][0], s[1] + verdicts[i][1]], [0n, 0n]);
  return {
    verdicts, verdictStats, fast,
    actions: range(LB.ACTION_SLOTS).map((a) => total(range(LB.REASON_SLOTS).map((r) => r * LB.ACTION_SLOTS + a))),
    reasons: range(LB.REASON_SLOTS).map((r) => total(range(LB.ACTION_SLOTS).map((a) => r * LB.ACTION_SLOTS + a))),
    services: new Map(serviceIds.map((id) => [id, perCpuSum(maps, 'service_stats', id, 4)])),
    backends: new Map(backendIds.map((id) => [id, perCpuSum(maps, 'backend_stats', id, 4)])),
  };
}

/** Every map counter that differs between two reads, as "map[index].field: +delta". */
export function counterDeltas(before: Counters, after: Counters): string[] {
  const out: string[] = [];
  const cmp = (name: string, fields: string[], a: bigint[], b: bigint[], index: number) => {
    fields.forEach((f, i) => { if (b[i] !== a[i]) out.push(`${name}[${index}].${f}: +${b[i] - a[i]}`); });
  };
  before.verdictStats.forEach((a, i) => cmp('verdict_stats', ['packets', 'bytes'], a, after.verdictStats[i], i));
  const flowFields = ['fwd_packets', 'fwd_bytes', 'rev_packets', 'rev_bytes'];
  for (const [id, a] of before.services) cmp('service_stats', flowFields, a, after.services.get(id)!, id);
  for (const [id, a] of before.backends) cmp('backend_stats', flowFields, a, after.backends.get(id)!, id);
  for (const [slot, a] of before.fast) cmp('backend_fast_stats', flowFields, a, after.fast.get(slot)!, slot);
  return out.sort();
}
