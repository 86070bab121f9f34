/**
 * One BPF_PROG_TEST_RUN of the loaded program with its verdict checked: the XDP action it
 * returned and that exactly one verdict_stats row {reason, action} moved.
 */
import assert from 'node:assert/strict';
import type { Dataplane } from '../../src/dataplane/dataplane';
import { LB, LbCounterCodec, decodePerCpuSum, encodeU32 } from '../../src/dataplane/abi';
import { REASONS } from '../../src/dataplane/types';

export const XDP = { drop: 1, pass: 2, tx: 3 } as const;

/** Every verdict_stats row's packet count (summed over CPUs), by row index. */
export function verdictCounts(dp: Dataplane): number[] {
  const m = dp.map('verdict_stats');
  return Array.from({ length: LB.REASON_COUNT * LB.ACTION_SLOTS }, (_, i) => decodePerCpuSum(LbCounterCodec, m.lookup(encodeU32(i))!).packets);
}

/** Runs `frame` arriving on `ifindex`; asserts the action and that exactly one verdict {reason, action} was counted. @returns the output frame */
export function runWithVerdict(dp: Dataplane, ifindex: number, frame: Buffer, action: keyof typeof XDP, reason: (typeof REASONS)[number]): Buffer {
  const before = verdictCounts(dp);
  const res = dp.program.testRun(frame, { ingressIfindex: ifindex });
  const after = verdictCounts(dp);
  const moved = after.map((v, i) => v - before[i]).flatMap((d, i) => (d ? [`${REASONS[Math.floor(i / LB.ACTION_SLOTS)]}/${i % LB.ACTION_SLOTS}`] : []));
  assert.deepEqual(moved, [`${reason}/${XDP[action]}`], 'one verdict, this reason');
  assert.equal(res.retval, XDP[action]);
  return res.data;
}
