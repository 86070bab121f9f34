/**
 * The forward, http, control and all verbs of `xdplb bench` (src/bench/cli.ts registers them
 * on the shared `bench` command).
 */
import type { Command } from 'commander';
import { runForwardBench, type ForwardReport } from './forward';
import { runHttpBench } from './http';
import { rmSync } from 'node:fs';
import { runControlBench, CONTROL_PIN_DIR, OBSERVE_PIN_DIR, CONTROL_PARTS, type ControlPart } from './control';
import { killChildrenNow } from './exec';
import { releaseBenchLockIfMine } from './lock';
import { tearDownForwardTopology } from './forward-topology';
import { tearDownHttpTopology } from './http-topology';
import { runAllBenchmarks, stderrProgress } from './all';
import { formatControl, formatForward, formatHttp } from './format';

function positiveInt(what: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${what} must be a positive integer, got "${value}"`);
    return n;
  };
}

function positiveNumber(what: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!(Number.isFinite(n) && n > 0)) throw new Error(`${what} must be a positive number, got "${value}"`);
    return n;
  };
}

function list(value: string): string[] {
  return value.split(',').map((s) => s.trim()).filter(Boolean);
}

/**
 * Checks for root and arranges that Ctrl-C / SIGTERM still cleans up (finally blocks do not run
 * when a signal ends the process): children killed by pid, the benchmarks' namespaces (with
 * their veths, programs and nftables tables) and pins removed by name.
 * @throws Error when not root.
 */
function prepareRun(): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new Error('xdplb bench needs root (network namespaces, XDP, nftables)');
  }
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`\n${signal}: cleaning up the benchmark namespaces\n`);
    killChildrenNow();
    try { tearDownForwardTopology(); } catch { /* best effort */ }
    try { tearDownHttpTopology(); } catch { /* best effort */ }
    for (const dir of [CONTROL_PIN_DIR, OBSERVE_PIN_DIR]) rmSync(dir, { recursive: true, force: true });
    releaseBenchLockIfMine();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
}

function print(json: boolean | undefined, value: unknown, text: string): void {
  process.stdout.write(json ? JSON.stringify(value, null, 2) + '\n' : text + '\n');
}

/** `xdplb bench forward`. */
export function registerForwardCommand(bench: Command): void {
  bench.command('forward')
    .description('Mpps through the lb host: xdplb nat/dsr (and nat with XDP_TX, steady and during a drain) vs the XDP forwarders (the reading XDP_TX one is the ceiling), kernel forwarding, nftables and iptables DNAT')
    .option('--json', 'print the result as JSON')
    .option('--reps <n>', 'repetitions per case (round-robin)', positiveInt('--reps'), 5)
    .option('--packets <n>', 'packets per repetition', positiveInt('--packets'), 2_000_000)
    .option('--seconds <s>', 'upper bound per repetition, seconds', positiveNumber('--seconds'), 10)
    .option('--flows <n>', 'distinct flows', positiveInt('--flows'), 16384)
    .option('--only <cases>', 'comma-separated cases: xdplb-nat,xdplb-dsr,xdplb-nat-tx,xdplb-nat-tx-drain,xdplb-nat-tx-small,xdp-fwd,xdp-fwd-read,xdp-fwd-read-tx,kernel,nftables,iptables,xdplb-nat6,xdplb-dsr6,kernel6,nftables6', list)
    .action(async (o: { json?: boolean; reps: number; packets: number; seconds: number; flows: number; only?: string[] }) => {
      prepareRun();
      const r: ForwardReport = await runForwardBench({ ...o, onProgress: stderrProgress() });
      print(o.json, r, formatForward(r));
      if (r.failures.length) process.exitCode = 1;
    });
}

/** `xdplb bench http`. */
export function registerHttpCommand(bench: Command): void {
  bench.command('http')
    .description('wrk through the VIP to 3 backends: xdplb nat/dsr, nftables DNAT, HAProxy, direct; keep-alive and new connections')
    .option('--json', 'print the result as JSON')
    .option('--reps <n>', 'repetitions per case (round-robin)', positiveInt('--reps'), 3)
    .option('--seconds <s>', 'duration per case, connection mode and repetition', positiveNumber('--seconds'), 5)
    .option('--connections <n>', 'wrk connections', positiveInt('--connections'), 32)
    .option('--threads <n>', 'wrk threads', positiveInt('--threads'), 2)
    .option('--only <cases>', 'comma-separated cases: xdplb-nat,xdplb-dsr,nftables,haproxy,direct,xdplb-nat6,xdplb-dsr6,nftables6,direct6', list)
    .action(async (o: { json?: boolean; reps: number; seconds: number; connections: number; threads: number; only?: string[] }) => {
      prepareRun();
      const r = await runHttpBench({ ...o, onProgress: stderrProgress() });
      print(o.json, r, formatHttp(r));
      if (r.failures.length) process.exitCode = 1;
    });
}

/** `xdplb bench control`. */
export function registerControlCommand(bench: Command): void {
  bench.command('control')
    .description('API change -> kernel map latency (single and bulk changes, with where the time goes), Maglev build time (the engine in use and the TypeScript loop beside it), health check detection and CPU, cost of live observability')
    .option('--json', 'print the result as JSON')
    .option('--changes <n>', 'API changes to time', positiveInt('--changes'), 1000)
    .option('--reps <n>', 'observability repetitions (off/on interleaved)', positiveInt('--reps'), 5)
    .option('--packets <n>', 'packets per observability repetition', positiveInt('--packets'), 10_000_000)
    .option('--parts <parts>', `comma-separated parts to run: ${CONTROL_PARTS.join(',')} (default all)`, list)
    .action(async (o: { json?: boolean; changes: number; reps: number; packets: number; parts?: string[] }) => {
      prepareRun();
      const r = await runControlBench({ changes: o.changes, observeReps: o.reps, packets: o.packets, parts: o.parts as ControlPart[] | undefined, onProgress: stderrProgress() });
      print(o.json, r, formatControl(r));
      if (r.failures.length) process.exitCode = 1;
    });
}

/** `xdplb bench all`. */
export function registerAllCommand(bench: Command): void {
  bench.command('all')
    .description('prog, forward, http and control; saves bench-results/<timestamp>.json, latest.json and report.md')
    .option('--json', 'print the whole result as JSON')
    .option('--reps <n>', 'forward and observability repetitions', positiveInt('--reps'), 5)
    .option('--packets <n>', 'packets per forwarding repetition', positiveInt('--packets'), 2_000_000)
    .option('--seconds <s>', 'HTTP duration per case, connection mode and repetition', positiveNumber('--seconds'), 5)
    .option('--http-reps <n>', 'HTTP repetitions per case', positiveInt('--http-reps'), 3)
    .option('--changes <n>', 'API changes to time', positiveInt('--changes'), 1000)
    .option('--skip <parts>', 'comma-separated parts to skip: prog,forward,http,control', list)
    .action(async (o: { json?: boolean; reps: number; httpReps: number; packets: number; seconds: number; changes: number; skip?: string[] }) => {
      prepareRun();
      const { results, jsonPath, reportPath } = await runAllBenchmarks({
        forward: { reps: o.reps, packets: o.packets }, http: { seconds: o.seconds, reps: o.httpReps },
        control: { changes: o.changes, observeReps: o.reps }, skip: o.skip,
        command: `xdplb bench all ${process.argv.slice(4).join(' ')}`.trim(),
      });
      const failed = results.failures.length > 0 || [results.forward, results.http, results.control].some((p) => (p?.failures.length ?? 0) > 0);
      if (failed) process.exitCode = 1;
      if (o.json) { print(true, results, ''); return; }
      const parts = [
        results.forward ? formatForward(results.forward) : '',
        results.http ? formatHttp(results.http) : '',
        results.control ? formatControl(results.control) : '',
        ...results.failures.map((f) => `FAILED ${f.part}: ${f.error}`),
        `results: ${jsonPath}`, `report: ${reportPath}`,
      ];
      print(false, null, parts.filter(Boolean).join('\n\n'));
    });
}
