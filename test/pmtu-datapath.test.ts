/**
 * Path MTU discovery through a VIP when the next hop toward the backend has a smaller MTU
 * (issue 15): bpf/lb.o through BPF_PROG_TEST_RUN in namespace xlbp6 (one veth pair xlbp6-a /
 * xlbp6-ap, permanent neighbours), whose routes toward the backends' networks carry a smaller MTU
 * (IPv4 1400, IPv6 1380; locked: bpf_fib_lookup reports a route MTU only when locked, else the
 * device MTU or a learned path MTU exception). A packet to a
 * VIP longer than that (IPv4 with DF; IPv6 always) is answered from the VIP with ICMP
 * fragmentation needed / ICMPv6 Packet Too Big carrying the FIB's MTU and quoting the packet AS
 * THE CLIENT SENT IT (NAT: before the rewrite), back out the ingress interface (`too_big`, TX).
 * Each answer is compared whole against a frame built from scratch (checksums computed here).
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Dataplane } from '../src/dataplane/dataplane';
import { LB, encodeU32, bytesToIpv6 } from '../src/dataplane/abi';
import { REASONS } from '../src/dataplane/types';
import { buildFrame, bufferToMac, checksumProblems, ipToU32, IPPROTO_ICMP, u32ToIp, buildFrame6, checksumProblems6, IPPROTO_ICMPV6 } from '../src/dataplane/packet';
import { lbMap } from '../src/dataplane/typed-map';
import { createMaglevTable, SLOT_WORDS } from '../src/dataplane/maglev-tables';
import { vipFilterBit } from '../src/dataplane/jhash';
import { installService6 } from './support/v6-rows';
import { kernelTestSkip } from './support/kernel-env';
import { runWithVerdict, type XDP } from './support/verdict-run';
import { enterV6TestRunNetns, removeV6TestRunNetns, type V6TestRunNetns } from './support/v6-testrun-netns';

const LB_MAC = '02:00:00:b6:00:01';
const CLIENT_MAC = '02:00:00:b6:00:0a';
const BACKEND_MAC = '02:00:00:b6:01:11';
const MTU4 = 1400;
const MTU6 = 1380;

const CLIENT4 = '198.18.1.10';
const VIP4 = '198.18.100.1';       // NAT tcp/80 -> BACKEND4:8080, udp/53 -> BACKEND4:5353
const VIP4_DSR = '198.18.100.2';   // DSR tcp/80 -> BACKEND4
const BACKEND4 = '198.18.2.11';

const CLIENT6 = '2001:2:0:1::10';
const VIP6 = '2001:2:0:100::1';
const VIP6_DSR = '2001:2:0:100::2';
const BACKEND6 = '2001:2:0:2::11';

/** namespace xlbp6, veth xlbp6-a / xlbp6-ap; the backends' networks behind routes of a locked, smaller MTU */
const NET: V6TestRunNetns = {
  ns: 'xlbp6', dev: 'xlbp6-a', mac: LB_MAC, peerMac: '02:00:00:b6:00:02',
  addresses: ['198.18.1.1/24', '198.18.2.1/32', '2001:2:0:1::1/64', '2001:2:0:2::1/128'],
  routes: [{ prefix: '198.18.2.0/24', mtuLock: MTU4 }, { prefix: '2001:2:0:2::/64', mtuLock: MTU6 }],
  neighbours: { [CLIENT4]: CLIENT_MAC, [BACKEND4]: BACKEND_MAC, [CLIENT6]: CLIENT_MAC, [BACKEND6]: BACKEND_MAC },
  ipv4Forwarding: true,
};

const skipReason = kernelTestSkip('the path MTU data-path test');

/** An IPv4 service with one backend, as the reconciler writes it (services, vips, backends,
 * reverse for NAT, a one-backend Maglev table, the VIP's filter bit). */
function installService4(dp: Dataplane, s: { id: number; backendId: number; vip: string; port: number; proto: 6 | 17; mode: 'nat' | 'dsr'; backend: string; backendPort: number }): void {
  const src = dp as unknown as { map(name: never): never };
  const mode = s.mode === 'dsr' ? LB.MODE_DSR : LB.MODE_NAT;
  const tableSize = 7;
  lbMap(src, 'services').set({ vip: s.vip, port: s.port, proto: s.proto }, { id: s.id, tableSize, mode, flags: 0 });
  const vips = lbMap(src, 'vips');
  vips.set(s.vip, { services: (vips.get(s.vip)?.services ?? 0) + 1 });
  lbMap(src, 'backends').set(s.backendId, { ip: s.backend, port: s.backendPort, flags: LB.BACKEND_F_ACTIVE, mode, serviceId: s.id, vip: s.vip, vport: s.port, proto: s.proto });
  if (mode === LB.MODE_NAT) lbMap(src, 'reverse').set({ ip: s.backend, port: s.backendPort || s.port, proto: s.proto }, { vip: s.vip, vport: s.port, serviceId: s.id, backendId: s.backendId });
  const flat = new Uint32Array(tableSize * SLOT_WORDS);
  for (let i = 0; i < tableSize; i++) flat[i * SLOT_WORDS] = s.backendId;
  const table = createMaglevTable(flat);
  try { dp.map('maglev').update(encodeU32(s.id), encodeU32(table.fd)); } finally { table.close(); }
  const settings = lbMap(src, 'settings');
  const current = settings.get(0)!;
  const bit = vipFilterBit(ipToU32(s.vip));
  const words = [...current.vipFilter];
  words[bit >>> 5] = (words[bit >>> 5] | (1 << (bit & 31))) >>> 0;
  settings.set(0, { ...current, vipFilter: words });
}

describe('path MTU through a VIP: too big for the backend side (bpf/lb.o in netns xlbp6)', { skip: skipReason }, () => {
  let dp: Dataplane | null = null;
  let restore = (): void => {};
  let ifindex = 0;

  before(() => {
    ({ ifindex, restore } = enterV6TestRunNetns(NET));
    dp = Dataplane.load({ hashSeed: 0x5eed });
    dp.writeInterfaceMac(NET.dev, ifindex);
    installService4(dp, { id: 1, backendId: 11, vip: VIP4, port: 80, proto: 6, mode: 'nat', backend: BACKEND4, backendPort: 8080 });
    installService4(dp, { id: 2, backendId: 12, vip: VIP4, port: 53, proto: 17, mode: 'nat', backend: BACKEND4, backendPort: 5353 });
    installService4(dp, { id: 3, backendId: 13, vip: VIP4_DSR, port: 80, proto: 6, mode: 'dsr', backend: BACKEND4, backendPort: 0 });
    installService6(dp, { id: 4, vip: VIP6, port: 80, proto: 6, mode: 'nat', tableSize: 7, backends: [{ id: 14, ip: BACKEND6, port: 8080 }] });
    installService6(dp, { id: 5, vip: VIP6, port: 53, proto: 17, mode: 'nat', tableSize: 7, backends: [{ id: 15, ip: BACKEND6, port: 5353 }] });
    installService6(dp, { id: 6, vip: VIP6_DSR, port: 80, proto: 6, mode: 'dsr', tableSize: 7, backends: [{ id: 16, ip: BACKEND6, port: 0 }] });
  });

  after(() => {
    dp?.close();
    restore();
    removeV6TestRunNetns(NET);
  });

  /** Runs `frame`; asserts the action and that exactly one verdict {reason, action} was counted. */
  const run = (frame: Buffer, action: keyof typeof XDP, reason: (typeof REASONS)[number]): Buffer => runWithVerdict(dp!, ifindex, frame, action, reason);

  const toLb = { dst: LB_MAC, src: CLIENT_MAC };
  const toClient = { dst: CLIENT_MAC, src: LB_MAC };
  /** A client frame to `dst`:`dport` whose IPv4 total length is `totalLength`. */
  const frame4 = (dst: string, proto: 6 | 17, dport: number, totalLength: number, df: boolean, tos = 0): Buffer => {
    const payload = Buffer.alloc(totalLength - 20 - (proto === 6 ? 20 : 8), 0x5a);
    const l4 = proto === 6 ? { tcp: { sport: 40001, dport, flags: 0x18, payload } } : { udp: { sport: 40001, dport, payload } };
    return buildFrame({ eth: toLb, ip: { src: CLIENT4, dst, proto, df, tos, ttl: 64, id: 0x4242 }, ...l4 });
  };
  /** The answer the program must send for `sent`: ICMP 3/4 from the VIP, next-hop MTU, quoting
   * the IPv4 header as sent and 8 bytes after it. */
  const fragNeeded = (sent: Buffer, vip: string, mtu: number, tos = 0): Buffer =>
    buildFrame({ eth: toClient, ip: { src: vip, dst: CLIENT4, proto: IPPROTO_ICMP, ttl: 64, tos: (tos & 0x1e) | 0xc0, id: 0 },
      icmp: { type: 3, code: 4, rest: mtu, payload: sent.subarray(14, 14 + 20 + 8) } });

  test('IPv4 NAT TCP with DF, one byte over the route MTU: fragmentation needed from the VIP (MTU 1400), quoting the packet as the client sent it', () => {
    // First a packet exactly at the MTU: forwarded (rewritten), and its next hop is remembered
    // with that length; the longer one after it must not pass through the remembered next hop.
    const fits = run(frame4(VIP4, 6, 80, MTU4, true), 'tx', 'forwarded');
    assert.equal(u32ToIp(fits.readUInt32BE(14 + 16)), BACKEND4);
    assert.equal(fits.readUInt16BE(14 + 20 + 2), 8080);
    assert.equal(bufferToMac(fits.subarray(0, 6)), BACKEND_MAC);
    assert.deepEqual(checksumProblems(fits), []);
    for (const tos of [0, 0x10]) {
      const sent = frame4(VIP4, 6, 80, MTU4 + 1, true, tos);
      const out = run(sent, 'tx', 'too_big');
      assert.deepEqual(out.toString('hex'), fragNeeded(sent, VIP4, MTU4, tos).toString('hex'));
      assert.deepEqual(checksumProblems(out), []);
    }
  });

  test('IPv4 NAT UDP with DF, far over the MTU: the quote keeps the VIP port and the original UDP checksum', () => {
    const sent = frame4(VIP4, 17, 53, 1472, true);
    const out = run(sent, 'tx', 'too_big');
    assert.equal(out.toString('hex'), fragNeeded(sent, VIP4, MTU4).toString('hex'));
    assert.equal(out.readUInt16BE(14 + 28 + 20 + 2), 53, 'quoted destination port');
    assert.equal(u32ToIp(out.readUInt32BE(14 + 28 + 16)), VIP4, 'quoted destination');
  });

  test('IPv4 without DF, over the MTU: passed to the kernel to fragment (too_big, PASS)', () => {
    run(frame4(VIP4, 6, 80, MTU4 + 100, false), 'pass', 'too_big');
  });

  test('IPv4 DSR with DF over the MTU: the same answer from the VIP (the packet is not rewritten)', () => {
    assert.equal(run(frame4(VIP4_DSR, 6, 80, MTU4, true), 'tx', 'forwarded').readUInt32BE(14 + 16), ipToU32(VIP4_DSR));
    const sent = frame4(VIP4_DSR, 6, 80, MTU4 + 1, true);
    assert.equal(run(sent, 'tx', 'too_big').toString('hex'), fragNeeded(sent, VIP4_DSR, MTU4).toString('hex'));
  });

  /** A client IPv6 frame to `dst`:`dport` whose packet (40 + payload) is `length` bytes. */
  const frame6 = (dst: string, proto: 6 | 17, dport: number, length: number): Buffer => {
    const payload = Buffer.alloc(length - 40 - (proto === 6 ? 20 : 8), 0xa5);
    const l4 = proto === 6 ? { tcp: { sport: 40001, dport, flags: 0x18, payload } } : { udp: { sport: 40001, dport, payload } };
    return buildFrame6({ eth: toLb, ip: { src: CLIENT6, dst, hopLimit: 64, trafficClass: 0x28, flowLabel: 0x12345 }, ...l4 });
  };
  /** Packet Too Big from the VIP with the MTU, quoting the packet as sent up to 1232 bytes. */
  const tooBig6 = (sent: Buffer, vip: string, mtu: number): Buffer =>
    buildFrame6({ eth: toClient, ip: { src: vip, dst: CLIENT6, hopLimit: 64 },
      icmp6: { type: 2, code: 0, rest: mtu, payload: sent.subarray(14, 14 + Math.min(sent.length - 14, 1232)) } });

  test('IPv6 NAT66 TCP one byte over the route MTU: Packet Too Big from the VIP (MTU 1380), quoting the packet as the client sent it', () => {
    const fits = run(frame6(VIP6, 6, 80, MTU6), 'tx', 'forwarded');
    assert.equal(bytesToIpv6(fits.subarray(14 + 24, 14 + 40)), BACKEND6);
    assert.deepEqual(checksumProblems6(fits), []);
    const sent = frame6(VIP6, 6, 80, MTU6 + 1);
    const out = run(sent, 'tx', 'too_big');
    assert.equal(out.toString('hex'), tooBig6(sent, VIP6, MTU6).toString('hex'));
    assert.equal(out[14 + 6], IPPROTO_ICMPV6);
    assert.deepEqual(checksumProblems6(out), []);
  });

  test('IPv6 NAT66 UDP far over the MTU: the quote is cut at 1232 bytes and keeps the VIP and port', () => {
    const sent = frame6(VIP6, 17, 53, 1500);
    const out = run(sent, 'tx', 'too_big');
    assert.equal(out.length, 14 + 1280);
    assert.equal(out.toString('hex'), tooBig6(sent, VIP6, MTU6).toString('hex'));
    assert.equal(bytesToIpv6(out.subarray(14 + 48 + 24, 14 + 48 + 40)), VIP6, 'quoted destination');
    assert.equal(out.readUInt16BE(14 + 48 + 40 + 2), 53, 'quoted destination port');
  });

  test('IPv6 DSR over the MTU: the same answer from the VIP', () => {
    run(frame6(VIP6_DSR, 6, 80, MTU6), 'tx', 'forwarded');
    const sent = frame6(VIP6_DSR, 6, 80, MTU6 + 1);
    assert.equal(run(sent, 'tx', 'too_big').toString('hex'), tooBig6(sent, VIP6_DSR, MTU6).toString('hex'));
  });
});
