/**
 * The IPv6 reference model (test/refmodel6.ts) against the IPv6 fixture rows
 * (test/datapath-fixtures6.ts), without the kernel: the model, written from the policy in code,
 * and the rows, written from the policy as expected frames built from scratch, must agree on
 * every verdict, reason, ids and whole output frame. (test/datapath.test.ts then holds both to
 * the program.) Also the IPv6 frame helpers of src/dataplane/packet.ts.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ip6ToBuffer, bufferToIp6, buildIpv6, buildFrame6, checksumProblems6, l4Checksum6, ipToU32, macToBuffer, parseFrame6,
  IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6,
} from '../src/dataplane/packet';
import { connectedFib, FlowCacheModel, type ModelState } from './refmodel';
import { TEST_FLOW_SETS } from './datapath-harness';
import { connectedFib6, fold6, flowHash6, martianAddr6, reasonNumber } from './refmodel6';
import { runModel } from './refmodel';
import { ACTION_NUMBER, DEFAULT_SETTINGS, NEIGHBOURS, PORTS, fixtureState } from './datapath-fixtures';
import { fixtures6, withV6, CLIENT6, VIP6 } from './datapath-fixtures6';
import type { DatapathLab, LabPort } from './datapath-lab';
import { jhash2 } from '../src/dataplane/jhash';

/** The fixture lab as the model sees it (ifindexes 101..103), no namespace. */
function paperLab(): DatapathLab {
  const ports: Record<string, LabPort> = {};
  PORTS.forEach((p, i) => { ports[p.suffix] = { name: `paper-${p.suffix}`, peer: '', ifindex: 101 + i, mac: p.mac, address: p.address, address6: p.address6 }; });
  const byPort = (s: string) => ports[s].ifindex;
  return {
    netns: 'none', ports, neighbours: NEIGHBOURS, destroy: () => {},
    fib: connectedFib(Object.values(ports).map((p) => ({ ifindex: p.ifindex, mac: macToBuffer(p.mac), address: ipToU32(p.address), prefixLen: 24 })),
      NEIGHBOURS.filter((n) => !n.ip.includes(':')).map((n) => ({ ifindex: byPort(n.port), ip: ipToU32(n.ip), mac: macToBuffer(n.mac) }))),
    fib6: connectedFib6(Object.values(ports).map((p) => ({ ifindex: p.ifindex, mac: macToBuffer(p.mac), address: ip6ToBuffer(p.address6!), prefixLen: 64 as const })),
      NEIGHBOURS.filter((n) => n.ip.includes(':')).map((n) => ({ ifindex: byPort(n.port), ip: ip6ToBuffer(n.ip), mac: macToBuffer(n.mac) }))),
  };
}

describe('IPv6 frame helpers (src/dataplane/packet.ts)', () => {
  test('text forms parse to bytes and print canonically (RFC 5952)', () => {
    const cases: Array<[string, string]> = [
      ['2001:2::1', '2001:2::1'], ['2001:0002:0000:0000:0000:0000:0000:0001', '2001:2::1'], ['::', '::'], ['::1', '::1'],
      ['2001:DB8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], ['2001:2:0:1:0:0:0:0', '2001:2:0:1::'], ['::ffff:198.18.0.10', '::ffff:c612:a'],
      ['1:0:2:3:4:5:6:7', '1:0:2:3:4:5:6:7'], ['fe80::1:2', 'fe80::1:2'],
    ];
    for (const [text, canon] of cases) assert.equal(bufferToIp6(ip6ToBuffer(text)), canon, text);
    for (const bad of ['', '1::2::3', '12345::', '1:2:3:4:5:6:7:8:9', 'g::1', '::1.2.3', '1:2:3:4:5:6:7']) {
      assert.throws(() => ip6ToBuffer(bad), (e: Error) => e.message.includes(`"${bad}"`), bad);
    }
  });

  test('TCP/UDP/ICMPv6 checksums equal an independent 32-bit sum over the pseudo-header', () => {
    const src = ip6ToBuffer('2001:2:0:a::10');
    const dst = ip6ToBuffer('2001:2:100::1');
    const independent = (proto: number, seg: Buffer, at: number): number => {
      const copy = Buffer.from(seg); copy.writeUInt16BE(0, at);
      const ph = Buffer.alloc(40); src.copy(ph, 0); dst.copy(ph, 16); ph.writeUInt32BE(seg.length, 32); ph[39] = proto;
      const all = Buffer.concat([ph, copy, Buffer.alloc(copy.length % 2)]);
      let sum = 0n;
      for (let i = 0; i < all.length; i += 2) sum += BigInt(all.readUInt16BE(i));
      while (sum > 0xffffn) sum = (sum & 0xffffn) + (sum >> 16n);
      const c = Number(~sum & 0xffffn);
      return proto === IPPROTO_UDP && c === 0 ? 0xffff : c;
    };
    for (let n = 0; n < 40; n++) {
      const payload = Buffer.from(Array.from({ length: n * 7 % 61 }, (_, i) => (i * 31 + n) & 0xff));
      const t = buildIpv6({ ip: { src: '2001:2:0:a::10', dst: '2001:2:100::1' }, tcp: { sport: n, dport: 80, payload } }).subarray(40);
      assert.equal(t.readUInt16BE(16), independent(IPPROTO_TCP, t, 16));
      const u = buildIpv6({ ip: { src: '2001:2:0:a::10', dst: '2001:2:100::1' }, udp: { sport: n, dport: 53, payload } }).subarray(40);
      assert.equal(u.readUInt16BE(6), independent(IPPROTO_UDP, u, 6));
      const c = buildIpv6({ ip: { src: '2001:2:0:a::10', dst: '2001:2:100::1' }, icmp6: { type: 128, payload } }).subarray(40);
      assert.equal(c.readUInt16BE(2), l4Checksum6(src, dst, IPPROTO_ICMPV6, c));
      assert.equal(c.readUInt16BE(2), independent(IPPROTO_ICMPV6, c, 2));
    }
  });

  test('extension headers chain their next-header bytes; the parser walks them; checksumProblems6 finds a flipped byte', () => {
    const f = buildFrame6({ ip: { src: CLIENT6, dst: VIP6.web }, ext: [{ type: 0 }, { type: 60, body: Buffer.alloc(9) }, { type: 43 }, { type: 51 }], tcp: { sport: 1, dport: 80, payload: Buffer.from('x') } });
    const p = parseFrame6(f);
    assert.deepEqual(p.ipv6!.ext.map((e) => [e.type, e.length]), [[0, 8], [60, 16], [43, 8], [51, 24]]);
    assert.equal(p.ipv6!.proto, IPPROTO_TCP);
    assert.equal(p.tcp!.dport, 80);
    assert.deepEqual(checksumProblems6(f), []);
    const bad = Buffer.from(f); bad[bad.length - 1] ^= 1;
    assert.equal(checksumProblems6(bad).length, 1);
    const zero = buildFrame6({ ip: { src: CLIENT6, dst: VIP6.web }, udp: { sport: 1, dport: 53, checksum: 0 } });
    assert.deepEqual(checksumProblems6(zero), ['UDP checksum 0 over IPv6']);
  });
});

describe('IPv6 reference model (test/refmodel6.ts)', () => {
  test('hash and martian helpers follow V6.md', () => {
    const a = ip6ToBuffer('2001:2:0:a::10');
    assert.equal(fold6(a), (0x20010002 ^ 0x000a ^ 0 ^ 0x10) >>> 0);
    const b = ip6ToBuffer(VIP6.web);
    assert.equal(flowHash6(a, b, 1, 80, IPPROTO_TCP, 7), jhash2([fold6(a), fold6(b), (1 << 16) | 80], (7 ^ 6 ^ 0x60000000) >>> 0));
    assert.equal(flowHash6(a, b, 1, 80, IPPROTO_ICMPV6, 7), jhash2([fold6(a), fold6(b), IPPROTO_ICMPV6], (7 ^ 0x60000000) >>> 0));
    for (const m of ['::', '::1', 'ff02::1', 'ff0e::5', 'fe80::1', 'febf::1', '::ffff:1.2.3.4']) assert.ok(martianAddr6(ip6ToBuffer(m)), m);
    for (const m of ['::2', 'fec0::1', '2001:2::1', '::ffff:0:1:2', '64:ff9b::1', 'fe00::1']) assert.ok(!martianAddr6(ip6ToBuffer(m)), m);
  });

  const lab = paperLab();
  const base: ModelState = withV6(fixtureState(lab), lab);
  const rows = fixtures6();
  test('at least 40 IPv6 rows with distinct names, every verdict and reason', () => {
    assert.ok(rows.length >= 40, `${rows.length} rows`);
    assert.equal(new Set(rows.map((r) => r.name)).size, rows.length);
    const reasons = new Set(rows.map((r) => r.reason));
    for (const want of ['forwarded', 'reversed', 'icmp_echo', 'icmp_error', 'vlan', 'not_vip', 'malformed', 'fragment', 'no_service', 'no_backend', 'ttl', 'no_neigh', 'no_route', 'no_tx_port', 'icmp_unsupported', 'other_mac', 'martian', 'bad_checksum', 'ext_header'] as const) {
      assert.ok(reasons.has(want), `no row with reason ${want}`);
    }
    assert.deepEqual(new Set(rows.map((r) => r.action)), new Set(['drop', 'pass', 'tx', 'redirect']));
  });
  for (const fx of rows) {
    test(`model: ${fx.name}`, () => {
      const st: ModelState = { ...base, settings: { ...DEFAULT_SETTINGS, ...fx.settings }, v6: { ...base.v6!, flows: new FlowCacheModel(TEST_FLOW_SETS) } };
      const res = runModel(st, fx.input, lab.ports[fx.ingress].ifindex);
      assert.equal(res.action, ACTION_NUMBER[fx.action], 'action');
      assert.equal(res.reason, reasonNumber(fx.reason), 'reason');
      assert.equal(res.serviceId, fx.serviceId ?? 0, 'service id');
      assert.equal(res.backendId, fx.backendId ?? 0, 'backend id');
      const want = fx.output === 'unchanged' ? fx.input : fx.output;
      assert.equal(res.frame.toString('hex'), want.toString('hex'), 'output frame');
      if (fx.output !== 'unchanged' && fx.action !== 'drop') assert.deepEqual(checksumProblems6(res.frame), [], 'checksums from scratch');
    });
  }
});
