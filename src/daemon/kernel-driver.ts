/**
 * The daemon's kernel side: opens the data plane (adopting what a previous run pinned, or
 * loading and pinning a fresh one), keeps its program current, attaches it to the configured
 * interfaces, owns the Balancer (the Reconciler over the data plane's maps) and the inspectors
 * over them, and implements DataplaneDriver over those and the bridge's host inventory.
 */
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import type { Logger } from 'pino';
import { BpfObject, enableRunStats, listPrograms, xdpAttachments } from '../bpf';
import { Dataplane, MAP_NAMES, PROGRAM_NAME } from '../dataplane/dataplane';
import { DataplaneInspector } from '../dataplane/inspect';
import { TraceEvents } from '../dataplane/events';
import { Balancer } from '../balancer/balancer';
import { collectStartupGarbage } from './startup-gc';
import { OFF_THREAD_MIN_SLOTS } from '../balancer/maglev-offthread';
import { maglevBuildTime } from '../balancer/maglev';
import { changeTimers } from '../domain/timing';
import { LB } from '../dataplane/abi';
import { lbMap } from '../dataplane/typed-map';
import { XdplbError } from '../domain/errors';
import { MAX_SERVICE_TABLE_SIZE, type Config } from '../config/schema';
import { effectiveTableSize } from '../config/state';
import type { MapPage, MapView, ProgramView, ServiceTransitionView } from '../domain/types';
import type { DataplaneState, StatsSnapshot, TraceEvent } from '../dataplane/types';
import type { DataplaneDriver, ServicePlacement } from './driver';
import { joinHostPort } from '../domain/address';

export interface OpenKernelOptions {
  pinDir: string;
  objectPath: string;
  config: Readonly<Config>;
  logger: Logger;
}

export interface KernelSession {
  dataplane: Dataplane;
  /** The balancer's state in the data plane's maps (the Reconciler): the session's own. */
  balancer: Balancer;
  driver: DataplaneDriver;
  /** How the data plane was obtained at start. */
  origin: 'adopted' | 'adopted+replaced' | 'loaded';
  /** "service|address:port" of configured backends the adopted maps held as unhealthy. */
  downAtAdopt: Set<string>;
  /** "service|address:port" of configured backends the adopted maps held as ACTIVE (serving). */
  upAtAdopt: Set<string>;
  /** ms of the full garbage collection before the warm-up (src/daemon/startup-gc.ts), null: none. */
  startupGcMs: number | null;
  /** Attaches to exactly these interfaces (keeps matching attachments). @throws BpfError */
  syncInterfaces(interfaces: Config['interfaces']): Promise<void>;
  /** Closes every handle; with detach, detaches from every interface and removes the pins first. */
  close(opts: { detach: boolean }): void;
}

/**
 * True when `objectPath` builds the same program as the one running: the kernel's tag hashes
 * the instructions with map references masked, so equal tags mean the same code.
 * @throws BpfError when the object cannot be loaded.
 */
function programIsCurrent(dp: Dataplane, objectPath: string): { current: boolean; running: string; built: string } {
  // Loaded with replaceProgram's options, against the pinned maps: nothing new is created but
  // .rodata and the unpinned next_hops cache.
  const probe = BpfObject.load(objectPath, dp.reloadOptions());
  try {
    const built = probe.program(PROGRAM_NAME).info().tag;
    const running = dp.program.info().tag;
    return { current: built === running, running, built };
  } finally {
    probe.close();
  }
}

/**
 * The largest Maglev table a freshly loaded data plane takes (fixed for the life of its pins):
 * the config's default or MAX_SERVICE_TABLE_SIZE, so a service added later with any valid
 * tableSize fits. Only a limit: the inner tables are created at their own sizes
 * (BPF_F_INNER_MAP); the template of this size exists only while the object loads.
 */
export function maglevMaxSizeFor(config: Readonly<Config>): number {
  return Math.max(LB.MAGLEV_DEFAULT_SIZE, MAX_SERVICE_TABLE_SIZE, config.maglev.tableSize);
}

const BPF_FS_MAGIC = 0xcafe4a11;

/**
 * Refuses a pin dir that is not on a bpffs: pins anywhere else fail, and a bpffs mounted in a
 * private mount namespace (`ip netns exec` remounts /sys and hides /sys/fs/bpf) dies with the
 * process, taking the "keeps forwarding after a crash" promise with it.
 * @throws XdplbError XDPLB_ERR_UNAVAILABLE naming the fix.
 */
export function assertOnBpffs(pinDir: string): void {
  let dir = path.resolve(pinDir);
  while (!fs.existsSync(dir)) dir = path.dirname(dir);
  if (fs.statfsSync(dir).type === BPF_FS_MAGIC) return;
  throw new XdplbError('XDPLB_ERR_UNAVAILABLE',
    `pin dir ${pinDir} is not on a bpf filesystem (${dir} is not bpffs): mount one (scripts/setup.sh mounts /sys/fs/bpf); ` +
    'to run in a network namespace use `nsenter --net=/var/run/netns/NAME`, not `ip netns exec`, which hides /sys/fs/bpf');
}

const PROTO_NUMBER = { tcp: 6, udp: 17 } as const;

/**
 * The configured backends that the (adopted) maps hold as not ACTIVE, i.e. health-checked
 * down by the previous daemon. Read through the service keys, because the reconciler learns
 * service names only at its first apply.
 */
export function backendsDownInMaps(dp: Dataplane, services: Config['services']): Set<string> {
  return backendsInMaps(dp, services).down;
}

/**
 * The health the previous daemon left in the (adopted) maps: configured backends whose entry
 * is ACTIVE (serving: up, or unchecked) and those that are not (down, or still checking).
 */
export function backendsInMaps(dp: Dataplane, services: Config['services']): { up: Set<string>; down: Set<string> } {
  const serviceById = new Map<number, string>();
  const servicesMap = lbMap(dp, 'services');
  const services6Map = lbMap(dp, 'services6');   // IPv6 services: their sibling maps (issue 15)
  for (const s of services) {
    const key = { vip: s.vip, port: s.port, proto: PROTO_NUMBER[s.protocol] };
    const value = s.vip.includes(':') ? services6Map.get(key) : servicesMap.get(key);
    if (value) serviceById.set(value.id, s.name);
  }
  const down = new Set<string>();
  const up = new Set<string>();
  if (serviceById.size === 0) return { up, down };
  for (const [, b] of [...lbMap(dp, 'backends').entries(), ...lbMap(dp, 'backends6').entries()]) {
    const service = serviceById.get(b.serviceId);
    if (service === undefined) continue;
    ((b.flags & LB.BACKEND_F_ACTIVE) !== 0 ? up : down).add(`${service}|${joinHostPort(b.ip, b.port)}`);
  }
  return { up, down };
}

/**
 * Whether `ifname` (in this process's network namespace) is a veth, from `ip -d link`'s link
 * kind. On a veth, XDP_TX toward a peer that has no XDP program of its own (GRO alone gives it
 * NAPI) is queued on the peer but wakes it only at its next wake-up by other traffic (the
 * kernel's veth_xdp_flush checks the peer's XDP program, not its NAPI), so packets sent back out
 * the ingress interface (ICMP echo replies, one-armed NAT) arrive late, in batches; a redirect
 * flushes with a wake-up. False when `ip` cannot tell.
 */
export function isVeth(ifname: string): boolean {
  const out = spawnSync('ip', ['-j', '-d', 'link', 'show', 'dev', ifname], { encoding: 'utf8', timeout: 5000 });
  if (out.status !== 0) return false;
  try {
    const links = JSON.parse(out.stdout) as Array<{ linkinfo?: { info_kind?: string } }>;
    return links.some((l) => l.linkinfo?.info_kind === 'veth');
  } catch {
    return false;
  }
}

/**
 * Adopts or loads the data plane and attaches it to the configured interfaces.
 * @throws BpfError / Error when the object cannot be loaded, the pins cannot be opened or an
 *   interface cannot be attached (what was pinned before stays pinned).
 */
export async function openKernel(opts: OpenKernelOptions): Promise<KernelSession> {
  const { logger, config, pinDir, objectPath } = opts;
  assertOnBpffs(pinDir);
  let origin: KernelSession['origin'];
  let dp = Dataplane.adopt(pinDir);
  if (dp) {
    origin = 'adopted';
    logger.info({ pinDir, progId: dp.program.info().id, attachments: dp.attachments() }, 'adopted the pinned data plane');
    if (dp.hashSeed !== config.hashSeed) {
      logger.warn({ running: dp.hashSeed, configured: config.hashSeed }, 'hashSeed differs from the pinned data plane; the running one is kept until a fresh load');
    }
    const running = dp.maglevMaxSize;
    if (running < maglevMaxSizeFor(config)) {
      // Pinned by an older build (limit 65537): larger tables are refused until a fresh load.
      const tooLarge = config.services.filter((s) => effectiveTableSize(s, config) > running).map((s) => s.name);
      logger.warn({ running, fresh: maglevMaxSizeFor(config), services: tooLarge },
        'the pinned data plane takes smaller Maglev tables than a fresh load would; a larger tableSize is refused until a fresh load (stop with --detach-on-exit, then start)');
    }
    try {
      const check = programIsCurrent(dp, objectPath);
      if (!check.current) {
        dp.replaceProgram(objectPath);
        origin = 'adopted+replaced';
        logger.info({ from: check.running, to: check.built, progId: dp.program.info().id }, 'replaced the pinned program in place');
      }
    } catch (err) {
      logger.error({ err: (err as Error).message, objectPath }, 'cannot check or replace the pinned program; keeping it');
    }
  } else {
    dp = Dataplane.load({
      hashSeed: config.hashSeed, objectPath, pinDir,
      maglevMaxSize: maglevMaxSizeFor(config),
    });
    origin = 'loaded';
    logger.info({ pinDir, progId: dp.program.info().id, objectPath }, 'loaded and pinned a fresh data plane');
  }
  const dataplane = dp;
  // The Reconciler is the session's: it re-learns an adopted data plane's ids here.
  let balancer: Balancer;
  try {
    balancer = new Balancer(dataplane);
  } catch (err) {
    dataplane.close();   // the adopted maps could not be read: what is pinned stays pinned
    throw err;
  }
  const reconciler = balancer.reconciler;
  const startupGcMs = collectStartupGarbage();
  // The apply path's loops compiled before the first change (a cold first change took 15-40 ms).
  try {
    // The two table sizes most services use (~50-80 ms each at 65537 slots, once).
    const counts = new Map<number, number>();
    for (const s of config.services) {
      const size = effectiveTableSize(s, config);
      if (size < OFF_THREAD_MIN_SLOTS) counts.set(size, (counts.get(size) ?? 0) + 1);
    }
    const sizes = [...counts].sort((a, b) => b[1] - a[1]).slice(0, 2).map(([size]) => size);
    const warm = balancer.warmUp(sizes.length ? sizes : [Math.min(config.maglev.tableSize, LB.MAGLEV_DEFAULT_SIZE)]);
    logger.debug({ ...warm }, 'apply path warmed up');
  } catch (err) {
    logger.warn({ err: (err as Error).message }, 'apply path warm-up failed (first changes may be slower)');
  }
  const inspector = new DataplaneInspector(dataplane, reconciler);
  const events = new TraceEvents(dataplane, reconciler);
  const atAdopt = origin === 'loaded' ? { up: new Set<string>(), down: new Set<string>() } : backendsInMaps(dataplane, config.services);
  const downAtAdopt = atAdopt.down;
  // Only checked services' verdicts matter (unchecked backends are always in).
  const checked = new Set(config.services.filter((s) => s.healthCheck).map((s) => s.name));
  const upAtAdopt = new Set([...atAdopt.up].filter((k) => checked.has(k.slice(0, k.indexOf('|')))));
  if (downAtAdopt.size) logger.info({ backends: [...downAtAdopt] }, 'backends the pinned data plane had down stay down until their checks rise');
  if (upAtAdopt.size) logger.info({ backends: [...upAtAdopt] }, 'backends the pinned data plane had serving stay in until their checks fall');

  // settings.tx_redirect: on while any attached interface is a veth (see isVeth).
  let txRedirect = false;
  let lastState: DataplaneState | null = null;
  const withTxRedirect = (state: DataplaneState): DataplaneState => ({ ...state, settings: { ...state.settings, txRedirect } });
  // The reverse entries of removed NAT backends go when their grace period ends: one timer,
  // set for the soonest after every apply and every expiry.
  let expiryTimer: NodeJS.Timeout | null = null;
  let closed = false;
  const scheduleReverseExpiry = (minDelayMs = 100): void => {
    if (expiryTimer) clearTimeout(expiryTimer);
    expiryTimer = null;
    const next = reconciler.nextReverseExpiry();
    if (next === null || closed) return;
    // setTimeout takes at most 2^31-1 ms.
    expiryTimer = setTimeout(() => {
      expiryTimer = null;
      if (closed) return;
      try {
        const removed = reconciler.expireReverse();
        if (removed) logger.info({ removed }, "removed backends' reverse NAT entries expired");
        scheduleReverseExpiry();
      } catch (err) {
        logger.error({ err: (err as Error).message }, 'cannot remove expired reverse NAT entries; retrying in 5 s');
        scheduleReverseExpiry(5000);
      }
    }, Math.min(Math.max(next - Date.now(), minDelayMs), 2 ** 31 - 1));
    expiryTimer.unref();
  };
  // Moved Maglev slots (transitions) are swept every transitionSeconds while any is marked
  // (Reconciler.sweepTransitions: quiet slots go back to touching no per-flow state).
  let sweepTimer: NodeJS.Timeout | null = null;
  let nextSweepAt: number | null = null;
  // Told when the moved-slot count changes (ClusterService publishes the node's status then).
  const transitionListeners = new Set<() => void>();
  let toldSlots = 0;
  const tellTransitions = (): void => {
    const slots = reconciler.transitionSlotCount();
    if (slots === toldSlots) return;
    toldSlots = slots;
    for (const listener of transitionListeners) listener();
  };
  const scheduleSweep = (): void => {
    if (sweepTimer || closed || reconciler.transitionSlotCount() === 0) return;
    nextSweepAt = Date.now() + Math.min(reconciler.transitionPeriodMs, 2 ** 31 - 1);
    sweepTimer = setTimeout(() => {
      sweepTimer = null;
      nextSweepAt = null;
      if (closed) return;
      try {
        const swept = reconciler.sweepTransitions();
        if (swept.cleared) logger.info(swept, 'moved Maglev slots went quiet: no per-flow state for them any more');
        tellTransitions();
      } catch (err) {
        logger.error({ err: (err as Error).message }, 'cannot sweep the moved Maglev slots; retrying next period');
      }
      scheduleSweep();
    }, Math.min(reconciler.transitionPeriodMs, 2 ** 31 - 1));
    sweepTimer.unref();
  };
  const applyState = async (state: DataplaneState): Promise<{ writes: number }> => {
    lastState = state;
    try {
      // Large Maglev tables are built off the event loop (API and health checks keep running).
      const built = maglevBuildTime();
      const writes = (await balancer.applyStateAsync(withTxRedirect(state))).writes;
      // An API change's timer: the Maglev builds apart from the rest (map reads and writes).
      const timer = changeTimers.getStore();
      timer?.split('build', maglevBuildTime() - built, 'maps');
      timer?.inKernel();
      return { writes };
    } finally {
      scheduleReverseExpiry();
      scheduleSweep();
      tellTransitions();
    }
  };
  const syncInterfaces = async (interfaces: Config['interfaces']): Promise<void> => {
    const wanted = new Map(interfaces.map((i) => [i.name, i.mode]));
    for (const a of dataplane.attachments()) {
      const mode = wanted.get(a.ifname);
      if (mode === a.mode) continue;
      dataplane.detach(a.ifname);
      logger.info({ ifname: a.ifname, mode: a.mode }, mode ? 'detached to change the XDP mode' : 'detached from an interface no longer configured');
    }
    const attached = new Set(dataplane.attachments().map((a) => a.ifname));
    // The program passes frames not addressed to an interface's own MAC: a kept interface's
    // MAC is written again, so a reload picks up a changed address.
    for (const a of dataplane.attachments()) {
      try {
        dataplane.writeInterfaceMac(a.ifname, a.ifindex);
      } catch (err) {
        logger.warn({ ifname: a.ifname, err: (err as Error).message }, 'cannot refresh the interface MAC the program checks; keeping the one it has');
      }
    }
    for (const [ifname, mode] of wanted) {
      if (attached.has(ifname)) continue;
      const info = dataplane.attach(ifname, mode);
      logger.info({ ...info }, 'attached');
    }
    const veths = dataplane.attachments().map((a) => a.ifname).filter(isVeth);
    if ((veths.length > 0) !== txRedirect) {
      txRedirect = veths.length > 0;
      logger.info({ txRedirect, veths }, txRedirect
        ? 'veth interfaces: packets back out the ingress interface are redirected, not XDP_TX (docs/datapath.md)'
        : 'no veth interface: packets back out the ingress interface use XDP_TX');
      if (lastState) await applyState(lastState);
    }
  };
  try {
    await syncInterfaces(config.interfaces);
  } catch (err) {
    // A data plane this start loaded goes again (links and pins); an adopted one stays pinned.
    if (origin === 'loaded') {
      for (const a of dataplane.attachments()) { try { dataplane.detach(a.ifname); } catch { /* closing anyway */ } }
      dataplane.unpin();
    }
    dataplane.close();
    throw err;
  }

  let runStats: { close(): void } | null = null;
  // Table shares count a whole table (65537+ slots, ~1-2 ms): kept per service until the next
  // map write (no write, no table or backend change), so views after a change do not recount.
  const sharesCache = new Map<string, { writes: number; shares: Record<string, number> }>();
  const sharesOf = (service: string): Record<string, number> => {
    const writes = reconciler.writeCount;
    const cached = sharesCache.get(service);
    if (cached && cached.writes === writes) return cached.shares;
    const shares = reconciler.tableShares(service) ?? {};
    if (sharesCache.size > 4096) sharesCache.clear();
    sharesCache.set(service, { writes, shares });
    return shares;
  };
  let transitionsCache: { at: number; writes: number; services: ServiceTransitionView[] } | null = null;
  const driver: DataplaneDriver = {
    applyState,
    placement: (service: string, backends: Array<{ address: string; port: number }>): ServicePlacement | null => {
      const id = reconciler.serviceId(service);
      if (id === null) return null;
      const shares = sharesOf(service);
      const placed: ServicePlacement['backends'] = {};
      for (const b of backends) {
        const key = joinHostPort(b.address, b.port);
        placed[key] = { id: reconciler.backendId(service, b.address, b.port) ?? 0, share: shares[key] ?? 0 };
      }
      return { id, backends: placed };
    },
    readStats: (): StatsSnapshot => inspector.readStats(),
    subscribe: (listener: (e: TraceEvent) => void) => events.subscribe(listener),
    programs: () => {
      const ours = dataplane.program.info().id;
      const attachByProg = new Map(xdpAttachments().map((a) => [a.progId, { ifname: a.ifname, ifindex: a.ifindex, mode: a.mode }]));
      const programs: ProgramView[] = listPrograms().map((p) => ({
        ...p,
        ...(attachByProg.has(p.id) ? { attach: attachByProg.get(p.id)! } : {}),
        // Only while run stats are on: the kernel keeps stale totals after they are turned off.
        avgNs: runStats && p.runCount > 0 ? p.runTimeNs / p.runCount : null,
        xdplb: p.id === ours,
      }));
      return { programs, statsEnabled: runStats !== null };
    },
    setProgramStats: (enabled: boolean) => {
      if (enabled && !runStats) runStats = enableRunStats();
      if (!enabled && runStats) { runStats.close(); runStats = null; }
    },
    maps: (): MapView[] => inspector.mapView(),
    mapEntries: (name: string, offset: number, limit: number): MapPage => {
      if (!(MAP_NAMES as readonly string[]).includes(name)) {
        throw new XdplbError('XDPLB_ERR_NOT_FOUND', `map "${name}" does not exist; the balancer's maps are ${MAP_NAMES.join(', ')}`);
      }
      if (!Number.isInteger(offset) || offset < 0) throw new XdplbError('XDPLB_ERR_VALIDATION', `offset must be an integer >= 0, got ${offset}`, '/offset');
      if (!Number.isInteger(limit) || limit < 0) throw new XdplbError('XDPLB_ERR_VALIDATION', `limit must be an integer >= 0, got ${limit}`, '/limit');
      return inspector.mapEntries(name, offset, limit);
    },
    interfaces: () => dataplane.attachments().map(({ ifname, ifindex, mode, progId }) => ({ ifname, ifindex, mode, progId })),
    hashSeed: () => dataplane.hashSeed,
    transitions: () => {
      // Services with marks are read back from the kernel (~1-2 ms per 65537-slot table): at most
      // once a second, and again after any map write (an apply or a sweep changes the marks).
      const writes = reconciler.writeCount;
      if (!transitionsCache || transitionsCache.writes !== writes || Date.now() - transitionsCache.at >= 1000) {
        transitionsCache = { at: Date.now(), writes, services: reconciler.transitionStates() };
      }
      return {
        transitionSeconds: reconciler.transitionPeriodMs / 1000,
        nextSweepAt: sweepTimer ? nextSweepAt : null,
        flowCache: lastState?.settings.flowCache ?? true,
        services: transitionsCache.services,
      };
    },
    onTransitionsChange: (listener: () => void) => {
      transitionListeners.add(listener);
      return () => { transitionListeners.delete(listener); };
    },
    setHashSeed: (seed: number) => {
      const from = dataplane.hashSeed;
      dataplane.replaceProgram(objectPath, { hashSeed: seed });
      logger.warn({ from, to: seed, progId: dataplane.program.info().id }, 'hash seed replaced in the running program: flows re-hash');
    },
  };

  return {
    dataplane, balancer, driver, origin, downAtAdopt, upAtAdopt, syncInterfaces, startupGcMs,
    close({ detach }) {
      closed = true;
      if (expiryTimer) clearTimeout(expiryTimer);
      if (sweepTimer) clearTimeout(sweepTimer);
      expiryTimer = null;
      runStats?.close();
      runStats = null;
      if (detach) {
        for (const a of dataplane.attachments()) {
          try { dataplane.detach(a.ifname); } catch (err) { logger.error({ ifname: a.ifname, err: (err as Error).message }, 'detach failed'); }
        }
        dataplane.unpin();
      }
      events.close();
      balancer.close();   // the kept table mappings: an unpinned data plane's tables go with them
      dataplane.close();
    },
  };
}
