/**
 * Runs wrk (bounded in seconds) and reads its result through a Lua `done` hook, which gives
 * exact counts and any latency percentile (wrk --latency prints only 50/75/90/99).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from './exec';

export interface WrkOptions {
  netns: string;
  url: string;
  seconds: number;
  connections: number;
  threads: number;
  /** true: a new TCP connection per request (`Connection: close`). */
  closeEach: boolean;
}

export interface WrkResult {
  requests: number;
  seconds: number;
  requestsPerSecond: number;
  /** Latencies in microseconds. */
  latencyUs: { p50: number; p99: number; p999: number; max: number };
  /** Socket errors (connect/read/write/timeout) and non-2xx/3xx answers. */
  errors: number;
  non2xx: number;
}

const DONE_SCRIPT = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("XLBB {\\"requests\\":%d,\\"durationUs\\":%d,\\"p50\\":%d,\\"p99\\":%d,\\"p999\\":%d,\\"max\\":%d,\\"errors\\":%d,\\"non2xx\\":%d}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    latency.max, e.connect + e.read + e.write + e.timeout, e.status))
end
`;

/**
 * Parses the line the Lua hook prints.
 * @throws Error when wrk's output holds no result line.
 */
export function parseWrkOutput(output: string): WrkResult {
  const line = output.split('\n').find((l) => l.startsWith('XLBB '));
  if (!line) throw new Error(`wrk: no result in its output: ${output.slice(0, 400)}`);
  const r = JSON.parse(line.slice(5)) as Record<string, number>;
  const seconds = r.durationUs / 1e6;
  return {
    requests: r.requests, seconds, requestsPerSecond: seconds > 0 ? r.requests / seconds : 0,
    latencyUs: { p50: r.p50, p99: r.p99, p999: r.p999, max: r.max },
    errors: r.errors, non2xx: r.non2xx,
  };
}

/**
 * Runs wrk once inside a namespace.
 * @throws Error when wrk fails, times out (seconds + 20 s) or prints no result.
 */
export function runWrk(options: WrkOptions): WrkResult {
  if (!(options.seconds > 0 && options.seconds <= 600)) throw new Error(`wrk: seconds=${options.seconds} must be in (0, 600]`);
  const dir = mkdtempSync(join(tmpdir(), 'xlbb-wrk-'));
  try {
    const script = join(dir, 'done.lua');
    writeFileSync(script, DONE_SCRIPT);
    const args = ['-t', String(options.threads), '-c', String(options.connections), '-d', `${options.seconds}s`,
      '--timeout', '2s', '-s', script];
    if (options.closeEach) args.push('-H', 'Connection: close');
    args.push(options.url);
    const out = run('wrk', args, { netns: options.netns, timeoutMs: (options.seconds + 20) * 1000 });
    return parseWrkOutput(out);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
