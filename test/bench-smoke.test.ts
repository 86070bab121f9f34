/**
 * Smoke runs of `xdplb bench forward|http|control` and of the report writer: tiny packet counts
 * and seconds; asserts the JSON shape, that packets arrived and requests succeeded, and that
 * nothing is left behind. Never a timing assertion: the figures depend on the machine.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runForwardBench, forwardCases } from '../src/bench/forward';
import { runHttpBench, httpCases } from '../src/bench/http';
import { runControlBench, CONTROL_PIN_DIR, OBSERVE_PIN_DIR } from '../src/bench/control';
import { listNamespaces } from '../src/bench/netns';
import { FORWARD_NAMESPACES } from '../src/bench/forward-topology';
import { HTTP_NAMESPACES } from '../src/bench/http-topology';
import { saveResults, type BenchResults } from '../src/bench/results';
import { writeReport } from '../src/bench/report';
import { describeMachine } from '../src/bench/machine';
import type { ForwardReport } from '../src/bench/forward';
import type { HttpReport } from '../src/bench/http';
import type { ControlReport } from '../src/bench/control';

function missingTools(): string[] {
  const missing: string[] = [];
  for (const tool of ['ip', 'nft', 'iptables', 'ethtool', 'taskset', 'chrt', 'wrk', 'haproxy']) {
    try { execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }); } catch { missing.push(tool); }
  }
  return missing;
}

const notRoot = typeof process.getuid === 'function' && process.getuid() !== 0;
const missing = missingTools();
const skipReason = notRoot ? 'needs root' : missing.length ? `missing tools: ${missing.join(', ')}` : false;
if (skipReason && process.env.CI === 'true') {
  test('bench smoke prerequisites', () => assert.fail(`CI=true but the bench smoke test would skip: ${skipReason}`));
}

function assertNothingLeft(): void {
  // Only this suite's namespaces: `bench prog` (xlbb-prog) may be running beside it.
  const mine = new Set<string>([...FORWARD_NAMESPACES, ...HTTP_NAMESPACES]);
  const left = listNamespaces().filter((ns) => mine.has(ns));
  assert.deepEqual(left, [], 'every namespace of the benchmarks removed');
  assert.equal(existsSync(CONTROL_PIN_DIR), false, `${CONTROL_PIN_DIR} removed`);
  assert.equal(existsSync(OBSERVE_PIN_DIR), false, `${OBSERVE_PIN_DIR} removed`);
}

let forward: ForwardReport | null = null;
let http: HttpReport | null = null;
let control: ControlReport | null = null;

describe('bench smoke', { skip: skipReason }, () => {
  test('forward: every case delivers packets at the sink, round-robin, and cleans up', async () => {
    forward = await runForwardBench({ reps: 2, packets: 20_000, seconds: 5, flows: 1024 });
    assert.deepEqual(forward.failures, [], JSON.stringify(forward.failures));
    assert.deepEqual(forward.results.map((r) => r.name), forwardCases().map((c) => c.name));
    for (const r of forward.results) {
      assert.equal(r.reps.length, 2, `${r.name}: 2 repetitions`);
      for (const rep of r.reps) {
        assert.equal(rep.sent, 20_000, `${r.name}: the packet bound is honoured`);
        assert.ok(rep.delivered > 0 && rep.delivered <= rep.sent, `${r.name}: ${rep.delivered} of ${rep.sent} delivered`);
        assert.ok(rep.mpps > 0 && rep.windowNs > 0, `${r.name}: a rate over a window`);
        assert.ok(rep.lbCpuNsPerPacket !== null && rep.lbCpuNsPerPacket > 0, `${r.name}: the lb's NAPI thread ran`);
      }
      assert.ok(r.mpps && r.mpps.min <= r.mpps.median && r.mpps.median <= r.mpps.max);
      const xdp = r.name.startsWith('xdplb') || r.name.startsWith('xdp-fwd');
      assert.equal(r.xdpRunNsPerPacket !== null, xdp, `${r.name}: XDP run time only for XDP cases`);
    }
    assert.equal(forward.targets.length, 7); // 3 x 2, and xdplb-nat-tx / xdp-fwd-read-tx (issue 14)
    for (const t of forward.targets) assert.ok(t.ratio !== null && t.ratio > 0, t.description);
    assertNothingLeft();
  });

  test('http: every load balancer answers every request, keep-alive and new connections', async () => {
    const report = await runHttpBench({ reps: 1, seconds: 1, connections: 4, threads: 1 });
    http = report;
    assert.deepEqual(report.failures, [], JSON.stringify(report.failures));
    const names = httpCases().map((c) => c.name);
    for (const name of names) {
      for (const connection of ['keepalive', 'close']) {
        const r = report.results.find((x) => x.name === name && x.connection === connection);
        assert.ok(r, `${name} ${connection} measured`);
        assert.ok(r.requests > 0, `${name} ${connection}: requests succeeded`);
        assert.equal(r.non2xx, 0, `${name} ${connection}: every answer a 200`);
        assert.ok(r.latencyUs.p50 > 0 && r.latencyUs.p50 <= r.latencyUs.p99 && r.latencyUs.p99 <= r.latencyUs.p999);
      }
    }
    assert.equal(report.targets.length, 12); // (direct, haproxy, and IPv6 direct6) x {nat, dsr} x {keepalive, close}
    assertNothingLeft();
  });

  test('control: API changes reach the kernel, Maglev builds, observability on and off both forward', async () => {
    control = await runControlBench({ changes: 6, maglevReps: 1, observeReps: 1, packets: 20_000, seconds: 5, healthFlips: 4, cpuSeconds: 2 });
    assert.deepEqual(control.failures, [], JSON.stringify(control.failures));
    assert.ok(control.apiToKernel, 'API part ran');
    assert.equal(control.apiToKernel.changes, 6);
    assert.ok(control.apiToKernel.p50Ms > 0 && control.apiToKernel.p50Ms <= control.apiToKernel.p99Ms);
    // The engine the daemon uses (the addon is built here), the TypeScript loop beside it, the worker's large table.
    assert.deepEqual(control.maglev.map((m) => [m.backends, m.tableSize, m.engine]),
      [[10, 65537, 'native'], [100, 65537, 'native'], [1000, 65537, 'native'], [10, 65537, 'js'], [1000, 65537, 'js'], [1000, 1048573, 'native']]);
    assert.ok(control.apiToKernel.breakdown.some((b) => b.part === 'maps' && b.p50Ms > 0), 'the daemon\'s steps are in the breakdown');
    const o = control.observability;
    assert.ok(o && o.off && o.on, 'both observability modes measured');
    assert.ok(o.off.mpps.median > 0 && o.on.mpps.median > 0);
    assert.ok(o.on.statsReads >= 1, 'the observer read the counters');
    assert.equal(control.targets.length, 10);
    assert.ok(control.health && control.health.flips === 4 && control.health.cpu && control.health.cpu.probes > 0, 'health detection and CPU ran');
    assert.ok(control.apiToKernel.bulk && control.apiToKernel.bulk.changes >= 1, 'a bulk change reached the kernel');
    assert.equal(control.apiToKernel.bulk.each.length, control.apiToKernel.bulk.changes, 'each bulk change is reported');
    assert.ok(control.apiToKernel.bulk.each.every((c) => c.ms > 0 && c.slowestStep !== ''), JSON.stringify(control.apiToKernel.bulk.each));
    assertNothingLeft();
  });

  test('results and report: JSON saved (latest.json too), report.md with SVG charts', () => {
    assert.ok(forward && http && control, 'the runs above produced reports');
    const dir = mkdtempSync(path.join(tmpdir(), 'xlbb-results-'));
    try {
      const results: BenchResults = {
        version: 1, startedAt: new Date().toISOString(), finishedAt: new Date().toISOString(), command: 'smoke',
        machine: describeMachine(), prog: null, forward, http, control, failures: [],
      };
      const file = saveResults(results, dir);
      assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), JSON.parse(readFileSync(path.join(dir, 'latest.json'), 'utf8')));
      const report = readFileSync(writeReport(results, dir), 'utf8');
      for (const svg of ['forward-mpps.svg', 'forward-cpu.svg', 'http-rps-keepalive.svg', 'http-rps-close.svg', 'maglev-build.svg']) {
        assert.ok(report.includes(`](${svg})`), `report links ${svg}`);
        assert.match(readFileSync(path.join(dir, svg), 'utf8'), /^<svg[^>]*>[\s\S]*<rect[\s\S]*<\/svg>\n$/);
      }
      assert.match(report, /xdplb nat/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
