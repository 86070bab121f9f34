/**
 * The inner Maglev arrays of the maglev map (an ARRAY_OF_MAPS: service id -> inner array of
 * backend ids): created at their own sizes (BPF_F_INNER_MAP), read back after adopt, sized for
 * map browsing. The reconciler (src/balancer) creates and reads them through these functions.
 */
import { BpfMap, BPF_F_INNER_MAP } from '../bpf';
import { decodeU32 } from './abi';

/** Entries of the inner map with this id, or null when it is gone. */
export function innerTableSize(id: number): number | null {
  try {
    const inner = BpfMap.fromId(id);
    const size = inner.maxEntries;
    inner.close();
    return size;
  } catch {
    return null;
  }
}

/** The backend ids of an installed inner table, from its outer-map value (the inner map id). */
export function readMaglevTable(outerValue: Buffer): Uint32Array | null {
  let inner: BpfMap;
  try {
    inner = BpfMap.fromId(decodeU32(outerValue));
  } catch {
    return null; // freed meanwhile: the next apply installs a fresh one
  }
  try {
    const table = new Uint32Array(inner.maxEntries);
    for (const [key, value] of inner.lookupBatch()) table[decodeU32(key)] = decodeU32(value);
    return table;
  } finally {
    inner.close();
  }
}

/** A new inner Maglev array (BPF_F_INNER_MAP, so its size may differ from the template) holding `entries`. */
export function createMaglevTable(entries: Uint32Array): { fd: number; close(): void } {
  const table = BpfMap.create({
    type: 'array', name: 'maglev_table', keySize: 4, valueSize: 4, maxEntries: entries.length, flags: BPF_F_INNER_MAP,
  });
  try {
    // Two flat host-order u32 arrays, written with one batch.
    const flatKeys = Buffer.from(Uint32Array.from(entries, (_, i) => i).buffer);
    const flatValues = Buffer.from(Uint32Array.from(entries).buffer);
    table.updateBatchFlat(flatKeys, flatValues, entries.length);
  } catch (err) {
    table.close();
    throw err;
  }
  return table;
}
