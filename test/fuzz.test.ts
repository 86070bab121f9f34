/**
 * Differential fuzzing in the suite: 200,000 frames, 55 % from the IPv6 generator (> 100,000 IPv6) (XDPLB_FUZZ_PACKETS
 * changes the count, XDPLB_FUZZ_SEED the seed) through bpf/lb.o and test/refmodel.ts +
 * test/refmodel6.ts; see test/fuzz-core.ts and test/fuzz-gen6.ts. Millions:
 * `npm run fuzz -- --frames 1000000 [--seed N] [--v6-share P]` (test/fuzz-cli.ts).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { runFuzz } from './fuzz-core';

const PACKETS = Number(process.env.XDPLB_FUZZ_PACKETS ?? 200_000);
const SEED = Number(process.env.XDPLB_FUZZ_SEED ?? 0x5eed1234) >>> 0;
/** Issue 15: at least 100,000 IPv6 frames in the suite's run. */
const MIN_V6_FRAMES = 100_000;

describe(`differential fuzz: bpf/lb.o vs test/refmodel.ts (${PACKETS} packets, 55 % from the IPv6 generator, seed 0x${SEED.toString(16)})`, () => {
  test('every verdict and output frame matches the model (IPv4 and IPv6); counters add up', () => {
    console.log(`fuzz seed 0x${SEED.toString(16)} (set XDPLB_FUZZ_SEED to reproduce), ${PACKETS} packets`);
    const res = runFuzz({ frames: PACKETS, seed: SEED, v6Share: 0.55, log: (line) => console.log(line) });
    assert.equal(res.mismatchCount, 0, `${res.mismatchCount} mismatches (${res.v6Mismatches} of them IPv6; seed 0x${SEED.toString(16)}):\n${res.mismatches.join('\n')}`);
    assert.deepEqual(res.problems, [], 'counters, flow cache and coverage');
    if (PACKETS >= 2 * MIN_V6_FRAMES) assert.ok(res.v6Frames >= MIN_V6_FRAMES, `${res.v6Frames} IPv6 frames`);
  });
});
