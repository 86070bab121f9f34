// The dashboard's address handling (web/src/address.ts) and Trace filters (web/src/trace-filter.ts),
// checked under Node: canonical IPv6 text, [v6]:port, and filters that compare parsed addresses
// (never substrings) in both families.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  canonicalHostPort, formatHostPort, formatIpv6, parseIp, parsePrefix, prefixContains, splitHostPort, splitHostPortList, tryParseIp,
} from '../../web/src/address';
import { formatEndpoint } from '../../web/src/format';
import { eventFamily, parseTraceFilter, traceEventMatches } from '../../web/src/trace-filter';
import type { TraceEvent } from '../../src/dataplane/types';
import { formatHostPort as daemonHostPort, tryParseAddress } from '../../src/domain/address';
import { rng } from '../support/rng';

test('IPv6 text comes out canonical (RFC 5952) whatever form went in', () => {
  const cases: Array<[string, string]> = [
    ['2001:0002:0000:0000:0000:0000:0000:0001', '2001:2::1'],
    ['2001:2:0:0:0:0:0:1', '2001:2::1'],
    ['2001:2::0:1', '2001:2::1'],
    ['2001:2:0:A5A5:B6B6:C7C7:D8D8:E9E9', '2001:2:0:a5a5:b6b6:c7c7:d8d8:e9e9'], // a single zero group stays "0"
    ['2001:2:0:0:1:0:0:1', '2001:2::1:0:0:1'],                                   // a tie: the first run
    ['2001:2:0:1:0:0:0:1', '2001:2:0:1::1'],                                     // the longest run
    ['0:0:0:0:0:0:0:0', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['::ffff:198.18.0.1', '::ffff:c612:1'],                                      // no dotted tail on output
    ['2001:2::198.18.0.1', '2001:2::c612:1'],
    ['  2001:2::10  ', '2001:2::10'],
  ];
  for (const [input, want] of cases) {
    const a = parseIp(input);
    assert.equal(a.family, 6, input);
    assert.equal(a.text, want, input);
    assert.equal(a.bytes.length, 16);
    assert.equal(formatIpv6(a.bytes), want);
  }
  const v4 = parseIp('198.18.0.10');
  assert.deepEqual([v4.family, v4.text, v4.bytes], [4, '198.18.0.10', [198, 18, 0, 10]]);
});

test('anything that is not an address is refused with its text in the message', () => {
  for (const bad of ['', '2001:2::g', '2001:2:::1', '1::2::3', '2001:2:0:0:0:0:0:0:1', '2001:2:0:0:0:0:1', ':1:2:3:4:5:6:7',
    '1:2:3:4:5:6:7:8::', '12345::1', 'fe80::1%eth0', '198.18.0.256', '198.18.0', '198.18.00.1', '198.18.0.1.2', '1.2.3.4::',
    '::1.2.3', '[2001:2::1]', 'localhost', '2001:2::1/64']) {
    assert.throws(() => parseIp(bad), (err: Error) => err.message.includes(`"${bad.trim()}"`) && /not an IPv4 or IPv6 address/.test(err.message), bad);
    assert.equal(tryParseIp(bad), null, bad);
  }
});

test('[v6]:port where a port follows, a.b.c.d:port for IPv4, and back', () => {
  assert.equal(formatHostPort('2001:2::5', 8080), '[2001:2::5]:8080');
  assert.equal(formatHostPort('198.18.1.2', 80), '198.18.1.2:80');
  assert.equal(formatEndpoint('2001:2::10', 443, 'tcp'), '[2001:2::10]:443/tcp');
  assert.equal(formatEndpoint('2001:2::10', 0, 'udp'), '[2001:2::10]:*/udp');
  assert.equal(formatEndpoint('198.18.0.10', 80), '198.18.0.10:80');
  assert.deepEqual(splitHostPort('[2001:2::5]:8080'), { address: '2001:2::5', port: 8080 });
  assert.deepEqual(splitHostPort('198.18.1.2:80'), { address: '198.18.1.2', port: 80 });
  assert.equal(canonicalHostPort('[2001:2:0:0:0:0:0:5]:80'), '[2001:2::5]:80');
  assert.throws(() => splitHostPort('2001:2::5:8080'), /\[address\]:port/);
  assert.throws(() => splitHostPort('198.18.1.2'), /no port/);
  assert.throws(() => splitHostPort('[2001:2::5]:65536'), /0\.\.65535/);
  assert.deepEqual(splitHostPortList(' [2001:2::3:1]:9000, 198.18.1.5:80 '), [{ address: '2001:2::3:1', port: 9000 }, { address: '198.18.1.5', port: 80 }]);
  assert.deepEqual(splitHostPortList(''), []);
});

test('prefixes match within their own family only', () => {
  const p48 = parsePrefix('2001:2::/48');
  assert.ok(prefixContains(p48, parseIp('2001:2:0:ffff::1')));
  assert.ok(!prefixContains(p48, parseIp('2001:3::1')));
  assert.ok(prefixContains(parsePrefix('198.18.0.0/15'), parseIp('198.19.255.255')));
  assert.ok(!prefixContains(parsePrefix('198.18.0.0/15'), parseIp('198.20.0.0')));
  assert.ok(prefixContains(parsePrefix('2001:2::1:0/113'), parseIp('2001:2::1:7fff')));
  assert.ok(!prefixContains(parsePrefix('2001:2::1:0/113'), parseIp('2001:2::1:8000')));
  // ::/0 is every IPv6 address and no IPv4 one; 0.0.0.0/0 the reverse.
  assert.ok(!prefixContains(parsePrefix('::/0'), parseIp('198.18.0.1')));
  assert.ok(!prefixContains(parsePrefix('0.0.0.0/0'), parseIp('::ffff:c612:1')));
  assert.throws(() => parsePrefix('198.18.0.0/33'), /0\.\.32 for IPv4/);
  assert.throws(() => parsePrefix('2001:2::/129'), /0\.\.128 for IPv6/);
});

const ev = (over: Partial<TraceEvent>): TraceEvent => ({
  tsNs: 1, ifindex: 3, pktLen: 100, service: null, backend: null, serviceId: 0, backendId: 0,
  saddr: '198.18.100.1', daddr: '198.18.0.10', sport: 40000, dport: 80, proto: 6, action: 'tx', reason: 'forwarded', ...over,
});

test('Trace filters: parsed addresses, not substrings, in both families', () => {
  const events: Record<string, TraceEvent> = {
    v4a: ev({ saddr: '198.18.100.1', sport: 40001, backend: '198.18.1.11:8080', service: 'web' }),
    v4b: ev({ saddr: '198.18.100.10', sport: 40002, backend: '198.18.1.12:8080', service: 'web' }),
    v4c: ev({ saddr: '198.18.100.2', daddr: '198.18.0.11', sport: 40007, dport: 8080, action: 'pass', reason: 'not_vip' }),
    v6a: ev({ saddr: '2001:2:0:c11e::1', daddr: '2001:2:0:a5a5::10', sport: 40003, dport: 443, service: 'web6',
      backend: '[2001:2:0:a5a5:b6b6:c7c7:d8d8:e9e9]:8443' }),
    v6b: ev({ saddr: '2001:2:0:c11e::10', daddr: '2001:2:0:a5a5::10', sport: 40004, dport: 443, service: 'web6', backend: '[2001:2::1:11]:8443' }),
    v6r: ev({ saddr: '2001:2::1:11', daddr: '2001:2:0:c11e::1', sport: 8443, dport: 40003, service: 'web6', backend: '[2001:2::1:11]:8443', reason: 'reversed' }),
    v6p: ev({ saddr: '2001:2:0:c11e::1', daddr: '2001:2::1', sport: 40006, dport: 22, action: 'pass', reason: 'not_vip' }),
    v6u: ev({ saddr: '2001:2:0:c11e::1:0', daddr: '2001:2::53', sport: 40008, dport: 53, proto: 17, service: 'dns6', backend: '[2001:2::2:21]:53' }),
  };
  const shown = (input: Parameters<typeof parseTraceFilter>[0]) => {
    const { filter, errors } = parseTraceFilter(input);
    assert.deepEqual(errors, {}, JSON.stringify(input));
    return Object.keys(events).filter((k) => traceEventMatches(events[k], filter)).sort();
  };
  // Any text form of an IPv6 address, canonical or not, upper or lower case.
  for (const form of ['2001:2:0:c11e::1', '2001:2:0:c11e:0:0:0:1', '2001:0002:0000:C11E:0000:0000:0000:0001', '2001:2:0:c11e::1/128']) {
    assert.deepEqual(shown({ address: form }), ['v6a', 'v6p', 'v6r'], form);
  }
  assert.deepEqual(shown({ address: '2001:2:0:c11e::10' }), ['v6b']);
  assert.deepEqual(shown({ address: '2001:2:0:c11e::/64' }), ['v6a', 'v6b', 'v6p', 'v6r', 'v6u']);
  assert.deepEqual(shown({ address: '198.18.100.1' }), ['v4a'], 'no .10, no IPv6 row');
  assert.deepEqual(shown({ address: '198.18.0.0/15' }), ['v4a', 'v4b', 'v4c']);
  assert.deepEqual(shown({ address: '::/0' }), ['v6a', 'v6b', 'v6p', 'v6r', 'v6u']);
  // The backend's address counts; with a port, the address and port must go together.
  assert.deepEqual(shown({ address: '2001:2::1:11' }), ['v6b', 'v6r']);
  assert.deepEqual(shown({ address: '[2001:2:0:a5a5:0:0:0:10]:443' }), ['v6a', 'v6b']);
  assert.deepEqual(shown({ address: '[2001:2::1:11]:8443' }), ['v6b', 'v6r']);
  assert.deepEqual(shown({ address: '198.18.1.11:8080' }), ['v4a']);
  assert.deepEqual(shown({ address: '198.18.1.11:80' }), []);
  // Ports: exact numbers (80 is not 8080), source, destination or backend port.
  assert.deepEqual(shown({ port: '80' }), ['v4a', 'v4b']);
  assert.deepEqual(shown({ port: '8080' }), ['v4a', 'v4b', 'v4c']);
  assert.deepEqual(shown({ port: '8443' }), ['v6a', 'v6b', 'v6r']);
  assert.deepEqual(shown({ address: '2001:2:0:c11e::1', port: '22' }), ['v6p']);
  assert.deepEqual(shown({ family: 'IPv6' }), ['v6a', 'v6b', 'v6p', 'v6r', 'v6u']);
  assert.deepEqual(shown({ family: 'IPv4' }), ['v4a', 'v4b', 'v4c']);
  assert.deepEqual(shown({ proto: 'udp' }), ['v6u']);
  assert.deepEqual(shown({ service: 'web6' }), ['v6a', 'v6b', 'v6r']);
  assert.deepEqual(shown({ backend: '[2001:2:0:a5a5:b6b6:c7c7:d8d8:e9e9]:8443' }), ['v6a']);
  assert.deepEqual(shown({ backend: '[2001:2:0:0:0:0:1:11]:8443' }), ['v6b', 'v6r'], 'a non-canonical backend key');
  assert.deepEqual(shown({ reason: 'not_vip', family: 'IPv6' }), ['v6p']);
});

test('Trace filters: an invalid address or port is reported and left out', () => {
  const bad = parseTraceFilter({ address: '2001:2::g', port: '65536', service: 'web6' });
  assert.match(bad.errors.address ?? '', /^address filter: "2001:2::g" is not an IPv4 or IPv6 address$/);
  assert.match(bad.errors.port ?? '', /^port filter: "65536" is not a port/);
  assert.deepEqual(bad.filter, { service: 'web6' });
  assert.match(parseTraceFilter({ address: '2001:2::1:8443' }).errors.address ?? 'none', /none/, 'a bare IPv6 address is an address, not address:port');
  assert.equal(parseTraceFilter({ address: '[2001:2::1]' }).filter.address?.text, '2001:2::1', 'brackets without a port');
  assert.throws(() => splitHostPort('[2001:2::1]'), /no port/);
  assert.match(parseTraceFilter({ address: '198.18.0.0/40' }).errors.address ?? '', /0\.\.32/);
});

test('the family of an event: its family field, else its addresses; neither for a frame that was not IP', () => {
  assert.equal(eventFamily(ev({ family: 6, saddr: '2001:2::1', daddr: '2001:2::2' })), 6);
  assert.equal(eventFamily(ev({ saddr: '2001:2::1', daddr: '2001:2::2' })), 6);
  assert.equal(eventFamily(ev({})), 4);
  assert.equal(eventFamily(ev({ saddr: '0.0.0.0', daddr: '0.0.0.0', reason: 'not_ip' })), null);
  const nonIp = ev({ saddr: '0.0.0.0', daddr: '0.0.0.0', sport: 0, dport: 0, proto: 0, action: 'pass', reason: 'not_ip' });
  for (const family of ['IPv4', 'IPv6']) assert.equal(traceEventMatches(nonIp, parseTraceFilter({ family }).filter), false, family);
  assert.equal(traceEventMatches(nonIp, parseTraceFilter({}).filter), true);
});

// The dashboard cannot bundle src/domain/address.ts (Node's Buffer, the daemon's errors), so it
// has its own parser: both must give the same canonical text, and accept and refuse the same input.
test("the dashboard's parser agrees with the daemon's (src/domain/address.ts) on random and edge input", () => {
  const random = rng(0x15f00d);
  const inputs: string[] = ['::', '::1', '1::', '::ffff:198.18.0.1', '2001:2::198.18.0.1', '2001:db8::1%eth0', '1:2:3:4:5:6:7:8',
    '1:2:3:4:5:6:7::', '::2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8:9', '1::2::3', ':::', '2001:2::12345', '198.18.0.01', '0.0.0.0', '255.255.255.255',
    '1.2.3', '1.2.3.4.5', '01.2.3.4', '2001:2::1.2.3', '1.2.3.4::', '::1.2.3.4:1', 'g::1', '2001:2::A'];
  for (let i = 0; i < 20_000; i++) {
    // 8 groups, some zero (runs of every length), written with and without leading zeros,
    // upper/lower case, shortened by '::' at a random zero run or not, sometimes broken.
    const words = Array.from({ length: 8 }, () => (random() < 0.45 ? 0 : Math.floor(random() * (random() < 0.5 ? 16 : 65536))));
    let groups = words.map((w) => {
      const hex = w.toString(16);
      const padded = random() < 0.3 ? hex.padStart(1 + Math.floor(random() * 4), '0').slice(-4) : hex;
      return random() < 0.3 ? padded.toUpperCase() : padded;
    });
    let text = groups.join(':');
    const zeroStart = words.indexOf(0);
    if (zeroStart >= 0 && random() < 0.7) {
      let end = zeroStart;
      while (end < 8 && words[end] === 0 && random() < 0.8) end++;
      if (end === zeroStart) end++;
      groups = [...groups.slice(0, zeroStart), '', ...groups.slice(end)];
      text = groups.join(':').replace(/^:(?!:)/, '::').replace(/(?<!:):$/, '::');
      if (zeroStart === 0 && end === 8) text = '::';
    }
    if (random() < 0.05) text = text.replace(/[0-9a-f]/i, 'x');
    if (random() < 0.05) text = `${text}:1`;
    if (random() < 0.05) text = [0, 0, 0, 0].map(() => Math.floor(random() * 300)).join('.');
    inputs.push(text);
  }
  let compared = 0;
  for (const input of inputs) {
    const daemon = tryParseAddress(input);
    const dash = tryParseIp(input);
    if ('error' in daemon) {
      assert.equal(dash, null, `the daemon refuses "${input}" (${daemon.error}), the dashboard read ${dash?.text}`);
    } else {
      assert.ok(dash, `the daemon reads "${input}" as ${daemon.text}, the dashboard refuses it`);
      assert.equal(dash.text, daemon.text, input);
      assert.deepEqual(dash.bytes, [...daemon.bytes], input);
      assert.equal(formatHostPort(dash.text, 80), daemonHostPort(daemon.text, 80));
      compared++;
    }
  }
  assert.ok(compared > 15_000, `${compared} addresses compared`);
});
