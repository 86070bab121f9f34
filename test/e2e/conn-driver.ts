/**
 * Runs inside the lab's client namespace (started by the e2e test with `ip netns exec`):
 * holds `longConns` keep-alive HTTP connections to the VIP, each asking every `intervalMs`,
 * and opens `newConnRps` fresh connections per second beside them, for `durationSec` seconds
 * (hard bound), then prints one JSON report on stdout. Times are epoch ms, so the test can put
 * them next to the moments it changed the pool.
 *
 * A long connection is "broken" when a request on it fails or when the agent had to open a
 * second socket (the first one was reset): both are recorded, never retried silently.
 */
import http from 'node:http';
import type { Socket } from 'node:net';

export interface DriverOptions {
  host: string; port: number; longConns: number; intervalMs: number; newConnRps: number; durationSec: number;
}
export interface LongConnReport {
  firstBackend: string | null; backends: string[]; ok: number; errors: Array<{ at: number; message: string }>;
  sockets: number; lastOkAt: number;
}
/** One fresh connection: when, which backend answered, and its client port (a port reused
 * from an earlier connection is what the flow cache's SYN rule is about). */
export interface NewConnRecord { at: number; backend: string | null; port?: number; error?: string }
export interface DriverReport { startedAt: number; endedAt: number; long: LongConnReport[]; fresh: NewConnRecord[] }

const MAX_DURATION_SEC = 120;

function get(agent: http.Agent | false, o: DriverOptions, onSocket?: (s: Socket) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: o.host, port: o.port, path: '/', agent, timeout: 3000,
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

async function longConn(o: DriverOptions, until: number): Promise<LongConnReport> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const seen = new Set<Socket>();
  const report: LongConnReport = { firstBackend: null, backends: [], ok: 0, errors: [], sockets: 0, lastOkAt: 0 };
  while (Date.now() < until) {
    try {
      const backend = await get(agent, o, (s) => { seen.add(s); report.sockets = seen.size; });
      report.ok++;
      report.lastOkAt = Date.now();
      report.firstBackend ??= backend;
      if (!report.backends.includes(backend)) report.backends.push(backend);
    } catch (err) {
      report.errors.push({ at: Date.now(), message: (err as Error).message });
      if (report.errors.length > 20) break;
    }
    await new Promise((r) => setTimeout(r, o.intervalMs));
  }
  agent.destroy();
  return report;
}

/** Runs the workload described by `o` (duration capped at MAX_DURATION_SEC). */
export async function drive(o: DriverOptions): Promise<DriverReport> {
  const startedAt = Date.now();
  const until = startedAt + Math.min(o.durationSec, MAX_DURATION_SEC) * 1000;
  const longs = Array.from({ length: o.longConns }, () => longConn(o, until));
  const fresh: NewConnRecord[] = [];
  const pending: Promise<void>[] = [];
  const tick = 1000 / Math.max(o.newConnRps, 0.001);
  while (o.newConnRps > 0 && Date.now() < until) {
    const at = Date.now();
    let port: number | undefined;
    const onSocket = (s: Socket) => s.once('connect', () => { port = s.localPort; });
    pending.push(get(false, o, onSocket).then((backend) => { fresh.push({ at, backend, port }); },
      (err: Error) => { fresh.push({ at, backend: null, port, error: err.message }); }));
    await new Promise((r) => setTimeout(r, tick));
  }
  const long = await Promise.all(longs);
  await Promise.all(pending);
  return { startedAt, endedAt: Date.now(), long, fresh };
}

if (require.main === module) {
  const options = JSON.parse(process.argv[2] ?? '{}') as DriverOptions;
  drive(options).then((report) => process.stdout.write(JSON.stringify(report) + '\n'), (err: Error) => {
    process.stderr.write(`conn-driver: ${err.message}\n`);
    process.exit(1);
  });
}
