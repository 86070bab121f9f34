/**
 * Rules that the config validator (src/config/state.ts) and the reconciler's own check before
 * it writes the maps (src/balancer/reconciler.ts) must answer alike: one place, used by both.
 */

/**
 * The destination a backend stands for, for telling duplicates apart: in DSR the port is never
 * rewritten, so two entries for one address are one destination; in NAT port 0 keeps the
 * client's destination port, which is the service port (a port-0 NAT service has only port-0
 * backends), so "B:0" and "B:80" behind port 80 are one destination.
 */
export function backendDestination(service: { mode: string; port: number }, backend: { address: string; port: number }): string {
  return service.mode === 'dsr' ? backend.address : `${backend.address}:${backend.port || service.port}`;
}

/*
 * Reverse NAT: a NAT backend needs one reverse entry keyed by {backend address, source port (0 = any),
 * protocol} whose value is the {VIP, port} its replies leave as. The program looks up the
 * reply's exact source port first, then port 0.
 */

/** What the rule looks at of one reverse entry: replies from `port` (0 = any) leave as vip:vport. */
export interface ReverseClaim { port: number; vip: string; vport: number }

/**
 * Where two reverse entries of one backend address and protocol make a reply ambiguous, as
 * text for a message ("8080", "80 (and any port)"), or null when they do not clash:
 * - equal ports clash only when they map the reply differently (another VIP or port); equal
 *   ports with the same VIP:port are one and the same map entry, written once;
 * - a wildcard (0) beside a specific port clashes when that port's replies would leave
 *   differently through the wildcard (another VIP, or a translated port);
 * - two different specific ports never clash.
 */
export function reverseClash(a: ReverseClaim, b: ReverseClaim): string | null {
  if (a.port === b.port) return a.vip !== b.vip || a.vport !== b.vport ? String(a.port) : null;
  if (a.port !== 0 && b.port !== 0) return null;
  const specific = a.port === 0 ? b : a;
  return a.vip !== b.vip || specific.port !== specific.vport ? `${specific.port} (and any port)` : null;
}
