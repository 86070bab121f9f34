/**
 * The HTTP benchmark's site: a client running wrk, the lb, and three backends each on its own
 * veth from the lb (no bridge: every hop the lb makes is one XDP redirect or one route).
 *
 *   xlbb-hcli [xlbbc0 198.18.202.2] ── [xlbbh0 198.18.202.1] xlbb-hlb [xlbbbN 198.18.20(2+N).1]
 *                                         ── [xlbbeN 198.18.20(2+N).2] xlbb-hbeN   (N = 1..3)
 *
 * Each backend also has a return link straight to the client (xlbbqN 198.18.20(6+N).2 ──
 * xlbbrN 198.18.20(6+N).1 in the client), standing for the network's router: only direct server
 * return routes replies over it (addDsrVip); NAT replies must come back through the lb.
 *
 * Dual-stack: beside every IPv4 /24 198.18.X.0 the same link has 2001:2:0:X::/64 (same host
 * numbers, hex digits), so the IPv6 rows take exactly the same paths; the IPv6 VIP is
 * [2001:2:0:211::1]:8080.
 *
 * The VIP 198.18.211.1:8080 is routed to the lb; backends answer on :8080 (origin servers
 * are HAProxy instances returning a fixed 200, so the backends are not the bottleneck).
 * Every veth end has threaded NAPI: the lb's receive work runs in its own kthreads, whose CPU
 * time (plus any lb user-space process) is the lb's CPU cost; and sends full checksums, as a
 * wire would (see disableTxChecksumOffload).
 */
import {
  BENCH_PREFIX, createNamespace, createVeth, deleteNamespace, disableTxChecksumOffload, enableThreadedNapi, napiThreadPids,
  setSysctls,
} from './netns';
import { run } from './exec';

export interface HttpBackendHost {
  netns: string; ifname: string; address: string; lbLeg: string; lbAddress: string;
  /** The backend's end of its return link to the client, and the client's address on it. */
  returnLeg: string; returnGateway: string;
  /** The same three addresses in IPv6. */
  address6: string; lbAddress6: string; returnGateway6: string;
}

export interface HttpTopology {
  client: { netns: string; ifname: string; address: string; address6: string };
  lb: { netns: string; clientLeg: string; backendLegs: string[]; address: string; address6: string };
  backends: HttpBackendHost[];
  vip: string;
  /** The IPv6 VIP (same port). */
  vip6: string;
  port: number;
}

/** The IPv6 address on the link whose IPv4 /24 is 198.18.<net>.0, host <host>: 2001:2:0:<net>::<host>. */
function v6(net: number, host: number): string {
  return `2001:2:0:${net}::${host}`;
}

export const HTTP_BACKEND_COUNT = 3;
export const HTTP_CLIENT_NS = `${BENCH_PREFIX}-hcli`;
export const HTTP_LB_NS = `${BENCH_PREFIX}-hlb`;
export const HTTP_NAMESPACES = [HTTP_CLIENT_NS, HTTP_LB_NS,
  ...Array.from({ length: HTTP_BACKEND_COUNT }, (_, i) => `${BENCH_PREFIX}-hbe${i + 1}`)];

/** Removes the HTTP benchmark's namespaces (their veths, addresses and routes go with them). */
export function tearDownHttpTopology(): void {
  for (const ns of HTTP_NAMESPACES) deleteNamespace(ns);
}

/** The lb's NAPI kthreads (all its legs): where its per-packet work runs. */
export function httpLbNapiPids(topology: HttpTopology): number[] {
  return [topology.lb.clientLeg, ...topology.lb.backendLegs].flatMap((ifname) => napiThreadPids(ifname));
}

/**
 * Builds the client / lb / backends site (addDsrVip turns direct server return on later).
 * On failure it removes what it made before rethrowing.
 * @throws Error when a system tool fails.
 */
export function setUpHttpTopology(): HttpTopology {
  const vip = '198.18.211.1';
  const vip6 = v6(211, 1);
  try {
    for (const ns of HTTP_NAMESPACES) createNamespace(ns, { ipv6: true });
    createVeth({ netns: HTTP_CLIENT_NS, name: 'xlbbc0', mac: '02:b1:00:00:00:02', cidrs: ['198.18.202.2/24', `${v6(202, 2)}/64`] },
      { netns: HTTP_LB_NS, name: 'xlbbh0', mac: '02:b1:00:00:00:01', cidrs: ['198.18.202.1/24', `${v6(202, 1)}/64`] });
    const backends: HttpBackendHost[] = [];
    for (let i = 1; i <= HTTP_BACKEND_COUNT; i++) {
      const net = `198.18.${202 + i}`;
      const b: HttpBackendHost = {
        netns: `${BENCH_PREFIX}-hbe${i}`, ifname: `xlbbe${i}`, address: `${net}.2`, lbLeg: `xlbbb${i}`, lbAddress: `${net}.1`,
        returnLeg: `xlbbq${i}`, returnGateway: `198.18.${206 + i}.1`,
        address6: v6(202 + i, 2), lbAddress6: v6(202 + i, 1), returnGateway6: v6(206 + i, 1),
      };
      createVeth({ netns: HTTP_CLIENT_NS, name: `xlbbr${i}`, mac: `02:b1:00:00:1${i}:01`, cidrs: [`198.18.${206 + i}.1/24`, `${b.returnGateway6}/64`] },
        { netns: b.netns, name: b.returnLeg, mac: `02:b1:00:00:1${i}:02`, cidrs: [`198.18.${206 + i}.2/24`, `${v6(206 + i, 2)}/64`] });
      run('ip', ['neigh', 'replace', b.returnGateway, 'lladdr', `02:b1:00:00:1${i}:01`, 'dev', b.returnLeg, 'nud', 'permanent'], { netns: b.netns });
      run('ip', ['-6', 'neigh', 'replace', b.returnGateway6, 'lladdr', `02:b1:00:00:1${i}:01`, 'dev', b.returnLeg, 'nud', 'permanent'], { netns: b.netns });
      createVeth({ netns: HTTP_LB_NS, name: b.lbLeg, mac: `02:b1:00:00:0${i}:01`, cidrs: [`${b.lbAddress}/24`, `${b.lbAddress6}/64`] },
        { netns: b.netns, name: b.ifname, mac: `02:b1:00:00:0${i}:02`, cidrs: [`${b.address}/24`, `${b.address6}/64`] });
      run('ip', ['route', 'add', 'default', 'via', b.lbAddress], { netns: b.netns });
      run('ip', ['-6', 'route', 'add', 'default', 'via', b.lbAddress6], { netns: b.netns });
      // Permanent neighbours: bpf_fib_lookup answers NO_NEIGH for an unresolved next hop.
      run('ip', ['neigh', 'replace', b.address, 'lladdr', `02:b1:00:00:0${i}:02`, 'dev', b.lbLeg, 'nud', 'permanent'], { netns: HTTP_LB_NS });
      run('ip', ['neigh', 'replace', b.lbAddress, 'lladdr', `02:b1:00:00:0${i}:01`, 'dev', b.ifname, 'nud', 'permanent'], { netns: b.netns });
      run('ip', ['-6', 'neigh', 'replace', b.address6, 'lladdr', `02:b1:00:00:0${i}:02`, 'dev', b.lbLeg, 'nud', 'permanent'], { netns: HTTP_LB_NS });
      run('ip', ['-6', 'neigh', 'replace', b.lbAddress6, 'lladdr', `02:b1:00:00:0${i}:01`, 'dev', b.ifname, 'nud', 'permanent'], { netns: b.netns });
      // The backend's end of the veth must not drop replies whose source is the VIP (DSR).
      setSysctls(b.netns, { 'net.ipv4.conf.all.rp_filter': '0', 'net.ipv4.conf.default.rp_filter': '0' });
      backends.push(b);
    }
    run('ip', ['route', 'add', 'default', 'via', '198.18.202.1'], { netns: HTTP_CLIENT_NS });
    run('ip', ['neigh', 'replace', '198.18.202.1', 'lladdr', '02:b1:00:00:00:01', 'dev', 'xlbbc0', 'nud', 'permanent'], { netns: HTTP_CLIENT_NS });
    run('ip', ['neigh', 'replace', '198.18.202.2', 'lladdr', '02:b1:00:00:00:02', 'dev', 'xlbbh0', 'nud', 'permanent'], { netns: HTTP_LB_NS });
    run('ip', ['-6', 'route', 'add', 'default', 'via', v6(202, 1)], { netns: HTTP_CLIENT_NS });
    run('ip', ['-6', 'neigh', 'replace', v6(202, 1), 'lladdr', '02:b1:00:00:00:01', 'dev', 'xlbbc0', 'nud', 'permanent'], { netns: HTTP_CLIENT_NS });
    run('ip', ['-6', 'neigh', 'replace', v6(202, 2), 'lladdr', '02:b1:00:00:00:02', 'dev', 'xlbbh0', 'nud', 'permanent'], { netns: HTTP_LB_NS });
    for (let i = 1; i <= HTTP_BACKEND_COUNT; i++) {
      // The client's side of each return link knows the backend's MAC too (DSR replies arrive there).
      run('ip', ['-6', 'neigh', 'replace', v6(206 + i, 2), 'lladdr', `02:b1:00:00:1${i}:02`, 'dev', `xlbbr${i}`, 'nud', 'permanent'], { netns: HTTP_CLIENT_NS });
    }
    // The client accepts DSR replies from the VIP on a return link (not the VIP's route).
    setSysctls(HTTP_CLIENT_NS, {
      'net.ipv4.ip_local_port_range': '1024 65000', 'net.ipv4.tcp_tw_reuse': '1',
      'net.ipv4.conf.all.rp_filter': '0', 'net.ipv4.conf.default.rp_filter': '0',
    });
    for (let i = 1; i <= HTTP_BACKEND_COUNT; i++) setSysctls(HTTP_CLIENT_NS, { [`net.ipv4.conf.xlbbr${i}.rp_filter`]: '0' });
    setSysctls(HTTP_LB_NS, {
      'net.ipv4.ip_forward': '1', 'net.ipv4.conf.all.rp_filter': '0', 'net.ipv4.conf.default.rp_filter': '0',
      'net.ipv4.ip_local_port_range': '1024 65000', 'net.ipv4.tcp_tw_reuse': '1', 'net.ipv6.conf.all.forwarding': '1',
    });
    for (const ns of HTTP_NAMESPACES) {
      for (const ifname of run('ls', ['/sys/class/net'], { netns: ns }).split(/\s+/).filter((n) => n.startsWith(BENCH_PREFIX))) {
        enableThreadedNapi(ns, ifname);
        disableTxChecksumOffload(ns, ifname);
      }
    }
    return {
      client: { netns: HTTP_CLIENT_NS, ifname: 'xlbbc0', address: '198.18.202.2', address6: v6(202, 2) },
      lb: { netns: HTTP_LB_NS, clientLeg: 'xlbbh0', backendLegs: backends.map((b) => b.lbLeg), address: '198.18.202.1', address6: v6(202, 1) },
      backends, vip, vip6, port: 8080,
    };
  } catch (err) {
    tearDownHttpTopology();
    throw err;
  }
}

/**
 * Direct server return on the backends: the VIP on lo, and replies to the client over the
 * return link instead of back through the lb. removeDsrVip undoes both.
 */
export function addDsrVip(topology: HttpTopology, family: 4 | 6 = 4): void {
  for (const b of topology.backends) {
    if (family === 6) {
      run('ip', ['addr', 'add', `${topology.vip6}/128`, 'dev', 'lo', 'nodad'], { netns: b.netns });
      run('ip', ['-6', 'route', 'replace', `${topology.client.address6}/128`, 'via', b.returnGateway6, 'dev', b.returnLeg], { netns: b.netns });
      continue;
    }
    run('ip', ['addr', 'add', `${topology.vip}/32`, 'dev', 'lo'], { netns: b.netns });
    run('ip', ['route', 'replace', `${topology.client.address}/32`, 'via', b.returnGateway, 'dev', b.returnLeg], { netns: b.netns });
  }
}

/** Removes the VIP and the return route from the backends; missing ones are fine. */
export function removeDsrVip(topology: HttpTopology, family: 4 | 6 = 4): void {
  for (const b of topology.backends) {
    if (family === 6) {
      try { run('ip', ['addr', 'del', `${topology.vip6}/128`, 'dev', 'lo'], { netns: b.netns }); } catch { /* not there */ }
      try { run('ip', ['-6', 'route', 'del', `${topology.client.address6}/128`], { netns: b.netns }); } catch { /* not there */ }
      continue;
    }
    try { run('ip', ['addr', 'del', `${topology.vip}/32`, 'dev', 'lo'], { netns: b.netns }); } catch { /* not there */ }
    try { run('ip', ['route', 'del', `${topology.client.address}/32`], { netns: b.netns }); } catch { /* not there */ }
  }
}
