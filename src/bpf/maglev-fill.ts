/**
 * The addon's Maglev loops: the turn loop (native/maglev.cc) for src/balancer/maglev.ts, the same
 * steps and arithmetic as its TypeScript fillTable, ~2x faster (no bounds checks or tagged
 * integers in a loop of ~M ln M dependent loads and stores); and the transition pass
 * (native/slots.cc) for src/balancer/transitions.ts transitionSlots.
 */
import { native, type NativeAddon } from './native';

export type MaglevFill = NativeAddon['maglevFill'];

let fill: MaglevFill | null | undefined;

/** The native fill, or null when the addon is not built (a tool that only validates configs). */
export function nativeMaglevFill(): MaglevFill | null {
  if (fill === undefined) {
    try {
      fill = native().maglevFill ?? null;
    } catch {
      fill = null;
    }
  }
  return fill;
}

export type TransitionPass = NativeAddon['transitionPass'];

let pass: TransitionPass | null | undefined;

/** The addon's transitionSlots loop (native/slots.cc), or null when the addon is not built. */
export function nativeTransitionPass(): TransitionPass | null {
  if (pass === undefined) {
    try {
      pass = native().transitionPass ?? null;
    } catch {
      pass = null;
    }
  }
  return pass;
}
