/**
 * One BPF_PROG_TEST_RUN of the loaded program with its verdict checked: the XDP action it
 * returned and that exactly one verdict row {reason, action} moved (as reported: verdict_stats
 * and the fast counters).
 */
import assert from 'node:assert/strict';
import type { Dataplane } from '../../src/dataplane/dataplane';
import { LB } from '../../src/dataplane/abi';
import { REASONS } from '../../src/dataplane/types';
import fs from 'node:fs';
import path from 'node:path';
import { BpfMap } from '../../src/bpf';
import { dataplaneVerdictRows } from '../../src/dataplane/inspect';
import type { PacketCounter } from '../../src/dataplane/types';

export const XDP = { drop: 1, pass: 2, tx: 3 } as const;

/** Every verdict row's packet count as reported (verdict_stats and the fast counters:
 * src/dataplane/counters.ts), by row index. */
export function verdictCounts(dp: Dataplane): number[] {
  const rows = dataplaneVerdictRows(dp);
  return Array.from({ length: LB.REASON_COUNT * LB.ACTION_SLOTS }, (_, i) => rows.get(i)?.packets ?? 0);
}

/** The verdict rows as reported, from the maps pinned under `pinDir` (a daemon's). */
export function pinnedVerdictRows(pinDir: string): Map<number, PacketCounter> {
  const open = (name: string) => (fs.existsSync(path.join(pinDir, 'maps', name)) ? BpfMap.fromPin(path.join(pinDir, 'maps', name)) : null);
  const maps = { verdict_stats: open('verdict_stats'), backend_fast_stats: open('backend_fast_stats'), retired_stats: open('retired_stats') };
  try {
    return dataplaneVerdictRows({
      map: (name) => { const m = maps[name as keyof typeof maps]; if (!m) throw new Error(`no pinned ${name}`); return m; },
      optionalMap: (name) => maps[name as keyof typeof maps] ?? null,
    } as Parameters<typeof dataplaneVerdictRows>[0]);
  } finally {
    for (const m of Object.values(maps)) m?.close();
  }
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
