/**
 * One probe each: a TCP connect or an HTTP GET, bounded by a timeout. A probe never throws;
 * it resolves to {ok, detail} so the checker's loop stays simple.
 */
import net from 'node:net';
import http from 'node:http';

export interface ProbeResult { ok: boolean; detail: string }

export interface TcpProbe { type: 'tcp'; address: string; port: number; timeoutMs: number }
export interface HttpProbe {
  type: 'http'; address: string; port: number; timeoutMs: number;
  path: string; expectStatus: [number, number];
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
  const socket = net.connect({ host: probe.address, port: probe.port });
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
  const req = http.request({
    host: probe.address, port: probe.port, path: probe.path, method: 'GET', agent: false,
    headers: { 'user-agent': 'xdplb-health/1', connection: 'close' },
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
  req.once('error', (err: NodeJS.ErrnoException) => settle({ ok: false, detail: err.code ?? err.message }));
  req.end();
  return { result, cancel: () => settle({ ok: false, detail: 'cancelled' }) };
}
