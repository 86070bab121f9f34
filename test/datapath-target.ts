/**
 * The real XDP program loaded through the bridge (src/bpf), with the map access the harness
 * needs. Tests create one, run frames through it inside their namespace, and close it.
 */
import path from 'node:path';
import { BpfObject, BpfMap, repoRoot, type Program } from '../src/bpf';
import { LB_MAPS } from '../src/dataplane/lb.generated';
import { lbLoadOptions } from '../src/dataplane/load-options';
import { TEST_FLOW_SETS, type MapAccess } from './datapath-harness';

export const LB_OBJECT = () => path.join(repoRoot(), 'bpf', 'lb.o');

export interface Target {
  obj: BpfObject;
  program: Program;
  maps: MapAccess;
  map(name: string): BpfMap;
  close(): void;
}

export interface TargetOptions {
  seed?: number;
  maxEntries?: Record<string, number>;
  innerMaxEntries?: number;
  /** the nexthop_ttl_ns knob; default: the program's own (next-hop cache on) */
  nexthopTtlNs?: bigint;
}

/** Loads bpf/lb.o (hash_seed, next-hop TTL and map sizes as given; flows: TEST_FLOW_SETS sets). @throws BpfError when the load fails. */
export function loadTarget(opts: TargetOptions = {}): Target {
  // A small flows map (TEST_FLOW_SETS sets, as the model's): the fuzz test fills sets and evicts.
  const load = lbLoadOptions({
    hashSeed: (opts.seed ?? 0) >>> 0, flowSets: TEST_FLOW_SETS, flowSets6: TEST_FLOW_SETS, nexthopTtlNs: opts.nexthopTtlNs,
    maglevMaxSize: opts.innerMaxEntries || undefined,
  });
  load.maxEntries = { ...load.maxEntries, ...opts.maxEntries };
  const obj = BpfObject.load(LB_OBJECT(), load);
  const handles = new Map<string, BpfMap>();
  const inners = new Map<number, BpfMap>();
  const map = (name: string): BpfMap => {
    let m = handles.get(name);
    if (!m) {
      m = obj.map(name);
      handles.set(name, m);
    }
    return m;
  };
  let program: Program;
  try {
    program = obj.program('xdp_lb');
  } catch (err) {
    obj.close();
    throw err;
  }
  const maps: MapAccess = {
    possibleCpus: map('verdict_stats').valueBufferSize / map('verdict_stats').perCpuStride,
    update: (name, key, value) => map(name).update(key, value),
    delete: (name, key) => { map(name).delete(key); },
    lookup: (name, key) => map(name).lookup(key),
    keys: (name) => [...map(name).keys()],
    maxEntries: (name) => map(name).maxEntries,
    createInnerTable: (maxEntries, valueSize, values) => {
      // The outer maps' template flags (BPF_F_INNER_MAP | BPF_F_MMAPABLE): an inner map must match them.
      const inner = BpfMap.create({ type: 'array', name: 'xlbt_maglev', keySize: 4, valueSize, maxEntries, flags: LB_MAPS.maglev.inner.flags });
      const count = Math.min(maxEntries, values.length / valueSize);
      if (count) inner.updateBatchFlat(Buffer.from(Uint32Array.from({ length: count }, (_, i) => i).buffer), values.subarray(0, count * valueSize), count);
      inners.set(inner.fd, inner);
      return inner.fd;
    },
    readInnerTable: (fd) => {
      const inner = inners.get(fd)!;
      const out = Buffer.alloc(inner.maxEntries * inner.valueSize);
      for (const [k, v] of inner.lookupBatch()) v.copy(out, k.readUInt32LE(0) * inner.valueSize);
      return out;
    },
    closeFd: (fd) => { inners.get(fd)?.close(); inners.delete(fd); },
  };
  return {
    obj, program, maps, map,
    close: () => {
      for (const m of inners.values()) m.close();
      for (const m of handles.values()) m.close();
      program.close();
      obj.close();
    },
  };
}
