/**
 * A bounded traffic generator for the lab: HTTP GETs or UDP datagrams at a steady rate, which
 * stops by itself after durationSec (and after at most rps * durationSec requests).
 *
 * generateTraffic() runs in the current network namespace; runTraffic() starts it inside the
 * lab's client namespace (`ip netns exec <prefix>-client node traffic.js --worker JSON`) and
 * resolves with its summary. Answers are counted per backend from the `X-Backend` header (HTTP)
 * or the "beN:" prefix of the echo (UDP), so a caller can see how the balancer spread them.
 */
import http from 'node:http';
import dgram from 'node:dgram';
import { spawn, type ChildProcess } from 'node:child_process';
import { isIPv4, isIPv6 } from 'node:net';
import { DEFAULT_LAB_PREFIX, validatePrefix } from './topology';
import { nodeScriptCommand, repoRoot } from './paths';

export const MAX_TRAFFIC_SECONDS = 3600;
export const MAX_TRAFFIC_RPS = 50_000;
export const MAX_IN_FLIGHT = 1024;

export interface TrafficOptions {
  /** 'http': GET target (a URL like http://198.18.100.1/ or http://[2001:2:0:100::1]/); 'udp': datagrams to
   * target host:port, IPv6 as [address]:port. */
  kind: 'http' | 'udp';
  target: string;
  durationSec: number;
  rps: number;
  /** Per-request timeout (default 2000 ms). */
  timeoutMs?: number;
  /** HTTP: reuse connections (one flow, one backend) instead of one connection per request. */
  keepAlive?: boolean;
  /** Most requests waiting for an answer at once; beyond it a tick is skipped and counted (default 256). */
  maxInFlight?: number;
  /** UDP payload (default "ping"). */
  payload?: string;
}

export interface TrafficSummary {
  kind: 'http' | 'udp';
  target: string;
  sent: number;
  ok: number;
  failed: number;
  /** Requests not sent because maxInFlight answers were pending. */
  skipped: number;
  byBackend: Record<string, number>;
  /** First few distinct error messages. */
  errors: string[];
  elapsedSec: number;
  latencyMs: { p50: number | null; p99: number | null; max: number | null };
}

/**
 * Checks options and fills defaults.
 * @throws Error naming the bad field (kind, target, durationSec, rps, timeoutMs, maxInFlight).
 */
export function normaliseTrafficOptions(options: TrafficOptions): Required<TrafficOptions> {
  const { kind, target, durationSec, rps } = options;
  if (kind !== 'http' && kind !== 'udp') throw new Error(`traffic kind ${JSON.stringify(kind)} must be "http" or "udp"`);
  if (kind === 'http') {
    let url: URL;
    try { url = new URL(target); } catch { throw new Error(`traffic target ${JSON.stringify(target)} must be an http:// URL`); }
    if (url.protocol !== 'http:') throw new Error(`traffic target ${JSON.stringify(target)} must be an http:// URL`);
  } else if (!parseUdpTarget(target)) {
    throw new Error(`traffic target ${JSON.stringify(target)} must be IPv4:port or [IPv6]:port for udp`);
  }
  if (!(durationSec > 0 && durationSec <= MAX_TRAFFIC_SECONDS)) throw new Error(`traffic durationSec ${durationSec} must be in (0, ${MAX_TRAFFIC_SECONDS}]`);
  if (!(rps > 0 && rps <= MAX_TRAFFIC_RPS)) throw new Error(`traffic rps ${rps} must be in (0, ${MAX_TRAFFIC_RPS}]`);
  const timeoutMs = options.timeoutMs ?? 2000;
  if (!(timeoutMs >= 10 && timeoutMs <= 60_000)) throw new Error(`traffic timeoutMs ${timeoutMs} must be in 10..60000`);
  const maxInFlight = options.maxInFlight ?? 256;
  if (!(Number.isInteger(maxInFlight) && maxInFlight >= 1 && maxInFlight <= MAX_IN_FLIGHT)) throw new Error(`traffic maxInFlight ${maxInFlight} must be in 1..${MAX_IN_FLIGHT}`);
  return { kind, target, durationSec, rps, timeoutMs, maxInFlight, keepAlive: options.keepAlive ?? false, payload: options.payload ?? 'ping' };
}

/** `198.18.100.2:5300` or `[2001:2:0:100::2]:5300` -> host, port and socket type; undefined when malformed. */
export function parseUdpTarget(target: string): { host: string; port: number; type: 'udp4' | 'udp6' } | undefined {
  const m = /^(?:(\d{1,3}(?:\.\d{1,3}){3})|\[([0-9a-fA-F:.]+)\]):(\d{1,5})$/.exec(String(target));
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  if (m[1] !== undefined) return isIPv4(m[1]) ? { host: m[1], port, type: 'udp4' } : undefined;
  return isIPv6(m[2]) ? { host: m[2], port, type: 'udp6' } : undefined;
}

function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** One request; resolves the backend name that answered. */
type SendOne = () => Promise<string>;

function httpSender(o: Required<TrafficOptions>): { send: SendOne; close: () => void } {
  const agent = new http.Agent({ keepAlive: o.keepAlive, maxSockets: o.maxInFlight });
  const send: SendOne = () => new Promise((resolve, reject) => {
    const req = http.get(o.target, { agent, timeout: o.timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { if (body.length < 256) body += d; });
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode}`));
        resolve(String(res.headers['x-backend'] ?? body.trim().split('\n')[0] ?? 'unknown'));
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
  return { send, close: () => agent.destroy() };
}

function udpSender(o: Required<TrafficOptions>): { send: SendOne; close: () => void } {
  const { host, port, type } = parseUdpTarget(o.target)!;
  // One socket (so one source port, one flow) per datagram: the balancer sees many flows.
  const send: SendOne = () => new Promise((resolve, reject) => {
    const socket = dgram.createSocket(type);
    const timer = setTimeout(() => { socket.close(); reject(new Error('timeout')); }, o.timeoutMs);
    socket.on('error', (err) => { clearTimeout(timer); socket.close(); reject(err); });
    socket.on('message', (msg) => {
      clearTimeout(timer);
      socket.close();
      const text = msg.toString('utf8');
      const colon = text.indexOf(':');
      resolve(colon > 0 ? text.slice(0, colon) : 'unknown');
    });
    socket.send(o.payload, port, host);
  });
  return { send, close: () => undefined };
}

/**
 * Generates traffic from this process's namespace until durationSec has passed (or `signal`
 * aborts), then waits for the last answers (at most timeoutMs) and resolves a summary.
 * @throws Error (synchronously, via the returned promise) on bad options.
 */
export async function generateTraffic(options: TrafficOptions, signal?: AbortSignal): Promise<TrafficSummary> {
  const o = normaliseTrafficOptions(options);
  const sender = o.kind === 'http' ? httpSender(o) : udpSender(o);
  const summary: TrafficSummary = {
    kind: o.kind, target: o.target, sent: 0, ok: 0, failed: 0, skipped: 0, byBackend: {}, errors: [], elapsedSec: 0,
    latencyMs: { p50: null, p99: null, max: null },
  };
  const latencies: number[] = [];
  const maxRequests = Math.ceil(o.rps * o.durationSec);
  const start = Date.now();
  let inFlight = 0;
  const pending = new Set<Promise<void>>();

  const fire = () => {
    summary.sent++;
    inFlight++;
    const t0 = performance.now();
    const p = sender.send().then((backend) => {
      summary.ok++;
      summary.byBackend[backend] = (summary.byBackend[backend] ?? 0) + 1;
      if (latencies.length < 100_000) latencies.push(performance.now() - t0);
    }, (err: Error) => {
      summary.failed++;
      if (summary.errors.length < 5 && !summary.errors.includes(err.message)) summary.errors.push(err.message);
    }).finally(() => { inFlight--; pending.delete(p); });
    pending.add(p);
  };

  await new Promise<void>((resolve) => {
    // A 10 ms tick sends what the rate owes so far: steady on average, bounded in total.
    const timer = setInterval(() => {
      const elapsed = (Date.now() - start) / 1000;
      const done = elapsed >= o.durationSec || signal?.aborted === true;
      // The first request leaves at t=0, so a full run sends exactly rps * durationSec.
      const owed = Math.min(maxRequests, Math.floor(elapsed * o.rps) + 1) - summary.sent - summary.skipped;
      if (!done) {
        for (let i = 0; i < owed; i++) {
          if (inFlight >= o.maxInFlight) summary.skipped++;
          else fire();
        }
      }
      if (done || summary.sent + summary.skipped >= maxRequests) {
        clearInterval(timer);
        resolve();
      }
    }, 10);
  });
  await Promise.allSettled([...pending]);
  sender.close();
  summary.elapsedSec = (Date.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  const round = (v: number | null) => (v === null ? null : Math.round(v * 100) / 100);
  summary.latencyMs = { p50: round(percentile(latencies, 50)), p99: round(percentile(latencies, 99)), max: round(latencies.at(-1) ?? null) };
  return summary;
}

/** A traffic run started in the lab's client namespace. */
export interface TrafficRun {
  child: ChildProcess;
  /** Resolves with the summary when the run ends (by itself or after stop()). */
  done: Promise<TrafficSummary>;
  /** Ends the run early (SIGTERM to the child, which still reports what it did). */
  stop(): void;
}

/**
 * Starts generateTraffic() inside `<prefix>-client` as a child process.
 * @throws Error on bad options; `done` rejects when the child fails or prints no summary.
 */
export function startTraffic(options: TrafficOptions & { prefix?: string }): TrafficRun {
  const prefix = validatePrefix(options.prefix ?? DEFAULT_LAB_PREFIX);
  const { prefix: _omit, ...rest } = options;
  void _omit;
  const normalised = normaliseTrafficOptions(rest);
  const child = spawn('ip', ['netns', 'exec', `${prefix}-client`, ...nodeScriptCommand('traffic'), '--worker', JSON.stringify(normalised)], {
    cwd: repoRoot(), stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  const done = new Promise<TrafficSummary>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      const last = out.trim().split('\n').at(-1) ?? '';
      try {
        resolve(JSON.parse(last) as TrafficSummary);
      } catch {
        reject(new Error(`traffic run in ${prefix}-client failed (exit ${code}): ${err.trim().slice(-400) || 'no summary'}`));
      }
    });
  });
  return { child, done, stop: () => { if (child.exitCode === null) child.kill('SIGTERM'); } };
}

/**
 * Runs bounded traffic from the lab's client namespace and resolves its summary.
 * @throws Error on bad options; rejects when the run fails.
 */
export function runTraffic(options: TrafficOptions & { prefix?: string }): Promise<TrafficSummary> {
  return startTraffic(options).done;
}

if (require.main === module) {
  const at = process.argv.indexOf('--worker');
  if (at < 0) {
    process.stderr.write('traffic: usage: traffic.js --worker JSON-options\n');
    process.exit(2);
  }
  const controller = new AbortController();
  process.on('SIGTERM', () => controller.abort());
  process.on('SIGINT', () => controller.abort());
  generateTraffic(JSON.parse(process.argv[at + 1]) as TrafficOptions, controller.signal).then((summary) => {
    process.stdout.write(JSON.stringify(summary) + '\n');
  }, (err: Error) => {
    process.stderr.write(`traffic: ${err.message}\n`);
    process.exit(1);
  });
}
