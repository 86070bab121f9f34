/**
 * The cluster's desired state in etcd (issue 13; layout in src/store/layout.ts and
 * docs/decisions.md). One EtcdStore per daemon:
 *
 * - read(): the desired state and its mod_revision (the daemon starts from it);
 * - persist(): the controller's persist hook: ONE transaction that writes PREFIX/desired only if
 *   its mod_revision is still the one this node applied (409 saying what changed otherwise,
 *   503 when etcd cannot be reached: nothing changes either way);
 * - follow(): watches PREFIX/ from the revision after the applied one; every desired-state
 *   change goes to onDesired (applied one at a time by the caller); a watch cancelled because
 *   the history was compacted, or any gap, ends in a full re-read (resync);
 * - a probe every probeIntervalMs keeps `connected` (and the reason when not) current and
 *   catches up on anything the watch missed;
 * - publish(): this node's NodeStatus under a lease at PREFIX/nodes/NAME.
 *
 * Events: 'change' (connected/fresh/applied revision changed), 'drain' ({drain, graceSeconds}
 * for this node), 'nodes' (a node's status changed).
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { Etcd3, type Lease, type Watcher, type IKeyValue } from 'etcd3';
import { ConstantBackoff, noop } from 'cockatiel';
import { XdplbError } from '../domain/errors';
import type { Config } from '../config/schema';
import type { PendingWrite } from '../daemon/controller';
import { clusterPart, describeChanges, parseStoreUrl, storeKeys, type ClusterState, type StoreUrl } from './layout';
import { requestRevision } from './precondition';

export interface EtcdStoreOptions {
  url: string;
  nodeName: string;
  logger: Logger;
  /** Connectivity probe and catch-up period (default 1000 ms). */
  probeIntervalMs?: number;
  /** Deadline of each etcd call (default 1500 ms): past it, etcd counts as unreachable. */
  callTimeoutMs?: number;
  /** TTL of the node's lease (default 5 s): a dead node's status disappears within it. */
  leaseTtlSeconds?: number;
}

export interface DesiredRead { cluster: ClusterState | null; modRevision: number; revision: number }
export interface DrainState { drain: boolean; graceSeconds: number; at?: string }

const enc = (s: string) => Buffer.from(s, 'utf8');

export class EtcdStore extends EventEmitter {
  readonly url: StoreUrl;
  readonly nodeName: string;
  readonly keys: ReturnType<typeof storeKeys>;
  private readonly client: Etcd3;
  private readonly logger: Logger;
  private readonly callTimeoutMs: number;
  private readonly probeIntervalMs: number;
  private readonly leaseTtl: number;
  /** etcd answered the last call. */
  connected = false;
  /** Why not connected (or why not fresh). */
  reason: string | undefined = 'not connected yet';
  /** mod_revision of PREFIX/desired as last seen in etcd (the cluster's desired revision). */
  latestModRevision = 0;
  /** mod_revision of the desired state this node applied (0 = none). */
  appliedModRevision = 0;
  /** The cluster state this node applied. */
  appliedCluster: ClusterState = {};
  /** The last apply of a store change failed (the node runs the previous one). */
  applyError: string | null = null;
  private watcher: Watcher | null = null;
  /** Every watcher not yet ended (the current one, and dropped ones whose cancel is pending). */
  private readonly allWatchers = new Set<Watcher>();
  private probeTimer: NodeJS.Timeout | null = null;
  private lease: Lease | null = null;
  private closed = false;
  private onDesired: ((cluster: ClusterState, modRevision: number) => void) | null = null;
  private resyncing = false;
  /** Full re-reads so far (after a compaction or a gap the watch could not fill). */
  resyncCount = 0;

  constructor(opts: EtcdStoreOptions) {
    super();
    this.url = parseStoreUrl(opts.url);
    this.nodeName = opts.nodeName;
    this.keys = storeKeys(this.url.prefix);
    this.logger = opts.logger;
    this.callTimeoutMs = opts.callTimeoutMs ?? 1500;
    this.probeIntervalMs = opts.probeIntervalMs ?? 1000;
    this.leaseTtl = opts.leaseTtlSeconds ?? 5;
    this.client = new Etcd3({
      hosts: this.url.hosts.map((h) => `http://${h}`),
      dialTimeout: this.callTimeoutMs,
      // No retries or circuit breaker in the client: the probe below decides reachability, and
      // a write must fail fast (503) rather than wait behind an open circuit.
      faultHandling: { host: () => noop, global: noop, watchBackoff: new ConstantBackoff(300).next() },
    });
  }

  private opts() { return { deadline: Date.now() + this.callTimeoutMs }; }

  /** Whether this node's state is the cluster's: connected, and the latest desired state applied. */
  fresh(): boolean {
    return this.connected && this.applyError === null && this.appliedModRevision >= this.latestModRevision && this.appliedModRevision > 0;
  }

  /**
   * Whether this node may announce its VIPs (src/cluster/announce.ts): it applied a state and
   * is not known to be behind. Unlike fresh(), an unreachable store alone does not count: when
   * etcd loses its majority every node is in that position at once, and withdrawing would take
   * every VIP off the routers while each node could go on forwarding its last state. A node
   * that sees a newer revision it has not applied (or failed to apply) withdraws.
   */
  announceable(): boolean {
    return this.applyError === null && this.appliedModRevision > 0 && this.appliedModRevision >= this.latestModRevision;
  }

  /** Why reads may be stale (null when fresh). */
  staleReason(): string | null {
    if (!this.connected) return `the cluster store (etcd at ${this.url.hosts.join(',')}) is unreachable: ${this.reason ?? 'no answer'}; this node serves and forwards the state of revision ${this.appliedModRevision}`;
    if (this.applyError) return `revision ${this.latestModRevision} could not be applied on this node: ${this.applyError}; it runs revision ${this.appliedModRevision}`;
    if (this.appliedModRevision < this.latestModRevision) return `this node has applied revision ${this.appliedModRevision}, the store is at ${this.latestModRevision}`;
    return null;
  }

  private unreachable(err: unknown): XdplbError {
    return new XdplbError('XDPLB_ERR_UNAVAILABLE', `the cluster store (etcd at ${this.url.hosts.join(',')}) is unreachable (${errorText(err)}): ` +
      `changes are refused until it returns; this node keeps forwarding revision ${this.appliedModRevision}`);
  }

  private markConnected(ok: boolean, err?: unknown): void {
    const reason = ok ? undefined : errorText(err);
    if (ok === this.connected && reason === this.reason) return;
    const was = this.connected;
    this.connected = ok;
    this.reason = reason;
    if (was !== ok) this.logger[ok ? 'info' : 'warn']({ store: this.url.url, reason }, ok ? 'cluster store reachable' : 'cluster store unreachable: forwarding continues with the last applied state, writes are refused');
    this.emit('change');
  }

  /**
   * The desired state now (null when the prefix holds none) and the store's revision.
   * @throws XdplbError UNAVAILABLE (unreachable), VALIDATION (PREFIX/desired is not JSON)
   */
  async read(): Promise<DesiredRead> {
    let res;
    try {
      res = await this.client.kv.range({ key: enc(this.keys.desired) }, this.opts());
    } catch (err) {
      this.markConnected(false, err);
      throw this.unreachable(err);
    }
    this.markConnected(true);
    const kv = res.kvs[0];
    const revision = Number(res.header.revision);
    if (!kv) return { cluster: null, modRevision: 0, revision };
    const modRevision = Number(kv.mod_revision);
    if (modRevision > this.latestModRevision) this.latestModRevision = modRevision;
    return { cluster: parseDesired(kv, this.keys.desired), modRevision, revision };
  }

  /** Records that the controller now runs `cluster` of `modRevision`. */
  markApplied(cluster: ClusterState, modRevision: number): void {
    this.appliedCluster = cluster;
    this.appliedModRevision = modRevision;
    if (modRevision > this.latestModRevision) this.latestModRevision = modRevision;
    this.applyError = null;
    this.emit('change');
  }

  markApplyFailed(modRevision: number, err: unknown): void {
    if (modRevision > this.latestModRevision) this.latestModRevision = modRevision;
    this.applyError = errorText(err);
    this.emit('change');
  }

  /**
   * The controller's persist hook: one transaction, guarded by the applied mod_revision.
   * commit() records the new revision as applied; abort() (the kernel refused) puts the
   * previous state back, if nobody wrote in between.
   * @throws XdplbError CONFLICT (someone else wrote since: what changed), UNAVAILABLE
   */
  persist = async (config: Config): Promise<PendingWrite> => {
    const cluster = clusterPart(config);
    const previous = this.appliedCluster;
    const guard = this.appliedModRevision;
    const expected = requestRevision.getStore();
    if (expected !== undefined && expected !== guard) {
      // The client read another revision than the one this change was built on.
      const before = await this.stateAt(expected);
      const changes = before ? describeChanges(before, previous) : [];
      throw new XdplbError('XDPLB_ERR_CONFLICT', `the cluster's desired state is at revision ${guard}, this change was based on revision ${expected}` +
        `${changes.length ? ` (since then: ${changes.join(', ')})` : ''}; nothing was changed: read it again and retry`);
    }
    let res;
    try {
      res = await this.client.kv.txn({
        compare: [{ key: enc(this.keys.desired), target: 'Mod', result: 'Equal', mod_revision: String(guard) }],
        success: [{ request_put: { key: enc(this.keys.desired), value: enc(JSON.stringify(cluster)) } }],
        failure: [{ request_range: { key: enc(this.keys.desired) } }],
      }, this.opts());
    } catch (err) {
      this.markConnected(false, err);
      throw this.unreachable(err);
    }
    this.markConnected(true);
    if (!res.succeeded) {
      const kv = res.responses[0]?.response_range?.kvs?.[0];
      const modRevision = kv ? Number(kv.mod_revision) : 0;
      if (modRevision > this.latestModRevision) this.latestModRevision = modRevision;
      let changes: string[] = ['the desired state was deleted'];
      if (kv) { try { changes = describeChanges(previous, parseDesired(kv, this.keys.desired)); } catch { changes = ['the desired state was replaced by an invalid one']; } }
      throw new XdplbError('XDPLB_ERR_CONFLICT', `the cluster's desired state changed since this node read it (revision ${guard} -> ${modRevision}` +
        `${changes.length ? `: ${changes.join(', ')}` : ''}); nothing was changed: read it again and retry`);
    }
    const revision = Number(res.header.revision);
    return {
      commit: () => this.markApplied(cluster, revision),
      abort: async () => {
        try {
          await this.client.kv.txn({
            compare: [{ key: enc(this.keys.desired), target: 'Mod', result: 'Equal', mod_revision: String(revision) }],
            success: [{ request_put: { key: enc(this.keys.desired), value: enc(JSON.stringify(previous)) } }],
          }, this.opts());
        } catch (err) {
          this.logger.error({ err: errorText(err) }, 'could not take back a change the kernel refused; the store holds it');
        }
      },
    };
  };

  /** The desired state at an older revision (null: compacted, unknown or unreachable). */
  private async stateAt(revision: number): Promise<ClusterState | null> {
    if (!(revision > 0)) return null;
    try {
      const res = await this.client.kv.range({ key: enc(this.keys.desired), revision: String(revision) }, this.opts());
      return res.kvs[0] ? parseDesired(res.kvs[0], this.keys.desired) : null;
    } catch {
      return null;
    }
  }

  /**
   * Follows the store from `fromRevision` (exclusive): desired-state changes go to onDesired,
   * this node's drain key to the 'drain' event. Starts the probe.
   */
  async follow(fromRevision: number, onDesired: (cluster: ClusterState, modRevision: number) => void): Promise<void> {
    this.onDesired = onDesired;
    await this.startWatch(fromRevision);
    this.probeTimer = setInterval(() => { void this.probe(); }, this.probeIntervalMs);
    this.probeTimer.unref();
  }

  private async startWatch(fromRevision: number): Promise<void> {
    const creating = this.client.watch().prefix(`${this.url.prefix}/`).startRevision(String(fromRevision + 1)).create();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<null>((resolve) => { timer = setTimeout(() => resolve(null), this.callTimeoutMs * 2); });
    const watcher = await Promise.race([creating, timeout]);
    clearTimeout(timer);
    if (!watcher) {
      // Not created in time (etcd gone again): dropped when it does come, the caller retries.
      void creating.then((w) => w.cancel()).catch(() => undefined);
      throw new Error('the watch could not be created in time');
    }
    this.allWatchers.add(watcher);
    watcher.on('end', () => this.allWatchers.delete(watcher));
    if (this.closed) { void watcher.cancel().catch(() => undefined); return; }
    this.watcher = watcher;
    watcher.on('put', (kv) => this.onEvent(kv, false));
    watcher.on('delete', (kv) => this.onEvent(kv, true));
    watcher.on('disconnected', (err: unknown) => this.markConnected(false, err));
    watcher.on('connected', () => this.markConnected(true));
    // Cancelled by etcd (e.g. "required revision has been compacted"): read everything again.
    watcher.on('error', (err: unknown) => {
      this.logger.warn({ err: errorText(err) }, 'store watch cancelled: full resync');
      void this.resync();
    });
  }

  private onEvent(kv: IKeyValue, deleted: boolean): void {
    const key = kv.key.toString('utf8');
    if (key === this.keys.desired) {
      const modRevision = Number(kv.mod_revision);
      if (deleted) {
        this.applyError = 'the desired state was deleted from the store (kept the last applied; seed it again with `xdplb store init`)';
        this.logger.error({ key }, this.applyError);
        this.emit('change');
        return;
      }
      if (modRevision > this.latestModRevision) this.latestModRevision = modRevision;
      try {
        this.onDesired?.(parseDesired(kv, key), modRevision);
      } catch (err) {
        this.markApplyFailed(modRevision, err);
        this.logger.error({ err: errorText(err), revision: modRevision }, 'the store holds an unreadable desired state: keeping the last applied');
      }
    } else if (key === this.keys.drain(this.nodeName)) {
      let value: DrainState = { drain: false, graceSeconds: 0 };
      if (!deleted) { try { value = JSON.parse(kv.value.toString('utf8')) as DrainState; } catch { return; } }
      this.emit('drain', value);
    } else if (key.startsWith(this.keys.nodesPrefix)) {
      this.emit('nodes');
    }
  }

  /** Reads the whole desired state again and follows from there (after a compaction). */
  async resync(): Promise<void> {
    if (this.resyncing || this.closed) return;
    this.resyncing = true;
    this.resyncCount++;
    try {
      const old = this.watcher;
      this.watcher = null;
      // A watcher etcd cancelled may never answer a cancel: not waited for. Its events are
      // dropped; an 'error' without a listener would throw.
      if (old) {
        for (const event of ['put', 'delete', 'error'] as const) old.removeAllListeners(event);
        old.on('error', () => undefined);
        void old.cancel().catch(() => undefined);
      }
      for (let attempt = 0; !this.closed && attempt < 1000; attempt++) {
        try {
          const read = await this.read();
          if (read.cluster && read.modRevision > this.appliedModRevision) this.onDesired?.(read.cluster, read.modRevision);
          const drain = await this.readDrain(this.nodeName);
          this.emit('drain', drain);
          await this.startWatch(read.revision);
          this.logger.info({ revision: read.revision, desired: read.modRevision }, 'store resynced');
          return;
        } catch (err) {
          this.logger.warn({ err: errorText(err) }, 'store resync failed; retrying');
          await new Promise((r) => setTimeout(r, this.probeIntervalMs));
        }
      }
    } finally {
      this.resyncing = false;
    }
  }

  /** Connectivity, and catch-up: a desired revision newer than the applied one is applied. */
  private async probe(): Promise<void> {
    if (this.closed) return;
    try {
      const read = await this.read();
      if (read.cluster && read.modRevision > this.appliedModRevision && this.applyError === null && !this.resyncing) {
        // The watch has not delivered it (yet): a watch that fell behind a compaction is not
        // always told so while disconnected. Give it a few probe periods (at least 2 s), then resync.
        if (this.pending?.revision !== read.modRevision) this.pending = { revision: read.modRevision, since: Date.now() };
        else if (Date.now() - this.pending.since >= Math.max(2000, 3 * this.probeIntervalMs)) { this.pending = null; void this.resync(); }
      } else {
        this.pending = null;
      }
      if (this.lease === null || this.leaseLost) void this.republish();
    } catch {
      // read() marked the store unreachable.
    }
  }
  private pending: { revision: number; since: number } | null = null;

  // ---- node statuses and drains ---------------------------------------------------------

  private lastStatus: string | null = null;
  private leaseLost = false;

  /** Publishes this node's status under its lease (best effort: unreachable = later). */
  async publish(status: unknown): Promise<void> {
    this.lastStatus = JSON.stringify(status);
    if (!this.connected || this.closed) return;
    try {
      if (!this.lease || this.leaseLost) this.newLease();
      await this.lease!.put(this.keys.node(this.nodeName)).value(this.lastStatus).exec();
    } catch (err) {
      this.logger.debug({ err: errorText(err) }, 'node status not published');
    }
  }

  private async republish(): Promise<void> {
    if (this.lastStatus) await this.publish(JSON.parse(this.lastStatus));
  }

  private newLease(): void {
    const old = this.lease;
    this.leaseLost = false;
    this.lease = this.client.lease(this.leaseTtl, { autoKeepAlive: true });
    this.lease.on('lost', () => { this.leaseLost = true; });
    if (old) void old.release();
  }

  /** Every node's published status (alive ones: a dead node's lease took its key). */
  async nodes(): Promise<Array<Record<string, unknown>>> {
    let res;
    try {
      res = await this.client.getAll().prefix(this.keys.nodesPrefix).options(this.opts()).strings();
    } catch (err) {
      this.markConnected(false, err);
      throw this.unreachable(err);
    }
    this.markConnected(true);
    const out: Array<Record<string, unknown>> = [];
    for (const text of Object.values(res)) { try { out.push(JSON.parse(text) as Record<string, unknown>); } catch { /* skip */ } }
    return out;
  }

  async readDrain(name: string): Promise<DrainState> {
    const res = await this.client.kv.range({ key: enc(this.keys.drain(name)) }, this.opts()).catch((err: unknown) => {
      this.markConnected(false, err); throw this.unreachable(err);
    });
    const kv = res.kvs[0];
    if (!kv) return { drain: false, graceSeconds: 0 };
    try { return JSON.parse(kv.value.toString('utf8')) as DrainState; } catch { return { drain: false, graceSeconds: 0 }; }
  }

  /** @throws XdplbError UNAVAILABLE */
  async setDrain(name: string, state: DrainState): Promise<void> {
    try {
      if (state.drain) await this.client.kv.put({ key: enc(this.keys.drain(name)), value: enc(JSON.stringify(state)) }, this.opts());
      else await this.client.kv.deleteRange({ key: enc(this.keys.drain(name)) }, this.opts());
    } catch (err) {
      this.markConnected(false, err);
      throw this.unreachable(err);
    }
  }

  /** Stops watching and probing; revokes the lease (the node's status disappears at once). */
  async close(): Promise<void> {
    this.closed = true;
    this.onDesired = null;   // nothing reaches the controller after this
    if (this.probeTimer) clearInterval(this.probeTimer);
    this.watcher = null;
    if (this.allWatchers.size) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all([...this.allWatchers].map((w) => w.cancel().catch(() => undefined))), new Promise((r) => { timer = setTimeout(r, 500); })]);
      clearTimeout(timer);
    }
    if (this.lease && this.connected) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.lease.revoke().catch(() => undefined), new Promise((r) => { timer = setTimeout(r, 500); })]);
      clearTimeout(timer);
    }
    // Stops the keepalive loop whatever revoke() did (its timers would keep the process up).
    this.lease?.release();
    this.lease = null;
    this.removeAllListeners();
    this.client.close();
    // etcd3 keeps re-opening the watch stream (a 300 ms timer) while any watcher is registered,
    // even after close(): one whose cancel did not complete (etcd had cancelled it) would keep
    // the process alive. Its reconnect step becomes a no-op (the watcher list is left alone: a
    // late response for a watcher it no longer knows would throw).
    const manager = (this.client as unknown as { watchManager?: { establishStream?: () => void } }).watchManager;
    if (manager && typeof manager.establishStream === 'function') manager.establishStream = () => undefined;
  }
}

function parseDesired(kv: IKeyValue, key: string): ClusterState {
  let value: unknown;
  try { value = JSON.parse(kv.value.toString('utf8')); } catch {
    throw new XdplbError('XDPLB_ERR_VALIDATION', `${key} (revision ${kv.mod_revision}) is not JSON`);
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new XdplbError('XDPLB_ERR_VALIDATION', `${key} (revision ${kv.mod_revision}) is not a JSON object`);
  return value as ClusterState;
}

export function errorText(err: unknown): string {
  const e = err as { message?: string; details?: string };
  return String(e?.details ?? e?.message ?? err).split('\n')[0].replace(/\.? ?Resolution note:.*$/, '').slice(0, 300);
}

/**
 * Puts an initial desired state into an empty prefix (`xdplb store init`).
 * @returns the revision written. @throws XdplbError CONFLICT (the prefix already holds one,
 *   unless force), UNAVAILABLE
 */
export async function seedStore(url: string, cluster: ClusterState, opts: { force?: boolean; timeoutMs?: number } = {}): Promise<number> {
  const { hosts, prefix } = parseStoreUrl(url);
  const key = storeKeys(prefix).desired;
  const client = new Etcd3({ hosts: hosts.map((h) => `http://${h}`), dialTimeout: opts.timeoutMs ?? 3000, faultHandling: { host: () => noop, global: noop } });
  try {
    let res;
    try {
      res = await client.kv.txn({
        compare: opts.force ? [] : [{ key: enc(key), target: 'Create', result: 'Equal', create_revision: '0' }],
        success: [{ request_put: { key: enc(key), value: enc(JSON.stringify(cluster)) } }],
      }, { deadline: Date.now() + (opts.timeoutMs ?? 3000) });
    } catch (err) {
      throw new XdplbError('XDPLB_ERR_UNAVAILABLE', `the cluster store (etcd at ${hosts.join(',')}) is unreachable: ${errorText(err)}`);
    }
    if (!res.succeeded) throw new XdplbError('XDPLB_ERR_CONFLICT', `${key} already holds a desired state: nothing written (change it through the API, or use --force to replace it whole)`);
    return Number(res.header.revision);
  } finally {
    client.close();
  }
}
