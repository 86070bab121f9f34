/**
 * Dataplane: the life cycle of the loaded XDP balancer (bpf/lb.o) or of its pinned maps and
 * links after a restart: load, adopt, pin and unpin, attach and detach, replace the program in
 * place. It owns the handles (program, maps, links) and lends its maps to the two other jobs,
 * which live in their own modules and never close them:
 *   - the balancer's state: src/balancer/balancer.ts (the Reconciler over these maps, owned by
 *     whoever drives the data plane: the daemon's kernel driver, a test, a benchmark);
 *   - inspection: inspect.ts (decoded stats and maps), events.ts (the trace event ring).
 *
 * Pin layout under a pin directory (default /sys/fs/bpf/xdplb):
 *   maps/<map name>   every map of the object (services, vips, maglev, backends, reverse,
 *                     reverse_frags, if_macs, flows, settings, tx_ports, *_stats, events)
 *   links/<ifname>    one XDP bpf_link per attached interface
 *   prog              the xdp_lb program (testRun and replaceProgram after adopt)
 *   meta              a one-entry ARRAY: magic (= the maps' layout version), hash seed,
 *                     largest Maglev size and flags (bit 0: the inner Maglev tables are
 *                     BPF_F_MMAPABLE; 0 in pins of older builds), for adopt
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  BpfObject, BpfMap, Program, XdpLink, xdpAttachments, ifHwAddr, repoRoot, BPF_F_INNER_MAP, BPF_F_MMAPABLE,
  type XdpMode, type TestRunResult, type LoadOptions,
} from '../bpf';
import { LB, LbIfMacCodec, decodeU32, encodeU32 } from './abi';
import { LB_MAPS } from './lb.generated';
import { lbLoadOptions, MAP_NAMES, OPTIONAL_MAPS, type MapName } from './load-options';
import { MaglevOuterMaps } from './maglev-tables';

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
  /** IPv6 flows the flows6 cache holds (default LB.MAX_FLOWS6): rounded like maxFlows */
  maxFlows6?: number;
  maxVips?: number;
  maxReverse?: number;
  /** largest Maglev table accepted (and the inner template's size) */
  maglevMaxSize?: number;
  /** pin everything there right after load */
  pinDir?: string;
}

export interface AttachmentInfo { ifname: string; ifindex: number; mode: XdpMode; progId: number }

const META_SIZE = 16; // u32 magic, u32 hash seed, u32 maglevMaxSize, u32 flags (META_F_*)
/**
 * The map_flags the inner tables of `outer` (an ARRAY_OF_MAPS not yet in use) must have: this
 * build's (BPF_F_INNER_MAP | BPF_F_MMAPABLE) when a one-entry table with them goes in at index 0
 * (no service has id 0), else BPF_F_INNER_MAP (an older build's template).
 */
function innerFlagsOf(outer: BpfMap): number {
  const flags = LB_MAPS.maglev.inner.flags;
  const probe = BpfMap.create({ type: 'array', name: 'xdplb_probe', keySize: 4, valueSize: 4, maxEntries: 1, flags });
  try {
    outer.update(encodeU32(0), encodeU32(probe.fd));
    outer.delete(encodeU32(0));
    return flags;
  } catch {
    return BPF_F_INNER_MAP;
  } finally {
    probe.close();
  }
}

/** meta flags: the inner tables of maglev and maglev_marks are BPF_F_MMAPABLE (written in place through a mapping). */
const META_F_MMAPABLE_TABLES = 1;
/** "xlb" + the maps' layout version: bumped whenever a map's type, key or value changes, so that
 * adopt refuses maps it cannot use instead of misreading them. */
const META_MAGIC = 0x786c6236; // "xlb6": IPv6 sibling maps, lb_settings.vip_filter6, family-aware lb_event
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
  /** Every map of MAP_NAMES, but for OPTIONAL_MAPS the adopted pins lacked. */
  private readonly maps: Record<MapName, BpfMap>;
  private readonly links = new Map<string, Attached>();
  private pinnedAt: string | null = null;
  private seed: number;
  readonly maglevMaxSize: number;
  /** Opened from pins (adopt): its maps hold what a previous process wrote (ids to recover). */
  readonly adopted: boolean;
  /** map_flags an inner table of maglev / maglev_marks must have (the outer maps' templates'):
   * BPF_F_INNER_MAP, with BPF_F_MMAPABLE unless adopted from an older build's pins. */
  readonly innerTableFlags: number;

  private constructor(object: BpfObject | null, prog: Program, maps: Record<MapName, BpfMap>,
    hashSeed: number, maglevMaxSize: number,
    innerTableFlags: number = LB_MAPS.maglev.inner.flags & LB_MAPS.maglev_marks.inner.flags) {
    this.innerTableFlags = innerTableFlags;
    this.object = object;
    this.prog = prog;
    this.maps = maps;
    this.seed = hashSeed;
    this.maglevMaxSize = maglevMaxSize;
    this.adopted = object === null;
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
    const sets6 = flowSets(positive(opts.maxFlows6, LB.MAX_FLOWS6, 'maxFlows6'));
    const object = BpfObject.load(objectPath, lbLoadOptions({
      hashSeed: opts.hashSeed, flowSets: sets, flowSets6: sets6, maglevMaxSize, maxServices, maxBackends,
      maxVips: positive(opts.maxVips, LB.MAX_VIPS, 'maxVips'),
      maxReverse: positive(opts.maxReverse, LB.MAX_REVERSE, 'maxReverse'),
    }));
    let dp: Dataplane;
    try {
      const maps = Object.fromEntries(MAP_NAMES.map((n) => [n, object.map(n)])) as Record<MapName, BpfMap>;
      // This build's lb.o has this build's inner templates; another object (an older build's)
      // is asked which flags its maglev inner tables take.
      const own = path.resolve(objectPath) === path.resolve(repoRoot(), 'bpf', 'lb.o');
      dp = new Dataplane(object, object.program(PROGRAM_NAME), maps, opts.hashSeed, maglevMaxSize,
        own ? undefined : innerFlagsOf(maps.maglev));
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
      const absent = MAP_NAMES.filter((name) => !fs.existsSync(path.join(pinDir, 'maps', name)));
      const missing = absent.filter((name) => !OPTIONAL_MAPS.has(name));
      if (missing.length) throw olderLayout(pinDir, `no pinned ${missing.join(', ')}`);
      for (const name of MAP_NAMES) {
        if (absent.includes(name)) continue;   // an optional map: replaceProgram adds it
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
      const metaFlags = raw.length >= 16 ? decodeU32(raw, 12) : 0;
      const dp = new Dataplane(null, prog, maps, decodeU32(raw, 4), decodeU32(raw, 8),
        BPF_F_INNER_MAP | (metaFlags & META_F_MMAPABLE_TABLES ? BPF_F_MMAPABLE : 0));
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
    for (const name of MAP_NAMES) this.maps[name]?.pin(path.join(pinDir, 'maps', name));
    this.prog.pin(path.join(pinDir, 'prog'));
    const meta = BpfMap.create({ type: 'array', name: 'xdplb_meta', keySize: 4, valueSize: META_SIZE, maxEntries: 1 });
    try {
      const value = Buffer.alloc(META_SIZE);
      encodeU32(META_MAGIC).copy(value, 0);
      encodeU32(this.hashSeed).copy(value, 4);
      encodeU32(this.maglevMaxSize).copy(value, 8);
      encodeU32(this.innerTableFlags & BPF_F_MMAPABLE ? META_F_MMAPABLE_TABLES : 0).copy(value, 12);
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
      hashSeed, flowSets: this.maps.flows.maxEntries, flowSets6: this.maps.flows6.maxEntries, maglevMaxSize: this.maglevMaxSize,
      maxBackends: this.maps.backends.maxEntries, maxServices: this.maps.services.maxEntries, reusePinDir: dir,
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
    // Maps this build added (OPTIONAL_MAPS) that the pins lacked: created by this load, pinned now.
    for (const name of OPTIONAL_MAPS) {
      if (this.maps[name]) continue;
      const m = object.map(name);
      m.pin(path.join(dir, 'maps', name));
      this.maps[name] = m;
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
    const link = XdpLink.attach(this.prog, ifname, mode);
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

  /** A handle on one of the balancer's maps (owned by the data plane: do not close it). @throws Error for an unknown name */
  map(name: MapName): BpfMap {
    const m = this.maps[name];
    if (!m) throw new Error(`dataplane: no map named "${name}"`);
    return m;
  }

  /** The outer-map value (inner table id) of service `serviceId`'s Maglev table (maglev_std,
   * then maglev: MaglevOuterMaps), or null. */
  serviceTable(serviceId: number): Buffer | null {
    return new MaglevOuterMaps(this.maps.maglev, this.maps.maglev_std ?? null).lookup(encodeU32(serviceId));
  }

  /** An OPTIONAL_MAPS map, or null when the adopted pins lack it (until replaceProgram). */
  optionalMap(name: MapName): BpfMap | null {
    return this.maps[name] ?? null;
  }

  /** BPF_PROG_TEST_RUN of the balancer program on one frame. @throws BpfError */
  testRun(frame: Buffer, ingressIfindex?: number): TestRunResult {
    return this.prog.testRun(frame, ingressIfindex === undefined ? {} : { ingressIfindex });
  }

  /**
   * Closes every handle. Unpinned links detach with it; pinned ones keep the program running.
   * Close the TraceEvents over this data plane first (its ring reads the events map).
   */
  close(): void {
    for (const a of this.links.values()) a.link.close();
    this.links.clear();
    for (const m of Object.values(this.maps)) m.close();
    this.prog.close();
    this.object?.close();
    this.object = null;
  }
}
