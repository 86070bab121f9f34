/**
 * One probe each: a TCP connect or an HTTP GET, bounded by a timeout. A probe never throws;
 * it resolves to {ok, detail} so the checker's loop stays simple.
 */
import net from 'node:net';
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

/**
 * An HTTP GET over a fresh connection (Connection: close), judged by the status line alone: the
 * request is written as one buffer and the answer read only up to its first line (no HTTP client
 * objects, no response parsing: ~40 % less CPU per probe than http.request, which at 1000
 * backends checked every second was most of the daemon's CPU; docs/decisions.md).
 */
function startHttpProbe(probe: HttpProbe): RunningProbe {
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
  // One timer for the whole exchange (connect + status line): a server that accepts but never
  // answers must count as down.
  const timer = setTimeout(() => settle({ ok: false, detail: `timeout after ${probe.timeoutMs} ms` }), probe.timeoutMs);
  const name = probe.address.includes(':') ? `[${probe.address}]` : probe.address; // IPv6 in brackets
  const host = probe.port === 80 ? name : `${name}:${probe.port}`;
  socket.once('connect', () => {
    socket.write(`GET ${probe.path} HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: xdplb-health/1\r\nConnection: close\r\n\r\n`);
  });
  let head = '';
  socket.on('data', (chunk: Buffer) => {
    head += chunk.toString('latin1');
    const eol = head.indexOf('\n');
    if (eol < 0 && head.length < 1024) return;
    const m = /^HTTP\/\d\.\d (\d{3})/.exec(head);
    if (!m) { settle({ ok: false, detail: 'not an HTTP response' }); return; }
    const status = Number(m[1]);
    const [lo, hi] = probe.expectStatus;
    settle(status >= lo && status <= hi
      ? { ok: true, detail: `HTTP ${status}` }
      : { ok: false, detail: `HTTP ${status} not in ${lo}..${hi}` });
  });
  // Closed before a status line: what http.request calls "socket hang up".
  socket.once('end', () => settle({ ok: false, detail: 'ECONNRESET' }));
  socket.once('error', (err: NodeJS.ErrnoException) => settle({ ok: false, detail: err.code ?? err.message }));
  return { result, cancel: () => settle({ ok: false, detail: 'cancelled' }) };
}
