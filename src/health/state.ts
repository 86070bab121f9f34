/**
 * The health state machine of one backend, free of sockets and timers: every input carries
 * its time, so tests drive it with a fake clock.
 *
 *   checking --rise successes--> up --fall failures--> down --rise successes--> up ...
 *            --fall failures---> down
 *
 * 'checking' is a backend no verdict has been reached for yet: it takes no traffic (it enters
 * the Maglev table only once proven). Flap damping: a backend whose up/down changes exceed
 * `maxFlips` within `windowMs` is held down for `holdMs` (its probes go on; once the hold is
 * over, `rise` consecutive successes bring it up as usual). Slow start: a backend that comes up
 * from down or checking ramps its weight in `steps` equal steps over `durationMs`.
 */

export type Health = 'up' | 'down' | 'checking';

export interface FlapPolicy { maxFlips: number; windowMs: number; holdMs: number }
export interface SlowStartPolicy { durationMs: number; steps: number }

export interface HealthPolicy {
  rise: number;
  fall: number;
  flap: FlapPolicy;
  /** null = off */
  slowStart: SlowStartPolicy | null;
}

export const DEFAULT_FLAP: FlapPolicy = { maxFlips: 4, windowMs: 60_000, holdMs: 60_000 };
export const DEFAULT_SLOW_START_STEPS = 4;

/** The policy a health check spec asks for, with the documented defaults filled in. */
export function policyOf(spec: {
  rise: number; fall: number;
  flap?: { maxFlips?: number; windowMs?: number; holdMs?: number };
  slowStart?: { durationMs: number; steps?: number };
}): HealthPolicy {
  return {
    rise: spec.rise, fall: spec.fall,
    flap: { ...DEFAULT_FLAP, ...definedOnly(spec.flap ?? {}) },
    slowStart: spec.slowStart && spec.slowStart.durationMs > 0
      ? { durationMs: spec.slowStart.durationMs, steps: spec.slowStart.steps ?? DEFAULT_SLOW_START_STEPS }
      : null,
  };
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** A state change the machine made. */
export interface Transition { previous: Health; health: 'up' | 'down'; reason: string | null }

export class HealthMachine {
  health: Health;
  /** Why the backend is held down (flap damping), null when it is not held. */
  reason: string | null = null;
  heldUntil: number | null = null;
  successes = 0;
  failures = 0;
  /** Start of the current slow-start ramp; null when not ramping. */
  rampFrom: number | null = null;
  /**
   * The latest time weightFactor() was asked about in this ramp. The checker's step timer asks
   * at its step's time although it may fire a millisecond before it by the wall clock; the
   * reconcile that follows asks at the clock, and must not get the step before back (it built
   * the old table again, and the ramp skipped that step until the next one: health-lab saw
   * shares 1/4, 1/2 where 1/4, 2/5, 1/2 were due).
   */
  private rampSeen = 0;
  private flips: number[] = [];

  constructor(private readonly policy: HealthPolicy, initial: Health = 'checking') {
    this.health = initial;
  }

  /** Records one probe result at `now`; returns the transition it caused, if any. */
  record(ok: boolean, now: number): Transition | null {
    if (ok) { this.successes++; this.failures = 0; } else { this.failures++; this.successes = 0; }
    if (this.heldUntil !== null && now >= this.heldUntil) { this.heldUntil = null; this.reason = null; }
    if (ok && this.health !== 'up' && this.successes >= this.policy.rise) {
      if (this.heldUntil !== null) return null;   // held down: the hold decides, not the probes
      return this.change('up', now);
    }
    if (!ok && this.health !== 'down' && this.failures >= this.policy.fall) return this.change('down', now);
    return null;
  }

  private change(next: 'up' | 'down', now: number): Transition {
    const previous = this.health;
    if (previous !== 'checking' && this.policy.flap.holdMs > 0) {
      const { maxFlips, windowMs, holdMs } = this.policy.flap;
      this.flips = this.flips.filter((t) => t > now - windowMs);
      this.flips.push(now);
      if (this.flips.length > maxFlips) {
        const count = this.flips.length;
        this.flips = [];
        this.heldUntil = now + holdMs;
        this.reason = `flapping: ${count} changes within ${windowMs / 1000} s, held down for ${holdMs / 1000} s`;
        this.rampFrom = null;
        // Going down anyway, or refused coming up: either way it is down, and held.
        this.health = 'down';
        return { previous, health: 'down', reason: this.reason };
      }
    }
    this.health = next;
    this.rampFrom = next === 'up' && this.policy.slowStart ? now : null;
    this.rampSeen = 0;
    return { previous, health: next, reason: null };
  }

  /**
   * The share of its configured weight the backend takes at `now`: 1 outside a ramp, k/steps
   * during step k (1..steps-1) of a ramp.
   */
  weightFactor(now: number): { step: number; steps: number } {
    const ss = this.policy.slowStart;
    if (!ss || this.rampFrom === null || this.health !== 'up') return { step: 1, steps: 1 };
    if (now < this.rampSeen) now = this.rampSeen; else this.rampSeen = now;
    const stepMs = ss.durationMs / ss.steps;
    const step = Math.floor((now - this.rampFrom) / stepMs) + 1;
    if (step >= ss.steps) { this.rampFrom = null; return { step: 1, steps: 1 }; }
    return { step, steps: ss.steps };
  }

  /** When the ramp takes its next step (a table swap), or null when not ramping. */
  nextRampAt(now: number): number | null {
    const ss = this.policy.slowStart;
    if (!ss || this.rampFrom === null || this.health !== 'up') return null;
    const stepMs = ss.durationMs / ss.steps;
    const step = Math.floor((now - this.rampFrom) / stepMs) + 1;
    if (step >= ss.steps) return null;
    return this.rampFrom + step * stepMs;
  }
}
