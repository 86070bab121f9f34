/**
 * The data-plane fixture table: the namespace layout, the map state, and {description, input,
 * expected action and reason, expected output frame} rows, in the manner of Katran's
 * KatranBaseTestFixtures.h. Expected frames are built from scratch with src/dataplane/packet.ts
 * (fresh checksums), never derived from the program's output.
 */
import assert from 'node:assert/strict';
import {
  buildFrame, buildIpv4, buildArpRequest, buildIpv6Udp, buildEthernet, internetChecksum, macToBuffer, ipToU32, u32ToIp,
  ETH_P_8021AD, DEFAULT_DST_MAC,
  IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, type FrameSpec, type TcpSpec, type UdpSpec, type Ipv4Spec,
} from '../src/dataplane/packet';
import { flowHash, vipFilterBit } from '../src/dataplane/jhash';
import { LB } from '../src/dataplane/abi';
import type { LabNeighbour, PortSpec, DatapathLab } from './datapath-lab';
import { BACKEND_ACTIVE, MODE_DSR, MODE_NAT, FlowCacheModel, type ModelSettings, type ModelState, type ReasonName } from './refmodel';
import { TEST_FLOW_SETS } from './datapath-harness';
import type { Reason6 } from './refmodel6';

/** The namespace of the data-path tests (XDPLB_DP_NETNS: another name, for a second run beside). */
export const DP_NETNS = process.env.XDPLB_DP_NETNS ?? 'xlbt-dp';

export const PORTS: PortSpec[] = [
  { suffix: 'a', mac: '02:00:00:0a:00:01', address: '198.18.0.1', address6: '2001:2:0:a::1' },  // clients; in tx_ports
  { suffix: 'b', mac: '02:00:00:0b:00:01', address: '198.18.1.1', address6: '2001:2:0:b::1' },  // backends; in tx_ports
  { suffix: 'c', mac: '02:00:00:0c:00:01', address: '198.18.2.1', address6: '2001:2:0:c::1' },  // NOT in tx_ports
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
  // IPv6 (test/datapath-fixtures6.ts): the same hosts, dual-stack.
  { port: 'a', ip: '2001:2:0:a::10', mac: MAC.client },
  { port: 'a', ip: '2001:2:0:a::fe', mac: MAC.routerA },
  { port: 'a', ip: '2001:2:0:a::50', mac: MAC.beOnA },
  { port: 'b', ip: '2001:2:0:b::10', mac: MAC.b10 },
  { port: 'b', ip: '2001:2:0:b::11', mac: MAC.b11 },
  { port: 'b', ip: '2001:2:0:b::12', mac: MAC.b12 },
  { port: 'b', ip: '2001:2:0:b::13', mac: MAC.b13 },
  { port: 'b', ip: '2001:2:0:b::14', mac: MAC.b14 },
  { port: 'c', ip: '2001:2:0:c::10', mac: MAC.c10 },
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
  { id: 13, ip: '198.18.1.13', port: 5353, service: 2 }, // ACTIVE, in no table (draining): service 2's previous backend
];

/** The epoch of the fixture's transition marks (and of the flows remembered in it). */
export const FIXTURE_EPOCH = 7;
/**
 * Moved slots (struct lb_maglev_slot marks) of the fixture tables, by service id and slot; every
 * other slot has not moved. They matter only with the flow cache on (docs/decisions.md
 * "Stateless steady state").
 */
const MARKS: Record<number, Record<number, { prev: number; young: boolean }>> = {
  1: { 0: { prev: 2, young: false }, 1: { prev: 1, young: true }, 2: { prev: 10, young: true } },
  2: { 0: { prev: 13, young: true }, 1: { prev: 13, young: false } },
  3: { 0: { prev: 12, young: false } },
};

/** The slot of service `serviceId`'s table a flow hashes to (seed 0). */
export function fixtureSlot(serviceId: number, saddr: string, daddr: string, sport: number, dport: number, proto: number): number {
  const svc = SERVICES.find((s) => s.id === serviceId)!;
  return flowHash(ipToU32(saddr), ipToU32(daddr), sport, dport, proto, 0) % svc.table.length;
}

const REVERSE = [
  { ip: '198.18.1.10', port: 80, proto: IPPROTO_TCP, vip: VIP.web, vport: 80, serviceId: 1, backendId: 1 },
  { ip: '198.18.1.11', port: 80, proto: IPPROTO_TCP, vip: VIP.web, vport: 80, serviceId: 1, backendId: 2 },
  { ip: '198.18.1.12', port: 5353, proto: IPPROTO_UDP, vip: VIP.web, vport: 53, serviceId: 2, backendId: 3 },
  { ip: '198.18.1.13', port: 0, proto: IPPROTO_TCP, vip: VIP.any, vport: 0, serviceId: 3, backendId: 4 },
  // 198.18.1.10 also serves VIP.any:8443 (backend 11): two VIPs, so no reverse_frags entry.
  { ip: '198.18.1.10', port: 8443, proto: IPPROTO_TCP, vip: VIP.any, vport: 8443, serviceId: 11, backendId: 11 },
];

/**
 * reverse_frags as Balancer.syncReverseFrags (src/balancer/balancer.ts) derives it: per backend address and protocol
 * whose reverse entries all name one VIP, that VIP (vport 0), under the lowest service id.
 */
function reverseFragsOf(reverse: typeof REVERSE): typeof REVERSE {
  const groups = new Map<string, typeof REVERSE>();
  for (const r of reverse) groups.set(`${r.ip}/${r.proto}`, [...(groups.get(`${r.ip}/${r.proto}`) ?? []), r]);
  const out: typeof REVERSE = [];
  for (const g of groups.values()) {
    if (new Set(g.map((r) => r.vip)).size !== 1) continue;
    const first = [...g].sort((a, b) => a.serviceId - b.serviceId)[0];
    out.push({ ...first, port: 0, vport: 0 });
  }
  return out;
}
const REVERSE_FRAGS = reverseFragsOf(REVERSE);

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
    reverseFrags: REVERSE_FRAGS.map((r) => ({ ...r, ip: ipToU32(r.ip), vip: ipToU32(r.vip) })),
    ifMacs: new Map(Object.values(lab.ports).map((p) => [p.ifindex, macToBuffer(p.mac)])),
    maglev: new Map(SERVICES.map((s) => [s.id, [...s.table]])),
    marks: new Map(Object.entries(MARKS).map(([id, slots]) => [Number(id), new Map(Object.entries(slots).map(([slot, m]) => [Number(slot), { prev: m.prev, epoch: FIXTURE_EPOCH, seen: false, young: m.young }]))])),
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
export const ACTION_NUMBER: Record<Action, number> = { drop: LB.ACTION_DROP, pass: LB.ACTION_PASS, tx: LB.ACTION_TX, redirect: LB.ACTION_REDIRECT };

export interface Fixture {
  name: string;
  ingress: 'a' | 'b';
  input: Buffer;
  settings?: Partial<ModelSettings>;
  /** flow-cache entries installed before the run: client 5-tuple -> backend id (epoch: FIXTURE_EPOCH unless given). */
  flows?: Array<{ saddr: string; daddr: string; sport: number; dport: number; proto: number; backendId: number; epoch?: number }>;
  action: Action;
  reason: Reason6;
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
  F.push({ name: 'ARP request passes (not IPv4)', ingress: 'a', input: buildArpRequest(CLIENT, '198.18.0.1', MAC.client), action: 'pass', reason: 'not_ip', output: 'unchanged' });
  F.push({ name: 'IPv6 not to a VIP passes (not_vip)', ingress: 'a', input: buildIpv6Udp(1000, 53), action: 'pass', reason: 'not_vip', output: 'unchanged' });
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
  F.push({ name: 'non-VIP fragment from a non-backend passes (not_vip)', ingress: 'b', input: tcpFrame('198.18.1.77', CLIENT, { sport: 80, dport: 5000 }, { ip: { mf: true } }), action: 'pass', reason: 'not_vip', output: 'unchanged' });
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

  // -- transitions: moved and unmoved Maglev slots, SYN and not, TCP and UDP (flow cache on)
  {
    const ACK = 0x10;
    const SYN = 0x02;
    /** The first client port from `from` whose flow to service `id` lands in `slot`. */
    const portIn = (id: number, daddr: string, dport: number, proto: number, slot: number, from: number): number => {
      let sp = from;
      while (fixtureSlot(id, CLIENT, daddr, sp, dport, proto) !== slot) sp++;
      return sp;
    };
    const on = { flowCache: true };
    const webRow = (name: string, slot: number, from: number, flags: number, flows: Array<{ backendId: number; epoch?: number }>, backendId: number, settings: Partial<ModelSettings> = on): void => {
      const sp = portIn(1, VIP.web, 80, IPPROTO_TCP, slot, from);
      F.push({ name, ingress: 'a', input: tcpFrame(CLIENT, VIP.web, { sport: sp, dport: 80, payload: PAYLOAD, flags }), settings,
        flows: flows.map((f) => ({ saddr: CLIENT, daddr: VIP.web, sport: sp, dport: 80, proto: IPPROTO_TCP, ...f })),
        action: 'redirect', reason: 'forwarded', serviceId: 1, backendId, output: natTcpOut(CLIENT, BACKENDS[backendId - 1], { sport: sp, dport: 80, payload: PAYLOAD, flags }) });
    };
    // Service 1 (table 1,2,1,2,1,2,1): slot 0 moved 2 -> 1, slot 1 moved 1 -> 2 (young), slot 2 moved from backend 10 (not usable) -> 1.
    webRow('unmoved slot: a remembered flow is not even looked at (the slot\'s backend)', 3, 9000, ACK, [{ backendId: 1 }], 2);
    webRow('unmoved slot: a SYN goes to the slot\'s backend', 4, 9000, SYN, [], 1);
    webRow('moved slot: an established segment (no SYN) missing in the cache goes to the previous backend', 0, 9000, ACK, [], 2);
    webRow('moved slot: a SYN takes the current backend, whatever is remembered', 0, 9000, SYN, [{ backendId: 2 }], 1);
    webRow('moved slot: a remembered flow on the current backend stays there', 0, 9000, ACK, [{ backendId: 1 }], 1);
    webRow('moved slot: a remembered flow on another usable backend of the service keeps it', 2, 9000, ACK, [{ backendId: 2 }], 2);
    webRow('moved slot: an entry of an earlier transition (other epoch) is stale: the previous backend', 1, 9000, ACK, [{ backendId: 2, epoch: FIXTURE_EPOCH - 1 }], 1);
    webRow('moved slot: an entry on an inactive backend is a miss: the previous backend', 0, 9000, ACK, [{ backendId: 10 }], 2);
    webRow('moved slot: an entry on another service\'s backend is a miss: the previous backend', 0, 9000, ACK, [{ backendId: 4 }], 2);
    webRow('moved slot whose previous backend is not usable: a miss takes the current backend', 2, 9000, ACK, [], 1);
    webRow('flow cache off (purely stateless): a moved slot is its current backend, the cache is ignored', 0, 9000, ACK, [{ backendId: 2 }], 1, { flowCache: false });
    // Service 2 (UDP VIP.web:53 -> 3; slot 0 moved from 13, young; slot 1 moved from 13, not young).
    const b3 = BACKENDS[2];
    const b13 = BACKENDS[12];
    const udpRow = (name: string, slot: number, flows: number[], b: BackendDef): void => {
      const sp = portIn(2, VIP.web, 53, IPPROTO_UDP, slot, 9500);
      F.push({ name, ingress: 'a', input: udpFrame(CLIENT, VIP.web, { sport: sp, dport: 53, payload: Buffer.from('query') }), settings: on,
        flows: flows.map((backendId) => ({ saddr: CLIENT, daddr: VIP.web, sport: sp, dport: 53, proto: IPPROTO_UDP, backendId })),
        action: 'redirect', reason: 'forwarded', serviceId: 2, backendId: b.id,
        output: udpFrame(CLIENT, b.ip, { sport: sp, dport: 5353, payload: Buffer.from('query') }, { eth: { dst: backendMac(b.ip), src: portMac('b') }, ip: { ttl: 63 } }) });
    };
    udpRow('UDP, unmoved slot: the slot\'s backend', 2, [13], b3);
    udpRow('UDP, moved slot in its young phase: a miss goes to the previous backend', 0, [], b13);
    udpRow('UDP, moved slot past its young phase: a miss is a new flow (the current backend)', 1, [], b3);
    udpRow('UDP, moved slot past its young phase: a remembered flow keeps the previous backend', 1, [13], b13);
    // Service 3 (every port of VIP.any; slot 0 moved from the draining backend 12).
    {
      const sp = portIn(3, VIP.any, 2222, IPPROTO_TCP, 0, 9100);
      const b12 = BACKENDS[11];
      F.push({ name: 'every-port service, moved slot: an established segment goes to the draining previous backend', ingress: 'a',
        input: tcpFrame(CLIENT, VIP.any, { sport: sp, dport: 2222, flags: ACK }), settings: on,
        action: 'redirect', reason: 'forwarded', serviceId: 3, backendId: 12, output: natTcpOut(CLIENT, b12, { sport: sp, dport: 2222, flags: ACK }) });
      const sp2 = portIn(3, VIP.any, 2222, IPPROTO_TCP, 1, 9100);
      F.push({ name: 'every-port service, unmoved slot: a remembered flow on the draining backend is not looked at', ingress: 'a',
        input: tcpFrame(CLIENT, VIP.any, { sport: sp2, dport: 2222, flags: ACK }), settings: on,
        flows: [{ saddr: CLIENT, daddr: VIP.any, sport: sp2, dport: 2222, proto: IPPROTO_TCP, backendId: 12 }],
        action: 'redirect', reason: 'forwarded', serviceId: 3, backendId: 4, output: natTcpOut(CLIENT, BACKENDS[3], { sport: sp2, dport: 2222, flags: ACK }) });
    }
    F.push({ name: 'an exact service of the port wins over the every-port service', ingress: 'a',
      input: tcpFrame(CLIENT, VIP.any, { sport: 9101, dport: 8443, flags: ACK }), settings: on,
      flows: [{ saddr: CLIENT, daddr: VIP.any, sport: 9101, dport: 8443, proto: IPPROTO_TCP, backendId: 12 }],
      action: 'redirect', reason: 'forwarded', serviceId: 11, backendId: 11, output: natTcpOut(CLIENT, BACKENDS[10], { sport: 9101, dport: 8443, flags: ACK }) });
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
  F.push(...verdictFixtures(web));
  // Frames are addressed to the ingress port's MAC unless a row says otherwise (builders default
  // to DEFAULT_DST_MAC); a frame the program passes untouched keeps it in the output.
  const own = (fx: Fixture, frame: Buffer): Buffer => {
    if (frame.length < 6 || !frame.subarray(0, 6).equals(macToBuffer(DEFAULT_DST_MAC))) return frame;
    const out = Buffer.from(frame);
    macToBuffer(portMac(fx.ingress)).copy(out, 0);
    return out;
  };
  return F.map((fx) => ({ ...fx, input: own(fx, fx.input), output: fx.output === 'unchanged' ? fx.output : own(fx, fx.output) }));
}

/** `frame` with its IPv4 version nibble set to `version` and the header checksum recomputed. */
export function withIpVersion(frame: Buffer, version: number): Buffer {
  const out = Buffer.from(frame);
  out[14] = ((version & 0x0f) << 4) | (out[14] & 0x0f);
  const hdr = (out[14] & 0x0f) * 4;
  out.writeUInt16BE(0, 24);
  out.writeUInt16BE(internetChecksum(out.subarray(14, 14 + hdr)), 24);
  return out;
}

/**
 * Splits an IPv4 datagram (IP header without options + payload) into fragments whose payloads
 * are `sizes` bytes (multiples of 8 except the last; the last takes the rest when the sizes
 * do not cover it), each with a fresh header checksum; returned as IP packets.
 */
export function fragmentDatagram(datagram: Buffer, sizes: number[]): Buffer[] {
  const hdrLen = (datagram[0] & 0x0f) * 4;
  const payload = datagram.subarray(hdrLen);
  const out: Buffer[] = [];
  let at = 0;
  for (let i = 0; at < payload.length; i++) {
    const size = i < sizes.length ? Math.min(sizes[i], payload.length - at) : payload.length - at;
    const last = at + size >= payload.length;
    const hdr = Buffer.from(datagram.subarray(0, hdrLen));
    hdr.writeUInt16BE(hdrLen + size, 2);
    hdr.writeUInt16BE((hdr.readUInt16BE(6) & 0x4000) | (last ? 0 : 0x2000) | (at / 8), 6);
    hdr.writeUInt16BE(0, 10);
    hdr.writeUInt16BE(internetChecksum(hdr), 10);
    out.push(Buffer.concat([hdr, payload.subarray(at, at + size)]));
    at += size;
  }
  return out;
}

/** Rows of the data-plane verdict hardening (issue 11): frames not for us, martians, IPv4
 * version, header checksums, echo checksums, TTL expiry, NAT reply fragments. */
function verdictFixtures(web: (sport: number) => BackendDef): Fixture[] {
  const F: Fixture[] = [];
  const tcpTo = (src: string, dst: string, sport: number, x: Extra = {}) => tcpFrame(src, dst, { sport, dport: 80, payload: PAYLOAD }, x);

  // -- destination MAC: only frames to the ingress interface's own MAC are processed
  for (const [label, mac] of [['broadcast', 'ff:ff:ff:ff:ff:ff'], ['IPv4 multicast', '01:00:5e:00:00:01'], ['IPv6 multicast', '33:33:00:00:00:01'],
    ["another host's unicast", '02:00:00:0a:00:99'], ["the balancer's other port's", portMac('b')]] as const) {
    F.push({ name: `VIP TCP to ${label} MAC passes unprocessed (other_mac)`, ingress: 'a', input: tcpTo(CLIENT, VIP.web, 11000, { eth: { dst: mac } }), action: 'pass', reason: 'other_mac', output: 'unchanged' });
  }
  F.push({ name: "backend reply to another host's MAC passes unprocessed (other_mac)", ingress: 'b', input: tcpFrame('198.18.1.10', CLIENT, { sport: 80, dport: 11001 }, { eth: { dst: '02:00:00:0b:00:99' } }), action: 'pass', reason: 'other_mac', output: 'unchanged' });
  F.push({ name: 'ICMP echo to a VIP sent to the broadcast MAC is not answered (other_mac)', ingress: 'a', input: buildFrame({ eth: { dst: 'ff:ff:ff:ff:ff:ff' }, ip: { src: CLIENT, dst: VIP.web, proto: IPPROTO_ICMP }, icmp: { type: 8 } }), action: 'pass', reason: 'other_mac', output: 'unchanged' });
  F.push({ name: 'ARP broadcast still passes as not_ip (the MAC check is for IPv4 only)', ingress: 'b', input: buildArpRequest('198.18.1.10', '198.18.1.1', MAC.b10), action: 'pass', reason: 'not_ip', output: 'unchanged' });

  // -- martian sources toward a VIP (every class), and martian clients of NAT replies
  for (const src of ['0.0.0.0', '0.1.2.3', '127.0.0.1', '127.255.0.9', '224.0.0.5', '239.255.255.250', '240.0.0.1', '255.255.255.255', VIP.web]) {
    F.push({ name: `VIP TCP from martian source ${src} is dropped (martian)`, ingress: 'a', input: tcpTo(src, VIP.web, 11100), action: 'drop', reason: 'martian', output: 'unchanged' });
  }
  F.push({ name: 'VIP UDP (port-translated service) from 127.0.0.1 is dropped (martian)', ingress: 'a', input: udpFrame('127.0.0.1', VIP.web, { sport: 11101, dport: 53 }), action: 'drop', reason: 'martian', output: 'unchanged' });
  F.push({ name: 'every-port VIP from 224.1.1.1 is dropped (martian)', ingress: 'a', input: tcpFrame('224.1.1.1', VIP.any, { sport: 11102, dport: 2222 }), action: 'drop', reason: 'martian', output: 'unchanged' });
  F.push({ name: 'DSR VIP from 0.0.0.0 is dropped (martian)', ingress: 'a', input: tcpFrame('0.0.0.0', VIP.dsr, { sport: 11103, dport: 80 }), action: 'drop', reason: 'martian', output: 'unchanged' });
  F.push({ name: 'ICMP echo to a VIP from 127.0.0.1 is not answered (martian)', ingress: 'a', input: buildFrame({ ip: { src: '127.0.0.1', dst: VIP.web, proto: IPPROTO_ICMP }, icmp: { type: 8 } }), action: 'drop', reason: 'martian', output: 'unchanged' });
  F.push({ name: 'VIP without service from 240.0.0.1 is dropped (martian before no_service)', ingress: 'a', input: tcpFrame('240.0.0.1', VIP.bare, { sport: 11104, dport: 80 }), action: 'drop', reason: 'martian', output: 'unchanged' });
  F.push({ name: 'a remembered flow from a martian source is dropped too (martian)', ingress: 'a', input: tcpFrame('127.0.0.1', VIP.web, { sport: 11105, dport: 80, flags: 0x10 }), settings: { flowCache: true },
    flows: [{ saddr: '127.0.0.1', daddr: VIP.web, sport: 11105, dport: 80, proto: IPPROTO_TCP, backendId: 1 }], action: 'drop', reason: 'martian', output: 'unchanged' });
  F.push({ name: 'non-VIP traffic from 0.0.0.0 is left to the kernel (not_vip)', ingress: 'a', input: udpFrame('0.0.0.0', '198.18.0.1', { sport: 68, dport: 67 }), action: 'pass', reason: 'not_vip', output: 'unchanged' });
  for (const dst of ['0.0.0.0', '127.0.0.1', '224.0.0.251', '255.255.255.255', '240.1.2.3']) {
    F.push({ name: `NAT reply toward martian client ${dst} is dropped (martian)`, ingress: 'b', input: tcpFrame('198.18.1.10', dst, { sport: 80, dport: 11110 }), action: 'drop', reason: 'martian', output: 'unchanged' });
  }

  // -- IPv4 EtherType with another version
  for (const v of [0, 5, 6, 15]) {
    F.push({ name: `IPv4 EtherType with version ${v} to a VIP is malformed`, ingress: 'a', input: withIpVersion(tcpTo(CLIENT, VIP.web, 11200 + v), v), action: 'drop', reason: 'malformed', output: 'unchanged' });
  }
  F.push({ name: 'IPv4 EtherType with version 6 as a NAT reply is malformed', ingress: 'b', input: withIpVersion(tcpFrame('198.18.1.10', CLIENT, { sport: 80, dport: 11210 }), 6), action: 'drop', reason: 'malformed', output: 'unchanged' });

  // -- the IPv4 header checksum is verified (RFC 1812 5.2.2)
  F.push({ name: 'VIP TCP with a wrong IP header checksum is dropped (bad_checksum)', ingress: 'a', input: tcpTo(CLIENT, VIP.web, 11300, { ip: { checksum: 0x1234 } }), action: 'drop', reason: 'bad_checksum', output: 'unchanged' });
  F.push({ name: 'VIP TCP with IP options and a wrong header checksum is dropped (bad_checksum)', ingress: 'a', input: tcpTo(CLIENT, VIP.web, 11301, { ip: { options: Buffer.from([1, 1, 1, 0, 1, 1, 1, 0]), checksum: 0 } }), action: 'drop', reason: 'bad_checksum', output: 'unchanged' });
  {
    // A corrupted option byte (checksum computed before the corruption): only the options word differs.
    const good = tcpTo(CLIENT, VIP.web, 11302, { ip: { options: Buffer.from([1, 1, 1, 0]) } });
    const bad = Buffer.from(good); bad[34 + 2] ^= 0x40;
    F.push({ name: 'VIP TCP whose IP option bytes were corrupted is dropped (bad_checksum)', ingress: 'a', input: bad, action: 'drop', reason: 'bad_checksum', output: 'unchanged' });
  }
  {
    // One off either way: the nearest wrong sums (the program tests the sum for divisibility by
    // 65535, bpf/lb.bpf.c ip_checksum_ok; the model folds it).
    for (const [delta, sp] of [[1, 11306], [-1, 11307]] as const) {
      const frame = tcpTo(CLIENT, VIP.web, sp);
      frame.writeUInt16BE((frame.readUInt16BE(24) + delta + 0x10000) & 0xffff, 24);
      F.push({ name: `VIP TCP whose IP header checksum is ${delta > 0 ? 'one more' : 'one less'} than right is dropped (bad_checksum)`, ingress: 'a', input: frame, action: 'drop', reason: 'bad_checksum', output: 'unchanged' });
    }
  }
  F.push({ name: 'NAT reply with a wrong IP header checksum is dropped (bad_checksum)', ingress: 'b', input: tcpFrame('198.18.1.10', CLIENT, { sport: 80, dport: 11303 }, { ip: { checksum: 0xffff } }), action: 'drop', reason: 'bad_checksum', output: 'unchanged' });
  F.push({ name: 'non-VIP IPv4 with a wrong header checksum is dropped (bad_checksum)', ingress: 'a', input: tcpFrame(CLIENT, '198.18.7.7', { sport: 11304, dport: 80 }, { ip: { checksum: 1 } }), action: 'drop', reason: 'bad_checksum', output: 'unchanged' });
  {
    const sp = 11305; const b = web(sp);
    F.push({ name: 'VIP TCP with a correct header checksum of 0xffff-equivalent words still forwards', ingress: 'a', input: tcpTo(CLIENT, VIP.web, sp, { ip: { id: 0xffff, tos: 0xff } }), action: 'redirect', reason: 'forwarded', serviceId: 1, backendId: b.id,
      output: natTcpOut(CLIENT, b, { sport: sp, dport: 80, payload: PAYLOAD }, { ip: { id: 0xffff, tos: 0xff } }) });
  }

  // -- ICMP echo: answered only when both checksums verify
  {
    const echo = (payload: Buffer, x: { icmpChecksum?: number; ipChecksum?: number; trailer?: Buffer } = {}) => buildFrame({
      eth: { src: MAC.client }, ip: { src: CLIENT, dst: VIP.web, proto: IPPROTO_ICMP, ttl: 50, checksum: x.ipChecksum },
      icmp: { type: 8, rest: 0x77770001, payload, checksum: x.icmpChecksum }, trailer: x.trailer,
    });
    const reply = (payload: Buffer, trailer?: Buffer) => buildFrame({
      eth: { dst: MAC.client, src: portMac('a') }, ip: { src: VIP.web, dst: CLIENT, proto: IPPROTO_ICMP, ttl: 64 },
      icmp: { type: 0, rest: 0x77770001, payload }, trailer,
    });
    F.push({ name: 'ICMP echo with a wrong ICMP checksum is dropped, not answered (bad_checksum)', ingress: 'a', input: echo(Buffer.from('ping'), { icmpChecksum: 0xbeef }), action: 'drop', reason: 'bad_checksum', output: 'unchanged' });
    const flipped = echo(Buffer.from('ping-payload')); flipped[flipped.length - 1] ^= 1;
    F.push({ name: 'ICMP echo whose payload was corrupted in transit is dropped (bad_checksum)', ingress: 'a', input: flipped, action: 'drop', reason: 'bad_checksum', output: 'unchanged' });
    F.push({ name: 'ICMP echo with a wrong IP header checksum is dropped, not answered (bad_checksum)', ingress: 'a', input: echo(Buffer.from('ping'), { ipChecksum: 0x4242 }), action: 'drop', reason: 'bad_checksum', output: 'unchanged' });
    F.push({ name: 'ICMP echo with an odd-length payload and correct checksums is answered', ingress: 'a', input: echo(Buffer.from('odd-length-payload!')), action: 'tx', reason: 'icmp_echo', output: reply(Buffer.from('odd-length-payload!')) });
    const big = Buffer.alloc(1400, 0xa5); big.write('large-echo');
    F.push({ name: 'ICMP echo of 1408 bytes (checksum verified over all of it) is answered', ingress: 'a', input: echo(big), action: 'tx', reason: 'icmp_echo', output: reply(big) });
    const pad = Buffer.alloc(6, 0xee);
    F.push({ name: 'ICMP echo followed by Ethernet padding: checksum over the ICMP message only, answered', ingress: 'a', input: echo(Buffer.from('pad'), { trailer: pad }), action: 'tx', reason: 'icmp_echo', output: reply(Buffer.from('pad'), pad) });
  }

  // -- TTL expiry of a NAT VIP packet: ICMP time exceeded from the VIP (RFC 1812 5.3.1)
  {
    const timeExceeded = (input: Buffer, tos = 0xc0): Buffer => {
      const ihl = (input[14] & 0x0f) * 4;
      return buildFrame({ eth: { dst: MAC.client, src: portMac('a') }, ip: { src: VIP.web, dst: CLIENT, proto: IPPROTO_ICMP, ttl: 64, id: 0, tos },
        icmp: { type: 11, code: 0, rest: 0, payload: input.subarray(14, 14 + ihl + 8) } });
    };
    for (const ttl of [0, 1]) {
      const sp = 11400 + ttl; const b = web(sp);
      const input = tcpTo(CLIENT, VIP.web, sp, { eth: { src: MAC.client }, ip: { ttl } });
      F.push({ name: `NAT TCP with TTL ${ttl} is answered with ICMP time exceeded from the VIP (ttl, TX)`, ingress: 'a', input, action: 'tx', reason: 'ttl', serviceId: 1, backendId: b.id, output: timeExceeded(input) });
    }
    const opts = Buffer.from([1, 1, 1, 0, 1, 1, 1, 0]);
    const sp = 11402; const b = web(sp);
    const withOpts = tcpTo(CLIENT, VIP.web, sp, { eth: { src: MAC.client }, ip: { ttl: 1, options: opts, tos: 0x10 }, trailer: Buffer.alloc(8) });
    F.push({ name: 'NAT TCP with TTL 1, IP options, tos and padding: time exceeded quotes the whole header + 8 bytes', ingress: 'a', input: withOpts, action: 'tx', reason: 'ttl', serviceId: 1, backendId: b.id, output: timeExceeded(withOpts, 0xd0) });
    const udpIn = udpFrame(CLIENT, VIP.web, { sport: 11403, dport: 53, payload: Buffer.from('q') }, { eth: { src: MAC.client }, ip: { ttl: 1 } });
    F.push({ name: 'NAT UDP with TTL 1 is answered with ICMP time exceeded (ttl, TX)', ingress: 'a', input: udpIn, action: 'tx', reason: 'ttl', serviceId: 2, backendId: 3, output: timeExceeded(udpIn) });
  }

  // -- NAT reply fragments
  {
    const data = Buffer.alloc(100); for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
    const udp = (src: string, sport: number, ttl: number) => buildIpv4({ ip: { src, dst: CLIENT, proto: IPPROTO_UDP, ttl, id: 0x4444 }, udp: { sport, dport: 11500, payload: data } });
    const inFr = fragmentDatagram(udp('198.18.1.12', 5353, 64), [32, 48]);
    const outFr = fragmentDatagram(udp(VIP.web, 53, 63), [32, 48]);
    const toClient = { dst: MAC.client, src: portMac('a') };
    ['first', 'middle', 'last'].forEach((label, i) => {
      F.push({ name: `NAT UDP reply, ${label} fragment: source address${i === 0 ? ', port and UDP checksum (whole datagram)' : ''} translated`, ingress: 'b',
        input: buildEthernet({}, inFr[i]), action: 'redirect', reason: 'reversed', serviceId: 2, backendId: 3, output: buildEthernet(toClient, outFr[i]) });
    });
    const tcp = (src: string, ttl: number) => buildIpv4({ ip: { src, dst: CLIENT, proto: IPPROTO_TCP, ttl, id: 0x4545 }, tcp: { sport: 80, dport: 11501, flags: 0x18, payload: data } });
    const tIn = fragmentDatagram(tcp('198.18.1.11', 64), [40]);
    const tOut = fragmentDatagram(tcp(VIP.web, 63), [40]);
    F.push({ name: 'NAT TCP reply, first fragment: source and TCP checksum translated', ingress: 'b', input: buildEthernet({}, tIn[0]), action: 'redirect', reason: 'reversed', serviceId: 1, backendId: 2, output: buildEthernet(toClient, tOut[0]) });
    F.push({ name: 'NAT TCP reply, last fragment: source translated', ingress: 'b', input: buildEthernet({}, tIn[1]), action: 'redirect', reason: 'reversed', serviceId: 1, backendId: 2, output: buildEthernet(toClient, tOut[1]) });
    const wIn = fragmentDatagram(buildIpv4({ ip: { src: '198.18.1.13', dst: CLIENT, proto: IPPROTO_TCP, id: 0x4646 }, tcp: { sport: 2222, dport: 11502, payload: data } }), [40]);
    const wOut = fragmentDatagram(buildIpv4({ ip: { src: VIP.any, dst: CLIENT, proto: IPPROTO_TCP, id: 0x4646, ttl: 63 }, tcp: { sport: 2222, dport: 11502, payload: data } }), [40]);
    F.push({ name: 'NAT reply of an every-port service, later fragment: source translated', ingress: 'b', input: buildEthernet({}, wIn[1]), action: 'redirect', reason: 'reversed', serviceId: 3, backendId: 4, output: buildEthernet(toClient, wOut[1]) });
    // 198.18.1.10 answers for two VIPs: its first fragments carry ports (translated), later ones pass.
    const aIn = fragmentDatagram(buildIpv4({ ip: { src: '198.18.1.10', dst: CLIENT, proto: IPPROTO_TCP, id: 0x4747 }, tcp: { sport: 80, dport: 11503, payload: data } }), [40]);
    const aOut = fragmentDatagram(buildIpv4({ ip: { src: VIP.web, dst: CLIENT, proto: IPPROTO_TCP, id: 0x4747, ttl: 63 }, tcp: { sport: 80, dport: 11503, payload: data } }), [40]);
    F.push({ name: 'reply fragment of a backend serving two VIPs, first fragment (ports): translated', ingress: 'b', input: buildEthernet({}, aIn[0]), action: 'redirect', reason: 'reversed', serviceId: 1, backendId: 1, output: buildEthernet(toClient, aOut[0]) });
    F.push({ name: 'reply fragment of a backend serving two VIPs, later fragment: passes untranslated (not_vip)', ingress: 'b', input: buildEthernet({}, aIn[1]), action: 'pass', reason: 'not_vip', output: 'unchanged' });
    const tiny = fragmentDatagram(tcp('198.18.1.11', 64), [8]);
    F.push({ name: 'reply first fragment too short for the TCP header passes untranslated (not_vip)', ingress: 'b', input: buildEthernet({}, tiny[0]), action: 'pass', reason: 'not_vip', output: 'unchanged' });
    const other = fragmentDatagram(buildIpv4({ ip: { src: '198.18.1.77', dst: CLIENT, proto: IPPROTO_UDP }, udp: { sport: 53, dport: 11504, payload: data } }), [32]);
    F.push({ name: 'later fragment from a non-backend passes (not_vip)', ingress: 'b', input: buildEthernet({}, other[1]), action: 'pass', reason: 'not_vip', output: 'unchanged' });
    const ttl1 = fragmentDatagram(udp('198.18.1.12', 5353, 1), [32]);
    F.push({ name: 'reply later fragment with TTL 1 passes (ttl; the kernel answers time exceeded to the backend)', ingress: 'b', input: buildEthernet({}, ttl1[1]), action: 'pass', reason: 'ttl', serviceId: 2, backendId: 3, output: 'unchanged' });
    const mart = fragmentDatagram(buildIpv4({ ip: { src: '198.18.1.12', dst: '127.0.0.1', proto: IPPROTO_UDP }, udp: { sport: 5353, dport: 1, payload: data } }), [32]);
    F.push({ name: 'reply later fragment toward a martian client is dropped (martian)', ingress: 'b', input: buildEthernet({}, mart[1]), action: 'drop', reason: 'martian', output: 'unchanged' });
  }
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
    // A NAT reply's later fragments leave from the VIP, so a router may quote one: its 8 quoted
    // bytes are payload, not ports (here they would match VIP.any's every-port service).
    const data = Buffer.alloc(100); for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
    const laterFrag = fragmentDatagram(buildIpv4({ ip: { src: VIP.any, dst: CLIENT, proto: IPPROTO_TCP, ttl: 1 }, tcp: { sport: 2222, dport: 7405, payload: data } }), [40])[1];
    F.push({ name: 'time-exceeded quoting a later fragment of a VIP reply (no ports quoted): icmp_unsupported', ingress: 'a', input: icmpFrame(11, 0, laterFrag.subarray(0, 28), VIP.any), action: 'drop', reason: 'icmp_unsupported', output: 'unchanged' });
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
