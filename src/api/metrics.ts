/**
 * Prometheus metrics for one API server: a registry of its own (so two servers in one
 * process never share series), filled from the controller at scrape time through collect().
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Controller, ServiceView, StatsView } from '../domain/types';
import type { StatsSnapshot } from '../dataplane/types';

export interface ApiMetrics {
  registry: Registry;
  /** The daemon increments this after applying a reloaded config file. */
  configReloads: Counter<string>;
  /** Incremented by the server after each successful change through the API. */
  apiChanges: Counter<'operation'>;
  /** Open live-stream connections. */
  streamClients: Gauge<string>;
  /** The Prometheus text for one scrape (reads the controller once). */
  render(): Promise<string>;
}

interface Scrape { services: ServiceView[]; stats: StatsView; counters: StatsSnapshot | null }

/**
 * Creates the registry and its metrics.
 * Controller errors during a scrape propagate: /metrics answers 500 rather than stale data.
 */
export function createMetrics(controller: Controller): ApiMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'xdplb_process_' });

  // One controller read per scrape, shared by every collect() of that scrape.
  let current: Scrape | null = null;
  const scrape = (): Scrape => {
    if (!current) {
      current = { services: controller.listServices(), stats: controller.stats(), counters: controller.counters?.() ?? null };
      setImmediate(() => { current = null; });
    }
    return current;
  };

  /** A counter whose value is the controller's cumulative count (reset, then set, at scrape). */
  function mirroredCounter<L extends string>(name: string, help: string, labelNames: L[], fill: (set: (labels: Record<L, string>, value: number) => void, s: Scrape) => void) {
    return new Counter<L>({
      name, help, labelNames, registers: [registry],
      collect() {
        this.reset();
        fill((labels, value) => this.inc(labels, Math.max(0, value)), scrape());
      },
    });
  }
  function gauge<L extends string>(name: string, help: string, labelNames: L[], fill: (set: (labels: Record<L, string>, value: number) => void, s: Scrape) => void) {
    return new Gauge<L>({
      name, help, labelNames, registers: [registry],
      collect() {
        this.reset();
        fill((labels, value) => this.set(labels, value), scrape());
      },
    });
  }

  // Series follow the configured services and backends (0 until the kernel counts anything).
  type Dir = 'fwd' | 'rev';
  const DIRS: Dir[] = ['fwd', 'rev'];
  const flow = (field: 'Packets' | 'Bytes') => (set: (l: Record<'service' | 'direction', string>, v: number) => void, s: Scrape) => {
    for (const svc of s.stats.services) {
      if (s.counters) {
        const c = s.counters.services[svc.name];
        for (const d of DIRS) set({ service: svc.name, direction: d }, c?.[`${d}${field}`] ?? 0);
      } else {
        set({ service: svc.name, direction: 'all' }, field === 'Packets' ? svc.packets : svc.bytes);
      }
    }
  };
  // backend_id: the data-plane id the counters belong to. A backend removed and added back gets
  // a new id and counters from 0, so its series is a new one and rate()/increase() never see the
  // restart as a negative delta (nor miss it when the new count passes the old one).
  type BackendLabel = 'service' | 'backend' | 'direction' | 'backend_id';
  const backendIdOf = (s: Scrape, service: string, key: string): string =>
    String(s.counters?.backendIds?.[service]?.[key] ?? s.services.find((v) => v.name === service)?.backends.find((b) => b.key === key)?.id ?? 0);
  const backendFlow = (field: 'Packets' | 'Bytes') => (set: (l: Record<BackendLabel, string>, v: number) => void, s: Scrape) => {
    for (const svc of s.stats.services) {
      for (const b of svc.backends) {
        const id = backendIdOf(s, svc.name, b.key);
        if (s.counters) {
          const c = s.counters.backends[svc.name]?.[b.key];
          for (const d of DIRS) set({ service: svc.name, backend: b.key, direction: d, backend_id: id }, c?.[`${d}${field}`] ?? 0);
        } else {
          set({ service: svc.name, backend: b.key, direction: 'all', backend_id: id }, field === 'Packets' ? b.packets : b.bytes);
        }
      }
    }
  };

  mirroredCounter('xdplb_service_packets_total', 'Packets of a service, by direction (fwd: client to backend, rev: NAT replies)', ['service', 'direction'], flow('Packets'));
  mirroredCounter('xdplb_service_bytes_total', 'Bytes of a service, by direction', ['service', 'direction'], flow('Bytes'));
  mirroredCounter('xdplb_backend_packets_total', 'Packets of a backend, by direction; backend_id changes (and the count restarts from 0) when the backend is removed and added back', ['service', 'backend', 'direction', 'backend_id'], backendFlow('Packets'));
  mirroredCounter('xdplb_backend_bytes_total', 'Bytes of a backend, by direction; backend_id as for xdplb_backend_packets_total', ['service', 'backend', 'direction', 'backend_id'], backendFlow('Bytes'));
  mirroredCounter('xdplb_xdp_actions_total', 'Packets by XDP action', ['action'], (set, s) => {
    if (s.counters) for (const [action, c] of Object.entries(s.counters.actions)) set({ action }, c.packets);
    else for (const a of s.stats.actions) set({ action: a.name }, a.packets);
  });
  mirroredCounter('xdplb_verdicts_total', 'Packets by verdict reason (why the program did what it did)', ['reason'], (set, s) => {
    if (s.counters) for (const [reason, c] of Object.entries(s.counters.reasons)) set({ reason }, c.packets);
    else for (const r of s.stats.reasons) set({ reason: r.name }, r.packets);
  });
  mirroredCounter('xdplb_packets_total', 'All frames seen by the XDP program', [], (set, s) => set({}, s.stats.totals.packets));
  mirroredCounter('xdplb_bytes_total', 'Bytes of all frames seen by the XDP program', [], (set, s) => set({}, s.stats.totals.bytes));

  gauge('xdplb_backend_up', 'Backend health: 1 up, 0 down (absent while checking, and for services without a check)', ['service', 'backend'], (set, s) => {
    for (const svc of s.services) for (const b of svc.backends) if (b.health === 'up' || b.health === 'down') set({ service: svc.name, backend: b.key }, b.health === 'up' ? 1 : 0);
  });
  gauge('xdplb_backend_weight', 'Configured backend weight', ['service', 'backend'], (set, s) => {
    for (const svc of s.services) for (const b of svc.backends) set({ service: svc.name, backend: b.key }, b.weight);
  });
  gauge('xdplb_backend_in_table', '1 when the backend holds Maglev slots', ['service', 'backend'], (set, s) => {
    for (const svc of s.services) for (const b of svc.backends) set({ service: svc.name, backend: b.key }, b.inTable ? 1 : 0);
  });
  gauge('xdplb_backend_table_share', 'Share (0..1) of the Maglev table held by the backend', ['service', 'backend'], (set, s) => {
    for (const svc of s.services) for (const b of svc.backends) set({ service: svc.name, backend: b.key }, b.tableShare);
  });
  gauge('xdplb_services', 'Configured services', [], (set, s) => set({}, s.services.length));
  gauge('xdplb_hash_seed', 'Flow hash seed of the running program (the same on every node behind ECMP)', [], (set) => {
    const seed = controller.hashSeed?.().hashSeed;
    if (seed !== undefined) set({}, seed);
  });

  // Transitions (GET /api/v1/transitions): 0 for every service at rest.
  gauge('xdplb_service_moved_slots', 'Maglev slots of the service in a transition (their packets consult the flow cache until a sweep finds them quiet)', ['service'], (set) => {
    for (const t of controller.transitions?.().services ?? []) set({ service: t.service }, t.movedSlots);
  });

  return {
    registry,
    render: () => {
      current = null;
      return registry.metrics();
    },
    configReloads: new Counter({ name: 'xdplb_config_reloads_total', help: 'Config file reloads applied', registers: [registry] }),
    apiChanges: new Counter({ name: 'xdplb_api_changes_total', help: 'Changes applied through the API', labelNames: ['operation'], registers: [registry] }),
    streamClients: new Gauge({ name: 'xdplb_stream_clients', help: 'Open live-stream connections', registers: [registry] }),
  };
}
