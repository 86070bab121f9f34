/**
 * The config's rules over services, written once: src/config/state.ts reports a broken rule
 * to the user (a JSON pointer, 400/409), and the reconciler (src/balancer/reconciler.ts)
 * asserts, from the same functions, that the state it is handed keeps the rules the data plane
 * relies on (a broken one there is a bug upstream, not a user error).
 */
import { familyOf, joinHostPort } from '../domain/address';

/** True when n is a prime number (deterministic trial division; n up to 2^32 is quick enough). */
export function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  if (n % 2 === 0) return n === 2;
  if (n % 3 === 0) return n === 3;
  for (let d = 5; d * d <= n; d += 6) {
    if (n % d === 0 || n % (d + 2) === 0) return false;
  }
  return true;
}

/**
 * The destination a backend stands for, for telling duplicates apart: in DSR the port is never
 * rewritten, so two entries for one address are one destination; in NAT port 0 keeps the
 * client's destination port, which is the service port (a port-0 NAT service has only port-0
 * backends), so "B:0" and "B:80" behind port 80 are one destination.
 */
export function backendDestination(service: { mode: string; port: number }, backend: { address: string; port: number }): string {
  return service.mode === 'dsr' ? backend.address : joinHostPort(backend.address, backend.port || service.port);
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

/** What the rules look at of a service (a ServiceSpec, or the data plane's DataplaneService). */
export interface RuleService {
  name: string; vip: string; port: number; protocol: string; mode: string;
  backends: ReadonlyArray<{ address: string; port: number }>;
}

/** A rule one service breaks on its own; `backend` (and `first`) index its backends. */
export type ServiceRuleBreak =
  | { rule: 'family'; backend: number }
  | { rule: 'table-size-prime'; tableSize: number }
  | { rule: 'table-size-backends'; tableSize: number; backends: number }
  | { rule: 'nat-port-0'; backend: number }
  | { rule: 'dsr-port'; backend: number }
  | { rule: 'duplicate-destination'; backend: number; first: number };

/**
 * Every rule `service` breaks on its own, in field order: its Maglev table size (the effective
 * one, `tableSize`) is prime and has a slot per backend; a NAT service on every port (port 0)
 * has backends on port 0 (replies could not be mapped back otherwise); DSR backends do not
 * translate ports; no destination is listed twice (backendDestination); every backend has the
 * VIP's address family (a service is one family: no NAT64/46). Addresses are validated text.
 */
export function serviceRuleBreaks(service: RuleService, tableSize: number): ServiceRuleBreak[] {
  const breaks: ServiceRuleBreak[] = [];
  if (!isPrime(tableSize)) breaks.push({ rule: 'table-size-prime', tableSize });
  if (tableSize < service.backends.length) breaks.push({ rule: 'table-size-backends', tableSize, backends: service.backends.length });
  const seen = new Map<string, number>();
  const family = familyOf(service.vip);
  service.backends.forEach((backend, b) => {
    if (familyOf(backend.address) !== family) breaks.push({ rule: 'family', backend: b });
    if (service.mode === 'nat' && service.port === 0 && backend.port !== 0) breaks.push({ rule: 'nat-port-0', backend: b });
    if (service.mode === 'dsr' && backend.port !== 0 && backend.port !== service.port) breaks.push({ rule: 'dsr-port', backend: b });
    const destination = backendDestination(service, backend);
    const first = seen.get(destination);
    if (first !== undefined) breaks.push({ rule: 'duplicate-destination', backend: b, first });
    else seen.set(destination, b);
  });
  return breaks;
}

/** A rule two services break together: `service` is the later one, `first`/`other` the earlier. */
export type CrossServiceRuleBreak =
  | { rule: 'duplicate-name'; service: number; first: number }
  | { rule: 'duplicate-listener'; service: number; first: number }
  | { rule: 'backend-is-vip'; service: number; backend: number; owner: number }
  | { rule: 'reverse-clash'; service: number; backend: number; other: number; otherBackend: number; ports: string };

/**
 * Every rule the services break together, in service order: names are unique; a listener
 * (VIP, port, protocol) has one service; no backend is a VIP (packets would loop); no two NAT
 * services' reverse entries of one backend address and protocol clash (reverseClash; a
 * backend reports its first clash only).
 */
export function crossServiceRuleBreaks(services: readonly RuleService[]): CrossServiceRuleBreak[] {
  const breaks: CrossServiceRuleBreak[] = [];
  const byName = new Map<string, number>();
  const byListener = new Map<string, number>();
  // Reverse NAT entries grouped by "backend address|protocol".
  const byReverse = new Map<string, Array<ReverseClaim & { service: number; backend: number }>>();
  const vipOwner = new Map<string, number>();   // VIP -> the first service on it
  services.forEach((service, i) => { if (!vipOwner.has(service.vip)) vipOwner.set(service.vip, i); });
  services.forEach((service, i) => {
    const firstName = byName.get(service.name);
    if (firstName !== undefined) breaks.push({ rule: 'duplicate-name', service: i, first: firstName });
    else byName.set(service.name, i);

    const listener = `${service.vip}|${service.port}|${service.protocol}`;
    const firstListener = byListener.get(listener);
    if (firstListener !== undefined) breaks.push({ rule: 'duplicate-listener', service: i, first: firstListener });
    else byListener.set(listener, i);

    service.backends.forEach((backend, b) => {
      const owner = vipOwner.get(backend.address);
      if (owner !== undefined) breaks.push({ rule: 'backend-is-vip', service: i, backend: b, owner });
    });

    if (service.mode !== 'nat') return;
    service.backends.forEach((backend, b) => {
      const entry = { service: i, backend: b, port: backend.port || service.port, vip: service.vip, vport: service.port };
      const group = `${backend.address}|${service.protocol}`;
      const list = byReverse.get(group) ?? [];
      for (const seen of list) {
        if (seen.service === i) continue;   // within one service a clash also breaks duplicate-destination or nat-port-0
        const ports = reverseClash(seen, entry);
        if (!ports) continue;
        breaks.push({ rule: 'reverse-clash', service: i, backend: b, other: seen.service, otherBackend: seen.backend, ports });
        break;
      }
      list.push(entry);
      byReverse.set(group, list);
    });
  });
  return breaks;
}
