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
    if (line.startsWith('-j rule show') || line.startsWith('-6 -j rule show')) return JSON.stringify(rules);
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
      // and the IPv6 rules (IPv6 DSR VIPs)
      `-6 -j rule show pref ${DSR_RULE_PREF}`,
      `-6 rule del pref ${DSR_RULE_PREF}`, `-6 route flush table ${DSR_MARK_BASE + 7}`,
      `-6 rule del pref ${DSR_RULE_PREF}`,
    ]);
  });

  test('ARP round: a backend whose MAC answered ARP for the VIP is named; one on-link route per VIP and interface', async () => {
    const calls: string[] = [];
    // The VIP here is loopback: the round's marked connect must not leave the host (no rule exists for it).
    const vip = '127.0.0.1';
    const run = (args: string[]): string => {
      const line = args.join(' ');
      calls.push(line);
      if (line.startsWith('-j route get')) return JSON.stringify([{ dst: args[3], dev: 'lb1' }]);
      if (line === '-j neigh show dev lb1') {
        return JSON.stringify([{ dst: '198.18.1.11', lladdr: 'aa:aa:aa:aa:aa:01' }, { dst: '198.18.1.12', lladdr: 'aa:aa:aa:aa:aa:02' },
          { dst: vip, lladdr: 'aa:aa:aa:aa:aa:02', state: ['REACHABLE'] }]);
      }
      return '';
    };
    const routes = new DsrProbeRoutes(run);
    routes.acquire(vip, '198.18.1.11');
    routes.acquire(vip, '198.18.1.12');
    const found = await routes.arpAnswerers(vip, 1, ['198.18.1.11', '198.18.1.12'], 100, 0);
    assert.deepEqual([...found], [['198.18.1.12', `answers ARP for the VIP ${vip} (aa:aa:aa:aa:aa:02 on lb1)`]]);
    const arpMark = DSR_MARK_BASE + 3;
    assert.ok(calls.includes(`route replace ${vip}/32 dev lb1 scope link table ${arpMark}`), calls.join('\n'));
    assert.ok(calls.includes(`rule add pref ${DSR_RULE_PREF} fwmark ${arpMark} lookup ${arpMark}`));
    assert.ok(calls.includes(`neigh flush to ${vip} dev lb1`));
    // a second round within reuseMs is the same round
    const n = calls.length;
    assert.equal(await routes.arpAnswerers(vip, 1, ['198.18.1.11'], 100, 60_000), found);
    assert.equal(calls.length, n);
    // the on-link route goes with the VIP's last pair
    routes.release(vip, '198.18.1.11');
    assert.ok(!calls.slice(n).includes(`route flush table ${arpMark}`));
    routes.release(vip, '198.18.1.12');
    assert.ok(calls.slice(n).includes(`route flush table ${arpMark}`));
  });

  test('IPv6 VIPs: ip -6, a /128 route through the backend, and the rule of the same family', () => {
    const ip = fakeIp();
    const routes = new DsrProbeRoutes(ip.run);
    const m = routes.acquire('2001:2::100', '2001:2::1:11');
    assert.deepEqual(ip.calls, [
      `-6 route replace 2001:2::100/128 via 2001:2::1:11 table ${m}`, `-6 rule add pref ${DSR_RULE_PREF} fwmark ${m} lookup ${m}`,
    ]);
    ip.calls.length = 0;
    routes.release('2001:2::100', '2001:2::1:11');
    assert.deepEqual(ip.calls, [`-6 rule del pref ${DSR_RULE_PREF} fwmark ${m} lookup ${m}`, `-6 route flush table ${m}`]);
  });

  test('IPv6 neighbour round: the backend whose MAC answered for the VIP is named', async () => {
    const calls: string[] = [];
    const vip = '::1';   // loopback: the round's marked connect stays on the host
    const run = (args: string[]): string => {
      const line = args.join(' ');
      calls.push(line);
      if (line.startsWith('-j route get')) return JSON.stringify([{ dst: args[3], dev: 'lb1' }]);
      if (line === '-6 -j neigh show dev lb1') {
        return JSON.stringify([{ dst: '2001:2::1:11', lladdr: 'aa:aa:aa:aa:aa:01' }, { dst: vip, lladdr: 'aa:aa:aa:aa:aa:01' }]);
      }
      return '';
    };
    const routes = new DsrProbeRoutes(run);
    routes.acquire(vip, '2001:2::1:11');
    const found = await routes.arpAnswerers(vip, 1, ['2001:2::1:11'], 100, 0);
    assert.deepEqual([...found].map(([b]) => b), ['2001:2::1:11']);
    assert.ok(calls.includes(`-6 route replace ::1/128 dev lb1 scope link table ${DSR_MARK_BASE + 2}`), calls.join('\n'));
    assert.ok(calls.includes('-6 neigh flush to ::1 dev lb1'));
  });
});
