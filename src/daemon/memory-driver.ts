/**
 * A DataplaneDriver that keeps the applied state in memory: lets the real DaemonController
 * (and the API and CLI over it) run in tests without a kernel. It is not a model of the data
 * plane: kernel views are empty, counters are zero unless a test sets them, and table shares
 * are the weights' proportions. `refuseNext` makes the next apply fail like a kernel refusal.
 */
import { REASONS, XDP_ACTIONS, type DataplaneState, type StatsSnapshot, type TraceEvent } from '../dataplane/types';
import type { MapPage, MapView, ProgramView } from '../domain/types';
import { XdplbError } from '../domain/errors';
import { joinHostPort } from '../domain/address';
import type { DataplaneDriver, ServicePlacement } from './driver';

export class MemoryDriver implements DataplaneDriver {
  applied: DataplaneState | null = null;
  applyCount = 0;
  refuseNext: string | null = null;
  snapshot: StatsSnapshot = {
    at: Date.now(), services: {}, backends: {},
    actions: Object.fromEntries(XDP_ACTIONS.map((a) => [a, { packets: 0, bytes: 0 }])) as StatsSnapshot['actions'],
    reasons: Object.fromEntries(REASONS.map((r) => [r, { packets: 0, bytes: 0 }])) as StatsSnapshot['reasons'],
  };
  private readonly ids = new Map<string, number>();
  private readonly eventListeners = new Set<(e: TraceEvent) => void>();
  statsEnabled = false;
  /** The seed set through setHashSeed (undefined: the configured one is taken as running). */
  seed: number | undefined = undefined;
  hashSeed(): number | undefined { return this.seed; }
  setHashSeed(seed: number): void {
    if (this.refuseNext) { const reason = this.refuseNext; this.refuseNext = null; throw new Error(reason); }
    this.seed = seed;
  }

  applyState(state: DataplaneState): { writes: number } {
    if (this.refuseNext) {
      const reason = this.refuseNext;
      this.refuseNext = null;
      throw new Error(reason);
    }
    const same = JSON.stringify(this.applied) === JSON.stringify(state);
    this.applied = structuredClone(state);
    this.applyCount++;
    return { writes: same ? 0 : 1 };
  }

  placement(service: string): ServicePlacement | null {
    const svc = this.applied?.services.find((s) => s.name === service);
    if (!svc) return null;
    const usable = svc.backends.filter((b) => b.healthy && !b.draining && b.weight > 0);
    const total = usable.reduce((acc, b) => acc + b.weight, 0);
    const backends: ServicePlacement['backends'] = {};
    for (const b of svc.backends) {
      const key = joinHostPort(b.address, b.port);
      backends[key] = { id: this.idOf(`${service}/${key}`), share: total && usable.includes(b) ? b.weight / total : 0 };
    }
    return { id: this.idOf(service), backends };
  }

  readStats(): StatsSnapshot { return { ...structuredClone(this.snapshot), at: Date.now() }; }

  subscribe(listener: (event: TraceEvent) => void): () => void {
    this.eventListeners.add(listener);
    return () => this.eventListeners.delete(listener);
  }

  /** Delivers a trace event to subscribers, as the ring buffer would. */
  emitEvent(event: TraceEvent): void { for (const l of this.eventListeners) l(event); }
  get eventSubscribers(): number { return this.eventListeners.size; }

  programs(): { programs: ProgramView[]; statsEnabled: boolean } { return { programs: [], statsEnabled: this.statsEnabled }; }
  setProgramStats(enabled: boolean): void { this.statsEnabled = enabled; }
  maps(): MapView[] { return []; }
  mapEntries(name: string): MapPage { throw new XdplbError('XDPLB_ERR_NOT_FOUND', `map "${name}" does not exist`); }
  interfaces(): Array<{ ifname: string; ifindex: number; mode: string; progId: number }> { return []; }

  private idOf(name: string): number {
    let id = this.ids.get(name);
    if (!id) { id = this.ids.size + 1; this.ids.set(name, id); }
    return id;
  }
}
