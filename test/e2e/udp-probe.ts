/**
 * Runs inside the lab's client namespace: sends `count` datagrams, each from a fresh CONNECTED
 * socket to host:port, and prints {sent, answered, byBackend}. A connected UDP socket only takes
 * datagrams whose source is exactly host:port, so every answer counted here came back from the
 * VIP (reverse NAT or DSR), not from a backend's own address. Either family (an IPv6 host gets a
 * udp6 socket).
 */
import dgram from 'node:dgram';

export interface UdpProbeReport { sent: number; answered: number; byBackend: Record<string, number>; errors: string[] }

function probeOnce(host: string, port: number, payload: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
    const timer = setTimeout(() => { socket.close(); reject(new Error('timeout')); }, 2000);
    socket.on('error', (err) => { clearTimeout(timer); socket.close(); reject(err); });
    socket.on('message', (msg) => {
      clearTimeout(timer);
      socket.close();
      resolve(msg.toString('utf8'));
    });
    socket.connect(port, host, () => socket.send(payload));
  });
}

/** Sends `count` (<= 10000) datagrams, 20 at a time. */
export async function probe(host: string, port: number, count: number): Promise<UdpProbeReport> {
  const report: UdpProbeReport = { sent: 0, answered: 0, byBackend: {}, errors: [] };
  const total = Math.min(count, 10_000);
  for (let i = 0; i < total; i += 20) {
    const batch = Array.from({ length: Math.min(20, total - i) }, (_, j) => {
      report.sent++;
      return probeOnce(host, port, `probe-${i + j}`).then((answer) => {
        report.answered++;
        const backend = answer.slice(0, answer.indexOf(':'));
        report.byBackend[backend] = (report.byBackend[backend] ?? 0) + 1;
      }, (err: Error) => { if (report.errors.length < 5) report.errors.push(err.message); });
    });
    await Promise.all(batch);
  }
  return report;
}

if (require.main === module) {
  const [host, port, count] = process.argv.slice(2);
  probe(host, Number(port), Number(count)).then((r) => process.stdout.write(JSON.stringify(r) + '\n'), (err: Error) => {
    process.stderr.write(`udp-probe: ${err.message}\n`);
    process.exit(1);
  });
}
