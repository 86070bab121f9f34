/**
 * Warms the JIT on the reconciler's apply path before the first real change. A freshly started
 * daemon ran its first changes' loops over 65537 slots (Maglev build, transition marks, slot
 * diff, in-place words) in the interpreter: its first API changes and health verdicts took
 * 15-40 ms to reach the kernel instead of 2-3 (`xdplb bench control`, issue 16). Here the same
 * code runs on a throwaway Reconciler over maps in memory (no map of the data plane, no id, no
 * cached table of the daemon's own reconciler is touched; the Maglev tables may be real arrays
 * of their own): a service of 10 backends at each given
 * table size, installed, then drained and undrained one backend at a time.
 */
import { performance } from 'node:perf_hooks';
import { encodeU32 } from '../dataplane/abi';
import type { DataplaneState } from '../dataplane/types';
import { BpfMap } from '../bpf';
import { native } from '../bpf/native';
import { Reconciler, type CreateInnerTable, type KernelMap, type WriteInnerSlots } from './reconciler';
import { isPrime } from '../config/rules';

/** A map in memory with a KernelMap's interface (keys and values as the kernel's bytes). */
class MemoryMap implements KernelMap {
  private readonly entries = new Map<string, Buffer>();
  lookup(key: Buffer): Buffer | null { return this.entries.get(key.toString('hex')) ?? null; }
  update(key: Buffer, value: Buffer): void { this.entries.set(key.toString('hex'), Buffer.from(value)); }
  delete(key: Buffer): boolean { return this.entries.delete(key.toString('hex')); }
  *keys(): Iterable<Buffer> { for (const hex of this.entries.keys()) yield Buffer.from(hex, 'hex'); }
  get size(): number { return this.entries.size; }
}

/**
 * An outer map (maglev, maglev_marks) in memory over real inner arrays: an update takes an inner
 * map's fd, as the kernel's outer maps do, keeps its own reference to it, and holds its id (what
 * a lookup of a kernel outer map returns). close() drops the references: the arrays are freed.
 */
class HeldOuterMap extends MemoryMap {
  private readonly held: BpfMap[] = [];
  override update(key: Buffer, value: Buffer): void {
    const fd = value.readUInt32LE(0);
    const inner = BpfMap.fromId(native().mapInfo(fd, 'warm-up inner table').id);
    this.held.push(inner);
    super.update(key, encodeU32(inner.id));
  }
  close(): void { for (const m of this.held.splice(0)) m.close(); }
}

/** The kernel side of the warm-up: the real inner arrays' creation and in-place writes. */
export interface WarmUpKernel { createInnerTable: CreateInnerTable; writeInnerSlots: WriteInnerSlots }

export interface WarmUpResult { ms: number; applies: number; slotsWritten: number }

/**
 * Runs `rounds` single-backend changes per table size through a Reconciler over maps in memory.
 * With `kernel`, the Maglev tables are real inner arrays (created, written in place through
 * their mappings, then freed; never in any outer map of the data plane), so the native write
 * path is warm too. Sizes are Maglev table sizes (primes); 0 or none: nothing is done.
 * @throws Error only on a bug (the state is valid by construction)
 */
export function warmUpApplyPath(tableSizes: number[], rounds = 12, kernel?: WarmUpKernel, shape: { backends: number; perRound: number } = { backends: 10, perRound: 1 }): WarmUpResult {
  const started = performance.now();
  let applies = 0;
  let slotsWritten = 0;
  for (const size of [...new Set(tableSizes)].filter((s) => s > 0)) {
    const outer = () => (kernel ? new HeldOuterMap() : new MemoryMap());
    const maps = {
      services: new MemoryMap(), vips: new MemoryMap(), maglev: outer(), maglevMarks: outer(),
      backends: new MemoryMap(), reverse: new MemoryMap(), settings: new MemoryMap(),
    };
    let fd = 0;
    const reconciler = new Reconciler(maps, { maxServices: 4, maxBackends: shape.backends + 64, maxVips: 4, maxReverse: shape.backends + 64, maglevMaxSize: size },
      kernel ? kernel.createInnerTable : () => ({ fd: ++fd, marksFd: ++fd, close: () => {} }), undefined, () => 1_000_000 + applies * 1000,
      (outerValue, marksValue, indices, words) => {
        if (kernel && !kernel.writeInnerSlots(outerValue, marksValue, indices, words)) return false;
        slotsWritten += indices.length;
        return true;
      });
    try {
    const backends = Array.from({ length: shape.backends }, (_, i) => ({ address: `198.18.${1 + Math.floor(i / 250)}.${(i % 250) + 1}`, port: 8080, weight: 1, healthy: true, draining: false }));
    const state = (): DataplaneState => ({
      services: [{ name: 'warm-up', vip: '198.18.0.100', port: 80, protocol: 'tcp', mode: 'nat', tableSize: size, backends: backends.map((b) => ({ ...b })) }],
      settings: { fragPolicy: 'drop', sampleRate: 0, flowCache: true },
    });
      reconciler.apply(state());
      applies++;
      for (let r = 0; r < rounds; r++) {
        // One backend per round: a new one each time; a batch: drained, then undrained (a bulk change).
        const batch = shape.perRound > 1 ? Math.floor(r / 2) : r;
        for (let k = 0; k < shape.perRound; k++) {
          const b = backends[(batch * shape.perRound + k) % backends.length];
          b.draining = !b.draining;
        }
        reconciler.apply(state());
        applies++;
      }
      if (maps.maglev.lookup(encodeU32(reconciler.serviceId('warm-up') ?? 0)) === null) throw new Error('warm-up: no table was installed');
    } finally {
      if (maps.maglev instanceof HeldOuterMap) maps.maglev.close();
      if (maps.maglevMarks instanceof HeldOuterMap) maps.maglevMarks.close();
    }
  }
  return { ms: performance.now() - started, applies, slotsWritten };
}

/** Backends of the bulk warm-up's service (warmUpBulkPath). */
export const WARM_UP_POOL = 1000;

/**
 * The rounds above at the scale of a bulk change: a throwaway service of WARM_UP_POOL backends
 * at `size` slots, installed, then 100 of them drained and undrained (over maps in memory). The
 * 10-backend rounds leave cold what only large pools run: the Maglev build's phases for them
 * (its phase 2 walks the 537 slots left at 65537; the first two builds of a 1000-backend pool
 * took ~20 ms each instead of ~4) and the per-backend passes of plan and apply: the first bulk
 * change of `xdplb bench control` (issue 16) took 17-22 ms, 8-14 after. ~80-90 ms once, at
 * start. A size not above the pool or not a prime: nothing done.
 */
export function warmUpBulkPath(size: number): WarmUpResult {
  if (!(size > WARM_UP_POOL) || !isPrime(size)) return { ms: 0, applies: 0, slotsWritten: 0 };
  return warmUpApplyPath([size], 2, undefined, { backends: WARM_UP_POOL, perRound: 100 });
}
