/**
 * The cluster as one node sees it (GET /api/v1/cluster, `xdplb cluster status`) and node drain
 * (PUT /api/v1/nodes/{name}/drain, `xdplb node drain|undrain`). Shapes: the cluster contract
 * (docs/api.md). In file mode the cluster is this node alone, at revision 0.
 *
 * Each node publishes its NodeStatus (src/store/etcd.ts: PREFIX/nodes/NAME under its lease)
 * every publishIntervalMs and whenever its store state or drain changes; any node's view reads
 * them all. Health stays per node: `disagreements` lists the backends whose verdicts differ
 * between the alive nodes.
 */
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import type { Logger } from 'pino';
import { XdplbError } from '../domain/errors';
import type { ServiceView, StatsView, TransitionsView } from '../domain/types';
import type { DrainState, EtcdStore } from '../store/etcd';
import { computeDisagreements, type BgpStatus, type ClusterView, type HealthWord, type NodeStatus } from '../domain/cluster';

export type { HealthWord, BgpStatus, NodeStatus, Disagreement, ClusterView } from '../domain/cluster';
export { computeDisagreements } from '../domain/cluster';

/** What the daemon plugs in (the bgp side implements both; the defaults are safe no-ops). */
export interface ClusterHooks {
  /** The node's drain changed: withdraw (drain) or announce again, keep forwarding. */
  onDrain(drain: boolean, graceSeconds: number): void | Promise<void>;
  /** BGP state for NodeStatus.bgp (null: no BGP on this node). */
  bgpStatus(): BgpStatus | null;
}

/** The parts of the controller a node status needs. */
export interface StatusSource {
  listServices(): ServiceView[];
  stats(): StatsView;
  interfaces(): Array<{ ifname: string }>;
  /** The data plane's transitions (GET /api/v1/transitions); absent: none. */
  transitions?(): TransitionsView;
  /** Calls `listener` when the moved-slot count changes; returns the unsubscribe function. */
  onTransitionsChange?(listener: () => void): () => void;
}

/** Moved Maglev slots over every service of a transitions view; 0 with the flow cache off (no
 * node remembers a flow then, so no node holds what another lacks). */
export function movedSlotsOf(view: TransitionsView | null | undefined): number {
  if (!view || !view.flowCache) return 0;
  return view.services.reduce((n, s) => n + s.movedSlots, 0);
}

export const NODE_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

/** The default node name: the host name, cut to a valid node name. */
export function defaultNodeName(): string {
  const name = os.hostname().replace(/[^A-Za-z0-9_.-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 63);
  return name || 'node';
}

/** Host CPU time in ticks, all CPUs (user nice system idle iowait irq softirq steal); null when unreadable. */
function readHostCpu(): { busy: number; total: number } | null {
  try {
    const fields = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/).slice(1, 9).map(Number);
    if (fields.length < 8 || fields.some((f) => !Number.isFinite(f))) return null;
    const total = fields.reduce((a, b) => a + b, 0);
    return { busy: total - fields[3] - fields[4], total };
  } catch {
    return null;
  }
}

export interface ClusterServiceOptions {
  nodeName: string;
  source: StatusSource;
  store: EtcdStore | null;
  logger: Logger;
  hooks?: Partial<ClusterHooks>;
  publishIntervalMs?: number;
  /** A published status older than this is shown as not alive (default 3 x publishIntervalMs + 5 s). */
  aliveWindowMs?: number;
}

export class ClusterService extends EventEmitter {
  readonly nodeName: string;
  readonly mode: 'file' | 'etcd';
  readonly store: EtcdStore | null;
  hooks: ClusterHooks;
  private readonly source: StatusSource;
  private readonly logger: Logger;
  private readonly publishIntervalMs: number;
  private readonly aliveWindowMs: number;
  private drain: DrainState = { drain: false, graceSeconds: 0 };
  private timer: NodeJS.Timeout | null = null;
  private unsubscribeTransitions: (() => void) | null = null;
  private cpuMark = readHostCpu() ?? { busy: 0, total: 0 };
  private cpuShare = 0;
  private lastNodes: NodeStatus[] = [];

  constructor(opts: ClusterServiceOptions) {
    super();
    this.nodeName = opts.nodeName;
    this.store = opts.store;
    this.mode = opts.store ? 'etcd' : 'file';
    this.source = opts.source;
    this.logger = opts.logger;
    this.publishIntervalMs = opts.publishIntervalMs ?? 1000;
    this.aliveWindowMs = opts.aliveWindowMs ?? 3 * this.publishIntervalMs + 5000;
    this.hooks = {
      onDrain: opts.hooks?.onDrain ?? ((drain) => { this.logger.info({ drain }, 'node drain changed (no BGP here: forwarding is unchanged)'); }),
      bgpStatus: opts.hooks?.bgpStatus ?? (() => null),
    };
    this.store?.on('drain', (state: DrainState) => { void this.applyDrain(state); });
    // Published a moment later: a store change is recorded just before the controller makes
    // the new state current (and several come together).
    this.store?.on('change', () => { this.emit('change'); this.publishSoon(); });
  }

  /** The node's drain as it applies now. */
  drained(): DrainState { return { ...this.drain }; }

  /** Announce-side freshness (the contract's store.fresh()): always true in file mode. */
  fresh(): boolean { return this.store ? this.store.fresh() : true; }

  /** Starts publishing (etcd mode) and reads this node's stored drain. */
  async start(): Promise<void> {
    if (this.store) {
      try { await this.applyDrain(await this.store.readDrain(this.nodeName)); } catch (err) {
        this.logger.warn({ err: (err as Error).message }, 'cannot read this node\'s drain from the store');
      }
    }
    this.timer = setInterval(() => { this.sampleCpu(); void this.publish(); }, this.publishIntervalMs);
    this.timer.unref();
    // A transition's start and end are published at once, not up to publishIntervalMs later:
    // the others refuse to drain this node by its published count (assertQuiet), and a
    // health check's change, which no store revision announces, starts one too.
    this.unsubscribeTransitions ??= this.source.onTransitionsChange?.(() => this.publishSoon()) ?? null;
    await this.publish();
  }

  stop(): void {
    this.unsubscribeTransitions?.();
    this.unsubscribeTransitions = null;
    if (this.timer) clearInterval(this.timer);
    if (this.publishTimer) clearTimeout(this.publishTimer);
    this.timer = null;
    this.publishTimer = null;
  }

  /**
   * Host CPU busy since the last sample, as a share of one CPU: /proc/stat's first line, so
   * softirq time (where XDP runs) counts, which the daemon's own process time would miss. Nodes
   * of one lab share one host and so show the same figure; on real nodes it is the node's.
   */
  private sampleCpu(): void {
    const now = readHostCpu();
    if (!now) return;
    const last = this.cpuMark;
    this.cpuMark = now;
    const ticks = now.total - last.total;
    if (last.total > 0 && ticks > 0) this.cpuShare = Math.max(0, ((now.busy - last.busy) / ticks) * os.cpus().length);
  }

  private async applyDrain(state: DrainState): Promise<void> {
    const next = { drain: !!state.drain, graceSeconds: state.drain ? Math.max(0, Number(state.graceSeconds) || 0) : 0 };
    if (next.drain === this.drain.drain && next.graceSeconds === this.drain.graceSeconds) return;
    this.drain = next;
    this.logger.warn({ drain: next.drain, graceSeconds: next.graceSeconds }, next.drain ? 'node drained' : 'node undrained');
    try {
      await this.hooks.onDrain(next.drain, next.graceSeconds);
    } catch (err) {
      this.logger.error({ err: (err as Error).message }, 'drain hook failed');
    }
    this.emit('change');
    await this.publish();
  }

  /** This node's transitions, or null (none kept, or unreadable: logged). */
  private ownTransitions(): TransitionsView | null {
    try {
      return this.source.transitions?.() ?? null;
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'cannot read the transitions');
      return null;
    }
  }

  /**
   * Refuses to drain `name` while a connection it carries could be reset once it is withdrawn:
   * a connection opened during a Maglev transition is remembered only by the node that saw its
   * SYN, and ECMP then sends it to the other nodes, which send a packet they do not remember in a
   * moved slot to the slot's previous backend, and that backend resets it (docs/cluster.md
   * "Transitions and ECMP"). So no node may have moved slots: not the target (its published
   * count), not this node (its own count, which also stands for a target whose published status
   * is a moment old: every node applies the same changes), and not any other alive node that
   * would take the target's flows (`others`, their published counts; a drained node takes none: a
   * health check's change is one node's alone).
   * @throws XdplbError CONFLICT naming the node with moved slots, their count and the way out
   */
  private assertQuiet(name: string, target: NodeStatus | null, others: NodeStatus[] = []): void {
    const view = this.ownTransitions();
    const own = movedSlotsOf(view);
    const published = target && typeof target.movedSlots === 'number' ? target.movedSlots : 0;
    const moved = Math.max(own, published);
    const receiver = others
      .filter((n) => n.alive && n.bgp?.drained !== true && n.name !== name && n.name !== this.nodeName && typeof n.movedSlots === 'number' && n.movedSlots > 0)
      .sort((a, b) => b.movedSlots! - a.movedSlots! || (a.name < b.name ? -1 : 1))[0];
    if (moved === 0 && !receiver) return;
    const period = view?.transitionSeconds;
    const why = 'connections opened since the last backend change may be known only to it, and once it is withdrawn the other nodes would send '
      + 'them to the slots\' previous backends, which reset them; drain when `xdplb transitions` shows no moved slots'
      + `${period ? ` (at most ${2 * period} s after the last change)` : ''}, or with force (the CLI's --force)`;
    if (moved > 0) {
      throw new XdplbError('XDPLB_ERR_CONFLICT', `node "${name}" is in a Maglev transition (${moved} moved slots${target?.self === false && published < own ? ' on this node' : ''}): ${why}`);
    }
    throw new XdplbError('XDPLB_ERR_CONFLICT', `node "${name}" cannot be drained now: node "${receiver!.name}", which would take its flows, `
      + `is in a Maglev transition (${receiver!.movedSlots} moved slots): a connection of "${name}" in one of those slots would be sent `
      + 'to the slot\'s previous backend there, which resets it; drain when `xdplb cluster status` shows no node with moved slots, or with force (the CLI\'s --force)');
  }

  /** The other nodes' published statuses, each marked alive when published within the alive window. */
  private others(raw: unknown[], now = Date.now()): NodeStatus[] {
    return raw.map((r) => r as NodeStatus).filter((n) => n.name !== this.nodeName).map((n) => {
      const age = now - Date.parse(n.updatedAt);
      return { ...n, self: false, alive: Number.isFinite(age) && age < this.aliveWindowMs };
    });
  }

  /** This node's status now. */
  selfStatus(): NodeStatus {
    const health: NodeStatus['health'] = {};
    for (const s of this.source.listServices()) {
      health[s.name] = Object.fromEntries(s.backends.map((b) => [b.key, b.health as HealthWord]));
    }
    const interfaces = this.source.interfaces().map((i) => i.ifname);
    const totals = this.source.stats().totals;
    const applied = this.store?.appliedModRevision ?? 0;
    let bgp: BgpStatus | null = null;
    try { bgp = this.hooks.bgpStatus(); } catch (err) { this.logger.warn({ err: (err as Error).message }, 'bgp status failed'); }
    return {
      name: this.nodeName, self: true, alive: true, appliedRevision: applied,
      lag: this.store ? Math.max(0, this.store.latestModRevision - applied) : 0,
      dataplane: { attached: interfaces.length > 0, interfaces },
      bgp, health,
      rates: { pps: totals?.pps ?? 0, bps: totals?.bps ?? 0 },
      cpu: Math.round(this.cpuShare * 1000) / 1000,
      movedSlots: movedSlotsOf(this.ownTransitions()),
      updatedAt: new Date().toISOString(),
    };
  }

  private publishTimer: NodeJS.Timeout | null = null;
  private publishSoon(): void {
    if (this.publishTimer) return;
    this.publishTimer = setTimeout(() => { this.publishTimer = null; void this.publish(); }, 20);
  }

  private async publish(): Promise<void> {
    if (!this.store) return;
    try { await this.store.publish(this.selfStatus()); } catch { /* publish() is best effort */ }
  }

  /** Reads may be stale: why (etcd mode only). */
  stale(): { stale: boolean; reason?: string } {
    const reason = this.store?.staleReason() ?? null;
    return reason ? { stale: true, reason } : { stale: false };
  }

  /** GET /api/v1/cluster. Works with etcd unreachable (the last known nodes, marked stale). */
  async view(): Promise<ClusterView> {
    const self = this.selfStatus();
    if (!this.store) {
      return { mode: 'file', self: this.nodeName, revision: 0, store: { url: null, connected: true, stale: false }, nodes: [self], disagreements: [] };
    }
    let others: NodeStatus[];
    try {
      // Known unreachable (the probe says so): answer at once from what was last seen.
      if (!this.store.connected) throw new Error('unreachable');
      await this.store.read();   // the desired revision now (for every node's lag)
      others = this.others(await this.store.nodes());
      this.lastNodes = others;
    } catch {
      // Unreachable: the last nodes seen, not alive as far as this node can tell.
      others = this.lastNodes.map((n) => ({ ...n, alive: false }));
    }
    const revision = this.store.latestModRevision;
    const nodes = [self, ...others.sort((a, b) => (a.name < b.name ? -1 : 1))].map((n) => ({ ...n, lag: Math.max(0, revision - (n.appliedRevision ?? 0)) }));
    const stale = this.stale();
    return {
      mode: 'etcd', self: this.nodeName, revision,
      store: { url: this.store.url.url, connected: this.store.connected, ...stale },
      nodes,
      disagreements: computeDisagreements(nodes.filter((n) => n.alive)),
    };
  }

  /**
   * PUT /api/v1/nodes/{name}/drain: etcd mode writes PREFIX/drain/NAME (the node applies it
   * from its watch, this one at once); file mode sets this node's flag. A drain during a Maglev
   * transition is refused unless `force` (assertQuiet); an undrain never is.
   * @throws XdplbError NOT_FOUND (no such node), CONFLICT (in a transition), UNAVAILABLE (etcd unreachable)
   */
  async setDrain(name: string, drain: boolean, graceSeconds = 0, force = false): Promise<NodeStatus> {
    const state: DrainState = { drain, graceSeconds: drain ? graceSeconds : 0, at: new Date().toISOString() };
    if (!this.store) {
      if (name !== this.nodeName) throw new XdplbError('XDPLB_ERR_NOT_FOUND', `no node "${name}": this daemon runs in file mode, its only node is "${this.nodeName}"`);
      if (drain && !force && !this.drain.drain) this.assertQuiet(name, null);
      await this.applyDrain(state);
      return this.selfStatus();
    }
    const raw = await this.store.nodes();
    const others = this.others(raw);
    if (name !== this.nodeName) {
      const known = raw.map((n) => n as unknown as NodeStatus);
      const found = known.find((n) => n.name === name);
      if (!found) throw new XdplbError('XDPLB_ERR_NOT_FOUND', `no node "${name}" in the cluster (alive nodes: ${known.map((n) => n.name).sort().join(', ') || 'none'})`);
      if (drain && !force && found.bgp?.drained !== true) this.assertQuiet(name, { ...found, self: false }, others);
      await this.store.setDrain(name, state);
      return { ...found, self: false };
    }
    if (drain && !force && !this.drain.drain) this.assertQuiet(name, null, others);
    await this.store.setDrain(name, state);
    await this.applyDrain(state);
    return this.selfStatus();
  }
}
