// The API's types come from the daemon's own contract (type-only imports: nothing from src/
// is bundled), so the dashboard cannot drift from what the API serves.
export type {
  Role, BackendSpec, ServiceSpec, BackendView, ServiceView, SettingsView, StatsView, RateRow,
  ProgramView, MapView, MapPage, StreamMessage,
} from '../../src/domain/types';
export type { TraceEvent, XdpAction, Reason } from '../../src/dataplane/types';

export interface User { name: string; role: 'viewer' | 'admin' }
export type ServiceStats = import('../../src/domain/types').StatsView['services'][number];
export type BackendStats = ServiceStats['backends'][number];
export interface InterfaceView { ifname: string; ifindex: number; mode: string; progId: number }
// The cluster contract (issue 13): GET /cluster, PUT /nodes/{name}/drain.
export type {
  ClusterView, NodeStatus, NodeBgp, NodeBgpPeer, HealthDisagreement, DrainRequest,
} from '../../src/api/cluster-view';
// Maglev transitions (issue 14): GET /transitions.
export type { TransitionsView, ServiceTransitionView } from '../../src/domain/types';
