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
  /** healthCheck.reuseConnection: the backend's kept-alive connection, reused between probes. */
  connection?: KeptConnection;
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
  if (probe.type === 'tcp') return startTcpProbe(probe);
  return probe.connection ? startKeptHttpProbe(probe, probe.connection) : startHttpProbe(probe);
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
  socket.once('connect', () => { socket.write(requestOf(probe, false)); });
  let head = '';
  socket.on('data', (chunk: Buffer) => {
    head += chunk.toString('latin1');
    const verdict = statusVerdict(head, probe.expectStatus);
    if (verdict) settle(verdict);
  });
  // Closed before a status line: what http.request calls "socket hang up".
  socket.once('end', () => settle({ ok: false, detail: 'ECONNRESET' }));
  socket.once('error', (err: NodeJS.ErrnoException) => settle({ ok: false, detail: err.code ?? err.message }));
  return { result, cancel: () => settle({ ok: false, detail: 'cancelled' }) };
}

/** The GET request of a probe; without `Connection: close` when the connection is to be kept. */
function requestOf(probe: HttpProbe, keep: boolean): string {
  const name = probe.address.includes(':') ? `[${probe.address}]` : probe.address; // IPv6 in brackets
  const host = probe.port === 80 ? name : `${name}:${probe.port}`;
  return `GET ${probe.path} HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: xdplb-health/1\r\n${keep ? '' : 'Connection: close\r\n'}\r\n`;
}

/** The verdict of a response's status line, or null while `head` (latin1) has no line yet. */
function statusVerdict(head: string, [lo, hi]: [number, number]): ProbeResult | null {
  if (head.indexOf('\n') < 0 && head.length < 1024) return null;
  const m = /^HTTP\/\d\.\d (\d{3})/.exec(head);
  if (!m) return { ok: false, detail: 'not an HTTP response' };
  const status = Number(m[1]);
  return status >= lo && status <= hi ? { ok: true, detail: `HTTP ${status}` } : { ok: false, detail: `HTTP ${status} not in ${lo}..${hi}` };
}

/** Largest response head and body a kept connection reads to stay reusable (else it is closed). */
const KEEP_MAX_HEAD = 8192;
const KEEP_MAX_BODY = 65536;

interface Exchange { connected(): void; data(chunk: Buffer): void; gone(detail: string): void }

/**
 * One backend's kept-alive HTTP connection (healthCheck.reuseConnection). A probe sends its GET
 * over the idle connection when there is one (a fresh one otherwise), is judged by the status
 * line as soon as it arrives, and the connection is kept only once the whole response was read
 * (HTTP/1.1, a Content-Length, no `Connection: close`, no chunked body): anything else closes it
 * and the next probe connects afresh. The socket's listeners are attached once per connection,
 * not per probe.
 */
export class KeptConnection {
  private socket: net.Socket | null = null;
  private exchange: Exchange | null = null;
  /** An exchange in progress or a response not read to its end: not reusable yet. */
  private busy = false;
  /** Connections opened and probes sent over an already open connection (tests, status). */
  opened = 0;
  reused = 0;

  /** Closes the connection (stop, removal, a response that cannot be followed by another). */
  close(): void {
    const socket = this.socket;
    this.socket = null;
    this.exchange = null;
    this.busy = false;
    socket?.destroy();
  }

  /** Starts an exchange: true when it runs over the idle connection (write at once), false when
   * a fresh one connects (exchange.connected() then). @throws BpfError from the socket mark. */
  begin(probe: HttpProbe, exchange: Exchange): boolean {
    if (this.socket && this.busy) this.close(); // the previous response never completed
    this.exchange = exchange;
    this.busy = true;
    if (this.socket) { this.reused++; return true; }
    const socket = connectSocket(probe.address, probe.port, probe.mark);
    this.socket = socket;
    this.opened++;
    const gone = (detail: string): void => {
      if (this.socket !== socket) return;
      const ex = this.exchange;
      this.close();
      ex?.gone(detail);
    };
    socket.once('connect', () => { if (this.socket === socket) this.exchange?.connected(); });
    socket.on('data', (chunk: Buffer) => {
      if (this.socket !== socket) return;
      if (this.exchange) this.exchange.data(chunk); else this.close(); // unasked-for bytes while idle
    });
    socket.once('end', () => gone('ECONNRESET'));
    socket.on('error', (err: NodeJS.ErrnoException) => gone(err.code ?? err.message));
    socket.once('close', () => gone('ECONNRESET'));
    return false;
  }

  write(data: string): void { this.socket?.write(data, 'latin1'); }

  /** The exchange is over: the connection idles for the next probe (keep) or is closed. */
  end(keep: boolean): void {
    this.exchange = null;
    this.busy = false;
    if (!keep) this.close();
  }
}

/**
 * An HTTP GET over the backend's kept connection. Judged by the status line as today; a reused
 * connection that fails before the first byte of the answer (the server closed it while idle)
 * is retried once on a fresh connection within the same timeout, so an idle close is never a
 * failed check.
 */
function startKeptHttpProbe(probe: HttpProbe, conn: KeptConnection): RunningProbe {
  let finish!: (r: ProbeResult) => void;
  let done = false;
  const result = new Promise<ProbeResult>((resolve) => { finish = resolve; });
  const request = requestOf(probe, true);
  let head = '';
  let headEnd = -1;       // index past the blank line once the head is complete
  let bodyLeft = 0;       // body bytes still to read before the connection is idle
  let reused = false;
  let retried = false;
  const settle = (r: ProbeResult): void => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    finish(r);
  };
  const timer = setTimeout(() => { conn.close(); settle({ ok: false, detail: `timeout after ${probe.timeoutMs} ms` }); }, probe.timeoutMs);
  const exchange: Exchange = {
    connected: () => conn.write(request),
    gone: (detail) => {
      if (reused && head === '' && !retried && !done) { retried = true; start(); return; }
      settle({ ok: false, detail });
    },
    data: (chunk) => {
      if (headEnd < 0) {
        head += chunk.toString('latin1');
        if (!done) {
          const verdict = statusVerdict(head, probe.expectStatus);
          if (verdict) settle(verdict);
          if (verdict && !verdict.ok && verdict.detail === 'not an HTTP response') { conn.end(false); return; }
        }
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) { if (head.length > KEEP_MAX_HEAD) conn.end(false); return; }
        headEnd = end + 4;
        const length = keptBodyLength(head.slice(0, end));
        if (length === null) { conn.end(false); return; }
        bodyLeft = length - (head.length - headEnd);
      } else {
        bodyLeft -= chunk.length;
      }
      if (bodyLeft === 0) conn.end(true);
      else if (bodyLeft < 0) conn.end(false); // more than the response: out of step, start afresh
    },
  };
  const start = (): void => {
    try {
      reused = conn.begin(probe, exchange);
    } catch (err) {
      conn.end(false);
      settle({ ok: false, detail: `cannot open a marked socket: ${(err as Error).message}` });
      return;
    }
    if (reused) conn.write(request);
  };
  start();
  return { result, cancel: () => { conn.close(); settle({ ok: false, detail: 'cancelled' }); } };
}

/** The body length after which the connection can carry the next probe, or null when it cannot
 * be reused (HTTP/1.0, Connection: close, chunked or unknown length, a body over the limit). */
function keptBodyLength(head: string): number | null {
  if (!head.startsWith('HTTP/1.1 ')) return null;
  if (/\r\nconnection:[^\r\n]*\bclose\b/i.test(head)) return null;
  if (/\r\ntransfer-encoding:/i.test(head)) return null;
  const status = Number(head.slice(9, 12));
  if (status === 204 || status === 304) return 0;
  const m = /\r\ncontent-length:[ \t]*(\d+)[ \t]*(?:\r\n|$)/i.exec(head);
  if (!m) return null;
  const length = Number(m[1]);
  return length <= KEEP_MAX_BODY ? length : null;
}
