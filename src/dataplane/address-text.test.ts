/**
 * address-text.ts is the one IPv6 text <-> bytes codec: abi.ts, packet.ts, src/domain/address.ts
 * and src/lab/topology.ts use it instead of carrying their own (the parser itself is checked
 * against node:net on 20,000 inputs by src/domain/address.test.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { bytesToIpv6, ipv6ToBytes } from './address-text';
import * as abi from './abi';
import * as packet from './packet';
import { addressFromBytes, tryParseAddress } from '../domain/address';
import { ipv6Groups } from '../lab/topology';

test('abi.ts and packet.ts hand out the one codec, not copies of it', () => {
  assert.equal(abi.ipv6ToBytes, ipv6ToBytes);
  assert.equal(abi.bytesToIpv6, bytesToIpv6);
  assert.equal(packet.ip6ToBuffer, ipv6ToBytes);
  assert.equal(packet.bufferToIp6, bytesToIpv6);
});

test('a refused text gets the parser\'s reason, naming the text', () => {
  const cases: Array<[string, RegExp]> = [
    ['1::2::3', /"1::2::3" has "::" more than once/],
    ['12345::', /"12345::" has a group "12345" longer than four hex digits/],
    ['fe80::1%eth0', /"fe80::1%eth0" has a zone id/],
    ['1:2:3:4:5:6:7', /"1:2:3:4:5:6:7" has too few groups \(7/],
    ['::01.2.3.4', /"::01.2.3.4" has a bad embedded IPv4 tail: .*leading zero/],
  ];
  for (const [text, reason] of cases) {
    assert.throws(() => ipv6ToBytes(text), reason, text);
    assert.throws(() => packet.buildIpv6({ ip: { src: text, dst: '2001:2::1' } }), reason, `packet builder: ${text}`);
    assert.throws(() => abi.LbService6KeyCodec.encode({ vip: text, port: 80, proto: 6 }), reason, `abi codec: ${text}`);
  }
  assert.throws(() => ipv6ToBytes(7 as unknown as string), /must be a string, not number/);
});

test('bytes -> text at any offset, every form back to the same bytes, lab groups from the same parse', () => {
  let seed = 0x6a09e667;
  const next = () => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed >>> 24; };
  for (let n = 0; n < 2000; n++) {
    // Zero-rich addresses so every "::" position and tie shows up.
    const bytes = Buffer.from(Array.from({ length: 16 }, (_, i) => (next() < 140 ? 0 : next() >> (i % 3))));
    const offset = n % 5;
    const frame = Buffer.concat([Buffer.alloc(offset, 0xff), bytes, Buffer.alloc(3, 0xee)]);
    const text = bytesToIpv6(frame, offset);
    assert.equal(text, bytesToIpv6(bytes));
    assert.equal(text, addressFromBytes(bytes));
    assert.ok(net.isIPv6(text), text);
    const full = Array.from({ length: 8 }, (_, i) => bytes.readUInt16BE(i * 2).toString(16).toUpperCase().padStart(4, '0')).join(':');
    assert.deepEqual(ipv6ToBytes(full), bytes, full);
    assert.deepEqual(ipv6ToBytes(text), bytes, text);
    const parsed = tryParseAddress(full);
    assert.ok(!('error' in parsed) && parsed.text === text, full);
    assert.deepEqual(ipv6Groups(full), Array.from({ length: 8 }, (_, i) => bytes.readUInt16BE(i * 2)), full);
  }
});

test('fewer than 16 bytes after the offset is a RangeError, not a made-up address', () => {
  assert.throws(() => bytesToIpv6(Buffer.alloc(15)), RangeError);
  assert.throws(() => bytesToIpv6(Buffer.alloc(20), 5), /16 bytes; 20 bytes at offset 5 hold 15/);
  assert.throws(() => bytesToIpv6(Buffer.alloc(16), -1), RangeError);
  assert.equal(bytesToIpv6(Buffer.alloc(20), 4), '::');
});
