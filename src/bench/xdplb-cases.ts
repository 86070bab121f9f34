/**
 * xdplb itself as a benchmark case (forwarding and HTTP), over the real Dataplane (bpf/lb.o,
 * loaded, given one service by its Balancer's reconciler, attached natively to the lb's veths).
 */
import { Dataplane } from '../dataplane/dataplane';
import { Balancer } from '../balancer/balancer';
import type { DataplaneState, ForwardingMode } from '../dataplane/types';
import { inNetns } from '../bpf';
import type { ForwardCase, HttpLbCase } from './cases';
import { addDsrVip, removeDsrVip } from './http-topology';

/** Fixed flow-hash seed of the benchmarks' data planes. */
const BENCH_HASH_SEED = 0x62656e63;
export const BENCH_TABLE_SIZE = 65537;

/** The one-service state the benchmarks give the data plane. */
export function benchState(mode: ForwardingMode, vip: string, port: number, protocol: 'tcp' | 'udp',
  backends: string[], backendPort: number, sampleRate = 0): DataplaneState {
  return {
    services: [{
      name: 'bench', vip, port, protocol, mode, tableSize: BENCH_TABLE_SIZE,
      backends: backends.map((address) => ({ address, port: backendPort, weight: 1, healthy: true, draining: false })),
    }],
    settings: { fragPolicy: 'drop', sampleRate, flowCache: true },
  };
}

/** Attaches a data plane to interfaces of a namespace; returns the program id. */
function attachIn(dp: Dataplane, netns: string, ifnames: string[]): number {
  return inNetns(netns, () => {
    let progId = 0;
    for (const ifname of ifnames) progId = dp.attach(ifname, 'native').progId;
    return progId;
  });
}

function detachAll(dp: Dataplane | null, netns: string): void {
  if (!dp) return;
  inNetns(netns, () => {
    for (const a of dp.attachments()) {
      try { dp.detach(a.ifname); } catch { /* namespace going away */ }
    }
  });
}

/** xdplb in `mode` on the forwarding benchmark's lb: VIP:9/udp over the two sink backends
 * (family 6: the site's IPv6 VIP and backends, named xdplb-nat6 / xdplb-dsr6). */
export function xdplbForwardCase(mode: ForwardingMode, family: 4 | 6 = 4): ForwardCase {
  let dp: Dataplane | null = null;
  const v6 = family === 6;
  return {
    name: `xdplb-${mode}${v6 ? '6' : ''}`, label: `${v6 ? 'IPv6 ' : ''}xdplb ${mode}`, destination: 'vip', family,
    prepare(t) {
      dp = Dataplane.load({ hashSeed: BENCH_HASH_SEED });
      new Balancer(dp).applyState(v6
        ? benchState(mode, t.v6.vip, t.vipPort, 'udp', t.v6.backends, 0)
        : benchState(mode, t.vip, t.vipPort, 'udp', t.backends, 0));
    },
    setUp(t) {
      if (!dp) throw new Error('xdplb data plane not loaded');
      // The egress leg is attached too: only attached interfaces are redirect targets (tx_ports).
      return attachIn(dp, t.lb.netns, [t.lb.ingress, t.lb.egress]);
    },
    tearDown(t) { detachAll(dp, t.lb.netns); },
    dispose() { dp?.close(); dp = null; },
  };
}

/**
 * xdplb nat with its backends behind the lb's ingress (XDP_TX back out of it): the four
 * txBackends. `drained`: one of them drained after the table is installed, so a quarter of the
 * slots are moved (a transition, never swept here: the worst case, every packet of a moved slot
 * consults the flow cache and UDP misses go to the drained backend). Another `tableSize`
 * (xdplb-nat-tx-small): the same steady state over a table that stays in the CPU's caches.
 */
export function xdplbTxCase(drained: boolean, tableSize = BENCH_TABLE_SIZE): ForwardCase {
  let dp: Dataplane | null = null;
  const small = tableSize !== BENCH_TABLE_SIZE;
  return {
    name: drained ? 'xdplb-nat-tx-drain' : small ? 'xdplb-nat-tx-small' : 'xdplb-nat-tx',
    label: drained ? 'xdplb nat, XDP_TX, one of 4 backends drained (transition)'
      : small ? `xdplb nat, XDP_TX, Maglev table of ${tableSize} slots (cache-resident)` : 'xdplb nat, XDP_TX (backends behind the ingress)',
    destination: 'tx-vip',
    prepare(t) {
      dp = Dataplane.load({ hashSeed: BENCH_HASH_SEED });
      const lb = new Balancer(dp);
      const state = benchState('nat', t.txVip, t.vipPort, 'udp', t.txBackends, 0);
      state.services[0].tableSize = tableSize;
      lb.applyState(state);
      if (drained) {
        state.services[0].backends[state.services[0].backends.length - 1].draining = true;
        lb.applyState(state);
      }
    },
    setUp(t) {
      if (!dp) throw new Error('xdplb data plane not loaded');
      return attachIn(dp, t.lb.netns, [t.lb.ingress]);
    },
    tearDown(t) { detachAll(dp, t.lb.netns); },
    dispose() { dp?.close(); dp = null; },
  };
}

/** xdplb in `mode` between the HTTP client and the three backends (VIP:8080/tcp; family 6:
 * the IPv6 VIP and backend addresses, named xdplb-nat6 / xdplb-dsr6). */
export function xdplbHttpCase(mode: ForwardingMode, family: 4 | 6 = 4): HttpLbCase {
  let dp: Dataplane | null = null;
  const v6 = family === 6;
  return {
    name: `xdplb-${mode}${v6 ? '6' : ''}`, label: `${v6 ? 'IPv6 ' : ''}xdplb ${mode}`, family,
    async setUp(t) {
      dp = Dataplane.load({ hashSeed: BENCH_HASH_SEED });
      new Balancer(dp).applyState(v6
        ? benchState(mode, t.vip6, t.port, 'tcp', t.backends.map((b) => b.address6), t.port)
        : benchState(mode, t.vip, t.port, 'tcp', t.backends.map((b) => b.address), t.port));
      if (mode === 'dsr') addDsrVip(t, family);
      attachIn(dp, t.lb.netns, [t.lb.clientLeg, ...t.lb.backendLegs]);
      return [];
    },
    async tearDown(t) {
      try { detachAll(dp, t.lb.netns); } finally {
        dp?.close();
        dp = null;
        if (mode === 'dsr') removeDsrVip(t, family);
      }
    },
    url: (t) => (v6 ? `http://[${t.vip6}]:${t.port}/` : `http://${t.vip}:${t.port}/`),
  };
}
