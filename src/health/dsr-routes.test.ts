import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { DsrProbeRoutes, DSR_MARK_BASE, DSR_RULE_PREF } from './dsr-routes';

function fakeIp(rules: Array<{ table: string }> = []) {
  const calls: string[] = [];
  let failOn: RegExp | null = null;
  const run = (args: string[]): string => {
    const line = args.join(' ');
    calls.push(line);
    if (failOn?.test(line)) throw Object.assign(new Error('Command failed'), { stderr: 'Error: Nexthop has invalid gateway.\n' });
    if (line.startsWith('-j rule show')) return JSON.stringify(rules);
    return '';
  };
  return { run, calls, failOn: (re: RegExp | null) => { failOn = re; } };
}

describe('DsrProbeRoutes', () => {
  test('one mark, rule and route per {VIP, backend}; shared pairs are counted; release removes the last', () => {
    const ip = fakeIp();
    const routes = new DsrProbeRoutes(ip.run);
    const m1 = routes.acquire('198.18.100.1', '198.18.1.11');
    const m2 = routes.acquire('198.18.100.1', '198.18.1.12');
    const again = routes.acquire('198.18.100.1', '198.18.1.11');   // a second service on the same VIP
    assert.equal(m1, DSR_MARK_BASE + 1);
    assert.equal(m2, DSR_MARK_BASE + 2);
    assert.equal(again, m1);
    assert.deepEqual(ip.calls, [
      `route replace 198.18.100.1/32 via 198.18.1.11 table ${m1}`, `rule add pref ${DSR_RULE_PREF} fwmark ${m1} lookup ${m1}`,
      `route replace 198.18.100.1/32 via 198.18.1.12 table ${m2}`, `rule add pref ${DSR_RULE_PREF} fwmark ${m2} lookup ${m2}`,
    ]);
    ip.calls.length = 0;
    routes.release('198.18.100.1', '198.18.1.11');
    assert.deepEqual(ip.calls, [], 'still used once');
    routes.release('198.18.100.1', '198.18.1.11');
    assert.deepEqual(ip.calls, [`rule del pref ${DSR_RULE_PREF} fwmark ${m1} lookup ${m1}`, `route flush table ${m1}`]);
    assert.deepEqual(routes.installed(), { '198.18.100.1>198.18.1.12': m2 });
    // a freed mark is reused as late as possible
    assert.equal(routes.acquire('198.18.100.2', '198.18.1.11'), DSR_MARK_BASE + 3);
  });

  test('a route the kernel refuses is an error naming the pair, and leaves nothing behind', () => {
    const ip = fakeIp();
    const routes = new DsrProbeRoutes(ip.run);
    ip.failOn(/^route replace/);
    assert.throws(() => routes.acquire('198.18.100.1', '10.9.9.9'), /^Error: cannot route probes for 198\.18\.100\.1 via 10\.9\.9\.9: Error: Nexthop has invalid gateway\.$/);
    assert.deepEqual(routes.installed(), {});
    assert.ok(!ip.calls.some((c) => c.startsWith('rule add')));
  });

  test('reset removes what a crashed daemon left at its rule priority', () => {
    const ip = fakeIp([{ table: String(DSR_MARK_BASE + 7) }, { table: 'main' }]);
    new DsrProbeRoutes(ip.run).reset();
    assert.deepEqual(ip.calls, [
      `-j rule show pref ${DSR_RULE_PREF}`,
      `rule del pref ${DSR_RULE_PREF}`, `route flush table ${DSR_MARK_BASE + 7}`,
      `rule del pref ${DSR_RULE_PREF}`,
    ]);
  });
});
