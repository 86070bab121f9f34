/**
 * The multi-node lab's shape (`xdplb lab up --nodes N`), as data (docs/lab.md):
 *
 *   client ──── router ══ bridge ══ lb1 .. lbN ══ switch (bridge) ══ be1 .. beM
 *                  └──────────────────────────────┘  (router's leg on the backend LAN)
 *                                                     etcd1 .. etcdE on the backend LAN
 *
 * The router runs BIRD: eBGP + BFD with every lb node (AS 65000 <-> 65001), the VIP /32s it
 * learns go to the kernel as one ECMP route (`merge paths`, fib_multipath_hash_policy=1).
 * Every lb node has the same interface names and the same peer (198.18.10.1), so one YAML
 * serves all nodes. Backends' gateway is the router: DSR replies go straight to the client;
 * NAT replies (from a backend's own address to the client) are policy-routed by the router
 * through table 100, an ECMP route over every live lb node (BIRD static with BFD per next hop),
 * and any node translates them (reverse NAT is stateless).
 *
 * Dual stack: every segment also has an IPv6 /64 from 2001:2:0:c000::/52 (the cluster lab's
 * part of 2001:2::/48; the single-node lab uses 2001:2::/64, 2001:2:0:1::/64, 2001:2:0:100::/64).
 * Each node has a second BGP session (IPv6, with BFD) to the router's 2001:2:0:c010::1 carrying
 * the ipv6 channel: IPv6 VIP /128s (2001:2:0:c100::/64) become one ECMP IPv6 route the same way.
 */
import { validatePrefix, backendAddress, DEFAULT_DSR_VIPS, isLabVip, VIP_SUBNET, MAX_BACKENDS, type LabMode } from './topology';

export const MAX_NODES = 4;
export const ROUTER_AS = 65000;
export const NODE_AS = 65001;
export const ROUTER_CLIENT_ADDRESS = '198.18.0.1';
export const CLUSTER_CLIENT_ADDRESS = '198.18.0.2';
/** The router's address on the lb nodes' segment: every node's BGP peer. */
export const ROUTER_NODE_ADDRESS = '198.18.10.1';
export const NODE_SUBNET = '198.18.10.0/24';
/** The router's leg on the backend LAN: the backends' gateway. */
export const ROUTER_BACKEND_ADDRESS = '198.18.1.254';
export const BACKEND_LAN = '198.18.1.0/24';
export const CLIENT_LAN = '198.18.0.0/24';
/** The kernel table (router namespace) of the NAT return route over the lb nodes. */
export const RETURN_TABLE = 100;
/** The cluster lab's IPv6 (inside 2001:2::/48, apart from the single-node lab's /64s). */
export const CLIENT_LAN6 = '2001:2:0:c000::/64';
export const CLUSTER_CLIENT_ADDRESS6 = '2001:2:0:c000::2';
export const ROUTER_CLIENT_ADDRESS6 = '2001:2:0:c000::1';
export const BACKEND_LAN6 = '2001:2:0:c001::/64';
export const ROUTER_BACKEND_ADDRESS6 = '2001:2:0:c001::fe';
export const NODE_SUBNET6 = '2001:2:0:c010::/64';
/** The router's IPv6 address on the lb nodes' segment: every node's IPv6 BGP peer. */
export const ROUTER_NODE_ADDRESS6 = '2001:2:0:c010::1';
/** Where the cluster lab's IPv6 VIPs live (host addresses ::1..::fffe). */
export const VIP_SUBNET6 = '2001:2:0:c100::/64';
export const ETCD_CLIENT_PORT = 2379;
export const ETCD_PEER_PORT = 2380;

/** lb node k's address towards the router: 198.18.10.(10+k). */
export function nodeUplinkAddress(k: number): string { return `198.18.10.${10 + k}`; }
/** lb node k's address on the backend LAN: 198.18.1.k. */
export function nodeBackendAddress(k: number): string { return `198.18.1.${k}`; }
/** lb node k's IPv6 address towards the router: 2001:2:0:c010::(10+k) (the digits as in IPv4). */
export function nodeUplinkAddress6(k: number): string { return `2001:2:0:c010::${10 + k}`; }
/** lb node k's IPv6 address on the backend LAN: 2001:2:0:c001::k. */
export function nodeBackendAddress6(k: number): string { return `2001:2:0:c001::${k}`; }
/** Backend i's IPv6 address: 2001:2:0:c001::(10+i) (the digits of its IPv4 198.18.1.(10+i)). */
export function backendAddress6(i: number): string { return `2001:2:0:c001::${10 + i}`; }
/** Whether an address is a host address of the cluster lab's IPv6 VIP subnet (canonical text). */
export function isLabVip6(address: string): boolean {
  const m = /^2001:2:0:c100::([0-9a-f]{1,4})$/.exec(address);
  return m !== null && parseInt(m[1], 16) >= 1 && parseInt(m[1], 16) <= 0xfffe;
}
/** etcd member i's address on the backend LAN: 198.18.1.(200+i). */
export function etcdAddress(i: number): string { return `198.18.1.${200 + i}`; }

export interface ClusterNode { index: number; host: string; netns: string; uplink: string; downlink: string; uplinkAddress: string; backendAddress: string; uplinkAddress6: string; backendAddress6: string; routerPort: string; switchPort: string }
export interface ClusterBackend { index: number; host: string; netns: string; ifname: string; address: string; address6: string; switchPort: string }
export interface ClusterEtcd { index: number; host: string; netns: string; ifname: string; address: string; switchPort: string; clientUrl: string; peerUrl: string }

export interface ClusterTopology {
  prefix: string;
  mode: LabMode;
  loopbackVips: string[];
  client: { host: 'client'; netns: string; ifname: string; address: string; gateway: string; routerPort: string };
  router: { host: 'router'; netns: string; clientLeg: string; bridge: string; backendLeg: string; switchPort: string };
  switch: { host: 'sw'; netns: string; bridge: string };
  nodes: ClusterNode[];
  backends: ClusterBackend[];
  etcd: ClusterEtcd[];
}

export interface ClusterTopologyOptions { prefix?: string; nodes: number; backends?: number; mode?: LabMode; vips?: readonly string[]; etcd?: number }

/**
 * Describes the multi-node lab.
 * @throws Error on a bad prefix, nodes outside 1..4, backends outside 1..MAX_BACKENDS, etcd not 0, 1 or 3, a bad mode or VIP.
 */
export function clusterTopology(options: ClusterTopologyOptions): ClusterTopology {
  const prefix = validatePrefix(options.prefix ?? 'xlb');
  const n = options.nodes;
  if (!Number.isInteger(n) || n < 1 || n > MAX_NODES) throw new Error(`node count ${String(n)} must be an integer in 1..${MAX_NODES}`);
  const count = options.backends ?? 3;
  if (!Number.isInteger(count) || count < 1 || count > MAX_BACKENDS) throw new Error(`backend count ${String(count)} must be an integer in 1..${MAX_BACKENDS}`);
  const etcdCount = options.etcd ?? 0;
  if (![0, 1, 3].includes(etcdCount)) throw new Error(`etcd member count ${String(etcdCount)} must be 0, 1 or 3`);
  const mode = options.mode ?? 'nat';
  if (mode !== 'nat' && mode !== 'dsr') throw new Error(`lab mode ${JSON.stringify(mode)} must be "nat" or "dsr"`);
  const vips = [...(options.vips ?? DEFAULT_DSR_VIPS)];
  for (const vip of vips) if (!isLabVip(vip)) throw new Error(`VIP ${JSON.stringify(vip)} must be a host address in ${VIP_SUBNET}`);
  const ns = (h: string) => `${prefix}-${h}`;
  const nodes: ClusterNode[] = [];
  for (let k = 1; k <= n; k++) {
    nodes.push({
      index: k, host: `lb${k}`, netns: ns(`lb${k}`), uplink: `${prefix}-lb0`, downlink: `${prefix}-lb1`,
      uplinkAddress: nodeUplinkAddress(k), backendAddress: nodeBackendAddress(k),
      uplinkAddress6: nodeUplinkAddress6(k), backendAddress6: nodeBackendAddress6(k), routerPort: `${prefix}-r${k}`, switchPort: `${prefix}-sl${k}`,
    });
  }
  const backends: ClusterBackend[] = [];
  for (let i = 1; i <= count; i++) {
    backends.push({ index: i, host: `be${i}`, netns: ns(`be${i}`), ifname: `${prefix}-b${i}`, address: backendAddress(i), address6: backendAddress6(i), switchPort: `${prefix}-sb${i}` });
  }
  const etcd: ClusterEtcd[] = [];
  for (let i = 1; i <= etcdCount; i++) {
    const address = etcdAddress(i);
    etcd.push({
      index: i, host: `etcd${i}`, netns: ns(`etcd${i}`), ifname: `${prefix}-e${i}`, address, switchPort: `${prefix}-se${i}`,
      clientUrl: `http://${address}:${ETCD_CLIENT_PORT}`, peerUrl: `http://${address}:${ETCD_PEER_PORT}`,
    });
  }
  return {
    prefix, mode, loopbackVips: mode === 'dsr' ? vips : [],
    client: { host: 'client', netns: ns('client'), ifname: `${prefix}-c0`, address: CLUSTER_CLIENT_ADDRESS, gateway: ROUTER_CLIENT_ADDRESS, routerPort: `${prefix}-rc` },
    router: { host: 'router', netns: ns('router'), clientLeg: `${prefix}-rc`, bridge: `${prefix}-rbr`, backendLeg: `${prefix}-rs`, switchPort: `${prefix}-sr` },
    switch: { host: 'sw', netns: ns('sw'), bridge: `${prefix}-br` },
    nodes, backends, etcd,
  };
}

/** Every namespace of the cluster lab, in creation order. */
export function clusterNamespaces(t: ClusterTopology): string[] {
  return [t.client.netns, t.router.netns, t.switch.netns, ...t.nodes.map((x) => x.netns), ...t.backends.map((x) => x.netns), ...t.etcd.map((x) => x.netns)];
}

/** Whether a namespace name belongs to a cluster lab with this prefix. */
export function isClusterNetns(prefix: string, netns: string): boolean {
  return new RegExp(`^${prefix.replace(/-/g, '\\-')}-(client|router|sw|lb[1-9]|be[1-9][0-9]?|etcd[1-9])$`).test(netns);
}

/**
 * The router's BIRD config: eBGP + BFD to every node over IPv4 (ipv4 channel) and over IPv6
 * (ipv6 channel), ECMP into the kernel for both families, the NAT return routes (table 100).
 */
export function routerBirdConfig(t: ClusterTopology): string {
  const lines = [
    '# xdplb lab router (src/lab/cluster-topology.ts)',
    `router id ${ROUTER_NODE_ADDRESS};`,
    'ipv4 table xret;',
    'ipv6 table xret6;',
    'protocol device { scan time 1; }',
    'protocol bfd { interface "*" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }; }',
    'protocol kernel kmain { ipv4 { import none; export all; }; merge paths on; }',
    'protocol kernel kmain6 { ipv6 { import none; export all; }; merge paths on; }',
    `protocol kernel kret { kernel table ${RETURN_TABLE}; ipv4 { table xret; import none; export all; }; merge paths on; }`,
    `protocol kernel kret6 { kernel table ${RETURN_TABLE}; ipv6 { table xret6; import none; export all; }; merge paths on; }`,
    `protocol static sret { ipv4 { table xret; }; route ${CLIENT_LAN} ${t.nodes.map((x) => `via ${x.uplinkAddress} bfd`).join(' ')}; }`,
    `protocol static sret6 { ipv6 { table xret6; }; route ${CLIENT_LAN6} ${t.nodes.map((x) => `via ${x.uplinkAddress6} bfd`).join(' ')}; }`,
  ];
  const timers = 'hold time 3; keepalive time 1; connect retry time 1; connect delay time 1; error wait time 1, 2; bfd on;';
  for (const x of t.nodes) {
    lines.push(`protocol bgp ${x.host} { local as ${ROUTER_AS}; neighbor ${x.uplinkAddress} as ${NODE_AS}; ${timers} ipv4 { import all; export none; }; }`);
  }
  for (const x of t.nodes) {
    // IPv6 session: only the cluster lab's IPv6 VIP /128s are taken.
    lines.push(`protocol bgp ${x.host}_6 { local as ${ROUTER_AS}; neighbor ${x.uplinkAddress6} as ${NODE_AS}; ${timers} ` +
      `ipv6 { import where net ~ [ ${VIP_SUBNET6}{128,128} ]; export none; }; }`);
  }
  return lines.join('\n') + '\n';
}

/** The node config's bgp: section for this lab (the same on every node): an IPv4 and an IPv6 session to the router. */
export function labNodeBgp(): { localAs: number; peers: Array<{ address: string; as: number }>; bfd: boolean; holdTime: number } {
  return { localAs: NODE_AS, peers: [{ address: ROUTER_NODE_ADDRESS, as: ROUTER_AS }, { address: ROUTER_NODE_ADDRESS6, as: ROUTER_AS }], bfd: true, holdTime: 3 };
}
