/**
 * `xdplb bench all`: prog, forward, http and control in one go, with progress on stderr; saves
 * the JSON (bench-results/<timestamp>.json + latest.json) and writes bench-results/report.md.
 */
import { describeMachine } from './machine';
import { runForwardBench, type ForwardOptions } from './forward';
import { runHttpBench, type HttpOptions } from './http';
import { runControlBench, type ControlOptions } from './control';
import { resultsDir, saveResults, type BenchResults } from './results';
import { writeReport } from './report';
import { runProgBench, type ProgBenchOptions } from './prog';

export interface AllOptions {
  prog?: ProgBenchOptions;
  forward?: ForwardOptions;
  http?: HttpOptions;
  control?: ControlOptions;
  /** Parts to skip, e.g. ['http']. */
  skip?: string[];
  /** Where to write (default <repo>/bench-results). */
  dir?: string;
  command?: string;
  /** Progress lines (default: stderr). */
  onProgress?: (message: string) => void;
}

export interface AllOutcome { results: BenchResults; jsonPath: string; reportPath: string }

/** A progress printer: "[elapsed] [part i/n] message" on stderr, one line each. */
export function stderrProgress(): (message: string) => void {
  const started = Date.now();
  return (message: string) => {
    const s = ((Date.now() - started) / 1000).toFixed(0).padStart(4);
    process.stderr.write(`[${s} s] ${message}\n`);
  };
}

/**
 * Runs every benchmark; a part that throws is recorded in `failures` and the others still run.
 * @throws Error only when the results cannot be written.
 */
export async function runAllBenchmarks(options: AllOptions = {}): Promise<AllOutcome> {
  const progress = options.onProgress ?? stderrProgress();
  const skip = new Set(options.skip ?? []);
  const results: BenchResults = {
    version: 1, startedAt: new Date().toISOString(), finishedAt: '', command: options.command ?? 'xdplb bench all',
    machine: describeMachine(), prog: null, forward: null, http: null, control: null, failures: [],
  };
  const parts = ['prog', 'forward', 'http', 'control'].filter((p) => !skip.has(p));
  const step = (part: string) => (m: string) => progress(`[${parts.indexOf(part) + 1}/${parts.length}] ${m}`);
  const attempt = async (part: string, fn: () => Promise<void>) => {
    if (skip.has(part)) return;
    step(part)(`${part}: start`);
    try { await fn(); } catch (err) { results.failures.push({ part, error: (err as Error).message }); }
    step(part)(`${part}: done`);
  };
  await attempt('prog', async () => { results.prog = runProgBench(options.prog ?? {}); });
  await attempt('forward', async () => { results.forward = await runForwardBench({ ...options.forward, onProgress: step('forward') }); });
  await attempt('http', async () => { results.http = await runHttpBench({ ...options.http, onProgress: step('http') }); });
  await attempt('control', async () => { results.control = await runControlBench({ ...options.control, onProgress: step('control') }); });
  results.finishedAt = new Date().toISOString();
  const dir = options.dir ?? resultsDir();
  const jsonPath = saveResults(results, dir);
  const reportPath = writeReport(results, dir);
  progress(`saved ${jsonPath} and ${reportPath}`);
  return { results, jsonPath, reportPath };
}
