/**
 * One benchmark at a time on a host: every run uses the same namespace, interface and pin
 * names, so two concurrent runs (a test suite and a manual run, or two checkouts) would tear
 * down each other's sites. A lock file holding the owner's pid serialises them; a lock whose
 * pid is gone is stale and taken over.
 */
import * as fs from 'node:fs';
import { sleep } from './exec';

/** Host-wide (not per checkout): the names it protects are host-wide too. */
export const BENCH_LOCK_PATH = '/run/xlbb-bench.lock';

function ownerOf(path: string): number | null {
  try {
    const pid = Number(fs.readFileSync(path, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Runs fn while holding the benchmark lock, waiting up to waitMs for another run to finish.
 * @throws Error naming the other run's pid when the wait times out; whatever fn throws.
 */
export async function withBenchLock<T>(fn: () => Promise<T>, options: { waitMs?: number; path?: string; onWait?: (pid: number) => void } = {}): Promise<T> {
  const path = options.path ?? BENCH_LOCK_PATH;
  const deadline = Date.now() + (options.waitMs ?? 600_000);
  let told = false;
  for (;;) {
    try {
      fs.writeFileSync(path, `${process.pid}\n`, { flag: 'wx' });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = ownerOf(path);
      if (owner === process.pid) throw new Error(`benchmark lock ${path} is already held by this process (nested run)`);
      if (owner === null || !alive(owner)) {
        fs.rmSync(path, { force: true }); // stale: its owner is gone
        continue;
      }
      if (Date.now() > deadline) throw new Error(`another xdplb benchmark (pid ${owner}) holds ${path}; gave up waiting`);
      if (!told) { options.onWait?.(owner); told = true; }
      await sleep(500);
    }
  }
  try {
    return await fn();
  } finally {
    if (ownerOf(path) === process.pid) fs.rmSync(path, { force: true });
  }
}

/** Removes the lock when this process holds it (the interrupt path, where finally blocks do not run). */
export function releaseBenchLockIfMine(path: string = BENCH_LOCK_PATH): void {
  if (ownerOf(path) === process.pid) fs.rmSync(path, { force: true });
}
