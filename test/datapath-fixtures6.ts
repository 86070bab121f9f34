/**
 * The IPv6 rows of the data-plane fixture table (issue 15) and the IPv6 part of the fixture
 * state: services6, vips6, backends6, reverse6, reverse_frags6 beside the IPv4 fixture of
 * test/datapath-fixtures.ts, in the same namespace (its ports carry 2001:2:0:{a,b,c}::1/64).
 * Every expected frame is built from scratch with src/dataplane/packet.ts (fresh checksums over
 * the IPv6 pseudo-header), from the policy in /work/wt/notes/V6.md, never from the program.
 */
import {
  buildFrame6, buildIpv6, buildFrame, buildEthernet, ip6ToBuffer, macToBuffer, DEFAULT_DST_MAC, ETH_P_IPV6,
  IPPROTO_TCP, IPPROTO_UDP, IPPROTO_FRAGMENT,
  type Frame6Spec, type TcpSpec, type UdpSpec, type Ext6Spec, type Ipv6Spec, type EthernetSpec,
} from '../src/dataplane/packet';
import type { DatapathLab } from './datapath-lab';
import { BACKEND_ACTIVE, MODE_DSR, MODE_NAT, FlowCacheModel, type ModelState } from './refmodel';
import { TEST_FLOW_SETS } from './datapath-harness';
import { flowHash6, type ModelState6 } from './refmodel6';
import { MAC, NEIGHBOURS, PORTS, VIP, type Fixture } from './datapath-fixtures';

export const CLIENT6 = '2001:2:0:a::10';
export const CLIENT6_NO_NEIGH = '2001:2:0:a::11';
export const ROUTER6 = '2001:2:0:a::fe';

export const VIP6 = {
  web: '2001:2:100::1',      // tcp/80 nat (2 backends), udp/53 nat (port 5353), tcp/443 nat (v6 only)
  any: '2001:2:100::2',      // tcp every port nat; tcp/8443 nat (its own service)
  dsr: '2001:2:100::3',      // tcp/80 dsr
  tx: '2001:2:100::4',       // tcp/80 nat, backend behind the ingress port (XDP_TX)
  empty: '2001:2:100::5',    // tcp/80, empty table
  noNeigh: '2001:2:100::6',  // tcp/80, backend without neighbour entry
  noTx: '2001:2:100::7',     // tcp/80, backend behind a port not in tx_ports
  noRoute: '2001:2:100::8',  // tcp/80, backend without route
  inactive: '2001:2:100::9', // tcp/80, the only backend is not ACTIVE
  bare: '2001:2:100::a',     // a VIP without services
};

export interface ServiceDef6 { id: number; vip: string; port: number; proto: number; mode: number; table: number[] }
export interface BackendDef6 { id: number; ip: string; port: number; flags?: number; service: number }

/** Ids continue the IPv4 fixture's (one id space: V6.md). */
export const SERVICES6: ServiceDef6[] = [
  { id: 21, vip: VIP6.web, port: 80, proto: IPPROTO_TCP, mode: MODE_NAT, table: [21, 22, 21, 22, 21, 22, 21] },
  { id: 22, vip: VIP6.web, port: 53, proto: IPPROTO_UDP, mode: MODE_NAT, table: [23, 23, 23, 23, 23] },
  { id: 23, vip: VIP6.any, port: 0, proto: IPPROTO_TCP, mode: MODE_NAT, table: [24, 24, 24] },
  { id: 24, vip: VIP6.dsr, port: 80, proto: IPPROTO_TCP, mode: MODE_DSR, table: [25, 25, 25] },
  { id: 25, vip: VIP6.tx, port: 80, proto: IPPROTO_TCP, mode: MODE_NAT, table: [26, 26, 26] },
  { id: 26, vip: VIP6.empty, port: 80, proto: IPPROTO_TCP, mode: MODE_NAT, table: [0, 0, 0] },
  { id: 27, vip: VIP6.noNeigh, port: 80, proto: IPPROTO_TCP, mode: MODE_NAT, table: [27, 27, 27] },
  { id: 28, vip: VIP6.noTx, port: 80, proto: IPPROTO_TCP, mode: MODE_NAT, table: [28, 28, 28] },
  { id: 29, vip: VIP6.noRoute, port: 80, proto: IPPROTO_TCP, mode: MODE_NAT, table: [29, 29, 29] },
  { id: 30, vip: VIP6.inactive, port: 80, proto: IPPROTO_TCP, mode: MODE_NAT, table: [30, 30, 30] },
  { id: 31, vip: VIP6.web, port: 443, proto: IPPROTO_TCP, mode: MODE_NAT, table: [31, 31, 31] },
  { id: 32, vip: VIP6.any, port: 8443, proto: IPPROTO_TCP, mode: MODE_NAT, table: [32, 32, 32] },
];

export const BACKENDS6: BackendDef6[] = [
  { id: 21, ip: '2001:2:0:b::10', port: 0, service: 21 },
  { id: 22, ip: '2001:2:0:b::11', port: 0, service: 21 },
  { id: 23, ip: '2001:2:0:b::12', port: 5353, service: 22 },
  { id: 24, ip: '2001:2:0:b::13', port: 0, service: 23 },
  { id: 25, ip: '2001:2:0:b::14', port: 0, service: 24 },
  { id: 26, ip: '2001:2:0:a::50', port: 0, service: 25 },
  { id: 27, ip: '2001:2:0:b::99', port: 0, service: 27 },
  { id: 28, ip: '2001:2:0:c::10', port: 0, service: 28 },
  { id: 29, ip: '2001:2:50::1', port: 0, service: 29 },
  { id: 30, ip: '2001:2:0:b::15', port: 0, flags: 0, service: 30 },
  { id: 31, ip: '2001:2:0:b::12', port: 0, service: 31 },
  { id: 32, ip: '2001:2:0:b::10', port: 0, service: 32 },
  { id: 33, ip: '2001:2:0:b::13', port: 5353, service: 22 }, // ACTIVE, in no table (draining): service 22's previous backend
  { id: 34, ip: '2001:2:0:b::14', port: 0, service: 23 },    // ACTIVE, in no table (draining)
];

/** Moved slots of the IPv6 tables (epoch FIXTURE_EPOCH6): they matter only with the flow cache on. */
export const FIXTURE_EPOCH6 = 9;
const MARKS6: Record<number, Record<number, { prev: number; young: boolean }>> = {
  21: { 0: { prev: 22, young: false }, 1: { prev: 21, young: true }, 2: { prev: 30, young: true } },
  22: { 0: { prev: 33, young: true }, 1: { prev: 33, young: false } },
  23: { 0: { prev: 34, young: false } },
};

const REVERSE6 = [
  { ip: '2001:2:0:b::10', port: 80, proto: IPPROTO_TCP, vip: VIP6.web, vport: 80, serviceId: 21, backendId: 21 },
  { ip: '2001:2:0:b::11', port: 80, proto: IPPROTO_TCP, vip: VIP6.web, vport: 80, serviceId: 21, backendId: 22 },
  { ip: '2001:2:0:b::12', port: 5353, proto: IPPROTO_UDP, vip: VIP6.web, vport: 53, serviceId: 22, backendId: 23 },
  { ip: '2001:2:0:b::13', port: 0, proto: IPPROTO_TCP, vip: VIP6.any, vport: 0, serviceId: 23, backendId: 24 },
  { ip: '2001:2:0:b::12', port: 443, proto: IPPROTO_TCP, vip: VIP6.web, vport: 443, serviceId: 31, backendId: 31 },
  // 2001:2:0:b::10 also serves VIP6.any:8443: two VIPs, so no reverse_frags6 entry for it.
  { ip: '2001:2:0:b::10', port: 8443, proto: IPPROTO_TCP, vip: VIP6.any, vport: 8443, serviceId: 32, backendId: 32 },
];

/** reverse_frags6 as for IPv4: per backend address and protocol whose entries all name one VIP. */
function reverseFragsOf6(reverse: typeof REVERSE6): typeof REVERSE6 {
  const groups = new Map<string, typeof REVERSE6>();
  for (const r of reverse) groups.set(`${r.ip}/${r.proto}`, [...(groups.get(`${r.ip}/${r.proto}`) ?? []), r]);
  const out: typeof REVERSE6 = [];
  for (const g of groups.values()) {
    if (new Set(g.map((r) => r.vip)).size !== 1) continue;
    out.push({ ...[...g].sort((a, b) => a.serviceId - b.serviceId)[0], port: 0, vport: 0 });
  }
  return out;
}

/** The IPv6 half of the fixture state, added to `state` (its maglev gets the v6 tables). */
export function withV6(state: ModelState, lab: DatapathLab): ModelState {
  const b6 = ip6ToBuffer;
  const v6: ModelState6 = {
    services: SERVICES6.map((s) => ({ id: s.id, vip: b6(s.vip), port: s.port, proto: s.proto, tableSize: s.table.length, mode: s.mode })),
    vips: new Set(Object.values(VIP6).map((v) => b6(v).toString('hex'))),
    backends: new Map(BACKENDS6.map((b) => [b.id, { id: b.id, ip: b6(b.ip), port: b.port, flags: b.flags ?? BACKEND_ACTIVE, serviceId: b.service }])),
    reverse: REVERSE6.map((r) => ({ ...r, ip: b6(r.ip), vip: b6(r.vip) })),
    reverseFrags: reverseFragsOf6(REVERSE6).map((r) => ({ ...r, ip: b6(r.ip), vip: b6(r.vip) })),
    fib: lab.fib6,
    flows: new FlowCacheModel(TEST_FLOW_SETS),
  };
  const maglev = new Map(state.maglev);
  for (const s of SERVICES6) maglev.set(s.id, [...s.table]);
  const marks = new Map(state.marks ?? []);
  for (const [id, slots] of Object.entries(MARKS6)) {
    marks.set(Number(id), new Map(Object.entries(slots).map(([slot, m]) => [Number(slot), { prev: m.prev, epoch: FIXTURE_EPOCH6, seen: false, young: m.young }])));
  }
  return { ...state, maglev, marks, v6 };
}

/** The backend Maglev gives an IPv6 flow of service `serviceId` (seed 0). */
export function predictBackend6(serviceId: number, saddr: string, daddr: string, sport: number, dport: number, proto: number, seed = 0): BackendDef6 {
  const svc = SERVICES6.find((s) => s.id === serviceId)!;
  const slot = flowHash6(ip6ToBuffer(saddr), ip6ToBuffer(daddr), sport, dport, proto, seed) % svc.table.length;
  return BACKENDS6.find((b) => b.id === svc.table[slot])!;
}

const backendMac = (ip: string): string => NEIGHBOURS.find((n) => n.ip === ip)!.mac;
const portMac = (suffix: string): string => PORTS.find((p) => p.suffix === suffix)!.mac;
const portOf = (ip: string): string => NEIGHBOURS.find((n) => n.ip === ip)!.port;

/**
 * An IPv6 datagram (no Ethernet header) cut into fragments of the given payload sizes (multiples
 * of 8 but the last): a fragment header (id) after the fixed header, the rest the fragmentable part.
 */
export function fragmentDatagram6(datagram: Buffer, sizes: number[], id = 0x6006): Buffer[] {
  const rest = datagram.subarray(40);
  const out: Buffer[] = [];
  let at = 0;
  for (let i = 0; at < rest.length; i++) {
    const size = i < sizes.length ? Math.min(sizes[i], rest.length - at) : rest.length - at;
    const last = at + size >= rest.length;
    const hdr = Buffer.from(datagram.subarray(0, 40));
    hdr[6] = IPPROTO_FRAGMENT;
    hdr.writeUInt16BE(8 + size, 4);
    const fh = Buffer.alloc(8);
    fh[0] = datagram[6];
    fh.writeUInt16BE(((at / 8) << 3) | (last ? 0 : 1), 2);
    fh.writeUInt32BE(id, 4);
    out.push(Buffer.concat([hdr, fh, rest.subarray(at, at + size)]));
    at += size;
  }
  return out;
}

interface X6 { ip?: Partial<Ipv6Spec>; ext?: Ext6Spec[]; eth?: EthernetSpec; trailer?: Buffer; truncate?: number }
const PAYLOAD = Buffer.from('GET / HTTP/1.1\r\n\r\n');

function tcp6(src: string, dst: string, tcp: TcpSpec, x: X6 = {}): Buffer {
  return buildFrame6({ eth: x.eth, ip: { src, dst, ...x.ip }, ext: x.ext, tcp, trailer: x.trailer, truncate: x.truncate });
}
function udp6(src: string, dst: string, udp: UdpSpec, x: X6 = {}): Buffer {
  return buildFrame6({ eth: x.eth, ip: { src, dst, ...x.ip }, ext: x.ext, udp, trailer: x.trailer, truncate: x.truncate });
}
function icmp6(src: string, dst: string, type: number, x: X6 & { code?: number; rest?: number; payload?: Buffer; checksum?: number } = {}): Buffer {
  const spec: Frame6Spec = { eth: x.eth, ip: { src, dst, ...x.ip }, ext: x.ext, icmp6: { type, code: x.code, rest: x.rest, payload: x.payload, checksum: x.checksum }, trailer: x.trailer, truncate: x.truncate };
  return buildFrame6(spec);
}
/** A client -> VIP TCP segment as it leaves after NAT66 to `b`: hop limit - 1, next-hop MACs. */
function natOut6(src: string, b: BackendDef6, tcp: TcpSpec, x: X6 = {}): Buffer {
  const hop = (x.ip?.hopLimit ?? 64) - 1;
  return tcp6(src, b.ip, { ...tcp, dport: b.port || tcp.dport }, { ...x, eth: { dst: backendMac(b.ip), src: portMac(portOf(b.ip)) }, ip: { ...x.ip, hopLimit: hop } });
}
const toClient = () => ({ dst: MAC.client, src: portMac('a') });

/** The IPv6 rows (frames to the ingress port's MAC unless a row says otherwise). */
export function fixtures6(): Fixture[] {
  const F: Fixture[] = [];
  const web = (sport: number) => predictBackend6(21, CLIENT6, VIP6.web, sport, 80, IPPROTO_TCP);
  const tcpIn = (sport: number, x: X6 = {}) => tcp6(CLIENT6, VIP6.web, { sport, dport: 80, payload: PAYLOAD }, x);
  const fwd = (name: string, sport: number, x: X6 = {}, more: Partial<Fixture> = {}) => {
    const b = web(sport);
    F.push({ name, ingress: 'a', input: tcpIn(sport, x), action: 'redirect', reason: 'forwarded', serviceId: 21, backendId: b.id, output: natOut6(CLIENT6, b, { sport, dport: 80, payload: PAYLOAD }, x), ...more });
  };
  const drop = (name: string, input: Buffer, reason: Fixture['reason'], more: Partial<Fixture> = {}) => F.push({ name, ingress: 'a', input, action: 'drop', reason, output: 'unchanged', ...more });
  const pass = (name: string, input: Buffer, reason: Fixture['reason'], more: Partial<Fixture> = {}) => F.push({ name, ingress: 'a', input, action: 'pass', reason, output: 'unchanged', ...more });

  // -- not ours
  pass('v6: 802.1Q-tagged IPv6 frame to a VIP passes (vlan)', tcpIn(100, { eth: { vlan: 10, etherType: ETH_P_IPV6 } }), 'vlan');
  for (const [type, label] of [[133, 'router solicitation'], [134, 'router advertisement'], [135, 'neighbour solicitation'], [136, 'neighbour advertisement'], [137, 'redirect']] as const) {
    pass(`v6: ICMPv6 ${label} (${type}) addressed to a VIP passes untouched (not_vip)`, icmp6(ROUTER6, VIP6.web, type, { ip: { hopLimit: 255 }, payload: ip6ToBuffer(VIP6.web) }), 'not_vip');
  }
  pass('v6: neighbour solicitation to a solicited-node multicast MAC passes unprocessed (other_mac)', icmp6(CLIENT6, 'ff02::1:ff00:1', 135, { eth: { dst: '33:33:ff:00:00:01' }, ip: { hopLimit: 255 }, payload: ip6ToBuffer('2001:2:0:a::1') }), 'other_mac');
  pass('v6: UDP to a multicast group on our MAC passes (not_vip)', udp6(CLIENT6, 'ff0e::1:3', { sport: 106, dport: 5000 }), 'not_vip');
  pass('v6: echo request to the host\'s own address passes (not_vip)', icmp6(CLIENT6, '2001:2:0:a::1', 128, { rest: 0x10001, payload: Buffer.from('ping') }), 'not_vip');
  pass('v6: link-local TCP passes (not_vip)', tcp6('fe80::10', 'fe80::1', { sport: 101, dport: 80 }), 'not_vip');
  pass('v6: TCP to the v4-mapped form of a v4 VIP (::ffff:198.18.100.1) passes (not_vip)', tcp6(CLIENT6, `::ffff:${VIP.web}`, { sport: 102, dport: 80 }), 'not_vip');
  pass('v6: ESP to a non-VIP passes (not_vip, the chain is not ours to judge)', buildFrame6({ ip: { src: CLIENT6, dst: '2001:2:0:b::10', proto: 50 }, payload: Buffer.alloc(24, 7) }), 'not_vip');
  drop('v6: a truncated extension header to a non-VIP is malformed', tcp6(CLIENT6, '2001:2:0:b::10', { sport: 107, dport: 80 }, { ext: [{ type: 60, lengthByte: 9 }] }), 'malformed');
  pass('v6: five extension headers to a non-VIP pass (not_vip)', tcp6(CLIENT6, '2001:2:0:b::10', { sport: 103, dport: 80 }, { ext: [{ type: 0 }, { type: 60 }, { type: 60 }, { type: 60 }, { type: 60 }] }), 'not_vip');
  pass('v6: VIP TCP to another MAC passes unprocessed (other_mac)', tcpIn(104, { eth: { dst: '02:00:00:0b:00:99' } }), 'other_mac');
  drop('v4: TCP to a v4 VIP on a port only its v6 sibling serves (443): no_service', buildFrame({ ip: { src: '198.18.0.10', dst: VIP.web, proto: IPPROTO_TCP }, tcp: { sport: 105, dport: 443 } }), 'no_service');

  // -- malformed
  const full = tcpIn(200);
  drop('v6: fixed header cut at 39 bytes is malformed', full.subarray(0, 14 + 39), 'malformed');
  drop('v6: version 4 in an IPv6 EtherType frame is malformed', tcpIn(201, { ip: { version: 4 } }), 'malformed');
  drop('v6: payload length beyond the frame (a lie) is malformed', tcpIn(202, { ip: { payloadLength: 20 + PAYLOAD.length + 1 } }), 'malformed');
  {
    // Hop-by-hop with a jumbo payload option (RFC 2675) and payload length 0.
    const jumbo = Buffer.from([0xc2, 4, 0, 0, 0x01, 0x00]);
    drop('v6: jumbogram (payload length 0, jumbo option) is malformed', tcpIn(203, { ip: { payloadLength: 0 }, ext: [{ type: 0, body: jumbo }] }), 'malformed');
    drop('v6: payload length 0 to a non-VIP is malformed too', tcp6(CLIENT6, '2001:2:0:b::77', { sport: 204, dport: 80 }, { ip: { payloadLength: 0 } }), 'malformed');
  }
  drop('v6: destination options header longer than the payload is malformed', tcpIn(205, { ext: [{ type: 60, lengthByte: 8 }] }), 'malformed');
  drop('v6: VIP TCP header cut by payload length (trailer follows) is malformed', tcp6(CLIENT6, VIP6.web, { sport: 206, dport: 80 }, { ip: { payloadLength: 12 } }), 'malformed');
  drop('v6: VIP ICMPv6 header cut (4 of 8 bytes) is malformed', icmp6(CLIENT6, VIP6.web, 128, { ip: { payloadLength: 4 }, truncate: 14 + 40 + 4 }), 'malformed');

  // -- NAT66 forward
  for (const sp of [300, 301, 302, 303]) fwd(`v6: NAT TCP flow :${sp} goes to the backend jhash(fold6) + Maglev predicts (REDIRECT)`, sp);
  fwd('v6: Ethernet padding after payload length is kept, checksums over payload length only', 304, { trailer: Buffer.from('ethernet-pad') });
  fwd('v6: hop limit 2 is forwarded with hop limit 1', 305, { ip: { hopLimit: 2 } });
  fwd('v6: traffic class and flow label are kept', 306, { ip: { trafficClass: 0xb8, flowLabel: 0xabcde } });
  fwd('v6: hop-by-hop options header is kept; L4 found after it', 307, { ext: [{ type: 0, body: Buffer.from([5, 2, 0, 0]) }] });
  fwd('v6: dest options + routing (segments left 0) + dest options: all kept', 308, { ext: [{ type: 60 }, { type: 43, segmentsLeft: 0 }, { type: 60, body: Buffer.alloc(12) }] });
  fwd('v6: four extension headers (the most walked) are kept', 309, { ext: [{ type: 0 }, { type: 60 }, { type: 43 }, { type: 60 }] });
  fwd('v6: authentication header (AH) is walked and kept', 310, { ext: [{ type: 51, body: Buffer.alloc(12, 0x5a) }] });
  {
    const b = BACKENDS6.find((x) => x.id === 23)!;
    F.push({ name: 'v6: NAT UDP with backend port translation 53 -> 5353', ingress: 'a', input: udp6(CLIENT6, VIP6.web, { sport: 311, dport: 53, payload: Buffer.from('query') }),
      action: 'redirect', reason: 'forwarded', serviceId: 22, backendId: 23,
      output: udp6(CLIENT6, b.ip, { sport: 311, dport: 5353, payload: Buffer.from('query') }, { eth: { dst: MAC.b12, src: portMac('b') }, ip: { hopLimit: 63 } }) });
    drop('v6: NAT UDP with checksum 0 (forbidden over IPv6) is dropped (bad_checksum)', udp6(CLIENT6, VIP6.web, { sport: 312, dport: 53, payload: Buffer.from('query'), checksum: 0 }), 'bad_checksum');
    const b4 = BACKENDS6.find((x) => x.id === 24)!;
    F.push({ name: 'v6: every-port service takes any port, port kept', ingress: 'a', input: tcp6(CLIENT6, VIP6.any, { sport: 313, dport: 12345 }),
      action: 'redirect', reason: 'forwarded', serviceId: 23, backendId: 24, output: natOut6(CLIENT6, b4, { sport: 313, dport: 12345 }) });
    const b31 = BACKENDS6.find((x) => x.id === 31)!;
    F.push({ name: 'v6: tcp/443 (a port only the v6 VIP serves) goes to its backend', ingress: 'a', input: tcp6(CLIENT6, VIP6.web, { sport: 314, dport: 443 }),
      action: 'redirect', reason: 'forwarded', serviceId: 31, backendId: 31, output: natOut6(CLIENT6, b31, { sport: 314, dport: 443 }) });
  }

  // -- hop limit expiry: ICMPv6 time exceeded from the VIP
  {
    // The quote: the packet as received (its payload length; no Ethernet padding), at most 1232 bytes.
    const timeExceeded = (input: Buffer): Buffer => buildFrame6({ eth: toClient(), ip: { src: VIP6.web, dst: CLIENT6, hopLimit: 64 },
      icmp6: { type: 3, code: 0, rest: 0, payload: input.subarray(14, Math.min(14 + 40 + input.readUInt16BE(18), 14 + 1232)) } });
    for (const hop of [0, 1]) {
      const sp = 400 + hop; const b = web(sp);
      const input = tcpIn(sp, { eth: { src: MAC.client }, ip: { hopLimit: hop } });
      F.push({ name: `v6: NAT TCP with hop limit ${hop} is answered with ICMPv6 time exceeded from the VIP (ttl, TX)`, ingress: 'a', input, action: 'tx', reason: 'ttl', serviceId: 21, backendId: b.id, output: timeExceeded(input) });
    }
    const sp = 402; const b = web(sp);
    const withExt = tcpIn(sp, { eth: { src: MAC.client }, ip: { hopLimit: 1, trafficClass: 0x12 }, ext: [{ type: 60 }], trailer: Buffer.alloc(6) });
    F.push({ name: 'v6: hop limit 1 with a dest options header, traffic class and padding: the whole packet quoted, padding not', ingress: 'a', input: withExt, action: 'tx', reason: 'ttl', serviceId: 21, backendId: b.id, output: timeExceeded(withExt) });
    const sp2 = 404; const bBig = web(sp2);
    const big = tcp6(CLIENT6, VIP6.web, { sport: sp2, dport: 80, payload: Buffer.alloc(1400, 0x61) }, { eth: { src: MAC.client }, ip: { hopLimit: 1 } });
    F.push({ name: 'v6: hop limit 1 on a 1460-byte packet: the quote is cut at 1232 bytes (the reply fits 1280)', ingress: 'a', input: big, action: 'tx', reason: 'ttl', serviceId: 21, backendId: bBig.id, output: timeExceeded(big) });
    const udpIn = udp6(CLIENT6, VIP6.web, { sport: 403, dport: 53, payload: Buffer.from('q') }, { eth: { src: MAC.client }, ip: { hopLimit: 1 } });
    F.push({ name: 'v6: NAT UDP with hop limit 1 is answered with time exceeded (ttl, TX)', ingress: 'a', input: udpIn, action: 'tx', reason: 'ttl', serviceId: 22, backendId: 23, output: timeExceeded(udpIn) });
  }

  // -- extension header refusals (to a VIP)
  drop('v6: five extension headers to a VIP are refused (ext_header)', tcpIn(500, { ext: [{ type: 0 }, { type: 60 }, { type: 60 }, { type: 60 }, { type: 60 }] }), 'ext_header');
  drop('v6: routing header with segments left 1 is refused (ext_header: we are not its last hop)', tcpIn(501, { ext: [{ type: 43, segmentsLeft: 1, body: Buffer.concat([Buffer.alloc(4), ip6ToBuffer('2001:2:0:b::10')]) }] }), 'ext_header');
  drop('v6: hop-by-hop after another header is refused (ext_header)', tcpIn(502, { ext: [{ type: 60 }, { type: 0 }] }), 'ext_header');
  drop('v6: ESP to a VIP is refused (ext_header)', buildFrame6({ ip: { src: CLIENT6, dst: VIP6.web, proto: 50 }, payload: Buffer.alloc(24, 7) }), 'ext_header');
  drop('v6: no next header (59) to a VIP is refused (ext_header)', buildFrame6({ ip: { src: CLIENT6, dst: VIP6.web, proto: 59 }, ext: [{ type: 60 }] }), 'ext_header');
  drop('v6: GRE (an upper layer we do not balance) to a VIP is refused (ext_header)', buildFrame6({ ip: { src: CLIENT6, dst: VIP6.web, proto: 47 }, payload: Buffer.alloc(8) }), 'ext_header');

  // -- fragments to a VIP
  {
    const datagram = buildIpv6({ ip: { src: CLIENT6, dst: VIP6.web }, tcp: { sport: 600, dport: 80, payload: Buffer.alloc(64, 1) } });
    const frs = fragmentDatagram6(datagram, [40]);
    drop('v6: first fragment to a VIP is dropped (fragment, policy drop)', buildEthernet({ etherType: ETH_P_IPV6 }, frs[0]), 'fragment', { settings: { fragPolicy: 0 } });
    pass('v6: first fragment to a VIP passes (fragment, policy pass)', buildEthernet({ etherType: ETH_P_IPV6 }, frs[0]), 'fragment', { settings: { fragPolicy: 1 } });
    drop('v6: later fragment to a VIP is dropped (fragment, policy drop)', buildEthernet({ etherType: ETH_P_IPV6 }, frs[1]), 'fragment', { settings: { fragPolicy: 0 } });
    fwd('v6: atomic fragment (offset 0, M 0; RFC 6946) to a VIP is a whole packet: forwarded, fragment header kept', 601, { ext: [{ type: 44 }] });
    pass('v6: later fragment to a VIP passes (fragment, policy pass)', buildEthernet({ etherType: ETH_P_IPV6 }, frs[1]), 'fragment', { settings: { fragPolicy: 1 } });
    // A datagram whose fragmentable part starts with a destination options header: later
    // fragments carry data after the fragment header (next header 60), not a header to walk.
    const withDo = fragmentDatagram6(buildIpv6({ ip: { src: CLIENT6, dst: VIP6.web }, ext: [{ type: 60 }], tcp: { sport: 602, dport: 80, payload: Buffer.alloc(64, 0x22) } }), [48]);
    pass('v6: later fragment whose fragmentable part began with dest options passes (fragment, policy pass; the data is not walked)', buildEthernet({ etherType: ETH_P_IPV6 }, withDo[1]), 'fragment', { settings: { fragPolicy: 1 } });
  }

  // -- transitions (flow cache on, flows6 empty at the start of each row): moved and unmoved slots
  {
    const on = { flowCache: true };
    const portIn = (id: number, daddr: string, dport: number, proto: number, slot: number, from: number): number => {
      const svc = SERVICES6.find((x) => x.id === id)!;
      let sp = from;
      while (flowHash6(ip6ToBuffer(CLIENT6), ip6ToBuffer(daddr), sp, dport, proto, 0) % svc.table.length !== slot) sp++;
      return sp;
    };
    const be = (id: number) => BACKENDS6.find((x) => x.id === id)!;
    const webRow = (name: string, slot: number, flags: number, backendId: number) => {
      const sp = portIn(21, VIP6.web, 80, IPPROTO_TCP, slot, 1500);
      F.push({ name, ingress: 'a', settings: on, input: tcp6(CLIENT6, VIP6.web, { sport: sp, dport: 80, flags, payload: PAYLOAD }),
        action: 'redirect', reason: 'forwarded', serviceId: 21, backendId, output: natOut6(CLIENT6, be(backendId), { sport: sp, dport: 80, flags, payload: PAYLOAD }) });
    };
    // Service 21 (table 21,22,21,22,21,22,21): slot 0 moved 22 -> 21, slot 2 moved from 30 (not usable) -> 21.
    webRow('v6 transition: unmoved slot, an established segment goes to the slot\'s backend', 3, 0x10, 22);
    webRow('v6 transition: moved slot, an established segment missing in flows6 goes to the previous backend', 0, 0x10, 22);
    webRow('v6 transition: moved slot, a SYN takes the current backend', 0, 0x02, 21);
    webRow('v6 transition: moved slot whose previous backend is not usable: the current backend', 2, 0x10, 21);
    const udpRow = (name: string, slot: number, backendId: number) => {
      const sp = portIn(22, VIP6.web, 53, IPPROTO_UDP, slot, 1600);
      F.push({ name, ingress: 'a', settings: on, input: udp6(CLIENT6, VIP6.web, { sport: sp, dport: 53, payload: Buffer.from('q6') }),
        action: 'redirect', reason: 'forwarded', serviceId: 22, backendId,
        output: udp6(CLIENT6, be(backendId).ip, { sport: sp, dport: 5353, payload: Buffer.from('q6') }, { eth: { dst: backendMac(be(backendId).ip), src: portMac('b') }, ip: { hopLimit: 63 } }) });
    };
    udpRow('v6 transition: UDP, moved slot in its young phase: a miss goes to the previous backend', 0, 33);
    udpRow('v6 transition: UDP, moved slot past its young phase: a miss is a new flow (current backend)', 1, 23);
    const sp = portIn(23, VIP6.any, 2222, IPPROTO_TCP, 0, 1700);
    F.push({ name: 'v6 transition: every-port service, moved slot: an established segment goes to the draining previous backend', ingress: 'a', settings: on,
      input: tcp6(CLIENT6, VIP6.any, { sport: sp, dport: 2222, flags: 0x10 }), action: 'redirect', reason: 'forwarded', serviceId: 23, backendId: 34,
      output: natOut6(CLIENT6, be(34), { sport: sp, dport: 2222, flags: 0x10 }) });
  }

  // -- classification misses and forwarding failures
  drop('v6: VIP, wrong port: no_service', tcp6(CLIENT6, VIP6.web, { sport: 700, dport: 81 }), 'no_service');
  drop('v6: VIP without any service: no_service', tcp6(CLIENT6, VIP6.bare, { sport: 701, dport: 80 }), 'no_service');
  drop('v6: service whose table is empty: no_backend', tcp6(CLIENT6, VIP6.empty, { sport: 702, dport: 80 }), 'no_backend', { serviceId: 26 });
  drop('v6: service whose only backend is inactive: no_backend', tcp6(CLIENT6, VIP6.inactive, { sport: 703, dport: 80 }), 'no_backend', { serviceId: 30 });
  {
    const be = (id: number) => BACKENDS6.find((x) => x.id === id)!;
    F.push({ name: 'v6: backend without neighbour: the NAT-ed packet goes to the kernel (no_neigh)', ingress: 'a', input: tcp6(CLIENT6, VIP6.noNeigh, { sport: 704, dport: 80 }),
      action: 'pass', reason: 'no_neigh', serviceId: 27, backendId: 27, output: tcp6(CLIENT6, be(27).ip, { sport: 704, dport: 80 }, { ip: { hopLimit: 63 } }) });
    F.push({ name: 'v6: egress port not in tx_ports: PASS (no_tx_port)', ingress: 'a', input: tcp6(CLIENT6, VIP6.noTx, { sport: 705, dport: 80 }),
      action: 'pass', reason: 'no_tx_port', serviceId: 28, backendId: 28, output: tcp6(CLIENT6, be(28).ip, { sport: 705, dport: 80 }, { eth: { dst: MAC.c10, src: portMac('c') }, ip: { hopLimit: 63 } }) });
    F.push({ name: 'v6: backend without route: PASS (no_route)', ingress: 'a', input: tcp6(CLIENT6, VIP6.noRoute, { sport: 706, dport: 80 }),
      action: 'pass', reason: 'no_route', serviceId: 29, backendId: 29, output: tcp6(CLIENT6, be(29).ip, { sport: 706, dport: 80 }, { ip: { hopLimit: 63 } }) });
    F.push({ name: 'v6: backend behind the ingress port: XDP_TX', ingress: 'a', input: tcp6(CLIENT6, VIP6.tx, { sport: 707, dport: 80 }),
      action: 'tx', reason: 'forwarded', serviceId: 25, backendId: 26, output: natOut6(CLIENT6, be(26), { sport: 707, dport: 80 }) });
    F.push({ name: 'v6: DSR: destination MAC only (addresses, hop limit, checksum untouched)', ingress: 'a', input: tcp6(CLIENT6, VIP6.dsr, { sport: 708, dport: 80, payload: PAYLOAD }),
      action: 'redirect', reason: 'forwarded', serviceId: 24, backendId: 25, output: tcp6(CLIENT6, VIP6.dsr, { sport: 708, dport: 80, payload: PAYLOAD }, { eth: { dst: MAC.b14, src: portMac('b') } }) });
    F.push({ name: 'v6: DSR with hop limit 1 is still forwarded (hop limit untouched)', ingress: 'a', input: tcp6(CLIENT6, VIP6.dsr, { sport: 709, dport: 80 }, { ip: { hopLimit: 1 } }),
      action: 'redirect', reason: 'forwarded', serviceId: 24, backendId: 25, output: tcp6(CLIENT6, VIP6.dsr, { sport: 709, dport: 80 }, { eth: { dst: MAC.b14, src: portMac('b') }, ip: { hopLimit: 1 } }) });
  }

  // -- martian sources toward a VIP
  for (const src of ['::', '::1', 'ff02::1', 'fe80::10', '::ffff:198.18.0.10', VIP6.web]) {
    drop(`v6: VIP TCP from martian source ${src} is dropped (martian)`, tcp6(src, VIP6.web, { sport: 800, dport: 80 }), 'martian');
  }
  drop('v6: martian source is dropped before the port-0 service (martian)', tcp6('fe80::1', VIP6.any, { sport: 801, dport: 9 }), 'martian');

  // -- reverse NAT66
  {
    const ttlIn = tcp6('2001:2:0:b::10', CLIENT6, { sport: 80, dport: 901 }, { ip: { hopLimit: 1 } });
    F.push({ name: 'v6: reverse NAT (exact port): source becomes the VIP, REDIRECT to the client port', ingress: 'b', input: tcp6('2001:2:0:b::10', CLIENT6, { sport: 80, dport: 900, payload: PAYLOAD }),
      action: 'redirect', reason: 'reversed', serviceId: 21, backendId: 21, output: tcp6(VIP6.web, CLIENT6, { sport: 80, dport: 900, payload: PAYLOAD }, { eth: toClient(), ip: { hopLimit: 63 } }) });
    F.push({ name: 'v6: reverse NAT UDP with port translation 5353 -> 53', ingress: 'b', input: udp6('2001:2:0:b::12', CLIENT6, { sport: 5353, dport: 902, payload: Buffer.from('answer') }),
      action: 'redirect', reason: 'reversed', serviceId: 22, backendId: 23, output: udp6(VIP6.web, CLIENT6, { sport: 53, dport: 902, payload: Buffer.from('answer') }, { eth: toClient(), ip: { hopLimit: 63 } }) });
    F.push({ name: 'v6: reverse NAT wildcard entry (any source port, port kept)', ingress: 'b', input: tcp6('2001:2:0:b::13', CLIENT6, { sport: 4444, dport: 903 }),
      action: 'redirect', reason: 'reversed', serviceId: 23, backendId: 24, output: tcp6(VIP6.any, CLIENT6, { sport: 4444, dport: 903 }, { eth: toClient(), ip: { hopLimit: 63 } }) });
    F.push({ name: 'v6: reverse NAT with hop limit 1 passes (ttl)', ingress: 'b', input: ttlIn, action: 'pass', reason: 'ttl', serviceId: 21, backendId: 21, output: 'unchanged' });
    F.push({ name: 'v6: reverse NAT to a client without neighbour: rewritten packet to the kernel (no_neigh)', ingress: 'b', input: tcp6('2001:2:0:b::10', CLIENT6_NO_NEIGH, { sport: 80, dport: 904 }),
      action: 'pass', reason: 'no_neigh', serviceId: 21, backendId: 21, output: tcp6(VIP6.web, CLIENT6_NO_NEIGH, { sport: 80, dport: 904 }, { ip: { hopLimit: 63 } }) });
    const ext: Ext6Spec[] = [{ type: 60, body: Buffer.from([1, 2, 0, 0]) }];
    F.push({ name: 'v6: reverse NAT keeps a dest options header and Ethernet padding', ingress: 'b', input: tcp6('2001:2:0:b::11', CLIENT6, { sport: 80, dport: 905 }, { ext, trailer: Buffer.alloc(10) }),
      action: 'redirect', reason: 'reversed', serviceId: 21, backendId: 22, output: tcp6(VIP6.web, CLIENT6, { sport: 80, dport: 905 }, { ext, trailer: Buffer.alloc(10), eth: toClient(), ip: { hopLimit: 63 } }) });
    F.push({ name: 'v6: backend reply to the balancer host itself passes untouched (not_vip)', ingress: 'b', input: tcp6('2001:2:0:b::10', '2001:2:0:b::1', { sport: 80, dport: 40000 }), action: 'pass', reason: 'not_vip', output: 'unchanged' });
    F.push({ name: 'v6: backend source port without reverse entry passes (not_vip)', ingress: 'b', input: tcp6('2001:2:0:b::10', CLIENT6, { sport: 81, dport: 906 }), action: 'pass', reason: 'not_vip', output: 'unchanged' });
    F.push({ name: 'v6: reply toward a link-local client is dropped (martian)', ingress: 'b', input: tcp6('2001:2:0:b::10', 'fe80::10', { sport: 80, dport: 907 }), action: 'drop', reason: 'martian', output: 'unchanged' });
    F.push({ name: 'v6: reply toward a v4-mapped client is dropped (martian)', ingress: 'b', input: tcp6('2001:2:0:b::10', '::ffff:198.18.0.10', { sport: 80, dport: 908 }), action: 'drop', reason: 'martian', output: 'unchanged' });
    F.push({ name: 'v6: UDP reply with checksum 0 is dropped (bad_checksum)', ingress: 'b', input: udp6('2001:2:0:b::12', CLIENT6, { sport: 5353, dport: 909, payload: Buffer.from('x'), checksum: 0 }),
      action: 'drop', reason: 'bad_checksum', output: 'unchanged' });
  }

  // -- NAT66 reply fragments
  {
    const data = Buffer.alloc(100); for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
    const udp = (src: string, sport: number, hop: number) => buildIpv6({ ip: { src, dst: CLIENT6, hopLimit: hop }, udp: { sport, dport: 1000, payload: data } });
    const inFr = fragmentDatagram6(udp('2001:2:0:b::12', 5353, 64), [32, 48]);
    const outFr = fragmentDatagram6(udp(VIP6.web, 53, 63), [32, 48]);
    ['first', 'middle', 'last'].forEach((label, i) => {
      F.push({ name: `v6: NAT UDP reply, ${label} fragment: source${i === 0 ? ', port and UDP checksum (of the whole datagram)' : ''} translated`, ingress: 'b',
        input: buildEthernet({ etherType: ETH_P_IPV6 }, inFr[i]), action: 'redirect', reason: 'reversed', serviceId: 22, backendId: 23, output: buildEthernet({ ...toClient(), etherType: ETH_P_IPV6 }, outFr[i]) });
    });
    const two = fragmentDatagram6(buildIpv6({ ip: { src: '2001:2:0:b::10', dst: CLIENT6 }, tcp: { sport: 80, dport: 1001, payload: data } }), [40]);
    F.push({ name: 'v6: later reply fragment of a backend serving two VIPs passes untranslated (not_vip)', ingress: 'b', input: buildEthernet({ etherType: ETH_P_IPV6 }, two[1]), action: 'pass', reason: 'not_vip', output: 'unchanged' });
  }

  // -- ICMPv6 to a VIP
  {
    const echoIn = (payload: Buffer, x: { checksum?: number; trailer?: Buffer } = {}) => icmp6(CLIENT6, VIP6.web, 128, { eth: { src: MAC.client }, ip: { hopLimit: 50 }, rest: 0x77770001, payload, checksum: x.checksum, trailer: x.trailer });
    const echoOut = (payload: Buffer, trailer?: Buffer) => icmp6(VIP6.web, CLIENT6, 129, { eth: toClient(), ip: { hopLimit: 64 }, rest: 0x77770001, payload, trailer });
    F.push({ name: 'v6: ICMPv6 echo request to a VIP is answered in place (icmp_echo, TX)', ingress: 'a', input: echoIn(Buffer.from('ping6-payload')), action: 'tx', reason: 'icmp_echo', output: echoOut(Buffer.from('ping6-payload')) });
    F.push({ name: 'v6: ICMPv6 echo with an odd payload and Ethernet padding: checksum over the message only, answered', ingress: 'a', input: echoIn(Buffer.from('odd'), { trailer: Buffer.alloc(5, 0xee) }), action: 'tx', reason: 'icmp_echo', output: echoOut(Buffer.from('odd'), Buffer.alloc(5, 0xee)) });
    drop('v6: ICMPv6 echo with a wrong checksum (pseudo-header) is dropped (bad_checksum)', echoIn(Buffer.from('ping'), { checksum: 0xbeef }), 'bad_checksum');
    drop('v6: ICMPv6 echo reply (129) to a VIP is dropped (icmp_unsupported)', icmp6(CLIENT6, VIP6.web, 129), 'icmp_unsupported');
    drop('v6: MLD listener query (130) to a VIP is dropped (icmp_unsupported)', icmp6(CLIENT6, VIP6.web, 130, { payload: Buffer.alloc(16) }), 'icmp_unsupported');
  }

  // -- ICMPv6 errors quoting VIP flows
  {
    const err = (type: number, code: number, quoted: Buffer, dst: string, hop = 64, eth?: EthernetSpec, rest = type === 2 ? 1280 : 0) =>
      icmp6(ROUTER6, dst, type, { code, rest, payload: quoted, ip: { hopLimit: hop }, eth });
    const toB = (ip: string) => ({ dst: backendMac(ip), src: portMac('b') });
    const qu = buildIpv6({ ip: { src: VIP6.web, dst: CLIENT6, hopLimit: 63 }, udp: { sport: 53, dport: 1100, payload: Buffer.from('answer') } });
    const quOut = buildIpv6({ ip: { src: '2001:2:0:b::12', dst: CLIENT6, hopLimit: 63 }, udp: { sport: 5353, dport: 1100, payload: Buffer.from('answer') } });
    F.push({ name: 'v6: packet too big quoting a NAT UDP reply goes to its backend (outer dst, quoted src and port, both checksums)', ingress: 'a',
      input: err(2, 0, qu, VIP6.web), action: 'redirect', reason: 'icmp_error', serviceId: 22, backendId: 23, output: err(2, 0, quOut, '2001:2:0:b::12', 63, toB('2001:2:0:b::12')) });
    const cport = 1101;
    const b = predictBackend6(21, CLIENT6, VIP6.web, cport, 80, IPPROTO_TCP);
    const qt = (src: string) => buildIpv6({ ip: { src, dst: CLIENT6 }, tcp: { sport: 80, dport: cport, flags: 0x12, payload: Buffer.alloc(200, 0x42) } });
    F.push({ name: 'v6: packet too big quoting a NAT TCP reply goes to the flow\'s Maglev backend (PMTU discovery)', ingress: 'a',
      input: err(2, 0, qt(VIP6.web), VIP6.web), action: 'redirect', reason: 'icmp_error', serviceId: 21, backendId: b.id, output: err(2, 0, qt(b.ip), b.ip, 63, toB(b.ip)) });
    const cport2 = 1102;
    const b2 = predictBackend6(21, CLIENT6, VIP6.web, cport2, 80, IPPROTO_TCP);
    const short = (src: string) => buildIpv6({ ip: { src, dst: CLIENT6 }, tcp: { sport: 80, dport: cport2 } }).subarray(0, 48);
    F.push({ name: 'v6: time exceeded quoting 8 bytes of TCP: the quoted TCP checksum is not there, not touched', ingress: 'a',
      input: err(3, 0, short(VIP6.web), VIP6.web), action: 'redirect', reason: 'icmp_error', serviceId: 21, backendId: b2.id, output: err(3, 0, short(b2.ip), b2.ip, 63, toB(b2.ip)) });
    const cport3 = 1103;
    const b3 = predictBackend6(21, CLIENT6, VIP6.web, cport3, 80, IPPROTO_TCP);
    const pp = (src: string) => buildIpv6({ ip: { src, dst: CLIENT6 }, tcp: { sport: 80, dport: cport3 } });
    F.push({ name: 'v6: parameter problem (4) quoting a NAT TCP flow goes to its backend', ingress: 'a',
      input: err(4, 0, pp(VIP6.web), VIP6.web, 64, undefined, 6), action: 'redirect', reason: 'icmp_error', serviceId: 21, backendId: b3.id, output: err(4, 0, pp(b3.ip), b3.ip, 63, toB(b3.ip), 6) });
    const qd = buildIpv6({ ip: { src: VIP6.dsr, dst: CLIENT6 }, tcp: { sport: 80, dport: 1104 } });
    F.push({ name: 'v6: destination unreachable quoting a DSR flow: destination MAC only', ingress: 'a',
      input: err(1, 4, qd, VIP6.dsr), action: 'redirect', reason: 'icmp_error', serviceId: 24, backendId: 25, output: err(1, 4, qd, VIP6.dsr, 64, toB('2001:2:0:b::14')) });
    drop('v6: ICMPv6 error to a VIP quoting another source: icmp_unsupported', err(1, 0, buildIpv6({ ip: { src: '2001:2:0:7::7', dst: CLIENT6 }, tcp: { sport: 80, dport: 1105 } }), VIP6.web), 'icmp_unsupported');
    drop('v6: ICMPv6 error quoting a VIP ICMPv6 packet (no ports): icmp_unsupported', err(1, 0, buildIpv6({ ip: { src: VIP6.web, dst: CLIENT6 }, icmp6: { type: 129 } }), VIP6.web), 'icmp_unsupported');
    drop('v6: ICMPv6 error quoting only 30 bytes: malformed', err(2, 0, qt(VIP6.web).subarray(0, 30), VIP6.web), 'malformed');
    drop('v6: ICMPv6 error (nat) arriving with hop limit 1 passes (ttl)', err(2, 0, qu, VIP6.web, 1), 'ttl', { action: 'pass', serviceId: 22, backendId: 23 });
    drop('v6: ICMPv6 error quoting a flow of a service without backends: no_backend', err(2, 0, buildIpv6({ ip: { src: VIP6.empty, dst: CLIENT6 }, tcp: { sport: 80, dport: 1106 } }), VIP6.empty), 'no_backend', { serviceId: 26 });
    drop('v6: ICMPv6 error quoting a VIP port without service: no_service', err(1, 3, buildIpv6({ ip: { src: VIP6.web, dst: CLIENT6 }, tcp: { sport: 81, dport: 1107 } }), VIP6.web), 'no_service');
  }

  const own = (fx: Fixture, frame: Buffer): Buffer => {
    if (frame.length < 6 || !frame.subarray(0, 6).equals(macToBuffer(DEFAULT_DST_MAC))) return frame;
    const out = Buffer.from(frame);
    macToBuffer(portMac(fx.ingress)).copy(out, 0);
    return out;
  };
  return F.map((fx) => ({ ...fx, input: own(fx, fx.input), output: fx.output === 'unchanged' ? fx.output : own(fx, fx.output) }));
}
