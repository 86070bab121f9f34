/**
 * Running the system tools the benchmarks drive (ip, nft, iptables, ethtool, wrk, haproxy),
 * optionally inside one of the benchmark's network namespaces. Benchmarks may shell out; the
 * daemon never does.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';

export interface RunOptions {
  /** Run inside this network namespace (`ip netns exec`). */
  netns?: string;
  /** Kill the command after this many milliseconds (default 30 s): nothing here may hang. */
  timeoutMs?: number;
  /** Text for the command's stdin. */
  input?: string;
}

/**
 * Runs a command to completion and returns its stdout.
 * @throws Error naming the command, its exit status and its stderr when it fails or times out.
 */
export function run(command: string, args: string[], options: RunOptions = {}): string {
  const [file, argv] = options.netns ? ['ip', ['netns', 'exec', options.netns, command, ...args]] : [command, args];
  try {
    return execFileSync(file, argv, {
      encoding: 'utf8', timeout: options.timeoutMs ?? 30_000, input: options.input,
      stdio: ['pipe', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024,
    });
  } catch (err) {
    const e = err as { status?: number | null; signal?: string | null; stderr?: string; message: string };
    const where = options.netns ? ` (in netns ${options.netns})` : '';
    const why = e.signal ? `killed by ${e.signal}` : `exit status ${String(e.status)}`;
    throw new Error(`${command} ${args.join(' ')}${where}: ${why}: ${(e.stderr ?? e.message).trim()}`);
  }
}

/** Like run() but returns null instead of throwing: for clean-up, where "already gone" is fine. */
export function tryRun(command: string, args: string[], options: RunOptions = {}): string | null {
  try {
    return run(command, args, options);
  } catch {
    return null;
  }
}

/**
 * Starts a long-running command (a server) in the background, in a namespace when given.
 * The caller stops it with stopProcess(child), by its pid.
 */
export function startProcess(command: string, args: string[], netns?: string): ChildProcess {
  const [file, argv] = netns ? ['ip', ['netns', 'exec', netns, command, ...args]] : [command, args];
  const child = spawn(file, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
  trackChild(child);
  child.stderr?.setEncoding('utf8');
  let stderr = '';
  child.stderr?.on('data', (chunk: string) => { if (stderr.length < 4096) stderr += chunk; });
  (child as ChildProcess & { stderrText: () => string }).stderrText = () => stderr;
  return child;
}

/** Children started by the benchmarks and still running: killed by pid on an interrupt. */
const liveChildren = new Set<ChildProcess>();

/** Remembers a child until it exits (killChildrenNow can then stop it). */
export function trackChild(child: ChildProcess): void {
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
}

/** SIGKILLs, by pid, every child the benchmarks started that is still running (interrupt path). */
export function killChildrenNow(): void {
  for (const child of liveChildren) {
    try { child.kill('SIGKILL'); } catch { /* gone */ }
  }
  liveChildren.clear();
}

/** The first 4 KiB a process started by startProcess() wrote to stderr. */
export function processStderr(child: ChildProcess): string {
  const f = (child as ChildProcess & { stderrText?: () => string }).stderrText;
  return f ? f() : '';
}

/**
 * Stops a process this module started: SIGTERM by pid, then SIGKILL after graceMs.
 * `ip netns exec` execs the command, so the pid is the command's own.
 */
export async function stopProcess(child: ChildProcess, graceMs = 2000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), graceMs).unref());
  if ((await Promise.race([exited, timer])) === 'timeout') {
    child.kill('SIGKILL');
    await Promise.race([exited, new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref())]);
  }
}

/** Resolves after ms milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
