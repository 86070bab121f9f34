import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  labTopology, labHosts, findHost, isLabNetns, validatePrefix, backendAddress, isLabVip,
  DEFAULT_DSR_VIPS, MAX_BACKENDS, TEST_LAB_PREFIX,
} from './topology';

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
    addresses.push(...t.loopbackVips);
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

  test('NAT mode holds no loopback VIPs, DSR mode holds the default ones', () => {
    assert.deepEqual(labTopology({ mode: 'nat' }).loopbackVips, []);
    assert.deepEqual(labTopology({ mode: 'dsr' }).loopbackVips, [...DEFAULT_DSR_VIPS]);
    assert.deepEqual(labTopology({ mode: 'dsr', vips: ['198.18.100.9'] }).loopbackVips, ['198.18.100.9']);
  });

  test('bad input is refused with the offending value named', () => {
    assert.throws(() => labTopology({ backends: 0 }), /backend count 0/);
    assert.throws(() => labTopology({ backends: MAX_BACKENDS + 1 }), /backend count/);
    assert.throws(() => labTopology({ mode: 'tunnel' as 'nat' }), /"tunnel"/);
    assert.throws(() => labTopology({ mode: 'dsr', vips: ['10.0.0.1'] }), /10\.0\.0\.1/);
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
