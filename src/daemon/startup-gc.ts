/**
 * One full garbage collection during the daemon's start-up (issue 16): start-up's garbage
 * (modules, compiled schemas, the adopted maps' reads) is collected before the apply path is
 * warmed up, not by an old-space collection whose marking steps land on the first changes.
 * It runs before the warm-up, not after: a forced collection also drops compiled code, and the
 * first health verdict after a collection at the end of start-up took ~12 ms instead of ~5.
 */
import { performance } from 'node:perf_hooks';
import v8 from 'node:v8';
import vm from 'node:vm';

/** ms the collection took, or null when this V8 offers no way to ask for one. */
export function collectStartupGarbage(): number | null {
  try {
    // --expose-gc for a new context only: the function is taken from it, the flag put back.
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as (() => void) | undefined;
    v8.setFlagsFromString('--no-expose-gc');
    if (typeof gc !== 'function') return null;
    const started = performance.now();
    gc();
    return Math.round((performance.now() - started) * 10) / 10;
  } catch {
    return null;
  }
}
