import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { HealthMachine, policyOf, type Transition } from './state';
import { buildMaglevTable } from '../balancer/maglev';

const policy = (over: Parameters<typeof policyOf>[0] extends infer P ? Partial<P> : never = {}) =>
  policyOf({ rise: 2, fall: 2, ...over });

/** Feeds `results` one per `stepMs` from `t0`; returns the transitions with their times. */
function feed(m: HealthMachine, results: boolean[], t0: number, stepMs: number): Array<Transition & { at: number }> {
  const out: Array<Transition & { at: number }> = [];
  results.forEach((ok, i) => {
    const t = m.record(ok, t0 + i * stepMs);
    if (t) out.push({ ...t, at: t0 + i * stepMs });
  });
  return out;
}

describe('HealthMachine (fake clock)', () => {
  test('checking -> up after exactly rise successes; checking -> down after fall failures', () => {
    const m = new HealthMachine(policy({ rise: 3 }));
    assert.equal(m.health, 'checking');
    assert.equal(m.record(true, 0), null);
    assert.equal(m.record(true, 1000), null);
    assert.deepEqual(m.record(true, 2000), { previous: 'checking', health: 'up', reason: null });
    const d = new HealthMachine(policy());
    assert.equal(d.record(false, 0), null);
    assert.deepEqual(d.record(false, 1000), { previous: 'checking', health: 'down', reason: null });
  });

  test('flap damping: more than maxFlips changes in the window hold the backend down for holdMs', () => {
    const m = new HealthMachine(policy({ rise: 1, fall: 1, flap: { maxFlips: 3, windowMs: 60_000, holdMs: 30_000 } }), 'up');
    // down, up, down (3 flips: allowed), then up would be the 4th within 60 s -> held down.
    const t = feed(m, [false, true, false, true], 0, 1000);
    assert.deepEqual(t.map((x) => [x.previous, x.health, x.reason !== null]),
      [['up', 'down', false], ['down', 'up', false], ['up', 'down', false], ['down', 'down', true]]);
    assert.equal(m.health, 'down');
    assert.equal(m.heldUntil, 3000 + 30_000);
    assert.match(m.reason!, /flapping: 4 changes within 60 s, held down for 30 s/);
    // Healthy probes during the hold change nothing ...
    assert.deepEqual(feed(m, Array(29).fill(true), 4000, 1000), []);
    assert.equal(m.health, 'down');
    // ... and the first success after it brings the backend up (rise counted through the hold).
    assert.deepEqual(m.record(true, 33_000), { previous: 'down', health: 'up', reason: null });
    assert.equal(m.reason, null);
  });

  test('flap damping: a flip while up past the limit takes the backend down at once', () => {
    const m = new HealthMachine(policy({ rise: 1, fall: 1, flap: { maxFlips: 2, windowMs: 10_000, holdMs: 5_000 } }), 'up');
    const t = feed(m, [false, true, false], 0, 1000);
    assert.deepEqual(t.map((x) => x.health), ['down', 'up', 'down']);
    assert.notEqual(t[2].reason, null, 'the third change exceeds maxFlips=2');
    assert.equal(m.record(true, 3000), null, 'held');
  });

  test('flap damping: changes spread wider than the window are not flapping', () => {
    const m = new HealthMachine(policy({ rise: 1, fall: 1, flap: { maxFlips: 2, windowMs: 10_000, holdMs: 5_000 } }), 'up');
    const t = feed(m, [false, true, false, true, false, true], 0, 6000);
    assert.equal(t.length, 6);
    assert.ok(t.every((x) => x.reason === null && x.previous !== x.health));
  });

  test('flap damping off with holdMs 0; default policy is 4 changes per 60 s, held 60 s', () => {
    const off = new HealthMachine(policy({ rise: 1, fall: 1, flap: { holdMs: 0 } }), 'up');
    assert.ok(feed(off, Array.from({ length: 20 }, (_, i) => i % 2 === 1), 0, 100).every((x) => x.reason === null));
    assert.deepEqual(policyOf({ rise: 2, fall: 2 }).flap, { maxFlips: 4, windowMs: 60_000, holdMs: 60_000 });
    const def = new HealthMachine(policyOf({ rise: 1, fall: 1 }), 'up');
    const t = feed(def, [false, true, false, true, false], 0, 1000);
    assert.deepEqual(t.map((x) => x.reason !== null), [false, false, false, false, true]);
  });

  test('slow start: the weight ramps in `steps` equal steps over durationMs, then full', () => {
    const m = new HealthMachine(policy({ rise: 1, slowStart: { durationMs: 8000, steps: 4 } }), 'down');
    assert.deepEqual(m.weightFactor(0), { step: 1, steps: 1 }, 'not ramping while down');
    m.record(true, 10_000);
    const seen: string[] = [];
    for (let t = 10_000; t <= 19_000; t += 1000) seen.push(`${m.weightFactor(t).step}/${m.weightFactor(t).steps}`);
    assert.deepEqual(seen, ['1/4', '1/4', '2/4', '2/4', '3/4', '3/4', '1/1', '1/1', '1/1', '1/1']);
    const r = new HealthMachine(policy({ rise: 1, slowStart: { durationMs: 8000, steps: 4 } }), 'down');
    r.record(true, 0);
    assert.deepEqual([r.nextRampAt(0), r.nextRampAt(2000), r.nextRampAt(5999), r.nextRampAt(6000)], [2000, 4000, 6000, null]);
    // A backend that starts up (initialState up, or restored) does not ramp.
    assert.deepEqual(new HealthMachine(policy({ slowStart: { durationMs: 8000 } }), 'up').weightFactor(0), { step: 1, steps: 1 });
  });

  test('slow start: a step announced at its time stays taken when the clock is read a moment earlier (a timer that fired early)', () => {
    const m = new HealthMachine(policy({ rise: 1, fall: 1, slowStart: { durationMs: 15_000, steps: 3 } }), 'down');
    m.record(true, 1000);
    assert.deepEqual(m.weightFactor(1000), { step: 1, steps: 3 });
    // The step timer asks at the step's time (6000); the reconcile then reads a clock 1 ms behind.
    assert.deepEqual(m.weightFactor(6000), { step: 2, steps: 3 });
    assert.deepEqual(m.weightFactor(5999), { step: 2, steps: 3 }, 'the announced step is not taken back');
    assert.deepEqual(m.weightFactor(10_999), { step: 2, steps: 3 });
    // A new ramp (down, then up again) starts from its own first step.
    m.record(false, 12_000);
    m.record(true, 30_000);
    assert.deepEqual([m.weightFactor(30_000), m.weightFactor(34_999), m.weightFactor(35_000)], [{ step: 1, steps: 3 }, { step: 1, steps: 3 }, { step: 2, steps: 3 }]);
  });

  test('slow start: the recovering backend\'s Maglev share rises in steps (weights as the daemon builds them)', () => {
    const m = new HealthMachine(policy({ rise: 1, slowStart: { durationMs: 4000, steps: 4 } }), 'down');
    m.record(true, 0);
    const shares: number[] = [];
    for (const t of [0, 1000, 2000, 3000, 4000]) {
      const { step, steps } = m.weightFactor(t);
      // Three equal backends; "c" is the recovering one: others x steps, c x step.
      const table = buildMaglevTable([{ key: 'a', weight: steps }, { key: 'b', weight: steps }, { key: 'c', weight: step }], 1009);
      shares.push(Math.round((table.filter((i) => i === 2).length / table.length) * 100));
    }
    // c's share: 1/9, 2/10, 3/11, 4/12 and 1/3 of the slots (in percent, within one slot).
    assert.deepEqual(shares, [11, 20, 27, 33, 33]);
  });
});
