/**
 * What a benchmark case is, for the forwarding (forward.ts) and the HTTP (http.ts) benchmarks:
 * the cases themselves live with their benchmark or, for xdplb's own, in xdplb-cases.ts. Here so
 * that those modules import the shapes from one place and not from each other.
 */
import type { ForwardTopology } from './forward-topology';
import type { BenchPrograms } from './generator';
import type { HttpTopology } from './http-topology';

/** One way of forwarding through the lb host. */
export interface ForwardCase {
  name: string;
  label: string;
  /** Where the generator sends: to the VIP (load balancers), the XDP_TX cases' VIP, or straight to a backend (forwarders). */
  destination: 'vip' | 'tx-vip' | 'backend';
  /** The generator's address family (default 4): 6 sends IPv6 UDP to the site's IPv6 VIP or backend. */
  family?: 4 | 6;
  /** Once per run, before the first repetition (load objects). */
  prepare?(t: ForwardTopology, programs: BenchPrograms): void;
  /** Before each repetition; returns the id of the XDP program doing the work, if any. */
  setUp(t: ForwardTopology, programs: BenchPrograms): number | null;
  /** After each repetition, failures included. */
  tearDown(t: ForwardTopology): void;
  /** Once per run, at the end. */
  dispose?(): void;
}

/** One way to put a load balancer between the client and the backends. */
export interface HttpLbCase {
  name: string;
  label: string;
  /** Installs the load balancer; returns the pids of its user-space processes (their CPU counts). */
  setUp(topology: HttpTopology): Promise<number[]>;
  tearDown(topology: HttpTopology): Promise<void>;
  url(topology: HttpTopology): string;
  /** The family of the VIP it serves (default 4). */
  family?: 4 | 6;
}
