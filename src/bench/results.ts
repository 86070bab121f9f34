/**
 * Where `xdplb bench` keeps its results: bench-results/<timestamp>.json, bench-results/latest.json
 * (what the daemon serves at GET /api/v1/bench/latest) and bench-results/report.md with its SVGs.
 * The directory is gitignored.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { repoRoot } from '../bpf/native';
import type { MachineDescription } from './machine';
import type { ForwardReport } from './forward';
import type { HttpReport } from './http';
import type { ControlReport } from './control';
import type { ProgBenchResult } from './prog';

/** One `xdplb bench all` run (or a single verb saved the same way). */
export interface BenchResults {
  version: 1;
  startedAt: string;
  finishedAt: string;
  command: string;
  machine: MachineDescription;
  prog: ProgBenchResult | null;
  forward: ForwardReport | null;
  http: HttpReport | null;
  control: ControlReport | null;
  failures: Array<{ part: string; error: string }>;
}

/** <repo>/bench-results */
export function resultsDir(): string {
  return path.join(repoRoot(), 'bench-results');
}

/** A file name safe timestamp: 2026-11-26T15-02-03Z */
export function timestampName(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/:/g, '-');
}

/**
 * Writes <dir>/<timestamp>.json and <dir>/latest.json (atomically: temp file + rename, so the
 * daemon never serves half a file). Returns the timestamped path.
 * @throws Error when the directory cannot be written.
 */
export function saveResults(results: BenchResults, dir: string = resultsDir()): string {
  fs.mkdirSync(dir, { recursive: true });
  const text = JSON.stringify(results, null, 2) + '\n';
  const file = path.join(dir, `${timestampName(new Date(results.startedAt))}.json`);
  fs.writeFileSync(file, text);
  const tmp = path.join(dir, `.latest.json.${process.pid}.tmp`);
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, path.join(dir, 'latest.json'));
  return file;
}
