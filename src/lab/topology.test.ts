import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  labTopology, labHosts, findHost, isLabNetns, validatePrefix, backendAddress, isLabVip,
  DEFAULT_DSR_VIPS, DEFAULT_DSR_VIPS6, MAX_BACKENDS, TEST_LAB_PREFIX, backendAddress6, isLabVip6, isLabAddress6,
  ipv6Groups, isIpv6Text,
} from './topology';
import { canonicalAddress } from '../domain/address';

function inBenchmarkRange(address: string): boolean {
  const [a, b] = address.split('.').map(Number);
  return a === 198 && (b === 18 || b === 19);
}

describe('lab topology', () => {
  test('every name starts with the prefix and every interface name fits in 15 characters', () => {
    const t = labTopology({ prefix: TEST_LAB_PREFIX, backends: MAX_BACKENDS, mode: 'dsr' });
    for (const host of labHosts(t)) {
      assert.ok(host.netns.startsWith(`${TEST_LAB_PREFIX}-`), host.netns);
      for (const itf of host.interfaces) {
        assert.ok(itf.name.startsWith(`${TEST_LAB_PREFIX}-`), itf.name);
        assert.ok(itf.name.length <= 15, `${itf.name} is ${itf.name.length} characters`);
      }
    }
    assert.ok(t.switch.bridge.length <= 15);
  });

  test('every address is in 198.18.0.0/15 and backends are 198.18.1.(10+i)', () => {
    const t = labTopology({ backends: 4, mode: 'dsr' });
    const addresses = labHosts(t).flatMap((h) => h.interfaces.flatMap((i) => (i.cidr ? [i.cidr.split('/')[0]] : [])));
    addresses.push(...t.loopbackVips.filter((v) => !isIpv6Text(v)));
    for (const a of addresses) assert.ok(inBenchmarkRange(a), a);
    assert.deepEqual(t.backends.map((b) => b.address), ['198.18.1.11', '198.18.1.12', '198.18.1.13', '198.18.1.14']);
    assert.equal(backendAddress(7), '198.18.1.17');
    assert.equal(t.client.gateway, '198.18.0.1');
    assert.ok(t.backends.every((b) => b.gateway === '198.18.1.1'));
  });

  test('veth peers point at each other', () => {
    const t = labTopology({ backends: 3 });
    const hosts = labHosts(t);
    for (const host of hosts) {
      for (const itf of host.interfaces) {
        const peerHost = hosts.find((h) => h.netns === itf.peer!.netns)!;
        const back = peerHost.interfaces.find((i) => i.name === itf.peer!.name)!;
        assert.deepEqual(back.peer, { netns: host.netns, name: itf.name });
      }
    }
  });

  test('NAT mode holds no loopback VIPs, DSR mode holds the default ones of both families', () => {
    assert.deepEqual(labTopology({ mode: 'nat' }).loopbackVips, []);
    assert.deepEqual(labTopology({ mode: 'dsr' }).loopbackVips, [...DEFAULT_DSR_VIPS, ...DEFAULT_DSR_VIPS6]);
    assert.deepEqual(labTopology({ mode: 'dsr', vips: ['198.18.100.9'] }).loopbackVips, ['198.18.100.9']);
    // Any text form in, canonical out.
    assert.deepEqual(labTopology({ mode: 'dsr', vips: ['2001:0002:0000:0100:0000:0000:0000:0009', '198.18.100.9'] }).loopbackVips,
      ['2001:2:0:100::9', '198.18.100.9']);
  });

  test('dual-stack: every IPv6 address is in 2001:2::/48, one /64 beside each IPv4 /24', () => {
    const t = labTopology({ backends: 12, mode: 'dsr' });
    const addresses6 = labHosts(t).flatMap((h) => h.interfaces.flatMap((i) => (i.cidr6 ? [i.cidr6] : [])));
    assert.equal(addresses6.length, 1 + 2 + 12, 'client, both lb legs and every backend have one');
    for (const cidr of addresses6) {
      const [address, len] = cidr.split('/');
      assert.ok(isLabAddress6(address), address);
      assert.equal(len, '64');
      assert.equal(canonicalAddress(address), address, `${address} is canonical`);
    }
    for (const v of t.loopbackVips.filter(isIpv6Text)) assert.ok(isLabVip6(v), v);
    assert.equal(t.client.address6, '2001:2::2');
    assert.equal(t.client.gateway6, '2001:2::1');
    assert.equal(t.lb.interfaces[1].cidr6, '2001:2:0:1::1/64');
    assert.ok(t.backends.every((b) => b.gateway6 === '2001:2:0:1::1'));
    assert.deepEqual(t.backends.slice(0, 2).map((b) => b.address6), ['2001:2:0:1::11', '2001:2:0:1::12']);
    assert.equal(backendAddress6(50), '2001:2:0:1::60');
    // distinct, and on the same /64 as their gateway
    assert.equal(new Set(t.backends.map((b) => b.address6)).size, 12);
  });

  test('IPv6 text helpers: groups, canonical form (RFC 5952), lab ranges', () => {
    assert.deepEqual(ipv6Groups('2001:2::1'), [0x2001, 2, 0, 0, 0, 0, 0, 1]);
    assert.deepEqual(ipv6Groups('::'), [0, 0, 0, 0, 0, 0, 0, 0]);
    assert.equal(ipv6Groups('198.18.0.1'), undefined);
    assert.equal(ipv6Groups('::ffff:1.2.3.4'), undefined, 'no dotted tail in the lab');
    assert.equal(ipv6Groups('2001:2::1::2'), undefined);
    assert.equal(canonicalAddress('2001:DB8:0:0:1:0:0:1'), '2001:db8::1:0:0:1', 'first of two equal runs');
    assert.equal(canonicalAddress('2001:2:0:1:0:0:0:11'), '2001:2:0:1::11');
    assert.equal(canonicalAddress('2001:2:0:1:1:1:1:1'), '2001:2:0:1:1:1:1:1', 'a single zero group stays');
    assert.equal(canonicalAddress('0:0:0:0:0:0:0:1'), '::1');
    assert.equal(isLabVip6('2001:2:0:100::1'), true);
    assert.equal(isLabVip6('2001:2:0:100::'), false, 'the subnet itself');
    assert.equal(isLabVip6('2001:2:0:101::1'), false);
    assert.equal(isLabVip6('2001:3:0:100::1'), false);
    assert.equal(isLabAddress6('2001:2:0:ffff::1'), true);
    assert.equal(isLabAddress6('2001:2:1::1'), false, 'outside the /48');
    assert.equal(isLabAddress6('fe80::1'), false);
  });

  test('bad input is refused with the offending value named', () => {
    assert.throws(() => labTopology({ backends: 0 }), /backend count 0/);
    assert.throws(() => labTopology({ backends: MAX_BACKENDS + 1 }), /backend count/);
    assert.throws(() => labTopology({ mode: 'tunnel' as 'nat' }), /"tunnel"/);
    assert.throws(() => labTopology({ mode: 'dsr', vips: ['10.0.0.1'] }), /10\.0\.0\.1/);
    assert.throws(() => labTopology({ mode: 'dsr', vips: ['2001:db8::1'] }), /"2001:db8::1" must be a host address in 198\.18\.100\.0\/24 or 2001:2:0:100::\/64/);
    assert.throws(() => labTopology({ mode: 'dsr', vips: ['2001:2:0:100::'] }), /2001:2:0:100::/);
    assert.throws(() => validatePrefix('Xlb'), /"Xlb"/);
    assert.throws(() => validatePrefix('toolongpfx'), /longer than/);
    assert.throws(() => validatePrefix('a b'), /"a b"/);
    assert.equal(isLabVip('198.18.100.255'), false);
    assert.equal(isLabVip('198.18.100.7'), true);
  });

  test('host lookup and namespace ownership', () => {
    const t = labTopology({ prefix: 'xlb', backends: 2 });
    assert.equal(findHost(t, 'be2').netns, 'xlb-be2');
    assert.equal(findHost(t, 'xlb-client').host, 'client');
    assert.throws(() => findHost(t, 'be3'), /known: client, lb, sw, be1, be2/);
    assert.equal(isLabNetns('xlb', 'xlb-be12'), true);
    assert.equal(isLabNetns('xlb', 'xlb-lb'), true);
    assert.equal(isLabNetns('xlb', 'xlbt-lab-lb'), false);
    assert.equal(isLabNetns('xlb', 'xlb-decoy'), false);
    assert.equal(isLabNetns('xlbt-lab', 'xlbt-lab-client'), true);
  });
});
