/**
 * Rates from counters: the data plane's counters only grow, so the API's rates are the
 * difference of two snapshots over the time between them. A 1 Hz sampler keeps the last 300
 * views (five minutes) for the dashboard's charts.
 *
 * Units: pps = packets per second; bps = BITS per second (the network convention); packets and
 * bytes are totals since the data plane was loaded.
 */
import { REASONS, XDP_ACTIONS, type FlowCounters, type PacketCounter, type StatsSnapshot } from '../dataplane/types';
import type { StatsView, BackendHealthState } from '../domain/types';

export const HISTORY_SAMPLES = 300;

/** What the view lists: the desired services in order, each with its backend keys and health. */
export interface StatsLayout {
  services: Array<{ name: string; backends: Array<{ key: string; health: BackendHealthState }> }>;
}

const ZERO_FLOW: FlowCounters = { fwdPackets: 0, fwdBytes: 0, revPackets: 0, revBytes: 0 };
const ZERO_COUNTER: PacketCounter = { packets: 0, bytes: 0 };

/** Growth of a counter; a counter that went down was reset (e.g. a reload), so it grew by its value.
 * Never negative, and never more than the counter's value. */
function delta(current: number, previous: number): number {
  return current >= previous ? current - previous : current;
}

/**
 * The view of `current` with rates against `previous` (null: no earlier sample, rates 0).
 * Pure: the same inputs give the same view.
 */
export function computeStatsView(current: StatsSnapshot, previous: StatsSnapshot | null, layout: StatsLayout): StatsView {
  const seconds = previous ? Math.max(0, (current.at - previous.at) / 1000) : 0;
  const rate = (cur: number, prev: number | undefined): number =>
    previous && seconds > 0 ? delta(cur, prev ?? 0) / seconds : 0;

  // A backend removed and added back between the two snapshots has a new data-plane id and
  // counters that started from 0 in between (even when they already exceed the old ones).
  const backendRestarted = (service: string, key: string): boolean => {
    const was = previous?.backendIds?.[service]?.[key];
    const is = current.backendIds?.[service]?.[key];
    return was !== undefined && is !== undefined && was !== is;
  };
  const flowRow = (cur: FlowCounters, prev: FlowCounters | undefined) => ({
    fwdPps: rate(cur.fwdPackets, prev?.fwdPackets), fwdBps: rate(cur.fwdBytes, prev?.fwdBytes) * 8,
    revPps: rate(cur.revPackets, prev?.revPackets), revBps: rate(cur.revBytes, prev?.revBytes) * 8,
    packets: cur.fwdPackets + cur.revPackets, bytes: cur.fwdBytes + cur.revBytes,
  });

  const services = layout.services.map((svc) => ({
    name: svc.name,
    ...flowRow(current.services[svc.name] ?? ZERO_FLOW, previous?.services[svc.name]),
    backends: svc.backends.map((b) => ({
      key: b.key,
      ...flowRow(current.backends[svc.name]?.[b.key] ?? ZERO_FLOW, backendRestarted(svc.name, b.key) ? ZERO_FLOW : previous?.backends[svc.name]?.[b.key]),
      health: b.health,
    })),
  }));

  const counterRows = <N extends string>(names: readonly N[], cur: Record<N, PacketCounter>, prev: Record<N, PacketCounter> | undefined) =>
    names.map((name) => {
      const c = cur[name] ?? ZERO_COUNTER;
      return { name, pps: rate(c.packets, prev?.[name]?.packets), packets: c.packets };
    });

  // Every frame the program sees leaves with exactly one XDP action: their sum is the total.
  const sum = (snap: StatsSnapshot | null, field: 'packets' | 'bytes'): number =>
    snap ? XDP_ACTIONS.reduce((acc, a) => acc + (snap.actions[a]?.[field] ?? 0), 0) : 0;
  const totals = {
    pps: rate(sum(current, 'packets'), sum(previous, 'packets')),
    bps: rate(sum(current, 'bytes'), sum(previous, 'bytes')) * 8,
    packets: sum(current, 'packets'),
    bytes: sum(current, 'bytes'),
  };

  return {
    at: current.at, interval: seconds, totals, services,
    actions: counterRows(XDP_ACTIONS, current.actions, previous?.actions),
    reasons: counterRows(REASONS, current.reasons, previous?.reasons),
  };
}

/** A fixed-size ring of views, oldest first. */
export class StatsHistory {
  private readonly samples: StatsView[] = [];
  constructor(readonly capacity = HISTORY_SAMPLES) {}

  push(view: StatsView): void {
    this.samples.push(view);
    if (this.samples.length > this.capacity) this.samples.splice(0, this.samples.length - this.capacity);
  }

  /** Views of the last `seconds` seconds (relative to the newest), oldest first. */
  last(seconds: number): StatsView[] {
    const newest = this.samples[this.samples.length - 1];
    if (!newest || !(seconds > 0)) return [];
    const from = newest.at - seconds * 1000;
    return this.samples.filter((v) => v.at > from);
  }

  latest(): StatsView | null { return this.samples[this.samples.length - 1] ?? null; }
  get size(): number { return this.samples.length; }
}

/**
 * Samples the data plane every `intervalMs`, turns each snapshot into a view against the one
 * before, keeps the history and hands each view to `onSample`.
 */
export class StatsSampler {
  readonly history: StatsHistory;
  private previous: StatsSnapshot | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly read: () => StatsSnapshot,
    private readonly layout: () => StatsLayout,
    private readonly onSample: (view: StatsView) => void = () => {},
    private readonly intervalMs = 1000,
    capacity = HISTORY_SAMPLES,
    /** Told when a timed sample fails (the timer keeps running). */
    private readonly onError: (err: unknown) => void = () => {},
  ) {
    this.history = new StatsHistory(capacity);
  }

  start(): void {
    if (this.timer) return;
    const tick = (): void => {
      try { this.sample(); } catch (err) { this.onError(err); }
    };
    tick();
    this.timer = setInterval(tick, this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Takes one sample now; returns its view. @throws what read() throws (the sample is skipped). */
  sample(): StatsView {
    const snapshot = this.read();
    const view = computeStatsView(snapshot, this.previous, this.layout());
    this.previous = snapshot;
    this.history.push(view);
    this.onSample(view);
    return view;
  }

  /** The newest view; before the first sample, one computed now without rates. */
  current(): StatsView {
    return this.history.latest() ?? computeStatsView(this.read(), null, this.layout());
  }
}
