/**
 * One HealthChecker per service that has a healthCheck, kept in step with the desired state:
 * sync() after every change adds, replaces and removes checkers; a service whose check spec is
 * unchanged keeps its checker (and so its backends' health and hysteresis counters).
 */
import { EventEmitter } from 'node:events';
import type { ServiceSpec } from '../api/controller';
import { HealthChecker, type Health, type HealthChange, type BackendHealthStatus } from './checker';

export class HealthMonitor extends EventEmitter {
  private readonly checkers = new Map<string, { checker: HealthChecker; fingerprint: string }>();
  private running = false;

  override on(event: 'change', listener: (change: HealthChange) => void): this;
  override on(event: string | symbol, listener: (...args: any[]) => void): this {
    return super.on(event, listener);
  }

  start(): void {
    this.running = true;
    for (const { checker } of this.checkers.values()) checker.start();
  }

  /**
   * Brings the set of checkers in line with `services`. `seed` gives backends that are new to
   * a checker a starting verdict (default 'unknown').
   */
  sync(services: ServiceSpec[], seed?: (service: string, backend: string) => 'up' | 'down' | undefined): void {
    const wanted = new Map(services.filter((s) => s.healthCheck).map((s) => [s.name, s]));
    for (const [name, entry] of this.checkers) {
      const spec = wanted.get(name);
      if (!spec || fingerprintOf(spec) !== entry.fingerprint) { entry.checker.stop(); this.checkers.delete(name); }
    }
    for (const [name, spec] of wanted) {
      const targets = spec.backends.map((b) => {
        const initial = seed?.(name, `${b.address}:${b.port}`);
        return initial ? { address: b.address, port: b.port, initial } : { address: b.address, port: b.port };
      });
      const existing = this.checkers.get(name);
      if (existing) { existing.checker.setBackends(targets); continue; }
      const checker = new HealthChecker({ service: name, servicePort: spec.port, spec: spec.healthCheck!, backends: targets });
      checker.on('change', (change) => this.emit('change', change));
      this.checkers.set(name, { checker, fingerprint: fingerprintOf(spec) });
      if (this.running) checker.start();
    }
  }

  /** 'unknown' when the service has no health check or the backend was not probed to a verdict yet. */
  health(service: string, backend: string): Health {
    return this.checkers.get(service)?.checker.health(backend) ?? 'unknown';
  }

  status(service: string): BackendHealthStatus[] {
    return this.checkers.get(service)?.checker.status() ?? [];
  }

  stop(): void {
    this.running = false;
    for (const { checker } of this.checkers.values()) checker.stop();
  }
}

/** A checker is rebuilt when what it probes changes: the check itself or the service port. */
function fingerprintOf(spec: ServiceSpec): string {
  return JSON.stringify([spec.port, spec.healthCheck]);
}
