/**
 * The IPv6 packet path of bpf/lb.o through BPF_PROG_TEST_RUN (namespace xlbd6, one veth pair
 * xlbd6-a/xlbd6-ap with the client and backend /64s of 2001:2::/48 and permanent neighbours, so
 * bpf_fib_lookup AF_INET6 answers): every main path once, output frames checked field by field
 * with checksums recomputed from scratch, verdicts by their verdict_stats row. IPv6 rows are
 * written as the control plane writes them (test/support/v6-rows.ts).
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Dataplane } from '../src/dataplane/dataplane';
import { LB, encodeU32, bytesToIpv6 } from '../src/dataplane/abi';
import { REASONS } from '../src/dataplane/types';
import { bufferToMac, buildFrame6, checksumProblems6, IPPROTO_ICMPV6, IPPROTO_AH, IPPROTO_DSTOPTS, IPPROTO_ROUTING, IPPROTO_FRAGMENT, IPPROTO_ESP, IPPROTO_HOPOPTS, IPPROTO_NONE, type Frame6Spec } from '../src/dataplane/packet';
import { flowHash6, flowCacheHash6, serviceSlotIndex6 } from '../src/dataplane/jhash';
import { lbMap } from '../src/dataplane/typed-map';
import { createMaglevTable, SLOT_WORDS } from '../src/dataplane/maglev-tables';
import { buildMaglevTable } from '../src/balancer/maglev';
import { installService6, type Service6Row } from './support/v6-rows';
import { kernelTestSkip } from './support/kernel-env';
import { runWithVerdict, type XDP } from './support/verdict-run';
import { enterV6TestRunNetns, removeV6TestRunNetns, type V6TestRunNetns } from './support/v6-testrun-netns';

const LB_MAC = '02:00:00:d6:00:01';
const CLIENT = '2001:2:0:1::10';
const CLIENT_MAC = '02:00:00:d6:00:0a';
const VIP = '2001:2:0:100::1';
const VIP_DSR = '2001:2:0:100::2';
const BACKENDS = [{ id: 11, ip: '2001:2:0:2::11', port: 8080 }, { id: 12, ip: '2001:2:0:2::12', port: 8080 }];
const BACKEND_MAC: Record<string, string> = { '2001:2:0:2::11': '02:00:00:d6:01:11', '2001:2:0:2::12': '02:00:00:d6:01:12' };
const TABLE = 251;
const SERVICES: Service6Row[] = [
  { id: 1, vip: VIP, port: 80, proto: 6, mode: 'nat', tableSize: TABLE, backends: BACKENDS },
  { id: 2, vip: VIP, port: 53, proto: 17, mode: 'nat', tableSize: TABLE, backends: [{ id: 13, ip: '2001:2:0:2::11', port: 5353 }] },
  { id: 3, vip: VIP_DSR, port: 80, proto: 6, mode: 'dsr', tableSize: TABLE, backends: [{ id: 14, ip: '2001:2:0:2::12', port: 0 }] },
];
/** namespace xlbd6, veth xlbd6-a / xlbd6-ap */
const NET: V6TestRunNetns = {
  ns: 'xlbd6', dev: 'xlbd6-a', mac: LB_MAC, peerMac: '02:00:00:d6:00:02',
  addresses: ['2001:2:0:1::1/64', '2001:2:0:2::1/64'],
  neighbours: { [CLIENT]: CLIENT_MAC, ...BACKEND_MAC },
};

const skipReason = kernelTestSkip('the IPv6 data-path smoke test');

describe('IPv6 data path (bpf/lb.o in netns xlbd6)', { skip: skipReason }, () => {
  let dp: Dataplane | null = null;
  let restore = (): void => {};
  let ifindex = 0;

  before(() => {
    ({ ifindex, restore } = enterV6TestRunNetns(NET));
    dp = Dataplane.load({ hashSeed: 0x5eed });
    dp.writeInterfaceMac(NET.dev, ifindex);
    for (const s of SERVICES) installService6(dp, s);
  });

  after(() => {
    dp?.close();
    restore();
    removeV6TestRunNetns(NET);
  });

  /** Runs `frame`; asserts the action and that exactly one verdict {reason, action} was counted. */
  const run = (frame: Buffer, action: keyof typeof XDP, reason: (typeof REASONS)[number]): Buffer => runWithVerdict(dp!, ifindex, frame, action, reason);

  const eth = { dst: LB_MAC, src: CLIENT_MAC };
  const frame = (spec: Omit<Frame6Spec, 'eth'>) => buildFrame6({ eth, ...spec });
  const payload = Buffer.from('hello over IPv6!');
  const addr = (f: Buffer, at: number) => bytesToIpv6(f.subarray(at, at + 16));
  /** The backend Maglev picks for a client flow to VIP:80/tcp, from the TS hash and table. */
  const predicted = (sport: number) => {
    const table = buildMaglevTable(BACKENDS.map((b) => ({ key: `[${b.ip}]:${b.port}`, weight: 1 })), TABLE);
    return BACKENDS[table[flowHash6(CLIENT, VIP, sport, 80, 6, 0x5eed) % TABLE]];
  };

  test('NAT66 TCP: to the backend Maglev picks (TS hash agrees), address/port/hop limit rewritten, checksum verifies', () => {
    const seen = new Set<string>();
    for (let sport = 40000; sport < 40040; sport++) {
      const out = run(frame({ ip: { src: CLIENT, dst: VIP }, tcp: { sport, dport: 80, flags: 0x18, payload } }), 'tx', 'forwarded');
      const b = predicted(sport);
      seen.add(b.ip);
      assert.equal(addr(out, 14 + 24), b.ip, `sport ${sport}`);
      assert.equal(bufferToMac(out.subarray(0, 6)), BACKEND_MAC[b.ip]);
      assert.equal(bufferToMac(out.subarray(6, 12)), LB_MAC);
      assert.equal(out.readUInt16BE(14 + 40 + 2), 8080);
      assert.equal(out[14 + 7], 63, 'hop limit - 1');
      assert.equal(addr(out, 14 + 8), CLIENT);
      assert.deepEqual(checksumProblems6(out), []);
    }
    assert.equal(seen.size, 2, 'both backends get flows');
  });

  test('NAT66 keeps extension headers (destination options): the L4 offset accounts for them', () => {
    const out = run(frame({ ip: { src: CLIENT, dst: VIP }, ext: [{ type: IPPROTO_DSTOPTS }], tcp: { sport: 41000, dport: 80, flags: 0x18, payload } }), 'tx', 'forwarded');
    assert.equal(out[14 + 6], IPPROTO_DSTOPTS);
    assert.equal(out.readUInt16BE(14 + 48 + 2), 8080);
    assert.deepEqual(checksumProblems6(out), []);
  });

  test('NAT66 UDP forwarded; UDP checksum 0 dropped (bad_checksum)', () => {
    const out = run(frame({ ip: { src: CLIENT, dst: VIP }, udp: { sport: 5000, dport: 53, payload } }), 'tx', 'forwarded');
    assert.equal(out.readUInt16BE(14 + 40 + 2), 5353);
    assert.deepEqual(checksumProblems6(out), []);
    run(frame({ ip: { src: CLIENT, dst: VIP }, udp: { sport: 5000, dport: 53, payload, checksum: 0 } }), 'drop', 'bad_checksum');
  });

  test('reverse NAT66: a backend reply leaves from the VIP:80, checksum verifies', () => {
    const out = run(buildFrame6({ eth: { dst: LB_MAC, src: BACKEND_MAC['2001:2:0:2::11'] }, ip: { src: '2001:2:0:2::11', dst: CLIENT }, tcp: { sport: 8080, dport: 40000, flags: 0x12, payload } }), 'tx', 'reversed');
    assert.equal(addr(out, 14 + 8), VIP);
    assert.equal(out.readUInt16BE(14 + 40), 80);
    assert.equal(out[14 + 7], 63);
    assert.equal(bufferToMac(out.subarray(0, 6)), CLIENT_MAC);
    assert.deepEqual(checksumProblems6(out), []);
    // A reply toward a martian destination is dropped; from an unknown port it is not ours.
    run(buildFrame6({ eth, ip: { src: '2001:2:0:2::11', dst: 'ff02::1' }, tcp: { sport: 8080, dport: 40000, flags: 0x12 } }), 'drop', 'martian');
    run(buildFrame6({ eth, ip: { src: '2001:2:0:2::11', dst: CLIENT }, tcp: { sport: 9999, dport: 40000, flags: 0x12 } }), 'pass', 'not_vip');
  });

  test('reverse NAT66 of reply fragments: the first like a whole reply, later ones through reverse_frags6; hop limit 1 passes (ttl)', () => {
    const b1 = '2001:2:0:2::11';
    const beth = { dst: LB_MAC, src: BACKEND_MAC[b1] };
    const first = buildFrame6({ eth: beth, ip: { src: b1, dst: CLIENT }, ext: [{ type: IPPROTO_FRAGMENT, more: true, id: 7 }], tcp: { sport: 8080, dport: 40000, flags: 0x18, payload: Buffer.alloc(32, 2) } });
    const out = run(first, 'tx', 'reversed');
    assert.equal(addr(out, 14 + 8), VIP);
    assert.equal(out.readUInt16BE(14 + 48), 80, 'the first fragment carries the ports: translated');
    const later = buildFrame6({ eth: beth, ip: { src: b1, dst: CLIENT, proto: 6 }, ext: [{ type: IPPROTO_FRAGMENT, fragOffset: 7, id: 7 }], payload: Buffer.alloc(24, 3) });
    run(later, 'pass', 'not_vip');   // no reverse_frags6 entry yet: not ours
    lbMap(dp!, 'reverse_frags6').set({ ip: b1, port: 0, proto: 6 }, { vip: VIP, vport: 0, serviceId: 1, backendId: 11 });
    const out2 = run(later, 'tx', 'reversed');
    assert.equal(addr(out2, 14 + 8), VIP);
    assert.equal(out2[14 + 7], 63);
    assert.ok(out2.subarray(14 + 40).equals(later.subarray(14 + 40)), 'a later fragment: the address only');
    run(buildFrame6({ eth: beth, ip: { src: b1, dst: CLIENT, hopLimit: 1 }, tcp: { sport: 8080, dport: 40000, flags: 0x10 } }), 'pass', 'ttl');
  });

  test('DSR: only the MACs change (hop limit kept)', () => {
    const input = frame({ ip: { src: CLIENT, dst: VIP_DSR }, tcp: { sport: 42000, dport: 80, flags: 0x18, payload } });
    const out = run(input, 'tx', 'forwarded');
    assert.equal(bufferToMac(out.subarray(0, 6)), BACKEND_MAC['2001:2:0:2::12']);
    assert.ok(out.subarray(12).equals(input.subarray(12)), 'IPv6 packet untouched');
  });

  test('ICMPv6 echo to a VIP answered from the VIP (checksum over the pseudo-header); a bad checksum is dropped', () => {
    const out = run(frame({ ip: { src: CLIENT, dst: VIP }, icmp6: { type: 128, rest: 0x00070001, payload } }), 'tx', 'icmp_echo');
    assert.equal(addr(out, 14 + 8), VIP);
    assert.equal(addr(out, 14 + 24), CLIENT);
    assert.equal(out[14 + 40], 129);
    assert.equal(out[14 + 7], 64);
    assert.equal(bufferToMac(out.subarray(0, 6)), CLIENT_MAC);
    assert.deepEqual(checksumProblems6(out), []);
    run(frame({ ip: { src: CLIENT, dst: VIP }, icmp6: { type: 128, rest: 1, payload, checksum: 0x1234 } }), 'drop', 'bad_checksum');
    run(frame({ ip: { src: CLIENT, dst: VIP }, icmp6: { type: 129, payload } }), 'drop', 'icmp_unsupported');
  });

  test('Packet Too Big quoting a VIP flow goes to the backend owning it, translated (PMTU through the VIP)', () => {
    const sport = 43000;
    const b = predicted(sport);
    // What the VIP sent the client: VIP:80 -> CLIENT:43000 (a translated reply), as a router quotes it.
    const quoted = buildFrame6({ ip: { src: VIP, dst: CLIENT, hopLimit: 60 }, tcp: { sport: 80, dport: sport, flags: 0x18, payload: Buffer.alloc(64, 1) } }).subarray(14);
    const out = run(frame({ ip: { src: '2001:2:0:1::fe', dst: VIP }, icmp6: { type: 2, rest: 1280, payload: quoted } }), 'tx', 'icmp_error');
    assert.equal(addr(out, 14 + 24), b.ip, 'outer destination: the backend');
    assert.equal(addr(out, 14 + 48 + 8), b.ip, 'quoted source: the backend');
    assert.equal(out.readUInt16BE(14 + 48 + 40), 8080, 'quoted source port: the backend');
    assert.equal(out.readUInt32BE(14 + 44), 1280, 'MTU kept');
    assert.deepEqual(checksumProblems6(out), []);
    // To a DSR VIP the error goes to the owning backend as it is.
    const quotedDsr = buildFrame6({ ip: { src: VIP_DSR, dst: CLIENT }, tcp: { sport: 80, dport: sport } }).subarray(14);
    const toDsr = frame({ ip: { src: '2001:2:0:1::fe', dst: VIP_DSR }, icmp6: { type: 2, rest: 1400, payload: quotedDsr } });
    const outDsr = run(toDsr, 'tx', 'icmp_error');
    assert.equal(bufferToMac(outDsr.subarray(0, 6)), BACKEND_MAC['2001:2:0:2::12']);
    assert.ok(outDsr.subarray(12).equals(toDsr.subarray(12)));
    // Hop limit 1 on an error to a NAT VIP: passed (no error about an error).
    run(frame({ ip: { src: '2001:2:0:1::fe', dst: VIP, hopLimit: 1 }, icmp6: { type: 2, rest: 1280, payload: quoted } }), 'pass', 'ttl');
    // A quote from another source is not ours to translate.
    const other = buildFrame6({ ip: { src: '2001:2:0:100::9', dst: CLIENT }, tcp: { sport: 80, dport: sport } }).subarray(14);
    run(frame({ ip: { src: '2001:2:0:1::fe', dst: VIP }, icmp6: { type: 1, payload: other } }), 'drop', 'icmp_unsupported');
  });

  test('hop limit 1 to a NAT VIP: ICMPv6 time exceeded from the VIP, quoting the packet', () => {
    const input = frame({ ip: { src: CLIENT, dst: VIP, hopLimit: 1 }, tcp: { sport: 44000, dport: 80, flags: 0x18, payload } });
    const out = run(input, 'tx', 'ttl');
    assert.equal(out[14 + 6], IPPROTO_ICMPV6);
    assert.equal(addr(out, 14 + 8), VIP);
    assert.equal(addr(out, 14 + 24), CLIENT);
    assert.equal(out[14 + 40], 3);
    assert.equal(out[14 + 41], 0);
    assert.ok(out.subarray(14 + 48).equals(input.subarray(14)), 'the whole invoking packet is quoted');
    assert.equal(bufferToMac(out.subarray(0, 6)), CLIENT_MAC);
    assert.deepEqual(checksumProblems6(out), []);
  });

  test('extension header policy toward a VIP', () => {
    const tcp = { sport: 45000, dport: 80, flags: 0x18, payload };
    run(frame({ ip: { src: CLIENT, dst: VIP }, ext: [{ type: IPPROTO_ROUTING, segmentsLeft: 1 }], tcp }), 'drop', 'ext_header');
    run(frame({ ip: { src: CLIENT, dst: VIP }, ext: [{ type: IPPROTO_ROUTING, segmentsLeft: 0 }], tcp }), 'tx', 'forwarded');
    run(frame({ ip: { src: CLIENT, dst: VIP, proto: IPPROTO_ESP }, payload: Buffer.alloc(24) }), 'drop', 'ext_header');
    run(frame({ ip: { src: CLIENT, dst: VIP, proto: IPPROTO_NONE }, payload: Buffer.alloc(8) }), 'drop', 'ext_header');
    run(frame({ ip: { src: CLIENT, dst: VIP }, ext: [{ type: IPPROTO_DSTOPTS }, { type: IPPROTO_HOPOPTS }], tcp }), 'drop', 'ext_header');
    run(frame({ ip: { src: CLIENT, dst: VIP }, ext: [{ type: IPPROTO_HOPOPTS }, { type: IPPROTO_DSTOPTS }, { type: IPPROTO_DSTOPTS }, { type: IPPROTO_DSTOPTS }], tcp }), 'tx', 'forwarded');
    run(frame({ ip: { src: CLIENT, dst: VIP }, ext: [{ type: IPPROTO_HOPOPTS }, { type: IPPROTO_DSTOPTS }, { type: IPPROTO_DSTOPTS }, { type: IPPROTO_DSTOPTS }, { type: IPPROTO_DSTOPTS }], tcp }), 'drop', 'ext_header');
    run(frame({ ip: { src: CLIENT, dst: VIP, proto: 132 }, payload: Buffer.alloc(12) }), 'drop', 'ext_header');
    run(frame({ ip: { src: CLIENT, dst: VIP }, ext: [{ type: IPPROTO_FRAGMENT, fragOffset: 0, more: true }], tcp }), 'drop', 'fragment');
    run(frame({ ip: { src: CLIENT, dst: VIP }, ext: [{ type: IPPROTO_FRAGMENT }], tcp }), 'tx', 'forwarded');  // atomic fragment
    const cut = frame({ ip: { src: CLIENT, dst: VIP }, ext: [{ type: IPPROTO_DSTOPTS, body: Buffer.alloc(30) }], tcp });
    cut.writeUInt16BE(20, 18);  // payload length ends inside the options header
    run(cut.subarray(0, 14 + 40 + 20), 'drop', 'malformed');
    const ah = run(frame({ ip: { src: CLIENT, dst: VIP }, ext: [{ type: IPPROTO_AH, raw: Buffer.from([0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]) }, { type: IPPROTO_DSTOPTS }], tcp }), 'tx', 'forwarded');
    assert.equal(ah.readUInt16BE(14 + 40 + 12 + 8 + 2), 8080, 'AH counted in 4-byte units: the TCP header found after it');
    assert.deepEqual(checksumProblems6(ah), []);
    // A chain cut short is malformed whatever the destination.
    run(cut.subarray(0, 14 + 40 + 20).map((b, i) => (i >= 38 && i < 54 ? 0x20 : b)) as Buffer, 'drop', 'malformed');
    // Not to a VIP: the host's business, whatever its chain.
    run(frame({ ip: { src: CLIENT, dst: '2001:2:0:1::1', proto: IPPROTO_ESP }, payload: Buffer.alloc(24) }), 'pass', 'not_vip');
  });

  test('service_slots6: a slot copy answers before services6 (index as serviceSlotIndex6 computes it); a slot of another key does not', () => {
    const vip3 = '2001:2:0:100::3';
    installService6(dp!, { id: 4, vip: vip3, port: 80, proto: 6, mode: 'nat', tableSize: TABLE, backends: [{ id: 15, ip: '2001:2:0:2::11', port: 8080 }] }, { slot: false });
    const input = frame({ ip: { src: CLIENT, dst: vip3 }, tcp: { sport: 46000, dport: 80, flags: 0x18, payload } });
    assert.equal(run(input, 'tx', 'forwarded').readUInt16BE(14 + 40 + 2), 8080, 'no slot: services6 (NAT)');
    const slots = lbMap(dp!, 'service_slots6');
    const index = serviceSlotIndex6(vip3, 80, 6);
    assert.equal(slots.get(index)!.key.proto, 0, 'the slot was empty');
    const dsr = { id: 4, tableSize: TABLE, mode: LB.MODE_DSR, flags: 0 };
    slots.set(index, { key: { vip: vip3, port: 80, proto: 6 }, svc: dsr });
    assert.ok(run(input, 'tx', 'forwarded').subarray(12).equals(input.subarray(12)), 'the slot copy (DSR) answered');
    slots.set(index, { key: { vip: vip3, port: 81, proto: 6 }, svc: dsr });
    assert.equal(run(input, 'tx', 'forwarded').readUInt16BE(14 + 40 + 2), 8080, 'another key in the slot: services6 again');
  });

  test('moved Maglev slots: flows6 remembers a mid-connection flow on the previous backend (set and check as flowCacheHash6), a SYN takes the current one', () => {
    // Service 5, every slot moved from backend 16 (prev) to backend 17 (current), epoch 9.
    const vip4 = '2001:2:0:100::4';
    installService6(dp!, { id: 5, vip: vip4, port: 80, proto: 6, mode: 'nat', tableSize: 7, backends: [{ id: 16, ip: '2001:2:0:2::11', port: 0 }, { id: 17, ip: '2001:2:0:2::12', port: 0 }] });
    const flat = new Uint32Array(7 * SLOT_WORDS);
    for (let i = 0; i < 7; i++) flat.set([17, 16, 9, 0], i * SLOT_WORDS);
    const table = createMaglevTable(flat);
    try {
      dp!.map('maglev_marks').update(encodeU32(5), encodeU32(table.marksFd!));
      dp!.map('maglev').update(encodeU32(5), encodeU32(table.fd));
    } finally {
      table.close();
    }
    const settings = lbMap(dp!, 'settings');
    // Flow cache off (pure Maglev): the slot's current backend, nothing remembered.
    settings.set(0, { ...settings.get(0)!, flowCache: 0 });
    const pure = run(frame({ ip: { src: CLIENT, dst: vip4 }, tcp: { sport: 46999, dport: 80, flags: 0x18 } }), 'tx', 'forwarded');
    assert.equal(addr(pure, 14 + 24), '2001:2:0:2::12', 'flow cache off: the current backend');
    settings.set(0, { ...settings.get(0)!, flowCache: 1 });
    const ack = run(frame({ ip: { src: CLIENT, dst: vip4 }, tcp: { sport: 47000, dport: 80, flags: 0x18 } }), 'tx', 'forwarded');
    assert.equal(addr(ack, 14 + 24), '2001:2:0:2::11', 'no remembered flow, not a SYN: the previous backend');
    const syn = run(frame({ ip: { src: CLIENT, dst: vip4 }, tcp: { sport: 47001, dport: 80, flags: 0x02 } }), 'tx', 'forwarded');
    assert.equal(addr(syn, 14 + 24), '2001:2:0:2::12', 'a SYN: the current backend');
    const flows6 = lbMap(dp!, 'flows6');
    const sets = dp!.map('flows6').maxEntries;
    for (const [sport, backendId] of [[47000, 16], [47001, 17]]) {
      const hash = flowCacheHash6(CLIENT, vip4, sport, 80, 6, 0x5eed);
      const set = flows6.get(hash & (sets - 1))!;
      const way = set.way.find((w) => w.key.sport === sport && w.key.daddr === vip4);
      assert.ok(way, `flow :${sport} in the set flowCacheHash6 picks`);
      assert.equal(way.backendId, backendId);
      assert.equal(way.epoch, 9);
      assert.equal(way.check, (hash ^ Math.imul(backendId, 0x9e3779b1) ^ 9) >>> 0, 'check word');
      assert.equal(way.key.saddr, CLIENT);
    }
    // The remembered flow keeps its backend (prev) even though its slot's current backend is 17.
    const again = run(frame({ ip: { src: CLIENT, dst: vip4 }, tcp: { sport: 47000, dport: 80, flags: 0x18 } }), 'tx', 'forwarded');
    assert.equal(addr(again, 14 + 24), '2001:2:0:2::11');
  });

  test('neighbour discovery passes untouched even to a VIP; martians, bad headers, host traffic', () => {
    const ns = frame({ ip: { src: 'fe80::a', dst: VIP, hopLimit: 255 }, icmp6: { type: 135, payload: Buffer.alloc(16) } });
    assert.ok(run(ns, 'pass', 'not_vip').equals(ns));
    run(frame({ ip: { src: 'fe80::a', dst: VIP }, tcp: { sport: 1, dport: 80 } }), 'drop', 'martian');
    run(frame({ ip: { src: '::ffff:198.18.0.1', dst: VIP }, tcp: { sport: 1, dport: 80 } }), 'drop', 'martian');
    run(frame({ ip: { src: VIP, dst: VIP }, tcp: { sport: 1, dport: 80 } }), 'drop', 'martian');
    run(frame({ ip: { src: CLIENT, dst: VIP, payloadLength: 0 }, tcp: { sport: 1, dport: 80 } }), 'drop', 'malformed');
    run(frame({ ip: { src: CLIENT, dst: VIP, payloadLength: 200 }, tcp: { sport: 1, dport: 80 } }), 'drop', 'malformed');
    run(frame({ ip: { src: CLIENT, dst: VIP, version: 4 }, tcp: { sport: 1, dport: 80 } }), 'drop', 'malformed');
    run(frame({ ip: { src: CLIENT, dst: VIP }, tcp: { sport: 1, dport: 81 } }), 'drop', 'no_service');
    run(frame({ ip: { src: CLIENT, dst: '2001:2:0:1::1' }, tcp: { sport: 1, dport: 22 } }), 'pass', 'not_vip');
    run(buildFrame6({ eth: { dst: '33:33:ff:00:00:01', src: CLIENT_MAC }, ip: { src: CLIENT, dst: 'ff02::1:ff00:1' }, icmp6: { type: 135 } }), 'pass', 'other_mac');
  });
});
