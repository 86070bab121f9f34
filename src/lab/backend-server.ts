/**
 * The lab's backend: a small HTTP server and a UDP echo, started by `lab up` inside a backend
 * namespace (`ip netns exec xlb-be2 node backend-server.js --name be2 ...`).
 *
 * Both families: every HTTP port and the UDP echo listen on 0.0.0.0 and on :: (IPv6 only), and
 * --udp-bind takes addresses of either family.
 *
 * HTTP (every port of --http-ports, keep-alive on):
 *   GET /                 200 "be2\n", header X-Backend: be2 (any unknown path answers the same)
 *   GET /slow?ms=N        the same answer after N ms (N <= 600000): a long request
 *   GET /stream?seconds=N one chunk "be2 i\n" per interval_ms (default 1000) for N s (<= 3600)
 *   GET /bytes?n=N        N bytes (<= 100 MiB) of 'x', for throughput runs
 *   POST /sink            reads the request body, answers "be2 <bytes read>" (uploads, path MTU)
 *   GET /healthz          200 "ok" or 503 "down" (see /admin/health)
 *   GET /admin/health?state=up|down   flips /healthz, so health checks can be exercised
 * UDP echo on --udp-port: answers "be2:<payload>" from the address the datagram was sent to
 * (one socket per --udp-bind address, which DSR needs: a wildcard socket would answer from the
 * backend's own address instead of the VIP).
 */
import http from 'node:http';
import dgram from 'node:dgram';

export interface BackendServerOptions {
  name: string;
  httpPorts: number[];
  udpPort: number;
  /** Extra local addresses of either family (DSR VIPs on lo) to bind UDP sockets to, besides the wildcards. */
  udpBind: string[];
  /** Listen on this one address only (default: 0.0.0.0 and ::). */
  host?: string;
}

const MAX_SLOW_MS = 600_000;
const MAX_STREAM_SECONDS = 3600;
const MAX_BYTES = 100 * 1024 * 1024;

function intParam(url: URL, key: string, fallback: number, max: number): number {
  const raw = url.searchParams.get(key);
  const n = raw === null ? fallback : Number(raw);
  if (!Number.isFinite(n) || n < 0) return fallback;
  return Math.min(Math.floor(n), max);
}

/** The request handler, separate from the sockets so it can be tested on an ephemeral port. */
export function backendHandler(name: string): http.RequestListener {
  let healthy = true;
  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://backend');
    res.setHeader('X-Backend', name);
    const answer = () => {
      if (res.destroyed) return;
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end(`${name}\n`);
    };
    switch (url.pathname) {
      case '/healthz':
        res.writeHead(healthy ? 200 : 503, { 'Content-Type': 'text/plain' });
        res.end(healthy ? 'ok\n' : 'down\n');
        return;
      case '/admin/health': {
        const state = url.searchParams.get('state');
        if (state !== 'up' && state !== 'down') {
          res.writeHead(400, { 'Content-Type': 'text/plain' });
          res.end('state must be up or down\n');
          return;
        }
        healthy = state === 'up';
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.end(`${name} health ${state}\n`);
        return;
      }
      case '/slow': {
        const timer = setTimeout(answer, intParam(url, 'ms', 1000, MAX_SLOW_MS));
        res.on('close', () => clearTimeout(timer));
        return;
      }
      case '/stream': {
        const seconds = intParam(url, 'seconds', 10, MAX_STREAM_SECONDS);
        const intervalMs = Math.max(10, intParam(url, 'interval_ms', 1000, 60_000));
        const ticks = Math.max(1, Math.floor((seconds * 1000) / intervalMs));
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        let i = 0;
        const timer = setInterval(() => {
          i++;
          res.write(`${name} ${i}\n`);
          if (i >= ticks) {
            clearInterval(timer);
            res.end();
          }
        }, intervalMs);
        res.on('close', () => clearInterval(timer));
        return;
      }
      case '/sink': {
        let n = 0;
        req.on('data', (d: Buffer) => { n += d.length; });
        req.on('end', () => {
          if (res.destroyed) return;
          res.writeHead(200, { 'Content-Type': 'text/plain' });
          res.end(`${name} ${n}\n`);
        });
        return;
      }
      case '/bytes': {
        const n = intParam(url, 'n', 1024, MAX_BYTES);
        res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(n) });
        const chunk = Buffer.alloc(Math.min(n, 64 * 1024), 'x');
        let left = n;
        const pump = () => {
          while (left > 0) {
            const part = left >= chunk.length ? chunk : chunk.subarray(0, left);
            left -= part.length;
            if (!res.write(part)) return void res.once('drain', pump);
          }
          res.end();
        };
        pump();
        return;
      }
      default:
        answer();
    }
  };
}

/** A running backend: its servers and a close(). */
export interface RunningBackend {
  http: http.Server[];
  udp: dgram.Socket[];
  close(): Promise<void>;
}

/**
 * Starts the HTTP servers and UDP echo sockets and resolves once every one listens.
 * @throws Error (rejects) when a port cannot be bound.
 */
export async function startBackendServer(options: BackendServerOptions): Promise<RunningBackend> {
  const hosts = options.host ? [options.host] : ['0.0.0.0', '::'];
  const handler = backendHandler(options.name);
  const servers: http.Server[] = [];
  const sockets: dgram.Socket[] = [];
  const running: RunningBackend = {
    http: servers, udp: sockets,
    close: async () => {
      for (const s of sockets) s.close();
      await Promise.all(servers.map((s) => new Promise<void>((resolve) => {
        s.close(() => resolve());
        s.closeAllConnections();
      })));
    },
  };
  try {
    for (const port of options.httpPorts) {
      for (const host of hosts) {
        const server = http.createServer({ keepAlive: true }, handler);
        server.keepAliveTimeout = 30_000;
        servers.push(server);
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          // ipv6Only: the :: socket takes IPv6 alone, beside the 0.0.0.0 one.
          server.listen({ port, host, ipv6Only: host.includes(':') }, () => resolve());
        });
      }
    }
    for (const address of [...hosts, ...options.udpBind]) {
      const v6 = address.includes(':');
      const socket = dgram.createSocket({ type: v6 ? 'udp6' : 'udp4', reuseAddr: true, ipv6Only: v6 });
      sockets.push(socket);
      socket.on('message', (msg, from) => {
        socket.send(Buffer.concat([Buffer.from(`${options.name}:`), msg]), from.port, from.address);
      });
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.bind(options.udpPort, address, () => resolve());
      });
    }
  } catch (err) {
    await running.close();
    throw err;
  }
  return running;
}

/**
 * Parses `--name be2 --http-ports 8080,80 --udp-port 5300 --udp-bind a,b` (unknown flags such as
 * the lab's `--lab-prefix` marker are ignored).
 * @throws Error naming the flag when --name is missing or malformed or a port is out of range.
 */
export function parseBackendArgs(argv: string[]): BackendServerOptions {
  const get = (flag: string) => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const name = get('--name');
  if (!name || !/^[a-z0-9-]{1,32}$/.test(name)) throw new Error('backend-server: --name must be 1..32 of a-z, 0-9, -');
  const ports = (s: string | undefined, flag: string): number[] => (s ?? '').split(',').filter(Boolean).map((p) => {
    const n = Number(p);
    if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`backend-server: ${flag} has a bad port ${JSON.stringify(p)}`);
    return n;
  });
  const udp = ports(get('--udp-port') ?? '5300', '--udp-port');
  return {
    name,
    httpPorts: ports(get('--http-ports') ?? '8080', '--http-ports'),
    udpPort: udp[0],
    udpBind: (get('--udp-bind') ?? '').split(',').filter(Boolean),
  };
}

if (require.main === module) {
  const options = parseBackendArgs(process.argv.slice(2));
  startBackendServer(options).then((running) => {
    // `lab up` waits for this line in the log before it records the server as started.
    process.stdout.write(`ready ${options.name} pid ${process.pid} http ${options.httpPorts.join(',')} udp ${options.udpPort}\n`);
    const stop = () => void running.close().then(() => process.exit(0));
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  }, (err: Error) => {
    process.stderr.write(`backend-server ${options.name}: ${err.message}\n`);
    process.exit(1);
  });
}
