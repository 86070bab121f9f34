/**
 * Runs `xdplb daemon` as a child process (optionally inside a network namespace), for tests,
 * the demo and the lab. The daemon logs JSON lines (pino) on stdout; this helper collects
 * them and waits for the 'xdplb daemon ready' line, which carries the API URL.
 *
 * Recipe by hand: `nsenter --net=/var/run/netns/NS node dist/src/cli.js daemon --config FILE
 * --pin-dir DIR`, then wait for the 'xdplb daemon ready' log line (or poll GET /healthz).
 * Not `ip netns exec`: it remounts /sys in a private mount namespace, which hides the host's
 * bpffs at /sys/fs/bpf, so the daemon's pins would die with it and a restart could not adopt.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { repoPath, repoRoot } from './paths';

export interface SpawnDaemonOptions {
  configPath: string;
  pinDir: string;
  /** Run inside this network namespace (nsenter --net: the mount namespace, and bpffs, stay the host's). */
  netns?: string;
  objectPath?: string;
  detachOnExit?: boolean;
  /** Overrides config api.listen. */
  listen?: string;
  env?: NodeJS.ProcessEnv;
}

export interface LogLine { level?: number; msg?: string; [key: string]: unknown }

export interface SpawnedDaemon {
  readonly pid: number;
  readonly child: ChildProcess;
  /** Every JSON log line so far (and non-JSON lines as {msg}). */
  readonly logs: LogLine[];
  /** stderr so far. */
  stderr(): string;
  /** Resolves the first log line (past or future) matching `match`. @throws on timeout or exit. */
  waitForLog(match: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Waits for 'xdplb daemon ready'; resolves the API URL. @throws on timeout or early exit. */
  ready(timeoutMs?: number): Promise<string>;
  /** Resolves the exit status (immediately if it has exited). */
  exited(timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM and wait. */
  stop(timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILL and wait (a crash). */
  kill(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** The argv that runs the xdplb CLI with this node: compiled JS from dist/, the TS through tsx otherwise. */
export function cliCommand(): string[] {
  if (__filename.endsWith('.ts')) return [process.execPath, '--import', 'tsx', repoPath('src/cli.ts')];
  return [process.execPath, repoPath('dist/src/cli.js')];
}

/** Starts the daemon as a child process. Call ready() before using it and stop() or kill() after. */
export function spawnDaemon(opts: SpawnDaemonOptions): SpawnedDaemon {
  const args = [...cliCommand(), 'daemon', '--config', opts.configPath, '--pin-dir', opts.pinDir];
  if (opts.objectPath) args.push('--object', opts.objectPath);
  if (opts.detachOnExit) args.push('--detach-on-exit');
  if (opts.listen) args.push('--listen', opts.listen);
  const argv = opts.netns ? ['nsenter', `--net=/var/run/netns/${opts.netns}`, ...args] : args;
  // nsenter execs the command: the pid we get is the daemon's own.
  const child = spawn(argv[0], argv.slice(1), { cwd: repoRoot(), env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: LogLine[] = [];
  const waiters = new Set<() => void>();
  let stderr = '';
  let partial = '';
  let exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    partial += chunk;
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.trim()) continue;
      try { logs.push(JSON.parse(line) as LogLine); } catch { logs.push({ msg: line }); }
    }
    for (const w of [...waiters]) w();
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
  child.on('exit', (code, signal) => { exit = { code, signal }; for (const w of [...waiters]) w(); });

  const waitFor = <T>(check: () => T | undefined, what: string, timeoutMs: number): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const done = (): void => {
        const found = check();
        if (found !== undefined) { cleanup(); resolve(found); return; }
        if (exit) { cleanup(); reject(new Error(`daemon exited (${exit.code ?? exit.signal}) before ${what}; stderr: ${stderr.trim().slice(-2000)}; last log: ${JSON.stringify(logs.slice(-3))}`)); }
      };
      const timer = setTimeout(() => { cleanup(); reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; stderr: ${stderr.trim().slice(-2000)}; last log: ${JSON.stringify(logs.slice(-3))}`)); }, timeoutMs);
      const cleanup = (): void => { clearTimeout(timer); waiters.delete(done); };
      waiters.add(done);
      done();
    });

  const exited = (timeoutMs = 10_000) => waitFor(() => exit ?? undefined, 'exit', timeoutMs);
  return {
    pid: child.pid!, child, logs,
    stderr: () => stderr,
    waitForLog: (match, timeoutMs = 10_000) => waitFor(() => logs.find(match), 'a matching log line', timeoutMs),
    ready: async (timeoutMs = 20_000) =>
      String((await waitFor(() => logs.find((l) => l.msg === 'xdplb daemon ready'), 'ready', timeoutMs)).url),
    exited,
    stop: async (timeoutMs = 10_000) => { if (!exit) child.kill('SIGTERM'); return exited(timeoutMs); },
    kill: async () => { if (!exit) child.kill('SIGKILL'); return exited(5000); },
  };
}
