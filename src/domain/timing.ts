/**
 * Where a change's time goes: the steps one API change passes through (HTTP in, the
 * controller's queue, validation, the config write, the Maglev build, the map writes, the
 * wait for the write's fsync, the rename into place, the answer), measured in the daemon and sent back as a `Server-Timing`
 * header (src/api/timing.ts), which `xdplb bench control` reads to show the breakdown.
 *
 * A timer rides with the request through AsyncLocalStorage: the controller and the kernel
 * driver mark their steps without knowing of HTTP (a change with no timer, e.g. a file reload,
 * marks nothing).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { performance } from 'node:perf_hooks';

/** The steps, in the order a change passes them (a step not passed is absent). */
export const CHANGE_STEPS = ['http', 'queue', 'validate', 'persist', 'build', 'maps', 'fsync', 'commit', 'respond'] as const;
export type ChangeStep = typeof CHANGE_STEPS[number];

export class ChangeTimer {
  /** performance.now() at arrival (the request's first hook). */
  readonly start: number;
  /** Wall clock (ms since the epoch, sub-ms) at arrival: other processes on the host compare with it. */
  readonly startEpochMs: number;
  private last: number;
  readonly steps = new Map<ChangeStep, number>();
  /** ms after arrival at which the kernel maps held the change (the end of the map writes). */
  kernelAtMs: number | null = null;

  constructor(now = performance.now()) {
    this.start = now;
    this.last = now;
    this.startEpochMs = performance.timeOrigin + now;
  }

  /** Ends `step` now: the time since the previous mark is added to it. */
  mark(step: ChangeStep, now = performance.now()): void {
    this.steps.set(step, (this.steps.get(step) ?? 0) + (now - this.last));
    this.last = now;
  }

  /** Splits the time since the previous mark between two steps (`first` takes `firstMs` of it). */
  split(first: ChangeStep, firstMs: number, second: ChangeStep, now = performance.now()): void {
    const elapsed = now - this.last;
    const a = Math.min(Math.max(firstMs, 0), elapsed);
    this.steps.set(first, (this.steps.get(first) ?? 0) + a);
    this.steps.set(second, (this.steps.get(second) ?? 0) + (elapsed - a));
    this.last = now;
  }

  /** The kernel holds the change from now on. */
  inKernel(now = performance.now()): void {
    this.kernelAtMs = now - this.start;
  }

  /** `Server-Timing` header value: one `step;dur=ms` per step, then `kernel` and `arrival` (epoch ms). */
  header(): string {
    const parts = CHANGE_STEPS.filter((s) => this.steps.has(s)).map((s) => `${s};dur=${this.steps.get(s)!.toFixed(3)}`);
    if (this.kernelAtMs !== null) parts.push(`kernel;dur=${this.kernelAtMs.toFixed(3)}`);
    parts.push(`arrival;desc="${this.startEpochMs.toFixed(3)}"`);
    return parts.join(', ');
  }
}

/** The timer of the change being handled, if any. */
export const changeTimers = new AsyncLocalStorage<ChangeTimer>();

/** Marks `step` on the current change's timer (no-op without one). */
export function markChange(step: ChangeStep): void {
  changeTimers.getStore()?.mark(step);
}

/** Parses a `Server-Timing` header written by ChangeTimer.header(). */
export function parseServerTiming(header: string | null): { steps: Partial<Record<ChangeStep, number>>; kernelMs: number | null; arrivalEpochMs: number | null } {
  const steps: Partial<Record<ChangeStep, number>> = {};
  let kernelMs: number | null = null;
  let arrivalEpochMs: number | null = null;
  for (const part of (header ?? '').split(',')) {
    const [name, ...params] = part.trim().split(';');
    const dur = params.find((p) => p.startsWith('dur='));
    const desc = params.find((p) => p.startsWith('desc='));
    if (name === 'kernel' && dur) kernelMs = Number(dur.slice(4));
    else if (name === 'arrival' && desc) arrivalEpochMs = Number(desc.slice(5).replace(/"/g, ''));
    else if ((CHANGE_STEPS as readonly string[]).includes(name) && dur) steps[name as ChangeStep] = Number(dur.slice(4));
  }
  return { steps, kernelMs, arrivalEpochMs };
}
