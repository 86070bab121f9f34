/**
 * Active health checks of one service's backends with rise/fall hysteresis.
 *
 * Each backend starts 'checking' (or as the check's initialState / a seed says). `rise`
 * consecutive successful probes make it 'up', `fall` consecutive failures make it 'down'; a
 * single result against the current state changes nothing, so a flapping backend does not
 * flap the Maglev table. The daemon keeps 'checking' backends out of the table: a backend
 * takes traffic only once proven. Flap damping and slow start: src/health/state.ts.
 *
 * The probes originate from the daemon's own network namespace (the lb host), which also
 * keeps the kernel's neighbour entries for the backends fresh: the XDP program needs one to
 * forward (it passes the packet to the kernel with reason `no_neigh` otherwise).
 */
import { EventEmitter } from 'node:events';
import type { HealthCheckSpec } from '../domain/types';
import { joinHostPort } from '../domain/address';
import { startProbe, KeptConnection, type Probe, type RunningProbe } from './checks';
import { HealthMachine, policyOf, type Health } from './state';
import type { DsrProbeRoutes, ArpAnswerers } from './dsr-routes';

export type { Health } from './state';

/**
 * Emitted as 'change' on every state transition (checking -> up counts as one), and when flap
 * damping holds a backend down (then health is 'down' and reason says why).
 */
export interface HealthChange {
  service: string; backend: string; health: 'up' | 'down'; previous: Health;
  /** The deciding probe's result, e.g. 'HTTP 200', 'ECONNREFUSED', 'timeout after 500 ms'. */
  detail: string;
  /** Set when flap damping holds the backend down. */
  reason?: string;
}

/** Emitted as 'ramp' when a slow-starting backend's weight takes a step. */
export interface HealthRamp { service: string; backend: string; step: number; steps: number }

export interface HealthTarget {
  address: string; port: number;
  /** Starting verdict instead of 'checking', e.g. as found in the kernel after a restart. */
  initial?: 'up' | 'down';
}

/** What a checker knows about one backend. */
export interface BackendHealthStatus {
  backend: string;          // "address:port" as configured (the API's backend key)
  health: Health;
  transitions: number;      // state changes since the backend was added
  checks: number;           // probes completed
  lastDetail: string;       // result of the latest probe, e.g. 'connected', 'ECONNREFUSED'
  lastCheckAt: number | null;
  /** Why the backend is held down (flap damping), null otherwise. */
  reason: string | null;
  heldUntil: number | null;
  /** Slow start: the share of its weight it takes now, step/steps (1/1 = full). */
  weightStep: { step: number; steps: number };
}

export interface HealthCheckerOptions {
  service: string;
  /** The service's port: probed when neither the check nor the backend names one. */
  servicePort: number;
  spec: HealthCheckSpec;
  backends?: HealthTarget[];
  /** Clock in ms (tests). Default Date.now. */
  now?: () => number;
  /**
   * DSR: probe VIP:port through each backend (policy-routed by a per-backend mark) instead of
   * the backend's own address.
   */
  dsr?: { vip: string; routes: DsrProbeRoutes };
}

interface BackendState {
  backend: string;
  target: HealthTarget;
  machine: HealthMachine;
  transitions: number;
  checks: number;
  lastDetail: string;
  lastCheckAt: number | null;
  /** The backend's probe timer: a timeout to its first probe, then an interval of intervalMs. */
  timer: NodeJS.Timeout | null;
  /** The interval fired while a probe was still in flight: the next one starts when it ends. */
  due: boolean;
  rampTimer: NodeJS.Timeout | null;
  probe: RunningProbe | null;
  /** healthCheck.reuseConnection (http): the connection kept between this backend's probes. */
  conn: KeptConnection | null;
  /** DSR: the probe socket's mark, or why the route through the backend could not be made. */
  mark: number | null;
  routeError: string | null;
}

export const DEFAULT_EXPECT_STATUS: [number, number] = [200, 399];

/** Backends whose probes start together (start() spreads the batches over one interval). */
export const PROBE_BATCH = 64;

/** "address:port", "[v6]:port" for IPv6 (the state's canonical backend key). */
export function backendKey(target: HealthTarget): string {
  return joinHostPort(target.address, target.port);
}

/**
 * Probes every backend of one service on its own timer. start() begins probing, setBackends()
 * adds and removes backends (kept ones keep their state), stop() cancels every timer and socket.
 */
export class HealthChecker extends EventEmitter {
  readonly service: string;
  readonly spec: HealthCheckSpec;
  private readonly servicePort: number;
  private readonly states = new Map<string, BackendState>();
  private running = false;
  private transitionCount = 0;
  private readonly now: () => number;
  private readonly dsr: HealthCheckerOptions['dsr'];
  /** DSR: the backends the latest ARP round found answering ARP for the VIP. */
  private arpAnswering: ArpAnswerers = new Map();

  /** @throws Error when rise/fall/interval/timeout are not positive integers. */
  constructor(opts: HealthCheckerOptions) {
    super();
    for (const field of ['intervalMs', 'timeoutMs', 'rise', 'fall'] as const) {
      const v = opts.spec[field];
      if (!Number.isInteger(v) || v < 1) throw new Error(`health check ${field} must be a positive integer, got ${v}`);
    }
    this.service = opts.service;
    this.spec = opts.spec;
    this.servicePort = opts.servicePort;
    this.now = opts.now ?? Date.now;
    this.dsr = opts.dsr;
    this.setBackends(opts.backends ?? []);
  }

  override on(event: 'change', listener: (change: HealthChange) => void): this;
  override on(event: 'ramp', listener: (ramp: HealthRamp) => void): this;
  override on(event: string | symbol, listener: (...args: any[]) => void): this {
    return super.on(event, listener);
  }

  /** Total state transitions over all backends since construction. */
  get transitions(): number { return this.transitionCount; }

  /**
   * Starts probing, the backends' first probes spread over one interval in batches of at most
   * PROBE_BATCH (batch k of m after k/m of it): each backend is still probed every intervalMs,
   * but 1000 backends never probe in one burst (1000 connects in one event-loop turn held every
   * API answer ~10 ms behind them), and a batch's sockets still share the loop's wake-ups (one
   * probe per turn cost ~2 % more CPU of one core than the burst at 1000 backends).
   */
  start(): void {
    if (this.running) return;
    this.running = true;
    const batches = Math.ceil(this.states.size / PROBE_BATCH);
    let i = 0;
    for (const state of this.states.values()) this.schedule(state, Math.floor(((i++ % batches) * this.spec.intervalMs) / batches));
  }

  /** Replaces the set of probed backends; backends kept keep their health and counters. */
  setBackends(targets: HealthTarget[]): void {
    const wanted = new Map(targets.map((t) => [backendKey(t), t]));
    for (const [key, state] of this.states) {
      if (!wanted.has(key)) { this.cancel(state); this.releaseRoute(state); this.states.delete(key); }
    }
    for (const [key, target] of wanted) {
      if (this.states.has(key)) continue;
      const initial: Health = target.initial ?? (this.spec.initialState === 'up' ? 'up' : 'checking');
      const state: BackendState = {
        backend: key, target, machine: new HealthMachine(policyOf(this.spec), initial), transitions: 0, checks: 0,
        lastDetail: target.initial ? `${target.initial} as found in the data plane, not checked yet` : 'not checked yet',
        lastCheckAt: null, timer: null, due: false, rampTimer: null, probe: null, mark: null, routeError: null,
        conn: this.spec.type === 'http' && (this.spec.reuseConnection ?? true) ? new KeptConnection() : null,   // reuseConnection: default true
      };
      if (this.dsr) {
        try { state.mark = this.dsr.routes.acquire(this.dsr.vip, target.address); } catch (err) { state.routeError = (err as Error).message; }
      }
      this.states.set(key, state);
      if (this.running) this.schedule(state, 0);
    }
  }

  /** Health of one backend ("address:port"); 'checking' for a backend this checker does not know. */
  health(backend: string): Health {
    return this.states.get(backend)?.machine.health ?? 'checking';
  }

  /** Slow start: the share step/steps of its weight a backend takes now (1/1 when not ramping). */
  weightStep(backend: string): { step: number; steps: number } {
    return this.states.get(backend)?.machine.weightFactor(this.now()) ?? { step: 1, steps: 1 };
  }

  status(): BackendHealthStatus[] {
    const now = this.now();
    return [...this.states.values()].map((state) => statusOf(state, now));
  }

  /** One backend's entry of status(), or null for a backend this checker does not know (one
   * lookup: a view of 1000 backends asked status() per backend, 1000 x 1000 entries). */
  backendStatus(backend: string): BackendHealthStatus | null {
    const state = this.states.get(backend);
    return state ? statusOf(state, this.now()) : null;
  }

  /** Cancels every timer and in-flight probe; the checker can be start()ed again. */
  stop(): void {
    this.running = false;
    for (const state of this.states.values()) this.cancel(state);
  }

  /** stop(), and removes the DSR probe routes: the checker is done with. */
  close(): void {
    this.stop();
    for (const state of this.states.values()) this.releaseRoute(state);
  }

  private releaseRoute(state: BackendState): void {
    if (this.dsr && state.mark !== null) this.dsr.routes.release(this.dsr.vip, state.target.address);
    state.mark = null;
  }

  private cancel(state: BackendState): void {
    if (state.timer) clearTimeout(state.timer);
    state.timer = null;
    state.due = false;
    if (state.rampTimer) clearTimeout(state.rampTimer);
    state.rampTimer = null;
    const probe = state.probe;
    state.probe = null;   // cleared first: the cancelled result must not be recorded
    probe?.cancel();
    state.conn?.close();
  }

  /**
   * The backend's first probe after delayMs, then one every intervalMs from a single interval
   * timer (not a new timer per probe: 1000 backends re-armed 1000 timers a second, each of its
   * own duration). A probe still in flight when the interval fires (timeout > interval, only
   * outside the daemon's validation) defers the next one to its end: probes of a backend never
   * overlap, and the next starts at max(start + interval, end) as before.
   */
  private schedule(state: BackendState, delayMs: number): void {
    const tick = (): void => {
      if (state.probe) { state.due = true; return; }
      void this.runProbe(state);
    };
    state.timer = setTimeout(() => { state.timer = setInterval(tick, this.spec.intervalMs); tick(); }, delayMs);
  }

  /** After a probe: the next one at once when the interval fired while it ran. */
  private afterProbe(state: BackendState): void {
    if (!state.due || !this.running) return;
    state.due = false;
    void this.runProbe(state);
  }

  private probeFor(state: BackendState): Probe | null {
    const target = state.target;
    // DSR: clients reach VIP:servicePort and the backend sees just that (no port rewrite).
    const port = this.dsr ? this.spec.port ?? (this.servicePort || target.port) : this.spec.port ?? (target.port || this.servicePort);
    if (!port) return null;
    const address = this.dsr ? this.dsr.vip : target.address;
    const mark = this.dsr && state.mark !== null ? { mark: state.mark } : {};
    if (this.spec.type === 'tcp') return { type: 'tcp', address, port, timeoutMs: this.spec.timeoutMs, ...mark };
    return {
      type: 'http', address, port, timeoutMs: this.spec.timeoutMs, ...mark,
      path: this.spec.path ?? '/', expectStatus: this.spec.expectStatus ?? DEFAULT_EXPECT_STATUS,
      ...(state.conn ? { connection: state.conn } : {}),
    };
  }

  private async runProbe(state: BackendState): Promise<void> {
    if (this.dsr && state.mark === null) {
      // No route through this backend: it cannot be proven to serve the VIP (fail closed).
      this.record(state, false, state.routeError ?? 'no DSR probe route');
      return;
    }
    const probe = this.probeFor(state);
    if (!probe) {
      // Service port 0 (any) and backend port 0 (keep the client's): nothing to connect to.
      state.lastDetail = 'no port to probe: set healthCheck.port';
      if (state.timer) clearTimeout(state.timer);
      state.timer = null;
      return;
    }
    if (this.dsr) {
      // One ARP round per interval for the VIP (shared); its verdict counts from the next probe on.
      const backends = [...this.states.values()].map((s) => s.target.address);
      void this.dsr.routes.arpAnswerers(this.dsr.vip, probe.port, backends, this.spec.timeoutMs, this.spec.intervalMs / 2)
        .then((answering) => { this.arpAnswering = answering; });
      const arp = this.arpAnswering.get(state.target.address);
      if (arp) {
        this.record(state, false, arp);
        return;
      }
    }
    const running = startProbe(probe);
    state.probe = running;
    const result = await running.result;
    if (state.probe !== running || !this.states.has(state.backend)) return; // cancelled or removed
    state.probe = null;
    this.record(state, result.ok, result.detail);
    this.afterProbe(state);
  }

  private record(state: BackendState, ok: boolean, detail: string): void {
    const now = this.now();
    state.checks++;
    state.lastDetail = detail;
    state.lastCheckAt = now;
    const t = state.machine.record(ok, now);
    if (!t) return;
    if (t.health !== t.previous) { state.transitions++; this.transitionCount++; }
    const change: HealthChange = { service: this.service, backend: state.backend, health: t.health, previous: t.previous, detail };
    if (t.reason) change.reason = t.reason;
    this.emit('change', change);
    this.scheduleRamp(state);
  }

  /** Slow start: a timer per weight step, each one emitting 'ramp' (the daemon swaps the table). */
  private scheduleRamp(state: BackendState, from = this.now()): void {
    if (state.rampTimer) clearTimeout(state.rampTimer);
    state.rampTimer = null;
    const at = state.machine.nextRampAt(from);
    if (at === null || !this.running) return;
    state.rampTimer = setTimeout(() => {
      state.rampTimer = null;
      // A timer may fire a millisecond before `at` by the wall clock: the step it was set for is due.
      const { step, steps } = state.machine.weightFactor(Math.max(this.now(), at));
      this.emit('ramp', { service: this.service, backend: state.backend, step, steps } satisfies HealthRamp);
      // The next step after this one: from the clock, a timer that fired early would find this
      // same step due again and emit it twice (two table swaps for one step).
      this.scheduleRamp(state, Math.max(this.now(), at + 1));
    }, Math.max(0, at - this.now()));
  }
}

function statusOf({ backend, machine, transitions, checks, lastDetail, lastCheckAt }: BackendState, now: number): BackendHealthStatus {
  return { backend, health: machine.health, transitions, checks, lastDetail, lastCheckAt,
    reason: machine.heldUntil !== null && machine.heldUntil > now ? machine.reason : null,
    heldUntil: machine.heldUntil !== null && machine.heldUntil > now ? machine.heldUntil : null,
    weightStep: machine.weightFactor(now) };
}
