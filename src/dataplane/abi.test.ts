import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as os from 'node:os';
import { execFileSync } from 'node:child_process';
import { btfStructLayout, possibleCpus, repoRoot } from '../bpf';
import {
  LB, STRUCT_CODECS, LbServiceKeyCodec, LbServiceCodec, LbBackendCodec, LbReverseCodec, LbFlowKeyCodec,
  LbEventCodec, LbFlowStatsCodec, LbSettingsCodec, decodePerCpuSum, encodePerCpu, encodeU32, decodeU32,
  ipv4ToBytes, ipv6ToBytes, bytesToIpv6, canonicalIpv6, LbService6KeyCodec, LbBackend6Codec, LbFlowKey6Codec,
} from './abi';
import { REASONS } from './types';

const OBJECT = path.join(repoRoot(), 'bpf/lb.o');
const HEADER = path.join(repoRoot(), 'bpf/lb_abi.h');

/** `#define LB_NAME value` lines of the header, values evaluated (integers, parentheses, <<). */
function headerConstants(): Map<string, number> {
  const out = new Map<string, number>();
  const text = fs.readFileSync(HEADER, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '');
  for (const m of text.matchAll(/^#define\s+LB_(\w+)\s+(.+?)\s*$/gm)) {
    const expr = m[2];
    assert.match(expr, /^[\d\s()<|+]+$/, `LB_${m[1]}: unexpected expression "${expr}"`);
    out.set(m[1], Function(`"use strict"; return (${expr});`)() as number);
  }
  return out;
}

/**
 * BTF layout of a struct from bpf/lb.o; a struct the program only uses through a pointer (e.g.
 * lb_event, written into the ring buffer) has no BTF there, so it is read from a probe object
 * compiled from the same header by the same clang.
 */
let probeObject: string | null = null;
after(() => {
  if (probeObject) fs.rmSync(path.dirname(probeObject), { recursive: true, force: true });
});
function layoutOf(structName: string) {
  try {
    return { ...btfStructLayout(OBJECT, structName), from: 'bpf/lb.o' };
  } catch (err) {
    if (!/ENOENT/.test(String(err))) throw err;
    if (!probeObject) {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xlbt-dv-abi-'));
      const names = [...fs.readFileSync(HEADER, 'utf8').matchAll(/^struct\s+(\w+)\s*\{/gm)].map((m) => m[1]);
      const source = path.join(dir, 'probe.bpf.c');
      fs.writeFileSync(source, `#include <linux/types.h>\n#include "lb_abi.h"\n${names.map((n) => `struct ${n} probe_${n};`).join('\n')}\n`);
      probeObject = path.join(dir, 'probe.o');
      execFileSync('clang', ['-g', '-O2', '-target', 'bpf', `-I/usr/include/${os.arch() === 'x64' ? 'x86_64' : 'aarch64'}-linux-gnu`,
        '-I', path.dirname(HEADER), '-c', source, '-o', probeObject]);
    }
    return { ...btfStructLayout(probeObject, structName), from: 'probe' };
  }
}

describe('ABI vs bpf/lb_abi.h and the BTF of bpf/lb.o', () => {
  test('every LB_* constant of the header equals the TypeScript one, and none is extra', () => {
    const header = headerConstants();
    assert.ok(header.size > 20, 'header parsed');
    for (const [name, value] of header) {
      assert.ok(name in LB, `LB_${name} is in lb_abi.h but not in abi.ts`);
      assert.equal(LB[name as keyof typeof LB], value, `LB_${name}`);
    }
    for (const name of Object.keys(LB)) assert.ok(header.has(name), `LB.${name} is not in lb_abi.h`);
  });

  test('REASONS (metrics, dashboard, CLI) name every LB_REASON_* in its number, appended only', () => {
    const header = headerConstants();
    const named = [...header].filter(([k]) => k.startsWith('REASON_') && k !== 'REASON_COUNT' && k !== 'REASON_SLOTS');
    assert.equal(REASONS.length, header.get('REASON_COUNT'));
    for (const [k, v] of named) assert.equal(REASONS[v], k.slice('REASON_'.length).toLowerCase(), `LB_${k} = ${v}`);
    assert.equal(named.length, REASONS.length);
    // Numbers are stable across releases (dashboards and stored metrics key on the names).
    assert.deepEqual(REASONS.slice(0, 19), ['forwarded', 'reversed', 'icmp_echo', 'icmp_error', 'not_ip', 'vlan', 'not_vip', 'malformed',
      'fragment', 'no_service', 'no_backend', 'ttl', 'no_neigh', 'no_route', 'no_tx_port', 'icmp_unsupported', 'other_mac', 'martian', 'bad_checksum']);
    assert.equal(REASONS[19], 'ext_header');
  });

  test('every struct of the header has a codec', () => {
    const text = fs.readFileSync(HEADER, 'utf8');
    const structs = [...text.matchAll(/^struct\s+(\w+)\s*\{/gm)].map((m) => m[1]).sort();
    assert.deepEqual(STRUCT_CODECS.map((c) => c.cName).sort(), structs);
  });

  for (const codec of STRUCT_CODECS) {
    test(`struct ${codec.cName}: size and every member offset/size match BTF`, () => {
      const layout = layoutOf(codec.cName);
      assert.equal(codec.size, layout.size, `${codec.cName} size (BTF from ${layout.from})`);
      assert.deepEqual(
        codec.fields.map((f) => ({ name: f.c, offset: f.offset, size: f.size })),
        layout.members.map((m) => ({ name: m.name, offset: m.offset, size: m.size })),
        `${codec.cName} members`,
      );
    });
  }
});

describe('codecs', () => {
  test('network-order fields are big-endian, addresses dotted quads', () => {
    const key = LbServiceKeyCodec.encode({ vip: '198.18.100.1', port: 5300, proto: 17 });
    assert.deepEqual([...key], [198, 18, 100, 1, 0x14, 0xb4, 17, 0]);
    assert.deepEqual(LbServiceKeyCodec.decode(key), { vip: '198.18.100.1', port: 5300, proto: 17 });
  });

  test('host-order fields are in the host byte order', () => {
    const value = LbServiceCodec.encode({ id: 7, tableSize: 65537, mode: LB.MODE_DSR, flags: 0 });
    assert.equal(value.length, 12);
    assert.equal(value.readUInt32LE(0), 7); // x86/arm64 are little-endian
    assert.equal(value.readUInt32LE(4), 65537);
    assert.equal(value[8], 1);
    assert.equal(decodeU32(encodeU32(0xdeadbeef)), 0xdeadbeef);
  });

  test('round trips', () => {
    const backend = { ip: '198.18.1.2', port: 5301, flags: LB.BACKEND_F_ACTIVE | LB.BACKEND_F_DRAINING, mode: LB.MODE_DSR, serviceId: 3, vip: '198.18.100.1', vport: 80, proto: 6 };
    assert.deepEqual(LbBackendCodec.decode(LbBackendCodec.encode(backend)), backend);
    const rev = { vip: '198.18.100.1', vport: 0, serviceId: 2, backendId: 4095 };
    assert.deepEqual(LbReverseCodec.decode(LbReverseCodec.encode(rev)), rev);
    const flow = { saddr: '198.18.0.2', daddr: '198.18.100.1', sport: 40000, dport: 53, proto: 6 };
    assert.deepEqual(LbFlowKeyCodec.decode(LbFlowKeyCodec.encode(flow)), flow);
    const settings = { fragPolicy: LB.FRAG_PASS, sampleRate: 100, flowCache: 1, txRedirect: 1, vipFilter: [1, 0, 0, 0x80000000, 0, 0, 0, 7], vipFilter6: [0, 2, 0, 0, 0, 0, 0x80000000, 0] };
    assert.deepEqual(LbSettingsCodec.decode(LbSettingsCodec.encode(settings)), settings);
    const ev = {
      tsNs: 123456789012, ifindex: 5, pktLen: 98, serviceId: 1, backendId: 2, saddr: '2001:2::5',
      daddr: '::ffff:c612:6401', sport: 1234, dport: 80, proto: 6, action: 3, reason: LB.REASON_FORWARDED, family: 6,
    };
    assert.equal(LbEventCodec.size % 8, 0);
    assert.deepEqual(LbEventCodec.decode(LbEventCodec.encode(ev)), ev);
  });

  test('IPv6 fields: any valid text in, canonical RFC 5952 text out', () => {
    const cases: Array<[string, string]> = [
      ['2001:0002:0000:0000:0000:0000:0000:0005', '2001:2::5'],
      ['2001:2:0:0:1:0:0:1', '2001:2::1:0:0:1'],       // first of two equal runs
      ['2001:2:0:1:0:0:0:1', '2001:2:0:1::1'],         // the longest run, not the first
      ['2001:2:0:1:2:3:4:5', '2001:2:0:1:2:3:4:5'],    // one zero group is not ::
      ['::', '::'], ['::1', '::1'], ['1::', '1::'], ['FE80::ABCD', 'fe80::abcd'],
      ['::ffff:198.18.0.1', '::ffff:c612:1'],          // a dotted tail in, hex out
      ['2001:2::198.18.0.1', '2001:2::c612:1'],
      ['0:0:0:0:0:0:0:0', '::'],
    ];
    for (const [input, canonical] of cases) assert.equal(canonicalIpv6(input), canonical, input);
    assert.deepEqual([...ipv6ToBytes('2001:2::5')], [0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5]);
    assert.equal(bytesToIpv6(Buffer.from('00000000000000000000ffffc6120001', 'hex')), '::ffff:c612:1');
    for (const bad of ['', ':', ':::', '1:2:3:4:5:6:7', '1:2:3:4:5:6:7:8:9', '1::2::3', '12345::', 'g::1', '::1.2.3', '::01.2.3.4',
      '1.2.3.4::', '1:2:3:4:5:6:7::8:9', 'fe80::1%eth0', '2001:2::/48', ' ::1']) {
      // the one codec's reason, naming the bad text (address-text.ts)
      assert.throws(() => ipv6ToBytes(bad), (e: Error) => e.message.includes(`"${bad}"`), JSON.stringify(bad));
    }
    const key = { vip: '2001:2::10', port: 443, proto: 6 };
    const enc = LbService6KeyCodec.encode({ ...key, vip: '2001:0002::0010' });
    assert.equal(enc.length, 20);
    assert.deepEqual(LbService6KeyCodec.decode(enc), key);
    const b6 = { ip: '2001:2:1::a', port: 8080, flags: LB.BACKEND_F_ACTIVE, mode: LB.MODE_NAT, serviceId: 9, vip: '2001:2::10', vport: 443, proto: 6 };
    assert.deepEqual(LbBackend6Codec.decode(LbBackend6Codec.encode(b6)), b6);
    const f6 = { saddr: '2001:2:ff::1', daddr: '2001:2::10', sport: 1, dport: 2, proto: 17 };
    assert.equal(LbFlowKey6Codec.size, 40);
    assert.deepEqual(LbFlowKey6Codec.decode(LbFlowKey6Codec.encode(f6)), f6);
  });

  test('bad values are refused, naming the field', () => {
    assert.throws(() => LbServiceKeyCodec.encode({ vip: '198.18.300.1', port: 1, proto: 6 }), /198\.18\.300\.1" is not an IPv4/);
    assert.throws(() => LbServiceKeyCodec.encode({ vip: '198.18.0.1', port: 70000, proto: 6 }), /lb_service_key\.port = 70000/);
    assert.throws(() => ipv4ToBytes('1.2.3'), /not an IPv4/);
    assert.throws(() => LbServiceCodec.decode(Buffer.alloc(4)), /needs 12 bytes/);
  });

  test('per-CPU values sum over possible CPUs, slots rounded up to 8 bytes', () => {
    const cpus = possibleCpus();
    assert.ok(cpus >= 1);
    const one = { fwdPackets: 2, fwdBytes: 100, revPackets: 1, revBytes: 60 };
    const buf = encodePerCpu(LbFlowStatsCodec, one, cpus);
    assert.equal(buf.length, 32 * cpus);
    assert.deepEqual(decodePerCpuSum(LbFlowStatsCodec, buf, cpus),
      { fwdPackets: 2 * cpus, fwdBytes: 100 * cpus, revPackets: cpus, revBytes: 60 * cpus });
    // A 12-byte struct takes 16-byte slots.
    const svc = encodePerCpu(LbServiceCodec, { id: 1, tableSize: 2, mode: 0, flags: 0 }, 3);
    assert.equal(svc.length, 48);
    assert.throws(() => decodePerCpuSum(LbFlowStatsCodec, Buffer.alloc(33)), /not 32-byte slots/);
  });
});
