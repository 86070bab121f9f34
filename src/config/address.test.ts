/**
 * Addresses that can never work as a VIP or backend are refused by the one rule in
 * src/config/schema.ts (UNUSABLE_IPV4_CLASSES), through every entry point that validates a
 * service: the config file, the desired state (API), and the schema itself.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { XdplbError } from '../domain/errors';
import { parseConfigText } from './config';
import { DesiredState } from './state';
import {
  IPV4_PATTERN, UNICAST_IPV4_PATTERN, UNUSABLE_IPV4_CLASSES, BackendSpecSchema, ServiceSpecSchema,
  UNICAST_ADDRESS_FORMAT, inCidr, unusableAddressReason, validateInput,
} from './schema';
import { formatConfig } from './config';

const WEB = {
  name: 'web', vip: '198.18.100.1', port: 80, protocol: 'tcp', mode: 'nat',
  backends: [{ address: '198.18.1.2', port: 8080, weight: 1 }],
};

function toAddress(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}
function toNumber(address: string): number {
  return address.split('.').reduce((n, o) => n * 256 + Number(o), 0);
}

/** First, middle and last address of every class, each with the class it belongs to. */
const inside: Array<[string, string]> = UNUSABLE_IPV4_CLASSES.flatMap((c) => {
  const [base, bits] = c.cidr.split('/');
  const first = toNumber(base);
  const size = 2 ** (32 - Number(bits));
  return [first, first + Math.floor(size / 2), first + size - 1].map((n) => [toAddress(n), c.cidr] as [string, string]);
});
/** Usable neighbours of the classes, the lab's ranges, and ordinary private and public addresses. */
const usable = [
  '1.0.0.0', '9.255.255.255', '126.255.255.255', '128.0.0.0', '169.253.255.255', '169.255.0.0',
  '223.255.255.255', '198.18.0.0', '198.18.0.1', '198.19.255.254', '198.19.255.255', '10.0.0.1',
  '172.16.0.1', '192.168.1.1', '100.64.0.1', '8.8.8.8', '192.0.2.1',
];

describe('addresses that can never be a VIP or backend', () => {
  test('each class: refused with a one-line reason naming the class (first, middle, last address)', () => {
    for (const [address, cidr] of inside) {
      const reason = unusableAddressReason(address);
      assert.ok(reason, `${address} (${cidr}) refused`);
      // The limited broadcast address is inside 240/4: it is named for what it is.
      const expected = address === '255.255.255.255' ? '255.255.255.255/32' : cidr;
      assert.ok(reason.includes(`(${expected})`), reason);
      assert.ok(!reason.includes('\n'));
      assert.ok(!new RegExp(UNICAST_IPV4_PATTERN).test(address), `${address}: the schema's pattern refuses it too`);
    }
  });

  test('usable neighbours and the lab ranges (198.18.0.0/15) stay valid', () => {
    for (const address of usable) {
      assert.equal(unusableAddressReason(address), null, address);
      assert.ok(new RegExp(UNICAST_IPV4_PATTERN).test(address), address);
      validateInput(BackendSpecSchema, { address, port: 80 });
    }
  });

  test('the pattern the schema publishes and the CIDR table agree on every class boundary and 200000 random addresses', () => {
    const pattern = new RegExp(UNICAST_IPV4_PATTERN);
    const samples: number[] = [];
    for (const c of UNUSABLE_IPV4_CLASSES) {
      const [base, bits] = c.cidr.split('/');
      const first = toNumber(base);
      const last = first + 2 ** (32 - Number(bits)) - 1;
      samples.push(first - 1, first, first + 1, last - 1, last, last + 1);
    }
    let seed = 12345;
    for (let i = 0; i < 200_000; i++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      samples.push(seed);
    }
    for (const n of samples.filter((x) => x >= 0 && x <= 0xffffffff)) {
      const address = toAddress(n);
      const refused = UNUSABLE_IPV4_CLASSES.some((c) => inCidr(address, c.cidr));
      assert.equal(!pattern.test(address), refused, address);
      assert.equal(unusableAddressReason(address) !== null, refused, address);
    }
  });

  test('not a dotted quad: the syntax error, not a class reason', () => {
    for (const address of ['127.0.0.01', '127.1', 'localhost', '0x7f.0.0.1', '1.2.3.4 ', '']) {
      assert.equal(unusableAddressReason(address), null);
      assert.ok(!new RegExp(IPV4_PATTERN).test(address));
      // The parser's own reason (src/domain/address.ts), never a class's.
      assert.throws(() => validateInput(BackendSpecSchema, { address, port: 80 }), (e: XdplbError) => e.field === '/address'
        && !/can never be/.test(e.message) && /leading zero|four decimal octets|host names|not a decimal|white space|fewer than 2/.test(e.message));
    }
  });

  test('the config file refuses them with the line and the field', () => {
    for (const [address, cidr] of inside) {
      for (const [where, field] of [['vip', '/services/0/vip'], ['backend', '/services/0/backends/0/address']] as const) {
        const yaml = where === 'vip'
          ? `services:\n  - name: web\n    vip: ${address}\n    port: 80\n    protocol: tcp\n    mode: nat\n    backends: []\n`
          : `services:\n  - name: web\n    vip: 198.18.100.1\n    port: 80\n    protocol: tcp\n    mode: nat\n    backends:\n      - address: ${address}\n        port: 80\n`;
        assert.throws(() => parseConfigText(yaml, 'x.yaml'), (e: XdplbError) => {
          assert.equal(e.code, 'XDPLB_ERR_VALIDATION');
          assert.equal(e.field, field);
          assert.match(e.message, new RegExp(`^x\\.yaml:\\d+:\\d+: ${field}: ${address.replace(/\./g, '\\.')} is `));
          assert.ok(e.message.includes(address === '255.255.255.255' ? '255.255.255.255/32' : cidr), e.message);
          return true;
        });
      }
    }
  });

  test('the desired state (the API path) refuses them in create, replace and add-backend, and changes nothing', () => {
    const state = new DesiredState({ services: [WEB] });
    const before = JSON.stringify(state.config);
    for (const [address] of inside) {
      const attempts: Array<[() => unknown, string]> = [
        [() => state.createService({ ...WEB, name: 'x', vip: address }), '/vip'],
        [() => state.createService({ ...WEB, name: 'x', vip: '198.18.100.2', backends: [{ address, port: 80 }] }), '/backends/0/address'],
        [() => state.replaceService('web', { ...WEB, vip: address }), '/vip'],
        [() => state.addBackend('web', { address, port: 80 }), '/address'],
      ];
      for (const [attempt, field] of attempts) {
        assert.throws(attempt, (e: XdplbError) => e.code === 'XDPLB_ERR_VALIDATION' && e.field === field && e.message.startsWith(`${field}: ${address} is `), `${address} at ${field}`);
      }
    }
    assert.equal(JSON.stringify(state.config), before);
  });

  test('a backend that is a VIP (its own service or another) is refused as a loop', () => {
    const state = new DesiredState({ services: [WEB, { ...WEB, name: 'api', vip: '198.18.100.2', backends: [] }] });
    for (const address of ['198.18.100.1', '198.18.100.2']) {
      assert.throws(() => state.addBackend('web', { address, port: 80 }), (e: XdplbError) => e.code === 'XDPLB_ERR_CONFLICT' && e.field === '/address' && /is the VIP of service/.test(e.message));
    }
    // and the other way round: a new VIP that is already a backend
    assert.throws(() => state.createService({ ...WEB, name: 'loop', vip: '198.18.1.2', backends: [] }), (e: XdplbError) => e.code === 'XDPLB_ERR_CONFLICT' && /is the VIP of service "loop"/.test(e.message));
  });

  test('ServiceSpec and BackendSpec share the rule (one schema for VIPs and backends)', () => {
    assert.equal((ServiceSpecSchema.properties.vip as { format: string }).format, UNICAST_ADDRESS_FORMAT);
    assert.equal((BackendSpecSchema.properties.address as { format: string }).format, UNICAST_ADDRESS_FORMAT);
  });
});

describe('IPv6 VIPs and backends (issue 15)', () => {
  const WEB6 = {
    name: 'web6', vip: '2001:0002:0000:0000:0000:0000:0000:0100', port: 80, protocol: 'tcp', mode: 'nat',
    backends: [{ address: '2001:2:0:0:0:0:1:2', port: 8080, weight: 1 }, { address: '2001:2::198.18.1.3', port: 8080, weight: 2 }],
  };

  test('any text form in; the state holds (and the config file writes) the canonical form', () => {
    const state = new DesiredState({ services: [WEB, WEB6] });
    const svc = state.getService('web6');
    assert.equal(svc.vip, '2001:2::100');
    assert.deepEqual(svc.backends.map((b) => b.address), ['2001:2::1:2', '2001:2::c612:103']);
    const text = formatConfig(state.toConfig());
    assert.ok(text.includes('2001:2::100') && text.includes('"2001:2::1:2"'), text);
    assert.ok(!text.includes('0002'), 'no non-canonical text is written');
    const back = parseConfigText(text, 'x.yaml');
    assert.deepEqual(back.services, state.config.services, 'the written file reads back to the same state');
  });

  test('upper case and leading zeros name the same backend (lookups by any text form of the key)', () => {
    const state = new DesiredState({ services: [WEB6] });
    for (const key of ['[2001:2::1:2]:8080', '[2001:0002:0:0:0:0:0001:0002]:8080', '[2001:2::0:1:2]:8080'.replace('::0:1:2', '::1:2'), '[2001:2:0::1:2]:8080']) {
      const next = state.patchBackend('web6', key, { weight: 7 });
      assert.equal(next.getService('web6').backends[0].weight, 7, key);
    }
    assert.throws(() => state.patchBackend('web6', '2001:2::1:2:8080', { weight: 7 }), (e: XdplbError) => e.code === 'XDPLB_ERR_NOT_FOUND');
    const fewer = state.deleteBackend('web6', '[2001:2::C612:103]:8080');
    assert.equal(fewer.getService('web6').backends.length, 1);
    // a duplicate by another text form is a duplicate
    assert.throws(() => state.addBackend('web6', { address: '2001:2:0:0:0:0:1:2', port: 8080 }),
      (e: XdplbError) => e.code === 'XDPLB_ERR_CONFLICT' && e.message.includes('[2001:2::1:2]:8080'));
  });

  test('one family per service: a mixed service is refused naming the service and the backend, in every entry point', () => {
    const state = new DesiredState({ services: [WEB, WEB6] });
    const before = JSON.stringify(state.config);
    const attempts: Array<[() => unknown, string, string]> = [
      [() => state.addBackend('web6', { address: '198.18.1.9', port: 80 }), '/address', '198.18.1.9'],
      [() => state.addBackend('web', { address: '2001:2::9', port: 80 }), '/address', '2001:2::9'],
      [() => state.createService({ ...WEB6, name: 'mixed', vip: '2001:2::200', backends: [{ address: '198.18.1.9', port: 80 }] }), '/backends/0/address', '198.18.1.9'],
      [() => state.replaceService('web', { ...WEB, backends: [...WEB.backends, { address: '2001:2::9', port: 80 }] }), '/backends/1/address', '2001:2::9'],
    ];
    for (const [attempt, field, backend] of attempts) {
      assert.throws(attempt, (e: XdplbError) => {
        assert.equal(e.code, 'XDPLB_ERR_VALIDATION');
        assert.equal(e.field, field);
        assert.match(e.message, new RegExp(`service "(web|web6|mixed)": backend ${backend.replace(/\./g, '\\.')} is IPv[46] but the VIP .* is IPv[46]; a service is one family`));
        assert.ok(!e.message.includes('\n'));
        return true;
      });
    }
    assert.equal(JSON.stringify(state.config), before, 'nothing changed');
    const yaml = 'services:\n  - name: m\n    vip: 198.18.100.9\n    port: 80\n    protocol: tcp\n    mode: nat\n    backends:\n      - { address: "2001:2::5", port: 80 }\n';
    assert.throws(() => parseConfigText(yaml, 'x.yaml'), (e: XdplbError) => e.field === '/services/0/backends/0/address' && /service "m": backend 2001:2::5 is IPv6 but the VIP 198\.18\.100\.9 is IPv4/.test(e.message));
  });

  test('each forbidden IPv6 class refused as VIP and backend, in any text form, naming the class', () => {
    const cases: Array<[string, string]> = [
      ['::', '::/128'], ['0:0:0:0:0:0:0:0', '::/128'], ['::1', '::1/128'], ['0000::0001', '::1/128'],
      ['fe80::1', 'fe80::/10'], ['FEBF::1', 'fe80::/10'], ['ff02::1', 'ff00::/8'], ['FF05::1:3', 'ff00::/8'],
      ['::ffff:198.18.0.1', '::ffff:0:0/96'], ['::FFFF:c612:1', '::ffff:0:0/96'],
    ];
    const state = new DesiredState({ services: [WEB6] });
    for (const [address, cidr] of cases) {
      for (const [attempt, field] of [
        [() => state.createService({ ...WEB6, name: 'x', vip: address }), '/vip'],
        [() => state.addBackend('web6', { address, port: 80 }), '/address'],
      ] as Array<[() => unknown, string]>) {
        assert.throws(attempt, (e: XdplbError) => e.code === 'XDPLB_ERR_VALIDATION' && e.field === field && e.message.includes(`(${cidr})`) && /can never be a VIP or backend/.test(e.message), `${address} ${field}`);
      }
    }
  });

  test('malformed IPv6 refused with the parser\'s reason (zone id, "::" twice, too many groups, bad group)', () => {
    const cases: Array<[string, RegExp]> = [
      ['2001:2::5%eth0', /zone id/], ['2001:2::5::1', /more than once/], ['1:2:3:4:5:6:7:8:9', /too many groups/],
      ['2001:2::g', /hex/], ['2001:00002::1', /longer than four/], ['[2001:2::5]', /brackets/],
    ];
    for (const [address, reason] of cases) {
      assert.throws(() => validateInput(ServiceSpecSchema, { ...WEB6, vip: address }), (e: XdplbError) => e.field === '/vip' && reason.test(e.message), address);
    }
  });

  test('listener and backend-is-vip rules compare canonical forms', () => {
    const state = new DesiredState({ services: [WEB6] });
    assert.throws(() => state.createService({ ...WEB6, name: 'twin', vip: '2001:2:0::100', backends: [] }),
      (e: XdplbError) => e.code === 'XDPLB_ERR_CONFLICT' && e.message.includes('[2001:2::100]:80/tcp is already served'));
    assert.throws(() => state.addBackend('web6', { address: '2001:2:0:0::100', port: 80 }),
      (e: XdplbError) => e.code === 'XDPLB_ERR_CONFLICT' && /2001:2::100 is the VIP of service "web6"/.test(e.message));
  });
});
