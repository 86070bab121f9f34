/**
 * Worker-thread entry of src/balancer/maglev-offthread.ts: builds the Maglev tables it is sent
 * ({ backends, size } jobs, in order) and posts each back; the main thread's event loop stays
 * free meanwhile (a 1000003-slot table takes ~0.4-1.3 s on this VM).
 */
import { parentPort } from 'node:worker_threads';
import { buildMaglevTable, type MaglevBackend } from './maglev';

export interface MaglevJob { backends: MaglevBackend[]; size: number }
export type MaglevJobResult = { ok: true; table: Uint32Array } | { ok: false; message: string };

parentPort?.on('message', (job: MaglevJob) => {
  let result: MaglevJobResult;
  try {
    result = { ok: true, table: buildMaglevTable(job.backends, job.size) };
  } catch (err) {
    result = { ok: false, message: (err as Error).message };
  }
  parentPort!.postMessage(result, result.ok ? [result.table.buffer as ArrayBuffer] : []);
});
