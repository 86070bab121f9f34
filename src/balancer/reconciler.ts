/**
 * The reconciler: turns a DataplaneState into the balancer's map contents. Nothing else writes
 * the services / vips / maglev / backends / reverse / settings maps.
 *
 * It compares the desired bytes with what the maps hold and writes only the difference (so a
 * second apply of the same state writes nothing), in an order where a packet never meets a
 * half state:
 *   1. backends that become usable and reverse entries, then settings (whose VIP filter gains
 *      the new VIPs' bits before any of them goes live);
 *   2. per service: the slots that changed written in place in the installed inner Maglev
 *      array (marks, then ids, then the marks that go: maglev-tables.ts writeMaglevSlotsFlat),
 *      or for a new service or a size change a NEW inner array (and its marks array, kept while
 *      the table lives) swapped in with one outer-map update; and the service entry, ordered so
 *      service.table_size never exceeds the installed table's size. An outer-map update waits
 *      for an RCU grace period in the kernel (5-20 ms), an in-place write does not
 *      (docs/decisions.md, "Control plane at kernel speed");
 *   3. vips (a VIP goes live only once its services are complete);
 *   4. backends that stop taking traffic (unhealthy) lose ACTIVE only after leaving the tables;
 *   5. what is gone: vips, services, outer entries, reverse entries, then backends (ACTIVE
 *      cleared, then zeroed) and their counters (a removed service's flows cached on its
 *      backends end there, at the end of the same apply). A removed NAT backend's reverse
 *      entry stays for settings.reverseGraceSeconds (its late FIN/RST/retransmits still leave
 *      from the VIP), counted under no backend, unless a new backend claims its key; the
 *      daemon calls expireReverse() when nextReverseExpiry() comes;
 *   6. settings again: the VIP filter loses the bits of the VIPs that are gone.
 * Ids: services 1..maxServices-1 and backends 1..maxBackends-1, allocated round-robin so a
 * freed id is reused as late as possible (flow caches may still name it).
 * IPv6 services go to the sibling maps (services6, service_slots6, vips6, backends6, reverse6,
 * settings' vip_filter6) in the same steps and order (src/balancer/family.ts); ids are one space over both
 * families, so the Maglev tables and their transition marks are the same code for both.
 */
import { buildMaglevTable, MAX_WEIGHT, type MaglevBackend } from './maglev';
import { buildMaglevTablesOffThread, OFF_THREAD_MIN_SLOTS } from './maglev-offthread';
import { crossServiceRuleBreaks, serviceRuleBreaks } from '../config/rules';
import { DEFAULT_REVERSE_GRACE_SECONDS, type DataplaneBackend, type DataplaneService, type DataplaneState } from '../dataplane/types';
import { vipFilterWords, vipFilterWords6 } from '../dataplane/jhash';
import {
  LB, LbBackendCodec, LbServiceCodec, LbFlowStatsCodec, LbRetiredStatsCodec,
  encodeU32, decodeU32, decodePerCpuSum, ipv4ToBytes,
  type LbBackend, type LbService, type LbServiceKey,
} from '../dataplane/abi';
import { typedLbMap, type LbTypedMap } from '../dataplane/typed-map';
import {
  codecOfBackend, codecOfReverse, familyCodec, familyUnionMaps, isServiceKey4, vipFromKey, zeroLike, FAMILY6, ServiceSlotsUnion, type Family6Maps,
} from './family';
import { familyOf, isCanonicalAddress, joinHostPort } from '../domain/address';
import { SLOT, SLOT_WORDS } from '../dataplane/maglev-tables';
import { addFast, fastSlot, ZERO_FLOW, type FastCounters } from '../dataplane/counters';
import { DEFAULT_TRANSITION_SECONDS, idBitmap, markedCount, sameCurrent, SlotTimes, startWindows, sweepSlots, transitionSlots, transitionSummary, unmarkedSlots, type SlotBuffers, type SlotDiff } from './transitions';
import type { ServiceTransitionView } from '../domain/types';

/** The part of a bridge BpfMap the reconciler uses. */
export interface KernelMap {
  lookup(key: Buffer): Buffer | null;
  update(key: Buffer, value: Buffer, flag?: 'any' | 'noexist' | 'exist'): void;
  delete(key: Buffer): boolean | void;
  keys(): Iterable<Buffer>;
  /** The Maglev outer maps (MaglevOuterMaps): the table at `key` of `size` slots is not in the
   * map for its size (written anew, not in place). */
  misplaced?(key: Buffer, size: number): boolean;
}

export interface ReconcilerMaps {
  services: KernelMap;
  vips: KernelMap;
  maglev: KernelMap;
  /** service_slots: direct-indexed copies of services entries (absent: none kept; IPv6: v6.serviceSlots6) */
  serviceSlots?: KernelMap;
  /** maglev_marks: service id -> the transition marks of its moved slots (absent: no marks kept) */
  maglevMarks?: KernelMap;
  backends: KernelMap;
  reverse: KernelMap;
  settings: KernelMap;
  serviceStats?: KernelMap;
  backendStats?: KernelMap;
  /** backend_fast_stats and retired_stats (src/dataplane/counters.ts): a removed backend's fast
   * counters are carried into retired_stats under its service (absent: pins of a build before
   * them, nothing to carry) */
  backendFastStats?: KernelMap;
  retiredStats?: KernelMap;
  /** The IPv6 siblings (src/balancer/family.ts); absent: IPv6 services are refused. */
  v6?: Family6Maps;
}

export interface ReconcilerLimits {
  maxServices: number;
  maxBackends: number;
  maxVips: number;
  maxReverse: number;
  /** largest Maglev table size accepted */
  maglevMaxSize: number;
}

/** Freshly created inner arrays holding `slots` (flat: SLOT_WORDS words per slot, current backend
 * then its mark; src/dataplane/maglev-tables.ts): `fd` goes into maglev, `marksFd` (when some
 * slot is moved) into maglev_marks. */
export interface InnerTable { fd: number; marksFd?: number | null; close(): void }
export type CreateInnerTable = (slots: Uint32Array, withMarks?: boolean) => InnerTable;
/** Reads an installed table (flat slots) from its outer-map values (maglev's, maglev_marks' or null); null when gone. */
export type ReadInnerTable = (outerValue: Buffer, marksOuterValue: Buffer | null) => Uint32Array | null;
/** Writes slots of an installed table in place (`indices`, and SLOT_WORDS `words` per slot back to
 * back); false when it is gone or a slot would need a marks table it does not have. */
export type WriteInnerSlots = (outerValue: Buffer, marksOuterValue: Buffer | null, indices: ArrayLike<number>, words: ArrayLike<number>) => boolean;

/** What one transition sweep did (sweepTransitions). */
export interface SweepResult { cleared: number; aged: number; marked: number }

/** What one apply did: map writes (an in-place table write counts its slots), and the ids of the
 * services whose Maglev table changed (written in place or swapped: one step per service). */
export interface ApplyResult {
  writes: number;
  tablesSwapped: number[];
  /** Every service and backend kept its key and id since the last completed apply (only
   * flags, weights or tables changed): what depends on keys and ids alone is unchanged. */
  sameKeys: boolean;
  /** Backends whose entry was encoded and compared with the map: those whose id or entry is not
   * the last completed apply's (the others are known to be in the map as they are). */
  backendsCompared: number;
}

const PROTO_NUMBER = { tcp: 6, udp: 17 } as const;
/** Slots of the recently built tables kept for pools seen again (8 MiB of u32: 32 tables of 65537). */
const RECENT_TABLE_SLOTS = 1 << 21;
/** Spare slot tables kept for reuse (Reconciler.spareTables), words in all: 16 MiB. */
const SPARE_TABLE_WORDS = 1 << 22;
const ZERO_BACKEND = Buffer.alloc(LbBackendCodec.size);
/** The VIP filter's input of an IPv4 VIP: its address as a host-order u32. */
function vipKey4(vip: string): number {
  return ipv4ToBytes(vip).readUInt32BE(0);
}

export class ReconcileError extends Error {
  override name = 'ReconcileError';
}

/**
 * A state that breaks an invariant apply() relies on: an internal error (the state did not come
 * from a validated DesiredState, or the layers above let a broken rule through), never a user's.
 */
export class ReconcileInvariantError extends ReconcileError {
  override name = 'ReconcileInvariantError';
  constructor(readonly invariant: string, detail: string) {
    super(`invariant "${invariant}" broken: ${detail}`);
  }
}

function serviceKeyOf(s: DataplaneService): LbServiceKey {
  return { vip: s.vip, port: s.port, proto: PROTO_NUMBER[s.protocol] };
}

function backendKey(b: { address: string; port: number }): string {
  return joinHostPort(b.address, b.port);
}

function backendFlags(b: DataplaneBackend): number {
  if (!b.healthy) return 0; // its cached flows must move elsewhere
  return LB.BACKEND_F_ACTIVE | (b.draining || b.weight === 0 ? LB.BACKEND_F_DRAINING : 0);
}

function inTable(b: DataplaneBackend): boolean {
  return b.healthy && !b.draining && b.weight > 0;
}

/** Code-point order of Maglev keys, the order buildMaglevTable walks backends in. */
function byMaglevKey(a: { key: string }, b: { key: string }): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

/** What a Maglev table depends on: its size and the key-ordered {key, weight} of its pool. */
function poolSignature(byKey: Array<{ key: string; weight: number }>, size: number): string {
  return `${size}|${byKey.map((b) => `${b.key}*${b.weight}`).join(',')}`;
}

/** A marked slot whose previous backend is no longer one of the service's. */
function hasUnknownPrev(slots: Uint32Array, known: ReadonlySet<number>): boolean {
  const isKnown = idBitmap(known);
  for (let i = SLOT.prev; i < slots.length; i += SLOT_WORDS) {
    const prev = slots[i];
    if (prev !== 0 && !(prev < isKnown.length && isKnown[prev])) return true;
  }
  return false;
}

function sameTable(a: Uint32Array | undefined, b: Uint32Array): boolean {
  if (!a || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Plan of one service: ids and the bytes it should produce. */
interface ServicePlan {
  service: DataplaneService;
  /** service's fields as they were at plan time */
  fields: PlannedService;
  id: number;
  key: Buffer;
  value: LbService;
  table: Uint32Array; // backend ids by slot (empty: no usable backend)
  backends: PlannedBackend[];
  /**
   * The service's key, mode and id, and its backends' addresses, ports and ids in order, are
   * those of the last completed apply (Reconciler.settled): its reverse entries, reverse_frags
   * and backend ids are unchanged, and no backend of it is gone.
   */
  sameKeys: boolean;
}

/** One backend of a ServicePlan. `same`: its id and map value are those of the last completed
 * apply, so the backends map holds them (nothing to compare, nothing to write). `address`,
 * `port`, `flags` and `poolWeight` (its weight in the table, -1 when out of it) are copies: the
 * next apply compares with them, whatever the caller did with `spec` since. */
interface PlannedBackend {
  spec: DataplaneBackend; id: number; value: Buffer; same: boolean;
  address: string; port: number; flags: number; poolWeight: number;
}

/** The fields of a service the backends' entries and the table depend on, copied at plan time. */
interface PlannedService { name: string; vip: string; port: number; protocol: string; mode: string; tableSize: number }

export class Reconciler {
  private readonly serviceIdByName = new Map<string, number>();
  private readonly serviceNameById = new Map<number, string>();
  /** service key hex -> id, from the maps after recover(); claimed by name on the next apply */
  private readonly recoveredServiceIds = new Map<string, number>();
  /** `${serviceId}|${address}:${port}` -> backend id */
  private readonly backendIds = new Map<string, number>();
  private readonly backendById = new Map<number, { serviceId: number; key: string }>();
  /** slots (flat, SLOT_WORDS words each) of each service's installed Maglev table, by service id */
  private readonly installedTables = new Map<number, Uint32Array>();
  /** service_slots contents (slot index -> its 20 bytes as hex; absent: zero), read once */
  private serviceSlotsMirror?: Map<number, string>;
  /** marked (moved) slots of each service's installed table, by service id (absent: 0) */
  private readonly markCounts = new Map<number, number>();
  /** per service id: slot -> when its transition window (re)started (ms, now()), while YOUNG */
  private readonly youngSince = new Map<number, SlotTimes>();
  /** the epoch of the last transition started (seconds of now(), strictly increasing) */
  private lastEpoch = 0;
  /** the sweep period (settings.transitionSeconds of the last apply), ms */
  private transitionMs = DEFAULT_TRANSITION_SECONDS * 1000;
  private readonly tableBackendKeys = new Map<number, Map<number, string>>();
  /** last built table per service id with the inputs it was built from (builds cost ~10-50 ms) */
  private readonly builtTables = new Map<number, { signature: string; poolSignature: string; table: Uint32Array }>();
  /** tables built ahead by prebuildTables(), by poolSignature(): slot -> index in key order */
  private readonly prebuilt = new Map<string, Uint32Array>();
  /**
   * Tables built recently, by poolSignature() (slot -> index in key order), least recently used
   * first, at most RECENT_TABLE_SLOTS slots in all: a pool seen again (a backend down then up, a
   * drain undone, a weight put back) takes its table without a build.
   */
  private readonly recentTables = new Map<string, Uint32Array>();
  private recentSlots = 0;
  /** reverse entries of removed NAT backends, by key hex: when they go (ms, now()) */
  private readonly reverseGrace = new Map<string, number>();
  /** The slot diff of the last transitionSlots() (writeInPlace takes it instead of a new pass). */
  private lastDiff: { slots: Uint32Array; diff: SlotDiff } | null = null;
  /**
   * Per service id: the table installed before the current one (nothing else holds it), which
   * the next change's transitionSlots() writes into instead of allocating 16 bytes per slot
   * (at most SPARE_TABLE_WORDS words in all); and the scratch arrays of a change's slot diff
   * and in-place words. Fewer large allocations per change, fewer GC pauses on the kernel path.
   */
  private readonly spareTables = new Map<number, Uint32Array>();
  private spareWords = 0;
  private readonly slotBuffers: SlotBuffers = {};
  private wordsScratch = new Uint32Array(0);
  /**
   * The plans of the last apply that completed, by service id: the maps hold what they say
   * (this reconciler is their only writer). The next apply encodes and compares only the
   * backends that differ from them (position by position), so a change's cost follows what
   * changed, not the pool. Null before the first apply and while an apply runs (one that
   * throws leaves it null: the next compares everything with the maps).
   */
  private settled: Map<number, ServicePlan> | null = null;
  private nextServiceId = 1;
  private nextBackendId = 1;
  private writes = 0;
  /**
   * What the reverse and backends maps hold, as this reconciler (their only writer) last read or
   * wrote it: reading 1000 entries back costs 1000-2000 syscalls on every apply. Filled per key
   * on first lookup (reverse: in full on first use), kept in step by write() and remove().
   */
  private readonly mirrors = new Map<KernelMap, { complete: boolean; entries: Map<string, Buffer | null> }>();
  /** Encoded map keys and values by their fields (the codecs cost ~10 us an entry), bounded. */
  private readonly encoded = new Map<string, Buffer>();
  /** The maps read and written in decoded values (the generated codecs of lb.o's maps). */
  private typedMaps?: { backends: LbTypedMap<'backends'>; vips: LbTypedMap<'vips'>; settings: LbTypedMap<'settings'> };
  private get typed() {
    return this.typedMaps ??= {
      backends: typedLbMap('backends', this.maps.backends),
      vips: typedLbMap('vips', this.maps.vips),
      settings: typedLbMap('settings', this.maps.settings),
    };
  }
  /** The v4 and v6 map of each address-keyed kind as one (src/balancer/family.ts). */
  private unionMaps?: ReconcilerMaps;
  private get fm(): ReconcilerMaps {
    return this.unionMaps ??= familyUnionMaps(this.maps);
  }
  /** service_slots and service_slots6 as one array of slots (src/balancer/family.ts). */
  private slotsUnion?: ServiceSlotsUnion;
  private get slots(): ServiceSlotsUnion {
    return this.slotsUnion ??= new ServiceSlotsUnion(this.maps.serviceSlots, this.maps.v6?.serviceSlots6);
  }
  private typedMaps6?: { backends: LbTypedMap<'backends6'>; vips: LbTypedMap<'vips6'> } | null;
  private get typed6() {
    if (this.typedMaps6 === undefined) {
      const v6 = this.maps.v6;
      this.typedMaps6 = v6 ? { backends: typedLbMap('backends6', v6.backends6), vips: typedLbMap('vips6', v6.vips6) } : null;
    }
    return this.typedMaps6;
  }

  constructor(
    private readonly maps: ReconcilerMaps,
    private readonly limits: ReconcilerLimits,
    private readonly createInnerTable: CreateInnerTable,
    /** Reads back an installed inner table from its outer-map value (adopt: no needless swap). */
    private readonly readInnerTable?: ReadInnerTable,
    /** The clock of the reverse grace period and the transition sweeps (ms). */
    private readonly now: () => number = Date.now,
    /** Writes transition marks in place (sweepTransitions; without it sweeps only read). */
    private readonly writeInnerSlots?: WriteInnerSlots,
  ) {}

  /** Re-learns service and backend ids from the maps (after adopting pinned maps). */
  recover(): void {
    let maxService = 0;
    for (const key of this.fm.services.keys()) {
      const value = this.fm.services.lookup(key);
      if (!value) continue;
      const svc = LbServiceCodec.decode(value);
      this.recoveredServiceIds.set(key.toString('hex'), svc.id);
      maxService = Math.max(maxService, svc.id);
      const outer = this.maps.maglev.lookup(encodeU32(svc.id));
      const table = outer && this.readInnerTable ? this.readInnerTable(outer, this.maps.maglevMarks?.lookup(encodeU32(svc.id)) ?? null) : null;
      if (table) {
        this.installedTables.set(svc.id, table);
        this.markCounts.set(svc.id, markedCount(table));
        // A window whose start is unknown (the previous daemon's) starts now.
        const young = new SlotTimes(table.length / SLOT_WORDS);
        for (let i = 0; i * SLOT_WORDS < table.length; i++) {
          if (table[i * SLOT_WORDS + SLOT.prev] !== 0 && (table[i * SLOT_WORDS + SLOT.seenFlags] >> 8) & LB.SLOT_F_YOUNG) young.set(i, this.now());
        }
        if (young.size) this.youngSince.set(svc.id, young);
        this.prepareForChanges(svc.id, table.length);
      } else if (!outer && svc.tableSize === 0) this.installedTables.set(svc.id, new Uint32Array(0));
    }
    let maxBackend = 0;
    for (let id = 1; id < this.limits.maxBackends; id++) {
      let b = this.typed.backends.get(id);
      if (!b || LbBackendCodec.encode(b).equals(ZERO_BACKEND)) {
        b = this.typed6?.backends.get(id) ?? null;   // one id space: the id may be an IPv6 backend's
        if (!b || FAMILY6.backend(b).every((x) => x === 0)) continue;
      }
      const key = joinHostPort(b.ip, b.port);
      this.backendIds.set(`${b.serviceId}|${key}`, id);
      this.backendById.set(id, { serviceId: b.serviceId, key });
      maxBackend = id;
    }
    this.nextServiceId = maxService + 1 >= this.limits.maxServices ? 1 : maxService + 1;
    this.nextBackendId = maxBackend + 1 >= this.limits.maxBackends ? 1 : maxBackend + 1;
  }

  /** [id, name] of every service of the last applied state. */
  services(): Array<[number, string]> {
    return [...this.serviceNameById];
  }

  /** [id, {serviceId, key "address:port"}] of every backend the maps hold. */
  backends(): Array<[number, { serviceId: number; key: string }]> {
    return [...this.backendById];
  }

  /** Name of the service with this id, or null. */
  serviceName(id: number): string | null {
    return this.serviceNameById.get(id) ?? null;
  }

  serviceId(name: string): number | null {
    return this.serviceIdByName.get(name) ?? null;
  }

  /** "address:port" of a backend id, or null. */
  backendName(id: number): string | null {
    return this.backendById.get(id)?.key ?? null;
  }

  backendId(serviceName: string, address: string, port: number): number | null {
    const sid = this.serviceIdByName.get(serviceName);
    if (sid === undefined) return null;
    return this.backendIds.get(`${sid}|${joinHostPort(address, port)}`) ?? null;
  }

  /** The installed Maglev table of a service: backend "address:port" -> fraction of slots. */
  tableShares(serviceName: string): Record<string, number> | null {
    const id = this.serviceIdByName.get(serviceName);
    if (id === undefined) return null;
    const table = this.installedTables.get(id);
    const names = this.tableBackendKeys.get(id);
    if (!table || !names) return {};
    let max = 0;
    for (const bid of names.keys()) if (bid > max) max = bid;
    const counts = new Uint32Array(max + 1);
    const slots = table.length / SLOT_WORDS;
    for (let i = 0; i < table.length; i += SLOT_WORDS) if (table[i] <= max) counts[table[i]]++;
    const out: Record<string, number> = {};
    for (const [bid, key] of names) out[key] = slots ? counts[bid] / slots : 0;
    return out;
  }

  /**
   * Asserts the invariants apply() relies on (no map is touched). It validates nothing itself:
   * the rules are the config's (src/config/rules.ts, the same functions src/config/state.ts
   * reports to users), asserted here for the ones the maps depend on; the rest is what the
   * maps, the codecs and Maglev can hold. A state built from a DesiredState always passes.
   * @throws ReconcileInvariantError naming the invariant, the service and the backend
   */
  assertInvariants(state: DataplaneState): void {
    const broken = (invariant: string, detail: string): never => { throw new ReconcileInvariantError(invariant, detail); };
    const own = state.services.map((s) => serviceRuleBreaks(s, s.tableSize));
    const across = crossServiceRuleBreaks(state.services);
    let reverseCount = 0;
    let reverseCount6 = 0;
    let backendCount = 0;
    state.services.forEach((s, i) => {
      const where = `service "${s.name}"`;
      // What the codecs take (the config's own formats are narrower: src/config/schema.ts).
      if (!isCanonicalAddress(s.vip)) broken('encodable', `${where}: vip "${s.vip}" is not an address in canonical form`);
      if (familyOf(s.vip) === 6 && !this.maps.v6) broken('encodable', `${where}: IPv6 VIP ${s.vip} but the data plane has no IPv6 maps`);
      if (own[i].some((rule) => rule.rule === 'family')) broken('family', `${where}: a backend is not of the VIP's family (one family per service)`);
      if (!Number.isInteger(s.port) || s.port < 0 || s.port > 65535) broken('encodable', `${where}: port ${s.port} is not 0..65535`);
      if (!(s.protocol in PROTO_NUMBER)) broken('encodable', `${where}: protocol "${s.protocol}" is not tcp or udp`);
      if (s.mode !== 'nat' && s.mode !== 'dsr') broken('encodable', `${where}: mode "${s.mode}" is not nat or dsr`);
      // The config's rules (src/config/rules.ts) the maps depend on, then what the maps take.
      const mine = across.filter((rule) => rule.service === i);
      if (mine.some((rule) => rule.rule === 'duplicate-name')) broken('duplicate-name', `${where}: duplicate name`);
      if (own[i].some((rule) => rule.rule === 'table-size-prime')) broken('table-size-prime', `${where}: tableSize ${s.tableSize} is not a prime`);
      if (s.tableSize > this.limits.maglevMaxSize) {
        broken('capacity', `${where}: tableSize ${s.tableSize} exceeds the largest table the data plane takes (${this.limits.maglevMaxSize})`);
      }
      for (const rule of mine) {
        if (rule.rule === 'duplicate-listener') {
          broken(rule.rule, `${where}: ${joinHostPort(s.vip, s.port)}/${s.protocol} is already service "${state.services[rule.first].name}"`);
        }
      }
      s.backends.forEach((b, n) => {
        const bkey = backendKey(b);
        const bwhere = `${where} backend ${bkey}`;
        if (!isCanonicalAddress(b.address)) broken('encodable', `${where}: backend address "${b.address}" is not an address in canonical form`);
        if (!Number.isInteger(b.port) || b.port < 0 || b.port > 65535) broken('encodable', `${bwhere}: port is not 0..65535`);
        if (!Number.isInteger(b.weight) || b.weight < 0 || b.weight > MAX_WEIGHT) {
          broken('encodable', `${bwhere}: weight ${b.weight} is not an integer in 0..${MAX_WEIGHT}`);
        }
        for (const rule of own[i]) {
          if (rule.rule === 'duplicate-destination' && rule.backend === n) {
            const twin = backendKey(s.backends[rule.first]);
            broken(rule.rule, `${bwhere}: ${twin === bkey ? 'listed twice' : `the same destination as backend ${twin}`}`);
          }
        }
        for (const rule of own[i]) {
          if (rule.rule === 'dsr-port' && rule.backend === n) broken(rule.rule, `${bwhere}: DSR cannot translate ports: backend port must be 0 or ${s.port}`);
          if (rule.rule === 'nat-port-0' && rule.backend === n) {
            broken(rule.rule, `${bwhere}: a NAT service on every port (port 0) needs backends on port 0, replies could not be mapped back`);
          }
        }
        for (const rule of mine) {
          if (rule.rule !== 'reverse-clash' || rule.backend !== n) continue;
          const other = state.services[rule.other];
          broken(rule.rule, `${bwhere}: NAT replies from ${b.address}/${s.protocol} port ${rule.ports} would match both ` +
            `service "${other.name}" (${backendKey(other.backends[rule.otherBackend])}) and "${s.name}"`);
        }
        // backend-is-vip is the config's policy (packets would loop), not something the maps need.
      });
      // Maglev needs a slot per usable backend (the config asks one per backend, usable or not).
      const usable = s.backends.filter(inTable).length;
      if (usable > s.tableSize) broken('table-size-backends', `${where}: tableSize ${s.tableSize} is smaller than its ${usable} usable backends`);
      backendCount += s.backends.length;
      if (s.mode === 'nat' && familyOf(s.vip) === 4) reverseCount += s.backends.length;
      if (s.mode === 'nat' && familyOf(s.vip) === 6) reverseCount6 += s.backends.length;
    });
    // What the maps hold (vips6 and reverse6 have the sizes of vips and reverse).
    const vips = new Set(state.services.filter((s) => familyOf(s.vip) === 4).map((s) => s.vip)).size;
    const vips6 = new Set(state.services.filter((s) => familyOf(s.vip) === 6).map((s) => s.vip)).size;
    if (vips6 > this.limits.maxVips) broken('capacity', `${vips6} IPv6 VIPs exceed the data plane's ${this.limits.maxVips}`);
    if (reverseCount6 > this.limits.maxReverse) broken('capacity', `${reverseCount6} IPv6 NAT backends exceed the reverse6 map's ${this.limits.maxReverse} entries`);
    if (state.services.length > this.limits.maxServices - 1) {
      broken('capacity', `${state.services.length} services exceed the data plane's ${this.limits.maxServices - 1}`);
    }
    if (vips > this.limits.maxVips) broken('capacity', `${vips} VIPs exceed the data plane's ${this.limits.maxVips}`);
    if (reverseCount > this.limits.maxReverse) broken('capacity', `${reverseCount} NAT backends exceed the reverse map's ${this.limits.maxReverse} entries`);
    if (backendCount > this.limits.maxBackends - 1) broken('capacity', `${backendCount} backends exceed the data plane's ${this.limits.maxBackends - 1}`);
    const st = state.settings;
    if (st.fragPolicy !== 'drop' && st.fragPolicy !== 'pass') broken('encodable', `settings: fragPolicy "${st.fragPolicy}" is not drop or pass`);
    if (!Number.isInteger(st.sampleRate) || st.sampleRate < 0 || st.sampleRate > 0xffffffff) {
      broken('encodable', `settings: sampleRate ${st.sampleRate} is not an integer >= 0`);
    }
  }

  /**
   * Makes the maps hold `state`, writing only what differs.
   * @throws ReconcileInvariantError (before any write) when the state breaks an invariant
   *   (assertInvariants); ReconcileError when no id is free; BpfError from the bridge when
   *   the kernel refuses a write
   */
  apply(state: DataplaneState): ApplyResult {
    this.assertInvariants(state);
    return this.applyAsserted(state);
  }

  /**
   * apply() of a state whose assertInvariants() the caller has just run (Balancer.applyStateAsync:
   * the check costs ~1 ms at 1000 backends, once is enough). The state must not have changed since.
   */
  applyAsserted(state: DataplaneState): ApplyResult {
    const before = this.writes;
    // What the last completed apply planned; none while this one runs, so that one that throws
    // half-way leaves the next to compare everything with the maps again.
    const settled = this.settled;
    this.settled = null;
    const plans = this.plan(state, settled);
    this.prebuilt.clear();   // plan() took what it needed
    const tablesSwapped: number[] = [];
    const m = this.fm;   // services, vips, backends, reverse: both families (src/balancer/family.ts)
    // Every service and every backend with the key and id of the last completed apply (e.g. a
    // bulk drain, weights, health): no backend, reverse entry or service is new or gone, and
    // the reverse entries are the ones the maps hold. Only what changed is compared below.
    const sameKeys = settled !== null && plans.length === settled.size && plans.every((p) => p.sameKeys);

    // 1. Backends that become usable, reverse entries, settings.
    // The backends whose id or value is not the last completed apply's (the others are in the
    // map as planned), with what the map holds for them before this apply.
    const changedBackends: Array<{ id: number; value: Buffer; current: Buffer }> = [];
    for (const p of plans) {
      for (const b of p.backends) {
        if (!b.same) changedBackends.push({ id: b.id, value: b.value, current: this.mirrorLookup(m.backends, encodeU32(b.id)) ?? ZERO_BACKEND });
      }
    }
    for (const { id, value, current } of changedBackends) {
      if (!current.equals(value) && (value[codecOfBackend(value).flagsAt] & LB.BACKEND_F_ACTIVE)) {
        this.write(m.backends, encodeU32(id), value);
      }
    }
    const desiredReverse = new Map<string, Buffer>();
    let currentReverse = new Map<string, Buffer>();
    if (!sameKeys) {
      for (const p of plans) {
        if (p.service.mode !== 'nat') continue;
        for (const b of p.backends) {
          const family = familyCodec(p.service.vip);
          const ip = b.spec.address;
          const port = b.spec.port || p.service.port;
          const proto = PROTO_NUMBER[p.service.protocol];
          const key = this.encodeOnce(`rk|${ip}|${port}|${proto}`, () => family.reverseKey({ ip, port, proto }));
          const value = this.encodeOnce(`rv|${p.service.vip}|${p.service.port}|${p.id}|${b.id}`,
            () => family.reverse({ vip: p.service.vip, vport: p.service.port, serviceId: p.id, backendId: b.id }));
          desiredReverse.set(key.toString('hex'), value);
        }
      }
      currentReverse = this.mirrorAll(m.reverse);
      // A key in its grace period that a backend claims again belongs to the new owner; grace
      // entries make room (soonest to go first) when new keys would overfill the map.
      for (const hex of [...this.reverseGrace.keys()]) if (desiredReverse.has(hex)) this.reverseGrace.delete(hex);
      // Counted per family: reverse and reverse6 are two maps of maxReverse entries each (a key's
      // hex length tells its family).
      const familyOfHex = (hex: string): number => (hex.length === FAMILY6.reverseKeySize * 2 ? 6 : 4);
      const reverseCounts = new Map<number, number>([[4, 0], [6, 0]]);
      for (const hex of new Set([...currentReverse.keys(), ...desiredReverse.keys()])) reverseCounts.set(familyOfHex(hex), reverseCounts.get(familyOfHex(hex))! + 1);
      for (const [hex] of [...this.reverseGrace].sort((a, b) => a[1] - b[1])) {
        const family = familyOfHex(hex);
        if (reverseCounts.get(family)! <= this.limits.maxReverse) continue;
        if (currentReverse.delete(hex)) { this.remove(m.reverse, Buffer.from(hex, 'hex')); reverseCounts.set(family, reverseCounts.get(family)! - 1); }
        this.reverseGrace.delete(hex);
      }
      for (const [hex, value] of desiredReverse) {
        if (!currentReverse.get(hex)?.equals(value)) this.write(m.reverse, Buffer.from(hex, 'hex'), value);
      }
    }
    // settings.vip_filter must cover every live VIP at every moment: here it takes the new
    // VIPs' bits on top of the current ones; step 6 drops the bits of VIPs that are gone.
    const knobs = {
      fragPolicy: state.settings.fragPolicy === 'pass' ? LB.FRAG_PASS : LB.FRAG_DROP,
      sampleRate: state.settings.sampleRate,
      flowCache: state.settings.flowCache ? 1 : 0,
      txRedirect: state.settings.txRedirect ? 1 : 0,
    };
    const desiredFilter = vipFilterWords(plans.filter((p) => isServiceKey4(p.key)).map((p) => vipKey4(p.service.vip)));
    const desiredFilter6 = vipFilterWords6(plans.filter((p) => !isServiceKey4(p.key)).map((p) => p.service.vip));
    const currentSettings = this.typed.settings.get(0);
    const currentFilter = currentSettings?.vipFilter ?? desiredFilter;
    const currentFilter6 = currentSettings?.vipFilter6 ?? desiredFilter6;
    if (this.typed.settings.setIfChanged(0, {
      ...knobs,
      vipFilter: desiredFilter.map((w, i) => (w | currentFilter[i]) >>> 0),
      vipFilter6: desiredFilter6.map((w, i) => (w | currentFilter6[i]) >>> 0),
    })) this.writes++;

    // 2. Tables and service entries.
    const currentServices = this.readAll(m.services);
    this.transitionMs = (state.settings.transitionSeconds ?? DEFAULT_TRANSITION_SECONDS) * 1000;
    // service_slots (IPv4) / service_slots6 (IPv6): each slot holds the first service (in the
    // state's order) of its family whose key lands there, with the same entry as services(6);
    // written right after its services(6) entry.
    const desiredSlots = new Map<number, Buffer>();
    for (const p of plans) {
      const index = this.slots.slotOf(p.key);
      if (index >= 0 && !desiredSlots.has(index)) desiredSlots.set(index, Buffer.concat([p.key, LbServiceCodec.encode(p.value)]));
    }
    const syncSlot = (p: ServicePlan): void => {
      const index = this.slots.slotOf(p.key);
      if (index < 0) return;
      const want = desiredSlots.get(index)!;
      if (want.subarray(0, p.key.length).equals(p.key)) this.writeServiceSlot(index, want);
    };
    let epoch = 0;
    for (const p of plans) {
      const current = currentServices.get(p.key.toString('hex'));
      const currentSize = current ? LbServiceCodec.decode(current).tableSize : 0;
      const value = LbServiceCodec.encode(p.value);
      // The slots: current backends, and the transition marks of the slots that moved.
      const installed = this.installedTables.get(p.id);
      let known: Set<number> | undefined;
      const knownIds = (): Set<number> => (known ??= new Set(p.backends.map((b) => b.id)));
      let slots = installed;
      // Marks whose backend is gone: none when the service's backend ids are those of the last
      // completed apply (it left every mark on one of them).
      if (!installed || !sameCurrent(installed, p.table) || (!p.sameKeys && (this.markCounts.get(p.id) ?? 0) > 0 && hasUnknownPrev(installed, knownIds()))) {
        if (!epoch) epoch = this.lastEpoch = Math.max(Math.floor(this.now() / 1000) >>> 0, this.lastEpoch + 1) >>> 0;
        const diff: SlotDiff = { changed: null, marked: 0 };
        this.slotBuffers.out = this.spareTables.get(p.id);
        slots = transitionSlots(installed, p.table, knownIds(), epoch, undefined, diff, this.slotBuffers);
        this.slotBuffers.out = undefined;
        if (slots === this.spareTables.get(p.id)) this.takeSpare(p.id);   // in use now: not spare any more
        this.lastDiff = { slots, diff };
        const young = this.youngSince.get(p.id) ?? new SlotTimes(slots.length / SLOT_WORDS);
        if (!installed || installed.length !== slots.length) young.clear();
        else startWindows(installed, slots, diff.changed ?? [], young, this.now());
        this.youngSince.set(p.id, young);
      }
      const last = this.lastDiff;
      const changedSlots = last && last.slots === slots ? last.diff.changed : null;
      const swap = slots !== installed && (changedSlots ? changedSlots.length > 0 : !sameTable(installed, slots!));
      const shrinkFirst = current !== undefined && currentSize > p.table.length;
      if (shrinkFirst && !current.equals(value)) { this.write(m.services, p.key, value); syncSlot(p); }
      if (swap) {
        this.installTable(p.id, slots!);
        tablesSwapped.push(p.id);
      }
      if (!shrinkFirst && !current?.equals(value)) this.write(m.services, p.key, value);
      syncSlot(p);
      if (!p.sameKeys || !this.tableBackendKeys.has(p.id)) this.tableBackendKeys.set(p.id, new Map(p.backends.map((b) => [b.id, backendKey(b.spec)])));
    }

    // 3. VIPs.
    const vipCounts = new Map<string, number>();
    for (const p of plans) vipCounts.set(p.service.vip, (vipCounts.get(p.service.vip) ?? 0) + 1);
    const currentVips = this.readAll(m.vips);
    for (const [vip, count] of vipCounts) {
      if ((familyOf(vip) === 6 ? this.typed6!.vips : this.typed.vips).setIfChanged(vip, { services: count })) this.writes++;
    }

    // 4. Backends that stop taking traffic, now that no table holds them.
    for (const { id, value, current } of changedBackends) {
      if (!current.equals(value) && !(value[codecOfBackend(value).flagsAt] & LB.BACKEND_F_ACTIVE)) {
        this.write(m.backends, encodeU32(id), value);
      }
    }

    // 5. What is gone.
    const liveServiceIds = new Set(plans.map((p) => p.id));
    for (const hex of currentVips.keys()) {
      if (!vipCounts.has(vipFromKey(Buffer.from(hex, 'hex')))) this.remove(m.vips, Buffer.from(hex, 'hex'));
    }
    const desiredServiceKeys = new Set(plans.map((p) => p.key.toString('hex')));
    for (const hex of currentServices.keys()) {
      if (desiredServiceKeys.has(hex)) continue;
      // Its service_slots(6) copy first (when the slot still holds it).
      const key = Buffer.from(hex, 'hex');
      const index = this.slots.slotOf(key);
      if (index >= 0 && this.slotsMirror().get(index)?.startsWith(hex)) this.writeServiceSlot(index, desiredSlots.get(index) ?? null);
      this.remove(m.services, key);
    }
    // Anything else a slot holds that the state does not want (e.g. left by another build).
    for (const [index, hex] of [...this.slotsMirror()]) {
      if (desiredSlots.get(index)?.toString('hex') !== hex) this.writeServiceSlot(index, desiredSlots.get(index) ?? null);
    }
    for (const id of [...this.installedTables.keys()]) {
      if (liveServiceIds.has(id)) continue;
      this.removeIfPresent(m.maglev, encodeU32(id));
      if (m.maglevMarks) this.removeIfPresent(m.maglevMarks, encodeU32(id));
      this.installedTables.delete(id);
      this.takeSpare(id);
      this.markCounts.delete(id);
      this.youngSince.delete(id);
    }
    for (const [id, name] of [...this.serviceNameById]) {
      if (liveServiceIds.has(id)) continue;
      this.serviceNameById.delete(id);
      if (this.serviceIdByName.get(name) === id) this.serviceIdByName.delete(name);
      this.tableBackendKeys.delete(id);
      this.builtTables.delete(id);
      this.zeroStats(m.serviceStats, id);
      this.retireService(m, id);
    }
    for (const [hex, id] of [...this.recoveredServiceIds]) {
      if (liveServiceIds.has(id)) continue;
      // A pinned service nobody claimed: its outer entry may still hold a table.
      this.removeIfPresent(m.maglev, encodeU32(id));
      if (m.maglevMarks) this.removeIfPresent(m.maglevMarks, encodeU32(id));
      this.zeroStats(m.serviceStats, id);
      this.retireService(m, id);
      this.recoveredServiceIds.delete(hex);
    }
    const graceMs = (state.settings.reverseGraceSeconds ?? DEFAULT_REVERSE_GRACE_SECONDS) * 1000;
    const now = this.now();
    if (sameKeys) {
      // The map holds the desired entries and those in their grace period, kept as the live
      // services were then (the same ones): only a shorter grace period may end some now.
      for (const [hex, graceUntil] of [...this.reverseGrace]) {
        const until = Math.min(graceUntil, now + graceMs);
        if (until <= now) {
          this.removeIfPresent(m.reverse, Buffer.from(hex, 'hex'));
          this.reverseGrace.delete(hex);
        } else this.reverseGrace.set(hex, until);
      }
    }
    for (const [hex, value] of currentReverse) {
      if (desiredReverse.has(hex)) continue;
      const until = Math.min(this.reverseGrace.get(hex) ?? Infinity, now + graceMs);
      if (until <= now) {
        this.remove(m.reverse, Buffer.from(hex, 'hex'));
        this.reverseGrace.delete(hex);
        continue;
      }
      this.reverseGrace.set(hex, until);
      // Translated as before, counted under no backend (its id may be reused) and under its
      // service only while that service lives.
      const codec = codecOfReverse(value);
      const rev = codec.decodeReverse(value);
      const kept = codec.reverse({ ...rev, backendId: 0, serviceId: liveServiceIds.has(rev.serviceId) ? rev.serviceId : 0 });
      if (!kept.equals(value)) this.write(m.reverse, Buffer.from(hex, 'hex'), kept);
    }
    if (!sameKeys) for (const hex of [...this.reverseGrace.keys()]) if (!currentReverse.has(hex)) this.reverseGrace.delete(hex);
    // Backends gone (none when every key is the last apply's).
    const desiredBackendIds = new Set<number>();
    if (!sameKeys) for (const p of plans) for (const b of p.backends) desiredBackendIds.add(b.id);
    for (const [id, owner] of sameKeys ? [] : [...this.backendById]) {
      if (desiredBackendIds.has(id)) continue;
      const current = this.mirrorLookup(m.backends, encodeU32(id)) ?? ZERO_BACKEND;
      const flagsAt = codecOfBackend(current).flagsAt;
      if (current[flagsAt] & LB.BACKEND_F_ACTIVE) {
        const inactive = Buffer.from(current);
        inactive[flagsAt] &= ~LB.BACKEND_F_ACTIVE;
        this.write(m.backends, encodeU32(id), inactive);
      }
      if (!current.equals(zeroLike(current))) this.write(m.backends, encodeU32(id), zeroLike(current));
      this.zeroStats(m.backendStats, id);
      this.retireBackend(m, id, liveServiceIds.has(owner.serviceId) ? owner.serviceId : 0);
      this.backendById.delete(id);
      this.backendIds.delete(`${owner.serviceId}|${owner.key}`);
    }
    // 6. The VIP filter without the VIPs that are gone (now that nothing routes to them).
    if (this.typed.settings.setIfChanged(0, { ...knobs, vipFilter: desiredFilter, vipFilter6: desiredFilter6 })) this.writes++;
    this.settled = new Map(plans.map((p) => [p.id, p]));
    return { writes: this.writes - before, tablesSwapped, sameKeys, backendsCompared: changedBackends.length };
  }

  /** Slots marked as moved (in a transition), over every service's installed table. */
  transitionSlotCount(): number {
    let n = 0;
    for (const count of this.markCounts.values()) n += count;
    return n;
  }

  /**
   * Every service's transition state (GET /api/v1/transitions). A service with marks is read
   * back from the kernel (its `seen` bytes are the program's), the others from the mirror.
   */
  transitionStates(): ServiceTransitionView[] {
    const out: ServiceTransitionView[] = [];
    for (const [id, service] of this.serviceNameById) {
      let table = this.installedTables.get(id);
      if (!table) continue;
      if (this.markCounts.get(id) && this.readInnerTable) {
        const outer = this.maps.maglev.lookup(encodeU32(id));
        const kernel = outer && this.readInnerTable(outer, this.maps.maglevMarks?.lookup(encodeU32(id)) ?? null);
        if (kernel && kernel.length === table.length) table = kernel;
      }
      out.push({ service, ...transitionSummary(table) });
    }
    return out;
  }

  /** The sweep period (settings.transitionSeconds of the last apply), ms. */
  get transitionPeriodMs(): number {
    return this.transitionMs;
  }

  /**
   * One transition sweep (the daemon calls it every transitionPeriodMs while
   * transitionSlotCount() > 0): reads the marked services' tables back from the kernel (the
   * program's `seen` bytes) and, slot by slot, ends the YOUNG phase of windows at least a period
   * old, clears `seen` of slots that were seen, and unmarks slots that were not (quiet since the
   * last sweep): their packets touch no per-flow state any more. Without readInnerTable and
   * writeInnerSlots it does nothing.
   */
  sweepTransitions(): SweepResult {
    const result: SweepResult = { cleared: 0, aged: 0, marked: 0 };
    if (!this.readInnerTable || !this.writeInnerSlots) return result;
    const now = this.now();
    for (const [id, table] of this.installedTables) {
      if (!this.markCounts.get(id)) continue;
      const outer = this.maps.maglev.lookup(encodeU32(id));
      const marksOuter = this.maps.maglevMarks?.lookup(encodeU32(id)) ?? null;
      const kernel = outer && this.readInnerTable(outer, marksOuter);
      if (!outer || !kernel || kernel.length !== table.length) continue;
      const young = this.youngSince.get(id) ?? new SlotTimes(table.length / SLOT_WORDS);
      const writes = sweepSlots(kernel, young, now, this.transitionMs);
      if (writes.length) {
        const indices = new Uint32Array(writes.length);
        const words = new Uint32Array(writes.length * SLOT_WORDS);
        writes.forEach(([i, w], k) => { indices[k] = i; words.set(w, k * SLOT_WORDS); });
        if (!this.writeInnerSlots(outer, marksOuter, indices, words)) continue;
      }
      this.writes += writes.length;
      table.set(kernel);
      for (const [i, words] of writes) {
        table.set(words, i * SLOT_WORDS);
        young.delete(i);
        if (words[SLOT.prev] === 0) result.cleared++;
        else result.aged++;
      }
      const left = markedCount(table);
      this.markCounts.set(id, left);
      result.marked += left;
      // The marks table stays (zeroed) while the table lives: the next change marks slots in
      // place, with no outer-map update (which would wait for an RCU grace period).
    }
    return result;
  }

  /** When the next reverse entry of a removed backend is due to go (ms, the clock's), or null. */
  nextReverseExpiry(): number | null {
    let next: number | null = null;
    for (const until of this.reverseGrace.values()) if (next === null || until < next) next = until;
    return next;
  }

  /** Keys (hex) of the reverse entries kept for removed backends, with when each goes. */
  reverseGraceEntries(): Array<[string, number]> {
    return [...this.reverseGrace];
  }

  /**
   * Removes the reverse entries of removed backends whose grace period is over.
   * @returns how many were removed
   */
  expireReverse(): number {
    const now = this.now();
    let removed = 0;
    for (const [hex, until] of [...this.reverseGrace]) {
      if (until > now) continue;
      this.reverseGrace.delete(hex);
      this.removeIfPresent(this.fm.reverse, Buffer.from(hex, 'hex'));
      removed++;
    }
    return removed;
  }

  /** service_slots and service_slots6 (union slots) as the maps hold them (read once, e.g. the
   * previous daemon's after recover(), then kept in step by writeServiceSlot). */
  private slotsMirror(): Map<number, string> {
    if (this.serviceSlotsMirror) return this.serviceSlotsMirror;
    const mirror = new Map<number, string>();
    for (const key of this.slots.keys()) {
      const v = this.slots.lookup(key);
      if (v && v.some((b) => b !== 0)) mirror.set(decodeU32(key), v.toString('hex'));
    }
    return this.serviceSlotsMirror = mirror;
  }

  /** Makes union slot `index` (ServiceSlotsUnion) hold `value` (null: empty), writing only a difference. */
  private writeServiceSlot(index: number, value: Buffer | null): void {
    const mirror = this.slotsMirror();
    const hex = value?.toString('hex');
    if (mirror.get(index) === hex) return;
    this.write(this.slots, encodeU32(index), value ?? this.slots.empty(index));
    if (hex) mirror.set(index, hex);
    else mirror.delete(index);
  }

  /** Total map writes (updates + deletes) done so far. */
  get writeCount(): number {
    return this.writes;
  }

  private plan(state: DataplaneState, settled: ReadonlyMap<number, ServicePlan> | null): ServicePlan[] {
    // Service ids first (names keep theirs; pinned ids are claimed by service key).
    const live = new Set(state.services.map((s) => s.name));
    const claimed = new Set<number>();
    const claimedRecovered: string[] = []; // forgotten only once nothing can throw any more
    const ids = new Map<string, number>();
    for (const s of state.services) {
      let id = this.serviceIdByName.get(s.name);
      if (id === undefined) {
        const hex = familyCodec(s.vip).serviceKey(serviceKeyOf(s)).toString('hex');
        const recovered = this.recoveredServiceIds.get(hex);
        if (recovered !== undefined && !this.serviceNameById.has(recovered) && !claimed.has(recovered)) {
          id = recovered;
          claimedRecovered.push(hex);
        }
      }
      if (id !== undefined) { ids.set(s.name, id); claimed.add(id); }
    }
    const busyServiceIds = new Set<number>([...claimed, ...this.recoveredServiceIds.values()]);
    for (const [id, name] of this.serviceNameById) if (!live.has(name)) busyServiceIds.add(id);
    for (const s of state.services) {
      if (ids.has(s.name)) continue;
      const id = this.allocate('service', busyServiceIds, this.limits.maxServices);
      busyServiceIds.add(id);
      ids.set(s.name, id);
    }

    // Backend ids: per service id + address:port, round-robin over the ids nobody holds.
    let busyBackendIds: Set<number> | null = null;   // made on the first new backend
    const plans: ServicePlan[] = [];
    for (const s of state.services) {
      const id = ids.get(s.name)!;
      // The same service in the last completed apply (same name, id, key and mode): a backend at
      // the same index with the same address, port and flags has the same id and value there
      // (a bulk change of 100 of 1000 backends encodes 100, not 1000).
      const last = settled?.get(id)?.fields;
      const fields: PlannedService = { name: s.name, vip: s.vip, port: s.port, protocol: s.protocol, mode: s.mode, tableSize: s.tableSize };
      const prev = last && last.name === s.name && last.vip === s.vip && last.port === s.port
        && last.protocol === s.protocol && last.mode === s.mode ? settled!.get(id)! : undefined;
      let sameKeys = prev !== undefined && prev.backends.length === s.backends.length;
      // The usable pool (ids and weights, in order) and the size are the last apply's: same table.
      let samePool = sameKeys && last!.tableSize === s.tableSize;
      const backends: PlannedBackend[] = [];
      for (let n = 0; n < s.backends.length; n++) {
        const b = s.backends[n];
        const pb = prev?.backends[n];
        const flags = backendFlags(b);
        const poolWeight = inTable(b) ? b.weight : -1;
        if (pb && pb.address === b.address && pb.port === b.port) {
          if (poolWeight !== pb.poolWeight) samePool = false;
          if (pb.flags === flags) {
            backends.push({ spec: b, id: pb.id, value: pb.value, same: true, address: b.address, port: b.port, flags, poolWeight });
            continue;
          }
        } else {
          sameKeys = false;
          samePool = false;
        }
        const mapKey = `${id}|${backendKey(b)}`;
        let bid = this.backendIds.get(mapKey);
        if (bid === undefined) {
          busyBackendIds ??= new Set<number>(this.backendById.keys());
          bid = this.allocate('backend', busyBackendIds, this.limits.maxBackends);
          busyBackendIds.add(bid);
        }
        backends.push({
          spec: b, id: bid, same: false, address: b.address, port: b.port, flags, poolWeight,
          // The owner service's key and mode ride along: the flow-cache hit path checks them.
          value: this.encodeOnce(`b|${b.address}|${b.port}|${flags}|${s.mode}|${id}|${s.vip}|${s.port}|${s.protocol}`, () => familyCodec(s.vip).backend({
            ip: b.address, port: b.port, flags, mode: s.mode === 'dsr' ? LB.MODE_DSR : LB.MODE_NAT,
            serviceId: id, vip: s.vip, vport: s.port, proto: PROTO_NUMBER[s.protocol],
          } satisfies LbBackend)),
        });
      }
      let table: Uint32Array;
      if (samePool && prev!.table.length > 0 && this.builtTables.get(id)?.table === prev!.table) {
        table = prev!.table;   // the table of the same pool (no signature of 1000 keys to compare)
      } else {
        const usable = backends.filter((b) => inTable(b.spec));
        table = this.maglevTable(id, s.tableSize, usable.map((b) => ({ key: backendKey(b.spec), weight: b.spec.weight, id: b.id })));
      }
      // The last usable backend drained (or weighted 0) while a table is installed: a table of
      // no current backend (new flows: no_backend) keeps the slots' marks, so that the drained
      // backend's established flows still reach it. (Down or removed: nothing to keep.)
      if (table.length === 0 && s.tableSize > 0 && this.installedTables.get(id)?.length === s.tableSize * SLOT_WORDS
        && s.backends.some((b) => b.healthy && (b.draining || b.weight === 0))) {
        table = new Uint32Array(s.tableSize);
      }
      plans.push({
        service: s, fields, id, backends, table, sameKeys,
        key: prev ? prev.key : familyCodec(s.vip).serviceKey(serviceKeyOf(s)),
        value: { id, tableSize: table.length, mode: s.mode === 'dsr' ? LB.MODE_DSR : LB.MODE_NAT, flags: 0 },
      });
    }

    // Commit the allocations (validation already passed, so the apply goes ahead).
    for (const hex of claimedRecovered) this.recoveredServiceIds.delete(hex);
    for (const p of plans) {
      const oldName = this.serviceNameById.get(p.id);
      if (oldName !== undefined && oldName !== p.service.name) this.serviceIdByName.delete(oldName);
      this.serviceIdByName.set(p.service.name, p.id);
      this.serviceNameById.set(p.id, p.service.name);
      for (const b of p.backends) {
        if (b.same) continue;   // held since the last completed apply
        this.backendIds.set(`${p.id}|${backendKey(b.spec)}`, b.id);
        this.backendById.set(b.id, { serviceId: p.id, key: backendKey(b.spec) });
      }
    }
    // Ids of backends that are gone stay in backendById until step 5 of apply removes them.
    return plans;
  }

  /** The service's table of backend ids; rebuilt only when its size or usable pool changed
   * (taken from prebuildTables() when it built that pool's table ahead). */
  private maglevTable(serviceId: number, size: number, usable: Array<{ key: string; weight: number; id: number }>): Uint32Array {
    // In the state's order (not sorted: 1000 keys cost ~2 ms to sort on every apply); the same
    // pool listed in another order only costs a rebuild of the same table.
    const signature = `${size}|${usable.map((b) => `${b.key}*${b.weight}#${b.id}`).join(',')}`;
    const cached = this.builtTables.get(serviceId);
    if (cached?.signature === signature) return cached.table;
    const byKey = [...usable].sort(byMaglevKey);
    const pool = poolSignature(byKey, size);
    const slots = this.prebuilt.get(pool) ?? this.recentTable(pool) ?? buildMaglevTable(byKey, size);
    this.rememberTable(pool, slots);
    // The service's previous table of ids is held only by builtTables (installed tables are
    // transitionSlots' own arrays): it takes the new ids (no 4 bytes per slot allocated).
    const table = cached && cached.table.length === slots.length ? cached.table : new Uint32Array(slots.length);
    const idOf = Uint32Array.from(byKey, (b) => b.id);
    for (let i = 0; i < slots.length; i++) table[i] = idOf[slots[i]];
    this.builtTables.set(serviceId, { signature, poolSignature: pool, table });
    return table;
  }

  private recentTable(pool: string): Uint32Array | undefined {
    const slots = this.recentTables.get(pool);
    if (slots) { this.recentTables.delete(pool); this.recentTables.set(pool, slots); } // most recent last
    return slots;
  }

  private rememberTable(pool: string, slots: Uint32Array): void {
    if (this.recentTables.has(pool) || slots.length > RECENT_TABLE_SLOTS) return;
    this.recentTables.set(pool, slots);
    this.recentSlots += slots.length;
    for (const [key, old] of this.recentTables) {
      if (this.recentSlots <= RECENT_TABLE_SLOTS) break;
      this.recentTables.delete(key);
      this.recentSlots -= old.length;
    }
  }

  /**
   * Builds, on a worker thread, the large Maglev tables (>= OFF_THREAD_MIN_SLOTS slots) that
   * apply(state) would otherwise build on the event loop; apply(state) then takes them. Tables
   * of pools already built are skipped. Changes no map and no id; a later apply of another
   * state simply builds what it needs itself.
   * @throws Error when a build fails (a state apply() would refuse anyway, e.g. a size that is
   *   not prime): nothing is kept
   */
  async prebuildTables(state: DataplaneState): Promise<void> {
    this.prebuilt.clear();
    const built = new Set([...this.builtTables.values()].map((t) => t.poolSignature));
    const jobs: Array<{ signature: string; backends: MaglevBackend[]; size: number }> = [];
    for (const s of state.services) {
      if (!(s.tableSize >= OFF_THREAD_MIN_SLOTS)) continue;
      const byKey = s.backends.filter(inTable).map((b) => ({ key: backendKey(b), weight: b.weight })).sort(byMaglevKey);
      const signature = poolSignature(byKey, s.tableSize);
      if (byKey.length === 0 || built.has(signature) || this.recentTables.has(signature) || jobs.some((j) => j.signature === signature)) continue;
      jobs.push({ signature, backends: byKey, size: s.tableSize });
    }
    const tables = await buildMaglevTablesOffThread(jobs.map(({ backends, size }) => ({ backends, size })));
    jobs.forEach((j, i) => this.prebuilt.set(j.signature, tables[i]));
  }

  /** Next free id after the cursor, wrapping; ids are 1..limit-1. */
  private allocate(kind: 'service' | 'backend', busy: Set<number>, limit: number): number {
    const cursorName = kind === 'service' ? 'nextServiceId' : 'nextBackendId';
    let id = this[cursorName];
    for (let tries = 0; tries < limit; tries++) {
      if (id < 1 || id >= limit) id = 1;
      if (!busy.has(id)) {
        this[cursorName] = id + 1 >= limit ? 1 : id + 1;
        return id;
      }
      id++;
    }
    throw new ReconcileError(`no free ${kind} id: all ${limit - 1} are in use (removed ones are freed after this apply; apply the change in two steps)`);
  }

  private installTable(serviceId: number, table: Uint32Array): void {
    const key = encodeU32(serviceId);
    const marksMap = this.maps.maglevMarks;
    if (table.length === 0) {
      this.youngSince.delete(serviceId);
      // service.table_size is 0 by now, so no packet reads the table any more.
      this.removeIfPresent(this.maps.maglev, key);
      if (marksMap) this.removeIfPresent(marksMap, key);
    } else {
      // Without a marks map (a caller that keeps none) the table holds no moved slot.
      const slots = marksMap ? table : unmarkedSlots(Uint32Array.from({ length: table.length / SLOT_WORDS }, (_, i) => table[i * SLOT_WORDS]));
      const known = this.lastDiff?.slots === slots ? this.lastDiff.diff : null;
      this.lastDiff = null;
      const replaced = this.installedTables.get(serviceId);
      if (this.writeInPlace(serviceId, slots, known?.changed ?? null)) {
        this.installedTables.set(serviceId, slots);
        if (replaced && replaced !== slots) this.keepSpare(serviceId, replaced);
        this.markCounts.set(serviceId, known?.changed ? known.marked : markedCount(slots));
        return;
      }
      // A marks table comes with every new table when slots can later be marked in place.
      const inner = this.createInnerTable(slots, marksMap !== undefined && this.writeInnerSlots !== undefined);
      try {
        // A new table with moved slots goes in after its marks (a slot that says LB_SLOT_MOVED
        // finds its mark); one without goes in before the old marks are replaced or go (the old
        // table's moved slots keep theirs until it is out).
        const moved = markedCount(slots) > 0;
        if (marksMap && inner.marksFd != null && moved) this.write(marksMap, key, encodeU32(inner.marksFd));
        this.write(this.maps.maglev, key, encodeU32(inner.fd));
        if (marksMap && inner.marksFd != null && !moved) this.write(marksMap, key, encodeU32(inner.marksFd));
        if (marksMap && inner.marksFd == null) this.removeIfPresent(marksMap, key);
      } finally {
        inner.close(); // the outer maps hold their own references
      }
      table = slots;
      this.prepareForChanges(serviceId, table.length);
    }
    this.installedTables.set(serviceId, table);
    this.markCounts.set(serviceId, markedCount(table));
  }

  /**
   * For a table just created (or adopted) of `words` flat words: the arrays the service's first
   * change would otherwise allocate (the spare table transitionSlots writes into, the slots'
   * window times, the scratch of the changed slots and of the stores) are allocated and
   * written now. The first changes after a 1000-backend service was added took 15-30 ms
   * instead of ~5: fresh megabytes fault their pages in on first write, and their allocation
   * (external memory to V8) started collections that landed on those changes.
   */
  private prepareForChanges(serviceId: number, words: number): void {
    if (!this.spareTables.has(serviceId) && this.spareWords + words <= SPARE_TABLE_WORDS) this.keepSpare(serviceId, new Uint32Array(words).fill(0));
    if (!this.youngSince.has(serviceId)) this.youngSince.set(serviceId, new SlotTimes(words / SLOT_WORDS));
    if (this.wordsScratch.length < words) this.wordsScratch = new Uint32Array(words).fill(0);
    if (!this.slotBuffers.changed || this.slotBuffers.changed.length < words / SLOT_WORDS) this.slotBuffers.changed = new Uint32Array(words / SLOT_WORDS).fill(0);
  }

  /**
   * Writes the slots of `slots` that differ from the installed table in place (same size, the
   * kernel holding it, a marks table there when the service keeps marks). False when it cannot:
   * the caller swaps in a new table then.
   */
  private writeInPlace(serviceId: number, slots: Uint32Array, changedSlots: Uint32Array | null): boolean {
    const installed = this.installedTables.get(serviceId);
    if (!this.writeInnerSlots || !installed || installed.length !== slots.length || slots.length === 0) return false;
    const key = encodeU32(serviceId);
    const outer = this.maps.maglev.lookup(key);
    if (!outer || this.maps.maglev.misplaced?.(key, slots.length / SLOT_WORDS)) return false;
    const marksOuter = this.maps.maglevMarks ? this.maps.maglevMarks.lookup(key) : null;
    // A table installed without a marks table (an older build's): swapped once for a pair.
    if (this.maps.maglevMarks && !marksOuter) return false;
    let indices = changedSlots;
    if (!indices) {
      let n = 0;
      const changed = new Uint32Array(slots.length / SLOT_WORDS);
      for (let i = 0, at = 0; at < slots.length; i++, at += SLOT_WORDS) {
        if (installed[at] !== slots[at] || installed[at + 1] !== slots[at + 1] || installed[at + 2] !== slots[at + 2] || installed[at + 3] !== slots[at + 3]) changed[n++] = i;
      }
      indices = changed.subarray(0, n);
    }
    const n = indices.length;
    if (this.wordsScratch.length < n * SLOT_WORDS) this.wordsScratch = new Uint32Array(slots.length);
    const words = this.wordsScratch.subarray(0, n * SLOT_WORDS);
    for (let k = 0, w = 0; k < n; k++) {
      const at = indices[k] * SLOT_WORDS;
      words[w++] = slots[at]; words[w++] = slots[at + 1]; words[w++] = slots[at + 2]; words[w++] = slots[at + 3];
    }
    if (!this.writeInnerSlots(outer, marksOuter, indices, words)) return false;
    this.writes += n;
    return true;
  }

  /** Keeps `table` (replaced, held by nothing else) as the service's spare, within the bound. */
  private keepSpare(serviceId: number, table: Uint32Array): void {
    this.takeSpare(serviceId);
    if (this.spareWords + table.length > SPARE_TABLE_WORDS) return;
    this.spareTables.set(serviceId, table);
    this.spareWords += table.length;
  }

  /** Forgets the service's spare table (it is in use, or the service is gone). */
  private takeSpare(serviceId: number): void {
    const spare = this.spareTables.get(serviceId);
    if (!spare) return;
    this.spareTables.delete(serviceId);
    this.spareWords -= spare.length;
  }

  private readAll(map: KernelMap): Map<string, Buffer> {
    const out = new Map<string, Buffer>();
    for (const key of map.keys()) {
      const value = map.lookup(key);
      if (value) out.set(key.toString('hex'), value);
    }
    return out;
  }

  private write(map: KernelMap, key: Buffer, value: Buffer): void {
    const mirror = this.mirrors.get(map);
    try {
      map.update(key, value, 'any');
    } catch (err) {
      if (mirror) { mirror.entries.delete(key.toString('hex')); mirror.complete = false; } // unknown now
      throw err;
    }
    mirror?.entries.set(key.toString('hex'), Buffer.from(value));
    this.writes++;
  }

  private remove(map: KernelMap, key: Buffer): void {
    const mirror = this.mirrors.get(map);
    try {
      map.delete(key);
    } catch (err) {
      if (mirror) { mirror.entries.delete(key.toString('hex')); mirror.complete = false; }
      throw err;
    }
    mirror?.entries.set(key.toString('hex'), null);
    this.writes++;
  }

  private removeIfPresent(map: KernelMap, key: Buffer): void {
    if (this.mirrors.has(map) ? this.mirrorLookup(map, key) : map.lookup(key)) this.remove(map, key);
  }

  /** map.lookup(key) through the map's mirror (reverse and backends; see `mirrors`). */
  private mirrorLookup(map: KernelMap, key: Buffer): Buffer | null {
    let mirror = this.mirrors.get(map);
    if (!mirror) this.mirrors.set(map, mirror = { complete: false, entries: new Map() });
    const hex = key.toString('hex');
    const known = mirror.entries.get(hex);
    if (known !== undefined) return known;
    const value = map.lookup(key);
    mirror.entries.set(hex, value ? Buffer.from(value) : null);
    return value;
  }

  /** readAll(map) through its mirror: read in full once, then kept by write() and remove(). */
  private mirrorAll(map: KernelMap): Map<string, Buffer> {
    let mirror = this.mirrors.get(map);
    if (!mirror?.complete) {
      mirror = { complete: true, entries: new Map(this.readAll(map)) };
      this.mirrors.set(map, mirror);
    }
    const out = new Map<string, Buffer>();
    for (const [hex, value] of mirror.entries) if (value) out.set(hex, value);
    return out;
  }

  /** An encoded key or value, by a string of its fields (bounded memo). */
  private encodeOnce(fields: string, encode: () => Buffer): Buffer {
    let buf = this.encoded.get(fields);
    if (!buf) {
      if (this.encoded.size > 65536) this.encoded.clear();
      this.encoded.set(fields, buf = encode());
    }
    return buf;
  }


  /**
   * Carries backend `id`'s fast counters (both backend_fast_stats slots, summed over CPUs) into
   * retired_stats[serviceId] and zeroes them, so that its service's and the verdicts' totals
   * keep what it carried (src/dataplane/counters.ts). Called once the backend is out of the
   * tables and inactive: a packet the program was counting at that moment may be missed.
   */
  private retireBackend(m: ReconcilerMaps, id: number, serviceId: number): void {
    if (!m.backendFastStats || !m.retiredStats) return;
    const read = (redirect: boolean) => {
      const value = m.backendFastStats!.lookup(encodeU32(fastSlot(id, redirect, this.limits.maxBackends)));
      return value && value.some((byte) => byte !== 0) ? decodePerCpuSum(LbFlowStatsCodec, value) : null;
    };
    const tx = read(false), redirect = read(true);
    if (!tx && !redirect) return;
    this.addRetired(m.retiredStats, serviceId, { tx: tx ?? { ...ZERO_FLOW }, redirect: redirect ?? { ...ZERO_FLOW } });
    this.zeroStats(m.backendFastStats, fastSlot(id, false, this.limits.maxBackends));
    this.zeroStats(m.backendFastStats, fastSlot(id, true, this.limits.maxBackends));
  }

  /** Moves retired_stats[id] of a removed service to retired_stats[0] (the verdicts keep it). */
  private retireService(m: ReconcilerMaps, id: number): void {
    if (!m.retiredStats || id === 0) return;
    const value = m.retiredStats.lookup(encodeU32(id));
    if (!value || !value.some((byte) => byte !== 0)) return;
    this.addRetired(m.retiredStats, 0, LbRetiredStatsCodec.decode(value));
    this.write(m.retiredStats, encodeU32(id), Buffer.alloc(value.length));
  }

  private addRetired(map: KernelMap, serviceId: number, add: FastCounters): void {
    const value = map.lookup(encodeU32(serviceId));
    const current = value ? LbRetiredStatsCodec.decode(value) : { tx: { ...ZERO_FLOW }, redirect: { ...ZERO_FLOW } };
    this.write(map, encodeU32(serviceId), LbRetiredStatsCodec.encode(addFast(current, add)));
  }

  private zeroStats(map: KernelMap | undefined, id: number): void {
    if (!map) return;
    const current = map.lookup(encodeU32(id));
    if (current && current.some((byte) => byte !== 0)) this.write(map, encodeU32(id), Buffer.alloc(current.length));
  }
}

