/**
 * The xdplb daemon: config file -> desired state -> health -> reconciler -> data plane, with
 * the API and dashboard on config.api.listen.
 *
 * Start: load the config (invalid: throw, the CLI exits 1), adopt the data plane pinned under
 * the pin dir (or load and pin a fresh one), replace its program in place when the object file
 * is a newer build, attach to the configured interfaces, reconcile, start health checks and
 * serve. Hot reload: the config file changing on disk, or SIGHUP. Stop (SIGTERM/SIGINT): the
 * program stays attached and pinned and keeps forwarding, unless detachOnExit.
 *
 * In-process use (tests): `const d = await startDaemon({configPath, pinDir}); ...; await d.stop()`.
 * Child-process use: see src/daemon/spawn.ts.
 *
 * This is the composition root (the one place that wires the daemon core in src/daemon to the
 * HTTP API in src/api), so it lives with the CLI: nothing below src/api and src/cli imports
 * src/api (src/layering.test.ts).
 */
import dns from 'node:dns/promises';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import pino, { type Logger } from 'pino';
import { loadConfigFile, parseConfigText, prepareConfigFile, readConfigText } from '../config/config';
import { DesiredState } from '../config/state';
import { parseListen, type Config } from '../config/schema';
import { AuthStore } from '../api/auth';
import { createApiServer } from '../api/server';
import { HealthMonitor } from '../health/monitor';
import { DsrProbeRoutes } from '../health/dsr-routes';
import { repoPath } from '../daemon/paths';
import { DaemonController } from '../daemon/controller';
import { openKernel, type KernelSession } from '../daemon/kernel-driver';
import { watchConfigFile, type ConfigWatcher } from '../daemon/config-watcher';
import { DEFAULT_PIN_DIR } from '../daemon/defaults';
import { enforceListenPolicy } from '../daemon/listen-check';
import { XdplbError } from '../domain/errors';
import { ifIndex } from '../bpf';
import { BgpSpeaker, type NodeBgpStatus } from '../cluster/bgp-speaker';
import { validateState } from '../config/state';
import { EtcdStore, type EtcdStoreOptions } from '../store/etcd';
import { followStore, readInitialState, type StoreFollower } from '../store/sync';
import { ClusterService, NODE_NAME_RE, defaultNodeName, type ClusterHooks } from '../cluster/status';

export { DEFAULT_PIN_DIR };

export interface DaemonOptions {
  configPath: string;
  /** bpffs directory of the pinned link and maps (default /sys/fs/bpf/xdplb). */
  pinDir?: string;
  /** BPF object (default bpf/lb.o of this checkout). */
  objectPath?: string;
  /** On stop(): detach and unpin instead of leaving the program forwarding. */
  detachOnExit?: boolean;
  /** Overrides config api.listen ("host:port"; port 0 = any free port). */
  listen?: string;
  /** Dashboard files (default web/dist when it exists). */
  webRoot?: string;
  /** Directory of `xdplb bench` results (default bench-results/ of this checkout). */
  benchDir?: string;
  logger?: Logger;
  /** Debounce of config file events (ms). */
  reloadDebounceMs?: number;
  /** Directory of BIRD's socket, config, pid file and log when the config has bgp: (default /run/xdplb/bird). */
  birdDir?: string;
  /** etcd://HOST:PORT/PREFIX: the desired state lives in etcd (overrides config `store`). */
  store?: string;
  /** This node's name in the cluster (overrides config node.name; default the host name). */
  nodeName?: string;
  /** Cluster hooks (drain effect, BGP status): src/cluster/status.ts. */
  cluster?: Partial<ClusterHooks>;
  /** Store timings (tests). */
  storeOptions?: Partial<Pick<EtcdStoreOptions, 'probeIntervalMs' | 'callTimeoutMs' | 'leaseTtlSeconds'>>;
  /** NodeStatus publishing period (ms, default 1000). */
  publishIntervalMs?: number;
}

export type ReloadOutcome = 'applied' | 'unchanged' | 'invalid';

export interface RunningDaemon {
  controller: DaemonController;
  /** The cluster view, node drain and the hooks (file mode: this node alone). */
  cluster: ClusterService;
  /** The cluster store (null in file mode). */
  store: EtcdStore | null;
  /** Base URL of the API, e.g. http://127.0.0.1:8720 */
  url: string;
  host: string;
  port: number;
  pid: number;
  /** Re-reads the config file (what SIGHUP and file edits do). Never throws. */
  reload(reason?: string): Promise<ReloadOutcome>;
  /** Stops health checks, the server and the watcher; detaches and unpins only if asked. */
  stop(opts?: { detach?: boolean }): Promise<void>;
  /** The BGP speaker (config bgp:), or null. */
  bgp: BgpSpeaker | null;
  /** The drain hook: withdraw every VIP (drain) or announce again; the data plane keeps forwarding. */
  onDrain(drain: boolean, graceSeconds?: number): Promise<NodeBgpStatus | null>;
  /** Whether the node is drained (also without bgp:, where a drain changes no announcement). */
  isDrained(): boolean;
}

/**
 * Checks before the kernel is touched that the API can listen at `listen`: the host resolves
 * and the port can be bound (then released for the server).
 * @throws XdplbError XDPLB_ERR_VALIDATION naming the address and the cause
 */
async function assertCanListen(listen: string): Promise<void> {
  const { host, port } = parseListen(listen);
  let address: string;
  try {
    address = net.isIP(host) ? host : (await dns.lookup(host)).address;
  } catch (err) {
    throw new XdplbError('XDPLB_ERR_VALIDATION', `cannot listen on ${listen}: host "${host}" does not resolve (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, '/api/listen');
  }
  await new Promise<void>((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', (err: NodeJS.ErrnoException) => reject(new XdplbError('XDPLB_ERR_VALIDATION',
      `cannot listen on ${listen}: ${err.code === 'EADDRINUSE' ? 'address already in use' : err.code === 'EADDRNOTAVAIL' ? 'address not available on this host' : err.message}`, '/api/listen')));
    probe.listen({ host: address, port, exclusive: true }, () => probe.close(() => resolve()));
  });
}

function defaultWebRoot(): string | undefined {
  const dir = repoPath('web/dist');
  return fs.existsSync(path.join(dir, 'index.html')) ? dir : undefined;
}

/**
 * Starts the daemon in this process.
 * @throws XdplbError VALIDATION / CONFLICT / CONFIG_FILE for a bad config, DATAPLANE when the
 *   kernel refuses the initial state; BpfError when loading or attaching fails; Error when the
 *   API cannot listen.
 */
export async function startDaemon(opts: DaemonOptions): Promise<RunningDaemon> {
  const logger = opts.logger ?? pino({ name: 'xdplb' });
  const configPath = path.resolve(opts.configPath);
  const pinDir = opts.pinDir ?? DEFAULT_PIN_DIR;
  const config = loadConfigFile(configPath, { storeMode: !!opts.store });
  const listenInUse = opts.listen ?? config.api.listen;
  // etcd mode (src/store/): the file holds this node's settings, the store the cluster's state.
  const storeUrl = opts.store ?? config.store;
  const nodeName = opts.nodeName ?? config.node?.name ?? defaultNodeName();
  if (!NODE_NAME_RE.test(nodeName)) throw new XdplbError('XDPLB_ERR_VALIDATION', `/node/name: "${nodeName.slice(0, 80)}" is not a node name (1..63 letters, digits, "_", "." or "-")`, '/node/name');
  let store: EtcdStore | null = null;
  let initial: DesiredState;
  let storeRead: Awaited<ReturnType<typeof readInitialState>>['read'] | null = null;
  let localConfig: Config = config;
  if (storeUrl) {
    if (config.services.length || config.users.length || config.tokens.length) {
      logger.warn({ config: configPath }, 'cluster mode: the services, users and tokens of the file are ignored (the store holds them; seed with `xdplb store init`)');
    }
    store = new EtcdStore({ url: storeUrl, nodeName, logger, ...opts.storeOptions });
    try {
      ({ state: initial, read: storeRead } = await readInitialState(store, config));
    } catch (err) {
      await store.close();
      throw err;
    }
  } else {
    initial = new DesiredState(config);
  }
  try {
    await enforceListenPolicy(listenInUse, initial.config, logger);
  } catch (err) {
    await store?.close();
    throw err;
  }
  logger.info({ config: configPath, services: initial.services.length, pinDir, store: storeUrl ?? null, node: nodeName, revision: storeRead?.modRevision }, 'config loaded');
  // Fail before touching the kernel: a start that cannot serve must not leave a data plane behind.
  await assertCanListen(opts.listen ?? initial.config.api.listen).catch(async (err: unknown) => { await store?.close(); throw err; });

  const kernel: KernelSession = await openKernel({
    pinDir, objectPath: opts.objectPath ?? repoPath('bpf/lb.o'), config: initial.config, logger,
  });
  // DSR checks probe each VIP through each backend by policy routing (src/health/dsr-routes.ts).
  const dsrRoutes = new DsrProbeRoutes();
  try { dsrRoutes.reset(); } catch (err) { logger.warn({ err: (err as Error).message }, 'cannot clear old DSR probe routes'); }
  const health = new HealthMonitor({ dsrRoutes });
  /** File mode: the config file's bytes the running state was last written as or applied from
   * (null: not known yet). The watcher skips a file that still holds exactly these. */
  let syncedText: string | null = null;
  const controller = new DaemonController({
    state: initial, driver: kernel.driver, health, logger,
    seedHealth: (service, backend) => (kernel.downAtAdopt.has(`${service}|${backend}`) ? 'down'
      : kernel.upAtAdopt.has(`${service}|${backend}`) ? 'up' : undefined),
    benchDir: opts.benchDir ?? repoPath('bench-results'),
    // File mode: written before the kernel, fsynced while the kernel takes the change (docs/decisions.md).
    persist: store ? store.persist : (next: Config) => {
      const write = prepareConfigFile(configPath, next, { background: true, validated: true });
      return {
        ...write,
        async commit() {
          await write.commit();
          // In place: the file now holds the state the daemon runs (its watcher need not re-read it).
          syncedText = write.text;
        },
      };
    },
  });
  const auth = new AuthStore(initial.config.users, initial.config.tokens);
  let server: ReturnType<typeof createApiServer> | null = null;
  let watcher: ConfigWatcher | null = null;
  let bgp: BgpSpeaker | null = null;
  // The drain hook works from the first request on: a drain before BGP is up is applied when it starts.
  let pendingDrain: { drain: boolean; graceSeconds: number } | undefined;
  const onDrain = async (drain: boolean, graceSeconds = 0): Promise<NodeBgpStatus | null> => {
    if (!bgp) {
      pendingDrain = { drain, graceSeconds };
      return null;
    }
    return bgp.onDrain(drain, graceSeconds);
  };
  // The latest BGP view from birdc (status() is async; the cluster status is read synchronously).
  let lastBgp: NodeBgpStatus | null = null;
  let bgpPoll: NodeJS.Timeout | null = null;
  const cluster = new ClusterService({
    nodeName, source: controller, store, logger, publishIntervalMs: opts.publishIntervalMs,
    hooks: {
      onDrain: async (drain, graceSeconds) => { lastBgp = await onDrain(drain, graceSeconds); },
      bgpStatus: () => (lastBgp ? { ...lastBgp, drained: bgp ? bgp.drained : lastBgp.drained } : null),
      ...opts.cluster,
    },
  });
  let follower: StoreFollower | null = null;
  try {
    await controller.start();
    if (store && storeRead) {
      follower = await followStore({
        store, controller, local: () => localConfig, read: storeRead, logger,
        onApplied: (applied) => auth.update(applied.users, applied.tokens),
      });
      auth.update(controller.state.config.users, controller.state.config.tokens);
    }
    await cluster.start();
    // Per-request lines at info would drown the daemon's own log (the dashboard polls): warn and up.
    const apiLogger = logger.child({ component: 'api' }, { level: logger.isLevelEnabled('debug') ? 'debug' : 'warn' });
    server = createApiServer(controller, { auth, logger: apiLogger, webRoot: opts.webRoot ?? defaultWebRoot(), apiConfig: () => controller.state.config.api, cluster });
    const { host, port } = parseListen(opts.listen ?? initial.config.api.listen);
    await server.listen({ host, port });
    if (initial.config.bgp) {
      bgp = new BgpSpeaker({
        bgp: initial.config.bgp, birdDir: opts.birdDir ?? '/run/xdplb/bird', logger,
        services: () => controller.listServices(),
        attached: () => dataplaneAttached(controller),
        // Announce while this node is not known to be behind (src/store/etcd.ts announceable()):
        // an unreachable store alone withdraws nothing, or losing etcd's majority would take
        // every VIP off the routers at once (docs/decisions.md).
        storeFresh: () => (store ? store.announceable() : true), drained: pendingDrain,
      });
      await bgp.start();
      const speaker = bgp;
      const pollBgp = () => { speaker.status().then((st) => { lastBgp = st; }, () => undefined); };
      pollBgp();
      bgpPoll = setInterval(pollBgp, 1000);
      bgpPoll.unref();
      cluster.on('change', () => { void speaker.refresh(); });
    }
  } catch (err) {
    if (bgpPoll) clearInterval(bgpPoll);
    await bgp?.stop();
    cluster.stop();
    await store?.close();
    controller.stop();
    await server?.close().catch(() => {});
    await controller.idle().catch(() => {});
    // Exactly what this start loaded goes again; an adopted data plane stays as it was found.
    const detach = kernel.origin === 'loaded';
    kernel.close({ detach });
    if (detach) logger.warn({ pinDir }, 'start-up failed: the data plane this start loaded was detached and unpinned');
    throw err;
  }
  const address = server.server.address();
  const bound = typeof address === 'object' && address ? address : { address: '127.0.0.1', port: 0 };
  const url = `http://${bound.address.includes(':') ? `[${bound.address}]` : bound.address}:${bound.port}`;
  logger.info({ url, interfaces: controller.interfaces(), gcMs: kernel.startupGcMs }, 'xdplb daemon ready');

  let reloading: Promise<ReloadOutcome> = Promise.resolve('unchanged');
  const reloadOnce = async (reason: string): Promise<ReloadOutcome> => {
    if (reason === 'file changed' && syncedText !== null && !follower) {
      // The watcher's echo of the daemon's own write (or of a file put back to the bytes the
      // running state was applied from): the same bytes are the same state, so they are not
      // parsed and validated again (~3 ms twice at 1000 backends, in the way of the next change).
      // Any other bytes (an operator's edit, even right after an API write) go the whole way.
      let text: string;
      try { text = readConfigText(configPath); } catch { text = ''; }
      if (text === syncedText) {
        logger.debug({ reason }, 'config file holds the running state (the daemon\'s own write): not re-read');
        return 'unchanged';
      }
    }
    // Read and parsed in the controller's queue, compared there with the RUNNING state, never
    // with what we last wrote: our own writes come back as 'unchanged', and a file restored
    // after a bad reload is applied again.
    let next: Config | null = null;
    let before: Config | null = null;
    let stage: 'read' | 'parse' | 'apply' = 'read';
    let parsedLocal: Config | null = null;   // etcd mode: the file's local part, kept once applied
    let changed: boolean;
    let checkedText = '';
    try {
      // The listen policy (scrypt, async) is judged on the file as read now; the queued read
      // below must find the same bytes, or it refuses (the watcher fires again for the change).
      checkedText = readConfigText(configPath);
      stage = 'parse';
      const checked = parseConfigText(checkedText, configPath, { storeMode: !!follower });
      assertInterfacesExist(checked.interfaces);
      await enforceListenPolicy(listenInUse, follower ? validateState(follower.merged(checked)) : checked, logger);
      stage = 'read';
      changed = await controller.replaceConfig(() => {
        before = controller.state.config;
        const text = readConfigText(configPath);
        if (text !== checkedText) throw new Error('the config file changed while it was being checked');
        stage = 'parse';
        next = parseConfigText(text, configPath, { storeMode: !!follower });
        if (follower) {
          // etcd mode: the file's local part with the store's applied state.
          if (next.store !== before.store) logger.warn({ store: next.store }, 'store changed in the file: takes effect at the next start');
          parsedLocal = next;
          next = validateState(follower.merged(next));
        }
        stage = 'apply';
        return next;
      });
    } catch (err) {
      const fields = { reason, err: (err as Error).message, field: (err as { field?: string }).field };
      if (stage === 'read') logger.warn(fields, 'config file unreadable; keeping the running state');
      else if (stage === 'parse') logger.error(fields, 'config file invalid; keeping the running state');
      else logger.error(fields, 'config reload refused; keeping the running state');
      return 'invalid';
    }
    const applied = next as unknown as Config;
    // The running state now matches these bytes (applied, or equal to what ran).
    if (!follower) syncedText = checkedText;
    if (parsedLocal) localConfig = parsedLocal;
    auth.update(applied.users, applied.tokens);
    // Also when nothing changed: a reload is how an operator tells the program an interface's
    // new MAC (`ip link set dev X address ...`; docs/operations.md), and the re-sync rewrites
    // every attached interface's MAC in if_macs (attaching or detaching only what changed).
    await kernel.syncInterfaces(applied.interfaces).catch((err: Error) =>
      logger.error({ err: err.message }, 'could not attach to the configured interfaces'));
    if (!changed) return 'unchanged';
    if (applied.api.listen !== (before as unknown as Config).api.listen) logger.warn({ listen: applied.api.listen }, 'api.listen changed: takes effect at the next start');
    if (bgp && applied.bgp) await bgp.reconfigure(applied.bgp);
    else if (!!bgp !== !!applied.bgp) logger.warn('bgp: added or removed: takes effect at the next start');
    logger.info({ reason, services: applied.services.length }, 'config reloaded');
    return 'applied';
  };
  const reload = (reason = 'request'): Promise<ReloadOutcome> => {
    reloading = reloading.then(() => reloadOnce(reason), () => reloadOnce(reason));
    return reloading;
  };
  try {
    watcher = watchConfigFile(configPath, () => { void reload('file changed'); }, opts.reloadDebounceMs ?? 200);
  } catch (err) {
    logger.warn({ err: (err as Error).message }, 'cannot watch the config file; use SIGHUP to reload');
  }

  let stopped = false;
  return {
    controller, cluster, store, url, host: bound.address, port: bound.port, pid: process.pid, reload, bgp,
    onDrain,
    isDrained: () => (bgp ? bgp.drained : pendingDrain?.drain === true),
    async stop(stopOpts = {}) {
      if (stopped) return;
      stopped = true;
      // Withdraw first, while the data plane still forwards what the routers send meanwhile.
      if (bgpPoll) clearInterval(bgpPoll);
      await bgp?.stop();
      watcher?.close();
      cluster.stop();
      await store?.close();
      controller.stop();
      await server!.close().catch((err: Error) => logger.warn({ err: err.message }, 'server close failed'));
      await reloading.catch(() => undefined);
      await controller.idle();   // no reconcile may run on closed maps
      const detach = stopOpts.detach ?? !!opts.detachOnExit;
      // A drained node promised to forward in-flight flows for its grace period: a detaching stop waits it out.
      const grace = detach && bgp ? bgp.drainGraceUntil - Date.now() : 0;
      if (grace > 0) {
        logger.info({ ms: grace }, 'waiting for the drain grace period before detaching');
        await new Promise((resolve) => setTimeout(resolve, grace));
      }
      kernel.close({ detach });
      logger.info({ detached: detach }, detach ? 'stopped; program detached and unpinned' : 'stopped; program stays attached and pinned');
    },
  };
}

/**
 * `xdplb daemon`: starts, then runs until SIGTERM/SIGINT (SIGHUP reloads the config).
 * @throws as startDaemon when start-up fails.
 */
export async function runDaemon(opts: DaemonOptions): Promise<void> {
  const logger = opts.logger ?? pino({ name: 'xdplb' });
  // Handlers go in before start-up: the default SIGHUP action would kill a starting daemon.
  let daemon: RunningDaemon | null = null;
  let stopSignal: NodeJS.Signals | null = null;
  let wake: () => void = () => {};
  const onHup = (): void => {
    if (!daemon) { logger.info('SIGHUP during start-up: the config is being read anyway'); return; }
    logger.info('SIGHUP: reloading the config');
    void daemon.reload('SIGHUP');
  };
  const onStop = (signal: NodeJS.Signals): void => { stopSignal ??= signal; wake(); };
  // A bug must not go unlogged: one JSON line, then exit like a crash (the program keeps
  // forwarding from its pins; the next start adopts it).
  const onCrash = (err: unknown): void => {
    logger.fatal({ err: (err as Error)?.stack ?? String(err) }, 'daemon crashed; the pinned program keeps forwarding');
    process.exit(1);
  };
  process.on('uncaughtException', onCrash);
  process.on('unhandledRejection', onCrash);
  process.on('SIGHUP', onHup);
  process.on('SIGTERM', onStop);
  process.on('SIGINT', onStop);
  try {
    daemon = await startDaemon({ ...opts, logger });
    if (!stopSignal) await new Promise<void>((resolve) => { wake = resolve; });
    logger.info({ signal: stopSignal }, 'stopping');
    await daemon.stop();
  } finally {
    process.off('SIGHUP', onHup);
    process.off('SIGTERM', onStop);
    process.off('SIGINT', onStop);
    process.off('uncaughtException', onCrash);
    process.off('unhandledRejection', onCrash);
  }
}

/**
 * Whether the data plane is attached: every configured interface has our program, and the
 * interface still exists with the same index (a deleted interface takes its XDP link with it).
 */
export function dataplaneAttached(controller: DaemonController): boolean {
  const wanted = controller.state.config.interfaces;
  if (wanted.length === 0) return false;
  const attached = controller.interfaces();
  return wanted.every((w) => {
    const a = attached.find((x) => x.ifname === w.name);
    if (!a) return false;
    try { return ifIndex(w.name) === a.ifindex; } catch { return false; }
  });
}

/**
 * A reload is applied whole or not at all: an interface the file names but this namespace does
 * not have would leave the services changed and the attachment not, so the file is refused.
 * @throws XdplbError XDPLB_ERR_VALIDATION naming /interfaces/N/name.
 */
function assertInterfacesExist(interfaces: Config['interfaces']): void {
  interfaces.forEach((i, n) => {
    try {
      ifIndex(i.name);
    } catch {
      throw new XdplbError('XDPLB_ERR_VALIDATION', `/interfaces/${n}/name: no interface "${i.name}" in this network namespace`, `/interfaces/${n}/name`);
    }
  });
}
