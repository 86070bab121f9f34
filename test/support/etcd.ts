/**
 * A real etcd (the Debian etcd-server, /usr/bin/etcd) for tests: one member on 127.0.0.1, a
 * temporary data directory, stopped by its pid (kill -9 for the "etcd dies" tests) and started
 * again on the same data. And a TCP relay that can cut one client off from etcd (a partition).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { waitFor as waitUntil } from '../../src/lab/wait';

export const ETCD_BIN = '/usr/bin/etcd';

/** Why etcd tests cannot run here, or null. @throws Error under CI=true (CI installs etcd-server). */
export function whyEtcdCannotRun(): string | null {
  const why = fs.existsSync(ETCD_BIN) ? null : `${ETCD_BIN} is not installed (Debian etcd-server; scripts/setup.sh)`;
  if (why && process.env.CI === 'true') throw new Error(`etcd tests cannot run in CI: ${why}`);
  return why;
}

export class TestEtcd {
  readonly dataDir: string;
  private child: ChildProcess | null = null;
  constructor(readonly clientPort: number, readonly peerPort: number) {
    this.dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'xlbs-etcd-'));
  }
  get endpoint(): string { return `127.0.0.1:${this.clientPort}`; }

  /** Starts (or restarts on the same data) and waits until it answers (at most 15 s). */
  async start(): Promise<void> {
    const peer = `http://127.0.0.1:${this.peerPort}`;
    const client = `http://127.0.0.1:${this.clientPort}`;
    this.child = spawn(ETCD_BIN, [
      '--name', 'xlbs', '--data-dir', this.dataDir,
      '--listen-client-urls', client, '--advertise-client-urls', client,
      '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
      '--initial-cluster', `xlbs=${peer}`, '--log-level', 'error', '--logger', 'zap',
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    this.child.stderr!.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-2000); });
    const deadline = Date.now() + 15_000;
    for (;;) {
      try {
        const res = await fetch(`${client}/health`, { signal: AbortSignal.timeout(1000) });
        if (res.ok) return;
      } catch { /* not yet */ }
      if (this.child.exitCode !== null || Date.now() > deadline) throw new Error(`etcd did not start: ${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** kill -9 (the pid we started) and wait for the exit. */
  async kill(): Promise<void> {
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  }

  async destroy(): Promise<void> {
    await this.kill();
    fs.rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** A TCP relay 127.0.0.1:listenPort -> target; cut() drops every connection and refuses new ones. */
export class Relay {
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  constructor(readonly listenPort: number, readonly targetPort: number) {}
  get endpoint(): string { return `127.0.0.1:${this.listenPort}`; }

  async open(): Promise<void> {
    this.server = net.createServer((inbound) => {
      const outbound = net.connect(this.targetPort, '127.0.0.1');
      this.sockets.add(inbound); this.sockets.add(outbound);
      const close = () => { inbound.destroy(); outbound.destroy(); this.sockets.delete(inbound); this.sockets.delete(outbound); };
      inbound.on('error', close); outbound.on('error', close); inbound.on('close', close); outbound.on('close', close);
      inbound.pipe(outbound); outbound.pipe(inbound);
    });
    await new Promise<void>((resolve, reject) => { this.server!.once('error', reject); this.server!.listen(this.listenPort, '127.0.0.1', resolve); });
  }

  async cut(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    if (server) await new Promise((r) => server.close(r));
  }
}

/** Polls `check` every 50 ms until it returns true (at most `ms`). @throws Error naming `what`. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  await waitUntil(what, ms, check);
}
