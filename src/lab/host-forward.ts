/**
 * Makes a TCP port inside a lab namespace reachable at the host's 127.0.0.1 without touching
 * the host's interfaces or routes.
 *
 * How: a socket belongs to the namespace it was created in, whatever process holds it later.
 * So the host side opens the listening socket on 127.0.0.1:PORT (host namespace), then starts
 * `ip netns exec <lb> node host-forward.js` and hands it that socket over the IPC channel.
 * The child accepts host connections on it and connects, from inside the lb namespace, to
 * 127.0.0.1:TARGET there (where the daemon listens), piping bytes both ways.
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import { openSync, closeSync } from 'node:fs';
import { nodeScriptCommand, repoRoot } from './paths';

export interface HostForwardOptions {
  /** Lab prefix, written on the child's command line so `lab down` can recognise it. */
  prefix: string;
  /** Namespace to connect into (the lab's lb). */
  netns: string;
  listenHost?: string;
  listenPort: number;
  targetHost?: string;
  targetPort: number;
  /** File that receives the forwarder's stdout/stderr. */
  logFile: string;
  /** Called with the child's pid as soon as it is spawned (before it confirms), to record it. */
  onSpawn?: (pid: number) => void;
}

export interface HostForward { pid: number; listen: string; target: string }

/**
 * Opens listenHost:listenPort on the host and starts the detached forwarder in the namespace.
 * @throws Error (rejects) when the port is taken (EADDRINUSE), the child fails to start or does
 *   not confirm within 15 s.
 */
export async function startHostForward(options: HostForwardOptions): Promise<HostForward> {
  const listenHost = options.listenHost ?? '127.0.0.1';
  const targetHost = options.targetHost ?? '127.0.0.1';
  const server = net.createServer({ pauseOnConnect: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new Error(
      `cannot listen on ${listenHost}:${options.listenPort} for the lab forwarder: ${err.code ?? err.message}`)));
    server.listen(options.listenPort, listenHost, () => resolve());
  });
  const log = openSync(options.logFile, 'a');
  const argv = [...nodeScriptCommand('host-forward'), '--lab-prefix', options.prefix,
    '--listen', `${listenHost}:${options.listenPort}`, '--target', `${targetHost}:${options.targetPort}`];
  const child = spawn('ip', ['netns', 'exec', options.netns, ...argv], {
    detached: true, cwd: repoRoot(), stdio: ['ignore', log, log, 'ipc'],
  });
  closeSync(log);
  if (child.pid) options.onSpawn?.(child.pid);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('lab forwarder did not start within 15 s')), 15_000);
      child.once('error', (err) => { clearTimeout(timer); reject(err); });
      child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`lab forwarder exited with ${code} (see ${options.logFile})`)); });
      child.on('message', (msg: { type?: string }) => {
        if (msg?.type === 'ready') { clearTimeout(timer); resolve(); }
      });
      child.send({ type: 'listen', target: { host: targetHost, port: options.targetPort } }, server);
    });
  } catch (err) {
    if (child.pid) try { process.kill(child.pid, 'SIGTERM'); } catch { /* already gone */ }
    server.close();
    throw err;
  }
  server.close();
  child.removeAllListeners();
  if (child.connected) child.disconnect();
  child.unref();
  return { pid: child.pid!, listen: `${listenHost}:${options.listenPort}`, target: `${options.netns} ${targetHost}:${options.targetPort}` };
}

/** The child: receives the host listening socket and forwards every connection into this namespace. */
function runForwarderChild(): void {
  process.on('message', (msg: { type?: string; target?: { host: string; port: number } }, handle: unknown) => {
    if (msg?.type !== 'listen' || !(handle instanceof net.Server) || !msg.target) return;
    const target = msg.target;
    handle.on('connection', (client: net.Socket) => {
      const upstream = net.connect(target.port, target.host);
      const closeBoth = () => { client.destroy(); upstream.destroy(); };
      client.on('error', closeBoth);
      upstream.on('error', closeBoth);
      client.on('close', closeBoth);
      upstream.on('close', closeBoth);
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
    process.send?.({ type: 'ready' }, () => process.disconnect());
    process.stdout.write(`forwarding ${process.argv.slice(2).join(' ')}\n`);
  });
  process.on('SIGTERM', () => process.exit(0));
}

if (require.main === module) runForwarderChild();
