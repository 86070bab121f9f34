/**
 * One namespace with one veth pair for IPv6 BPF_PROG_TEST_RUN tests: the balancer's side `dev`
 * (MAC `mac`; its peer `${dev}p`) holds an address on each of the given /64s (2001:2::/48) and
 * permanent neighbours, so bpf_fib_lookup AF_INET6 answers from the first frame; forwarding is on.
 * Optionally also IPv4 addresses (198.18.0.0/15) with IPv4 forwarding, and routes via `dev` (with
 * a locked MTU, which bpf_fib_lookup reports). enter() moves the calling thread into the namespace
 * (load the Dataplane after it); remove() deletes only this namespace.
 */
import { execFileSync } from 'node:child_process';
import { enterNetns } from '../../src/bpf';

export interface V6TestRunNetns {
  ns: string;
  dev: string;
  /** the MAC of `dev` */
  mac: string;
  /** addresses with prefix length to put on `dev`, e.g. 2001:2:0:61::1/64 */
  addresses: string[];
  /** address -> MAC of each neighbour */
  neighbours: Record<string, string>;
  /** the MAC of the peer `${dev}p` (default: the kernel's random one) */
  peerMac?: string;
  /** routes via `dev`, added after the addresses; `mtuLock`: the route's locked MTU */
  routes?: Array<{ prefix: string; mtuLock?: number }>;
  /** also turn IPv4 forwarding on (for a namespace that carries IPv4 too) */
  ipv4Forwarding?: boolean;
}

function ip(args: string[], input?: string): string {
  return execFileSync('ip', args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'], timeout: 10_000 });
}

/** Deletes the namespace (and with it the veth pair) when it is there. */
export function removeV6TestRunNetns(n: V6TestRunNetns): void {
  try { ip(['netns', 'del', n.ns]); } catch { /* not there */ }
}

/**
 * Creates the namespace afresh (a leftover of an earlier run is removed first) and enters it.
 * @returns the ifindex of `dev` and the function that returns to the previous namespace
 */
export function enterV6TestRunNetns(n: V6TestRunNetns): { ifindex: number; restore: () => void } {
  removeV6TestRunNetns(n);
  ip(['netns', 'add', n.ns]);
  ip(['-n', n.ns, '-batch', '-'], [
    `link add ${n.dev} address ${n.mac} type veth peer name ${n.dev}p${n.peerMac ? ` address ${n.peerMac}` : ''}`,
    `link set ${n.dev} up`, `link set ${n.dev}p up`, 'link set lo up',
    ...n.addresses.map((a) => `addr add ${a} dev ${n.dev}${a.includes(':') ? ' nodad' : ''}`),
    ...(n.routes ?? []).map((r) => `route add ${r.prefix} dev ${n.dev}${r.mtuLock !== undefined ? ` mtu lock ${r.mtuLock}` : ''}`),
    ...Object.entries(n.neighbours).map(([a, m]) => `neigh replace ${a} lladdr ${m} dev ${n.dev} nud permanent`),
  ].join('\n') + '\n');
  ip(['netns', 'exec', n.ns, 'sysctl', '-q', '-w', ...(n.ipv4Forwarding ? ['net.ipv4.ip_forward=1'] : []), 'net.ipv6.conf.all.forwarding=1']);
  const ifindex = (JSON.parse(ip(['-n', n.ns, '-j', 'link', 'show', n.dev])) as Array<{ ifindex: number }>)[0].ifindex;
  return { ifindex, restore: enterNetns(n.ns) };
}
