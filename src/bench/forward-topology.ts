/**
 * The forwarding benchmark's site: a generator, the load balancer and a sink, each in its own
 * namespace, joined by two veth pairs. Dual-stack: IPv4 from 198.18.0.0/15, IPv6 from 2001:2::/48.
 *
 *   xlbb-gen [xlbbg0] ──veth── [xlbbl0] xlbb-lb [xlbbl1] ──veth── [xlbbs0] xlbb-sink
 *   198.18.200.1                198.18.200.2     198.18.201.1       198.18.201.2 (+ .11 .12 backends)
 *   2001:2:0:200::1             2001:2:0:200::2  2001:2:0:201::1    2001:2:0:201::2 (+ ::11 ::12)
 *
 * CPU placement (2+ CPUs): the generator's test run and the sink's NAPI thread share CPU 0; the
 * lb's ingress NAPI thread, where all of the lb's per-packet work happens (XDP or the kernel
 * stack, netfilter included), has CPU 1 to itself, so its CPU time is the lb's cost.
 */
import {
  BENCH_PREFIX, createNamespace, createVeth, deleteNamespace, enableThreadedNapi, ifindexOf,
  napiThreadPids, onlineCpus, pinTask, setSysctls,
} from './netns';
import { run } from './exec';

export interface ForwardTopology {
  gen: { netns: string; ifname: string; ifindex: number; mac: string; address: string };
  lb: {
    netns: string; ingress: string; egress: string; ingressIfindex: number; egressIfindex: number;
    ingressMac: string; egressMac: string; ingressAddress: string; egressAddress: string;
    /** NAPI kthreads of the ingress veth: their CPU time is the lb's per-packet work. */
    napiPids: number[];
  };
  sink: { netns: string; ifname: string; ifindex: number; mac: string; address: string };
  /** The VIP the load-balancing cases serve (UDP port VIP_PORT). */
  vip: string;
  vipPort: number;
  /** The two backends, both addresses of the sink. */
  backends: string[];
  /** The XDP_TX cases' VIP (UDP port vipPort) and its backends, reached back through the lb's
   * ingress (neighbours with the generator's MAC: what the lb sends them arrives at the
   * generator's veth, where a second sink counts). */
  txVip: string;
  txBackends: string[];
  /** First client (source) address; the generator walks up from it. */
  clientBase: string;
  /** The same site's IPv6 side (2001:2::/48): the load-balancing cases' VIP (UDP port vipPort),
   * the two backends (addresses of the sink), the first client address. */
  v6: { vip: string; backends: string[]; clientBase: string; genAddress: string; lbIngressAddress: string };
  /** CPU of the generator and the sink; CPU of the lb (equal on a 1-CPU machine). */
  genCpu: number;
  lbCpu: number;
}

export const FORWARD_NAMESPACES = [`${BENCH_PREFIX}-gen`, `${BENCH_PREFIX}-lb`, `${BENCH_PREFIX}-sink`] as const;

const GEN_MAC = '02:b0:00:00:00:01';
const LB_IN_MAC = '02:b0:00:00:00:02';
const LB_OUT_MAC = '02:b0:00:00:01:01';
const SINK_MAC = '02:b0:00:00:01:02';
/** The XDP_TX cases' backends: on the lb's ingress link, with the generator's MAC. */
const TX_BACKENDS = ['198.18.200.11', '198.18.200.12', '198.18.200.13', '198.18.200.14'];
export const LB_INGRESS_MAC = LB_IN_MAC;
/** The IPv6 side (2001:2::/48 only): generator link 2001:2:0:200::/64, sink link 2001:2:0:201::/64,
 * VIP 2001:2:0:210::1, clients 2001:2:0:220::/64 behind the generator. */
const V6 = {
  gen: '2001:2:0:200::1', lbIn: '2001:2:0:200::2', lbOut: '2001:2:0:201::1', sink: '2001:2:0:201::2',
  backends: ['2001:2:0:201::11', '2001:2:0:201::12'], vip: '2001:2:0:210::1', clients: '2001:2:0:220::/64', clientBase: '2001:2:0:220::1',
} as const;
export const GENERATOR_MAC = GEN_MAC;

/** Removes the forwarding benchmark's namespaces (and so its veths and programs). */
export function tearDownForwardTopology(): void {
  for (const ns of FORWARD_NAMESPACES) deleteNamespace(ns);
}

/**
 * Builds the generator / lb / sink site, pins the NAPI threads and returns its description.
 * On failure it removes what it made before rethrowing.
 * @throws Error when a system tool fails or a NAPI thread does not appear.
 */
export function setUpForwardTopology(): ForwardTopology {
  const [genNs, lbNs, sinkNs] = FORWARD_NAMESPACES;
  const cpus = onlineCpus();
  const genCpu = 0;
  const lbCpu = cpus > 1 ? 1 : 0;
  try {
    for (const ns of FORWARD_NAMESPACES) createNamespace(ns, { ipv6: true });
    createVeth({ netns: genNs, name: 'xlbbg0', mac: GEN_MAC, cidrs: ['198.18.200.1/24', `${V6.gen}/64`] },
      { netns: lbNs, name: 'xlbbl0', mac: LB_IN_MAC, cidrs: ['198.18.200.2/24', `${V6.lbIn}/64`] });
    createVeth({ netns: lbNs, name: 'xlbbl1', mac: LB_OUT_MAC, cidrs: ['198.18.201.1/24', `${V6.lbOut}/64`] },
      { netns: sinkNs, name: 'xlbbs0', mac: SINK_MAC, cidrs: ['198.18.201.2/24', '198.18.201.11/24', '198.18.201.12/24',
        ...[V6.sink, ...V6.backends].map((a) => `${a}/64`)] });
    setSysctls(lbNs, {
      'net.ipv4.ip_forward': '1', 'net.ipv4.conf.all.rp_filter': '0', 'net.ipv4.conf.default.rp_filter': '0',
      'net.ipv4.conf.xlbbl0.rp_filter': '0', 'net.ipv6.conf.all.forwarding': '1',
    });
    // IPv6: the same picture, static neighbours, clients behind the generator.
    run('ip', ['-6', 'route', 'add', V6.clients, 'via', V6.gen], { netns: lbNs });
    run('ip', ['-6', 'neigh', 'replace', V6.gen, 'lladdr', GEN_MAC, 'dev', 'xlbbl0', 'nud', 'permanent'], { netns: lbNs });
    for (const a of [V6.sink, ...V6.backends]) {
      run('ip', ['-6', 'neigh', 'replace', a, 'lladdr', SINK_MAC, 'dev', 'xlbbl1', 'nud', 'permanent'], { netns: lbNs });
    }
    run('ip', ['-6', 'neigh', 'replace', V6.lbIn, 'lladdr', LB_IN_MAC, 'dev', 'xlbbg0', 'nud', 'permanent'], { netns: genNs });
    run('ip', ['-6', 'route', 'add', 'default', 'via', V6.lbOut], { netns: sinkNs });
    // Clients live behind the generator; every neighbour is static so no ARP runs mid-benchmark.
    run('ip', ['route', 'add', '198.18.220.0/24', 'via', '198.18.200.1'], { netns: lbNs });
    run('ip', ['neigh', 'replace', '198.18.200.1', 'lladdr', GEN_MAC, 'dev', 'xlbbl0', 'nud', 'permanent'], { netns: lbNs });
    for (const a of ['198.18.201.2', '198.18.201.11', '198.18.201.12']) {
      run('ip', ['neigh', 'replace', a, 'lladdr', SINK_MAC, 'dev', 'xlbbl1', 'nud', 'permanent'], { netns: lbNs });
    }
    run('ip', ['neigh', 'replace', '198.18.200.2', 'lladdr', LB_IN_MAC, 'dev', 'xlbbg0', 'nud', 'permanent'], { netns: genNs });
    for (const a of TX_BACKENDS) {
      run('ip', ['neigh', 'replace', a, 'lladdr', GEN_MAC, 'dev', 'xlbbl0', 'nud', 'permanent'], { netns: lbNs });
    }
    run('ip', ['route', 'add', 'default', 'via', '198.18.201.1'], { netns: sinkNs });

    enableThreadedNapi(lbNs, 'xlbbl0');
    enableThreadedNapi(sinkNs, 'xlbbs0');
    enableThreadedNapi(genNs, 'xlbbg0');
    const napiPids = napiThreadPids('xlbbl0');
    const sinkPids = [...napiThreadPids('xlbbs0'), ...napiThreadPids('xlbbg0')];
    if (napiPids.length === 0 || sinkPids.length === 0) throw new Error('threaded NAPI: no napi/xlbb* kthread appeared');
    for (const pid of napiPids) pinTask(pid, lbCpu);
    for (const pid of sinkPids) pinTask(pid, genCpu);

    return {
      gen: { netns: genNs, ifname: 'xlbbg0', ifindex: ifindexOf(genNs, 'xlbbg0'), mac: GEN_MAC, address: '198.18.200.1' },
      lb: {
        netns: lbNs, ingress: 'xlbbl0', egress: 'xlbbl1', ingressIfindex: ifindexOf(lbNs, 'xlbbl0'),
        egressIfindex: ifindexOf(lbNs, 'xlbbl1'), ingressMac: LB_IN_MAC, egressMac: LB_OUT_MAC,
        ingressAddress: '198.18.200.2', egressAddress: '198.18.201.1', napiPids,
      },
      sink: { netns: sinkNs, ifname: 'xlbbs0', ifindex: ifindexOf(sinkNs, 'xlbbs0'), mac: SINK_MAC, address: '198.18.201.2' },
      vip: '198.18.210.1', vipPort: 9, backends: ['198.18.201.11', '198.18.201.12'], clientBase: '198.18.220.1',
      txVip: '198.18.210.2', txBackends: [...TX_BACKENDS],
      v6: { vip: V6.vip, backends: [...V6.backends], clientBase: V6.clientBase, genAddress: V6.gen, lbIngressAddress: V6.lbIn },
      genCpu, lbCpu,
    };
  } catch (err) {
    tearDownForwardTopology();
    throw err;
  }
}
