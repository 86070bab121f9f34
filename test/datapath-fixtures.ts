/**
 * The data-plane fixture table: the namespace layout, the map state, and {description, input,
 * expected action and reason, expected output frame} rows, in the manner of Katran's
 * KatranBaseTestFixtures.h. Expected frames are built from scratch with src/dataplane/packet.ts
 * (fresh checksums), never derived from the program's output.
 */
import assert from 'node:assert/strict';
import {
  buildFrame, buildIpv4, buildArpRequest, buildIpv6Udp, ipToU32, u32ToIp, ETH_P_8021AD,
  IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, type FrameSpec, type TcpSpec, type UdpSpec, type Ipv4Spec,
} from '../src/dataplane/packet';
import { flowHash, vipFilterBit } from '../src/dataplane/jhash';
import type { LabNeighbour, PortSpec, DatapathLab } from './datapath-lab';
import { BACKEND_ACTIVE, MODE_DSR, MODE_NAT, FlowCacheModel, type ModelSettings, type ModelState, type ReasonName } from './refmodel';
import { TEST_FLOW_SETS } from './datapath-harness';

export const DP_NETNS = 'xlbt-dp';

export const PORTS: PortSpec[] = [
  { suffix: 'a', mac: '02:00:00:0a:00:01', address: '198.18.0.1' },  // clients; in tx_ports
  { suffix: 'b', mac: '02:00:00:0b:00:01', address: '198.18.1.1' },  // backends; in tx_ports
  { suffix: 'c', mac: '02:00:00:0c:00:01', address: '198.18.2.1' },  // NOT in tx_ports
];

export const CLIENT = '198.18.0.10';
export const CLIENT_NO_NEIGH = '198.18.0.11';
export const ROUTER = '198.18.0.254';    // sends ICMP errors about VIP replies
export const MAC = {
  client: '02:00:00:0a:00:0a', routerA: '02:00:00:0a:00:fe', beOnA: '02:00:00:0a:00:32',
  b10: '02:00:00:0b:00:0a', b11: '02:00:00:0b:00:0b', b12: '02:00:00:0b:00:0c', b13: '02:00:00:0b:00:0d',
  b14: '02:00:00:0b:00:0e', c10: '02:00:00:0c:00:0a',
};

export const NEIGHBOURS: LabNeighbour[] = [
  { port: 'a', ip: CLIENT, mac: MAC.client },
  { port: 'a', ip: ROUTER, mac: MAC.routerA },
  { port: 'a', ip: '198.18.0.50', mac: MAC.beOnA },
  { port: 'b', ip: '198.18.1.10', mac: MAC.b10 },
  { port: 'b', ip: '198.18.1.11', mac: MAC.b11 },
  { port: 'b', ip: '198.18.1.12', mac: MAC.b12 },
  { port: 'b', ip: '198.18.1.13', mac: MAC.b13 },
  { port: 'b', ip: '198.18.1.14', mac: MAC.b14 },
  { port: 'c', ip: '198.18.2.10', mac: MAC.c10 },
];

export const VIP = {
  web: '198.18.100.1',      // tcp/80 nat (2 backends), udp/53 nat (port 5353)
  any: '198.18.100.2',      // tcp, every port, nat; tcp/8443 nat (its own service)
  dsr: '198.18.100.3',      // tcp/80 dsr
  tx: '198.18.100.4',       // tcp/80 nat, backend behind the ingress port (XDP_TX)
  empty: '198.18.100.5',    // tcp/80, empty table
  noNeigh: '198.18.100.6',  // tcp/80, backend without neighbour entry
  noTx: '198.18.100.7',     // tcp/80, backend behind a port not in tx_ports
  noRoute: '198.18.100.8',  // tcp/80, backend without route
  inactive: '198.18.100.9', // tcp/80, the only backend is not ACTIVE
  bare: '198.18.100.10',    // a VIP without services
};

interface ServiceDef { id: number; vip: string; port: number; proto: number; mode: number; table: number[] }
interface BackendDef { id: number; ip: string; port: number; flags?: number; service: number }

const SERVICES: ServiceDef[] = [
  { id: 1, vip: VIP.web, port: 80, proto: IPPROTO_TCP, mode: MODE_NAT, table: [1, 2, 1, 2, 1, 2, 1] },
  { id: 2, vip: VIP.web, port: 53, proto: IPPROTO_UDP, mode: MODE_NAT, table: [3, 3, 3, 3, 3] },
  { id: 3, vip: VIP.any, port: 0, proto: IPPROTO_TCP, mode: MODE_NAT, table: [4, 4, 4] },
  { id: 4, vip: VIP.dsr, port: 80, proto: IPPROTO_TCP, mode: MODE_DSR, table: [5, 5, 5] },
  { id: 5, vip: VIP.tx, port: 80, proto: IPPROTO_TCP, mode: MODE_NAT, table: [6, 6, 6] },
  { id: 6, vip: VIP.empty, port: 80, proto: IPPROTO_TCP, mode: MODE_NAT, table: [0, 0, 0] },
  { id: 7, vip: VIP.noNeigh, port: 80, proto: IPPROTO_TCP, mode: MODE_NAT, table: [7, 7, 7] },
  { id: 8, vip: VIP.noTx, port: 80, proto: IPPROTO_TCP, mode: MODE_NAT, table: [8, 8, 8] },
  { id: 9, vip: VIP.noRoute, port: 80, proto: IPPROTO_TCP, mode: MODE_NAT, table: [9, 9, 9] },
  { id: 10, vip: VIP.inactive, port: 80, proto: IPPROTO_TCP, mode: MODE_NAT, table: [10, 10, 10] },
  { id: 11, vip: VIP.any, port: 8443, proto: IPPROTO_TCP, mode: MODE_NAT, table: [11, 11, 11] },
];

export const BACKENDS: BackendDef[] = [
  { id: 1, ip: '198.18.1.10', port: 0, service: 1 },
  { id: 2, ip: '198.18.1.11', port: 0, service: 1 },
  { id: 3, ip: '198.18.1.12', port: 5353, service: 2 },
  { id: 4, ip: '198.18.1.13', port: 0, service: 3 },
  { id: 5, ip: '198.18.1.14', port: 0, service: 4 },
  { id: 6, ip: '198.18.0.50', port: 0, service: 5 },
  { id: 7, ip: '198.18.1.99', port: 0, service: 7 },
  { id: 8, ip: '198.18.2.10', port: 0, service: 8 },
  { id: 9, ip: '198.18.50.1', port: 0, service: 9 },
  { id: 10, ip: '198.18.1.15', port: 0, flags: 0, service: 10 },
  { id: 11, ip: '198.18.1.10', port: 0, service: 11 },
  { id: 12, ip: '198.18.1.14', port: 0, service: 3 },   // ACTIVE, in no table (draining)
];

const REVERSE = [
  { ip: '198.18.1.10', port: 80, proto: IPPROTO_TCP, vip: VIP.web, vport: 80, serviceId: 1, backendId: 1 },
  { ip: '198.18.1.11', port: 80, proto: IPPROTO_TCP, vip: VIP.web, vport: 80, serviceId: 1, backendId: 2 },
  { ip: '198.18.1.12', port: 5353, proto: IPPROTO_UDP, vip: VIP.web, vport: 53, serviceId: 2, backendId: 3 },
  { ip: '198.18.1.13', port: 0, proto: IPPROTO_TCP, vip: VIP.any, vport: 0, serviceId: 3, backendId: 4 },
];

export const DEFAULT_SETTINGS: ModelSettings = { fragPolicy: 0, sampleRate: 1, flowCache: false };

/** The fixture state for a lab (tx_ports = ports a and b). */
export function fixtureState(lab: DatapathLab, seed = 0): ModelState {
  return {
    seed,
    settings: { ...DEFAULT_SETTINGS },
    services: SERVICES.map((s) => ({ id: s.id, vip: ipToU32(s.vip), port: s.port, proto: s.proto, tableSize: s.table.length, mode: s.mode })),
    vips: new Set(Object.values(VIP).map(ipToU32)),
    backends: new Map(BACKENDS.map((b) => [b.id, {
      id: b.id, ip: ipToU32(b.ip), port: b.port, flags: b.flags ?? BACKEND_ACTIVE, serviceId: b.service,
    }])),
    reverse: REVERSE.map((r) => ({ ...r, ip: ipToU32(r.ip), vip: ipToU32(r.vip) })),
    maglev: new Map(SERVICES.map((s) => [s.id, [...s.table]])),
    flows: new FlowCacheModel(TEST_FLOW_SETS),
    txPorts: new Set([lab.ports.a.ifindex, lab.ports.b.ifindex]),
    fib: lab.fib,
  };
}

/** The backend Maglev gives a flow of service `serviceId` (seed 0), computed with src/dataplane/jhash.ts. */
export function predictBackend(serviceId: number, saddr: string, daddr: string, sport: number, dport: number, proto: number, seed = 0): BackendDef {
  const svc = SERVICES.find((s) => s.id === serviceId)!;
  const slot = flowHash(ipToU32(saddr), ipToU32(daddr), sport, dport, proto, seed) % svc.table.length;
  return BACKENDS.find((b) => b.id === svc.table[slot])!;
}

const backendMac = (ip: string): string => NEIGHBOURS.find((n) => n.ip === ip)!.mac;
const portMac = (suffix: string): string => PORTS.find((p) => p.suffix === suffix)!.mac;
const portOf = (ip: string): string => NEIGHBOURS.find((n) => n.ip === ip)!.port;

export type Action = 'drop' | 'pass' | 'tx' | 'redirect';
export const ACTION_NUMBER: Record<Action, number> = { drop: 1, pass: 2, tx: 3, redirect: 4 };

export interface Fixture {
  name: string;
  ingress: 'a' | 'b';
  input: Buffer;
  settings?: Partial<ModelSettings>;
  /** flow-cache entries installed before the run: client 5-tuple -> backend id. */
  flows?: Array<{ saddr: string; daddr: string; sport: number; dport: number; proto: number; backendId: number }>;
  action: Action;
  reason: ReasonName;
  serviceId?: number;
  backendId?: number;
  /** The whole expected output frame, or 'unchanged'. */
  output: Buffer | 'unchanged';
}

// ---- frame helpers -------------------------------------------------------------------------------

interface Extra { ip?: Partial<Ipv4Spec>; eth?: FrameSpec['eth']; trailer?: Buffer; truncate?: number }

function tcpFrame(src: string, dst: string, tcp: TcpSpec, x: Extra = {}): Buffer {
  return buildFrame({ eth: x.eth, ip: { src, dst, proto: IPPROTO_TCP, ...x.ip }, tcp, trailer: x.trailer, truncate: x.truncate });
}
function udpFrame(src: string, dst: string, udp: UdpSpec, x: Extra = {}): Buffer {
  return buildFrame({ eth: x.eth, ip: { src, dst, proto: IPPROTO_UDP, ...x.ip }, udp, trailer: x.trailer, truncate: x.truncate });
}

/** Client -> VIP TCP as it leaves after NAT to `backend` (TTL - 1, MACs of the next hop). */
function natTcpOut(src: string, b: BackendDef, tcp: TcpSpec, x: Extra = {}): Buffer {
  const ttl = (x.ip?.ttl ?? 64) - 1;
  const eth = { dst: backendMac(b.ip), src: portMac(portOf(b.ip)) };
  return tcpFrame(src, b.ip, { ...tcp, dport: b.port || tcp.dport }, { ...x, eth, ip: { ...x.ip, ttl } });
}

const PAYLOAD = Buffer.from('GET / HTTP/1.0\r\n\r\n');

/** The fixture table (built per lab, since expected MACs and ifindexes come from it). */
export function fixtures(): Fixture[] {
  const F: Fixture[] = [];
  const web = (sport: number) => predictBackend(1, CLIENT, VIP.web, sport, 80, IPPROTO_TCP);
  const tcpIn = (sport: number, x: Extra = {}) => tcpFrame(CLIENT, VIP.web, { sport, dport: 80, payload: PAYLOAD }, x);

  // -- not ours: other EtherTypes and tags
  F.push({ name: 'ARP request passes (not IPv4)', ingress: 'a', input: buildArpRequest(CLIENT, '198.18.0.1', MAC.client), action: 'pass', reason: 'not_ipv4', output: 'unchanged' });
  F.push({ name: 'IPv6 passes (not IPv4)', ingress: 'a', input: buildIpv6Udp(1000, 53), action: 'pass', reason: 'not_ipv4', output: 'unchanged' });
  F.push({ name: '802.1Q-tagged frame to a VIP passes (vlan)', ingress: 'a', input: tcpIn(1000, { eth: { vlan: 10 } }), action: 'pass', reason: 'vlan', output: 'unchanged' });
  F.push({ name: '802.1ad-tagged frame passes (vlan)', ingress: 'a', input: tcpIn(1000, { eth: { vlan: 10, tpid: ETH_P_8021AD } }), action: 'pass', reason: 'vlan', output: 'unchanged' });

  // -- malformed IPv4 (truncated at every header boundary, bad IHL / total length)
  const full = tcpIn(1001);
  F.push({ name: 'Ethernet header only (IPv4 EtherType) is malformed', ingress: 'a', input: full.subarray(0, 14), action: 'drop', reason: 'malformed', output: 'unchanged' });
  F.push({ name: 'IPv4 header cut at 19 bytes is malformed', ingress: 'a', input: full.subarray(0, 33), action: 'drop', reason: 'malformed', output: 'unchanged' });
  F.push({ name: 'IHL 4 is malformed', ingress: 'a', input: tcpIn(1002, { ip: { ihl: 4 } }), action: 'drop', reason: 'malformed', output: 'unchanged' });
  F.push({ name: 'IHL 15 beyond the frame is malformed', ingress: 'a', input: tcpFrame(CLIENT, VIP.web, { sport: 1003, dport: 80 }, { ip: { ihl: 15 } }), action: 'drop', reason: 'malformed', output: 'unchanged' });
  F.push({ name: 'total length larger than the frame is malformed', ingress: 'a', input: tcpIn(1004, { ip: { totalLength: 20 + 20 + PAYLOAD.length + 1 } }), action: 'drop', reason: 'malformed', output: 'unchanged' });
  F.push({ name: 'total length smaller than the IP header is malformed', ingress: 'a', input: tcpIn(1005, { ip: { totalLength: 19 } }), action: 'drop', reason: 'malformed', output: 'unchanged' });
  F.push({ name: 'VIP IPv4 with no L4 bytes (total length 20) is malformed', ingress: 'a', input: tcpIn(1006, { ip: { totalLength: 20 }, truncate: 34 }), action: 'drop', reason: 'malformed', output: 'unchanged' });
  F.push({ name: 'VIP TCP header cut by the frame (19 of 20 bytes) is malformed', ingress: 'a', input: tcpFrame(CLIENT, VIP.web, { sport: 1007, dport: 80 }, { ip: { totalLength: 39 }, truncate: 53 }), action: 'drop', reason: 'malformed', output: 'unchanged' });
  F.push({ name: 'VIP TCP header cut by total length (trailer follows) is malformed', ingress: 'a', input: tcpFrame(CLIENT, VIP.web, { sport: 1008, dport: 80 }, { ip: { totalLength: 30 } }), action: 'drop', reason: 'malformed', output: 'unchanged' });
  F.push({ name: 'VIP UDP header cut (7 of 8 bytes) is malformed', ingress: 'a', input: udpFrame(CLIENT, VIP.web, { sport: 1009, dport: 53 }, { ip: { totalLength: 27 }, truncate: 41 }), action: 'drop', reason: 'malformed', output: 'unchanged' });
  F.push({ name: 'VIP ICMP header cut (7 of 8 bytes) is malformed', ingress: 'a', input: buildFrame({ ip: { src: CLIENT, dst: VIP.web, proto: IPPROTO_ICMP, totalLength: 27 }, icmp: { type: 8 }, truncate: 41 }), action: 'drop', reason: 'malformed', output: 'unchanged' });
  F.push({ name: 'malformed IPv4 to a non-VIP is dropped too (IHL 3)', ingress: 'a', input: tcpFrame(CLIENT, '198.18.7.7', { sport: 1, dport: 2 }, { ip: { ihl: 3 } }), action: 'drop', reason: 'malformed', output: 'unchanged' });

  // -- NAT forward
  {
    const sp = 2000; const b = web(sp);
    F.push({ name: 'NAT TCP to the predicted backend (REDIRECT out port b)', ingress: 'a', input: tcpIn(sp), action: 'redirect', reason: 'forwarded', serviceId: 1, backendId: b.id, output: natTcpOut(CLIENT, b, { sport: sp, dport: 80, payload: PAYLOAD }) });
  }
  for (const sp of [2001, 2002, 2003, 2004]) {
    const b = web(sp);
    F.push({ name: `NAT TCP flow :${sp} goes to backend ${b.id} (jhash + Maglev slot as predicted in TS)`, ingress: 'a', input: tcpIn(sp), action: 'redirect', reason: 'forwarded', serviceId: 1, backendId: b.id, output: natTcpOut(CLIENT, b, { sport: sp, dport: 80, payload: PAYLOAD }) });
  }
  {
    const sp = 2010; const b = web(sp);
    F.push({ name: 'IP options are kept (IHL 6) and L4 found after them', ingress: 'a', input: tcpIn(sp, { ip: { options: Buffer.from([1, 1, 1, 0]) } }), action: 'redirect', reason: 'forwarded', serviceId: 1, backendId: b.id, output: natTcpOut(CLIENT, b, { sport: sp, dport: 80, payload: PAYLOAD }, { ip: { options: Buffer.from([1, 1, 1, 0]) } }) });
    const sp2 = 2011; const b2 = web(sp2);
    const trailer = Buffer.from('ethernet-padding');
    F.push({ name: 'total length smaller than the frame: Ethernet padding kept, checksums over tot_len', ingress: 'a', input: tcpIn(sp2, { trailer }), action: 'redirect', reason: 'forwarded', serviceId: 1, backendId: b2.id, output: natTcpOut(CLIENT, b2, { sport: sp2, dport: 80, payload: PAYLOAD }, { trailer }) });
  }
  {
    const b = BACKENDS[2];
    const input = udpFrame(CLIENT, VIP.web, { sport: 3000, dport: 53, payload: Buffer.from('query') });
    const output = udpFrame(CLIENT, b.ip, { sport: 3000, dport: 5353, payload: Buffer.from('query') }, { eth: { dst: MAC.b12, src: portMac('b') }, ip: { ttl: 63 } });
    F.push({ name: 'NAT UDP with backend port translation 53 -> 5353', ingress: 'a', input, action: 'redirect', reason: 'forwarded', serviceId: 2, backendId: 3, output });
    const in0 = udpFrame(CLIENT, VIP.web, { sport: 3001, dport: 53, payload: Buffer.from('query'), checksum: 0 });
    const out0 = udpFrame(CLIENT, b.ip, { sport: 3001, dport: 5353, payload: Buffer.from('query'), checksum: 0 }, { eth: { dst: MAC.b12, src: portMac('b') }, ip: { ttl: 63 } });
    F.push({ name: 'NAT UDP with checksum 0 keeps checksum 0', ingress: 'a', input: in0, action: 'redirect', reason: 'forwarded', serviceId: 2, backendId: 3, output: out0 });
  }
  {
    const b = BACKENDS[3];
    const input = tcpFrame(CLIENT, VIP.any, { sport: 4000, dport: 12345 });
    F.push({ name: 'wildcard-port service takes any port, port kept', ingress: 'a', input, action: 'redirect', reason: 'forwarded', serviceId: 3, backendId: 4, output: natTcpOut(CLIENT, b, { sport: 4000, dport: 12345 }) });
  }
  {
    const sp = 2020; const b = web(sp);
    F.push({ name: 'TTL 0 passes to the kernel untouched (ttl)', ingress: 'a', input: tcpIn(sp, { ip: { ttl: 0 } }), action: 'pass', reason: 'ttl', serviceId: 1, backendId: b.id, output: 'unchanged' });
    F.push({ name: 'TTL 1 passes to the kernel untouched (ttl)', ingress: 'a', input: tcpIn(sp, { ip: { ttl: 1 } }), action: 'pass', reason: 'ttl', serviceId: 1, backendId: b.id, output: 'unchanged' });
    F.push({ name: 'TTL 2 is forwarded with TTL 1', ingress: 'a', input: tcpIn(sp, { ip: { ttl: 2 } }), action: 'redirect', reason: 'forwarded', serviceId: 1, backendId: b.id, output: natTcpOut(CLIENT, b, { sport: sp, dport: 80, payload: PAYLOAD }, { ip: { ttl: 2 } }) });
  }

  // -- classification misses
  F.push({ name: 'non-VIP TCP passes (not_vip)', ingress: 'a', input: tcpFrame(CLIENT, '198.18.7.7', { sport: 5000, dport: 80 }), action: 'pass', reason: 'not_vip', output: 'unchanged' });
  // An address sharing a VIP's filter bit (a false positive of settings.vip_filter) takes the
  // lookups and still passes; 198.18.7.7 above has a clear bit (asserted: the short cut).
  const webBit = vipFilterBit(ipToU32(VIP.web));
  assert.notEqual(vipFilterBit(ipToU32('198.18.7.7')), webBit);
  let twin = ipToU32('198.18.200.0');
  while (vipFilterBit(twin) !== webBit || [...Object.values(VIP)].map(ipToU32).includes(twin)) twin++;
  F.push({ name: 'non-VIP TCP whose VIP filter bit is set (false positive) passes (not_vip)', ingress: 'a', input: tcpFrame(CLIENT, u32ToIp(twin), { sport: 5000, dport: 80 }), action: 'pass', reason: 'not_vip', output: 'unchanged' });
  F.push({ name: 'non-VIP with a truncated TCP header passes (not_vip)', ingress: 'a', input: tcpFrame(CLIENT, '198.18.7.7', { sport: 5000, dport: 80 }, { ip: { totalLength: 30 }, truncate: 44 }), action: 'pass', reason: 'not_vip', output: 'unchanged' });
  F.push({ name: 'non-VIP fragment passes (not_vip)', ingress: 'b', input: tcpFrame('198.18.1.10', CLIENT, { sport: 80, dport: 5000 }, { ip: { mf: true } }), action: 'pass', reason: 'not_vip', output: 'unchanged' });
  F.push({ name: 'VIP, wrong port: no service', ingress: 'a', input: tcpFrame(CLIENT, VIP.web, { sport: 5001, dport: 81 }), action: 'drop', reason: 'no_service', output: 'unchanged' });
  F.push({ name: 'VIP, wrong protocol (UDP/80): no service', ingress: 'a', input: udpFrame(CLIENT, VIP.web, { sport: 5002, dport: 80 }), action: 'drop', reason: 'no_service', output: 'unchanged' });
  F.push({ name: 'VIP, other IP protocol (GRE): no service', ingress: 'a', input: buildFrame({ ip: { src: CLIENT, dst: VIP.web, proto: 47 }, payload: Buffer.alloc(8) }), action: 'drop', reason: 'no_service', output: 'unchanged' });
  F.push({ name: 'VIP without any service: no service', ingress: 'a', input: tcpFrame(CLIENT, VIP.bare, { sport: 5003, dport: 80 }), action: 'drop', reason: 'no_service', output: 'unchanged' });

  // -- fragments under both policies
  const frags: Array<[string, Partial<Ipv4Spec>]> = [['first', { mf: true }], ['middle', { mf: true, fragOffset: 100 }], ['last', { fragOffset: 100 }]];
  for (const [label, ip] of frags) {
    F.push({ name: `${label} fragment to a VIP is dropped (policy drop)`, ingress: 'a', input: tcpIn(6000, { ip }), settings: { fragPolicy: 0 }, action: 'drop', reason: 'fragment', output: 'unchanged' });
    F.push({ name: `${label} fragment to a VIP passes (policy pass)`, ingress: 'a', input: tcpIn(6000, { ip }), settings: { fragPolicy: 1 }, action: 'pass', reason: 'fragment', output: 'unchanged' });
  }

  // -- reverse NAT
  {
    const input = tcpFrame('198.18.1.10', CLIENT, { sport: 80, dport: 7000, payload: PAYLOAD });
    const output = tcpFrame(VIP.web, CLIENT, { sport: 80, dport: 7000, payload: PAYLOAD }, { eth: { dst: MAC.client, src: portMac('a') }, ip: { ttl: 63 } });
    F.push({ name: 'reverse NAT (exact port): source becomes the VIP, REDIRECT to the client port', ingress: 'b', input, action: 'redirect', reason: 'reversed', serviceId: 1, backendId: 1, output });
    const udpIn = udpFrame('198.18.1.12', CLIENT, { sport: 5353, dport: 7001, payload: Buffer.from('answer') });
    const udpOut = udpFrame(VIP.web, CLIENT, { sport: 53, dport: 7001, payload: Buffer.from('answer') }, { eth: { dst: MAC.client, src: portMac('a') }, ip: { ttl: 63 } });
    F.push({ name: 'reverse NAT UDP with port translation 5353 -> 53', ingress: 'b', input: udpIn, action: 'redirect', reason: 'reversed', serviceId: 2, backendId: 3, output: udpOut });
    const wIn = tcpFrame('198.18.1.13', CLIENT, { sport: 4444, dport: 7002 });
    const wOut = tcpFrame(VIP.any, CLIENT, { sport: 4444, dport: 7002 }, { eth: { dst: MAC.client, src: portMac('a') }, ip: { ttl: 63 } });
    F.push({ name: 'reverse NAT wildcard entry (any source port, port kept)', ingress: 'b', input: wIn, action: 'redirect', reason: 'reversed', serviceId: 3, backendId: 4, output: wOut });
    F.push({ name: 'reverse NAT with TTL 1 passes (ttl)', ingress: 'b', input: tcpFrame('198.18.1.10', CLIENT, { sport: 80, dport: 7003 }, { ip: { ttl: 1 } }), action: 'pass', reason: 'ttl', serviceId: 1, backendId: 1, output: 'unchanged' });
    const nnOut = tcpFrame(VIP.web, CLIENT_NO_NEIGH, { sport: 80, dport: 7004 }, { ip: { ttl: 63 } });
    F.push({ name: 'reverse NAT to a client without neighbour: rewritten packet to the kernel (no_neigh)', ingress: 'b', input: tcpFrame('198.18.1.10', CLIENT_NO_NEIGH, { sport: 80, dport: 7004 }), action: 'pass', reason: 'no_neigh', serviceId: 1, backendId: 1, output: nnOut });
    const z = Buffer.from('zero-checksum');
    F.push({ name: 'reverse NAT UDP with checksum 0 keeps checksum 0', ingress: 'b',
      input: udpFrame('198.18.1.12', CLIENT, { sport: 5353, dport: 7006, payload: z, checksum: 0 }), action: 'redirect', reason: 'reversed', serviceId: 2, backendId: 3,
      output: udpFrame(VIP.web, CLIENT, { sport: 53, dport: 7006, payload: z, checksum: 0 }, { eth: { dst: MAC.client, src: portMac('a') }, ip: { ttl: 63 } }) });
    const opts = Buffer.from([0x94, 0x04, 0x00, 0x00]); // router alert
    const pad = Buffer.alloc(12);
    F.push({ name: 'reverse NAT keeps IP options and Ethernet padding', ingress: 'b',
      input: tcpFrame('198.18.1.10', CLIENT, { sport: 80, dport: 7007 }, { ip: { options: opts }, trailer: pad }), action: 'redirect', reason: 'reversed', serviceId: 1, backendId: 1,
      output: tcpFrame(VIP.web, CLIENT, { sport: 80, dport: 7007 }, { eth: { dst: MAC.client, src: portMac('a') }, ip: { ttl: 63, options: opts }, trailer: pad }) });
    F.push({ name: 'backend reply to the balancer host itself (health check) passes untouched (not_vip)', ingress: 'b', input: tcpFrame('198.18.1.10', '198.18.1.1', { sport: 80, dport: 40000 }), action: 'pass', reason: 'not_vip', output: 'unchanged' });
    F.push({ name: 'backend source port without reverse entry passes (not_vip)', ingress: 'b', input: tcpFrame('198.18.1.10', CLIENT, { sport: 81, dport: 7005 }), action: 'pass', reason: 'not_vip', output: 'unchanged' });
  }

  // -- DSR, TX, and the forwarding failures
  {
    const input = tcpFrame(CLIENT, VIP.dsr, { sport: 8000, dport: 80, payload: PAYLOAD });
    const output = tcpFrame(CLIENT, VIP.dsr, { sport: 8000, dport: 80, payload: PAYLOAD }, { eth: { dst: MAC.b14, src: portMac('b') } });
    F.push({ name: 'DSR: destination MAC only (IP, TTL, checksums untouched)', ingress: 'a', input, action: 'redirect', reason: 'forwarded', serviceId: 4, backendId: 5, output });
    F.push({ name: 'DSR with TTL 1 is still forwarded (no TTL in dsr)', ingress: 'a', input: tcpFrame(CLIENT, VIP.dsr, { sport: 8001, dport: 80 }, { ip: { ttl: 1 } }), action: 'redirect', reason: 'forwarded', serviceId: 4, backendId: 5, output: tcpFrame(CLIENT, VIP.dsr, { sport: 8001, dport: 80 }, { eth: { dst: MAC.b14, src: portMac('b') }, ip: { ttl: 1 } }) });
    const b6 = BACKENDS[5];
    F.push({ name: 'backend behind the ingress port: XDP_TX', ingress: 'a', input: tcpFrame(CLIENT, VIP.tx, { sport: 8002, dport: 80 }), action: 'tx', reason: 'forwarded', serviceId: 5, backendId: 6, output: natTcpOut(CLIENT, b6, { sport: 8002, dport: 80 }) });
    F.push({ name: 'service whose table is empty: no backend', ingress: 'a', input: tcpFrame(CLIENT, VIP.empty, { sport: 8003, dport: 80 }), action: 'drop', reason: 'no_backend', serviceId: 6, output: 'unchanged' });
    F.push({ name: 'service whose only backend is not ACTIVE: no backend', ingress: 'a', input: tcpFrame(CLIENT, VIP.inactive, { sport: 8004, dport: 80 }), action: 'drop', reason: 'no_backend', serviceId: 10, output: 'unchanged' });
    const nn = tcpFrame(CLIENT, '198.18.1.99', { sport: 8005, dport: 80 }, { ip: { ttl: 63 } });
    F.push({ name: 'backend without neighbour: NAT-ed packet to the kernel (no_neigh)', ingress: 'a', input: tcpFrame(CLIENT, VIP.noNeigh, { sport: 8005, dport: 80 }), action: 'pass', reason: 'no_neigh', serviceId: 7, backendId: 7, output: nn });
    const ntx = tcpFrame(CLIENT, '198.18.2.10', { sport: 8006, dport: 80 }, { eth: { dst: MAC.c10, src: portMac('c') }, ip: { ttl: 63 } });
    F.push({ name: 'egress port not in tx_ports: PASS (no_tx_port)', ingress: 'a', input: tcpFrame(CLIENT, VIP.noTx, { sport: 8006, dport: 80 }), action: 'pass', reason: 'no_tx_port', serviceId: 8, backendId: 8, output: ntx });
    const nr = tcpFrame(CLIENT, '198.18.50.1', { sport: 8007, dport: 80 }, { ip: { ttl: 63 } });
    F.push({ name: 'backend without route: PASS (no_route)', ingress: 'a', input: tcpFrame(CLIENT, VIP.noRoute, { sport: 8007, dport: 80 }), action: 'pass', reason: 'no_route', serviceId: 9, backendId: 9, output: nr });
  }

  // -- flow cache
  {
    let sp = 9000;
    while (web(sp).id !== 1) sp++;
    const b2 = BACKENDS[1];
    // Segments of established connections (ACK): a SYN never takes the cache (row below).
    const ACK = 0x10;
    const tcpAckIn = (sport: number) => tcpFrame(CLIENT, VIP.web, { sport, dport: 80, payload: PAYLOAD, flags: ACK });
    F.push({ name: 'flow cache hit on an ACTIVE backend of the service wins over Maglev', ingress: 'a', input: tcpAckIn(sp), settings: { flowCache: true },
      flows: [{ saddr: CLIENT, daddr: VIP.web, sport: sp, dport: 80, proto: IPPROTO_TCP, backendId: 2 }],
      action: 'redirect', reason: 'forwarded', serviceId: 1, backendId: 2, output: natTcpOut(CLIENT, b2, { sport: sp, dport: 80, payload: PAYLOAD, flags: ACK }) });
    F.push({ name: 'flow cache entry on an inactive backend is ignored (Maglev decides)', ingress: 'a', input: tcpAckIn(sp), settings: { flowCache: true },
      flows: [{ saddr: CLIENT, daddr: VIP.web, sport: sp, dport: 80, proto: IPPROTO_TCP, backendId: 10 }],
      action: 'redirect', reason: 'forwarded', serviceId: 1, backendId: 1, output: natTcpOut(CLIENT, BACKENDS[0], { sport: sp, dport: 80, payload: PAYLOAD, flags: ACK }) });
    F.push({ name: 'flow cache entry on another service\'s backend is ignored', ingress: 'a', input: tcpAckIn(sp), settings: { flowCache: true },
      flows: [{ saddr: CLIENT, daddr: VIP.web, sport: sp, dport: 80, proto: IPPROTO_TCP, backendId: 4 }],
      action: 'redirect', reason: 'forwarded', serviceId: 1, backendId: 1, output: natTcpOut(CLIENT, BACKENDS[0], { sport: sp, dport: 80, payload: PAYLOAD, flags: ACK }) });
    F.push({ name: 'flow cache: a SYN ignores a remembered flow (a new connection follows Maglev)', ingress: 'a', input: tcpIn(sp), settings: { flowCache: true },
      flows: [{ saddr: CLIENT, daddr: VIP.web, sport: sp, dport: 80, proto: IPPROTO_TCP, backendId: 2 }],
      action: 'redirect', reason: 'forwarded', serviceId: 1, backendId: 1, output: natTcpOut(CLIENT, BACKENDS[0], { sport: sp, dport: 80, payload: PAYLOAD }) });
    const b12 = BACKENDS[11];
    F.push({ name: 'flow cache: a remembered flow of the every-port service stays on its draining backend', ingress: 'a',
      input: tcpFrame(CLIENT, VIP.any, { sport: 9100, dport: 2222, flags: ACK }), settings: { flowCache: true },
      flows: [{ saddr: CLIENT, daddr: VIP.any, sport: 9100, dport: 2222, proto: IPPROTO_TCP, backendId: 12 }],
      action: 'redirect', reason: 'forwarded', serviceId: 3, backendId: 12, output: natTcpOut(CLIENT, b12, { sport: 9100, dport: 2222, flags: ACK }) });
    F.push({ name: 'flow cache: an exact service of the port wins over a remembered every-port flow', ingress: 'a',
      input: tcpFrame(CLIENT, VIP.any, { sport: 9101, dport: 8443, flags: ACK }), settings: { flowCache: true },
      flows: [{ saddr: CLIENT, daddr: VIP.any, sport: 9101, dport: 8443, proto: IPPROTO_TCP, backendId: 12 }],
      action: 'redirect', reason: 'forwarded', serviceId: 11, backendId: 11, output: natTcpOut(CLIENT, BACKENDS[10], { sport: 9101, dport: 8443, flags: ACK }) });
    F.push({ name: 'flow cache: a remembered flow for another VIP\'s backend is ignored', ingress: 'a',
      input: tcpFrame(CLIENT, VIP.any, { sport: 9102, dport: 2222, flags: ACK }), settings: { flowCache: true },
      flows: [{ saddr: CLIENT, daddr: VIP.any, sport: 9102, dport: 2222, proto: IPPROTO_TCP, backendId: 2 }],
      action: 'redirect', reason: 'forwarded', serviceId: 3, backendId: 4, output: natTcpOut(CLIENT, BACKENDS[3], { sport: 9102, dport: 2222, flags: ACK }) });
  }

  // -- ICMP
  {
    const echo = Buffer.from('ping-payload-0123456789');
    const input = buildFrame({ eth: { dst: '02:00:00:0a:00:01', src: MAC.client }, ip: { src: CLIENT, dst: VIP.web, proto: IPPROTO_ICMP, ttl: 50 }, icmp: { type: 8, rest: 0x12340001, payload: echo } });
    const output = buildFrame({ eth: { dst: MAC.client, src: '02:00:00:0a:00:01' }, ip: { src: VIP.web, dst: CLIENT, proto: IPPROTO_ICMP, ttl: 64 }, icmp: { type: 0, rest: 0x12340001, payload: echo } });
    F.push({ name: 'ICMP echo request to a VIP is answered in place (XDP_TX)', ingress: 'a', input, action: 'tx', reason: 'icmp_echo', output });
    F.push({ name: 'ICMP echo to a non-VIP passes (not_vip)', ingress: 'a', input: buildFrame({ ip: { src: CLIENT, dst: '198.18.0.1', proto: IPPROTO_ICMP }, icmp: { type: 8 } }), action: 'pass', reason: 'not_vip', output: 'unchanged' });
    F.push({ name: 'ICMP timestamp to a VIP is dropped (icmp_unsupported)', ingress: 'a', input: buildFrame({ ip: { src: CLIENT, dst: VIP.web, proto: IPPROTO_ICMP }, icmp: { type: 13 } }), action: 'drop', reason: 'icmp_unsupported', output: 'unchanged' });
  }
  F.push(...icmpErrorFixtures(predictBackend));
  return F;
}

/** ICMP errors about VIP -> client packets (a router on the client side answers a reply). */
function icmpErrorFixtures(predict: typeof predictBackend): Fixture[] {
  const F: Fixture[] = [];
  const icmpFrame = (type: number, code: number, quoted: Buffer, dst: string, ttl = 64, eth?: FrameSpec['eth']) =>
    buildFrame({ eth, ip: { src: ROUTER, dst, proto: IPPROTO_ICMP, ttl }, icmp: { type, code, rest: type === 3 ? 1400 : 0, payload: quoted } });

  // NAT UDP (quoted source port 53 -> backend's 5353), whole quoted datagram: every checksum checkable.
  {
    const qIn = buildIpv4({ ip: { src: VIP.web, dst: CLIENT, proto: IPPROTO_UDP, ttl: 63 }, udp: { sport: 53, dport: 7100, payload: Buffer.from('answer') } });
    const qOut = buildIpv4({ ip: { src: '198.18.1.12', dst: CLIENT, proto: IPPROTO_UDP, ttl: 63 }, udp: { sport: 5353, dport: 7100, payload: Buffer.from('answer') } });
    F.push({ name: 'frag-needed quoting a NAT UDP reply goes to its backend (outer dst, quoted src and port, 4 checksums)', ingress: 'a',
      input: icmpFrame(3, 4, qIn, VIP.web), action: 'redirect', reason: 'icmp_error', serviceId: 2, backendId: 3,
      output: icmpFrame(3, 4, qOut, '198.18.1.12', 63, { dst: MAC.b12, src: '02:00:00:0b:00:01' }) });
  }
  // NAT TCP, full 20-byte quoted TCP header.
  {
    const cport = 7200;
    const b = predict(1, CLIENT, VIP.web, cport, 80, IPPROTO_TCP);
    const qIn = buildIpv4({ ip: { src: VIP.web, dst: CLIENT, proto: IPPROTO_TCP }, tcp: { sport: 80, dport: cport, flags: 0x12 } });
    const qOut = buildIpv4({ ip: { src: b.ip, dst: CLIENT, proto: IPPROTO_TCP }, tcp: { sport: 80, dport: cport, flags: 0x12 } });
    F.push({ name: 'frag-needed quoting a NAT TCP reply goes to the flow\'s Maglev backend', ingress: 'a',
      input: icmpFrame(3, 4, qIn, VIP.web), action: 'redirect', reason: 'icmp_error', serviceId: 1, backendId: b.id,
      output: icmpFrame(3, 4, qOut, b.ip, 63, { dst: backendMac(b.ip), src: '02:00:00:0b:00:01' }) });
    // Only 8 quoted L4 bytes (RFC 792 minimum): the quoted TCP checksum is outside and stays.
    const cport2 = 7201;
    const b2 = predict(1, CLIENT, VIP.web, cport2, 80, IPPROTO_TCP);
    const short = (src: string) => buildIpv4({ ip: { src, dst: CLIENT, proto: IPPROTO_TCP }, tcp: { sport: 80, dport: cport2 } }).subarray(0, 28);
    F.push({ name: 'time-exceeded quoting 8 bytes of TCP: quoted L4 checksum not touched', ingress: 'a',
      input: icmpFrame(11, 0, short(VIP.web), VIP.web), action: 'redirect', reason: 'icmp_error', serviceId: 1, backendId: b2.id,
      output: icmpFrame(11, 0, Buffer.concat([short(b2.ip).subarray(0, 20), short(VIP.web).subarray(20)]), b2.ip, 63, { dst: backendMac(b2.ip), src: '02:00:00:0b:00:01' }) });
  }
  // DSR: MAC only.
  {
    const qIn = buildIpv4({ ip: { src: VIP.dsr, dst: CLIENT, proto: IPPROTO_TCP }, tcp: { sport: 80, dport: 7300 } });
    F.push({ name: 'frag-needed quoting a DSR flow: destination MAC only', ingress: 'a',
      input: icmpFrame(3, 4, qIn, VIP.dsr), action: 'redirect', reason: 'icmp_error', serviceId: 4, backendId: 5,
      output: icmpFrame(3, 4, qIn, VIP.dsr, 64, { dst: MAC.b14, src: '02:00:00:0b:00:01' }) });
  }
  // Refusals.
  {
    const notVip = buildIpv4({ ip: { src: '198.18.7.7', dst: CLIENT, proto: IPPROTO_TCP }, tcp: { sport: 80, dport: 7400 } });
    F.push({ name: 'ICMP error to a VIP quoting another source: icmp_unsupported', ingress: 'a', input: icmpFrame(3, 1, notVip, VIP.web), action: 'drop', reason: 'icmp_unsupported', output: 'unchanged' });
    const qIn = buildIpv4({ ip: { src: VIP.web, dst: CLIENT, proto: IPPROTO_TCP }, tcp: { sport: 80, dport: 7401 } });
    F.push({ name: 'ICMP error quoting only 10 bytes: malformed', ingress: 'a', input: icmpFrame(3, 4, qIn.subarray(0, 10), VIP.web), action: 'drop', reason: 'malformed', output: 'unchanged' });
    const qTtl = buildIpv4({ ip: { src: VIP.web, dst: CLIENT, proto: IPPROTO_UDP }, udp: { sport: 53, dport: 7403 } });
    F.push({ name: 'ICMP error (nat) arriving with TTL 1 passes (ttl)', ingress: 'a', input: icmpFrame(3, 4, qTtl, VIP.web, 1), action: 'pass', reason: 'ttl', serviceId: 2, backendId: 3, output: 'unchanged' });
    const qEmpty = buildIpv4({ ip: { src: VIP.empty, dst: CLIENT, proto: IPPROTO_TCP }, tcp: { sport: 80, dport: 7404 } });
    F.push({ name: 'ICMP error quoting a flow of a service without backends: no_backend', ingress: 'a', input: icmpFrame(3, 4, qEmpty, VIP.empty), action: 'drop', reason: 'no_backend', serviceId: 6, output: 'unchanged' });
    F.push({ name: 'ICMP error quoting a VIP port without service: no_service', ingress: 'a',
      input: icmpFrame(3, 3, buildIpv4({ ip: { src: VIP.web, dst: CLIENT, proto: IPPROTO_TCP }, tcp: { sport: 81, dport: 7402 } }), VIP.web), action: 'drop', reason: 'no_service', output: 'unchanged' });
  }
  return F;
}
