/**
 * Runs inside the cluster lab's client namespace: holds `longConns` keep-alive HTTP connections
 * to the VIP (each asks every `intervalMs`) and opens `newConnRps` fresh connections a second,
 * until SIGTERM or `maxSec`; then prints one JSON report. Per long connection: which backends
 * answered (must stay one), errors, how many sockets it needed (a reset forces a second), and
 * its worst request latency with when it started (the stall a failover caused). Times: epoch ms.
 */
import http from 'node:http';
import type { Socket } from 'node:net';

interface Options { host: string; port: number; longConns: number; intervalMs: number; newConnRps: number; maxSec: number }
export interface LongReport {
  backends: string[]; ok: number; errors: Array<{ at: number; message: string }>; sockets: number; maxLatencyMs: number; maxLatencyAt: number;
  /** Requests that took more than 100 ms: when they started and how long they took. */
  slow: Array<{ at: number; ms: number }>;
}
export interface FreshRecord { at: number; backend: string | null; port?: number; error?: string }
export interface FlowReport { startedAt: number; endedAt: number; long: LongReport[]; fresh: FreshRecord[] }

const REQUEST_TIMEOUT_MS = 10_000;

function get(o: Options, agent: http.Agent | false, onSocket?: (s: Socket) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: o.host, port: o.port, path: '/', agent, timeout: REQUEST_TIMEOUT_MS,
      headers: agent === false ? { Connection: 'close' } : {} }, (res) => {
      res.resume();
      res.on('end', () => resolve(String(res.headers['x-backend'] ?? 'unknown')));
      res.on('error', reject);
    });
    req.on('socket', (s) => onSocket?.(s));
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

async function main(): Promise<void> {
  const o = JSON.parse(process.argv[2]) as Options;
  let running = true;
  process.once('SIGTERM', () => { running = false; });
  const startedAt = Date.now();
  const hardEnd = startedAt + Math.min(o.maxSec, 180) * 1000;
  const live = () => running && Date.now() < hardEnd;
  const long = async (): Promise<LongReport> => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const seen = new Set<Socket>();
    const r: LongReport = { backends: [], ok: 0, errors: [], sockets: 0, maxLatencyMs: 0, maxLatencyAt: 0, slow: [] };
    while (live()) {
      const t0 = Date.now();
      try {
        const backend = await get(o, agent, (s) => { seen.add(s); r.sockets = seen.size; });
        r.ok++;
        if (!r.backends.includes(backend)) r.backends.push(backend);
      } catch (err) {
        r.errors.push({ at: Date.now(), message: (err as Error).message });
        if (r.errors.length > 5) break;
      }
      const took = Date.now() - t0;
      if (took > r.maxLatencyMs) { r.maxLatencyMs = took; r.maxLatencyAt = t0; }
      if (took > 100 && r.slow.length < 100) r.slow.push({ at: t0, ms: took });
      await new Promise((res) => setTimeout(res, o.intervalMs));
    }
    agent.destroy();
    return r;
  };
  const fresh: FreshRecord[] = [];
  const freshLoop = async () => {
    const pending: Promise<void>[] = [];
    while (live() && o.newConnRps > 0) {
      const at = Date.now();
      let port: number | undefined;
      pending.push(get(o, false, (s) => s.once('connect', () => { port = s.localPort; }))
        .then((backend) => { fresh.push({ at, backend, port }); }, (err: Error) => { fresh.push({ at, backend: null, port, error: err.message }); }));
      await new Promise((res) => setTimeout(res, 1000 / o.newConnRps));
    }
    await Promise.all(pending);
  };
  const longs: Promise<LongReport>[] = [];
  for (let i = 0; i < o.longConns; i++) longs.push(long());
  const [reports] = await Promise.all([Promise.all(longs), freshLoop()]);
  const report: FlowReport = { startedAt, endedAt: Date.now(), long: reports, fresh: fresh.sort((a, b) => a.at - b.at) };
  process.stdout.write(JSON.stringify(report) + '\n');
}

void main();
