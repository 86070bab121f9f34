/**
 * The rules src/config/state.ts reports and the reconciler asserts (src/config/rules.ts): the reverse
 * NAT clash and the backend destination. The config validator must never accept a state the
 * reconciler then refuses (the daemon would accept a change it cannot apply), so both are
 * checked against each other over every combination of ports, VIPs and modes.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { backendDestination, crossServiceRuleBreaks, reverseClash, serviceRuleBreaks } from './rules';
import { Reconciler, ReconcileInvariantError, type ReconcilerMaps } from '../balancer/reconciler';
import { XdplbError } from '../domain/errors';
import { validateState } from './state';
import type { ServiceSpec } from '../domain/types';
import type { DataplaneState } from '../dataplane/types';

const V1 = '198.18.100.1';
const V2 = '198.18.100.2';
const B = '198.18.1.2';

describe('reverseClash: one rule', () => {
  test('equal ports: no clash when both map replies to the same VIP:port (one map entry)', () => {
    assert.equal(reverseClash({ port: 80, vip: V1, vport: 80 }, { port: 80, vip: V1, vport: 80 }), null);
    assert.equal(reverseClash({ port: 0, vip: V1, vport: 0 }, { port: 0, vip: V1, vport: 0 }), null);
  });
  test('equal ports: a clash when the VIP or the VIP port differs', () => {
    assert.equal(reverseClash({ port: 8080, vip: V1, vport: 80 }, { port: 8080, vip: V2, vport: 80 }), '8080');
    assert.equal(reverseClash({ port: 8080, vip: V1, vport: 80 }, { port: 8080, vip: V1, vport: 81 }), '8080');
    assert.equal(reverseClash({ port: 0, vip: V1, vport: 0 }, { port: 0, vip: V2, vport: 0 }), '0');
  });
  test('a wildcard beside a specific port; two specific ports', () => {
    assert.equal(reverseClash({ port: 0, vip: V1, vport: 0 }, { port: 80, vip: V1, vport: 80 }), null, 'same VIP, untranslated');
    assert.equal(reverseClash({ port: 80, vip: V1, vport: 80 }, { port: 0, vip: V1, vport: 0 }), null, 'either order');
    assert.equal(reverseClash({ port: 0, vip: V1, vport: 0 }, { port: 8080, vip: V1, vport: 80 }), '8080 (and any port)', 'translated');
    assert.equal(reverseClash({ port: 0, vip: V1, vport: 0 }, { port: 80, vip: V2, vport: 80 }), '80 (and any port)', 'another VIP');
    assert.equal(reverseClash({ port: 80, vip: V1, vport: 80 }, { port: 8080, vip: V2, vport: 80 }), null);
  });
});

describe('backendDestination', () => {
  test('NAT: port 0 is the service port; DSR: the address alone', () => {
    assert.equal(backendDestination({ mode: 'nat', port: 80 }, { address: B, port: 0 }), backendDestination({ mode: 'nat', port: 80 }, { address: B, port: 80 }));
    assert.notEqual(backendDestination({ mode: 'nat', port: 80 }, { address: B, port: 0 }), backendDestination({ mode: 'nat', port: 80 }, { address: B, port: 8080 }));
    assert.equal(backendDestination({ mode: 'dsr', port: 53 }, { address: B, port: 0 }), backendDestination({ mode: 'dsr', port: 53 }, { address: B, port: 53 }));
  });
});

const unusedMap = { lookup: () => null, update: () => undefined, delete: () => undefined, keys: () => [] };
const maps = Object.fromEntries(['services', 'vips', 'maglev', 'backends', 'reverse', 'settings'].map((m) => [m, unusedMap])) as unknown as ReconcilerMaps;
const reconciler = new Reconciler(maps, { maxServices: 256, maxBackends: 4096, maxVips: 256, maxReverse: 4096, maglevMaxSize: 1048573 }, () => {
  throw new Error('assertInvariants never creates tables');
});

function dataplaneState(services: ServiceSpec[]): DataplaneState {
  return {
    services: services.map((s) => ({ ...s, tableSize: 13, backends: s.backends.map((b) => ({ address: b.address, port: b.port, weight: b.weight ?? 1, healthy: true, draining: false })) })),
    settings: { fragPolicy: 'drop', sampleRate: 0, flowCache: true },
  };
}

/** null when accepted, else the error message. */
function verdicts(services: ServiceSpec[]): { state: string | null; reconciler: string | null } {
  const result = { state: null as string | null, reconciler: null as string | null };
  try { validateState({ services: services.map((s) => ({ ...s, tableSize: 13 })) }); } catch (e) { result.state = (e as Error).message; }
  try { reconciler.assertInvariants(dataplaneState(services)); } catch (e) { result.reconciler = (e as Error).message; }
  return result;
}

describe('the config validator and the reconciler agree', () => {
  const ports = [0, 80, 8080];
  const modes = ['nat', 'dsr'] as const;

  test('two services sharing a backend address: every state the validator accepts, the reconciler accepts; reverse clashes are refused by both', () => {
    let accepted = 0;
    let clashes = 0;
    for (const vipB of [V1, V2]) for (const portA of [0, 80]) for (const portB of ports) for (const bpA of ports) for (const bpB of ports) for (const modeA of modes) for (const modeB of modes) {
      const services: ServiceSpec[] = [
        { name: 'a', vip: V1, port: portA, protocol: 'tcp', mode: modeA, backends: [{ address: B, port: bpA, weight: 1 }] },
        { name: 'b', vip: vipB, port: portB, protocol: 'tcp', mode: modeB, backends: [{ address: B, port: bpB, weight: 1 }] },
      ];
      const v = verdicts(services);
      const label = JSON.stringify(services.map((s) => `${s.mode} ${s.vip}:${s.port} -> ${B}:${s.backends[0].port}`));
      if (v.state === null) {
        accepted++;
        assert.equal(v.reconciler, null, `${label}: accepted by the config validator but refused by the reconciler`);
      }
      if (v.reconciler?.includes('would match both')) {
        clashes++;
        assert.match(v.state ?? '', /reverse NAT|already served/, `${label}: a reverse clash for the reconciler is one for the validator`);
      }
    }
    assert.ok(accepted > 50 && clashes > 10, `the table covers both answers (${accepted} accepted, ${clashes} clashes)`);
  });

  test('one service, two backends on one address: one destination twice is refused by both, distinct ones accepted by both', () => {
    for (const port of [0, 80]) for (const mode of modes) for (const p1 of ports) for (const p2 of ports) {
      if (p1 >= p2) continue;
      const services: ServiceSpec[] = [{ name: 'a', vip: V1, port, protocol: 'tcp', mode, backends: [{ address: B, port: p1, weight: 1 }, { address: B, port: p2, weight: 1 }] }];
      const v = verdicts(services);
      const label = `${mode} ${V1}:${port} -> ${B}:${p1} + ${B}:${p2}`;
      if (v.state === null) assert.equal(v.reconciler, null, `${label}: accepted by the validator, refused by the reconciler`);
      const same = backendDestination(services[0], services[0].backends[0]) === backendDestination(services[0], services[0].backends[1]);
      if (same) {
        assert.notEqual(v.state, null, `${label}: the validator refuses one destination twice`);
        assert.notEqual(v.reconciler, null, `${label}: the reconciler refuses one destination twice`);
      }
    }
    // the case the two validators used to answer differently (equal reverse ports, same VIP:port)
    const twin = verdicts([{ name: 'a', vip: V1, port: 80, protocol: 'tcp', mode: 'nat', backends: [{ address: B, port: 0, weight: 1 }, { address: B, port: 80, weight: 1 }] }]);
    assert.match(twin.state ?? '', /^\/services\/0\/backends\/1\/address: backend 198\.18\.1\.2:80 duplicates \/services\/0\/backends\/0 \(198\.18\.1\.2:0: the same destination in NAT mode\)/);
    assert.match(twin.reconciler ?? '', /the same destination as backend 198\.18\.1\.2:0/);
  });
});

describe('the reconciler asserts the config\'s rules as invariants', () => {
  const svc = (name: string, vip: string, port: number, mode: 'nat' | 'dsr', ...backends: Array<[string, number]>): ServiceSpec =>
    ({ name, vip, port, protocol: 'tcp', mode, backends: backends.map(([address, p]) => ({ address, port: p, weight: 1 })) });
  const cases: Array<[string, ServiceSpec[], number?]> = [
    ['duplicate-name', [svc('a', V1, 80, 'nat'), svc('a', V2, 80, 'nat')]],
    ['duplicate-listener', [svc('a', V1, 80, 'nat'), svc('b', V1, 80, 'nat')]],
    ['table-size-prime', [svc('a', V1, 80, 'nat', [B, 80])], 15],
    ['nat-port-0', [svc('a', V1, 0, 'nat', [B, 80])]],
    ['dsr-port', [svc('a', V1, 53, 'dsr', [B, 5353])]],
    ['duplicate-destination', [svc('a', V1, 80, 'nat', [B, 80], [B, 0])]],
    ['reverse-clash', [svc('a', V1, 80, 'nat', [B, 8080]), svc('b', V2, 80, 'nat', [B, 8080])]],
  ];
  for (const [rule, services, tableSize = 13] of cases) {
    test(`${rule}: one rule, refused by the validator and asserted by the reconciler under its name`, () => {
      const sized = services.map((s) => ({ ...s, tableSize }));
      const own = sized.flatMap((s) => serviceRuleBreaks(s, tableSize).map((b) => b.rule));
      const across = crossServiceRuleBreaks(sized).map((b) => b.rule);
      assert.deepEqual([...own, ...across], [rule], 'the case breaks exactly this rule');
      assert.throws(() => validateState({ services: sized }), (e: unknown) => e instanceof XdplbError && /^XDPLB_ERR_(VALIDATION|CONFLICT)$/.test(e.code));
      const state = dataplaneState(services);
      for (const s of state.services) s.tableSize = tableSize;
      assert.throws(() => reconciler.assertInvariants(state),
        (e: unknown) => e instanceof ReconcileInvariantError && e.invariant === rule && e.message.startsWith(`invariant "${rule}" broken: service "`));
    });
  }
  test('a backend that is another service\'s VIP is the config\'s policy only: the maps can hold it', () => {
    const services = [svc('a', V1, 80, 'nat', [V2, 80]), svc('b', V2, 80, 'nat', [B, 80])];
    assert.deepEqual(crossServiceRuleBreaks(services).map((b) => b.rule), ['backend-is-vip']);
    assert.throws(() => validateState({ services }), /is the VIP of service "b": packets would loop/);
    assert.doesNotThrow(() => reconciler.assertInvariants(dataplaneState(services)));
  });
});
