/**
 * IPv6 through the HTTP API (issue 15): any text form in, the canonical form (RFC 5952) in every
 * answer, backends named "[v6]:port" in URLs (URL-encoded, any text form), one family per service,
 * the forbidden classes, and the /metrics labels.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AuthStore } from './auth';
import { MemoryController } from './memory-controller';
import { createApiServer } from './server';

const API_TOKEN = 'ci-token-0123456789abcdef';
const headers = { authorization: `Bearer ${API_TOKEN}` };
const WEB = {
  name: 'web', vip: '198.18.100.1', port: 80, protocol: 'tcp', mode: 'nat',
  backends: [{ address: '198.18.1.2', port: 8080, weight: 1 }],
};
const WEB6 = {
  name: 'web6', vip: '2001:0002:0:0:0:0:0:0100', port: 80, protocol: 'tcp', mode: 'nat',
  backends: [{ address: '2001:2:0:0:0:0:0:5', port: 8080, weight: 1 }, { address: '2001:0002::0006', port: 8080, weight: 1 }],
};

function setup() {
  const controller = new MemoryController({ services: [WEB] });
  const auth = new AuthStore([], [{ name: 'ci', role: 'admin', token: API_TOKEN }]);
  return createApiServer(controller, { auth });
}

describe('API: IPv6 services and backends', () => {
  const app = setup();
  after(() => app.close());

  test('create in any text form: the answer and every later read carry the canonical form', async () => {
    const res = await app.inject({ method: 'POST', url: '/api/v1/services', headers, payload: WEB6 });
    assert.equal(res.statusCode, 201, res.body);
    const svc = res.json();
    assert.equal(svc.vip, '2001:2::100');
    assert.deepEqual(svc.backends.map((b: { address: string; key: string }) => [b.address, b.key]),
      [['2001:2::5', '[2001:2::5]:8080'], ['2001:2::6', '[2001:2::6]:8080']]);
    const list = (await app.inject({ method: 'GET', url: '/api/v1/services', headers })).json();
    assert.ok(!JSON.stringify(list).includes('0002'), 'no non-canonical text in the listing');
    const state = await app.inject({ method: 'GET', url: '/api/v1/state', headers });
    if (state.statusCode === 200) assert.ok(!state.body.includes('0002'), state.body);
  });

  test('a backend named [v6]:port in the URL: URL-encoded, and any text form of it', async () => {
    const keys = ['[2001:2::5]:8080', '[2001:0002:0:0:0:0:0:5]:8080', '[2001:2::0:5]:8080'];
    for (const [i, key] of keys.entries()) {
      const res = await app.inject({ method: 'PATCH', url: `/api/v1/services/web6/backends/${encodeURIComponent(key)}`, headers, payload: { weight: 10 + i } });
      assert.equal(res.statusCode, 200, `${key}: ${res.body}`);
      assert.equal(res.json().backends[0].weight, 10 + i);
    }
    const missing = await app.inject({ method: 'PATCH', url: `/api/v1/services/web6/backends/${encodeURIComponent('[2001:2::99]:8080')}`, headers, payload: { weight: 1 } });
    assert.equal(missing.statusCode, 404);
    const outOfRange = await app.inject({ method: 'POST', url: '/api/v1/services/web6/backends', headers, payload: { address: '2001:2::7', port: 65536, weight: 1 } });
    assert.equal(outOfRange.statusCode, 400, outOfRange.body);
    const ok = await app.inject({ method: 'POST', url: '/api/v1/services/web6/backends', headers, payload: { address: '2001:2::7', port: 65535, weight: 1 } });
    assert.equal(ok.statusCode, 201, ok.body);
    const del = await app.inject({ method: 'DELETE', url: `/api/v1/services/web6/backends/${encodeURIComponent('[2001:2:0::7]:65535')}`, headers });
    assert.equal(del.statusCode, 204, del.body);
    assert.equal((await app.inject({ method: 'GET', url: '/api/v1/services/web6', headers })).json().backends.length, 2);
  });

  test('one family per service: 400 naming the service and the backend; nothing changes', async () => {
    const before = (await app.inject({ method: 'GET', url: '/api/v1/services', headers })).body;
    const cases: Array<{ url: string; method: 'POST' | 'PUT'; payload: Record<string, unknown>; field: string }> = [
      { method: 'POST', url: '/api/v1/services/web6/backends', payload: { address: '198.18.1.9', port: 8080 }, field: '/address' },
      { method: 'POST', url: '/api/v1/services/web/backends', payload: { address: '2001:2::9', port: 8080 }, field: '/address' },
      { method: 'POST', url: '/api/v1/services', payload: { ...WEB6, name: 'mixed', vip: '198.18.100.7' }, field: '/backends/0/address' },
      { method: 'PUT', url: '/api/v1/services/web6', payload: { ...WEB6, backends: [{ address: '198.18.1.9', port: 8080 }] }, field: '/backends/0/address' },
    ];
    for (const c of cases) {
      const res = await app.inject({ ...c, headers });
      assert.equal(res.statusCode, 400, res.body);
      const error = res.json().error;
      assert.equal(error.code, 'XDPLB_ERR_VALIDATION');
      assert.equal(error.field, c.field);
      assert.match(error.message, /service "(web|web6|mixed)": backend \S+ is IPv[46] but the VIP \S+ is IPv[46]; a service is one family/);
    }
    assert.equal((await app.inject({ method: 'GET', url: '/api/v1/services', headers })).body, before);
  });

  test('forbidden IPv6 classes and malformed text: 400 with the reason', async () => {
    const cases: Array<[string, RegExp]> = [
      ['::1', /loopback.*::1\/128/], ['::', /unspecified/], ['fe80::1', /link-local.*fe80::\/10/], ['ff02::1', /multicast.*ff00::\/8/],
      ['::ffff:198.18.0.1', /IPv4-mapped.*::ffff:0:0\/96/], ['fe80::1%eth0', /zone id/], ['2001:2::1::2', /more than once/],
      ['1:2:3:4:5:6:7:8:9', /too many groups/], ['2001:2::12345', /longer than four/],
    ];
    for (const [vip, reason] of cases) {
      const res = await app.inject({ method: 'POST', url: '/api/v1/services', headers, payload: { ...WEB6, name: 'bad', vip } });
      assert.equal(res.statusCode, 400, res.body);
      assert.equal(res.json().error.field, '/vip');
      assert.match(res.json().error.message, reason, vip);
    }
  });

  test('/metrics labels carry the canonical "[v6]:port" backend', async () => {
    const res = await app.inject({ method: 'GET', url: '/metrics', headers });
    assert.equal(res.statusCode, 200);
    assert.ok(res.body.includes('xdplb_backend_weight{service="web6",backend="[2001:2::5]:8080"}'), res.body.split('\n').filter((l) => l.includes('web6')).join('\n'));
    assert.ok(!res.body.includes('2001:0002'));
  });
});
