/**
 * The load options of bpf/lb.o, built in one place for every loader: a fresh load
 * (Dataplane.load), a program replacement over pinned maps (Dataplane.replaceProgram), the
 * daemon's "is the pinned program current" probe, and the test harness (test/datapath-target.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { LoadOptions } from '../bpf';
import { encodeU32 } from './abi';
import type { LbGlobalName, LbMapName } from './lb.generated';

/** Maps of bpf/lb.o, all pinned and all reused by replaceProgram. */
export const MAP_NAMES = [
  'services', 'vips', 'maglev', 'backends', 'reverse', 'flows', 'settings', 'tx_ports',
  'service_stats', 'backend_stats', 'verdict_stats', 'events', 'reverse_frags', 'if_macs', 'maglev_marks', 'service_slots',
  'services6', 'vips6', 'backends6', 'reverse6', 'reverse_frags6', 'flows6', 'service_slots6', 'maglev_std',
  'backend_fast_stats', 'retired_stats',
] as const satisfies readonly LbMapName[];
export type MapName = (typeof MAP_NAMES)[number];
/** Maps a later build added without changing the layout of the others: pins of an earlier build
 * lack them and are adopted all the same (the data plane works without them). */
export const OPTIONAL_MAPS: ReadonlySet<MapName> = new Set<MapName>(['maglev_std', 'backend_fast_stats', 'retired_stats']);

export interface LbLoadParams {
  /** the hash_seed global: every node behind one ECMP group must use the same */
  hashSeed: number;
  /** sets of the flows map (a power of two): its size, and the flow_sets_mask global */
  flowSets: number;
  /** sets of the flows6 map (a power of two): its size, and flow_sets_mask6; default: the object's */
  flowSets6?: number;
  /** the Maglev inner template's size (largest table accepted); default: the object's */
  maglevMaxSize?: number;
  /** services, maglev, service_stats, retired_stats; default: the object's */
  maxServices?: number;
  /** backends, backend_stats, next_hops (one cache slot per backend id), reverse_frags;
   * backend_fast_stats twice that (a TX and a REDIRECT slot per backend id; the fast_redirect_base
   * global) */
  maxBackends?: number;
  maxVips?: number;
  maxReverse?: number;
  /** the nexthop_ttl_ns global; default: the program's own */
  nexthopTtlNs?: bigint;
  /**
   * A pin directory whose maps/<name> are reused (MAP_NAMES): those keep the size they were
   * pinned with, so only the maps that are not pinned (next_hops) are sized here.
   */
  reusePinDir?: string;
}

/** The u32 a global holds. @throws Error naming `what` when `value` is not in 0..2^32-1 */
function u32Global(value: number, what: string): Buffer {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new Error(`dataplane: ${what} ${value} is not an integer in 0..2^32-1`);
  }
  return encodeU32(value);
}

/**
 * The BpfObject.load options for bpf/lb.o.
 * @throws Error when hashSeed is not a u32 or flowSets not a power of two
 */
export function lbLoadOptions(p: LbLoadParams): LoadOptions {
  if (!Number.isInteger(p.flowSets) || p.flowSets < 1 || (p.flowSets & (p.flowSets - 1)) !== 0) {
    throw new Error(`dataplane: flow sets ${p.flowSets} is not a power of two`);
  }
  if (p.flowSets6 !== undefined && (!Number.isInteger(p.flowSets6) || p.flowSets6 < 1 || (p.flowSets6 & (p.flowSets6 - 1)) !== 0)) {
    throw new Error(`dataplane: IPv6 flow sets ${p.flowSets6} is not a power of two`);
  }
  const globals: Partial<Record<LbGlobalName, Buffer>> = {
    hash_seed: u32Global(p.hashSeed, 'hashSeed'),
    flow_sets_mask: encodeU32(p.flowSets - 1),
  };
  if (p.nexthopTtlNs !== undefined) {
    globals.nexthop_ttl_ns = Buffer.alloc(8);
    globals.nexthop_ttl_ns.writeBigUInt64LE(p.nexthopTtlNs);
  }
  const sizes: Partial<Record<LbMapName, number>> = { flows: p.flowSets };
  if (p.flowSets6 !== undefined) {
    globals.flow_sets_mask6 = encodeU32(p.flowSets6 - 1);
    sizes.flows6 = p.flowSets6;
  }
  const set = (value: number | undefined, names: LbMapName[]) => {
    if (value !== undefined) for (const n of names) sizes[n] = value;
  };
  set(p.maxServices, ['services', 'maglev', 'maglev_marks', 'service_stats', 'services6', 'maglev_std', 'retired_stats']);
  set(p.maxBackends, ['backends', 'backend_stats', 'next_hops', 'reverse_frags', 'backends6', 'next_hops6', 'reverse_frags6']);
  set(p.maxBackends === undefined ? undefined : p.maxBackends * 2, ['backend_fast_stats']);
  if (p.maxBackends !== undefined) globals.fast_redirect_base = u32Global(p.maxBackends, 'maxBackends');
  set(p.maxVips, ['vips', 'vips6']);
  set(p.maxReverse, ['reverse', 'reverse6']);
  const options: LoadOptions = { globals };
  const dir = p.reusePinDir;
  if (dir !== undefined) {
    // A map the pins lack (OPTIONAL_MAPS: new in a later build) is created by this load.
    const pinned = MAP_NAMES.filter((n) => !OPTIONAL_MAPS.has(n) || fs.existsSync(path.join(dir, 'maps', n)));
    options.reuseMaps = Object.fromEntries(pinned.map((n) => [n, path.join(dir, 'maps', n)]));
    for (const n of pinned) delete sizes[n];
  }
  options.maxEntries = sizes;
  if (p.maglevMaxSize !== undefined) options.innerMaxEntries = { maglev: p.maglevMaxSize, maglev_marks: p.maglevMaxSize };
  return options;
}
