import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  buildFrame, buildIpv4, buildArpRequest, buildIpv6Udp, parseFrame, checksumProblems, internetChecksum,
  l4Checksum, ipToU32, u32ToIp, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, ETH_P_ARP, ETH_P_IPV6, ETH_P_8021Q,
} from './packet';

test('IPv4 header checksum matches a worked example (RFC 1071 style)', () => {
  // 4500 0073 0000 4000 4011 [b861] c0a8 0001 c0a8 00c7: the checksum is 0xb861.
  const header = Buffer.from('450000730000400040110000c0a80001c0a800c7', 'hex');
  assert.equal(internetChecksum(header), 0xb861);
});

test('addresses convert both ways and bad input is refused', () => {
  assert.equal(ipToU32('198.18.0.1'), 0xc6120001);
  assert.equal(u32ToIp(0xc6120001), '198.18.0.1');
  assert.throws(() => ipToU32('198.18.0'), /invalid IPv4/);
  assert.throws(() => ipToU32('198.18.0.256'), /invalid IPv4/);
});

test('TCP, UDP and ICMP frames round-trip with valid checksums', () => {
  const tcp = buildFrame({ ip: { src: '198.18.0.1', dst: '198.18.1.1', proto: IPPROTO_TCP }, tcp: { sport: 40000, dport: 80, payload: Buffer.from('hello') } });
  const p = parseFrame(tcp);
  assert.equal(p.ipv4?.src, '198.18.0.1');
  assert.equal(p.tcp?.dport, 80);
  assert.equal(p.ipv4?.totalLength, 20 + 20 + 5);
  assert.deepEqual(checksumProblems(tcp), []);

  const udp = buildFrame({ ip: { src: '198.18.0.1', dst: '198.18.1.1', proto: IPPROTO_UDP }, udp: { sport: 5353, dport: 53, payload: Buffer.from('q') } });
  assert.equal(parseFrame(udp).udp?.length, 9);
  assert.deepEqual(checksumProblems(udp), []);

  const icmp = buildFrame({ ip: { src: '198.18.0.1', dst: '198.18.1.1', proto: IPPROTO_ICMP }, icmp: { type: 8, rest: 0x00010002, payload: Buffer.alloc(32, 7) } });
  assert.equal(parseFrame(icmp).icmp?.type, 8);
  assert.deepEqual(checksumProblems(icmp), []);
});

test('checksumProblems catches a wrong IP, TCP, UDP and ICMP checksum, and accepts UDP checksum 0', () => {
  const base = { ip: { src: '198.18.0.1', dst: '198.18.1.1', proto: IPPROTO_TCP } };
  assert.match(checksumProblems(buildFrame({ ...base, ip: { ...base.ip, checksum: 1 }, tcp: { sport: 1, dport: 2 } }))[0], /IPv4/);
  assert.match(checksumProblems(buildFrame({ ...base, tcp: { sport: 1, dport: 2, checksum: 1 } }))[0], /TCP/);
  const udpIp = { ...base.ip, proto: IPPROTO_UDP };
  assert.match(checksumProblems(buildFrame({ ip: udpIp, udp: { sport: 1, dport: 2, checksum: 1 } }))[0], /UDP/);
  assert.deepEqual(checksumProblems(buildFrame({ ip: udpIp, udp: { sport: 1, dport: 2, checksum: 0 } })), []);
  const icmpIp = { ...base.ip, proto: IPPROTO_ICMP };
  assert.match(checksumProblems(buildFrame({ ip: icmpIp, icmp: { type: 8, checksum: 1 } }))[0], /ICMP/);
});

test('UDP checksum that computes to 0 is sent as 0xffff', () => {
  // Find a payload whose checksum folds to zero: adjust two bytes until it does.
  const src = ipToU32('198.18.0.1');
  const dst = ipToU32('198.18.1.1');
  const seg = Buffer.alloc(10);
  seg.writeUInt16BE(1, 0); seg.writeUInt16BE(2, 2); seg.writeUInt16BE(10, 4);
  const wanted = l4Checksum(src, dst, IPPROTO_UDP, seg); // with payload 0
  seg.writeUInt16BE(wanted, 8); // adding the checksum value as data makes the sum 0xffff -> checksum 0
  assert.equal(l4Checksum(src, dst, IPPROTO_UDP, seg), 0xffff);
});

test('options, arbitrary IHL/total length, fragments, VLAN, trailer and truncation are built as told', () => {
  const f = buildFrame({
    eth: { vlan: 100 }, trailer: Buffer.alloc(6),
    ip: { src: '198.18.0.1', dst: '198.18.1.1', proto: IPPROTO_UDP, options: Buffer.from([1, 1, 1, 0]), mf: true, fragOffset: 3, ttl: 2 },
    udp: { sport: 1, dport: 2 },
  });
  const p = parseFrame(f);
  assert.equal(p.vlan, 100);
  assert.equal(p.ipv4?.ihl, 6);
  assert.equal(p.ipv4?.mf, true);
  assert.equal(p.ipv4?.fragOffset, 3);
  assert.equal(p.ipv4?.ttl, 2);
  assert.equal(f.length, 18 + 24 + 8 + 6);
  assert.equal(f.readUInt16BE(12), ETH_P_8021Q);
  const odd = buildFrame({ ip: { src: '198.18.0.1', dst: '198.18.1.1', proto: IPPROTO_TCP, ihl: 4, totalLength: 9000 }, tcp: { sport: 1, dport: 2 }, truncate: 30 });
  assert.equal(odd.length, 30);
  assert.equal(odd[14] & 0x0f, 4);
  assert.equal(odd.readUInt16BE(16), 9000);
});

test('ICMP error quoting a datagram parses the quoted header and checks its checksums', () => {
  const quoted = buildIpv4({ ip: { src: '198.18.1.1', dst: '198.18.0.1', proto: IPPROTO_UDP }, udp: { sport: 53, dport: 5353, payload: Buffer.from('abcd') } });
  const f = buildFrame({ ip: { src: '198.18.9.9', dst: '198.18.1.1', proto: IPPROTO_ICMP }, icmp: { type: 3, code: 4, rest: 1400, payload: quoted } });
  const p = parseFrame(f);
  assert.equal(p.quoted?.ipv4.src, '198.18.1.1');
  assert.equal(p.quoted?.ports?.sport, 53);
  assert.deepEqual(checksumProblems(f), []);
  const broken = Buffer.from(f);
  broken[p.quoted!.ports!.offset + 6] ^= 0xff; // quoted UDP checksum
  assert.ok(checksumProblems(broken).some((s) => /quoted L4/.test(s)));
});

test('ARP and IPv6 frames carry their EtherTypes', () => {
  assert.equal(parseFrame(buildArpRequest('198.18.0.1', '198.18.0.2')).etherType, ETH_P_ARP);
  assert.equal(parseFrame(buildIpv6Udp(1, 2)).etherType, ETH_P_IPV6);
  assert.throws(() => parseFrame(Buffer.alloc(10)), /too short/);
});

test('a TCP/UDP segment shorter than its header is reported, not crashed on', () => {
  const f = buildFrame({ ip: { src: '198.18.0.1', dst: '198.18.1.1', proto: IPPROTO_TCP, totalLength: 30 }, tcp: { sport: 1, dport: 2 } });
  assert.match(checksumProblems(f).join(), /shorter than its header/);
  assert.throws(() => l4Checksum(1, 2, IPPROTO_UDP, Buffer.alloc(4)), /shorter than its 8-byte header/);
  const quoted = buildIpv4({ ip: { src: '198.18.1.1', dst: '198.18.0.1', proto: IPPROTO_TCP, totalLength: 30 }, tcp: { sport: 1, dport: 2 } });
  const icmp = buildFrame({ ip: { src: '198.18.9.9', dst: '198.18.1.1', proto: IPPROTO_ICMP }, icmp: { type: 3, code: 4, payload: quoted } });
  assert.deepEqual(checksumProblems(icmp), []);
});
