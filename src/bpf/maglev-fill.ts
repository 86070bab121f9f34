/**
 * The addon's Maglev loops: the turn loop (native/maglev.cc) for src/balancer/maglev.ts, the same
 * steps and arithmetic as its TypeScript fillTable, ~2x faster (no bounds checks or tagged
 * integers in a loop of ~M ln M dependent loads and stores); and the transition pass
 * (native/slots.cc) for src/balancer/transitions.ts transitionSlots.
 */
import { native, type NativeAddon } from './native';

export type MaglevFill = NativeAddon['maglevFill'];
export type TransitionPass = NativeAddon['transitionPass'];

/** A getter of one addon function, looked up once: null when the addon is not built (a tool
 * that only validates configs). */
function optionalNative<K extends 'maglevFill' | 'transitionPass'>(name: K): () => NativeAddon[K] | null {
  let fn: NativeAddon[K] | null | undefined;
  return () => {
    if (fn === undefined) {
      try {
        fn = native()[name] ?? null;
      } catch {
        fn = null;
      }
    }
    return fn;
  };
}

/** The native fill, or null when the addon is not built. */
export const nativeMaglevFill: () => MaglevFill | null = optionalNative('maglevFill');

/** The addon's transitionSlots loop, or null when the addon is not built. */
export const nativeTransitionPass: () => TransitionPass | null = optionalNative('transitionPass');
