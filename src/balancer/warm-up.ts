/**
 * Warms the JIT on the reconciler's apply path before the first real change. A freshly started
 * daemon ran its first changes' loops over 65537 slots (Maglev build, transition marks, slot
 * diff, in-place words) in the interpreter: its first API changes and health verdicts took
 * 15-40 ms to reach the kernel instead of 2-3 (`xdplb bench control`, issue 16). Here the same
 * code runs on a throwaway Reconciler over maps in memory (no kernel map, no id, no cached
 * table of the daemon's own reconciler is touched): a service of 10 backends at each given
 * table size, installed, then drained and undrained one backend at a time.
 */
import { performance } from 'node:perf_hooks';
import { encodeU32 } from '../dataplane/abi';
import type { DataplaneState } from '../dataplane/types';
import { Reconciler, type KernelMap } from './reconciler';

/** A map in memory with a KernelMap's interface (keys and values as the kernel's bytes). */
class MemoryMap implements KernelMap {
  private readonly entries = new Map<string, Buffer>();
  lookup(key: Buffer): Buffer | null { return this.entries.get(key.toString('hex')) ?? null; }
  update(key: Buffer, value: Buffer): void { this.entries.set(key.toString('hex'), Buffer.from(value)); }
  delete(key: Buffer): boolean { return this.entries.delete(key.toString('hex')); }
  *keys(): Iterable<Buffer> { for (const hex of this.entries.keys()) yield Buffer.from(hex, 'hex'); }
  get size(): number { return this.entries.size; }
}

export interface WarmUpResult { ms: number; applies: number; slotsWritten: number }

/**
 * Runs `rounds` single-backend changes per table size through a Reconciler over maps in memory.
 * Sizes are Maglev table sizes (primes); 0 or none: nothing is done.
 * @throws Error only on a bug (the state is valid by construction)
 */
export function warmUpApplyPath(tableSizes: number[], rounds = 12): WarmUpResult {
  const started = performance.now();
  let applies = 0;
  let slotsWritten = 0;
  for (const size of [...new Set(tableSizes)].filter((s) => s > 0)) {
    const maps = {
      services: new MemoryMap(), vips: new MemoryMap(), maglev: new MemoryMap(), maglevMarks: new MemoryMap(),
      backends: new MemoryMap(), reverse: new MemoryMap(), settings: new MemoryMap(),
    };
    let fd = 0;
    const reconciler = new Reconciler(maps, { maxServices: 4, maxBackends: 64, maxVips: 4, maxReverse: 64, maglevMaxSize: size },
      () => ({ fd: ++fd, marksFd: ++fd, close: () => {} }), undefined, () => 1_000_000 + applies * 1000,
      (_outer, _marks, indices) => { slotsWritten += indices.length; return true; });
    const backends = Array.from({ length: 10 }, (_, i) => ({ address: `198.18.0.${i + 1}`, port: 8080, weight: 1, healthy: true, draining: false }));
    const state = (): DataplaneState => ({
      services: [{ name: 'warm-up', vip: '198.18.0.100', port: 80, protocol: 'tcp', mode: 'nat', tableSize: size, backends: backends.map((b) => ({ ...b })) }],
      settings: { fragPolicy: 'drop', sampleRate: 0, flowCache: true },
    });
    reconciler.apply(state());
    applies++;
    for (let r = 0; r < rounds; r++) {
      const b = backends[r % backends.length];
      b.draining = !b.draining;
      reconciler.apply(state());
      applies++;
    }
    if (maps.maglev.lookup(encodeU32(reconciler.serviceId('warm-up') ?? 0)) === null) throw new Error('warm-up: no table was installed');
  }
  return { ms: performance.now() - started, applies, slotsWritten };
}
