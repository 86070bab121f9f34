/**
 * The e2e tests' shared plumbing: running one of the helper scripts of test/e2e/ inside a lab
 * namespace (its last stdout line is its JSON report) and polling until something holds.
 */
import path from 'node:path';
import { spawn } from 'node:child_process';
import { repoPath } from '../../src/daemon/paths';

/** argv running the helper script test/e2e/`name` with this node (tsx for .ts, plain for compiled). */
export function e2eScriptArgv(name: string, args: string[]): string[] {
  const ts = __filename.endsWith('.ts');
  const file = path.join(__dirname, '..', 'e2e', `${name}${ts ? '.ts' : '.js'}`);
  return [process.execPath, ...(ts ? ['--import', 'tsx'] : []), file, ...args];
}

/**
 * Runs a helper script in namespace `netns` (async, so this process keeps working), killed after
 * `timeoutMs`. @returns its last stdout line parsed as JSON; rejects naming the script, the
 * namespace, the exit code and the end of its stderr when that line is no JSON.
 */
export function e2eScriptIn<T>(netns: string, name: string, args: string[], timeoutMs: number): Promise<T> {
  const argv = ['netns', 'exec', netns, ...e2eScriptArgv(name, args)];
  return new Promise((resolve, reject) => {
    const child = spawn('ip', argv, { stdio: ['ignore', 'pipe', 'pipe'], cwd: repoPath('.') });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    child.on('close', (code) => {
      clearTimeout(timer);
      try { resolve(JSON.parse(out.trim().split('\n').at(-1) ?? '') as T); } catch { reject(new Error(`${name} in ${netns} failed (exit ${code}): ${err.slice(-500)}`)); }
    });
  });
}

/** Polls `probe` every 50 ms until it returns non-null; throws naming `what` after `timeoutMs`. */
export async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | null>): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== null) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
