/**
 * Builds large Maglev tables on a worker thread, so that the daemon's event loop (API, health
 * checks, the dashboard's feeds) does not stop for the length of a build. Same builder, same
 * tables (buildMaglevTable is deterministic); where no worker can run (the worker's compiled
 * file is missing, e.g. when run from the TypeScript sources, or the worker fails) the tables
 * are built in-process instead, which only costs the event loop what it always did.
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

/**
 * Builds every job's table (as buildMaglevTable(job.backends, job.size) would), one worker for
 * all jobs, in order. A job that buildMaglevTable refuses rejects with its message.
 */
export async function buildMaglevTablesOffThread(jobs: MaglevJob[]): Promise<Uint32Array[]> {
  if (jobs.length === 0) return [];
  if (!offThreadAvailable()) return jobs.map((j) => buildMaglevTable(j.backends, j.size));
  const started = performance.now();
  const worker = new Worker(WORKER_FILE);
  try {
    const tables: Uint32Array[] = [];
    for (const job of jobs) {
      const result = await new Promise<MaglevJobResult>((resolve, reject) => {
        const onError = (err: Error) => { worker.off('message', onMessage); reject(err); };
        const onMessage = (r: MaglevJobResult) => { worker.off('error', onError); resolve(r); };
        worker.once('message', onMessage);
        worker.once('error', onError);
        worker.postMessage(job);
      });
      if (!result.ok) throw new Error(result.message);
      tables.push(result.table);
    }
    return tables;
  } finally {
    await worker.terminate();
    addBuildTime(performance.now() - started);
  }
}
