/**
 * Runs inside a lab namespace (started with `ip netns exec`): one HTTP GET or POST of a URL
 * (IPv6 as http://[addr]/), bounded by a timeout, and one JSON line on stdout: the status, the
 * bytes of the body, the X-Backend header, the time it took, or the error. A POST sends
 * `postBytes` bytes of 'u' (an upload); a GET counts what comes back (a download).
 */
import http from 'node:http';

export interface HttpGetOptions { url: string; timeoutMs: number; postBytes?: number }
export interface HttpGetReport { status: number | null; bytes: number; body: string; backend: string | null; ms: number; error?: string }

const MAX_TIMEOUT_MS = 120_000;

export function httpGet(o: HttpGetOptions): Promise<HttpGetReport> {
  const started = Date.now();
  return new Promise((resolve) => {
    let settled = false;
    const finish = (r: Omit<HttpGetReport, 'ms'>) => {
      if (settled) return;
      settled = true;
      resolve({ ...r, ms: Date.now() - started });
    };
    const req = http.request(o.url, { method: o.postBytes ? 'POST' : 'GET', agent: false, headers: { Connection: 'close' } }, (res) => {
      let bytes = 0;
      let body = '';
      res.on('data', (d: Buffer) => {
        bytes += d.length;
        if (body.length < 200) body += d.toString('latin1').slice(0, 200 - body.length);
      });
      res.on('end', () => finish({ status: res.statusCode ?? null, bytes, body, backend: String(res.headers['x-backend'] ?? '') || null }));
      res.on('error', (err) => finish({ status: res.statusCode ?? null, bytes, body, backend: null, error: err.message }));
    });
    const timer = setTimeout(() => req.destroy(new Error(`timeout after ${o.timeoutMs} ms`)), Math.min(o.timeoutMs, MAX_TIMEOUT_MS));
    req.on('close', () => clearTimeout(timer));
    req.on('error', (err) => finish({ status: null, bytes: 0, body: '', backend: null, error: err.message }));
    req.end(o.postBytes ? Buffer.alloc(o.postBytes, 'u') : undefined);
  });
}

if (require.main === module) {
  httpGet(JSON.parse(process.argv[2] ?? '{}') as HttpGetOptions).then((r) => process.stdout.write(JSON.stringify(r) + '\n'));
}
