/**
 * The packet counters' one contract between the program's maps and what user space reports
 * (bpf/lb_abi.h, docs/datapath.md "Counters"). The program counts a packet to or from a backend
 * that left with XDP_TX or XDP_REDIRECT only in backend_fast_stats (at backend id, plus `base`,
 * the backends map's size, for REDIRECT); every other packet in verdict_stats, and with a service in
 * service_stats and backend_stats. A removed backend's fast counters are carried into
 * retired_stats under its service (id 0 once the service is gone too). From these:
 *   backend  = backend_stats + its two fast slots
 *   service  = service_stats + its backends' fast slots + retired_stats[service]
 *   verdicts = verdict_stats + every fast slot and every retired entry, as {forwarded|reversed,
 *              tx|redirect}
 * Pure functions over decoded values: the inspector, the reconciler's carry and the tests that
 * read the maps directly all sum with these.
 */
import { LB } from './abi';
import type { FlowCounters, PacketCounter } from './types';

export const ZERO_FLOW: Readonly<FlowCounters> = Object.freeze({ fwdPackets: 0, fwdBytes: 0, revPackets: 0, revBytes: 0 });

/** The fast counters of one backend (or one retired_stats entry): by the action it left with. */
export interface FastCounters { tx: FlowCounters; redirect: FlowCounters }

/** backend_fast_stats index of backend `id` (redirect: the XDP_REDIRECT slot); `base` is the
 * program's fast_redirect_base, the backends map's size: half of backend_fast_stats. */
export function fastSlot(id: number, redirect: boolean, base: number): number {
  return id + (redirect ? base : 0);
}

export function addFlow(a: FlowCounters, b: FlowCounters): FlowCounters {
  return {
    fwdPackets: a.fwdPackets + b.fwdPackets, fwdBytes: a.fwdBytes + b.fwdBytes,
    revPackets: a.revPackets + b.revPackets, revBytes: a.revBytes + b.revBytes,
  };
}

export function isZeroFlow(c: FlowCounters): boolean {
  return c.fwdPackets === 0 && c.fwdBytes === 0 && c.revPackets === 0 && c.revBytes === 0;
}

/** Both actions' counters together: what the backend or service carried. */
export function fastTotal(f: FastCounters): FlowCounters {
  return addFlow(f.tx, f.redirect);
}

export function addFast(a: FastCounters, b: FastCounters): FastCounters {
  return { tx: addFlow(a.tx, b.tx), redirect: addFlow(a.redirect, b.redirect) };
}

/** verdict_stats index of {reason, action} (lb_abi.h). */
export function verdictIndex(reason: number, action: number): number {
  return reason * LB.ACTION_SLOTS + action;
}

/**
 * Adds fast counters into verdict rows (index -> counter, verdict_stats' indexing): forwarded
 * and reversed, each under tx and redirect. `rows` is changed and returned.
 */
export function addFastToVerdicts(rows: Map<number, PacketCounter>, f: FastCounters): Map<number, PacketCounter> {
  const add = (reason: number, action: number, packets: number, bytes: number) => {
    if (packets === 0 && bytes === 0) return;
    const i = verdictIndex(reason, action);
    const row = rows.get(i) ?? { packets: 0, bytes: 0 };
    rows.set(i, { packets: row.packets + packets, bytes: row.bytes + bytes });
  };
  for (const [action, c] of [[LB.ACTION_TX, f.tx], [LB.ACTION_REDIRECT, f.redirect]] as const) {
    add(LB.REASON_FORWARDED, action, c.fwdPackets, c.fwdBytes);
    add(LB.REASON_REVERSED, action, c.revPackets, c.revBytes);
  }
  return rows;
}

/** The maps' one read the verdict rows need: every entry (BpfMap.lookupBatch). */
export interface BatchReadable { lookupBatch(): Array<[Buffer, Buffer]> }

/**
 * The verdict rows as reported (index reason * LB.ACTION_SLOTS + action -> packets, bytes),
 * from the maps themselves: verdict_stats, every backend_fast_stats slot and every retired_stats
 * entry (both absent in pins of a build before them). Reads all three whole: for tests and
 * tools; the inspector reads only the backends it knows.
 */
export function readVerdictRows(verdictStats: BatchReadable, fastStats: BatchReadable | null, retired: BatchReadable | null,
  decode: { counter(value: Buffer): PacketCounter; flow(value: Buffer): FlowCounters; retired(value: Buffer): FastCounters }): Map<number, PacketCounter> {
  const rows = new Map<number, PacketCounter>();
  for (const [key, value] of verdictStats.lookupBatch()) {
    const c = decode.counter(value);
    if (c.packets !== 0 || c.bytes !== 0) rows.set(key.readUInt32LE(0), c);
  }
  const fast = fastStats?.lookupBatch() ?? [];
  for (const [key, value] of fast) {
    const c = decode.flow(value);
    if (isZeroFlow(c)) continue;
    const redirect = key.readUInt32LE(0) >= fast.length / 2;
    addFastToVerdicts(rows, redirect ? { tx: { ...ZERO_FLOW }, redirect: c } : { tx: c, redirect: { ...ZERO_FLOW } });
  }
  for (const [, value] of retired?.lookupBatch() ?? []) addFastToVerdicts(rows, decode.retired(value));
  return rows;
}
