/**
 * The daemon's Controller (src/domain/types.ts): one desired state, changed whole or not at
 * all. Every change runs the same path, one at a time:
 *   DesiredState mutation (validates) -> write the config file under a temporary name (fsync)
 *   -> reconcile into the data plane -> rename the file into place -> broadcast {type:'state'}.
 * When the file cannot be written, nothing reaches the kernel (XDPLB_ERR_STORAGE); when the
 * kernel refuses, the temporary file is removed, the previous state is re-applied and the
 * caller gets XDPLB_ERR_DATAPLANE.
 * Health transitions re-reconcile (not persisted: health is not configuration).
 */
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import path from 'node:path';
import type { Logger } from 'pino';
import type {
  Controller, ServiceSpec, ServiceView, BackendSpec, BackendView, SettingsView, StatsView, StreamMessage,
  ProgramView, MapView, MapPage,
} from '../domain/types';
import type { BackendChange, StateApplyResult, StateDiff, StateDocument, TransitionsView } from '../domain/types';
import { transitionsFor } from './transitions-view';
import { diffConfigs, emptyDiff, maglevDisruption } from './state-diff';
import { XdplbError } from '../domain/errors';
import { markChange } from '../domain/timing';
import { DesiredState, backendKey, canonicalBackendKey, effectiveTableSize } from '../config/state';
import type { Config } from '../config/schema';
import type { DataplaneState, StatsSnapshot } from '../dataplane/types';
import type { HealthMonitor } from '../health/monitor';
import type { BackendHealth } from '../health/monitor';
import type { DataplaneDriver } from './driver';
import { StatsSampler, type StatsLayout } from './stats-history';

export interface DaemonControllerOptions {
  state: DesiredState;
  driver: DataplaneDriver;
  health: HealthMonitor;
  /**
   * Makes a change durable: writes the config under a temporary name before the change reaches
   * the kernel (a write that fails changes nothing) and returns the step that puts it in place
   * (commit) or discards it (abort); its fsync may still run (PendingWrite.durable) while the
   * kernel takes the change. A function returning nothing has written the file whole.
   * May be async (etcd mode, src/store/etcd.ts: a transaction guarded by the applied revision).
   * null = in-memory only (tests).
   * @throws XdplbError STORAGE (nothing was changed); CONFLICT / UNAVAILABLE from a store
   */
  persist: PersistHook | null;
  logger: Logger;
  /** Directory of `xdplb bench` JSON results (latestBench). */
  benchDir?: string;
  statsIntervalMs?: number;
  /**
   * Starting health verdicts at start() (instead of 'unknown'): after a restart, backends the
   * pinned data plane had marked down stay out of the table until their checks rise.
   */
  seedHealth?: (service: string, backend: string) => 'up' | 'down' | undefined;
}

/**
 * A config written under a temporary name: commit() renames it into place, abort() removes it.
 * Either may return a promise (awaited: etcd mode, the background write's rename).
 * `durable`, when present, settles when the temporary file is on disk: the write's fsync then
 * runs while the change goes to the kernel, and a failed one rolls the kernel back (STORAGE).
 */
export interface PendingWrite { commit(): unknown; abort(): unknown; durable?: Promise<void> }
/** Called with the config of a DesiredState (validated whole: it need not validate it again;
 * frozen: it only reads it). */
export type PersistHook = (config: Config) => PendingWrite | void | Promise<PendingWrite | void>;
/** replaceConfig options: seed 'apply' takes a new hashSeed too (etcd mode: the store is the source). */
export interface ReplaceOptions { seed?: 'refuse' | 'apply'; onApplied?: (changed: boolean) => void }

type WeightStep = (service: string, backend: string) => { step: number; steps: number };

/**
 * Desired config + health verdicts -> what the data plane should hold. Only 'up' and
 * 'unchecked' backends take traffic ('checking' ones wait for `rise` successes). Slow start:
 * while a backend of a service ramps at step k of S, every weight of that service is scaled by
 * S and the ramping one takes weight x k (Maglev tables depend only on weight ratios, so the
 * others' slots do not move for the scaling itself).
 */
export function buildDataplaneState(config: Readonly<Config>, health: (service: string, backend: string) => BackendHealth,
  weightStep: WeightStep = () => ({ step: 1, steps: 1 })): DataplaneState {
  return {
    services: config.services.map((s) => {
      const keys = s.backends.map(backendKey);
      const steps = s.backends.map((_b, i) => weightStep(s.name, keys[i]));
      const scale = steps.reduce((m, st) => (st.steps > 1 ? lcm(m, st.steps) : m), 1);
      return {
        name: s.name, vip: s.vip, port: s.port, protocol: s.protocol, mode: s.mode,
        tableSize: effectiveTableSize(s, config),
        backends: s.backends.map((b, i) => {
          const h = health(s.name, keys[i]);
          return {
            address: b.address, port: b.port, weight: (b.weight * scale * steps[i].step) / steps[i].steps,
            healthy: h === 'up' || h === 'unchecked',
            draining: !!b.drain,
          };
        }),
      };
    }),
    settings: {
      fragPolicy: config.fragments, sampleRate: config.sampling.rate, flowCache: config.flowCache,
      ...(config.reverseGraceSeconds !== undefined ? { reverseGraceSeconds: config.reverseGraceSeconds } : {}),
      ...(config.transitionSeconds !== undefined ? { transitionSeconds: config.transitionSeconds } : {}),
    },
  };
}

function lcm(a: number, b: number): number {
  const gcd = (x: number, y: number): number => (y === 0 ? x : gcd(y, x % y));
  return (a / gcd(a, b)) * b;
}

/**
 * True when the health monitor's sync() would leave every checker as it is for `next`: the same
 * services with the same checks (the same objects: a DesiredState shares what a change leaves
 * alone), names, VIPs, ports, modes, and backends at the same addresses and ports in the same order.
 */
export function sameChecks(previous: readonly ServiceSpec[], next: readonly ServiceSpec[]): boolean {
  if (previous.length !== next.length) return false;
  for (let i = 0; i < next.length; i++) {
    const [a, b] = [previous[i], next[i]];
    if (a === b) continue;
    if (a.name !== b.name || a.vip !== b.vip || a.port !== b.port || a.mode !== b.mode || a.healthCheck !== b.healthCheck) return false;
    if (a.backends.length !== b.backends.length) return false;
    for (let k = 0; k < a.backends.length; k++) {
      const [x, y] = [a.backends[k], b.backends[k]];
      if (x !== y && (x.address !== y.address || x.port !== y.port)) return false;
    }
  }
  return true;
}

/** Canonical JSON (object keys sorted): a file's key order is not a change. */
function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value === null || typeof value !== 'object') return value;
  const record = value as Record<string, unknown>;
  return Object.fromEntries(Object.keys(record).sort().filter((k) => record[k] !== undefined).map((k) => [k, canonical(record[k])]));
}

function withoutCredentials(config: Readonly<Config>): string {
  return JSON.stringify(canonical({ ...config, users: undefined, tokens: undefined, allowEmpty: undefined }));
}

/** Runs async jobs one after another (mutations must not interleave). */
class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(job: () => Promise<T> | T): Promise<T> {
    const result = this.tail.then(job, job);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

export class DaemonController implements Controller {
  private desired: DesiredState;
  private readonly driver: DataplaneDriver;
  private readonly health: HealthMonitor;
  private readonly persist: PersistHook | null;
  private readonly logger: Logger;
  private readonly benchDir: string | undefined;
  private readonly seedHealth: DaemonControllerOptions['seedHealth'];
  private readonly queue = new SerialQueue();
  private readonly listeners = new Set<(msg: StreamMessage) => void>();
  private unsubscribeEvents: (() => void) | null = null;
  readonly sampler: StatsSampler;

  constructor(opts: DaemonControllerOptions) {
    this.desired = opts.state;
    this.driver = opts.driver;
    this.health = opts.health;
    this.persist = opts.persist;
    this.logger = opts.logger;
    this.benchDir = opts.benchDir;
    this.seedHealth = opts.seedHealth;
    this.sampler = new StatsSampler(() => this.driver.readStats(), () => this.statsLayout(),
      (view) => this.broadcast({ type: 'stats', data: view }), opts.statsIntervalMs ?? 1000, undefined,
      (err) => this.logger.warn({ err: (err as Error).message }, 'stats sample failed'));
    this.health.on('change', (change) => {
      this.logger.info({ service: change.service, backend: change.backend, health: change.health, previous: change.previous, detail: change.detail, reason: change.reason }, 'backend health changed');
      if (change.health === 'up' || change.health === 'down') {
        this.broadcast({ type: 'health', data: { service: change.service, backend: change.backend, health: change.health } });
      }
      void this.reconcileHealth(performance.now());
    });
    this.health.on('ramp', (ramp) => {
      this.logger.info({ ...ramp }, 'slow start: backend weight step');
      void this.reconcileHealth();
    });
  }

  /** The current desired state (the whole config). */
  get state(): DesiredState { return this.desired; }

  /** First reconcile at start-up; starts health checks and stats sampling. @throws XdplbError DATAPLANE */
  async start(): Promise<void> {
    await this.queue.run(async () => {
      // An adopted data plane keeps its seed (changing it is an explicit operation): the state says so.
      const running = this.driver.hashSeed?.();
      if (running !== undefined && running !== this.desired.config.hashSeed) {
        this.logger.warn({ running, configured: this.desired.config.hashSeed },
          'the running data plane uses another hashSeed than the config: kept; reloads of the file are refused until `xdplb hash-seed set` makes them agree');
        this.desired = new DesiredState({ ...this.desired.toConfig(), hashSeed: running });
      }
      this.health.sync(this.desired.toConfig().services, this.seedHealth);
      const { writes } = await this.applyOrThrow(this.desired);
      // 0 after adopting a data plane that already held this state: a hitless restart.
      this.logger.info({ writes, services: this.desired.services.length }, 'initial state applied');
    });
    this.health.start();
    this.sampler.start();
  }

  /** Resolves when every queued change and health reconcile has finished. */
  idle(): Promise<void> {
    return this.queue.run(() => undefined);
  }

  stop(): void {
    this.sampler.stop();
    this.health.stop();
    this.unsubscribeEvents?.();
    this.unsubscribeEvents = null;
    this.listeners.clear();
  }

  /**
   * Replaces the whole desired state with a config read from disk (hot reload), or with what
   * `config()` returns when given a function (called in turn with the API's changes). Nothing
   * is persisted: the file is already the source. A config equal to the running one is a no-op.
   * @returns false when it was equal (nothing done). @throws XdplbError VALIDATION / DATAPLANE
   */
  replaceConfig(config: unknown, opts: ReplaceOptions = {}): Promise<boolean> {
    return this.queue.run(async () => {
      // A function is called in the queue: a file read there cannot be overtaken by an API
      // change (which would make a refused file acceptable, or apply a stale read).
      const next = new DesiredState(typeof config === 'function' ? (config as () => unknown)() : config);
      const running = this.runningHashSeed();
      if (next.config.hashSeed !== running && opts.seed === 'apply') {
        // The store's seed is the cluster's: every node takes it (flows re-hash on this node).
        try {
          await this.driver.setHashSeed?.(next.config.hashSeed);
        } catch (err) {
          throw new XdplbError('XDPLB_ERR_DATAPLANE', `the kernel refused the new hash seed: ${(err as Error).message}`, undefined, { cause: err });
        }
        this.logger.warn({ from: running, to: next.config.hashSeed }, 'hash seed changed by the store: every flow re-hashes');
        try {
          await this.commit(next, false);
        } catch (err) {
          await Promise.resolve(this.driver.setHashSeed?.(running)).catch(() => undefined);
          throw err;
        }
        opts.onApplied?.(true);
        return true;
      }
      if (next.config.hashSeed !== running) {
        throw new XdplbError('XDPLB_ERR_VALIDATION', `/hashSeed: ${next.config.hashSeed} differs from the running seed ${running}: ` +
          'a new seed re-hashes every flow, so it is never changed by a reload; change it explicitly with ' +
          `\`xdplb hash-seed set ${next.config.hashSeed}\` (PUT /api/v1/hash-seed), which also writes it to the file`, '/hashSeed');
      }
      // Credentials are compared apart: a plain secret in the file hashes with a new salt on
      // every read, and users/tokens do not touch the data plane anyway.
      if (withoutCredentials(next.config) === withoutCredentials(this.desired.config)) {
        this.desired = next;
        opts.onApplied?.(false);
        return false;
      }
      await this.commit(next, false);
      opts.onApplied?.(true);
      return true;
    });
  }

  // ---- Controller: services and backends ------------------------------------------------

  listServices(): ServiceView[] {
    return this.desired.services.map((s) => this.serviceView(s));
  }

  getService(name: string): ServiceView {
    return this.serviceView(this.desired.getService(name));
  }

  async createService(spec: ServiceSpec): Promise<ServiceView> {
    await this.mutate((s) => s.createService(spec));
    return this.getService(spec.name);
  }

  async replaceService(name: string, spec: ServiceSpec): Promise<ServiceView> {
    await this.mutate((s) => s.replaceService(name, spec));
    return this.getService(name);
  }

  async deleteService(name: string): Promise<void> {
    await this.mutate((s) => s.deleteService(name));
  }

  async addBackend(service: string, spec: BackendSpec): Promise<ServiceView> {
    await this.mutate((s) => s.addBackend(service, spec));
    return this.getService(service);
  }

  async patchBackend(service: string, key: string, patch: { weight?: number; drain?: boolean }): Promise<ServiceView> {
    await this.mutate((s) => s.patchBackend(service, key, patch));
    return this.getService(service);
  }

  async deleteBackend(service: string, key: string): Promise<void> {
    await this.mutate((s) => s.deleteBackend(service, key));
  }

  getSettings(): SettingsView { return this.desired.settings(); }

  // ---- the flow hash seed: shown everywhere, changed only explicitly ---------------------

  /** The seed the running program hashes flows with. */
  runningHashSeed(): number {
    return this.driver.hashSeed?.() ?? this.desired.config.hashSeed;
  }

  hashSeed(): { hashSeed: number } {
    return { hashSeed: this.runningHashSeed() };
  }

  /**
   * Replaces the seed in the running program and in the config file (written first, renamed
   * after the kernel took it). Flows re-hash: established connections may move.
   * @throws XdplbError VALIDATION (not a u32), STORAGE (nothing changed), DATAPLANE
   */
  setHashSeed(seed: number): Promise<{ hashSeed: number }> {
    return this.queue.run(async () => {
      const previous = this.desired;
      const from = this.runningHashSeed();
      const next = new DesiredState({ ...previous.toConfig(), hashSeed: seed });   // validates: VALIDATION /hashSeed
      if (seed === from && next.config.hashSeed === previous.config.hashSeed) return { hashSeed: seed };
      const pending = this.persist ? (await this.persist(next.toConfig())) ?? null : null;
      try {
        // A seed change re-hashes every flow: it waits for the file to be on disk first.
        await pending?.durable;
      } catch (err) {
        pending?.abort();
        throw err;
      }
      try {
        if (seed !== from) await this.driver.setHashSeed?.(seed);
      } catch (err) {
        await pending?.abort();
        const message = (err as Error).message ?? String(err);
        throw new XdplbError('XDPLB_ERR_DATAPLANE', `the kernel refused the new hash seed: ${message}`, undefined, { cause: err });
      }
      try {
        await pending?.commit();
      } catch (err) {
        try { await this.driver.setHashSeed?.(from); } catch (restoreErr) {
          this.logger.error({ err: (restoreErr as Error).message }, 'could not restore the previous hash seed');
        }
        throw err;
      }
      this.desired = next;
      this.logger.warn({ from, to: seed }, 'hash seed changed: every flow re-hashes (set the same seed on every node behind ECMP)');
      this.broadcastState();
      return { hashSeed: seed };
    });
  }

  async patchSettings(patch: Partial<SettingsView>): Promise<SettingsView> {
    await this.mutate((s) => s.patchSettings(patch));
    return this.getSettings();
  }

  // ---- Controller: kernel views and stats -----------------------------------------------

  programs(): { programs: ProgramView[]; statsEnabled: boolean } { return this.driver.programs(); }
  setProgramStats(enabled: boolean): void { this.driver.setProgramStats(enabled); }
  maps(): MapView[] { return this.driver.maps(); }
  transitions(): TransitionsView { return transitionsFor(this.desired.config, this.driver.transitions?.() ?? null); }
  /** Calls `listener` when the data plane's moved-slot count changes; returns the unsubscribe function. */
  onTransitionsChange(listener: () => void): () => void { return this.driver.onTransitionsChange?.(listener) ?? (() => {}); }
  mapEntries(name: string, offset: number, limit: number): MapPage {
    const page = this.driver.mapEntries(name, offset, limit);
    return name === 'maglev' || name === 'maglev_std' ? { ...page, entries: page.entries.map((e) => this.withMaglevShares(e)) } : page;
  }
  interfaces(): Array<{ ifname: string; ifindex: number; mode: string; progId: number }> { return this.driver.interfaces(); }

  stats(): StatsView { return this.sampler.current(); }
  counters(): StatsSnapshot { return this.driver.readStats(); }
  statsHistory(seconds: number): StatsView[] { return this.sampler.history.last(seconds); }

  latestBench(): unknown | null {
    if (!this.benchDir) return null;
    let newest: { file: string; mtime: number } | null = null;
    let names: string[];
    try { names = fs.readdirSync(this.benchDir); } catch { return null; }
    // `xdplb bench` writes latest.json beside the timestamped files: it names the newest.
    if (names.includes('latest.json')) names = ['latest.json'];
    for (const name of names) {
      if (!name.endsWith('.json')) continue;
      const file = path.join(this.benchDir, name);
      const mtime = fs.statSync(file).mtimeMs;
      if (!newest || mtime > newest.mtime) newest = { file, mtime };
    }
    if (!newest) return null;
    try {
      return JSON.parse(fs.readFileSync(newest.file, 'utf8')) as unknown;
    } catch (err) {
      // JSON.parse's message quotes the text: only its kind goes to the log (never file content).
      const why = err instanceof SyntaxError ? 'not valid JSON' : (err as NodeJS.ErrnoException).code ?? 'unreadable';
      this.logger.warn({ file: newest.file, err: why }, 'unreadable bench result');
      return null;
    }
  }

  subscribe(listener: (msg: StreamMessage) => void): () => void {
    this.listeners.add(listener);
    // Kernel events are decoded only while someone listens.
    if (!this.unsubscribeEvents) {
      try {
        this.unsubscribeEvents = this.driver.subscribe((event) => this.broadcast({ type: 'event', data: event }));
      } catch (err) {
        this.logger.warn({ err: (err as Error).message }, 'cannot follow kernel events');
      }
    }
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0 && this.unsubscribeEvents) {
        this.unsubscribeEvents();
        this.unsubscribeEvents = null;
      }
    };
  }

  // ---- whole-state and bulk changes (issue 16): one transaction on the same commit path ------

  /** The desired state as a state document: every service, and the settings. */
  stateDocument(): StateDocument {
    return { services: this.desired.toConfig().services, settings: this.desired.settings() };
  }

  /**
   * Replaces every service (and the settings the document names) in one change: validated
   * whole, written, reconciled and committed like any other change (all or nothing), or on a
   * dry run only compared. Returns the diff and the Maglev disruption (share of each service's
   * flows that move; a dry run assumes the health the backends would have right after).
   * @throws XdplbError VALIDATION / CONFLICT (nothing changed), STORAGE, DATAPLANE
   */
  applyStateDocument(doc: StateDocument, opts: { dryRun: boolean }): Promise<StateApplyResult> {
    return this.queue.run(async () => {
      markChange('queue');
      const next = this.stateFrom(doc);
      markChange('validate');
      const diff = diffConfigs(this.desired.config, next.config);
      const before = this.dataplaneState(this.desired);
      if (opts.dryRun || emptyDiff(diff)) {
        const disruption = await maglevDisruption(before, opts.dryRun ? this.projectedState(next) : before);
        return { dryRun: opts.dryRun, applied: false, diff, disruption };
      }
      await this.commit(next, true);
      // After the change: the tables the kernel now holds, against the ones it held.
      return { dryRun: false, applied: true, diff, disruption: await maglevDisruption(before, this.dataplaneState(this.desired)) };
    });
  }

  /**
   * Weight and drain changes of several backends, in one change (one table swap per service).
   * @throws XdplbError NOT_FOUND (field /changes/N), VALIDATION (a backend named twice, a bad
   *   weight), STORAGE, DATAPLANE; nothing changes then
   */
  async patchBackends(changes: BackendChange[]): Promise<{ services: ServiceView[]; diff: StateDiff }> {
    let before: Readonly<Config> | null = null;
    let after: Readonly<Config> | null = null;
    await this.mutate((state) => {
      const services = state.config.services;
      const seen = new Set<string>();
      const patches = changes.map((c, i) => {
        const at = `/changes/${i}`;
        const index = services.findIndex((s) => s.name === c.service);
        if (index < 0) throw new XdplbError('XDPLB_ERR_NOT_FOUND', `${at}: service "${c.service}" does not exist`, at);
        // By key through the state's index (kept across weight and drain changes: a scan per
        // change was 100 x 1000 key strings, a map built per request 1000).
        const wanted = canonicalBackendKey(c.backend);
        const backend = state.findBackend(index, wanted);
        if (backend < 0) throw new XdplbError('XDPLB_ERR_NOT_FOUND', `${at}: service "${c.service}" has no backend "${c.backend}"`, at);
        if (seen.has(`${c.service}|${wanted}`)) {
          throw new XdplbError('XDPLB_ERR_VALIDATION', `${at}: backend "${wanted}" of service "${c.service}" is named twice`, at);
        }
        seen.add(`${c.service}|${wanted}`);
        const patch: { weight?: number; drain?: boolean } = {};
        if (c.weight !== undefined) patch.weight = c.weight;
        if (c.drain !== undefined) patch.drain = c.drain;
        return { service: index, backend, patch, at };
      });
      // Validates the changes (weights' range...); the rest of the state is as valid as it was.
      const next = state.patchBackends(patches);
      before = state.config;
      after = next.config;
      return next;
    });
    // The diff is worked out after the change is in (not on the way to the kernel).
    const diff = diffConfigs(before!, after!);
    const names = [...new Set(changes.map((c) => c.service))];
    return { services: names.map((n) => this.getService(n)), diff };
  }

  /** The desired state a state document describes (the rest of the config as it is). @throws XdplbError VALIDATION / CONFLICT */
  private stateFrom(doc: StateDocument): DesiredState {
    const state = new DesiredState({ ...this.desired.toConfig(), services: doc.services });
    if (!doc.settings) return state;
    try {
      return state.patchSettings(doc.settings);
    } catch (err) {
      if (err instanceof XdplbError && err.field !== undefined) throw new XdplbError(err.code, err.message, `/settings${err.field}`, { cause: err });
      throw err;
    }
  }

  /**
   * What the data plane would hold right after `next` were applied: backends it keeps have
   * their verdicts, new ones of a checked service wait for their checks (or start up with
   * initialState up), a service that gains a check keeps serving the backends it served.
   */
  private projectedState(next: DesiredState): DataplaneState {
    const before = new Map(this.desired.services.map((s) => [s.name, s]));
    const specs = new Map(next.services.map((s) => [s.name, s]));
    return buildDataplaneState(next.config, (service, backend) => {
      const spec = specs.get(service);
      if (!spec?.healthCheck) return 'unchecked';
      const old = before.get(service);
      const known = old?.backends.some((b) => backendKey(b) === backend) ?? false;
      if (known && old!.healthCheck) {
        const h = this.health.health(service, backend);
        return h === 'unchecked' ? 'checking' : h;
      }
      if (known) return 'up';
      return spec.healthCheck.initialState === 'up' ? 'up' : 'checking';
    }, (s, b) => this.health.weightStep(s, b));
  }

  // ---- internals --------------------------------------------------------------------------

  /** {type:'state'} to the stream's listeners; with none, the views (every backend's share) are not even worked out. */
  private broadcastState(): void {
    if (this.listeners.size === 0) return;
    this.broadcast({ type: 'state', data: { services: this.listServices() } });
  }

  private broadcast(msg: StreamMessage): void {
    for (const listener of [...this.listeners]) {
      try { listener(msg); } catch (err) { this.logger.warn({ err: (err as Error).message }, 'stream listener failed'); }
    }
  }

  private mutate(build: (state: DesiredState) => DesiredState): Promise<void> {
    return this.queue.run(async () => {
      markChange('queue');
      const next = build(this.desired);   // throws VALIDATION / CONFLICT / NOT_FOUND: nothing changed
      markChange('validate');
      await this.commit(next, true);
    });
  }

  /**
   * Makes `next` current: written under a temporary name first (if asked; a failure there
   * changes nothing, not even the kernel), then reconciled, then the file renamed into place.
   * A kernel refusal removes the temporary file and re-applies the previous state.
   */
  private async commit(next: DesiredState, persist: boolean): Promise<void> {
    const previous = this.desired;
    let writes = 0;
    // The state's own frozen config (no clone: the hook only reads; the file's formatting then
    // reuses the lines of the backends this change left alone).
    const pending = persist && this.persist ? (await this.persist(next.config as Config)) ?? null : null;
    markChange('persist');
    // A change of weights and drains leaves every check as it is (the health monitor probes the
    // same backends the same way): nothing to sync, nothing to restore.
    const checksChange = !sameChecks(previous.services, next.services);
    // The verdicts before the change: a refused change restores them (sync() forgets the
    // backends and services `next` drops, and would bring them back 'checking', out of the table).
    const verdicts = new Map<string, 'up' | 'down'>();
    if (checksChange) {
      for (const s of previous.services) {
        for (const b of s.backends) {
          const key = backendKey(b);
          const h = this.health.health(s.name, key);
          if (h === 'up' || h === 'down') verdicts.set(`${s.name}|${key}`, h);
        }
      }
      this.health.sync([...next.services]);   // read only: no clone of the whole config
    }
    try {
      try {
        writes = (await this.applyOrThrow(next)).writes;
      } catch (err) {
        await pending?.abort();
        throw err;
      }
      // The answer means on disk too: a write whose fsync failed is undone in the kernel below.
      if (pending?.durable) {
        await pending.durable.catch(async (err: unknown) => { await pending.abort(); throw err; });
        markChange('fsync');
      }
      await pending?.commit();
      markChange('commit');
    } catch (err) {
      if (checksChange) this.health.sync(previous.toConfig().services, (service, backend) => verdicts.get(`${service}|${backend}`));
      try {
        await this.driver.applyState(this.dataplaneState(previous));
      } catch (restoreErr) {
        this.logger.error({ err: (restoreErr as Error).message }, 'could not restore the previous state in the data plane');
      }
      throw err;
    }
    this.desired = next;
    this.logger.info({ services: next.services.length, writes }, 'desired state applied');
    this.broadcastState();
  }

  private async applyOrThrow(state: DesiredState): Promise<{ writes: number }> {
    try {
      return await this.driver.applyState(this.dataplaneState(state));
    } catch (err) {
      if (err instanceof XdplbError) throw err;
      const message = (err as Error).message ?? String(err);
      this.logger.error({ err: message }, 'the kernel refused the change');
      throw new XdplbError('XDPLB_ERR_DATAPLANE', `the kernel refused the change: ${message}`, undefined, { cause: err });
    }
  }

  private dataplaneState(state: DesiredState): DataplaneState {
    return buildDataplaneState(state.config, (s, b) => this.health.health(s, b), (s, b) => this.health.weightStep(s, b));
  }

  /** A health verdict changed: the same desired state, reconciled with the new verdicts. */
  private reconcileHealth(verdictAt?: number): Promise<void> {
    return this.queue.run(async () => {
      try {
        const queuedMs = verdictAt === undefined ? 0 : performance.now() - verdictAt;
        await this.applyOrThrow(this.desired);
        // From the verdict to the kernel holding it (the health -> kernel latency, issue 16).
        if (verdictAt !== undefined) this.logger.debug({ ms: performance.now() - verdictAt, queuedMs }, 'health verdict in the kernel');
        this.broadcastState();
      } catch (err) {
        this.logger.error({ err: (err as Error).message }, 'health reconcile failed');
      }
    });
  }

  private statsLayout(): StatsLayout {
    return {
      services: this.desired.services.map((s) => ({
        name: s.name,
        backends: s.backends.map((b) => ({ key: backendKey(b), health: this.health.health(s.name, backendKey(b)) })),
      })),
    };
  }

  /** A maglev entry as docs/api.md shows it: {serviceId, service, tableSize, shares: [{backend, slots, share}]}. */
  private withMaglevShares(entry: { key: unknown; value: unknown }): { key: unknown; value: unknown } {
    const value = (entry.value ?? {}) as { service?: string | null };
    const spec = this.desired.services.find((s) => s.name === value.service);
    if (!spec) return entry;
    const tableSize = effectiveTableSize(spec, this.desired.config);
    const placement = this.driver.placement(spec.name, spec.backends);
    const shares = spec.backends.map((b) => {
      const share = placement?.backends[backendKey(b)]?.share ?? 0;
      return { backend: backendKey(b), slots: Math.round(share * tableSize), share };
    });
    return { key: entry.key, value: { ...value, serviceId: entry.key, service: spec.name, tableSize, shares } };
  }

  private serviceView(spec: ServiceSpec): ServiceView {
    const placement = this.driver.placement(spec.name, spec.backends);
    const { backends, ...rest } = spec;
    return {
      ...rest,
      tableSize: effectiveTableSize(spec, this.desired.config),
      id: placement?.id ?? 0,
      backends: backends.map((b): BackendView => {
        const key = backendKey(b);
        const placed = placement?.backends[key];
        const view: BackendView = {
          ...b, id: placed?.id ?? 0, key, health: this.health.health(spec.name, key), draining: !!b.drain,
          inTable: (placed?.share ?? 0) > 0, tableShare: placed?.share ?? 0,
        };
        const status = this.health.backendStatus(spec.name, key);
        if (status?.reason) { view.healthReason = status.reason; view.heldUntil = status.heldUntil!; }
        if (status && status.weightStep.steps > 1) view.rampWeight = (b.weight * status.weightStep.step) / status.weightStep.steps;
        return view;
      }),
    };
  }
}
