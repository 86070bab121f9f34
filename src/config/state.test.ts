import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { XdplbError } from '../domain/errors';
import { DesiredState, backendKey, stateErrors, validateState } from './state';

const WEB = {
  name: 'web', vip: '198.18.100.1', port: 80, protocol: 'tcp', mode: 'nat',
  backends: [{ address: '198.18.1.2', port: 8080, weight: 1 }, { address: '198.18.1.3', port: 8080, weight: 2 }],
};
const DNS = {
  name: 'dns', vip: '198.18.100.2', port: 53, protocol: 'udp', mode: 'dsr',
  backends: [{ address: '198.18.1.10', port: 0 }],
};
const base = () => structuredClone({ services: [WEB, DNS] }) as { services: Array<Record<string, any>> } & Record<string, any>;

function expectError(fn: () => unknown, code: string, field: string): XdplbError {
  let caught: unknown;
  try { fn(); } catch (error) { caught = error; }
  assert.ok(caught instanceof XdplbError, `expected an XdplbError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  assert.equal(caught.field, field, caught.message);
  assert.ok(caught.message.length > field.length + 5, 'message says why');
  return caught;
}

/**
 * A state change's result `got` is what the reference (validateState of a changed copy) says:
 * the same error, its field relative to `at` (the changed part), or the same config, with the
 * new part (`part`) frozen and every other service shared with `state`.
 */
function assertAsReference(what: string, state: DesiredState, index: number, at: string, expected: unknown, got: DesiredState | XdplbError,
  part: (config: DesiredState['config']) => unknown): void {
  if (expected instanceof XdplbError) {
    assert.ok(got instanceof XdplbError, `${what}: refused (${expected.message})`);
    assert.equal(got.code, expected.code, what);
    const field = expected.field!.startsWith(`${at}/`) || expected.field === at ? expected.field!.slice(at.length) : expected.field;
    assert.equal(got.field, field, `${what}: ${got.message}`);
    assert.equal(got.message.slice(got.message.indexOf(': ')), expected.message.slice(expected.message.indexOf(': ')), what);
    return;
  }
  assert.ok(got instanceof DesiredState, `${what}: accepted (${(got as Error).message})`);
  assert.deepEqual(got.config, expected, what);
  assert.ok(Object.isFrozen(part(got.config)), `${what}: frozen`);
  state.services.forEach((s, i) => { if (i !== index) assert.equal(got.config.services[i], s, `${what}: service ${i} shared`); });
}

describe('validateState: whole-config rejections name the field', () => {
  // [description, mutate(config), code, field]
  const cases: Array<[string, (c: ReturnType<typeof base>) => void, string, string]> = [
    ['VIP with a leading zero', (c) => { c.services[0].vip = '198.18.100.01'; }, 'XDPLB_ERR_VALIDATION', '/services/0/vip'],
    ['VIP 0.0.0.0', (c) => { c.services[0].vip = '0.0.0.0'; }, 'XDPLB_ERR_VALIDATION', '/services/0/vip'],
    ['VIP multicast', (c) => { c.services[0].vip = '224.0.0.1'; }, 'XDPLB_ERR_VALIDATION', '/services/0/vip'],
    ['VIP broadcast', (c) => { c.services[0].vip = '255.255.255.255'; }, 'XDPLB_ERR_VALIDATION', '/services/0/vip'],
    ['VIP octet > 255', (c) => { c.services[0].vip = '198.18.256.1'; }, 'XDPLB_ERR_VALIDATION', '/services/0/vip'],
    ['VIP with three octets', (c) => { c.services[0].vip = '198.18.1'; }, 'XDPLB_ERR_VALIDATION', '/services/0/vip'],
    ['VIP hostname', (c) => { c.services[0].vip = 'example.com'; }, 'XDPLB_ERR_VALIDATION', '/services/0/vip'],
    ['backend address with spaces', (c) => { c.services[0].backends[1].address = ' 198.18.1.3'; }, 'XDPLB_ERR_VALIDATION', '/services/0/backends/1/address'],
    ['backend multicast', (c) => { c.services[0].backends[0].address = '239.1.1.1'; }, 'XDPLB_ERR_VALIDATION', '/services/0/backends/0/address'],
    ['service port 65536', (c) => { c.services[0].port = 65536; }, 'XDPLB_ERR_VALIDATION', '/services/0/port'],
    ['service port negative', (c) => { c.services[0].port = -1; }, 'XDPLB_ERR_VALIDATION', '/services/0/port'],
    ['service port as string', (c) => { c.services[0].port = '80'; }, 'XDPLB_ERR_VALIDATION', '/services/0/port'],
    ['backend port fractional', (c) => { c.services[0].backends[0].port = 80.5; }, 'XDPLB_ERR_VALIDATION', '/services/0/backends/0/port'],
    ['weight above 1000', (c) => { c.services[0].backends[0].weight = 1001; }, 'XDPLB_ERR_VALIDATION', '/services/0/backends/0/weight'],
    ['weight negative', (c) => { c.services[0].backends[1].weight = -1; }, 'XDPLB_ERR_VALIDATION', '/services/0/backends/1/weight'],
    ['weight fractional', (c) => { c.services[0].backends[1].weight = 1.5; }, 'XDPLB_ERR_VALIDATION', '/services/0/backends/1/weight'],
    ['name with upper case', (c) => { c.services[1].name = 'DNS'; }, 'XDPLB_ERR_VALIDATION', '/services/1/name'],
    ['name starting with "-"', (c) => { c.services[1].name = '-dns'; }, 'XDPLB_ERR_VALIDATION', '/services/1/name'],
    ['name of 64 characters', (c) => { c.services[1].name = 'a'.repeat(64); }, 'XDPLB_ERR_VALIDATION', '/services/1/name'],
    ['empty name', (c) => { c.services[1].name = ''; }, 'XDPLB_ERR_VALIDATION', '/services/1/name'],
    ['protocol sctp', (c) => { c.services[0].protocol = 'sctp'; }, 'XDPLB_ERR_VALIDATION', '/services/0/protocol'],
    ['mode tunnel', (c) => { c.services[0].mode = 'ipip'; }, 'XDPLB_ERR_VALIDATION', '/services/0/mode'],
    ['missing vip', (c) => { delete c.services[0].vip; }, 'XDPLB_ERR_VALIDATION', '/services/0/vip'],
    ['unknown service field', (c) => { c.services[0].weight = 3; }, 'XDPLB_ERR_VALIDATION', '/services/0/weight'],
    ['unknown backend field', (c) => { c.services[0].backends[0].host = 'x'; }, 'XDPLB_ERR_VALIDATION', '/services/0/backends/0/host'],
    ['unknown top-level field', (c) => { c.listen = ':80'; }, 'XDPLB_ERR_VALIDATION', '/listen'],
    ['backends not an array', (c) => { c.services[0].backends = { address: '198.18.1.2' }; }, 'XDPLB_ERR_VALIDATION', '/services/0/backends'],
    ['services not an array', (c) => { (c as Record<string, unknown>).services = 'web'; }, 'XDPLB_ERR_VALIDATION', '/services'],
    ['1001 backends', (c) => { c.services[0].backends = Array.from({ length: 1001 }, (_, i) => ({ address: `198.18.${2 + (i >> 8)}.${i & 255 || 1}`, port: i + 1 })); }, 'XDPLB_ERR_VALIDATION', '/services/0/backends'],
    ['256 services (the data plane holds 255)', (c) => { c.services = Array.from({ length: 256 }, (_, i) => ({ ...WEB, name: `s${i}`, port: i + 1, backends: [] })); }, 'XDPLB_ERR_VALIDATION', '/services'],
    ['4096 backends in all (the data plane holds 4095)', (c) => {
      const address = (n: number) => `198.18.${n >> 8}.${n & 255}`;   // third octet <= 16: never a VIP
      c.services = Array.from({ length: 5 }, (_, s) => ({ ...WEB, name: `s${s}`, mode: 'dsr', port: 0, vip: `198.18.100.${s + 1}`,
        backends: Array.from({ length: s < 4 ? 1000 : 96 }, (_, i) => ({ address: address(s * 1000 + i + 1), port: 0 })) }));
    }, 'XDPLB_ERR_VALIDATION', '/services'],
    ['oversized health path', (c) => { c.services[0].healthCheck = { type: 'http', path: '/' + 'a'.repeat(2000) }; }, 'XDPLB_ERR_VALIDATION', '/services/0/healthCheck/path'],
    ['health interval too short', (c) => { c.services[0].healthCheck = { type: 'tcp', intervalMs: 10 }; }, 'XDPLB_ERR_VALIDATION', '/services/0/healthCheck/intervalMs'],
    ['health timeout above interval', (c) => { c.services[0].healthCheck = { type: 'tcp', intervalMs: 1000, timeoutMs: 2000 }; }, 'XDPLB_ERR_VALIDATION', '/services/0/healthCheck/timeoutMs'],
    ['health path on a tcp check', (c) => { c.services[0].healthCheck = { type: 'tcp', path: '/' }; }, 'XDPLB_ERR_VALIDATION', '/services/0/healthCheck/path'],
    ['reuseConnection on a tcp check', (c) => { c.services[0].healthCheck = { type: 'tcp', reuseConnection: true }; }, 'XDPLB_ERR_VALIDATION', '/services/0/healthCheck/reuseConnection'],
    ['empty expectStatus range', (c) => { c.services[0].healthCheck = { type: 'http', expectStatus: [399, 200] }; }, 'XDPLB_ERR_VALIDATION', '/services/0/healthCheck/expectStatus'],
    ['non-prime service table size', (c) => { c.services[0].tableSize = 1000; }, 'XDPLB_ERR_VALIDATION', '/services/0/tableSize'],
    ['table size below 13', (c) => { c.services[0].tableSize = 11; }, 'XDPLB_ERR_VALIDATION', '/services/0/tableSize'],
    ['non-prime default table size', (c) => { c.maglev = { tableSize: 65536 }; }, 'XDPLB_ERR_VALIDATION', '/maglev/tableSize'],
    ['service table size above 1048573', (c) => { c.services[0].tableSize = 1048583; }, 'XDPLB_ERR_VALIDATION', '/services/0/tableSize'],
    ['default table size above 131071', (c) => { c.maglev = { tableSize: 1000003 }; }, 'XDPLB_ERR_VALIDATION', '/maglev/tableSize'],
    ['table smaller than the backends', (c) => { c.services[0].tableSize = 13; c.services[0].backends = Array.from({ length: 14 }, (_, i) => ({ address: '198.18.1.2', port: 1000 + i })); }, 'XDPLB_ERR_VALIDATION', '/services/0/tableSize'],
    ['duplicate service name', (c) => { c.services[1].name = 'web'; }, 'XDPLB_ERR_CONFLICT', '/services/1/name'],
    ['duplicate vip:port:protocol', (c) => { c.services[1] = { ...structuredClone(WEB), name: 'web2', backends: [] }; }, 'XDPLB_ERR_CONFLICT', '/services/1/vip'],
    ['duplicate backend in a service', (c) => { c.services[0].backends[1] = { address: '198.18.1.2', port: 8080 }; }, 'XDPLB_ERR_CONFLICT', '/services/0/backends/1/address'],
    ['reverse-NAT clash across VIPs', (c) => { c.services[1] = { ...structuredClone(WEB), name: 'web2', vip: '198.18.100.9', backends: [{ address: '198.18.1.3', port: 8080 }] }; }, 'XDPLB_ERR_CONFLICT', '/services/1/backends/0/address'],
    ['reverse-NAT clash via port 0 backend', (c) => { c.services[1] = { ...structuredClone(WEB), name: 'alt', vip: '198.18.100.9', port: 8080, backends: [{ address: '198.18.1.2', port: 0 }] }; }, 'XDPLB_ERR_CONFLICT', '/services/1/backends/0/address'],
    ['reverse-NAT clash: wildcard beside a specific port', (c) => { c.services[1] = { ...structuredClone(WEB), name: 'any', vip: '198.18.100.9', port: 0, backends: [{ address: '198.18.1.2', port: 0 }] }; }, 'XDPLB_ERR_CONFLICT', '/services/1/backends/0/address'],
    ['reverse-NAT clash: wildcard beside a port-translating service of the same VIP', (c) => { c.services[1] = { ...structuredClone(WEB), name: 'any', port: 0, backends: [{ address: '198.18.1.3', port: 0 }] }; }, 'XDPLB_ERR_CONFLICT', '/services/1/backends/0/address'],
    ['NAT on every port with a fixed backend port', (c) => { c.services[0].port = 0; }, 'XDPLB_ERR_VALIDATION', '/services/0/backends/0/port'],
    ['DSR port translation', (c) => { c.services[1].backends[0].port = 5353; }, 'XDPLB_ERR_VALIDATION', '/services/1/backends/0/port'],
    ['duplicate DSR backend address', (c) => { c.services[1].backends.push({ address: '198.18.1.10', port: 53 }); }, 'XDPLB_ERR_CONFLICT', '/services/1/backends/1/address'],
    ['health port needed for port-0 everything', (c) => { c.services[0].port = 0; c.services[0].backends = [{ address: '198.18.1.2', port: 0 }]; c.services[0].healthCheck = { type: 'tcp' }; }, 'XDPLB_ERR_VALIDATION', '/services/0/healthCheck/port'],
    ['backend that is a VIP', (c) => { c.services[0].backends[0].address = '198.18.100.2'; }, 'XDPLB_ERR_CONFLICT', '/services/0/backends/0/address'],
    ['interface listed twice', (c) => { c.interfaces = [{ name: 'eth0' }, { name: 'eth0', mode: 'generic' }]; }, 'XDPLB_ERR_CONFLICT', '/interfaces/1/name'],
    ['hashSeed above u32', (c) => { c.hashSeed = 2 ** 32; }, 'XDPLB_ERR_VALIDATION', '/hashSeed'],
    ['fragments policy unknown', (c) => { c.fragments = 'reassemble'; }, 'XDPLB_ERR_VALIDATION', '/fragments'],
    ['interface mode offload', (c) => { c.interfaces = [{ name: 'eth0', mode: 'offload' }]; }, 'XDPLB_ERR_VALIDATION', '/interfaces/0/mode'],
    ['interface name too long', (c) => { c.interfaces = [{ name: 'a-very-long-interface' }]; }, 'XDPLB_ERR_VALIDATION', '/interfaces/0/name'],
    ['api listen without port', (c) => { c.api = { listen: '127.0.0.1' }; }, 'XDPLB_ERR_VALIDATION', '/api/listen'],
    ['api listen port 70000', (c) => { c.api = { listen: '127.0.0.1:70000' }; }, 'XDPLB_ERR_VALIDATION', '/api/listen'],
    ['user without a password', (c) => { c.users = [{ name: 'admin', role: 'admin' }]; }, 'XDPLB_ERR_VALIDATION', '/users/0/passwordHash'],
    ['user role root', (c) => { c.users = [{ name: 'admin', role: 'root', password: 'x' }]; }, 'XDPLB_ERR_VALIDATION', '/users/0/role'],
    ['duplicate user', (c) => { c.users = [{ name: 'a', role: 'admin', password: 'x' }, { name: 'a', role: 'viewer', password: 'y' }]; }, 'XDPLB_ERR_CONFLICT', '/users/1/name'],
    ['short plain token', (c) => { c.tokens = [{ name: 'ci', role: 'admin', token: 'short' }]; }, 'XDPLB_ERR_VALIDATION', '/tokens/0/token'],
    ['malformed token hash', (c) => { c.tokens = [{ name: 'ci', role: 'admin', tokenHash: 'scrypt$1$2' }]; }, 'XDPLB_ERR_VALIDATION', '/tokens/0/tokenHash'],
  ];

  for (const [description, mutate, code, field] of cases) {
    test(description, () => {
      const config = base();
      mutate(config);
      const before = structuredClone(config);
      expectError(() => validateState(config), code, field);
      assert.deepEqual(config, before, 'validation does not change its input');
    });
  }

  test('a service may take a table up to 1048573 slots (M >= N^2 for 1000 backends)', () => {
    for (const tableSize of [1000003, 1048573]) {
      const config = base();
      config.services[0].tableSize = tableSize;
      assert.equal(validateState(config).services[0].tableSize, tableSize);
    }
  });

  test('the base config is valid and gets its defaults', () => {
    const config = validateState(base());
    assert.equal(config.maglev.tableSize, 65537);
    assert.equal(config.fragments, 'drop');
    assert.equal(config.flowCache, true);
    assert.equal(config.services[1].backends[0].weight, 1);
    assert.deepEqual(stateErrors(config), []);
  });

  test('a port-0 service and a specific-port service may share a VIP and protocol', () => {
    const config = base();
    config.services.push({ ...structuredClone(WEB), name: 'web-any', port: 0, backends: [{ address: '198.18.1.20', port: 0 }] });
    assert.equal(validateState(config).services.length, 3);
  });

  test('NAT services on one VIP may share a backend when replies stay unambiguous', () => {
    const config = base();
    config.services.push({ ...structuredClone(WEB), name: 'web-alt', port: 81, backends: [{ address: '198.18.1.2', port: 8081 }] });
    config.services.push({ ...structuredClone(WEB), name: 'plain', port: 9000, backends: [{ address: '198.18.1.40', port: 9000 }] });
    config.services.push({ ...structuredClone(WEB), name: 'web-any', port: 0, backends: [{ address: '198.18.1.40', port: 0 }] });
    assert.equal(validateState(config).services.length, 5);
  });

  test('two NAT services may share a backend behind the same VIP:port on another protocol', () => {
    const config = base();
    config.services.push({ ...structuredClone(WEB), name: 'web-udp', protocol: 'udp' });
    assert.equal(validateState(config).services.length, 3);
  });
});

describe('DesiredState: mutations are whole-or-nothing', () => {
  const state = new DesiredState(base());
  const snapshot = structuredClone(state.config);

  const rejected: Array<[string, (s: DesiredState) => unknown, string, string]> = [
    ['create: duplicate name', (s) => s.createService({ ...WEB, vip: '198.18.100.7' }), 'XDPLB_ERR_CONFLICT', '/name'],
    ['create: vip:port clash', (s) => s.createService({ ...WEB, name: 'other' }), 'XDPLB_ERR_CONFLICT', '/vip'],
    ['create: bad backend port', (s) => s.createService({ ...WEB, name: 'n', vip: '198.18.100.7', backends: [{ address: '198.18.1.9', port: 1e6 }] }), 'XDPLB_ERR_VALIDATION', '/backends/0/port'],
    ['create: reverse-NAT clash', (s) => s.createService({ ...WEB, name: 'n', vip: '198.18.100.7' }), 'XDPLB_ERR_CONFLICT', '/backends/0/address'],
    ['create: not an object', (s) => s.createService('web'), 'XDPLB_ERR_VALIDATION', ''],
    ['replace: renaming', (s) => s.replaceService('web', { ...WEB, name: 'www' }), 'XDPLB_ERR_VALIDATION', '/name'],
    ['replace: missing service', (s) => s.replaceService('nope', WEB), 'XDPLB_ERR_NOT_FOUND', undefined as unknown as string],
    ['delete: missing service', (s) => s.deleteService('nope'), 'XDPLB_ERR_NOT_FOUND', undefined as unknown as string],
    ['add backend: duplicate', (s) => s.addBackend('web', { address: '198.18.1.2', port: 8080 }), 'XDPLB_ERR_CONFLICT', '/address'],
    ['add backend: DSR port translation', (s) => s.addBackend('dns', { address: '198.18.1.11', port: 5353 }), 'XDPLB_ERR_VALIDATION', '/port'],
    ['add backend: unknown field', (s) => s.addBackend('dns', { address: '198.18.1.11', port: 53, up: true }), 'XDPLB_ERR_VALIDATION', '/up'],
    ['patch backend: weight 2000', (s) => s.patchBackend('web', '198.18.1.2:8080', { weight: 2000 }), 'XDPLB_ERR_VALIDATION', '/weight'],
    ['patch backend: missing backend', (s) => s.patchBackend('web', '198.18.1.99:8080', { weight: 1 }), 'XDPLB_ERR_NOT_FOUND', undefined as unknown as string],
    ['delete backend: missing service', (s) => s.deleteBackend('nope', '198.18.1.2:8080'), 'XDPLB_ERR_NOT_FOUND', undefined as unknown as string],
    ['settings: sample rate negative', (s) => s.patchSettings({ sampleRate: -1 }), 'XDPLB_ERR_VALIDATION', '/sampleRate'],
    ['settings: unknown field', (s) => s.patchSettings({ hashSeed: 1 }), 'XDPLB_ERR_VALIDATION', '/hashSeed'],
  ];
  for (const [description, mutate, code, field] of rejected) {
    test(description, () => {
      expectErrorOrNotFound(() => mutate(state), code, field);
      assert.deepEqual(state.config, snapshot, 'state unchanged');
    });
  }

  test('accepted mutations return a new state and leave the old one alone', () => {
    const created = state.createService({ name: 'api', vip: '198.18.100.3', port: 443, protocol: 'tcp', mode: 'nat', backends: [{ address: '198.18.1.30', port: 8443 }] });
    assert.equal(created.services.length, 3);
    assert.equal(created.getService('api').backends[0].weight, 1);
    const patched = created.patchBackend('api', '198.18.1.30:8443', { weight: 5, drain: true });
    assert.deepEqual(patched.getService('api').backends[0], { address: '198.18.1.30', port: 8443, weight: 5, drain: true });
    const grown = patched.addBackend('api', { address: '198.18.1.31', port: 8443, weight: 0 });
    assert.equal(grown.getService('api').backends.length, 2);
    const shrunk = grown.deleteBackend('api', '198.18.1.30:8443');
    assert.deepEqual(shrunk.getService('api').backends.map((b) => b.address), ['198.18.1.31']);
    const replaced = shrunk.replaceService('api', { name: 'api', vip: '198.18.100.3', port: 443, protocol: 'tcp', mode: 'dsr', tableSize: 13, backends: [] });
    assert.equal(replaced.getService('api').mode, 'dsr');
    const settings = replaced.patchSettings({ fragPolicy: 'pass', sampleRate: 100 });
    assert.deepEqual(settings.settings(), { fragPolicy: 'pass', sampleRate: 100, flowCache: true });
    assert.equal(settings.deleteService('api').services.length, 2);
    assert.deepEqual(state.config, snapshot);
    assert.ok(Object.isFrozen(settings.config.services[0].backends[0]), 'states are frozen');
  });
});

function expectErrorOrNotFound(fn: () => unknown, code: string, field: string | undefined): void {
  let caught: unknown;
  try { fn(); } catch (error) { caught = error; }
  assert.ok(caught instanceof XdplbError, `expected an XdplbError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  assert.equal(caught.field, field, caught.message);
}

describe('DesiredState.patchBackends: weights and drains of several backends at once (issue 16 bulk)', () => {
  const big = () => {
    const config = base();
    config.services[0].backends = Array.from({ length: 300 }, (_, i) => ({ address: `198.18.${10 + Math.floor(i / 250)}.${(i % 250) + 1}`, port: 8080, weight: 1 + (i % 3) }));
    return new DesiredState(config);
  };

  test('the result is the config validateState makes of the same changes; untouched parts are shared, nothing of the old state changes', () => {
    const state = big();
    const before = JSON.stringify(state.config);
    let seed = 3;
    const rand = (n: number): number => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return (seed >>> 8) % n; };
    for (let round = 0; round < 20; round++) {
      const picked = [...new Set(Array.from({ length: 1 + rand(60) }, () => rand(300)))];
      const changes = picked.map((backend, k) => {
        const patch: { weight?: number; drain?: boolean } = {};
        if (rand(2)) patch.weight = rand(5);
        if (rand(2) || patch.weight === undefined) patch.drain = rand(2) === 0;
        return { service: 0, backend, patch, at: `/changes/${k}` };
      });
      const next = state.patchBackends(changes);
      const config = state.toConfig();
      for (const c of changes) Object.assign(config.services[0].backends[c.backend], c.patch);
      assert.deepEqual(next.config, validateState(config), `round ${round}`);
      assert.ok(Object.isFrozen(next.config.services[0].backends[picked[0]]), 'the new state is frozen too');
      assert.equal(next.config.services[1], state.config.services[1], 'an untouched service is shared');
      const untouched = [...Array(300).keys()].find((i) => !picked.includes(i))!;
      assert.equal(next.config.services[0].backends[untouched], state.config.services[0].backends[untouched], 'an untouched backend is shared');
    }
    assert.equal(JSON.stringify(state.config), before, 'the old state is as it was');
  });

  test('patchBackend (one weight or drain, the API\'s PATCH) is that path too: the config validateState makes, everything else shared, errors relative to the patch', () => {
    const state = big();
    const before = JSON.stringify(state.config);
    for (const [b, patch] of [[0, { drain: true }], [7, { weight: 0 }], [299, { weight: 4, drain: false }], [5, {}]] as const) {
      const key = backendKey(state.config.services[0].backends[b]);
      const next = state.patchBackend(state.config.services[0].name, key, patch);
      const config = state.toConfig();
      Object.assign(config.services[0].backends[b], patch);
      assert.deepEqual(next.config, validateState(config), key);
      assert.ok(Object.isFrozen(next.config.services[0].backends[b]) && Object.isFrozen(next.config.services[0]), 'frozen');
      assert.equal(next.config.services[1], state.config.services[1], 'an untouched service is shared');
      assert.equal(next.config.services[0].backends[b === 0 ? 1 : 0], state.config.services[0].backends[b === 0 ? 1 : 0], 'an untouched backend is shared');
      assert.equal(next.config.users, state.config.users, 'the rest of the config is shared');
      // The next change finds its backend in the new state by key (the key index carried over).
      const again = next.patchBackend(next.config.services[0].name, key, { weight: 9 });
      assert.equal(again.config.services[0].backends[b].weight, 9);
    }
    const name = state.config.services[0].name;
    expectError(() => state.patchBackend(name, '198.18.10.1:8080', { weight: 1001 }), 'XDPLB_ERR_VALIDATION', '/weight');
    expectError(() => state.patchBackend(name, '198.18.10.1:8080', { drain: 'yes' }), 'XDPLB_ERR_VALIDATION', '/drain');
    expectError(() => state.patchBackend(name, '198.18.10.1:8080', { color: 'red' }), 'XDPLB_ERR_VALIDATION', '/color');
    assert.throws(() => state.patchBackend(name, '198.18.99.1:8080', { weight: 1 }), (e: XdplbError) => e.code === 'XDPLB_ERR_NOT_FOUND');
    assert.equal(JSON.stringify(state.config), before, 'the old state is as it was');
  });

  test('a bad change is refused whole, naming its field under the change', () => {
    const state = big();
    const before = JSON.stringify(state.config);
    const error = expectError(() => state.patchBackends([
      { service: 0, backend: 1, patch: { drain: true }, at: '/changes/0' },
      { service: 0, backend: 2, patch: { weight: 100_000 }, at: '/changes/1' },
    ]), 'XDPLB_ERR_VALIDATION', '/changes/1/weight');
    assert.match(error.message, /^\/changes\/1\/weight/);
    expectError(() => state.patchBackends([{ service: 0, backend: 1, patch: { drain: 'yes' }, at: '/changes/0' }]), 'XDPLB_ERR_VALIDATION', '/changes/0/drain');
    assert.equal(JSON.stringify(state.config), before);
  });
});

describe('addBackend and deleteBackend share the untouched config; the same result and errors as a whole validation (issue 16)', () => {
  const states = () => [
    new DesiredState(base()),
    new DesiredState({ ...base(), users: [{ name: 'a', role: 'admin', passwordHash: 'scrypt$16384$8$1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA' }],
      services: [...base().services, { name: 'api', vip: '198.18.100.3', port: 443, protocol: 'tcp', mode: 'nat', tableSize: 13,
        backends: Array.from({ length: 12 }, (_, i) => ({ address: `198.18.2.${i + 1}`, port: 8443 })) },
      { name: 'v6', vip: '2001:2::100', port: 80, protocol: 'tcp', mode: 'nat', backends: [{ address: '2001:2::1:2', port: 8080 }] }] }),
  ];
  /** What addBackend did before: the whole config copied, the backend pushed, validateState of it all. */
  const reference = (state: DesiredState, name: string, spec: unknown): Record<string, unknown> | XdplbError => {
    const config = state.toConfig();
    const index = config.services.findIndex((s) => s.name === name);
    config.services[index].backends.push(structuredClone(spec) as never);
    try { return validateState(config, { focus: index }) as never; } catch (error) { return error as XdplbError; }
  };
  const specs: Array<[string, string, unknown]> = [
    ['a new backend', 'web', { address: '198.18.1.4', port: 8080 }],
    ['weight and drain', 'web', { address: '198.18.1.5', port: 8081, weight: 7, drain: true }],
    ['IPv6, any text form', 'v6', { address: '2001:0002:0:0::1:3', port: 8080 }],
    ['a duplicate', 'web', { address: '198.18.1.2', port: 8080 }],
    ['a VIP as backend', 'web', { address: '198.18.100.2', port: 53 }],
    ['the other family', 'web', { address: '2001:2::9', port: 8080 }],
    ['a DSR port', 'dns', { address: '198.18.1.11', port: 54 }],
    ['a reverse clash with another NAT service', 'api', { address: '198.18.1.2', port: 8080 }],
    ['a table too small', 'api', { address: '198.18.2.99', port: 8443 }],
    ['a bad port', 'web', { address: '198.18.1.6', port: 70000 }],
    ['an unknown field', 'web', { address: '198.18.1.6', port: 80, color: 'red' }],
    ['not an address', 'web', { address: 'web-1', port: 80 }],
    ['a loopback address', 'web', { address: '127.0.0.1', port: 80 }],
  ];
  test('every kind of backend, good and bad', () => {
    for (const state of states()) {
      for (const [what, name, spec] of specs) {
        if (!state.services.some((s) => s.name === name)) continue;
        const index = state.services.findIndex((s) => s.name === name);
        const at = `/services/${index}/backends/${state.services[index].backends.length}`;
        const before = JSON.stringify(state.config);
        const expected = reference(state, name, spec);
        let got: DesiredState | XdplbError;
        try { got = state.addBackend(name, spec); } catch (error) { got = error as XdplbError; }
        assert.equal(JSON.stringify(state.config), before, `${what}: the state is as it was`);
        assertAsReference(what, state, index, at, expected, got, (c) => c.services[index].backends.at(-1));
      }
    }
  });

  test('a service at its maximum of backends: the schema\'s error, as before', () => {
    const config = base();
    config.services[0].backends = Array.from({ length: 1000 }, (_, i) => ({ address: `198.18.${10 + Math.floor(i / 250)}.${(i % 250) + 1}`, port: 8080 }));
    const state = new DesiredState(config);
    const spec = { address: '198.18.9.1', port: 8080 };
    const expected = reference(state, 'web', spec) as XdplbError;
    assert.ok(expected instanceof XdplbError);
    expectError(() => state.addBackend('web', spec), expected.code, expected.field!);
  });

  test('deleteBackend: every backend of every service, as validateState of the copy', () => {
    for (const state of states()) {
      state.services.forEach((service, index) => {
        service.backends.forEach((backend, b) => {
          const next = state.deleteBackend(service.name, backendKey(backend));
          const config = state.toConfig();
          config.services[index].backends.splice(b, 1);
          assert.deepEqual(next.config, validateState(config), `${service.name} ${backendKey(backend)}`);
          assert.ok(Object.isFrozen(next.config.services[index].backends));
          state.services.forEach((s, i) => { if (i !== index) assert.equal(next.config.services[i], s, 'shared'); });
          // The new state finds its backends by key (no stale index: the list moved up by one).
          const last = next.config.services[index].backends.at(-1);
          if (last) assert.equal(next.patchBackend(service.name, backendKey(last), { weight: 3 }).config.services[index].backends.at(-1)!.weight, 3);
        });
      });
    }
  });
});

describe('DesiredState.findBackend: by canonical key, through every kind of change', () => {
  test('the index follows weights, drains, adds and deletes (IPv6 keys canonical); -1 for none', () => {
    let state = new DesiredState({ services: [WEB, { name: 'v6', vip: '2001:2::100', port: 80, protocol: 'tcp', mode: 'nat',
      backends: [{ address: '2001:2::1:2', port: 8080 }, { address: '2001:2::1:3', port: 8080 }] }] });
    const check = (what: string) => state.services.forEach((s, i) => {
      s.backends.forEach((b, n) => assert.equal(state.findBackend(i, backendKey(b)), n, `${what}: ${s.name} ${backendKey(b)}`));
      assert.equal(state.findBackend(i, '198.18.99.99:1'), -1, what);
    });
    check('start');
    state = state.patchBackends([{ service: 1, backend: 0, patch: { drain: true }, at: '/changes/0' }]);
    check('bulk drain');
    assert.equal(state.findBackend(1, '[2001:2::1:3]:8080'), 1);
    state = state.addBackend('v6', { address: '2001:0002::1:1', port: 8080 });
    check('added');
    assert.equal(state.findBackend(1, '[2001:2::1:1]:8080'), 2);
    state = state.deleteBackend('v6', '[2001:2::1:2]:8080');
    check('deleted');
    assert.equal(state.findBackend(1, '[2001:2::1:2]:8080'), -1);
    assert.equal(state.findBackend(1, '[2001:2::1:1]:8080'), 1, 'moved up by one');
    state = state.patchBackend('web', '198.18.1.3:8080', { weight: 5 });
    check('patched');
  });
});

describe('createService, replaceService and deleteService share the other services; the same result and errors as a whole validation (issue 16)', () => {
  const state = () => new DesiredState({ ...base(), services: [...base().services,
    { name: 'v6', vip: '2001:2::100', port: 80, protocol: 'tcp', mode: 'nat', backends: [{ address: '2001:2::1:2', port: 8080 }] }] });
  /** What they did before: the whole config copied, the service put in, validateState of it all. */
  const reference = (s: DesiredState, index: number, spec: unknown): Record<string, unknown> | XdplbError => {
    const config = s.toConfig();
    config.services[index] = structuredClone(spec) as never;
    try { return validateState(config, { focus: index }) as never; } catch (error) { return error as XdplbError; }
  };
  const web = (change: Record<string, unknown>) => ({ ...structuredClone(WEB), ...change });
  const specs: Array<[string, Record<string, unknown>]> = [
    ['a new service', web({ name: 'new', vip: '198.18.100.9' })],
    ['IPv6 in any text form, a check with defaults', { name: 'new6', vip: '2001:0002::0200', port: 443, protocol: 'tcp', mode: 'nat',
      backends: [{ address: '2001:0002:0:0::1:9', port: 8443, weight: 3 }], healthCheck: { type: 'http', path: '/h' } }],
    ['a DSR service', { name: 'dsr2', vip: '198.18.100.8', port: 80, protocol: 'tcp', mode: 'dsr', backends: [{ address: '198.18.3.1', port: 0 }] }],
    ['a name taken', web({ vip: '198.18.100.9' })],
    ['a listener taken', web({ name: 'new', port: 80 })],
    ['a backend that is a VIP', web({ name: 'new', vip: '198.18.100.9', backends: [{ address: '198.18.100.2', port: 53 }] })],
    ['a reverse clash', web({ name: 'new', vip: '198.18.100.9', backends: [{ address: '198.18.1.2', port: 8080 }] })],
    ['a table too small', web({ name: 'new', vip: '198.18.100.9', tableSize: 2 })],
    ['a table not prime', web({ name: 'new', vip: '198.18.100.9', tableSize: 15 })],
    ['a check timeout over its interval', web({ name: 'new', vip: '198.18.100.9', healthCheck: { type: 'tcp', intervalMs: 1000, timeoutMs: 2000 } })],
    ['families mixed', web({ name: 'new', vip: '2001:2::300' })],
    ['a bad port', web({ name: 'new', vip: '198.18.100.9', port: 70000 })],
    ['an unknown field', web({ name: 'new', vip: '198.18.100.9', color: 'red' })],
  ];
  const compare = (what: string, s: DesiredState, index: number, spec: unknown, run: () => DesiredState) => {
    const before = JSON.stringify(s.config);
    const expected = reference(s, index, spec);
    let got: DesiredState | XdplbError;
    try { got = run(); } catch (error) { got = error as XdplbError; }
    assert.equal(JSON.stringify(s.config), before, `${what}: the state is as it was`);
    assertAsReference(what, s, index, `/services/${index}`, expected, got, (c) => c.services[index]);
  };

  test('create: every kind of spec, good and bad', () => {
    const s = state();
    for (const [what, spec] of specs) compare(what, s, s.services.length, spec, () => s.createService(spec));
  });

  test('replace: every kind of spec in place of "web" (its own name), and a rename refused', () => {
    const s = state();
    for (const [what, spec] of specs) {
      const named = { ...spec, name: 'web' };
      compare(`replace: ${what}`, s, 0, named, () => s.replaceService('web', named));
    }
    expectError(() => s.replaceService('web', web({ name: 'www' })), 'XDPLB_ERR_VALIDATION', '/name');
  });

  test('delete: every service, as validateState of the copy', () => {
    const s = state();
    s.services.forEach((service, index) => {
      const next = s.deleteService(service.name);
      const config = s.toConfig();
      config.services.splice(index, 1);
      assert.deepEqual(next.config, validateState(config), service.name);
      next.services.forEach((x) => assert.equal(x, s.services.find((y) => y.name === x.name), 'shared'));
    });
  });
});
