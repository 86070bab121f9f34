/**
 * One HealthChecker per service that has a healthCheck, kept in step with the desired state:
 * sync() after every change adds, replaces and removes checkers; a service whose check spec is
 * unchanged keeps its checker (and so its backends' health and hysteresis counters).
 *
 * A checker rebuilt because its check changed starts each backend at the verdict the old one
 * had reached (not 'checking': that would pull serving backends out of the table), and a
 * service that gains a check starts the backends it already served 'up': checks then decide.
 */
import { EventEmitter } from 'node:events';
import type { ServiceSpec } from '../domain/types';
import { joinHostPort } from '../domain/address';
import { HealthChecker, type Health, type HealthChange, type HealthRamp, type BackendHealthStatus } from './checker';
import type { DsrProbeRoutes } from './dsr-routes';

export interface HealthMonitorOptions {
  /**
   * DSR services' checks probe the VIP through each backend with these routes (the daemon
   * passes one). Without it (in-memory tests) they probe the backend's own address.
   */
  dsrRoutes?: DsrProbeRoutes | null;
}

/** A backend's health as the daemon shows it: 'unchecked' when its service has no check. */
export type BackendHealth = Health | 'unchecked';

export class HealthMonitor extends EventEmitter {
  private readonly checkers = new Map<string, { checker: HealthChecker; fingerprint: string }>();
  /** service -> backend keys, as of the last sync (services without a check too). */
  private known = new Map<string, Set<string>>();
  private running = false;
  private readonly dsrRoutes: DsrProbeRoutes | null;

  constructor(opts: HealthMonitorOptions = {}) {
    super();
    this.dsrRoutes = opts.dsrRoutes ?? null;
  }

  override on(event: 'change', listener: (change: HealthChange) => void): this;
  override on(event: 'ramp', listener: (ramp: HealthRamp) => void): this;
  override on(event: string | symbol, listener: (...args: any[]) => void): this {
    return super.on(event, listener);
  }

  start(): void {
    this.running = true;
    for (const { checker } of this.checkers.values()) checker.start();
  }

  /**
   * Brings the set of checkers in line with `services`. `seed` gives backends that are new to
   * a checker a starting verdict (default: see the file comment, else 'checking' or the check's
   * initialState).
   */
  sync(services: ServiceSpec[], seed?: (service: string, backend: string) => 'up' | 'down' | undefined): void {
    const wanted = new Map(services.filter((s) => s.healthCheck).map((s) => [s.name, s]));
    const previous = new Map<string, HealthChecker>();
    for (const [name, entry] of this.checkers) {
      const spec = wanted.get(name);
      if (!spec || fingerprintOf(spec) !== entry.fingerprint) {
        entry.checker.close();
        this.checkers.delete(name);
        if (spec) previous.set(name, entry.checker);
      }
    }
    for (const [name, spec] of wanted) {
      const old = previous.get(name);
      const servedUnchecked = !old && !this.checkers.has(name) ? this.known.get(name) : undefined;
      const targets = spec.backends.map((b) => {
        const key = joinHostPort(b.address, b.port);
        let initial = seed?.(name, key);
        if (!initial && old) {
          const h = old.health(key);
          if (h === 'up' || h === 'down') initial = h;
        }
        if (!initial && servedUnchecked?.has(key)) initial = 'up';
        return initial ? { address: b.address, port: b.port, initial } : { address: b.address, port: b.port };
      });
      const existing = this.checkers.get(name);
      if (existing) { existing.checker.setBackends(targets); continue; }
      const dsr = spec.mode === 'dsr' && this.dsrRoutes && spec.healthCheck!.dsrProbe !== 'address'
        ? { vip: spec.vip, routes: this.dsrRoutes } : undefined;
      const checker = new HealthChecker({ service: name, servicePort: spec.port, spec: spec.healthCheck!, backends: targets, ...(dsr ? { dsr } : {}) });
      checker.on('change', (change) => this.emit('change', change));
      checker.on('ramp', (ramp) => this.emit('ramp', ramp));
      this.checkers.set(name, { checker, fingerprint: fingerprintOf(spec) });
      if (this.running) checker.start();
    }
    this.known = new Map(services.map((s) => [s.name, new Set(s.backends.map((b) => joinHostPort(b.address, b.port)))]));
  }

  /** 'unchecked' when the service has no health check; 'checking' until a verdict is reached. */
  health(service: string, backend: string): BackendHealth {
    return this.checkers.get(service)?.checker.health(backend) ?? 'unchecked';
  }

  /** Slow start: the share step/steps of its weight a backend takes now (1/1 when not ramping). */
  weightStep(service: string, backend: string): { step: number; steps: number } {
    return this.checkers.get(service)?.checker.weightStep(backend) ?? { step: 1, steps: 1 };
  }

  status(service: string): BackendHealthStatus[] {
    return this.checkers.get(service)?.checker.status() ?? [];
  }

  /** One backend's status, or null when its service has no check. */
  backendStatus(service: string, backend: string): BackendHealthStatus | null {
    return this.checkers.get(service)?.checker.backendStatus(backend) ?? null;
  }

  /** Stops every checker and removes their DSR probe routes. */
  stop(): void {
    this.running = false;
    for (const { checker } of this.checkers.values()) checker.close();
  }
}

/** A checker is rebuilt when what it probes changes: the check itself or the service port. */
function fingerprintOf(spec: ServiceSpec): string {
  return JSON.stringify([spec.port, spec.healthCheck, spec.mode, spec.vip]);
}
