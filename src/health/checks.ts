/**
 * One probe each: a TCP connect or an HTTP GET, bounded by a timeout. A probe never throws;
 * it resolves to {ok, detail} so the checker's loop stays simple.
 */
import net from 'node:net';
import http from 'node:http';
import { native } from '../bpf/native';

export interface ProbeResult { ok: boolean; detail: string }

/** `mark`: SO_MARK of the probe's socket (policy routing, src/health/dsr-routes.ts). */
export interface TcpProbe { type: 'tcp'; address: string; port: number; timeoutMs: number; mark?: number }
export interface HttpProbe {
  type: 'http'; address: string; port: number; timeoutMs: number;
  path: string; expectStatus: [number, number]; mark?: number;
}

/**
 * A socket connecting to address:port (either family: an IPv6 address is a literal, never
 * looked up), with SO_MARK `mark` when given. @throws BpfError from the mark.
 */
function connectSocket(address: string, port: number, mark: number | undefined): net.Socket {
  if (!mark) return net.connect({ host: address, port });
  const socket = new net.Socket({ fd: native().socketWithMark(mark, address.includes(':') ? 6 : 4) });
  return socket.connect({ host: address, port });
}
export type Probe = TcpProbe | HttpProbe;

/** Handle to a running probe: cancel() tears its socket down and resolves it as failed. */
export interface RunningProbe { result: Promise<ProbeResult>; cancel(): void }

/** Starts one probe. Never throws; failures (refused, timeout, bad status) resolve ok=false. */
export function startProbe(probe: Probe): RunningProbe {
  return probe.type === 'tcp' ? startTcpProbe(probe) : startHttpProbe(probe);
}

function startTcpProbe(probe: TcpProbe): RunningProbe {
  let finish!: (r: ProbeResult) => void;
  let done = false;
  const result = new Promise<ProbeResult>((resolve) => { finish = resolve; });
  let socket: net.Socket;
  try {
    socket = connectSocket(probe.address, probe.port, probe.mark);
  } catch (err) {
    return { result: Promise.resolve({ ok: false, detail: `cannot open a marked socket: ${(err as Error).message}` }), cancel: () => undefined };
  }
  const settle = (r: ProbeResult): void => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    socket.destroy();
    finish(r);
  };
  const timer = setTimeout(() => settle({ ok: false, detail: `timeout after ${probe.timeoutMs} ms` }), probe.timeoutMs);
  socket.once('connect', () => settle({ ok: true, detail: 'connected' }));
  socket.once('error', (err: NodeJS.ErrnoException) => settle({ ok: false, detail: err.code ?? err.message }));
  return { result, cancel: () => settle({ ok: false, detail: 'cancelled' }) };
}

function startHttpProbe(probe: HttpProbe): RunningProbe {
  let finish!: (r: ProbeResult) => void;
  let done = false;
  const result = new Promise<ProbeResult>((resolve) => { finish = resolve; });
  // agent: false -> a fresh connection per probe: a pooled keep-alive socket would hide a
  // backend that stopped accepting new connections.
  let markError: Error | null = null;
  // A marked probe brings its own socket (createConnection, no agent: an agent would open its own).
  const req = http.request({
    host: probe.address, port: probe.port, path: probe.path, method: 'GET',
    headers: { 'user-agent': 'xdplb-health/1', connection: 'close' },
    ...(!probe.mark ? { agent: false } : {
      createConnection: () => {
        try { return connectSocket(probe.address, probe.port, probe.mark); } catch (err) {
          markError = err as Error;
          return new net.Socket().destroy(err as Error);
        }
      },
    }),
  });
  const settle = (r: ProbeResult): void => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    req.destroy();
    finish(r);
  };
  // One timer for the whole exchange (connect + status line): a server that accepts but never
  // answers must count as down.
  const timer = setTimeout(() => settle({ ok: false, detail: `timeout after ${probe.timeoutMs} ms` }), probe.timeoutMs);
  req.once('response', (res) => {
    const status = res.statusCode ?? 0;
    res.resume();
    const [lo, hi] = probe.expectStatus;
    settle(status >= lo && status <= hi
      ? { ok: true, detail: `HTTP ${status}` }
      : { ok: false, detail: `HTTP ${status} not in ${lo}..${hi}` });
  });
  req.once('error', (err: NodeJS.ErrnoException) => settle({ ok: false,
    detail: markError ? `cannot open a marked socket: ${markError.message}` : err.code ?? err.message }));
  req.end();
  return { result, cancel: () => settle({ ok: false, detail: 'cancelled' }) };
}
