/**
 * The network namespace the data-plane tests run the XDP program in: three veth pairs with
 * connected /24s, permanent neighbours (so bpf_fib_lookup answers SUCCESS or NO_NEIGH
 * deterministically) and forwarding on. Everything is named with the given prefix and is
 * removed by name by `destroy()`, also after a failed set-up.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { ipToU32, ip6ToBuffer, macToBuffer } from '../src/dataplane/packet';
import { connectedFib, type FibInterface, type FibNeighbour, type FibResult } from './refmodel';
import { connectedFib6 } from './refmodel6';

function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${(e.stderr ?? e.message).trim()}`);
  }
}

export interface LabPort {
  name: string;          // our end (the program's ingress/egress)
  peer: string;          // the other end, left without addresses
  ifindex: number;
  mac: string;
  address: string;       // our address; the subnet is /24
  address6?: string;     // our IPv6 address; the subnet is /64
}

export interface LabNeighbour { port: string; ip: string; mac: string }

/** address6: an IPv6 address (its /64 connected); neighbours with ':' in their address are IPv6. */
export interface PortSpec { suffix: string; mac: string; address: string; address6?: string }

export interface DatapathLab {
  netns: string;
  ports: Record<string, LabPort>;   // by suffix
  neighbours: LabNeighbour[];
  /** The FIB as the program will see it (for the reference model). */
  fib: (dst: number, ingress: number) => FibResult;
  /** bpf_fib_lookup(AF_INET6) as the program will see it. */
  fib6: (dst: Buffer, ingress: number) => FibResult;
  destroy(): void;
}

/**
 * Creates namespace `netns` with one veth pair per port (`<netns>-<suffix>` and `...p`), each
 * our end carrying `address`/24 and the given MAC, plus permanent neighbours.
 * @throws Error naming the failing `ip`/`sysctl` command; the namespace is removed first.
 */
export function createDatapathLab(netns: string, ports: PortSpec[], neighbours: LabNeighbour[]): DatapathLab {
  const destroy = () => {
    if (existsSync(`/run/netns/${netns}`)) sh('ip', ['netns', 'del', netns]);
  };
  destroy(); // a previous run that died leaves its namespace: start clean
  try {
    sh('ip', ['netns', 'add', netns]);
    const ip = (...args: string[]) => sh('ip', ['-n', netns, ...args]);
    const out: Record<string, LabPort> = {};
    for (const p of ports) {
      const name = `${netns}-${p.suffix}`;
      const peer = `${name}p`;
      if (peer.length > 15) throw new Error(`interface name ${peer} is longer than 15 characters`);
      ip('link', 'add', name, 'address', p.mac, 'type', 'veth', 'peer', 'name', peer);
      ip('addr', 'add', `${p.address}/24`, 'dev', name);
      if (p.address6) ip('-6', 'addr', 'add', `${p.address6}/64`, 'dev', name, 'nodad');
      ip('link', 'set', name, 'up');
      ip('link', 'set', peer, 'up');
      const info = JSON.parse(ip('-j', 'link', 'show', name)) as Array<{ ifindex: number }>;
      out[p.suffix] = { name, peer, ifindex: info[0].ifindex, mac: p.mac, address: p.address, address6: p.address6 };
    }
    sh('ip', ['netns', 'exec', netns, 'sysctl', '-q', '-w', 'net.ipv4.conf.all.forwarding=1']);
    sh('ip', ['netns', 'exec', netns, 'sysctl', '-q', '-w', 'net.ipv6.conf.all.forwarding=1']);
    for (const n of neighbours) {
      ip('neigh', 'replace', n.ip, 'lladdr', n.mac, 'dev', out[n.port].name, 'nud', 'permanent');
    }
    const fibIfaces: FibInterface[] = Object.values(out).map((p) => ({
      ifindex: p.ifindex, mac: macToBuffer(p.mac), address: ipToU32(p.address), prefixLen: 24,
    }));
    const fibNeighbours: FibNeighbour[] = neighbours.filter((n) => !n.ip.includes(':')).map((n) => ({
      ifindex: out[n.port].ifindex, ip: ipToU32(n.ip), mac: macToBuffer(n.mac),
    }));
    const fib6 = connectedFib6(
      Object.values(out).filter((p) => p.address6).map((p) => ({ ifindex: p.ifindex, mac: macToBuffer(p.mac), address: ip6ToBuffer(p.address6!), prefixLen: 64 as const })),
      neighbours.filter((n) => n.ip.includes(':')).map((n) => ({ ifindex: out[n.port].ifindex, ip: ip6ToBuffer(n.ip), mac: macToBuffer(n.mac) })),
    );
    return { netns, ports: out, neighbours, fib: connectedFib(fibIfaces, fibNeighbours), fib6, destroy };
  } catch (err) {
    destroy();
    throw err;
  }
}
