/**
 * The real thing for the browser suite: the lab (src/lab, prefix xlbt-ui: a client, the lb and
 * two backends in network namespaces), the xdplb daemon inside the lb namespace with XDP on the
 * lb's client leg, a host forward from 127.0.0.1 to its API, and a bounded HTTP load from the
 * client to the VIP so that the kernel has packets to count and sample.
 * Everything is created under the prefix and removed by name in stop(), also after a failure.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import YAML from 'yaml';
import { labUp, labDown, labExecCommand } from '../../src/lab/lab';
import { labTopology } from '../../src/lab/topology';
import { spawnDaemon, type SpawnedDaemon } from '../../src/daemon/spawn';
import type { BrowserSuiteCreds } from './suite';
import { whyKernelTestsCannotRun, freePort } from '../support/kernel-env';

export const LAB_PREFIX = 'xlbt-ui';
export const PIN_DIR = `/sys/fs/bpf/${LAB_PREFIX}`;
export const VIP = '198.18.100.1';
/** The IPv6 service of the lab config (no traffic: its addresses and the forms in the dashboard). */
export const V6_SERVICE = 'web6';
const API_PORT_IN_LB = 8720;
/** Load bounds: at most this many requests, for at most this long. */
const LOAD_MAX_REQUESTS = 4000;
const LOAD_MAX_SECONDS = 240;

export const LAB_CREDS: BrowserSuiteCreds = {
  admin: { username: 'ui-admin', password: 'ui-admin-secret-1' },
  viewer: { username: 'ui-viewer', password: 'ui-viewer-secret-1' },
};

/** Why the lab cannot run here, or null. */
export const whyLabNotRunnable = whyKernelTestsCannotRun;

export interface DaemonLab {
  url: string;
  /** The one service of the lab config and its backends (host = lab host name, e.g. be2). */
  service: string;
  backends: Array<{ host: string; address: string }>;
  /** Flips a backend server's /healthz (its /admin/health endpoint), from the lb namespace. */
  setBackendHealth(host: string, state: 'up' | 'down'): Promise<void>;
  creds: BrowserSuiteCreds;
  daemon: SpawnedDaemon;
  pinDir: string;
  stop(): Promise<void>;
}

const LOCK = `/run/xdplb-lab/.${LAB_PREFIX}.lock`;

function processGone(pid: number): boolean {
  try { process.kill(pid, 0); return false; } catch (err) { return (err as NodeJS.ErrnoException).code === 'ESRCH'; }
}

/**
 * Waits until no other run holds the prefix (two runs at once would take each other's lab
 * down). A lock whose pid is gone is stale and taken over.
 * @throws Error when another live run holds it for 5 minutes.
 */
async function lockPrefix(): Promise<void> {
  fs.mkdirSync(path.dirname(LOCK), { recursive: true });
  for (let waited = 0; ; waited += 500) {
    try {
      fs.mkdirSync(LOCK);
      fs.writeFileSync(path.join(LOCK, 'pid'), String(process.pid));
      return;
    } catch {
      let owner = 0;
      try { owner = Number(fs.readFileSync(path.join(LOCK, 'pid'), 'utf8')); } catch { /* being written */ }
      if (owner && owner !== process.pid && processGone(owner)) fs.rmSync(LOCK, { recursive: true, force: true });
      if (waited > 300_000) throw new Error(`${LOCK} held by pid ${owner} for 5 minutes`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

function unlockPrefix(): void {
  try {
    if (Number(fs.readFileSync(path.join(LOCK, 'pid'), 'utf8')) === process.pid) fs.rmSync(LOCK, { recursive: true, force: true });
  } catch { /* not ours */ }
}


/**
 * Brings the lab, the daemon and the load up. On failure everything already created is torn
 * down before the error propagates.
 * @throws Error from lab up, the daemon's start (with its stderr and last log lines) or the forward.
 */
export async function startDaemonLab(log: (line: string) => void = () => undefined): Promise<DaemonLab> {
  await lockPrefix();
  const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), `${LAB_PREFIX}-`));
  let daemon: SpawnedDaemon | null = null;
  let load: ChildProcess | null = null;
  const stop = async () => {
    if (load?.pid && load.exitCode === null && load.signalCode === null) {
      try { process.kill(-load.pid, 'SIGTERM'); } catch { /* already gone */ }
    }
    if (daemon) await daemon.stop(15_000).catch(() => daemon?.kill());
    await labDown(LAB_PREFIX).catch((err: unknown) => log(`lab down: ${String(err)}`));
    fs.rmSync(PIN_DIR, { recursive: true, force: true });
    fs.rmSync(tmpDir, { recursive: true, force: true });
    unlockPrefix();
  };
  try {
    await labDown(LAB_PREFIX).catch(() => undefined); // leftovers of an interrupted run
    fs.rmSync(PIN_DIR, { recursive: true, force: true });
    const forwardPort = await freePort();
    await labUp({ prefix: LAB_PREFIX, backends: 2, mode: 'nat', forwardPort, apiPort: API_PORT_IN_LB, log });
    const topology = labTopology({ prefix: LAB_PREFIX, backends: 2, mode: 'nat' });
    const configPath = path.join(tmpDir, 'xdplb.yaml');
    fs.writeFileSync(configPath, YAML.stringify({
      // Both legs: XDP redirects client->backend through the backend leg's DEVMAP slot.
      interfaces: [{ name: topology.lb.clientLeg, mode: 'native' }, { name: topology.lb.backendLeg, mode: 'native' }],
      sampling: { rate: 1 },
      api: { listen: `127.0.0.1:${API_PORT_IN_LB}` },
      users: [
        { name: LAB_CREDS.admin.username, role: 'admin', password: LAB_CREDS.admin.password },
        { name: LAB_CREDS.viewer.username, role: 'viewer', password: LAB_CREDS.viewer.password },
      ],
      services: [{
        name: 'web', vip: VIP, port: 80, protocol: 'tcp', mode: 'nat', tableSize: 251,
        // Checked on the backends' second port (80), apart from the traffic on 8080.
        healthCheck: { type: 'http', port: 80, path: '/healthz', intervalMs: 1000, timeoutMs: 500, rise: 1, fall: 2 },
        backends: topology.backends.map((be) => ({ address: be.address, port: 8080, weight: 1 })),
      }, {
        // IPv6 beside it (issue 15), for the dashboard's addresses and forms against the real
        // API: no traffic and no health check (the lab's legs carry no IPv6 route to these).
        name: V6_SERVICE, vip: '2001:2:0:a5a5::10', port: 80, protocol: 'tcp', mode: 'nat', tableSize: 251,
        backends: [{ address: '2001:2:0:a5a5:b6b6:c7c7:d8d8:e9e9', port: 8080, weight: 1 }, { address: '2001:2::1:11', port: 8080, weight: 1 }],
      }],
    }));
    daemon = spawnDaemon({ configPath, pinDir: PIN_DIR, netns: topology.lb.netns, detachOnExit: true });
    await daemon.ready(30_000);
    const url = `http://127.0.0.1:${forwardPort}`;
    log(`daemon ready, dashboard at ${url}`);

    // Bounded load: one request every 50 ms, at most LOAD_MAX_REQUESTS and LOAD_MAX_SECONDS.
    const script = `for i in $(seq 1 ${LOAD_MAX_REQUESTS}); do curl -s -o /dev/null -m 1 http://${VIP}:80/; sleep 0.05; done`;
    const argv = labExecCommand('client', ['timeout', String(LOAD_MAX_SECONDS), 'sh', '-c', script], LAB_PREFIX);
    load = spawn(argv[0], argv.slice(1), { detached: true, stdio: 'ignore' });
    const backends = topology.backends.map((be) => ({ host: be.host, address: be.address }));
    const setBackendHealth = async (host: string, state: 'up' | 'down') => {
      const be = backends.find((b) => b.host === host);
      if (!be) throw new Error(`no lab backend ${host}`);
      execFileSync('ip', ['netns', 'exec', topology.lb.netns, 'curl', '-sf', '-m', '3', `http://${be.address}:80/admin/health?state=${state}`], { stdio: 'ignore' });
    };
    return { url, creds: LAB_CREDS, daemon, pinDir: PIN_DIR, service: 'web', backends, setBackendHealth, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
