/**
 * Smoke test of `xdplb bench prog`: a short run must measure every case on the path it is
 * meant for (the bench throws otherwise), print a table and JSON, and leave no namespace.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { runProgBench, formatProgBench, PROG_BENCH_NETNS } from '../src/bench/prog';

test('bench prog measures every case (IPv4 and IPv6) at 2 and 1000 backends and cleans up', () => {
  const r = runProgBench({ calls: 2000, runs: 2, loads: 2 });
  assert.equal(r.empty.action, 'pass');
  assert.equal(r.loads, 2);
  assert.equal(r.empty.ns.n, 4, 'the empty program: 2 runs x 2 loads');
  const names = ['non-VIP pass', 'NAT TCP', 'NAT TCP SYN', 'NAT UDP', 'reverse NAT', 'DSR', 'ICMP echo',
    'v6 NAT TCP', 'v6 NAT UDP', 'v6 reverse NAT', 'v6 DSR', 'v6 ICMPv6 echo'];
  for (const backends of [2, 1000]) {
    for (const name of names) {
      const c = r.cases.find((x) => x.name === name && x.backends === backends);
      assert.ok(c, `${name} at ${backends} backends`);
      assert.equal(c.ns.n, 4, `${name}: every run of every load pooled`);
      assert.ok(c.ns.min > 0 && c.ns.min <= c.ns.median && c.ns.median <= c.ns.max, `${name}: ${JSON.stringify(c.ns)}`);
      assert.equal(c.action, name === 'non-VIP pass' ? 'pass' : 'tx');
    }
  }
  assert.ok(r.targets.some((t) => t.name.startsWith('NAT TCP ns over empty')));
  // The IPv6 target: v6 NAT TCP over empty against IPv4 NAT TCP over empty, and the scale rows.
  const v6 = r.targets.find((t) => t.name.startsWith('v6 NAT TCP / NAT TCP'));
  assert.ok(v6 && v6.limit === 1.3, 'the IPv6 cost target is reported');
  const nat = r.cases.find((x) => x.name === 'NAT TCP' && x.backends === 2)!;
  const nat6 = r.cases.find((x) => x.name === 'v6 NAT TCP' && x.backends === 2)!;
  assert.equal(v6.value, nat6.overEmptyNs / nat.overEmptyNs);
  assert.ok(r.targets.some((t) => t.name === 'v6 NAT TCP: 1000 / 2 backends'));
  assert.match(formatProgBench(r), /NAT TCP\s+1000\s+tx/);
  assert.equal(existsSync(`/run/netns/${PROG_BENCH_NETNS}`), false, 'namespace removed');
});

test('bench prog refuses bad options before touching the kernel', () => {
  assert.throws(() => runProgBench({ calls: 0 }), /--calls must be a positive integer/);
  assert.throws(() => runProgBench({ runs: 1.5 }), /--runs must be a positive integer/);
  assert.throws(() => runProgBench({ loads: 0 }), /--loads must be a positive integer/);
  assert.throws(() => runProgBench({ cpu: 999 }), /--cpu 999 is not a CPU/);
});

test('`xdplb bench prog --json` runs through the CLI and prints the result as JSON', () => {
  // From dist/test the compiled CLI sits beside; from test/ (tsx) run the TypeScript entry.
  const compiled = path.join(__dirname, '..', 'src', 'cli.js');
  const args = existsSync(compiled) ? [compiled] : ['--import', 'tsx', path.join(__dirname, '..', 'src', 'cli.ts')];
  const out = execFileSync(process.execPath, [...args, 'bench', 'prog', '--json', '--calls', '1000', '--runs', '1', '--loads', '1'], {
    encoding: 'utf8', timeout: 120_000,
  });
  const r = JSON.parse(out) as { calls: number; runs: number; loads: number; cases: Array<{ name: string; backends: number }> };
  assert.equal(r.calls, 1000);
  assert.equal(r.runs, 1);
  assert.equal(r.loads, 1);
  assert.equal(r.cases.length, 24, '12 cases (7 IPv4, 5 IPv6) at 2 and 1000 backends');
  assert.equal(existsSync(`/run/netns/${PROG_BENCH_NETNS}`), false, 'namespace removed');
});
