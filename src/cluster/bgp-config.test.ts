import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatConfig, parseConfigText } from '../config/config';

const BASE = 'interfaces: [{ name: eth0 }]\n';

test('bgp: defaults filled in, and the section survives the daemon rewriting its config file', () => {
  const config = parseConfigText(`${BASE}bgp: { localAs: 65001, peers: [{ address: 198.18.10.1, as: 65000 }] }\n`);
  assert.deepEqual(config.bgp, { localAs: 65001, peers: [{ address: '198.18.10.1', as: 65000 }], bfd: true, holdTime: 3, birdBinary: '/usr/sbin/bird' });
  assert.deepEqual(parseConfigText(formatConfig(config)).bgp, config.bgp);
  assert.equal(parseConfigText(BASE).bgp, undefined);
});

test('bgp: IPv6 peers (dual stack) are accepted beside IPv4 ones', () => {
  const config = parseConfigText(`${BASE}bgp: { localAs: 65001, peers: [{ address: 198.18.10.1, as: 65000 }, { address: "2001:2:0:c010::1", as: 65000 }] }\n`);
  assert.deepEqual(config.bgp?.peers, [{ address: '198.18.10.1', as: 65000 }, { address: '2001:2:0:c010::1', as: 65000 }]);
  assert.deepEqual(parseConfigText(formatConfig(config)).bgp, config.bgp);
  // Any text form of an IPv6 peer is kept canonical (it names the BIRD protocol and the status entry).
  const other = parseConfigText(`${BASE}bgp: { localAs: 65001, peers: [{ address: "2001:2:0:C010:0:0:0:1", as: 65000 }] }\n`);
  assert.deepEqual(other.bgp?.peers, [{ address: '2001:2:0:c010::1', as: 65000 }]);
});

test('bgp: bad input is refused with one line naming the field', () => {
  const cases: Array<[string, RegExp]> = [
    ['bgp: { localAs: 0, peers: [{ address: 198.18.10.1, as: 65000 }] }', /\/bgp\/localAs/],
    ['bgp: { localAs: 65001, peers: [] }', /\/bgp\/peers/],
    ['bgp: { localAs: 65001, peers: [{ address: 198.18.10.300, as: 65000 }] }', /\/bgp\/peers\/0\/address/],
    ['bgp: { localAs: 65001, peers: [{ address: 198.18.10.1 }] }', /\/bgp\/peers\/0.*as/],
    ['bgp: { localAs: 65001, peers: [{ address: 198.18.10.1, as: 65000 }, { address: "fe80::1", as: 65000 }] }', /\/bgp\/peers\/1\/address/],
    ['bgp: { localAs: 65001, peers: [{ address: "ff02::1", as: 65000 }] }', /\/bgp\/peers\/0\/address/],
    ['bgp: { localAs: 65001, peers: [{ address: "2001:2::g", as: 65000 }] }', /\/bgp\/peers\/0\/address/],
    ['bgp: { localAs: 65001, peers: [{ address: "2001:2::1", as: 65000 }, { address: "2001:2:0::1", as: 65001 }] }', /\/bgp\/peers\/1\/address.*BGP peer 2001:2::1 is listed twice/],
    ['bgp: { localAs: 65001, peers: [{ address: 198.18.10.1, as: 65000 }, { address: 198.18.10.1, as: 65000 }] }', /\/bgp\/peers\/1\/address.*listed twice/],
    ['bgp: { localAs: 65001, peers: [{ address: 198.18.10.1, as: 65000 }], holdTime: 1 }', /\/bgp\/holdTime/],
    ['bgp: { localAs: 65001, peers: [{ address: 198.18.10.1, as: 65000 }], bfdd: true }', /\/bgp/],
  ];
  for (const [text, field] of cases) {
    assert.throws(() => parseConfigText(`${BASE}${text}\n`), (err: Error) => {
      assert.match(err.message, field, err.message);
      assert.equal(err.message.includes('\n'), false);
      return true;
    });
  }
});
