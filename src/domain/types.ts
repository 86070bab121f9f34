/**
 * The domain types every layer shares (src/domain: config, health, daemon, api and cli import
 * it; it imports no layer above the data plane). Controller is what the HTTP API needs from the
 * daemon: src/daemon implements it over the real data plane; the API never touches maps itself. Mutations validate the whole resulting state first and
 * throw an XdplbError (src/domain/errors.ts) without changing anything when it is invalid.
 */
import type { ProgramInfo, MapInfo } from '../bpf/api';
import type { StatsSnapshot, TraceEvent } from '../dataplane/types';

export type Role = 'viewer' | 'admin';

export interface HealthCheckSpec {
  type: 'tcp' | 'http'; port?: number; path?: string; expectStatus?: [number, number];
  intervalMs: number; timeoutMs: number; rise: number; fall: number;
  /** Health of a backend before its first verdict: 'down' (default: "checking", out of the table until `rise` successes) or 'up' (in at once). */
  initialState?: 'up' | 'down';
  /** Flap damping: more than maxFlips up/down changes within windowMs hold the backend down for holdMs. */
  flap?: { maxFlips?: number; windowMs?: number; holdMs?: number };
  /** Slow start (off by default): a backend that comes up ramps its weight in `steps` over durationMs. */
  slowStart?: { durationMs: number; steps?: number };
  /** DSR services: 'vip' (default) probes VIP:port through each backend; 'address' the backend's own address. */
  dsrProbe?: 'vip' | 'address';
  /** http: keep each backend's connection open between probes (HTTP/1.1 keep-alive) instead of one connection per probe. */
  reuseConnection?: boolean;
}
/** 'checking': a checked backend without a verdict yet (not in the table); 'unchecked': its service has no check. */
export type BackendHealthState = 'up' | 'down' | 'checking' | 'unchecked';
export interface BackendSpec { address: string; port: number; weight: number; drain?: boolean }
export interface ServiceSpec {
  name: string; vip: string; port: number; protocol: 'tcp' | 'udp'; mode: 'nat' | 'dsr';
  tableSize?: number; backends: BackendSpec[]; healthCheck?: HealthCheckSpec;
}
export interface BackendView extends BackendSpec {
  id: number; key: string; health: BackendHealthState; draining: boolean;
  inTable: boolean; tableShare: number;
  /** Why the backend is held down (flap damping), with heldUntil (ms since the epoch). */
  healthReason?: string; heldUntil?: number;
  /** Slow start: the weight it takes now while ramping (absent when not ramping). */
  rampWeight?: number;
}
export interface ServiceView extends Omit<ServiceSpec, 'backends'> { id: number; backends: BackendView[] }
export interface SettingsView { fragPolicy: 'drop' | 'pass'; sampleRate: number; flowCache: boolean }

export interface RateRow { pps: number; bps: number; packets: number; bytes: number }
export interface StatsView {
  at: number; interval: number;
  totals: RateRow;
  services: Array<{
    name: string; fwdPps: number; fwdBps: number; revPps: number; revBps: number; packets: number; bytes: number;
    backends: Array<{ key: string; fwdPps: number; fwdBps: number; revPps: number; revBps: number;
      packets: number; bytes: number; health: BackendHealthState }>;
  }>;
  actions: Array<{ name: string; pps: number; packets: number }>;
  reasons: Array<{ name: string; pps: number; packets: number }>;
}
export interface ProgramView extends ProgramInfo {
  attach?: { ifname: string; ifindex: number; mode: string }; avgNs: number | null; xdplb: boolean;
}
export interface MapView extends Pick<MapInfo, 'name' | 'id' | 'type' | 'keySize' | 'valueSize' | 'maxEntries'> {
  typeName: string; usedEntries: number;
}
export interface MapPage { name: string; total: number; offset: number; entries: Array<{ key: unknown; value: unknown }> }

export type StreamMessage =
  | { type: 'stats'; data: StatsView }
  | { type: 'event'; data: TraceEvent }
  | { type: 'health'; data: { service: string; backend: string; health: 'up' | 'down' } }
  | { type: 'state'; data: { services: ServiceView[] } };

/** What a whole-state change changes (PUT /api/v1/state): services, their backends, settings. */
export interface StateDiff {
  added: string[];
  removed: string[];
  changed: Array<{
    name: string;
    /** Fields of the service other than its backends that change (vip, port, tableSize, healthCheck...). */
    fields: string[];
    backends: {
      added: string[]; removed: string[];
      changed: Array<{ backend: string; from: { weight: number; drain: boolean }; to: { weight: number; drain: boolean } }>;
    };
  }>;
  settings: Array<{ field: string; from: unknown; to: unknown }>;
}

/** The Maglev disruption of a change for one service: the share of its table's slots (flows) that move. */
export interface ServiceDisruption {
  service: string;
  /** 0..1; null for a service added (no flows yet) or removed (all its flows end). */
  moved: number | null;
  tableSize: number;
  change: 'added' | 'removed' | 'changed' | 'none';
}

/** The desired state as a whole (a state file, PUT /api/v1/state): every service, and settings to set. */
export interface StateDocument { services: ServiceSpec[]; settings?: Partial<SettingsView> }

/** What PUT /api/v1/state did (or, dry run, would do). */
export interface StateApplyResult {
  dryRun: boolean;
  /** false when the state already was the desired one (nothing written), or on a dry run. */
  applied: boolean;
  diff: StateDiff;
  disruption: ServiceDisruption[];
}

/** One backend's change in a bulk change (PATCH /api/v1/state/backends). */
export interface BackendChange { service: string; backend: string; weight?: number; drain?: boolean }

/** One service's Maglev transition (docs/decisions.md "Stateless steady state"): its moved slots. */
export interface ServiceTransitionView {
  service: string;
  /** Slots of the service's installed table (0: no table). */
  tableSize: number;
  /** Slots marked moved (LB_SLOT_MOVED): their packets consult the flow cache. */
  movedSlots: number;
  /** movedSlots / tableSize (0..1). */
  movedShare: number;
  /** Moved slots whose previous backend's flows were seen since the last sweep (a sweep keeps them). */
  seenSlots: number;
  /** Moved slots in the first sweep period of their window (UDP misses still go to the previous backend). */
  youngSlots: number;
  /** When the oldest running transition of the service began (ms since the epoch), or null. */
  since: number | null;
}
/** GET /api/v1/transitions: every service's transition state and the sweep's schedule. */
export interface TransitionsView {
  /** The sweep period (settings.transitionSeconds); a mark lasts at least two. */
  transitionSeconds: number;
  /** When the next sweep runs (ms since the epoch), or null when nothing is moved. */
  nextSweepAt: number | null;
  /** settings.flowCache: false = marks are kept but the program ignores them (purely stateless). */
  flowCache: boolean;
  services: ServiceTransitionView[];
}

export interface Controller {
  listServices(): ServiceView[];
  getService(name: string): ServiceView;                 // throws NOT_FOUND
  createService(spec: ServiceSpec): Promise<ServiceView>;  // throws CONFLICT / VALIDATION
  replaceService(name: string, spec: ServiceSpec): Promise<ServiceView>;
  deleteService(name: string): Promise<void>;
  addBackend(service: string, spec: BackendSpec): Promise<ServiceView>;
  patchBackend(service: string, key: string, patch: { weight?: number; drain?: boolean }): Promise<ServiceView>;
  deleteBackend(service: string, key: string): Promise<void>;
  getSettings(): SettingsView;
  patchSettings(patch: Partial<SettingsView>): Promise<SettingsView>;
  programs(): { programs: ProgramView[]; statsEnabled: boolean };
  setProgramStats(enabled: boolean): void;
  maps(): MapView[];
  mapEntries(name: string, offset: number, limit: number): MapPage;  // throws NOT_FOUND
  interfaces(): Array<{ ifname: string; ifindex: number; mode: string; progId: number }>;
  stats(): StatsView;
  /**
   * Optional: the raw cumulative counters (summed over CPUs) behind stats(). /metrics exports
   * them with their fwd/rev direction; without it, /metrics falls back to stats() totals
   * (direction="all").
   */
  counters?(): StatsSnapshot;
  /** Optional: the flow hash seed the running program uses (GET /api/v1/hash-seed, /metrics). */
  hashSeed?(): { hashSeed: number };
  /** Optional: replaces the running seed, explicitly (PUT /api/v1/hash-seed); flows re-hash. */
  setHashSeed?(seed: number): Promise<{ hashSeed: number }>;
  statsHistory(seconds: number): StatsView[];
  latestBench(): unknown | null;
  /** Subscribe to the live stream; returns the unsubscribe function. */
  subscribe(listener: (msg: StreamMessage) => void): () => void;
  /** Optional: the desired state as a state document (GET /api/v1/state). */
  stateDocument?(): StateDocument;
  /** Optional: replaces the whole desired state in one change, or (dryRun) says what it would do. */
  applyStateDocument?(doc: StateDocument, opts: { dryRun: boolean }): Promise<StateApplyResult>;
  /** Optional: weight/drain changes of several backends in one change (all or none). */
  patchBackends?(changes: BackendChange[]): Promise<{ services: ServiceView[]; diff: StateDiff }>;
  /** Optional: the services' Maglev transitions (GET /api/v1/transitions, /metrics). */
  transitions?(): TransitionsView;
}
