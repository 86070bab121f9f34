/**
 * The one decision of which VIPs this node announces over BGP (issue 13, docs/cluster.md).
 *
 * A VIP is announced iff the data plane is attached AND the desired state is fresh (file mode:
 * always) AND the node is not drained AND at least one service on that VIP has a usable backend:
 * health 'up' or 'unchecked', weight > 0, not draining. Pure: the daemon's BGP speaker calls it
 * with what it observes now, and announces exactly the result.
 */
import type { ServiceView } from '../domain/types';
import { compareAddresses } from '../domain/address';

export interface AnnounceInput {
  /** Every configured interface has the program attached (see BgpSpeaker.dataplaneAttached). */
  attached: boolean;
  /** The node applied a recent revision of the desired state (file mode: always true). */
  storeFresh: boolean;
  /** The node was drained (`xdplb node drain`). */
  drained: boolean;
  services: ReadonlyArray<Pick<ServiceView, 'vip' | 'backends'>>;
}

/** Whether a backend can take a new flow: health up/unchecked, weight > 0, not draining. */
export function usableBackend(b: ServiceView['backends'][number]): boolean {
  return (b.health === 'up' || b.health === 'unchecked') && b.weight > 0 && !b.draining && b.drain !== true;
}

/** Why nothing is announced ('' when the node may announce), for logs and status. */
export function withdrawReason(input: Omit<AnnounceInput, 'services'>): string {
  if (!input.attached) return 'data plane not attached';
  if (!input.storeFresh) return 'desired state not fresh';
  if (input.drained) return 'node drained';
  return '';
}

/**
 * The VIPs to announce, of both families, sorted (IPv4 first) and without duplicates. The same
 * rule for both: BIRD gets IPv4 VIPs as /32s for the IPv4 peers and IPv6 VIPs as /128s for the
 * IPv6 peers (src/cluster/bird.ts, docs/cluster.md "IPv6 VIPs").
 */
export function announcedVips(input: AnnounceInput): string[] {
  if (withdrawReason(input) !== '') return [];
  const vips = new Set<string>();
  for (const service of input.services) {
    if (service.backends.some(usableBackend)) vips.add(service.vip);
  }
  return [...vips].sort(compareAddresses);
}
