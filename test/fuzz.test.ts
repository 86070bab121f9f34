/**
 * Differential fuzzing in the suite: 100,000 frames (XDPLB_FUZZ_PACKETS changes the count,
 * XDPLB_FUZZ_SEED the seed) through bpf/lb.o and test/refmodel.ts; see test/fuzz-core.ts.
 * Millions: `npm run fuzz -- --frames 1000000 [--seed N]` (test/fuzz-cli.ts).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { runFuzz } from './fuzz-core';

const PACKETS = Number(process.env.XDPLB_FUZZ_PACKETS ?? 100_000);
const SEED = Number(process.env.XDPLB_FUZZ_SEED ?? 0x5eed1234) >>> 0;

describe(`differential fuzz: bpf/lb.o vs test/refmodel.ts (${PACKETS} packets, seed 0x${SEED.toString(16)})`, () => {
  test('every verdict and output frame matches the model; counters add up', () => {
    console.log(`fuzz seed 0x${SEED.toString(16)} (set XDPLB_FUZZ_SEED to reproduce), ${PACKETS} packets`);
    const res = runFuzz({ frames: PACKETS, seed: SEED, log: (line) => console.log(line) });
    assert.equal(res.mismatchCount, 0, `${res.mismatchCount} mismatches (seed 0x${SEED.toString(16)}):\n${res.mismatches.join('\n')}`);
    assert.deepEqual(res.problems, [], 'counters, flow cache and coverage');
  });
});
