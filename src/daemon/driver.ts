/**
 * What the daemon's controller needs from the kernel side, in one interface. The daemon
 * implements it over the real Dataplane, its Balancer and inspectors (kernel-driver.ts);
 * keeping it an interface lets the controller be driven in-process by CLI and API tests
 * without a kernel.
 */
import type { DataplaneState, StatsSnapshot, TraceEvent } from '../dataplane/types';
import type { ProgramView, MapView, MapPage, TransitionsView } from '../domain/types';

/** Where one service landed in the data plane. */
export interface ServicePlacement {
  id: number;
  /** backend key "address:port" -> its id and its share of the Maglev slots (0..1). */
  backends: Record<string, { id: number; share: number }>;
}

export interface DataplaneDriver {
  /**
   * Makes the kernel maps match `state` (the reconciler); resolves how many map writes it took
   * (0 = the maps already matched). @throws when the kernel refuses.
   */
  applyState(state: DataplaneState): { writes: number } | Promise<{ writes: number }>;
  /** Where a service and these backends of it are in the maps; null when it is not there (yet). */
  placement(service: string, backends: Array<{ address: string; port: number }>): ServicePlacement | null;
  readStats(): StatsSnapshot;
  /** Kernel trace events; returns the unsubscribe function. */
  subscribe(listener: (event: TraceEvent) => void): () => void;
  programs(): { programs: ProgramView[]; statsEnabled: boolean };
  setProgramStats(enabled: boolean): void;
  maps(): MapView[];
  /** @throws XdplbError NOT_FOUND for an unknown map. */
  mapEntries(name: string, offset: number, limit: number): MapPage;
  interfaces(): Array<{ ifname: string; ifindex: number; mode: string; progId: number }>;
  /** The flow hash seed the running program uses (absent or undefined: the configured one). */
  hashSeed?(): number | undefined;
  /** Replaces the running program by one with this seed (flows re-hash). @throws when the kernel refuses */
  setHashSeed?(seed: number): void | Promise<void>;
  /** The services' Maglev transitions and the sweep's schedule (absent: the data plane has none). */
  transitions?(): TransitionsView;
  /**
   * Calls `listener` when the number of moved Maglev slots changes: an apply that moves slots
   * (an API change or a health check's) or a sweep that clears them. Returns the unsubscribe function.
   */
  onTransitionsChange?(listener: () => void): () => void;
}
