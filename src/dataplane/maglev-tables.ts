/**
 * The inner Maglev arrays of the maglev map (an ARRAY_OF_MAPS: service id -> inner array of
 * struct lb_maglev_slot): created at their own sizes (BPF_F_INNER_MAP), read back after adopt and
 * by the transition sweep, written slot by slot when a transition mark changes, sized for map
 * browsing. The reconciler (src/balancer) creates and reads them through these functions.
 *
 * A table travels as a flat Uint32Array of SLOT_WORDS host-order words per slot, as the kernel
 * holds struct lb_maglev_slot: backend_id, prev_id, epoch, and a word whose low byte is `seen`
 * and second byte `flags` (little-endian hosts; lb_abi.h).
 */
import { BpfMap, BPF_F_INNER_MAP } from '../bpf';
import { decodeU32 } from './abi';
import { LB_LAYOUTS } from './lb.generated';

/** u32 words per slot (struct lb_maglev_slot). */
export const SLOT_WORDS = 4;
const SLOT_BYTES = SLOT_WORDS * 4;
if (LB_LAYOUTS.lb_maglev_slot.size !== SLOT_BYTES) throw new Error('lb_maglev_slot is not 16 bytes');
/** Word offsets of a slot's fields in the flat table. */
export const SLOT = { backend: 0, prev: 1, epoch: 2, seenFlags: 3 } as const;

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

function openInner(outerValue: Buffer): BpfMap | null {
  try {
    return BpfMap.fromId(decodeU32(outerValue));
  } catch {
    return null; // freed meanwhile: the next apply installs a fresh one
  }
}

/** The slots (flat, SLOT_WORDS words each) of an installed inner table, from its outer-map value (the inner map id). */
export function readMaglevTable(outerValue: Buffer): Uint32Array | null {
  const inner = openInner(outerValue);
  if (!inner) return null;
  try {
    if (inner.valueSize !== SLOT_BYTES) return null; // another layout: replaced by the next apply
    const table = new Uint32Array(inner.maxEntries * SLOT_WORDS);
    for (const [key, value] of inner.lookupBatch()) {
      const at = decodeU32(key) * SLOT_WORDS;
      for (let w = 0; w < SLOT_WORDS; w++) table[at + w] = value.readUInt32LE(w * 4);
    }
    return table;
  } finally {
    inner.close();
  }
}

/** Writes single slots of an installed inner table in place ([slot index, its SLOT_WORDS words]); false when the table is gone. */
export function writeMaglevSlots(outerValue: Buffer, slots: Array<[number, Uint32Array]>): boolean {
  const inner = openInner(outerValue);
  if (!inner) return false;
  try {
    const keys = Buffer.alloc(slots.length * 4);
    const values = Buffer.alloc(slots.length * SLOT_BYTES);
    slots.forEach(([index, words], n) => {
      keys.writeUInt32LE(index, n * 4);
      for (let w = 0; w < SLOT_WORDS; w++) values.writeUInt32LE(words[w], n * SLOT_BYTES + w * 4);
    });
    if (slots.length) inner.updateBatchFlat(keys, values, slots.length);
    return true;
  } finally {
    inner.close();
  }
}

/** A new inner Maglev array (BPF_F_INNER_MAP, so its size may differ from the template) holding `slots` (flat, SLOT_WORDS words each). */
export function createMaglevTable(slots: Uint32Array): { fd: number; close(): void } {
  const count = slots.length / SLOT_WORDS;
  const table = BpfMap.create({
    type: 'array', name: 'maglev_table', keySize: 4, valueSize: SLOT_BYTES, maxEntries: count, flags: BPF_F_INNER_MAP,
  });
  try {
    // Keys and values as flat host-order arrays, written with one batch.
    const flatKeys = Buffer.from(Uint32Array.from({ length: count }, (_, i) => i).buffer);
    const flatValues = Buffer.from(Uint32Array.from(slots).buffer);
    table.updateBatchFlat(flatKeys, flatValues, count);
  } catch (err) {
    table.close();
    throw err;
  }
  return table;
}
