/**
 * The cluster contract as the dashboard and the dev server import it (one definition:
 * src/domain/cluster.ts).
 */
import type { BgpStatus } from '../domain/cluster';

export type { ClusterView, NodeStatus, BgpStatus as NodeBgp, Disagreement as HealthDisagreement } from '../domain/cluster';
export type NodeBgpPeer = BgpStatus['peers'][number];
export { computeDisagreements as findDisagreements } from '../domain/cluster';

/** PUT /api/v1/nodes/{name}/drain */
export interface DrainRequest { drain: boolean; graceSeconds?: number }
