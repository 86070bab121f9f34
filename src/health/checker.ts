/**
 * Active health checks of one service's backends with rise/fall hysteresis.
 *
 * Each backend starts 'unknown'. `rise` consecutive successful probes make it 'up', `fall`
 * consecutive failures make it 'down'; a single result against the current state changes
 * nothing, so a flapping backend does not flap the Maglev table. The daemon treats 'unknown'
 * as up (a new backend serves at once) until its first fall.
 *
 * The probes originate from the daemon's own network namespace (the lb host), which also
 * keeps the kernel's neighbour entries for the backends fresh: the XDP program needs one to
 * forward (it passes the packet to the kernel with reason `no_neigh` otherwise).
 */
import { EventEmitter } from 'node:events';
import type { HealthCheckSpec } from '../api/controller';
import { startProbe, type Probe, type RunningProbe } from './checks';

export type Health = 'up' | 'down' | 'unknown';

/** Emitted as 'change' on every state transition (unknown -> up counts as one). */
export interface HealthChange {
  service: string; backend: string; health: 'up' | 'down'; previous: Health;
  /** The deciding probe's result, e.g. 'HTTP 200', 'ECONNREFUSED', 'timeout after 500 ms'. */
  detail: string;
}

export interface HealthTarget {
  address: string; port: number;
  /** Starting verdict instead of 'unknown', e.g. 'down' as found in the kernel after a restart. */
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
}

export interface HealthCheckerOptions {
  service: string;
  /** The service's port: probed when neither the check nor the backend names one. */
  servicePort: number;
  spec: HealthCheckSpec;
  backends?: HealthTarget[];
}

interface BackendState extends BackendHealthStatus {
  target: HealthTarget;
  successes: number;        // consecutive
  failures: number;         // consecutive
  timer: NodeJS.Timeout | null;
  probe: RunningProbe | null;
}

export const DEFAULT_EXPECT_STATUS: [number, number] = [200, 399];

export function backendKey(target: HealthTarget): string {
  return `${target.address}:${target.port}`;
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
    this.setBackends(opts.backends ?? []);
  }

  override on(event: 'change', listener: (change: HealthChange) => void): this;
  override on(event: string | symbol, listener: (...args: any[]) => void): this {
    return super.on(event, listener);
  }

  /** Total state transitions over all backends since construction. */
  get transitions(): number { return this.transitionCount; }

  start(): void {
    if (this.running) return;
    this.running = true;
    for (const state of this.states.values()) this.schedule(state, 0);
  }

  /** Replaces the set of probed backends; backends kept keep their health and counters. */
  setBackends(targets: HealthTarget[]): void {
    const wanted = new Map(targets.map((t) => [backendKey(t), t]));
    for (const [key, state] of this.states) {
      if (!wanted.has(key)) { this.cancel(state); this.states.delete(key); }
    }
    for (const [key, target] of wanted) {
      if (this.states.has(key)) continue;
      const state: BackendState = {
        backend: key, target, health: target.initial ?? 'unknown', transitions: 0, checks: 0, lastDetail: 'not checked yet',
        lastCheckAt: null, successes: 0, failures: 0, timer: null, probe: null,
      };
      this.states.set(key, state);
      if (this.running) this.schedule(state, 0);
    }
  }

  /** Health of one backend ("address:port"); 'unknown' for a backend this checker does not know. */
  health(backend: string): Health {
    return this.states.get(backend)?.health ?? 'unknown';
  }

  status(): BackendHealthStatus[] {
    return [...this.states.values()].map(({ backend, health, transitions, checks, lastDetail, lastCheckAt }) =>
      ({ backend, health, transitions, checks, lastDetail, lastCheckAt }));
  }

  /** Cancels every timer and in-flight probe; the checker can be start()ed again. */
  stop(): void {
    this.running = false;
    for (const state of this.states.values()) this.cancel(state);
  }

  private cancel(state: BackendState): void {
    if (state.timer) clearTimeout(state.timer);
    state.timer = null;
    const probe = state.probe;
    state.probe = null;   // cleared first: the cancelled result must not be recorded
    probe?.cancel();
  }

  private schedule(state: BackendState, delayMs: number): void {
    state.timer = setTimeout(() => { state.timer = null; void this.runProbe(state); }, delayMs);
  }

  private probeFor(target: HealthTarget): Probe | null {
    const port = this.spec.port ?? (target.port || this.servicePort);
    if (!port) return null;
    if (this.spec.type === 'tcp') return { type: 'tcp', address: target.address, port, timeoutMs: this.spec.timeoutMs };
    return {
      type: 'http', address: target.address, port, timeoutMs: this.spec.timeoutMs,
      path: this.spec.path ?? '/', expectStatus: this.spec.expectStatus ?? DEFAULT_EXPECT_STATUS,
    };
  }

  private async runProbe(state: BackendState): Promise<void> {
    const startedAt = Date.now();
    const probe = this.probeFor(state.target);
    if (!probe) {
      // Service port 0 (any) and backend port 0 (keep the client's): nothing to connect to.
      state.lastDetail = 'no port to probe: set healthCheck.port';
      return;
    }
    const running = startProbe(probe);
    state.probe = running;
    const result = await running.result;
    if (state.probe !== running || !this.states.has(state.backend)) return; // cancelled or removed
    state.probe = null;
    this.record(state, result.ok, result.detail);
    if (this.running) this.schedule(state, Math.max(0, startedAt + this.spec.intervalMs - Date.now()));
  }

  private record(state: BackendState, ok: boolean, detail: string): void {
    state.checks++;
    state.lastDetail = detail;
    state.lastCheckAt = Date.now();
    if (ok) { state.successes++; state.failures = 0; } else { state.failures++; state.successes = 0; }
    let next: 'up' | 'down' | null = null;
    if (ok && state.health !== 'up' && state.successes >= this.spec.rise) next = 'up';
    if (!ok && state.health !== 'down' && state.failures >= this.spec.fall) next = 'down';
    if (!next) return;
    const previous = state.health;
    state.health = next;
    state.transitions++;
    this.transitionCount++;
    this.emit('change', { service: this.service, backend: state.backend, health: next, previous, detail } satisfies HealthChange);
  }
}
