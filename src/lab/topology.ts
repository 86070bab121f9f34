/**
 * The lab's shape: names and addresses of every namespace, link and address, as data.
 * Pure (no system calls), so the daemon, tests, benchmarks and docs/lab.md share one picture.
 *
 *   client ──veth── lb ──veth── sw (Linux bridge) ──veth── be1 .. beN
 *
 * Dual-stack: every IPv4 address comes from 198.18.0.0/15 (RFC 2544 benchmarking range), every
 * IPv6 address from 2001:2::/48 (RFC 5180, its IPv6 sibling), one IPv6 /64 beside each IPv4 /24
 * (client 2001:2::/64, backends 2001:2:0:1::/64, VIPs 2001:2:0:100::/64). Every namespace and
 * interface name starts with the lab prefix, so `lab down` can remove exactly what `lab up` made.
 */
import { isIPv4 } from 'node:net';
import { canonicalAddress, tryParseAddress } from '../domain/address';

/** The real lab's prefix (demo, manual use). */
export const DEFAULT_LAB_PREFIX = 'xlb';
/** The prefix the lab's own tests use, so they never collide with a running demo. */
export const TEST_LAB_PREFIX = 'xlbt-lab';

export const CLIENT_SUBNET = '198.18.0.0/24';
export const CLIENT_ADDRESS = '198.18.0.2';
/** The lb's client-side leg and the client's default gateway. */
export const LB_CLIENT_ADDRESS = '198.18.0.1';
export const BACKEND_SUBNET = '198.18.1.0/24';
/** The lb's backend-side leg and the backends' default gateway. */
export const LB_BACKEND_ADDRESS = '198.18.1.1';
export const SUBNET_PREFIX_LENGTH = 24;
/** Every VIP lives here; the client routes it via the lb. */
export const VIP_SUBNET = '198.18.100.0/24';
/** The demo's HTTP service VIP (port 80 -> backends :8080). */
export const DEMO_HTTP_VIP = '198.18.100.1';
/** The demo's UDP service VIP (port 5300, DSR). */
export const DEMO_UDP_VIP = '198.18.100.2';
/** VIPs the backends hold on `lo` in DSR mode (the UDP echo also binds each of them). */
export const DEFAULT_DSR_VIPS: readonly string[] = ['198.18.100.1', '198.18.100.2', '198.18.100.3', '198.18.100.4'];


/** IPv6 (2001:2::/48 only): the client's /64, its address and the lb's leg (its gateway). */
export const CLIENT_SUBNET6 = '2001:2::/64';
export const CLIENT_ADDRESS6 = '2001:2::2';
export const LB_CLIENT_ADDRESS6 = '2001:2::1';
/** The backends' /64 and the lb's leg on it (their IPv6 gateway). */
export const BACKEND_SUBNET6 = '2001:2:0:1::/64';
export const LB_BACKEND_ADDRESS6 = '2001:2:0:1::1';
export const SUBNET_PREFIX_LENGTH6 = 64;
/** Every IPv6 VIP lives here; the client routes it via the lb. */
export const VIP_SUBNET6 = '2001:2:0:100::/64';
/** The demo's IPv6 HTTP service VIP (port 80 -> backends :8080, NAT). */
export const DEMO_HTTP_VIP6 = '2001:2:0:100::1';
/** IPv6 VIPs the backends hold on `lo` in DSR mode (beside DEFAULT_DSR_VIPS). */
export const DEFAULT_DSR_VIPS6: readonly string[] = ['2001:2:0:100::1', '2001:2:0:100::2', '2001:2:0:100::3', '2001:2:0:100::4'];

/** Ports of the backend servers. */
export const BACKEND_HTTP_PORT = 8080;
/** A second HTTP port with the same content, for services whose VIP port equals the backend port. */
export const BACKEND_HTTP_PORT_ALT = 80;
export const BACKEND_UDP_ECHO_PORT = 5300;
/** Where the daemon's API listens inside the lb namespace and where the host forwarder listens. */
export const DEFAULT_API_PORT = 8720;

export const MAX_BACKENDS = 50;
/** Longest prefix that keeps every interface name within IFNAMSIZ-1 = 15 characters. */
export const MAX_PREFIX_LENGTH = 8;
const PREFIX_PATTERN = /^[a-z][a-z0-9-]*[a-z0-9]$/;

export type LabMode = 'nat' | 'dsr';
export type LabRole = 'client' | 'lb' | 'switch' | 'backend';

export interface LabInterface {
  name: string;
  /** Address with prefix length, e.g. "198.18.0.2/24"; absent for bridge ports. */
  cidr?: string;
  /** IPv6 address with prefix length, e.g. "2001:2::2/64"; absent for bridge ports. */
  cidr6?: string;
  /** The other end of the veth pair: its namespace and name. */
  peer?: { netns: string; name: string };
}

export interface LabHost {
  /** Short host name used by `lab exec` and state files: client, lb, sw, be1.. */
  host: string;
  role: LabRole;
  netns: string;
  interfaces: LabInterface[];
  /** Default gateway, when the host has one. */
  gateway?: string;
  /** The host's main address (first interface), when it has one. */
  address?: string;
  /** IPv6 default gateway and main address, when the host has them. */
  gateway6?: string;
  address6?: string;
}

export interface LabBackend extends LabHost { role: 'backend'; index: number; address: string; address6: string; gateway6: string }

export interface LabTopology {
  prefix: string;
  mode: LabMode;
  /** VIPs held on the backends' `lo`, both families (DSR mode only; empty in NAT mode). */
  loopbackVips: string[];
  client: LabHost & { address: string; gateway: string; address6: string; gateway6: string };
  lb: LabHost & { clientLeg: string; backendLeg: string };
  switch: LabHost & { bridge: string; lbPort: string };
  backends: LabBackend[];
}

export interface TopologyOptions {
  prefix?: string;
  backends?: number;
  mode?: LabMode;
  /** DSR loopback VIPs of either family; default DEFAULT_DSR_VIPS and DEFAULT_DSR_VIPS6. Ignored in NAT mode. */
  vips?: readonly string[];
}

/**
 * Checks a lab prefix: lower-case letters, digits and '-', at most MAX_PREFIX_LENGTH characters.
 * @throws Error naming the prefix and the rule it breaks.
 */
export function validatePrefix(prefix: string): string {
  if (typeof prefix !== 'string' || !PREFIX_PATTERN.test(prefix)) {
    throw new Error(`lab prefix ${JSON.stringify(prefix)} must start with a letter and contain only a-z, 0-9 and '-'`);
  }
  if (prefix.length > MAX_PREFIX_LENGTH) {
    throw new Error(`lab prefix ${JSON.stringify(prefix)} is longer than ${MAX_PREFIX_LENGTH} characters (interface names must fit in 15)`);
  }
  return prefix;
}

/** The address of backend i (1-based): 198.18.1.(10+i). */
export function backendAddress(index: number): string {
  return `198.18.1.${10 + index}`;
}

/** The IPv6 address of backend i (1-based): 2001:2:0:1::(10+i), the IPv4 one's last number as hex digits. */
export function backendAddress6(index: number): string {
  return `2001:2:0:1::${10 + index}`;
}

/** Whether an address lies inside the VIP subnet 198.18.100.0/24 (and is not its network/broadcast). */
export function isLabVip(address: string): boolean {
  const m = /^198\.18\.100\.(\d{1,3})$/.exec(address);
  return m !== null && Number(m[1]) >= 1 && Number(m[1]) <= 254;
}

/**
 * The 8 groups of an IPv6 address as numbers (parsed by src/domain/address.ts), or undefined
 * when it is not IPv6 text or has a dotted IPv4 tail (the lab writes none).
 */
export function ipv6Groups(address: string): number[] | undefined {
  if (typeof address !== 'string' || address.includes('.')) return undefined;
  const parsed = tryParseAddress(address);
  if ('error' in parsed || parsed.family !== 6) return undefined;
  return Array.from({ length: 8 }, (_, i) => parsed.bytes.readUInt16BE(i * 2));
}

/** Whether an address lies inside the IPv6 VIP subnet 2001:2:0:100::/64 (not its all-zero host part). */
export function isLabVip6(address: string): boolean {
  const g = ipv6Groups(address);
  return g !== undefined && g[0] === 0x2001 && g[1] === 2 && g[2] === 0 && g[3] === 0x100 && g.slice(4).some((x) => x !== 0);
}

/** Whether an address lies inside 2001:2::/48, the lab's IPv6 range. */
export function isLabAddress6(address: string): boolean {
  const g = ipv6Groups(address);
  return g !== undefined && g[0] === 0x2001 && g[1] === 2 && g[2] === 0;
}

/** Whether an address is IPv6 text (vs IPv4 dotted). */
export function isIpv6Text(address: string): boolean {
  return !isIPv4(address) && ipv6Groups(address) !== undefined;
}

/**
 * Describes the lab for a prefix, backend count and mode.
 * @throws Error on a bad prefix, a backend count outside 1..MAX_BACKENDS, an unknown mode or a VIP
 *   outside 198.18.100.0/24.
 */
export function labTopology(options: TopologyOptions = {}): LabTopology {
  const prefix = validatePrefix(options.prefix ?? DEFAULT_LAB_PREFIX);
  const count = options.backends ?? 3;
  if (!Number.isInteger(count) || count < 1 || count > MAX_BACKENDS) {
    throw new Error(`backend count ${String(count)} must be an integer in 1..${MAX_BACKENDS}`);
  }
  const mode = options.mode ?? 'nat';
  if (mode !== 'nat' && mode !== 'dsr') throw new Error(`lab mode ${JSON.stringify(mode)} must be "nat" or "dsr"`);
  const vips = [...(options.vips ?? [...DEFAULT_DSR_VIPS, ...DEFAULT_DSR_VIPS6])].map((vip) => {
    if (isLabVip(vip)) return vip;
    if (isLabVip6(vip)) return canonicalAddress(vip);
    throw new Error(`VIP ${JSON.stringify(vip)} must be a host address in ${VIP_SUBNET} or ${VIP_SUBNET6}`);
  });

  const ns = (host: string) => `${prefix}-${host}`;
  const len = `/${SUBNET_PREFIX_LENGTH}`;
  const len6 = `/${SUBNET_PREFIX_LENGTH6}`;
  const clientIf = `${prefix}-c0`;
  const lbClientLeg = `${prefix}-lb0`;
  const lbBackendLeg = `${prefix}-lb1`;
  const swLbPort = `${prefix}-slb`;
  const bridge = `${prefix}-br`;

  const backends: LabBackend[] = [];
  for (let i = 1; i <= count; i++) {
    const address = backendAddress(i);
    const address6 = backendAddress6(i);
    backends.push({
      host: `be${i}`, role: 'backend', index: i, netns: ns(`be${i}`), address, gateway: LB_BACKEND_ADDRESS,
      address6, gateway6: LB_BACKEND_ADDRESS6,
      interfaces: [{ name: `${prefix}-b${i}`, cidr: address + len, cidr6: address6 + len6, peer: { netns: ns('sw'), name: `${prefix}-sb${i}` } }],
    });
  }

  return {
    prefix, mode, loopbackVips: mode === 'dsr' ? vips : [],
    client: {
      host: 'client', role: 'client', netns: ns('client'), address: CLIENT_ADDRESS, gateway: LB_CLIENT_ADDRESS,
      address6: CLIENT_ADDRESS6, gateway6: LB_CLIENT_ADDRESS6,
      interfaces: [{ name: clientIf, cidr: CLIENT_ADDRESS + len, cidr6: CLIENT_ADDRESS6 + len6, peer: { netns: ns('lb'), name: lbClientLeg } }],
    },
    lb: {
      host: 'lb', role: 'lb', netns: ns('lb'), address: LB_CLIENT_ADDRESS, address6: LB_CLIENT_ADDRESS6, clientLeg: lbClientLeg, backendLeg: lbBackendLeg,
      interfaces: [
        { name: lbClientLeg, cidr: LB_CLIENT_ADDRESS + len, cidr6: LB_CLIENT_ADDRESS6 + len6, peer: { netns: ns('client'), name: clientIf } },
        { name: lbBackendLeg, cidr: LB_BACKEND_ADDRESS + len, cidr6: LB_BACKEND_ADDRESS6 + len6, peer: { netns: ns('sw'), name: swLbPort } },
      ],
    },
    switch: {
      host: 'sw', role: 'switch', netns: ns('sw'), bridge, lbPort: swLbPort,
      interfaces: [
        { name: swLbPort, peer: { netns: ns('lb'), name: lbBackendLeg } },
        ...backends.map((b) => ({ name: b.interfaces[0].peer!.name, peer: { netns: b.netns, name: b.interfaces[0].name } })),
      ],
    },
    backends,
  };
}

/** Every host of the topology in creation order (client, lb, sw, be1..beN). */
export function labHosts(topology: LabTopology): LabHost[] {
  return [topology.client, topology.lb, topology.switch, ...topology.backends];
}

/**
 * Finds a host by its short name (client, lb, sw, be1..) or its namespace name.
 * @throws Error listing the known hosts when there is no such host.
 */
export function findHost(topology: LabTopology, name: string): LabHost {
  const host = labHosts(topology).find((h) => h.host === name || h.netns === name);
  if (!host) throw new Error(`no lab host ${JSON.stringify(name)} (known: ${labHosts(topology).map((h) => h.host).join(', ')})`);
  return host;
}

/** Whether a namespace name belongs to a lab with this prefix (exactly `${prefix}-<host>`). */
export function isLabNetns(prefix: string, netns: string): boolean {
  return new RegExp(`^${prefix.replace(/-/g, '\\-')}-(client|lb|sw|be[1-9][0-9]?)$`).test(netns);
}
