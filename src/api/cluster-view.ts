/**
 * The cluster view of the API (GET /api/v1/cluster, PUT /api/v1/nodes/{name}/drain), exactly as
 * the cluster contract of issue 13 defines it: the types (the dashboard imports them through
 * web/src/api-types.ts, type-only) and findDisagreements, which builds the view's list.
 */
import type { BackendHealthState } from '../domain/types';

export interface NodeBgpPeer { peer: string; state: string; bfd: string | null }
export interface NodeBgp {
  /** BIRD's protocol state summary, e.g. "established", "down", "starting". */
  state: string;
  peers: NodeBgpPeer[];
  /** VIP prefixes this node announces now ("198.18.0.10/32"). */
  announced: string[];
  drained: boolean;
}

export interface NodeStatus {
  name: string;
  self: boolean;
  alive: boolean;
  appliedRevision: number;
  /** Store revision minus appliedRevision (0 in file mode). */
  lag: number;
  dataplane: { attached: boolean; interfaces: string[] };
  /** null: this node runs no BGP. */
  bgp: NodeBgp | null;
  /** This node's own health-check verdicts: service -> "address:port" -> state. */
  health: Record<string, Record<string, BackendHealthState>>;
  /** Totals of the node's data plane: packets/s and bits/s. */
  rates: { pps: number; bps: number };
  /** CPU busy, as a share of one CPU (0..number of CPUs). */
  cpu: number;
  /** When the node published this status (ISO 8601). */
  updatedAt: string;
}

export interface HealthDisagreement {
  service: string;
  backend: string;
  /** node name -> that node's verdict. */
  views: Record<string, BackendHealthState>;
}

export interface ClusterView {
  mode: 'file' | 'etcd';
  self: string;
  revision: number;
  store: { url: string | null; connected: boolean; stale: boolean; reason?: string };
  nodes: NodeStatus[];
  disagreements: HealthDisagreement[];
}

export interface DrainRequest { drain: boolean; graceSeconds?: number }

/**
 * Where the alive nodes' health views of one backend differ: one entry per service/backend
 * that at least two alive nodes check and that not all of them judge the same, in name order.
 */
export function findDisagreements(nodes: readonly NodeStatus[]): HealthDisagreement[] {
  const views = new Map<string, HealthDisagreement>();
  for (const node of nodes) {
    if (!node.alive) continue;
    for (const [service, backends] of Object.entries(node.health)) {
      for (const [backend, state] of Object.entries(backends)) {
        const key = `${service}\0${backend}`;
        const entry = views.get(key) ?? { service, backend, views: {} };
        entry.views[node.name] = state;
        views.set(key, entry);
      }
    }
  }
  return [...views.values()]
    .filter((d) => Object.keys(d.views).length >= 2 && new Set(Object.values(d.views)).size > 1)
    .sort((a, b) => a.service.localeCompare(b.service) || a.backend.localeCompare(b.backend));
}
