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
export const ETCD_CLIENT_PORT = 2379;
export const ETCD_PEER_PORT = 2380;

/** lb node k's address towards the router: 198.18.10.(10+k). */
export function nodeUplinkAddress(k: number): string { return `198.18.10.${10 + k}`; }
/** lb node k's address on the backend LAN: 198.18.1.k. */
export function nodeBackendAddress(k: number): string { return `198.18.1.${k}`; }
/** etcd member i's address on the backend LAN: 198.18.1.(200+i). */
export function etcdAddress(i: number): string { return `198.18.1.${200 + i}`; }

export interface ClusterNode { index: number; host: string; netns: string; uplink: string; downlink: string; uplinkAddress: string; backendAddress: string; routerPort: string; switchPort: string }
export interface ClusterBackend { index: number; host: string; netns: string; ifname: string; address: string; switchPort: string }
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
      uplinkAddress: nodeUplinkAddress(k), backendAddress: nodeBackendAddress(k), routerPort: `${prefix}-r${k}`, switchPort: `${prefix}-sl${k}`,
    });
  }
  const backends: ClusterBackend[] = [];
  for (let i = 1; i <= count; i++) {
    backends.push({ index: i, host: `be${i}`, netns: ns(`be${i}`), ifname: `${prefix}-b${i}`, address: backendAddress(i), switchPort: `${prefix}-sb${i}` });
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

/** The router's BIRD config: eBGP + BFD to every node, ECMP into the kernel, the NAT return route. */
export function routerBirdConfig(t: ClusterTopology): string {
  const lines = [
    '# xdplb lab router (src/lab/cluster-topology.ts)',
    `router id ${ROUTER_NODE_ADDRESS};`,
    'ipv4 table xret;',
    'protocol device { scan time 1; }',
    'protocol bfd { interface "*" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }; }',
    'protocol kernel kmain { ipv4 { import none; export all; }; merge paths on; }',
    `protocol kernel kret { kernel table ${RETURN_TABLE}; ipv4 { table xret; import none; export all; }; merge paths on; }`,
    `protocol static sret { ipv4 { table xret; }; route ${CLIENT_LAN} ${t.nodes.map((x) => `via ${x.uplinkAddress} bfd`).join(' ')}; }`,
  ];
  for (const x of t.nodes) {
    lines.push(`protocol bgp ${x.host} { local as ${ROUTER_AS}; neighbor ${x.uplinkAddress} as ${NODE_AS}; hold time 3; keepalive time 1; ` +
      'connect retry time 1; connect delay time 1; error wait time 1, 2; bfd on; ipv4 { import all; export none; }; }');
  }
  return lines.join('\n') + '\n';
}

/** The node config's bgp: section for this lab (the same on every node). */
export function labNodeBgp(): { localAs: number; peers: Array<{ address: string; as: number }>; bfd: boolean; holdTime: number } {
  return { localAs: NODE_AS, peers: [{ address: ROUTER_NODE_ADDRESS, as: ROUTER_AS }], bfd: true, holdTime: 3 };
}
