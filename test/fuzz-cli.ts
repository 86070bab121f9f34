/**
 * `npm run fuzz -- --frames N [--seed S]`: the differential fuzz (test/fuzz-core.ts) outside the
 * suite, for millions of frames. The seed is random when omitted and printed first; every
 * mismatch is printed with it; exit status 0 = no mismatch and every check held, 1 = a
 * mismatch or a failed check, 2 = bad arguments. Needs root and a built tree (npm run build).
 */
import { randomInt } from 'node:crypto';
import { runFuzz, MAX_FUZZ_FRAMES } from './fuzz-core';

const USAGE = `usage: npm run fuzz -- [--frames N] [--seed S] [--v6-share P]
  --frames N    frames to run, 4..${MAX_FUZZ_FRAMES} (default 1000000)
  --seed S      xorshift seed, decimal or 0x hex (default: random, printed)
  --v6-share P  share of IPv6 frames, 0..1 (default 0.5)`;

/** Parses the arguments. @throws Error naming the bad argument */
export function parseFuzzArgs(argv: string[]): { frames: number; seed: number | null; v6Share: number } {
  let frames = 1_000_000;
  let seed: number | null = null;
  let v6Share = 0.5;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = argv[i + 1];
    if (arg === '--help' || arg === '-h') throw new Error(USAGE);
    if (arg !== '--frames' && arg !== '--seed' && arg !== '--v6-share') throw new Error(`unknown argument '${arg}'\n${USAGE}`);
    if (value === undefined) throw new Error(`${arg} needs a value\n${USAGE}`);
    i++;
    if (arg === '--v6-share') {
      const p = Number(value);
      if (!/^(0|1|0?\.\d+|1\.0*)$/.test(value) || !(p >= 0 && p <= 1)) throw new Error(`--v6-share ${value}: must be a number in 0..1`);
      v6Share = p;
      continue;
    }
    if (!/^(0x[0-9a-f]+|\d+)$/i.test(value)) throw new Error(`${arg} ${value}: not a non-negative integer`);
    const n = Number(value);
    if (arg === '--frames') {
      if (!Number.isSafeInteger(n) || n < 4 || n > MAX_FUZZ_FRAMES) throw new Error(`--frames ${value}: must be 4..${MAX_FUZZ_FRAMES}`);
      frames = n;
    } else {
      if (n > 0xffffffff) throw new Error(`--seed ${value}: must fit in 32 bits`);
      seed = n;
    }
  }
  return { frames, seed, v6Share };
}

function main(): number {
  let args: { frames: number; seed: number | null; v6Share: number };
  try {
    args = parseFuzzArgs(process.argv.slice(2));
  } catch (err) {
    console.error((err as Error).message);
    return 2;
  }
  const seed = args.seed ?? randomInt(1, 0x100000000);
  console.log(`fuzz: seed 0x${seed.toString(16)}, ${args.frames} frames (reproduce: npm run fuzz -- --frames ${args.frames} --seed 0x${seed.toString(16)} --v6-share ${args.v6Share})`);
  const res = runFuzz({ frames: args.frames, seed, v6Share: args.v6Share, show: Number(process.env.XDPLB_FUZZ_SHOW ?? 10), log: (line) => console.log(line) });
  for (const p of res.problems) console.log(`fuzz: FAILED CHECK ${p}`);
  const ok = res.mismatchCount === 0 && res.problems.length === 0;
  console.log(`fuzz: ${ok ? 'OK' : 'FAILED'}: ${res.frames} frames (${res.v6Frames} IPv6, ${res.v6Mismatches} of their mismatches), seed 0x${seed.toString(16)}, ${res.mismatchCount} mismatches, ${res.problems.length} failed checks, ${(res.ms / 1000).toFixed(1)} s`);
  return ok ? 0 : 1;
}

if (require.main === module) process.exitCode = main();
