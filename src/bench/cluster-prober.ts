/**
 * Runs inside the cluster lab's client namespace for `xdplb bench cluster`'s failover part:
 * `flows` UDP sockets (one source port each, so the router's L4 ECMP hash spreads them over the
 * nodes) each send one datagram to host:port every `intervalMs` and note when echoes come back.
 * Ends at SIGTERM or after `maxSec` and prints one JSON line: per flow, every silence longer than
 * `gapMs` between two echoes ({from, to}, epoch ms), and how many echoes it got.
 */
import dgram from 'node:dgram';

export interface ProbeOptions { host: string; port: number; flows: number; intervalMs: number; gapMs: number; maxSec: number }
export interface ProbeFlow { port: number; echoes: number; gaps: Array<{ from: number; to: number }> }
export interface ProbeReport { startedAt: number; endedAt: number; flows: ProbeFlow[] }

async function main(): Promise<void> {
  const o = JSON.parse(process.argv[2]) as ProbeOptions;
  const startedAt = Date.now();
  const flows: Array<ProbeFlow & { last: number; socket: dgram.Socket }> = [];
  for (let i = 0; i < Math.min(o.flows, 1000); i++) {
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((r) => socket.bind(0, r));
    const f = { port: socket.address().port, echoes: 0, gaps: [] as ProbeFlow['gaps'], last: 0, socket };
    socket.on('message', () => {
      const now = Date.now();
      if (f.last && now - f.last > o.gapMs && f.gaps.length < 100) f.gaps.push({ from: f.last, to: now });
      f.last = now;
      f.echoes++;
    });
    flows.push(f);
  }
  const payload = Buffer.from('xdplb-bench-cluster');
  const timer = setInterval(() => { for (const f of flows) f.socket.send(payload, o.port, o.host); }, o.intervalMs);
  const end = () => {
    clearInterval(timer);
    setTimeout(() => {
      const report: ProbeReport = { startedAt, endedAt: Date.now(), flows: flows.map(({ port, echoes, gaps }) => ({ port, echoes, gaps })) };
      process.stdout.write(JSON.stringify(report) + '\n');
      for (const f of flows) f.socket.close();
    }, 300);
  };
  process.once('SIGTERM', end);
  setTimeout(end, Math.min(o.maxSec, 600) * 1000).unref();
}

void main();
