/**
 * Builds large Maglev tables on a worker thread, so that the daemon's event loop (API, health
 * checks, the dashboard's feeds) does not stop for the length of a build. Same builder, same
 * tables (buildMaglevTable is deterministic); where no worker can run (the worker's compiled
 * file is missing, e.g. when run from the TypeScript sources, or the worker fails) the tables
 * are built in-process instead, which only costs the event loop what it always did. One worker
 * serves every build and stays (unref'd) between them: a warm JIT and the key hashes it has seen.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { addBuildTime, buildMaglevTable } from './maglev';
import type { MaglevJob, MaglevJobResult } from './maglev-worker';

export type { MaglevJob } from './maglev-worker';

/** Tables of at least this many slots are built off the event loop (smaller ones take < ~60 ms). */
export const OFF_THREAD_MIN_SLOTS = 100_000;

const WORKER_FILE = path.join(__dirname, 'maglev-worker.js');

/** True when this build has the compiled worker (dist/); false from the TypeScript sources. */
export function offThreadAvailable(): boolean {
  return existsSync(WORKER_FILE);
}

/** The one worker, kept between builds (warm JIT, remembered key hashes); unref'd, so it never keeps the process alive. */
let shared: { worker: Worker; tail: Promise<unknown> } | null = null;

function sharedWorker(): { worker: Worker; tail: Promise<unknown> } {
  if (shared) return shared;
  const worker = new Worker(WORKER_FILE);
  worker.unref();
  const entry = { worker, tail: Promise.resolve() as Promise<unknown> };
  // A worker that fails or exits is replaced at the next build.
  const forget = () => { if (shared === entry) shared = null; };
  worker.once('error', forget);
  worker.once('exit', forget);
  shared = entry;
  return entry;
}

function runJob(worker: Worker, job: MaglevJob): Promise<MaglevJobResult> {
  return new Promise<MaglevJobResult>((resolve, reject) => {
    const onError = (err: Error) => { cleanup(); reject(err); };
    const onExit = (code: number) => { cleanup(); reject(new Error(`maglev worker exited (${code})`)); };
    const onMessage = (r: MaglevJobResult) => { cleanup(); resolve(r); };
    // Held while a job runs (an awaited build keeps the process alive), let go after.
    const cleanup = () => { worker.off('message', onMessage); worker.off('error', onError); worker.off('exit', onExit); worker.unref(); };
    worker.ref();
    worker.on('message', onMessage);
    worker.on('error', onError);
    worker.on('exit', onExit);
    worker.postMessage(job);
  });
}

/**
 * Builds every job's table (as buildMaglevTable(job.backends, job.size) would) on the shared
 * worker, in order (calls queue behind each other). A job that buildMaglevTable refuses
 * rejects with its message.
 */
export async function buildMaglevTablesOffThread(jobs: MaglevJob[]): Promise<Uint32Array[]> {
  if (jobs.length === 0) return [];
  if (!offThreadAvailable()) return jobs.map((j) => buildMaglevTable(j.backends, j.size));
  const started = performance.now();
  const entry = sharedWorker();
  const run = entry.tail.then(async () => {
    const tables: Uint32Array[] = [];
    for (const job of jobs) {
      const result = await runJob(entry.worker, job);
      if (!result.ok) throw new Error(result.message);
      tables.push(result.table);
    }
    return tables;
  });
  entry.tail = run.catch(() => undefined);
  try {
    return await run;
  } catch (err) {
    // A worker that failed (not a refused job) is dropped; the next build starts a new one.
    if (!(err instanceof Error && /^maglev: /.test(err.message))) {
      if (shared === entry) shared = null;
      void entry.worker.terminate();
    }
    throw err;
  } finally {
    addBuildTime(performance.now() - started);
  }
}
