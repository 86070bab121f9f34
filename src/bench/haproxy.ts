/**
 * HAProxy in the benchmarks: as the conventional L7 load balancer on the lb host, and as the
 * backends' origin server (`http-request return`: a fixed 200 from C, far cheaper per request
 * than a Node server, so the backends do not cap what the lb can show).
 * Each instance gets a generated config in its own temp dir and is stopped by pid.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { processStderr, run, sleep, startProcess, stopProcess } from './exec';

export interface HaproxyInstance { child: ChildProcess; dir: string; netns: string }

const DEFAULTS = `defaults
  mode http
  timeout connect 2s
  timeout client 10s
  timeout server 10s
  maxconn 4000
`;

/** Config of an origin server answering every request on :port with 200 "ok". */
export function originConfig(port: number): string {
  return `global
  maxconn 4000
${DEFAULTS}
frontend origin
  bind :${port}
  bind :::${port} v6only
  http-request return status 200 content-type text/plain string "ok"
`;
}

/** Config of the load balancer: round robin over the backends, server connections reused. */
export function balancerConfig(vip: string, port: number, backends: string[]): string {
  return `global
  maxconn 4000
${DEFAULTS}
frontend vip
  bind ${vip}:${port}
  default_backend pool

backend pool
  balance roundrobin
  http-reuse always
${backends.map((b, i) => `  server be${i + 1} ${b}`).join('\n')}
`;
}

/**
 * Starts HAProxy in the foreground (-db) inside a namespace and waits until it listens.
 * @throws Error when the config is invalid or nothing listens on `port` within 5 s.
 */
export async function startHaproxy(netns: string, config: string, port: number): Promise<HaproxyInstance> {
  const dir = mkdtempSync(join(tmpdir(), 'xlbb-haproxy-'));
  const file = join(dir, 'haproxy.cfg');
  writeFileSync(file, config);
  try {
    run('haproxy', ['-c', '-q', '-f', file]);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const child = startProcess('haproxy', ['-db', '-f', file], netns);
  const instance = { child, dir, netns };
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break;
    const listening = run('ss', ['-Hltn', `sport = :${port}`], { netns });
    if (listening.trim()) return instance;
    await sleep(50);
  }
  await stopHaproxy(instance);
  throw new Error(`haproxy in ${netns} did not listen on :${port}: ${processStderr(child).trim() || 'no output'}`);
}

/** Stops an instance by pid and removes its config dir. */
export async function stopHaproxy(instance: HaproxyInstance): Promise<void> {
  try {
    await stopProcess(instance.child);
  } finally {
    rmSync(instance.dir, { recursive: true, force: true });
  }
}
