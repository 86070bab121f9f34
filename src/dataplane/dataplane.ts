/**
 * Dataplane: the typed face of the loaded XDP balancer (bpf/lb.o) or of its pinned maps and
 * links after a restart. It owns the maps; every state change goes through the reconciler.
 *
 * Pin layout under a pin directory (default /sys/fs/bpf/xdplb):
 *   maps/<map name>   every map of the object (services, vips, maglev, backends, reverse,
 *                     reverse_frags, if_macs, flows, settings, tx_ports, *_stats, events)
 *   links/<ifname>    one XDP bpf_link per attached interface
 *   prog              the xdp_lb program (testRun and replaceProgram after adopt)
 *   meta              a one-entry ARRAY: magic (= the maps' layout version), hash seed and
 *                     largest Maglev size, for adopt
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  BpfObject, BpfMap, Program, XdpLink, RingBuffer, BPF_F_INNER_MAP, possibleCpus, xdpAttachments,
  ifHwAddr, repoRoot, type XdpMode, type TestRunResult, type LoadOptions,
} from '../bpf';
import { Reconciler, type ApplyResult, type ReconcilerMaps } from '../balancer/reconciler';
import {
  LB, LbCounterCodec, LbEventCodec, LbFlowStatsCodec, LbServiceKeyCodec, LbServiceCodec, LbBackendCodec,
  LbReverseKeyCodec, LbReverseCodec, LbFlowSetCodec, LbSettingsCodec, LbVipCodec, LbIfMacCodec,
  bytesToIpv4, decodePerCpuSum, decodeU32, encodeU32, type StructCodec,
} from './abi';
import {
  REASONS, XDP_ACTIONS, type DataplaneState, type FlowCounters, type PacketCounter, type StatsSnapshot,
  type TraceEvent, type XdpAction, type Reason,
} from './types';
import { lbLoadOptions, MAP_NAMES, type MapName } from './load-options';

export const PROGRAM_NAME = 'xdp_lb';
export const DEFAULT_PIN_DIR = '/sys/fs/bpf/xdplb';
export { MAP_NAMES, type MapName } from './load-options';

export interface DataplaneLoadOptions {
  /** default <repo>/bpf/lb.o */
  objectPath?: string;
  /** flow hash seed: every node behind one ECMP group must use the same */
  hashSeed: number;
  maxServices?: number;
  maxBackends?: number;
  /** flows the affinity cache holds: rounded up to LB.FLOW_WAYS x a power of two */
  maxFlows?: number;
  maxVips?: number;
  maxReverse?: number;
  /** largest Maglev table accepted (and the inner template's size) */
  maglevMaxSize?: number;
  /** pin everything there right after load */
  pinDir?: string;
}

export interface AttachmentInfo { ifname: string; ifindex: number; mode: XdpMode; progId: number }
export interface MapSummary {
  name: string; id: number; type: number; typeName: string; keySize: number; valueSize: number;
  maxEntries: number; usedEntries: number;
}
export interface MapEntriesPage { name: string; total: number; offset: number; entries: Array<{ key: unknown; value: unknown }> }

const META_SIZE = 16; // u32 magic, u32 hash seed, u32 maglevMaxSize, u32 reserved
/** "xlb" + the maps' layout version: bumped whenever a map's type, key or value changes, so that
 * adopt refuses maps it cannot use instead of misreading them. */
const META_MAGIC = 0x786c6234; // "xlb4": if_macs (attached interfaces' MACs) and reverse_frags (NAT reply fragments) added
const META_MAGIC_PREFIX = 0x786c6200; // "xlb\0"

/** The error for pins made by another build whose maps this one cannot reuse. */
function olderLayout(pinDir: string, detail: string): Error {
  return new Error(`dataplane: the data plane pinned under ${pinDir} was made by another xdplb build (${detail}); `
    + `its maps cannot be reused. Remove ${pinDir} (or stop the daemon running it with --detach-on-exit) and start `
    + 'again: traffic is not balanced until the fresh data plane is attached, and its empty flow cache may move '
    + 'established connections once');
}

/** Sets of the flows map for `maxFlows` flows: a power of two (the program masks the flow hash). */
export function flowSets(maxFlows: number): number {
  let sets = 1;
  while (sets * LB.FLOW_WAYS < maxFlows) sets *= 2;
  return sets;
}

function positive(value: number | undefined, fallback: number, what: string): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < 2) throw new Error(`dataplane: ${what} ${v} is not an integer >= 2`);
  return v;
}

interface Attached { link: XdpLink; ifindex: number; mode: XdpMode }

export class Dataplane {
  private object: BpfObject | null;
  private prog: Program;
  private readonly maps: Record<MapName, BpfMap>;
  private readonly links = new Map<string, Attached>();
  private readonly reconciler: Reconciler;
  private pinnedAt: string | null = null;
  private ring: RingBuffer | null = null;
  private readonly listeners = new Set<(e: TraceEvent) => void>();
  private seed: number;
  readonly maglevMaxSize: number;
  private readonly cpus = possibleCpus();

  private constructor(object: BpfObject | null, prog: Program, maps: Record<MapName, BpfMap>,
    hashSeed: number, maglevMaxSize: number) {
    this.object = object;
    this.prog = prog;
    this.maps = maps;
    this.seed = hashSeed;
    this.maglevMaxSize = maglevMaxSize;
    const reconcilerMaps: ReconcilerMaps = {
      services: maps.services, vips: maps.vips, maglev: maps.maglev, backends: maps.backends,
      reverse: maps.reverse, settings: maps.settings, serviceStats: maps.service_stats,
      backendStats: maps.backend_stats,
    };
    this.reconciler = new Reconciler(reconcilerMaps, {
      maxServices: maps.services.maxEntries,
      maxBackends: maps.backends.maxEntries,
      maxVips: maps.vips.maxEntries,
      maxReverse: maps.reverse.maxEntries,
      maglevMaxSize,
    }, (entries) => createMaglevTable(entries), readMaglevTable);
  }

  /**
   * Loads bpf/lb.o with the map sizes and the hash seed set before load.
   * @throws Error for bad options; BpfError from the bridge (missing object, verifier refusal).
   */
  static load(opts: DataplaneLoadOptions): Dataplane {
    const objectPath = opts.objectPath ?? path.join(repoRoot(), 'bpf', 'lb.o');
    const maxServices = positive(opts.maxServices, LB.MAX_SERVICES, 'maxServices');
    const maxBackends = positive(opts.maxBackends, LB.MAX_BACKENDS, 'maxBackends');
    const maglevMaxSize = positive(opts.maglevMaxSize, LB.MAGLEV_DEFAULT_SIZE, 'maglevMaxSize');
    const sets = flowSets(positive(opts.maxFlows, LB.MAX_FLOWS, 'maxFlows'));
    const object = BpfObject.load(objectPath, lbLoadOptions({
      hashSeed: opts.hashSeed, flowSets: sets, maglevMaxSize, maxServices, maxBackends,
      maxVips: positive(opts.maxVips, LB.MAX_VIPS, 'maxVips'),
      maxReverse: positive(opts.maxReverse, LB.MAX_REVERSE, 'maxReverse'),
    }));
    let dp: Dataplane;
    try {
      const maps = Object.fromEntries(MAP_NAMES.map((n) => [n, object.map(n)])) as Record<MapName, BpfMap>;
      dp = new Dataplane(object, object.program(PROGRAM_NAME), maps, opts.hashSeed, maglevMaxSize);
    } catch (err) {
      object.close();
      throw err;
    }
    if (opts.pinDir) {
      try {
        dp.pin(opts.pinDir);
      } catch (err) {
        dp.close();
        throw err;
      }
    }
    return dp;
  }

  /**
   * Reopens what a previous process pinned under `pinDir`; null when nothing is pinned there.
   * Service and backend ids are recovered from the maps.
   * @throws BpfError when the pins are there but cannot be opened (e.g. half removed).
   */
  static adopt(pinDir: string = DEFAULT_PIN_DIR): Dataplane | null {
    if (!fs.existsSync(path.join(pinDir, 'maps', 'services'))) return null;
    const opened: Array<{ close(): void }> = [];
    try {
      const maps = {} as Record<MapName, BpfMap>;
      const missing = MAP_NAMES.filter((name) => !fs.existsSync(path.join(pinDir, 'maps', name)));
      if (missing.length) throw olderLayout(pinDir, `no pinned ${missing.join(', ')}`);
      for (const name of MAP_NAMES) {
        maps[name] = BpfMap.fromPin(path.join(pinDir, 'maps', name));
        opened.push(maps[name]);
      }
      const meta = BpfMap.fromPin(path.join(pinDir, 'meta'));
      opened.push(meta);
      const raw = meta.lookup(encodeU32(0));
      meta.close();
      const magic = raw ? decodeU32(raw, 0) : 0;
      if (!raw || (magic & 0xffffff00) !== META_MAGIC_PREFIX) throw new Error(`dataplane: ${pinDir}/meta is not an xdplb meta map`);
      const layout = (m: number) => String.fromCharCode(m & 0xff);
      if (magic !== META_MAGIC) throw olderLayout(pinDir, `map layout ${layout(magic)}, this build uses ${layout(META_MAGIC)}`);
      const prog = Program.fromPin(path.join(pinDir, 'prog'));
      opened.push(prog);
      const dp = new Dataplane(null, prog, maps, decodeU32(raw, 4), decodeU32(raw, 8));
      dp.pinnedAt = pinDir;
      const modes = new Map(xdpAttachments().map((a) => [a.ifindex, a.mode]));
      const linkDir = path.join(pinDir, 'links');
      for (const ifname of fs.existsSync(linkDir) ? fs.readdirSync(linkDir) : []) {
        const link = XdpLink.fromPin(path.join(linkDir, ifname));
        const mode = modes.get(link.ifindex);
        dp.links.set(ifname, { link, ifindex: link.ifindex, mode: mode === 'generic' ? 'generic' : 'native' });
        try {
          dp.writeInterfaceMac(ifname, link.ifindex); // the MAC may have changed while no daemon ran
        } catch {
          // unreadable now: the pinned entry stays (the next attach or reload writes it)
        }
      }
      dp.reconciler.recover();
      return dp;
    } catch (err) {
      for (const h of opened) h.close();
      throw err;
    }
  }

  /** The flow hash seed the running program was loaded with. */
  get hashSeed(): number {
    return this.seed;
  }

  /** The loaded xdp_lb program (for testRun, info, benches). */
  get program(): Program {
    return this.prog;
  }

  /** Where this data plane is pinned, or null. */
  get pinDir(): string | null {
    return this.pinnedAt;
  }

  /**
   * Pins every map, the program, a meta map and every link under `pinDir` (layout in the module
   * comment); does nothing when already pinned there.
   * @throws Error when pinned elsewhere; BpfError EEXIST when a pin path is taken (another data
   *   plane pinned there: adopt it or unpin it first).
   */
  pin(pinDir: string = DEFAULT_PIN_DIR): void {
    if (this.pinnedAt === pinDir) return;
    if (this.pinnedAt) throw new Error(`dataplane: already pinned at ${this.pinnedAt}`);
    fs.mkdirSync(path.join(pinDir, 'maps'), { recursive: true });
    fs.mkdirSync(path.join(pinDir, 'links'), { recursive: true });
    this.pinnedAt = pinDir;
    for (const name of MAP_NAMES) this.maps[name].pin(path.join(pinDir, 'maps', name));
    this.prog.pin(path.join(pinDir, 'prog'));
    const meta = BpfMap.create({ type: 'array', name: 'xdplb_meta', keySize: 4, valueSize: META_SIZE, maxEntries: 1 });
    try {
      const value = Buffer.alloc(META_SIZE);
      encodeU32(META_MAGIC).copy(value, 0);
      encodeU32(this.hashSeed).copy(value, 4);
      encodeU32(this.maglevMaxSize).copy(value, 8);
      meta.update(encodeU32(0), value);
      meta.pin(path.join(pinDir, 'meta'));
    } finally {
      meta.close();
    }
    for (const [ifname, a] of this.links) a.link.pin(path.join(pinDir, 'links', ifname));
  }

  /**
   * Removes exactly the pins pin() made (the program stays attached while this process holds
   * the links; close() then detaches it).
   */
  unpin(): void {
    const dir = this.pinnedAt;
    if (!dir) return;
    const paths = [
      ...MAP_NAMES.map((n) => path.join(dir, 'maps', n)),
      ...[...this.links.keys()].map((ifname) => path.join(dir, 'links', ifname)),
      path.join(dir, 'prog'), path.join(dir, 'meta'),
    ];
    for (const p of paths) fs.rmSync(p, { force: true });
    for (const sub of ['maps', 'links', '']) {
      try { fs.rmdirSync(path.join(dir, sub)); } catch { /* not empty or gone: leave it */ }
    }
    this.pinnedAt = null;
  }

  /**
   * The load options of a program over the pinned maps (as replaceProgram loads it), with this
   * data plane's sizes and globals: what the daemon's "is the program current" probe loads too.
   * @throws Error when not pinned, or for a hashSeed outside 0..2^32-1
   */
  reloadOptions(hashSeed: number = this.seed): LoadOptions {
    const dir = this.pinnedAt;
    if (!dir) throw new Error('dataplane: replaceProgram needs pinned maps: pin() first');
    return lbLoadOptions({
      hashSeed, flowSets: this.maps.flows.maxEntries, maglevMaxSize: this.maglevMaxSize,
      maxBackends: this.maps.backends.maxEntries, reusePinDir: dir,
    });
  }

  /**
   * Loads a newer build of the program reusing the pinned maps, and swaps it into every
   * attached link in place (bpf_link update: no packet sees a detached interface). With
   * `hashSeed`, the new program hashes flows with that seed (recorded in the meta pin).
   * @throws Error when not pinned; BpfError from load (incompatible maps, verifier) or update
   */
  replaceProgram(objectPath: string = path.join(repoRoot(), 'bpf', 'lb.o'), opts: { hashSeed?: number } = {}): void {
    const dir = this.pinnedAt;
    if (!dir) throw new Error('dataplane: replaceProgram needs pinned maps: pin() first');
    // A new seed (hashSeed) is a constant of the program: it takes a new program too.
    const hashSeed = opts.hashSeed ?? this.seed;
    const object = BpfObject.load(objectPath, this.reloadOptions(hashSeed));
    let prog: Program;
    try {
      prog = object.program(PROGRAM_NAME);
      for (const a of this.links.values()) a.link.update(prog);
    } catch (err) {
      object.close();
      throw err;
    }
    fs.rmSync(path.join(dir, 'prog'), { force: true });
    prog.pin(path.join(dir, 'prog'));
    this.prog.close();
    this.object?.close();
    this.prog = prog;
    this.object = object;
    if (hashSeed !== this.seed) {
      this.seed = hashSeed;   // what runs now, even if recording it below fails
      // The next adopt reads the seed from the meta map.
      const meta = BpfMap.fromPin(path.join(dir, 'meta'));
      try {
        const value = meta.lookup(encodeU32(0))!;
        encodeU32(hashSeed).copy(value, 4);
        meta.update(encodeU32(0), value);
      } finally {
        meta.close();
      }
    }
  }

  /**
   * Attaches the program to `ifname` (in the calling thread's netns) and lets it redirect
   * there (tx_ports). Pins the link when the data plane is pinned.
   * @throws Error when already attached there; BpfError ENODEV / EBUSY / EOPNOTSUPP
   */
  attach(ifname: string, mode: XdpMode = 'native'): AttachmentInfo {
    if (this.links.has(ifname)) throw new Error(`dataplane: already attached to ${ifname}`);
    const link = this.prog.attachXdp(ifname, mode);
    const ifindex = link.ifindex;
    try {
      this.writeInterfaceMac(ifname, ifindex);
      this.maps.tx_ports.update(encodeU32(ifindex), encodeU32(ifindex));
      if (this.pinnedAt) link.pin(path.join(this.pinnedAt, 'links', ifname));
    } catch (err) {
      link.detach();
      link.close();
      throw err;
    }
    this.links.set(ifname, { link, ifindex, mode });
    return { ifname, ifindex, mode, progId: link.progId() };
  }

  /**
   * Detaches the program from `ifname`, removes it from tx_ports and its link pin.
   * @throws Error when not attached there
   */
  detach(ifname: string): void {
    const a = this.links.get(ifname);
    if (!a) throw new Error(`dataplane: not attached to ${ifname}`);
    a.link.detach();
    a.link.close();
    this.links.delete(ifname);
    this.maps.tx_ports.delete(encodeU32(a.ifindex));
    const slot = encodeU32(a.ifindex & (LB.IF_SLOTS - 1));
    const held = this.maps.if_macs.lookup(slot);
    if (held && LbIfMacCodec.decode(held).ifindex === a.ifindex) this.maps.if_macs.update(slot, Buffer.alloc(LbIfMacCodec.size));
    if (this.pinnedAt) fs.rmSync(path.join(this.pinnedAt, 'links', ifname), { force: true });
  }

  /**
   * Tells the program the MAC of interface `ifname` (ifindex `ifindex`): frames to another
   * destination MAC are passed to the kernel unprocessed (reason other_mac). Written before
   * the program can see the interface's frames (attach) and again on adopt and when asked.
   * @throws Error when another attached interface holds the slot; BpfError when the MAC
   *   cannot be read
   */
  writeInterfaceMac(ifname: string, ifindex: number, mac: Buffer = ifHwAddr(ifname)): void {
    const slot = encodeU32(ifindex & (LB.IF_SLOTS - 1));
    const held = this.maps.if_macs.lookup(slot);
    const holder = held ? LbIfMacCodec.decode(held).ifindex : 0;
    if (holder !== 0 && holder !== ifindex && [...this.links.values()].some((a) => a.ifindex === holder)) {
      throw new Error(`dataplane: cannot attach to ${ifname}: its ifindex ${ifindex} shares if_macs slot ${ifindex & (LB.IF_SLOTS - 1)} `
        + `with the attached ifindex ${holder} (ifindexes ${LB.IF_SLOTS} apart)`);
    }
    this.maps.if_macs.update(slot, LbIfMacCodec.encode({ ifindex, mac: [...mac.subarray(0, 6)] }));
  }

  attachments(): AttachmentInfo[] {
    return [...this.links].map(([ifname, a]) => ({ ifname, ifindex: a.ifindex, mode: a.mode, progId: a.link.progId() }));
  }

  /**
   * Makes the maps hold `state` (see src/balancer/reconciler.ts for order and ids).
   * @throws ReconcileError before any write when the kernel side cannot express the state
   */
  applyState(state: DataplaneState): ApplyResult {
    const result = this.reconciler.apply(state);
    this.syncReverseFrags(state);
    return result;
  }

  /**
   * applyState() with its large Maglev tables (>= 100000 slots) built on a worker thread
   * first, so that the caller's event loop keeps running during the builds (the daemon's
   * API and health checks). The same tables, the same writes.
   * @throws ReconcileError before any write when the kernel side cannot express the state
   */
  async applyStateAsync(state: DataplaneState): Promise<ApplyResult> {
    this.reconciler.assertInvariants(state);
    await this.reconciler.prebuildTables(state);
    const result = this.reconciler.apply(state);
    this.syncReverseFrags(state);
    return result;
  }

  /**
   * reverse_frags (see bpf/lb_abi.h): for each NAT backend address and protocol whose services
   * all have one VIP, {address, 0, proto} -> that VIP (counted under the lowest service id
   * among them and its backend there); addresses serving several VIPs get no entry, so their
   * non-first reply fragments pass untranslated (not_vip). Written after the reconciler, so
   * the ids exist; stale entries are removed.
   */
  private syncReverseFrags(state: DataplaneState): void {
    const PROTO: Record<string, number> = { tcp: 6, udp: 17 };
    const groups = new Map<string, { ip: string; proto: number; vips: Set<string>; best: { serviceId: number; backendId: number } | null }>();
    for (const s of state.services) {
      if (s.mode !== 'nat') continue;
      const serviceId = this.reconciler.serviceId(s.name);
      for (const b of s.backends) {
        const key = `${b.address}/${s.protocol}`;
        const g = groups.get(key) ?? { ip: b.address, proto: PROTO[s.protocol], vips: new Set<string>(), best: null };
        g.vips.add(s.vip);
        const backendId = this.reconciler.backendId(s.name, b.address, b.port);
        if (serviceId !== null && backendId !== null && (!g.best || serviceId < g.best.serviceId)) g.best = { serviceId, backendId };
        groups.set(key, g);
      }
    }
    const desired = new Map<string, Buffer>();
    for (const g of groups.values()) {
      if (g.vips.size !== 1 || !g.best) continue;
      const key = LbReverseKeyCodec.encode({ ip: g.ip, port: 0, proto: g.proto });
      desired.set(key.toString('hex'), LbReverseCodec.encode({ vip: [...g.vips][0], vport: 0, serviceId: g.best.serviceId, backendId: g.best.backendId }));
    }
    const m = this.maps.reverse_frags;
    const current = new Map([...m.entries()].map(([k, v]) => [k.toString('hex'), v]));
    for (const [hex, value] of desired) if (!current.get(hex)?.equals(value)) m.update(Buffer.from(hex, 'hex'), value);
    for (const hex of current.keys()) if (!desired.has(hex)) m.delete(Buffer.from(hex, 'hex'));
  }

  /** When the next kept reverse entry of a removed NAT backend is due to go (Date.now() ms), or null. */
  nextReverseExpiry(): number | null {
    return this.reconciler.nextReverseExpiry();
  }

  /** Removes the kept reverse entries whose grace period is over; returns how many. */
  expireReverse(): number {
    return this.reconciler.expireReverse();
  }

  /** Total map writes done by the reconciler (idempotence checks). */
  get writeCount(): number {
    return this.reconciler.writeCount;
  }

  serviceId(name: string): number | null {
    return this.reconciler.serviceId(name);
  }

  backendId(service: string, address: string, port: number): number | null {
    return this.reconciler.backendId(service, address, port);
  }

  /** Installed Maglev share per backend "address:port" of a service; null for an unknown one. */
  maglevShares(serviceName: string): Record<string, number> | null {
    return this.reconciler.tableShares(serviceName);
  }

  /** Every counter summed over CPUs, names resolved. @throws BpfError */
  readStats(): StatsSnapshot {
    const services: Record<string, FlowCounters> = {};
    const backends: Record<string, Record<string, FlowCounters>> = {};
    const zeroFlow: FlowCounters = { fwdPackets: 0, fwdBytes: 0, revPackets: 0, revBytes: 0 };
    const serviceIds = this.reconciler.services();
    const serviceValues = this.perCpuValues(this.maps.service_stats, serviceIds.map(([id]) => id));
    for (const [id, name] of serviceIds) {
      const value = serviceValues.get(id);
      services[name] = value ? decodePerCpuSum(LbFlowStatsCodec, value, this.cpus) : { ...zeroFlow };
      backends[name] = {};
    }
    const backendIds = this.reconciler.backends();
    const ids: Record<string, Record<string, number>> = {};
    const backendValues = this.perCpuValues(this.maps.backend_stats, backendIds.map(([id]) => id));
    for (const [id, b] of backendIds) {
      const service = this.reconciler.serviceName(b.serviceId);
      if (service === null) continue;
      const value = backendValues.get(id);
      backends[service] ??= {};
      backends[service][b.key] = value ? decodePerCpuSum(LbFlowStatsCodec, value, this.cpus) : { ...zeroFlow };
      (ids[service] ??= {})[b.key] = id;
    }
    const { actions, reasons } = this.verdictTotals();
    return { at: Date.now(), services, backends, backendIds: ids, actions, reasons };
  }

  /**
   * Calls `cb` with every trace event from the ring buffer (names resolved); returns the
   * unsubscribe function. Events are only produced while settings.sampleRate > 0.
   * @throws BpfError when the ring cannot be opened
   */
  subscribe(cb: (e: TraceEvent) => void): () => void {
    if (!this.ring) {
      this.ring = new RingBuffer(this.maps.events, (rec) => {
        if (rec.length < LbEventCodec.size) return;
        const e = this.decodeEvent(rec);
        for (const l of this.listeners) {
          // One faulty listener must not stop the others or throw into the addon's poll callback.
          try { l(e); } catch (err) { process.emitWarning(`dataplane: trace listener threw: ${String(err)}`); }
        }
      });
    }
    this.listeners.add(cb);
    return () => {
      this.listeners.delete(cb);
      if (this.listeners.size === 0 && this.ring) {
        this.ring.close();
        this.ring = null;
      }
    };
  }

  /** Drains the ring buffer now (tests: deliver what the kernel wrote without waiting). */
  drainEvents(): number {
    return this.ring ? this.ring.consume() : 0;
  }

  decodeEvent(rec: Buffer): TraceEvent {
    const e = LbEventCodec.decode(rec);
    return {
      tsNs: e.tsNs, ifindex: e.ifindex, pktLen: e.pktLen,
      service: e.serviceId ? this.reconciler.serviceName(e.serviceId) : null,
      backend: e.backendId ? this.reconciler.backendName(e.backendId) : null,
      serviceId: e.serviceId, backendId: e.backendId, saddr: e.saddr, daddr: e.daddr,
      sport: e.sport, dport: e.dport, proto: e.proto,
      action: XDP_ACTIONS[e.action] ?? 'aborted',
      reason: REASONS[e.reason] ?? 'malformed',
    };
  }

  /** A handle on one of the balancer's maps (owned by the data plane: do not close it). */
  map(name: MapName): BpfMap {
    const m = this.maps[name];
    if (!m) throw new Error(`dataplane: no map named "${name}"`);
    return m;
  }

  /** The balancer's maps with kernel info and how many entries are in use. @throws BpfError */
  mapView(): MapSummary[] {
    return MAP_NAMES.map((name) => {
      const m = this.maps[name];
      const info = m.info();
      return {
        name, id: info.id, type: info.type, typeName: info.typeName, keySize: info.keySize,
        valueSize: info.valueSize, maxEntries: info.maxEntries,
        usedEntries: name === 'events' ? 0 : this.usedEntries(name).length,
      };
    });
  }

  /**
   * One page of a map's used entries, decoded (per-CPU values summed).
   * @throws Error for an unknown map name or a bad offset/limit
   */
  mapEntries(name: string, offset = 0, limit = 100): MapEntriesPage {
    if (!(MAP_NAMES as readonly string[]).includes(name)) throw new Error(`dataplane: no map named "${name}"`);
    if (!Number.isInteger(offset) || offset < 0 || !Number.isInteger(limit) || limit < 0) {
      throw new Error(`dataplane: offset ${offset} / limit ${limit} must be integers >= 0`);
    }
    const mapName = name as MapName;
    if (mapName === 'events') return { name, total: 0, offset, entries: [] };
    const used = this.usedEntries(mapName);
    const entries = used.slice(offset, offset + limit).map(([key, value]) => this.decodeEntry(mapName, key, value));
    return { name, total: used.length, offset, entries };
  }

  /** BPF_PROG_TEST_RUN of the balancer program on one frame. @throws BpfError */
  testRun(frame: Buffer, ingressIfindex?: number): TestRunResult {
    return this.prog.testRun(frame, ingressIfindex === undefined ? {} : { ingressIfindex });
  }

  /**
   * Closes every handle. Unpinned links detach with it; pinned ones keep the program running.
   */
  close(): void {
    this.ring?.close();
    this.ring = null;
    this.listeners.clear();
    for (const a of this.links.values()) a.link.close();
    this.links.clear();
    for (const m of Object.values(this.maps)) m.close();
    this.prog.close();
    this.object?.close();
    this.object = null;
  }

  /** Raw values of `ids` in a per-CPU array: key by key for a few, one batch read for many. */
  private perCpuValues(map: BpfMap, ids: number[]): Map<number, Buffer> {
    const out = new Map<number, Buffer>();
    if (ids.length > 64) {
      const wanted = new Set(ids);
      for (const [key, value] of map.lookupBatch()) {
        const id = decodeU32(key);
        if (wanted.has(id)) out.set(id, value);
      }
      return out;
    }
    for (const id of ids) {
      const value = map.lookup(encodeU32(id));
      if (value) out.set(id, value);
    }
    return out;
  }

  /** verdict_stats (one batch read) summed per XDP action and per reason. */
  private verdictTotals(): { actions: Record<XdpAction, PacketCounter>; reasons: Record<Reason, PacketCounter> } {
    const actions = Object.fromEntries(XDP_ACTIONS.map((a) => [a, { packets: 0, bytes: 0 }])) as Record<XdpAction, PacketCounter>;
    const reasons = Object.fromEntries(REASONS.map((r) => [r, { packets: 0, bytes: 0 }])) as Record<Reason, PacketCounter>;
    for (const [key, value] of this.maps.verdict_stats.lookupBatch()) {
      const { reason, action } = verdictSlot(decodeU32(key));
      const c = decodePerCpuSum(LbCounterCodec, value, this.cpus);
      if (c.packets === 0 && c.bytes === 0) continue;
      for (const sum of [actions[XDP_ACTIONS[action]], reasons[REASONS[reason]]]) {
        if (!sum) continue;   // a slot past the named actions/reasons: never written by the program
        sum.packets += c.packets;
        sum.bytes += c.bytes;
      }
    }
    return { actions, reasons };
  }

  /**
   * Entries in use: every entry of a hash, the non-zero slots of an array (an unused array slot
   * reads as zeros). One BPF_MAP_LOOKUP_BATCH where the map type has it, else key by key.
   */
  private usedEntries(name: MapName): Array<[Buffer, Buffer]> {
    const m = this.maps[name];
    let all: Array<[Buffer, Buffer]>;
    try {
      all = m.lookupBatch();
    } catch {
      all = [...m.entries()];
    }
    if (!/array/.test(m.typeName) || /of_maps/.test(m.typeName)) return all;
    return all.filter(([, v]) => v.some((byte) => byte !== 0));
  }

  private decodeEntry(name: MapName, key: Buffer, value: Buffer): { key: unknown; value: unknown } {
    const index = decodeU32(key);
    switch (name) {
      case 'services': return { key: LbServiceKeyCodec.decode(key), value: { ...LbServiceCodec.decode(value), name: this.reconciler.serviceName(LbServiceCodec.decode(value).id) } };
      case 'vips': return { key: bytesToIpv4(key), value: LbVipCodec.decode(value) };
      case 'maglev': return { key: index, value: { innerMapId: decodeU32(value), tableSize: innerTableSize(decodeU32(value)), service: this.reconciler.serviceName(index) } };
      case 'backends': return { key: index, value: { ...LbBackendCodec.decode(value), name: this.reconciler.backendName(index) } };
      case 'reverse': case 'reverse_frags': return { key: LbReverseKeyCodec.decode(key), value: LbReverseCodec.decode(value) };
      case 'if_macs': {
        const v = LbIfMacCodec.decode(value);
        return { key: index, value: { ifindex: v.ifindex, mac: v.mac.map((b) => b.toString(16).padStart(2, '0')).join(':') } };
      }
      case 'flows': return {
        key: index,
        value: LbFlowSetCodec.decode(value).way.filter((w) => w.backendId !== 0)
          .map((w) => ({ ...w.key, backendId: w.backendId, backendIp: w.backendIp, backend: this.reconciler.backendName(w.backendId), referenced: w.referenced === 1 })),
      };
      case 'settings': return { key: index, value: LbSettingsCodec.decode(value) };
      case 'tx_ports': return { key: index, value: decodeU32(value) };
      case 'service_stats': return { key: index, value: { ...decodePerCpuSum(LbFlowStatsCodec, value, this.cpus), service: this.reconciler.serviceName(index) } };
      case 'backend_stats': return { key: index, value: { ...decodePerCpuSum(LbFlowStatsCodec, value, this.cpus), backend: this.reconciler.backendName(index) } };
      case 'verdict_stats': {
        const { reason, action } = verdictSlot(index);
        return { key: `${REASONS[reason] ?? reason}/${XDP_ACTIONS[action] ?? action}`, value: decodePerCpuSum(LbCounterCodec, value, this.cpus) };
      }
      case 'events': return { key: index, value: null };
    }
  }
}

/** The {reason, action} of a verdict_stats index (lb_abi.h LB_VERDICT_SLOTS). */
export function verdictSlot(index: number): { reason: number; action: number } {
  return { reason: Math.floor(index / LB.ACTION_SLOTS), action: index % LB.ACTION_SLOTS };
}

/** Entries of the inner map with this id, or null when it is gone. */
function innerTableSize(id: number): number | null {
  try {
    const inner = BpfMap.fromId(id);
    const size = inner.maxEntries;
    inner.close();
    return size;
  } catch {
    return null;
  }
}

/** The backend ids of an installed inner table, from its outer-map value (the inner map id). */
function readMaglevTable(outerValue: Buffer): Uint32Array | null {
  let inner: BpfMap;
  try {
    inner = BpfMap.fromId(decodeU32(outerValue));
  } catch {
    return null; // freed meanwhile: the next apply installs a fresh one
  }
  try {
    const table = new Uint32Array(inner.maxEntries);
    for (const [key, value] of inner.lookupBatch()) table[decodeU32(key)] = decodeU32(value);
    return table;
  } finally {
    inner.close();
  }
}

/** A new inner Maglev array (BPF_F_INNER_MAP, so its size may differ from the template) holding `entries`. */
export function createMaglevTable(entries: Uint32Array): { fd: number; close(): void } {
  const table = BpfMap.create({
    type: 'array', name: 'maglev_table', keySize: 4, valueSize: 4, maxEntries: entries.length, flags: BPF_F_INNER_MAP,
  });
  try {
    // Two flat host-order u32 arrays, written with one batch.
    const flatKeys = Buffer.from(Uint32Array.from(entries, (_, i) => i).buffer);
    const flatValues = Buffer.from(Uint32Array.from(entries).buffer);
    table.updateBatchFlat(flatKeys, flatValues, entries.length);
  } catch (err) {
    table.close();
    throw err;
  }
  return table;
}

