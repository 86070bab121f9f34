/**
 * src/domain/address.ts over the class of input: every RFC 5952 output rule, every RFC 4291
 * input form (embedded IPv4 tail, leading zeros, upper case, '::' anywhere), every malformed
 * shape, each forbidden class of both families, and host:port in both directions.
 * Canonical outputs are checked against an independent oracle: the bytes are rebuilt from the
 * output and compared, and the RFC 5952 rules are checked on the text itself.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { XdplbError } from './errors';
import {
  FORBIDDEN_IPV4_CLASSES, FORBIDDEN_IPV6_CLASSES, addressBytes, addressFamily, addressFromBytes, canonicalAddress,
  compareAddresses, fold6, forbiddenAddressReason, formatHostPort, isForbiddenBackend, isForbiddenVip, parseAddress,
  parseHostPort, tryParseAddress, tryParseHostPort,
} from './address';

function errorOf(text: unknown): string {
  const parsed = tryParseAddress(text);
  assert.ok('error' in parsed, `${String(text)} must be refused`);
  return parsed.error;
}

/** RFC 5952 rules checked on text alone. */
function assertRfc5952(text: string): void {
  assert.equal(text, text.toLowerCase(), `${text}: lower case (4.3)`);
  assert.ok(!text.includes('.'), `${text}: no dotted tail`);
  const halves = text.split('::');
  assert.ok(halves.length <= 2, `${text}: "::" at most once`);
  const groups = halves.flatMap((h) => (h === '' ? [] : h.split(':')));
  for (const g of groups) assert.ok(/^(0|[1-9a-f][0-9a-f]{0,3})$/.test(g), `${text}: group "${g}" without leading zeros (4.1)`);
  const words = groups.length;
  if (halves.length === 2) {
    const run = 8 - words;
    assert.ok(run >= 2, `${text}: "::" never stands for a single zero group (4.2.2)`);
    // 4.2.1 / 4.2.3: no written zero run as long as (or longer than) the elided one before it,
    // and none longer after it.
    const [h, t] = halves.map((x) => (x === '' ? [] : x.split(':')));
    const longest = (gs: string[]) => { let best = 0; let cur = 0; for (const g of gs) { cur = g === '0' ? cur + 1 : 0; best = Math.max(best, cur); } return best; };
    assert.ok(longest(h) < run, `${text}: the first longest run is elided (4.2.3)`);
    assert.ok(longest(t) <= run, `${text}: the longest run is elided (4.2.1)`);
  } else {
    assert.equal(words, 8);
    let cur = 0;
    for (const g of groups) { cur = g === '0' ? cur + 1 : 0; assert.ok(cur < 2, `${text}: a run of two zero groups must be "::"`); }
  }
}

/** node:net as an independent oracle: the canonical text names the same address as the input. */
function sameAddressAsNode(input: string, canonical: string): void {
  const list = new net.BlockList();
  list.addAddress(input, 'ipv6');
  assert.ok(list.check(canonical, 'ipv6'), `node:net: ${input} is ${canonical}`);
  const other = new net.BlockList();
  other.addAddress(canonical, 'ipv6');
  assert.ok(other.check(input, 'ipv6'), `node:net: ${canonical} is ${input}`);
}

describe('IPv6 canonical output (RFC 5952)', () => {
  const cases: Array<[string, string]> = [
    // 4.1 leading zeros removed; 4.3 lower case
    ['2001:0DB8:0000:0000:0000:0000:0002:0001', '2001:db8::2:1'],
    ['2001:0002:0000:0000:0000:0000:0000:0005', '2001:2::5'],
    ['2001:2:0:0:0:0:0:5', '2001:2::5'],
    // 4.2.2 a single zero group is not shortened
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['2001:db8::1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    // 4.2.1 the longest run
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
    ['2001:db8:0:0:1:0:0:0', '2001:db8:0:0:1::'],
    // 4.2.3 first run on a tie
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['0:0:1:0:0:1:0:0', '::1:0:0:1:0:0'],
    // edges
    ['0:0:0:0:0:0:0:0', '::'],
    ['::', '::'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['1:0:0:0:0:0:0:0', '1::'],
    ['1::', '1::'],
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
    ['::2:3:4:5:6:7:8', '0:2:3:4:5:6:7:8'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
    ['FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'],
    ['2001:2:0:0:1:0:0:0', '2001:2:0:0:1::'],
    ['0:1:0:1:0:1:0:1', '0:1:0:1:0:1:0:1'],
    ['000A:00b:0c::', 'a:b:c::'],
    // embedded IPv4 tail: accepted, printed as hex groups
    ['::ffff:198.18.0.1', '::ffff:c612:1'],
    ['2001:2::198.18.0.1', '2001:2::c612:1'],
    ['64:ff9b::198.18.255.255', '64:ff9b::c612:ffff'],
    ['1:2:3:4:5:6:198.18.0.1', '1:2:3:4:5:6:c612:1'],
    ['::0.0.0.0', '::'],
    ['::1.2.3.4', '::102:304'],
  ];
  for (const [input, expected] of cases) {
    test(`${input} -> ${expected}`, () => {
      const parsed = parseAddress(input);
      assert.equal(parsed.family, 6);
      assert.equal(parsed.text, expected);
      assert.equal(parsed.bytes.length, 16);
      assertRfc5952(parsed.text);
      // Round trip: the canonical form parses to the same bytes and prints itself.
      assert.deepEqual(parseAddress(parsed.text).bytes, parsed.bytes);
      assert.equal(canonicalAddress(parsed.text), parsed.text);
      assert.equal(addressFromBytes(parsed.bytes), parsed.text);
      sameAddressAsNode(input, parsed.text);
      assert.ok(net.isIPv6(parsed.text));
    });
  }

  test('every shape of zero runs over 8 groups (256 patterns): canonical, rules kept, same bytes', () => {
    for (let mask = 0; mask < 256; mask++) {
      const words = Array.from({ length: 8 }, (_, i) => ((mask >> i) & 1 ? (i + 1) * 0x1111 : 0));
      const full = words.map((w) => w.toString(16).padStart(4, '0').toUpperCase()).join(':');
      const parsed = parseAddress(full);
      assertRfc5952(parsed.text);
      const bytes = Buffer.alloc(16);
      words.forEach((w, i) => bytes.writeUInt16BE(w, i * 2));
      assert.deepEqual(parsed.bytes, bytes, full);
      assert.equal(addressFromBytes(bytes), parsed.text);
      // Every "::" placement over any zero run of the input parses to the same address.
      for (let s = 0; s < 8; s++) {
        for (let e = s + 1; e <= 8; e++) {
          if (words.slice(s, e).some((w) => w !== 0)) continue;
          const left = words.slice(0, s).map((w) => w.toString(16)).join(':');
          const right = words.slice(e).map((w) => w.toString(16)).join(':');
          const alt = `${left}::${right}`;
          assert.equal(canonicalAddress(alt), parsed.text, alt);
        }
      }
    }
  });
});

describe('IPv6 input refused with a one-line reason', () => {
  const bad: Array<[string, RegExp]> = [
    ['fe80::1%eth0', /zone id/],
    ['2001:2::5%1', /zone id/],
    ['2001:2::5::1', /"::" more than once/],
    ['::1::', /"::" more than once/],
    ['2001:2:::5', /":::"/],
    ['1:2:3:4:5:6:7:8:9', /too many groups \(9/],
    ['1:2:3:4:5:6:7', /too few groups/],
    ['1:2:3:4::5:6:7:8', /too many groups for "::"/],
    ['::1:2:3:4:5:6:7:8', /too many groups for "::"/],
    ['1:2:3:4:5:6:7:1.2.3.4', /too many groups/],
    ['1:2:3:4:5::6:1.2.3.4', /too many groups for "::"/],
    ['2001:00002::5', /longer than four hex digits/],
    ['2001:db8::g', /not hexadecimal|only hex digits/],
    ['2001:db8::12345', /longer than four/],
    [':1:2:3:4:5:6:7', /starts with a single ":"/],
    ['1:2:3:4:5:6:7:', /ends with a single ":"/],
    ['1::2:', /ends with a single ":"/],
    [':', /single ":"/],
    ['2001:2::1.2.3', /embedded IPv4 tail/],
    ['2001:2::1.2.3.256', /embedded IPv4 tail/],
    ['2001:2::01.2.3.4', /embedded IPv4 tail.*leading zero/],
    ['1.2.3.4::', /before its last group/],
    ['::1.2.3.4:5', /before its last group/],
    ['[2001:2::5]', /brackets/],
    ['2001:2::5 ', /white space/],
    [' 2001:2::5', /white space/],
    ['2001:2::-5', /only hex digits/],
  ];
  for (const [input, reason] of bad) {
    test(JSON.stringify(input), () => {
      const error = errorOf(input);
      assert.match(error, reason);
      assert.ok(!error.includes('\n'));
      assert.throws(() => parseAddress(input, '/vip'), (e: unknown) => e instanceof XdplbError && e.code === 'XDPLB_ERR_VALIDATION' && e.field === '/vip');
      assert.equal(addressFamily(input), null);
    });
  }
  test('agrees with node:net on every refusal above and every acceptance in this file', () => {
    for (const [input] of bad) assert.ok(!net.isIP(input) || input.includes('%'), input);
  });
});

describe('IPv4', () => {
  test('dotted quads: accepted and printed as given', () => {
    for (const text of ['198.18.0.1', '0.0.0.0', '255.255.255.255', '10.0.0.1', '1.2.3.4', '198.19.255.255']) {
      const parsed = parseAddress(text);
      assert.equal(parsed.family, 4);
      assert.equal(parsed.text, text);
      assert.deepEqual([...parsed.bytes], text.split('.').map(Number));
      assert.equal(addressFromBytes(parsed.bytes), text);
    }
  });
  test('bad quads: refused with a reason', () => {
    const bad: Array<[string, RegExp]> = [
      ['198.18.0', /four decimal octets/], ['198.18.0.1.2', /four decimal octets/], ['198.18.0.256', /above 255/],
      ['198.018.0.1', /leading zero/], ['198..0.1', /empty octet/], ['198.18.0.', /empty octet/],
      ['web.example', /host names/], ['198.18.0.1%eth0', /zone id/], ['', /empty/], ['-1.2.3.4', /host names|not a decimal/],
    ];
    for (const [input, reason] of bad) assert.match(errorOf(input), reason, input);
    assert.match(errorOf(5), /string/);
    assert.match(errorOf(null), /string/);
  });
});

describe('forbidden classes', () => {
  test('each IPv6 class: first, a middle and last address refused naming the class; neighbours usable', () => {
    const inside: Array<[string, string]> = [
      ['::', '::/128'], ['0:0::0', '::/128'],
      ['::1', '::1/128'], ['0:0:0:0:0:0:0:1', '::1/128'],
      ['fe80::', 'fe80::/10'], ['fe80::1', 'fe80::/10'], ['FEBF:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'fe80::/10'], ['fea0::5', 'fe80::/10'],
      ['ff00::', 'ff00::/8'], ['ff02::1', 'ff00::/8'], ['ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'ff00::/8'],
      ['::ffff:0:0', '::ffff:0:0/96'], ['::ffff:198.18.0.1', '::ffff:0:0/96'], ['::ffff:ffff:ffff', '::ffff:0:0/96'],
    ];
    for (const [address, cidr] of inside) {
      const reason = forbiddenAddressReason(address);
      assert.ok(reason, `${address} refused`);
      assert.ok(reason.includes(`(${cidr})`), reason);
      assert.ok(reason.startsWith(canonicalAddress(address) + ' is '), `${reason}: names the canonical form`);
      assert.ok(!reason.includes('\n'));
      assert.equal(isForbiddenVip(address), reason);
      assert.equal(isForbiddenBackend(address), reason);
    }
    const usable = ['::2', 'fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'fec0::1', 'fc00::1', 'fd00::1',
      'fe00:ffff::1', 'fe00::', '::fffe:0:0', '::1:ffff:0:0', '2001:2::', '2001:2::5', '2001:2:0:ffff:ffff:ffff:ffff:ffff',
      '2001:db8::1', '2000::1', 'ff::1', '64:ff9b::c612:1'];
    for (const address of usable) {
      assert.equal(forbiddenAddressReason(address), null, address);
      assert.equal(isForbiddenVip(address), null, address);
    }
    // The table covers each class named in V6.md.
    assert.deepEqual(FORBIDDEN_IPV6_CLASSES.map((c) => c.cidr), ['::/128', '::1/128', 'fe80::/10', 'ff00::/8', '::ffff:0:0/96']);
  });
  test('each IPv4 class: refused naming the class; the broadcast address named for itself', () => {
    for (const c of FORBIDDEN_IPV4_CLASSES) {
      const [base] = c.cidr.split('/');
      const reason = forbiddenAddressReason(base);
      assert.ok(reason?.includes(`(${c.cidr})`), `${base}: ${reason}`);
    }
    assert.match(forbiddenAddressReason('239.255.255.255') ?? '', /multicast.*224\.0\.0\.0\/4/);
    assert.match(forbiddenAddressReason('127.255.0.1') ?? '', /loopback/);
    assert.equal(forbiddenAddressReason('198.18.0.1'), null);
    assert.equal(forbiddenAddressReason('not an address'), null);
    assert.match(isForbiddenVip('not an address') ?? '', /not an IPv4 or IPv6 address/);
  });
});

describe('host:port', () => {
  test('format: brackets for IPv6 only, canonical inside', () => {
    assert.equal(formatHostPort('2001:0002::0005', 80), '[2001:2::5]:80');
    assert.equal(formatHostPort('2001:2::5', 0), '[2001:2::5]:0');
    assert.equal(formatHostPort('198.18.1.2', 65535), '198.18.1.2:65535');
    assert.equal(formatHostPort('::FFFF:198.18.0.1', 1), '[::ffff:c612:1]:1');
  });
  test('parse: both families, ports 0 and 65535, any text form inside brackets', () => {
    const ok: Array<[string, string, string, number]> = [
      ['[2001:2::5]:80', '2001:2::5', '[2001:2::5]:80', 80],
      ['[2001:0002:0:0:0:0:0:5]:8080', '2001:2::5', '[2001:2::5]:8080', 8080],
      ['[2001:2::198.18.0.1]:0', '2001:2::c612:1', '[2001:2::c612:1]:0', 0],
      ['[2001:2::5]:65535', '2001:2::5', '[2001:2::5]:65535', 65535],
      ['198.18.1.2:80', '198.18.1.2', '198.18.1.2:80', 80],
      ['198.18.1.2:0', '198.18.1.2', '198.18.1.2:0', 0],
      ['198.18.1.2:65535', '198.18.1.2', '198.18.1.2:65535', 65535],
    ];
    for (const [input, address, text, port] of ok) {
      const parsed = parseHostPort(input);
      assert.equal(parsed.address.text, address, input);
      assert.equal(parsed.port, port, input);
      assert.equal(parsed.text, text, input);
      assert.deepEqual(tryParseHostPort(parsed.text), parsed, 'the canonical text parses to itself');
    }
  });
  test('parse: refused with a reason', () => {
    const bad: Array<[string, RegExp]> = [
      ['[2001:2::5]:65536', /out of range/], ['198.18.1.2:65536', /out of range/], ['198.18.1.2:99999999999', /out of range/],
      ['2001:2::5:80', /in brackets/], ['[2001:2::5]80', /":port" after "]"/], ['[2001:2::5:80', /without closing/],
      ['[2001:2::5]', /":port" after/], ['[2001:2::5]:', /port is empty/], ['198.18.1.2:', /port is empty/],
      ['198.18.1.2', /no port/], ['[198.18.1.2]:80', /only for IPv6/], ['198.18.1.2:-1', /not a decimal/],
      ['198.18.1.2:+80', /not a decimal/], ['198.18.1.2:080', /leading zero/], ['198.18.1.2:8o', /not a decimal/],
      ['[fe80::1%eth0]:80', /zone id/], ['[2001:2::5::1]:80', /more than once/], ['host:80', /host names/],
    ];
    for (const [input, reason] of bad) {
      const parsed = tryParseHostPort(input);
      assert.ok('error' in parsed, input);
      assert.match(parsed.error, reason, input);
      assert.throws(() => parseHostPort(input), XdplbError);
    }
  });
});

describe('helpers', () => {
  test('bytes, family, order, fold6', () => {
    assert.deepEqual([...addressBytes('2001:2::5')], [0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5]);
    assert.equal(addressFamily('198.18.0.1'), 4);
    assert.equal(addressFamily('2001:2::5'), 6);
    assert.throws(() => addressFromBytes(new Uint8Array(5)), RangeError);
    const sorted = ['2001:2::10', '198.18.0.2', '2001:2::9', '198.18.0.10'].sort(compareAddresses);
    assert.deepEqual(sorted, ['198.18.0.2', '198.18.0.10', '2001:2::9', '2001:2::10']);
    // fold6 = xor of the four host-order words
    assert.equal(fold6(addressBytes('2001:2::5')), (0x20010002 ^ 0 ^ 0 ^ 5) >>> 0);
    assert.equal(fold6(addressBytes('ffff:ffff::')), 0xffffffff);
    assert.equal(fold6(addressBytes('ffff:ffff::ffff:ffff')), 0);
  });
});
