/**
 * The XDP program (bpf/lb.o) through BPF_PROG_TEST_RUN inside namespace xlbt-dp: every fixture
 * row's verdict, whole output frame, recomputed checksums, counter movements and trace event,
 * plus the TS flow hash against the program's Maglev choice and the flow cache's memory.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { enterNetns, RingBuffer } from '../src/bpf';
import {
  checksumProblems, checksumProblemsAny, bufferToIp6, ip6ToBuffer, buildFrame6, parseFrame6, parseFrame, buildFrame, buildIpv4, buildEthernet, internetChecksum, ipToU32, u32ToIp, IPPROTO_TCP, IPPROTO_UDP, ETH_P_IP,
} from '../src/dataplane/packet';
import { LB, LbEventCodec, LbFlowEntryCodec, LbService6SlotCodec, ipv6ToBytes, bytesToIpv6 } from '../src/dataplane/abi';
import { flowCacheHash, flowHash, serviceSlotIndex, serviceSlotIndex6 } from '../src/dataplane/jhash';
import { createDatapathLab, type DatapathLab } from './datapath-lab';
import {
  installState, installFlows, settingsFor, readFlows, readCounters, counterDeltas, fastRedirectBase, backendValue, readSeen, serviceKey, serviceValue, TEST_FLOW_SETS, type Installed,
} from './datapath-harness';
import { loadTarget, type Target } from './datapath-target';
import {
  DP_NETNS, PORTS, NEIGHBOURS, DEFAULT_SETTINGS, ACTION_NUMBER, CLIENT, VIP, MAC, FIXTURE_EPOCH, fixtureState, fixtures, fixtureSlot, fragmentDatagram, type Fixture,
} from './datapath-fixtures';
import { reasonNumber, flowHash6 } from './refmodel6';
import { fixtures6, withV6, VIP6 } from './datapath-fixtures6';
import { runModel, BACKEND_ACTIVE, MODE_NAT, FlowCacheModel, flowKey, type ModelState } from './refmodel';

// IPv4 fixture ids 1..13, IPv6 ones 21..32 (one id space).
const SERVICE_IDS = Array.from({ length: 33 }, (_, i) => i);
const BACKEND_IDS = Array.from({ length: 35 }, (_, i) => i);

interface DecodedEvent {
  ifindex: number; pktLen: number; serviceId: number; backendId: number;
  saddr: string; daddr: string; sport: number; dport: number; proto: number; action: number; reason: number;
  family: number;
}

function decodeEvent(rec: Buffer): DecodedEvent {
  assert.equal(rec.length, LbEventCodec.size, `lb_event is ${LbEventCodec.size} bytes`);
  const { tsNs: _ts, ...fields } = LbEventCodec.decode(rec);
  // IPv4 (and not-IP) events carry ::ffff:a.b.c.d: compared as the dotted IPv4 the TS decoder makes of them.
  const v4 = (a: string) => { const b = ipv6ToBytes(a); return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`; };
  if (fields.family !== LB.FAMILY_IPV6) {
    assert.match(fields.saddr, /^::ffff:/, 'a family-4 event stores v4-mapped addresses');
    return { ...fields, saddr: v4(fields.saddr), daddr: v4(fields.daddr) };
  }
  return fields;
}

/** What the event records "as received": addresses of a valid IPv4 header, ports of a whole TCP/UDP header. */
/** The same for an IPv6 frame (bpf/lb6.h process6): family 6 from the EtherType on; addresses of a
 * valid fixed header; proto where the extension-header walk stopped; ports of a whole TCP/UDP
 * header of an unfragmented packet (or a first fragment not to a VIP). */
function receivedFields6(frame: Buffer, reason: string): Pick<DecodedEvent, 'saddr' | 'daddr' | 'sport' | 'dport' | 'proto' | 'family'> {
  const none = { saddr: '::', daddr: '::', sport: 0, dport: 0, proto: 0, family: 6 };
  if (reason === 'other_mac' || frame.length < 54 || frame[14] >> 4 !== 6) return none;
  const len = frame.readUInt16BE(18);
  if (len === 0 || len > frame.length - 54) return none;
  const out = { ...none, saddr: bytesToIpv6(frame, 22), daddr: bytesToIpv6(frame, 38) };
  let nh = frame[20];
  let off = 54;
  let left = len;
  let frag = 0;
  for (let i = 0; i <= LB.EXT_HEADERS_MAX; i++) {
    if (![0, 43, 44, 51, 60].includes(nh) || (nh === 0 && i > 0) || i === LB.EXT_HEADERS_MAX) break;
    if (off + 8 > frame.length || left < 8) break;
    const l = nh === 44 ? 8 : nh === 51 ? (frame[off + 1] + 2) * 4 : (frame[off + 1] + 1) * 8;
    if (nh === 44) frag = frame.readUInt16BE(off + 2);
    if (nh === 43 && frame[off + 3] !== 0) break;
    if (l > left || off + l > frame.length) break;
    nh = frame[off];
    off += l;
    left -= l;
  }
  out.proto = nh;
  const need = nh === 6 ? 20 : nh === 17 ? 8 : 0;
  const firstReplyFragment = (frag & 0xfff8) === 0 && !(Object.values(VIP6) as string[]).includes(out.daddr);
  if (need && (frag & 0xfff9) === 0 || (need && firstReplyFragment)) {
    if (need <= left && off + need <= frame.length) {
      out.sport = frame.readUInt16BE(off);
      out.dport = frame.readUInt16BE(off + 2);
    }
  }
  return out;
}

function receivedFields(frame: Buffer, reason: string): Pick<DecodedEvent, 'saddr' | 'daddr' | 'sport' | 'dport' | 'proto' | 'family'> {
  if (frame.length >= 14 && frame.readUInt16BE(12) === 0x86dd) return receivedFields6(frame, reason);
  const family = frame.length >= 14 && frame.readUInt16BE(12) === ETH_P_IP ? 4 : 0;
  const none = { saddr: '0.0.0.0', daddr: '0.0.0.0', sport: 0, dport: 0, proto: 0, family };
  // Frames to another MAC are not parsed at all.
  if (frame.length < 34 || frame.readUInt16BE(12) !== ETH_P_IP || reason === 'other_mac') return none;
  const ihl = (frame[14] & 0x0f) * 4;
  const totLen = frame.readUInt16BE(16);
  if (frame[14] >> 4 !== 4 || ihl < 20 || 14 + ihl > frame.length || totLen < ihl || totLen > frame.length - 14) return none;
  const proto = frame[23];
  const out = { saddr: u32ToIp(frame.readUInt32BE(26)), daddr: u32ToIp(frame.readUInt32BE(30)), sport: 0, dport: 0, proto, family };
  // Ports of a first fragment are read only when it is not to a VIP (a NAT reply's first fragment).
  const fragOff = frame.readUInt16BE(20);
  const firstReplyFragment = (fragOff & 0x1fff) === 0 && !(Object.values(VIP) as string[]).includes(out.daddr);
  const fragment = (fragOff & 0x3fff) !== 0 && !firstReplyFragment;
  const need = proto === IPPROTO_TCP ? 20 : proto === IPPROTO_UDP ? 8 : 0;
  if (need && !fragment && reason !== 'bad_checksum' && need <= totLen - ihl && 14 + ihl + need <= frame.length) {
    out.sport = frame.readUInt16BE(14 + ihl);
    out.dport = frame.readUInt16BE(14 + ihl + 2);
  }
  return out;
}

function expectedDeltas(fx: Fixture, redirectBase: number): string[] {
  const len = fx.input.length;
  const a = ACTION_NUMBER[fx.action];
  const r = reasonNumber(fx.reason);
  const v = r * LB.ACTION_SLOTS + a;
  const dir = fx.reason === 'reversed' ? 'rev' : fx.reason === 'forwarded' || fx.reason === 'icmp_error' ? 'fwd' : null;
  // To or from a backend, sent on: its one fast counter (src/dataplane/counters.ts).
  if ((fx.reason === 'forwarded' || fx.reason === 'reversed') && fx.backendId && (fx.action === 'tx' || fx.action === 'redirect')) {
    const slot = fx.backendId + (fx.action === 'redirect' ? redirectBase : 0);
    return [`backend_fast_stats[${slot}].${dir}_packets: +1`, `backend_fast_stats[${slot}].${dir}_bytes: +${len}`].sort();
  }
  const out = [`verdict_stats[${v}].packets: +1`, `verdict_stats[${v}].bytes: +${len}`];
  if (dir) {
    out.push(`service_stats[${fx.serviceId}].${dir}_packets: +1`, `service_stats[${fx.serviceId}].${dir}_bytes: +${len}`);
    out.push(`backend_stats[${fx.backendId}].${dir}_packets: +1`, `backend_stats[${fx.backendId}].${dir}_bytes: +${len}`);
  }
  return out.sort();
}

/** A readable account of where two frames differ. */
function frameDiff(got: Buffer, want: Buffer): string {
  const bytes: string[] = [];
  for (let i = 0; i < Math.max(got.length, want.length); i++) {
    if (got[i] !== want[i]) bytes.push(`@${i}: got ${got[i]?.toString(16)} want ${want[i]?.toString(16)}`);
  }
  return `length ${got.length} vs ${want.length}; ${bytes.slice(0, 12).join(', ')}\n got ${JSON.stringify(parseFrame(got))}\nwant ${JSON.stringify(parseFrame(want))}`;
}

describe(`XDP data path: fixture table (bpf/lb.o in netns ${DP_NETNS})`, () => {
  let lab: DatapathLab;
  let target: Target;
  let restore: () => void = () => {};
  let state: ModelState;
  let installed: Installed;
  let ring: RingBuffer;
  const events: Buffer[] = [];

  before(() => {
    lab = createDatapathLab(DP_NETNS, PORTS, NEIGHBOURS);
    restore = enterNetns(DP_NETNS); // tx_ports and the test-run ingress ifindex live in the namespace
    target = loadTarget();
    state = withV6(fixtureState(lab), lab);
    installed = installState(target.maps, state); // the inner tables close with the target
    ring = new RingBuffer(target.map('events'), (rec) => events.push(rec));
  });

  after(() => {
    ring?.close();
    target?.close();
    restore();
    lab?.destroy();
  });

  const table = [...fixtures(), ...fixtures6()];
  test('the table has at least 40 rows with distinct names', () => {
    assert.ok(table.length >= 40, `only ${table.length} fixtures`);
    assert.equal(new Set(table.map((f) => f.name)).size, table.length);
  });

  for (const fx of table) {
    test(fx.name, () => {
      const settings = { ...DEFAULT_SETTINGS, ...fx.settings };
      target.maps.update('settings', Buffer.alloc(4), settingsFor(state, settings));
      const flows = new FlowCacheModel(TEST_FLOW_SETS);
      for (const f of fx.flows ?? []) {
        const key = [ipToU32(f.saddr), ipToU32(f.daddr), f.sport, f.dport, f.proto] as const;
        flows.remember(flowCacheHash(...key, state.seed), flowKey(...key), f.backendId, f.epoch ?? FIXTURE_EPOCH);
      }
      const rowState: ModelState = { ...state, settings, flows, v6: state.v6 && { ...state.v6, flows: new FlowCacheModel(TEST_FLOW_SETS) } };
      installFlows(target.maps, rowState);
      ring.consume();
      events.length = 0;
      const ingress = lab.ports[fx.ingress].ifindex;
      const before = readCounters(target.maps, SERVICE_IDS, BACKEND_IDS);

      const res = target.program.testRun(fx.input, { ingressIfindex: ingress });

      assert.equal(res.retval, ACTION_NUMBER[fx.action], `action: got ${res.retval}`);
      const want = fx.output === 'unchanged' ? fx.input : fx.output;
      assert.ok(res.data.equals(want), `output frame differs: ${frameDiff(res.data, want)}`);
      if (fx.output !== 'unchanged' && fx.action !== 'drop') {
        assert.deepEqual(checksumProblemsAny(res.data), [], 'checksums of the output, recomputed from scratch');
      }

      const after = readCounters(target.maps, SERVICE_IDS, BACKEND_IDS);
      assert.deepEqual(counterDeltas(before, after), expectedDeltas(fx, fastRedirectBase(target.maps)), 'counters moved exactly as expected');

      // The reference model (used by the fuzz test) must agree on every fixture too (below).
      const model = runModel(rowState, fx.input, ingress);
      ring.consume();
      assert.equal(events.length, 1, 'one sampled event (sample_rate 1)');
      assert.deepEqual(decodeEvent(events[0]), {
        ifindex: ingress, pktLen: fx.input.length, serviceId: fx.serviceId ?? 0, backendId: fx.backendId ?? 0,
        ...receivedFields(fx.input, fx.reason), action: ACTION_NUMBER[fx.action], reason: reasonNumber(fx.reason),
      });

      assert.equal(model.action, res.retval, 'reference model action');
      assert.equal(model.reason, reasonNumber(fx.reason), 'reference model reason');
      assert.ok(model.frame.equals(res.data), 'reference model frame');
    });
  }

  test('a NAT UDP reply fragmented by the backend reassembles at the client: VIP source, VIP port, valid checksum', () => {
    target.maps.update('settings', Buffer.alloc(4), settingsFor(state, { fragPolicy: 0, sampleRate: 0, flowCache: false }));
    // 3000 bytes of answer from backend 198.18.1.12:5353 (service 2: VIP.web:53), cut in three.
    const data = Buffer.alloc(3000); for (let i = 0; i < data.length; i++) data[i] = (i * 13 + 7) & 0xff;
    const datagram = buildIpv4({ ip: { src: '198.18.1.12', dst: CLIENT, proto: IPPROTO_UDP, id: 0x5151 }, udp: { sport: 5353, dport: 40404, payload: data } });
    const fragments = fragmentDatagram(datagram, [1480, 1480]);
    assert.equal(fragments.length, 3);
    const out = fragments.map((f) => {
      const res = target.program.testRun(buildEthernet({ dst: PORTS[1].mac }, f), { ingressIfindex: lab.ports.b.ifindex });
      assert.equal(res.retval, ACTION_NUMBER.redirect, 'every fragment is sent on');
      return res.data.subarray(14);
    });
    // Reassemble (RFC 791): payloads in offset order after the first header.
    const payload = Buffer.concat(out.map((ip) => ip.subarray((ip[0] & 0x0f) * 4, ip.readUInt16BE(2))));
    for (const ip of out) {
      assert.equal(u32ToIp(ip.readUInt32BE(12)), VIP.web, 'every fragment comes from the VIP');
      assert.equal(ip[8], 63, 'TTL decremented once');
    }
    const whole = Buffer.from(out[0].subarray(0, 20));
    whole.writeUInt16BE(20 + payload.length, 2);
    whole.writeUInt16BE(0, 6);
    whole.writeUInt16BE(0, 10);
    whole.writeUInt16BE(internetChecksum(whole), 10);
    const reassembled = buildEthernet({}, Buffer.concat([whole, payload]));
    const parsed = parseFrame(reassembled);
    assert.equal(parsed.udp!.sport, 53, 'the VIP port');
    assert.equal(parsed.udp!.dport, 40404);
    assert.ok(payload.subarray(8).equals(data), 'the data arrives intact');
    assert.deepEqual(checksumProblems(reassembled), [], 'the reassembled datagram\'s UDP checksum verifies');
  });

  test('sample_rate 0 emits no events', () => {
    target.maps.update('settings', Buffer.alloc(4), settingsFor(state, { fragPolicy: 0, sampleRate: 0, flowCache: false }));
    ring.consume();
    events.length = 0;
    const frame = buildFrame({ eth: { dst: PORTS[0].mac }, ip: { src: CLIENT, dst: VIP.web, proto: IPPROTO_TCP }, tcp: { sport: 1, dport: 80 } });
    for (let i = 0; i < 10; i++) target.program.testRun(frame, { ingressIfindex: lab.ports.a.ifindex });
    ring.consume();
    assert.equal(events.length, 0);
  });

  /** A client port from `from` whose flow to VIP.web:80 lands in slot `slot` of service 1. */
  const webPortIn = (slot: number, from: number, also: (sport: number) => boolean = () => true): number => {
    let sp = from;
    while (fixtureSlot(1, CLIENT, VIP.web, sp, 80, IPPROTO_TCP) !== slot || !also(sp)) sp++;
    return sp;
  };
  const sendWeb = (sport: number, flags: number) => target.program.testRun(
    buildFrame({ eth: { dst: PORTS[0].mac }, ip: { src: CLIENT, dst: VIP.web, proto: IPPROTO_TCP }, tcp: { sport, dport: 80, flags } }),
    { ingressIfindex: lab.ports.a.ifindex });
  const webKey = (sport: number) => flowKey(ipToU32(CLIENT), ipToU32(VIP.web), sport, 80, IPPROTO_TCP);

  test('moved slots remember flows (with the transition\'s epoch) and use them; unmoved slots remember nothing', () => {
    target.maps.update('settings', Buffer.alloc(4), settingsFor(state, { fragPolicy: 0, sampleRate: 0, flowCache: true }));
    installFlows(target.maps, { ...state, flows: new FlowCacheModel(TEST_FLOW_SETS) });
    // Unmoved slot 3 (backend 2): a SYN and an ACK, nothing remembered.
    const still = webPortIn(3, 4000);
    sendWeb(still, 0x02);
    sendWeb(still, 0x10);
    assert.deepEqual(readFlows(target.maps, state.seed), [], 'no per-flow state for an unmoved slot');
    // Moved slot 0 (current 1, previous 2): a SYN goes to 1 and is remembered.
    const fresh = webPortIn(0, 4000);
    assert.equal(parseFrame(sendWeb(fresh, 0x02).data).ipv4!.dst, u32ToIp(state.backends.get(1)!.ip));
    assert.deepEqual(readFlows(target.maps, state.seed, true), [`${webKey(fresh)}=1@${FIXTURE_EPOCH}`]);
    // (Slot 0 of service 1 is seen by nothing before this test: other rows' slots may be.)
    assert.ok(!readSeen(target.maps, installed).get(1)!.includes(0), 'a flow on the current backend does not make the slot seen');
    // Its next segment: the same backend, the entry now referenced.
    assert.equal(parseFrame(sendWeb(fresh, 0x10).data).ipv4!.dst, u32ToIp(state.backends.get(1)!.ip));
    assert.deepEqual(readFlows(target.maps, state.seed), [`${webKey(fresh)}=1*`]);
    // An established connection of the previous backend (ACK, not remembered): backend 2, remembered;
    // its next segment is a hit on a backend other than the current one: the slot is seen.
    const old = webPortIn(0, fresh + 1);
    assert.equal(parseFrame(sendWeb(old, 0x10).data).ipv4!.dst, u32ToIp(state.backends.get(2)!.ip));
    assert.ok(!readSeen(target.maps, installed).get(1)!.includes(0), 'a miss alone does not make the slot seen');
    assert.equal(parseFrame(sendWeb(old, 0x10).data).ipv4!.dst, u32ToIp(state.backends.get(2)!.ip));
    assert.ok(readSeen(target.maps, installed).get(1)!.includes(0), 'slot 0 seen');
    assert.deepEqual(readFlows(target.maps, state.seed).sort(), [`${webKey(fresh)}=1*`, `${webKey(old)}=2*`].sort());
  });

  test('a full set evicts a flow nobody used since it was remembered, not the ones in use', () => {
    target.maps.update('settings', Buffer.alloc(4), settingsFor(state, { fragPolicy: 0, sampleRate: 0, flowCache: true }));
    installFlows(target.maps, { ...state, flows: new FlowCacheModel(TEST_FLOW_SETS) });
    // Five client ports of moved slot 0 whose flows share one set of the (TEST_FLOW_SETS-set) flows map.
    const hashOf = (sport: number) => flowCacheHash(ipToU32(CLIENT), ipToU32(VIP.web), sport, 80, IPPROTO_TCP, state.seed);
    const setOf = (sport: number) => hashOf(sport) & (TEST_FLOW_SETS - 1);
    const ports = [webPortIn(0, 20000)];
    while (ports.length < 5) ports.push(webPortIn(0, ports[ports.length - 1] + 1, (p) => setOf(p) === setOf(ports[0])));
    // Four connections fill the set (SYN each); all but the one the fifth flow's hash points
    // at first send a second segment (their entries become referenced).
    const start = hashOf(ports[4]) >>> 30;
    for (const p of ports.slice(0, 4)) sendWeb(p, 0x02);
    const held = readFlows(target.maps, state.seed);
    assert.equal(held.length, 4);
    const wayOf = new Map(ports.slice(0, 4).map((p) => [p, held.findIndex((f) => f.includes(`:${p}:80:`))]));
    const idle = ports.slice(0, 4).find((p) => wayOf.get(p) === (start + 1) % 4)!; // not the first way looked at
    for (const p of ports.slice(0, 4)) if (p !== idle) sendWeb(p, 0x10);
    // The fifth flow takes the idle one's way although the scan starts at a referenced way.
    sendWeb(ports[4], 0x02);
    const after = readFlows(target.maps, state.seed);
    assert.ok(!after.some((f) => f.includes(`:${idle}:80:`)), `the idle flow was evicted: ${after.join(', ')}`);
    for (const p of ports.slice(0, 4)) if (p !== idle) assert.ok(after.some((f) => f.includes(`:${p}:80:`) && f.endsWith('*')), `flow :${p} in use stays`);
    assert.ok(after.some((f) => f.includes(`:${ports[4]}:80:`) && !f.endsWith('*')), 'the new flow is in, unreferenced');
  });

  test('the program reads a service from its service_slots slot (the index user space computes)', () => {
    target.maps.update('settings', Buffer.alloc(4), settingsFor(state, { fragPolicy: 0, sampleRate: 0, flowCache: false }));
    const key = serviceKey(ipToU32(VIP.web), 80, IPPROTO_TCP);
    const index = Buffer.alloc(4);
    index.writeUInt32LE(serviceSlotIndex(key));
    const saved = target.maps.lookup('service_slots', index)!;
    assert.ok(saved.subarray(0, 8).equals(key), 'the harness put VIP.web:80 in its slot');
    // The slot says service 5 (VIP.tx's table, backend 6): a packet to VIP.web:80 follows it,
    // which only a lookup of that very slot can do (services says service 1).
    target.maps.update('service_slots', index, Buffer.concat([key, serviceValue(5, 3, MODE_NAT)]));
    try {
      const res = target.program.testRun(buildFrame({ eth: { dst: PORTS[0].mac }, ip: { src: CLIENT, dst: VIP.web, proto: IPPROTO_TCP }, tcp: { sport: 7777, dport: 80 } }),
        { ingressIfindex: lab.ports.a.ifindex });
      assert.equal(parseFrame(res.data).ipv4!.dst, u32ToIp(state.backends.get(6)!.ip));
    } finally {
      target.maps.update('service_slots', index, saved);
    }
  });

  test('IPv6: the program reads a service from its service_slots6 slot (the index user space computes)', () => {
    target.maps.update('settings', Buffer.alloc(4), settingsFor(state, { fragPolicy: 0, sampleRate: 0, flowCache: false }));
    const index = Buffer.alloc(4);
    index.writeUInt32LE(serviceSlotIndex6(VIP6.web, 80, IPPROTO_TCP));
    const saved = target.maps.lookup('service_slots6', index)!;
    assert.equal(LbService6SlotCodec.decode(saved).svc.id, 21, 'the harness put VIP6.web:80 (service 21) in its slot');
    // The slot says service 25 (VIP6.tx's table, backend 26 on port a): only a read of that very
    // slot sends a VIP6.web:80 packet there (services6 says service 21).
    target.maps.update('service_slots6', index, LbService6SlotCodec.encode({ key: { vip: VIP6.web, port: 80, proto: IPPROTO_TCP }, svc: { id: 25, tableSize: 3, mode: MODE_NAT, flags: 0 } }));
    try {
      const res = target.program.testRun(buildFrame6({ eth: { dst: PORTS[0].mac }, ip: { src: '2001:2:0:a::10', dst: VIP6.web }, tcp: { sport: 7777, dport: 80 } }), { ingressIfindex: lab.ports.a.ifindex });
      assert.equal(parseFrame6(res.data).ipv6!.dst, '2001:2:0:a::50');
    } finally {
      target.maps.update('service_slots6', index, saved);
    }
  });

  test('a flow cache entry whose check word does not match (a torn write) is ignored and rewritten', () => {
    target.maps.update('settings', Buffer.alloc(4), settingsFor(state, { fragPolicy: 0, sampleRate: 0, flowCache: true }));
    // Moved slot 2 (current 1; its previous backend 10 is not usable): a hit would say 2.
    const sport = webPortIn(2, 5000);
    const key = [ipToU32(CLIENT), ipToU32(VIP.web), sport, 80, IPPROTO_TCP] as const;
    const flows = new FlowCacheModel(TEST_FLOW_SETS);
    flows.remember(flowCacheHash(...key, state.seed), flowKey(...key), 2, FIXTURE_EPOCH);
    installFlows(target.maps, { ...state, flows });
    assert.equal(parseFrame(sendWeb(sport, 0x10).data).ipv4!.dst, u32ToIp(state.backends.get(2)!.ip), 'the intact entry is used');
    // Corrupt the check word of that one entry: backend 2 must no longer be used.
    const index = Buffer.alloc(4);
    index.writeUInt32LE(flows.entries()[0].set);
    const set = target.maps.lookup('flows', index)!;
    const checkAt = flows.entries()[0].way * LbFlowEntryCodec.size + LbFlowEntryCodec.fields.find((f) => f.c === 'check')!.offset;
    set.writeUInt32LE((set.readUInt32LE(checkAt) ^ 1) >>> 0, checkAt);
    target.maps.update('flows', index, set);
    assert.deepEqual(readFlows(target.maps, state.seed), [`${flowKey(...key)}=2* (bad check)`]);
    assert.equal(parseFrame(sendWeb(sport, 0x10).data).ipv4!.dst, u32ToIp(state.backends.get(1)!.ip), 'a miss: the current backend 1');
    assert.deepEqual(readFlows(target.maps, state.seed), [`${flowKey(...key)}=1`], 'the entry was rewritten whole');
  });
});

describe('XDP data path: flow hash agrees with src/dataplane/jhash.ts', () => {
  // A 4093-slot table whose slot i holds backend i+1 at 198.19.x.y (no route): the NAT-ed
  // destination of each PASS(no_route) packet names the slot the program chose.
  const TABLE = 4093;
  const backendIp = (id: number) => ipToU32('198.19.0.0') + id;
  let lab: DatapathLab;
  let restore: () => void = () => {};

  before(() => {
    lab = createDatapathLab(DP_NETNS, PORTS, NEIGHBOURS);
    restore = enterNetns(DP_NETNS);
  });
  after(() => {
    restore();
    lab?.destroy();
  });

  for (const seed of [0, 0x9e3779b9]) {
    test(`2000 TCP flows land on the slot jhash predicts (hash_seed 0x${seed.toString(16)})`, () => {
      const target = loadTarget({ seed, innerMaxEntries: TABLE });
      try {
        const vip = ipToU32('198.18.100.20');
        const state: ModelState = {
          seed, settings: { fragPolicy: 0, sampleRate: 0, flowCache: false },
          services: [{ id: 1, vip, port: 0, proto: IPPROTO_TCP, tableSize: TABLE, mode: MODE_NAT }],
          vips: new Set([vip]),
          backends: new Map(Array.from({ length: TABLE }, (_, i) => [i + 1, { id: i + 1, ip: backendIp(i + 1), port: 0, flags: BACKEND_ACTIVE, serviceId: 1 }])),
          reverse: [], reverseFrags: [], ifMacs: new Map(), maglev: new Map([[1, Array.from({ length: TABLE }, (_, i) => i + 1)]]),
          flows: new FlowCacheModel(TEST_FLOW_SETS), txPorts: new Set(), fib: lab.fib,
        };
        installState(target.maps, state);
        let x = 12345;
        const rnd = () => { x = (Math.imul(x, 1103515245) + 12345) >>> 0; return x; };
        const proto = IPPROTO_TCP;
        for (let i = 0; i < 2000; i++) {
          const src = u32ToIp(ipToU32('198.18.0.0') + (rnd() & 0x1ffff));
          const sport = rnd() & 0xffff;
          const dport = rnd() & 0xffff;
          const frame = buildFrame({ ip: { src, dst: '198.18.100.20', proto }, tcp: { sport, dport } });
          const res = target.program.testRun(frame, { ingressIfindex: lab.ports.a.ifindex });
          assert.equal(res.retval, ACTION_NUMBER.pass);
          const slot = ipToU32(parseFrame(res.data).ipv4!.dst) - ipToU32('198.19.0.0') - 1;
          assert.equal(slot, flowHash(ipToU32(src), vip, sport, dport, proto, seed) % TABLE, `flow ${src}:${sport} -> :${dport}`);
        }
      } finally {
        target.close();
      }
    });
  }

  for (const [seed, proto] of [[0, IPPROTO_TCP], [0x9e3779b9, IPPROTO_UDP]] as const) {
    test(`IPv6: 2000 ${proto === IPPROTO_TCP ? 'TCP' : 'UDP'} flows land on the slot flowHash6 (fold6, 0x60000000) predicts (hash_seed 0x${seed.toString(16)})`, () => {
      // Backends 2001:2:50::<slot+1> (no route): the NAT-ed destination names the slot.
      const target = loadTarget({ seed, innerMaxEntries: TABLE });
      try {
        const vip = ip6ToBuffer('2001:2:100::20');
        const backendIp = (id: number) => { const b = ip6ToBuffer('2001:2:50::'); b.writeUInt16BE(id, 14); return b; };
        const state: ModelState = {
          seed, settings: { fragPolicy: 0, sampleRate: 0, flowCache: false },
          services: [], vips: new Set(), backends: new Map(), reverse: [], reverseFrags: [], ifMacs: new Map(),
          maglev: new Map([[1, Array.from({ length: TABLE }, (_, i) => i + 1)]]),
          flows: new FlowCacheModel(TEST_FLOW_SETS), txPorts: new Set(), fib: lab.fib,
          v6: {
            services: [{ id: 1, vip, port: 0, proto, tableSize: TABLE, mode: MODE_NAT }],
            vips: new Set([vip.toString('hex')]),
            backends: new Map(Array.from({ length: TABLE }, (_, i) => [i + 1, { id: i + 1, ip: backendIp(i + 1), port: 0, flags: BACKEND_ACTIVE, serviceId: 1 }])),
            reverse: [], reverseFrags: [], fib: lab.fib6, flows: new FlowCacheModel(TEST_FLOW_SETS),
          },
        };
        installState(target.maps, state);
        let x = 54321;
        const rnd = () => { x = (Math.imul(x, 1103515245) + 12345) >>> 0; return x; };
        for (let i = 0; i < 2000; i++) {
          const src = ip6ToBuffer('2001:2:0:a::');
          src.writeUInt32BE(rnd(), 8); src.writeUInt32BE(rnd(), 12);
          const sport = rnd() & 0xffff;
          const dport = rnd() & 0xffff;
          const l4 = proto === IPPROTO_TCP ? { tcp: { sport, dport } } : { udp: { sport, dport } };
          const res = target.program.testRun(buildFrame6({ ip: { src: bufferToIp6(src), dst: '2001:2:100::20' }, ...l4 }), { ingressIfindex: lab.ports.a.ifindex });
          assert.equal(res.retval, ACTION_NUMBER.pass);
          const slot = parseFrame6(res.data).ipv6 ? ip6ToBuffer(parseFrame6(res.data).ipv6!.dst).readUInt16BE(14) - 1 : -1;
          assert.equal(slot, flowHash6(src, vip, sport, dport, proto, seed) % TABLE, `flow [${bufferToIp6(src)}]:${sport} -> :${dport}`);
        }
      } finally {
        target.close();
      }
    });
  }
});

describe('XDP data path: the per-CPU next-hop cache (nexthop_ttl_ns)', () => {
  // Every run is pinned to CPU 0 (the cache is per CPU); forward runs go to VIP.any, whose only backend
  // (id 4, 198.18.1.13) sits behind port b: REDIRECT while its neighbour is known, PASS after.
  const BACKEND_ID = 4;
  const BACKEND_IP = '198.18.1.13';
  let lab: DatapathLab;
  let restore: () => void = () => {};
  const open: Target[] = [];

  before(() => {
    lab = createDatapathLab(DP_NETNS, PORTS, NEIGHBOURS);
    restore = enterNetns(DP_NETNS);
  });
  after(() => {
    for (const t of open) t.close();
    restore();
    lab?.destroy();
  });

  const ipIn = (...args: string[]) => execFileSync('ip', ['-n', DP_NETNS, ...args], { stdio: 'pipe', timeout: 10_000 });
  const frame = (payload = 0) => buildFrame({
    eth: { dst: PORTS[0].mac }, ip: { src: CLIENT, dst: VIP.any, proto: IPPROTO_TCP }, tcp: { sport: 5555, dport: 8080, payload: Buffer.alloc(payload, 0x61) },
  });
  const actionOf = (target: Target, input: Buffer): number => {
    const res = target.program.testRunMany(input, 1, { ingressIfindex: lab.ports.a.ifindex, pinCpu: 0 });
    return Number(Object.keys(res.retvals)[0]);
  };
  const targetWithTtl = (ttlNs: bigint): Target => {
    const target = loadTarget({ nexthopTtlNs: ttlNs });
    open.push(target);
    installState(target.maps, { ...fixtureState(lab), settings: { fragPolicy: 0, sampleRate: 0, flowCache: false } });
    return target;
  };
  /** Deletes the backend's neighbour for the duration of `body`. */
  const withoutNeighbour = (body: () => void) => {
    ipIn('neigh', 'del', BACKEND_IP, 'dev', lab.ports.b.name);
    try {
      body();
    } finally {
      ipIn('neigh', 'replace', BACKEND_IP, 'lladdr', MAC.b13, 'dev', lab.ports.b.name, 'nud', 'permanent');
    }
  };

  test('within the TTL a CPU reuses the next hop; after it, the kernel is asked again', () => {
    const target = targetWithTtl(60_000_000_000n);      // 60 s: the test never outlives it
    const short = targetWithTtl(20_000_000n);            // 20 ms
    assert.equal(actionOf(target, frame()), ACTION_NUMBER.redirect);
    assert.equal(actionOf(short, frame()), ACTION_NUMBER.redirect);
    withoutNeighbour(() => {
      assert.equal(actionOf(target, frame()), ACTION_NUMBER.redirect, 'remembered next hop used');
      const until = Date.now() + 100;                    // > 20 ms plus a coarse clock tick (<= 10 ms)
      while (Date.now() < until) { /* the neighbour stays deleted meanwhile */ }
      assert.equal(actionOf(short, frame()), ACTION_NUMBER.pass, 'expired: the kernel says no neighbour');
    });
  });

  test('nexthop_ttl_ns 0 asks the kernel for every packet', () => {
    const target = targetWithTtl(0n);
    assert.equal(actionOf(target, frame()), ACTION_NUMBER.redirect);
    withoutNeighbour(() => assert.equal(actionOf(target, frame()), ACTION_NUMBER.pass));
  });

  test('a backend id reused for another address does not hit the old next hop', () => {
    const target = targetWithTtl(60_000_000_000n);
    assert.equal(actionOf(target, frame()), ACTION_NUMBER.redirect);
    const key = Buffer.alloc(4);
    key.writeUInt32LE(BACKEND_ID);
    target.maps.update('backends', key, backendValue(ipToU32('198.18.1.99'), 0, BACKEND_ACTIVE, 3, fixtureState(lab).services)); // no neighbour
    assert.equal(actionOf(target, frame()), ACTION_NUMBER.pass);
  });

  test('NAT replies reuse the next hop of their client within the TTL, and not when it is 0', () => {
    const reply = buildFrame({ eth: { dst: PORTS[1].mac }, ip: { src: '198.18.1.10', dst: CLIENT, proto: IPPROTO_TCP }, tcp: { sport: 80, dport: 5555, flags: 0x12 } });
    const replyAction = (target: Target) => {
      const res = target.program.testRunMany(reply, 1, { ingressIfindex: lab.ports.b.ifindex, pinCpu: 0 });
      return Number(Object.keys(res.retvals)[0]);
    };
    const cached = targetWithTtl(60_000_000_000n);
    const uncached = targetWithTtl(0n);
    assert.equal(replyAction(cached), ACTION_NUMBER.redirect);
    assert.equal(replyAction(uncached), ACTION_NUMBER.redirect);
    ipIn('neigh', 'del', CLIENT, 'dev', lab.ports.a.name);
    try {
      assert.equal(replyAction(cached), ACTION_NUMBER.redirect, 'remembered next hop of the client');
      assert.equal(replyAction(uncached), ACTION_NUMBER.pass, 'the kernel says no neighbour');
    } finally {
      ipIn('neigh', 'replace', CLIENT, 'lladdr', MAC.client, 'dev', lab.ports.a.name, 'nud', 'permanent');
    }
  });

  test('a packet longer than the one the kernel checked is checked again (MTU)', () => {
    const target = targetWithTtl(60_000_000_000n);
    assert.equal(actionOf(target, frame()), ACTION_NUMBER.redirect, 'small packet remembered');
    ipIn('link', 'set', lab.ports.b.name, 'mtu', '576');
    try {
      assert.equal(actionOf(target, frame(1000)), ACTION_NUMBER.pass, 'over the MTU: the kernel must fragment');
      assert.equal(actionOf(target, frame()), ACTION_NUMBER.redirect, 'the small one still fits');
    } finally {
      ipIn('link', 'set', lab.ports.b.name, 'mtu', '1500');
    }
  });
});
