/**
 * The cluster contract (issue 13; docs/api.md): GET /api/v1/cluster and PUT /api/v1/nodes/{name}/drain.
 * Pure types and one pure function: the daemon (src/cluster/status.ts), the API and the
 * dashboard (web/src/api-types.ts) all import them from here.
 */

export type HealthWord = 'up' | 'down' | 'checking' | 'unchecked';

export interface BgpStatus {
  state: string;
  peers: Array<{ peer: string; state: string; bfd: string | null }>;
  announced: string[];
  drained: boolean;
}

export interface NodeStatus {
  name: string;
  self: boolean;
  alive: boolean;
  appliedRevision: number;
  lag: number;
  dataplane: { attached: boolean; interfaces: string[] };
  bgp: BgpStatus | null;
  health: Record<string, Record<string, HealthWord>>;
  rates: { pps: number; bps: number };
  /** Host CPU busy (softirq included, where XDP runs) as a share of one CPU (0..number of CPUs). */
  cpu: number;
  /**
   * Maglev slots in a transition on this node (GET /api/v1/transitions), 0 with the flow cache
   * off. While any is moved, the node may hold connections no other node knows: a drain refuses
   * without `force` (docs/cluster.md "Transitions and ECMP").
   */
  movedSlots: number;
  updatedAt: string;
}

export interface Disagreement { service: string; backend: string; views: Record<string, HealthWord | 'absent'> }

export interface ClusterView {
  mode: 'file' | 'etcd';
  self: string;
  revision: number;
  store: { url: string | null; connected: boolean; stale: boolean; reason?: string };
  nodes: NodeStatus[];
  disagreements: Disagreement[];
}

/**
 * Backends whose health differs between the alive nodes (a gone node's last view is old news):
 * every node's verdict, or 'absent' on a node that does not have that backend (it runs another
 * revision). Sorted by service, then backend.
 */
export function computeDisagreements(all: ReadonlyArray<Pick<NodeStatus, 'name' | 'health'> & { alive?: boolean }>): Disagreement[] {
  const nodes = all.filter((n) => n.alive !== false);
  const pairs = new Map<string, { service: string; backend: string }>();
  for (const n of nodes) {
    for (const [service, backends] of Object.entries(n.health ?? {})) {
      for (const backend of Object.keys(backends)) pairs.set(`${service}|${backend}`, { service, backend });
    }
  }
  const out: Disagreement[] = [];
  for (const { service, backend } of [...pairs.values()].sort((a, b) => (a.service + a.backend < b.service + b.backend ? -1 : 1))) {
    const views: Record<string, HealthWord | 'absent'> = {};
    for (const n of nodes) views[n.name] = n.health?.[service]?.[backend] ?? 'absent';
    if (new Set(Object.values(views)).size > 1) out.push({ service, backend, views });
  }
  return out;
}

