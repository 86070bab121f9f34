/**
 * GET /api/v1/transitions: the data plane's transition states (src/balancer/transitions.ts) in
 * the desired state's service order, one row per configured service (zeros where the data plane
 * has no table for it, or no transitions at all).
 */
import type { Config } from '../config/schema';
import type { ServiceTransitionView, TransitionsView } from '../domain/types';
import { DEFAULT_TRANSITION_SECONDS } from '../balancer/transitions';

export function transitionsFor(config: Readonly<Config>, fromDataplane: TransitionsView | null): TransitionsView {
  const byName = new Map((fromDataplane?.services ?? []).map((s) => [s.service, s]));
  const services = config.services.map((spec): ServiceTransitionView => byName.get(spec.name)
    ?? { service: spec.name, tableSize: 0, movedSlots: 0, movedShare: 0, seenSlots: 0, youngSlots: 0, since: null });
  return {
    transitionSeconds: fromDataplane?.transitionSeconds ?? config.transitionSeconds ?? DEFAULT_TRANSITION_SECONDS,
    nextSweepAt: fromDataplane?.nextSweepAt ?? null,
    flowCache: fromDataplane?.flowCache ?? config.flowCache,
    services,
  };
}
