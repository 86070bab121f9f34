/**
 * Balancer: the balancer's state in a loaded data plane. Owns the Reconciler over the Dataplane's
 * maps (services, vips, maglev, backends, reverse, settings and the counters it zeroes), with
 * the limits the maps were sized with, and keeps reverse_frags in step with it. The daemon's
 * kernel driver (src/daemon/kernel-driver.ts) creates one per data plane; tests and benchmarks
 * that drive a Dataplane directly do the same. The balancer imports the data plane, never back.
 */
import type { Dataplane } from '../dataplane/dataplane';
import { FAMILY6, familyCodec } from './family';
import { createMaglevTable, InnerTableMappings, MaglevOuterMaps, readMaglevTable, TrackedOuterMap, writeMaglevSlotsFlat } from '../dataplane/maglev-tables';
import { LB_MAPS } from '../dataplane/lb.generated';
import type { DataplaneState } from '../dataplane/types';
import { Reconciler, type ApplyResult, type ReconcilerMaps } from './reconciler';
import { warmUpApplyPath, warmUpBulkPath, type WarmUpResult } from './warm-up';

export class Balancer {
  /** Ids, names, Maglev shares and the reverse grace period (see reconciler.ts). */
  readonly reconciler: Reconciler;
  /**
   * Mappings of the installed Maglev tables and marks tables, kept between changes (the
   * in-place writes store through them; a table swapped out or removed loses its mapping).
   * close() unmaps them.
   */
  readonly mappings = new InnerTableMappings();

  /**
   * The reconciler over `dp`'s maps; for an adopted data plane it re-learns the service and
   * backend ids from the maps first (Reconciler.recover).
   * @throws BpfError when the adopted maps cannot be read
   */
  constructor(private readonly dp: Dataplane) {
    // maglev_std is absent from the pins of a build without it: every table goes into maglev then.
    const std = dp.optionalMap('maglev_std');
    const tables = new MaglevOuterMaps(dp.map('maglev'), std, this.mappings);
    const maps: ReconcilerMaps = {
      services: dp.map('services'), vips: dp.map('vips'), maglev: tables, maglevMarks: new TrackedOuterMap(dp.map('maglev_marks'), this.mappings), serviceSlots: dp.map('service_slots'), backends: dp.map('backends'),
      reverse: dp.map('reverse'), settings: dp.map('settings'), serviceStats: dp.map('service_stats'),
      backendStats: dp.map('backend_stats'),
      backendFastStats: dp.optionalMap('backend_fast_stats') ?? undefined, retiredStats: dp.optionalMap('retired_stats') ?? undefined,
      v6: { services6: dp.map('services6'), vips6: dp.map('vips6'), backends6: dp.map('backends6'), reverse6: dp.map('reverse6'), serviceSlots6: dp.map('service_slots6') },
    };
    this.reconciler = new Reconciler(maps, {
      maxServices: dp.map('services').maxEntries,
      maxBackends: dp.map('backends').maxEntries,
      maxVips: dp.map('vips').maxEntries,
      maxReverse: dp.map('reverse').maxEntries,
      maglevMaxSize: dp.maglevMaxSize,
    }, (entries, withMarks) => createMaglevTable(entries, withMarks, dp.innerTableFlags, std ? LB_MAPS.maglev_std.inner.flags : null),
    (outer, marks) => readMaglevTable(outer, marks, this.mappings), Date.now,
    (outer, marks, indices, words) => writeMaglevSlotsFlat(outer, marks, indices, words, this.mappings));
    if (dp.adopted) this.reconciler.recover();
  }

  /** Unmaps the kept table mappings (the data plane's maps stay as they are). */
  close(): void {
    this.mappings.clear();
  }

  /**
   * Warms the JIT on the apply path (src/balancer/warm-up.ts) with real inner tables of
   * `tableSizes` slots that are never in this data plane's outer maps, then freed.
   * @throws BpfError when the kernel refuses a throwaway table (nothing of the data plane changed)
   */
  warmUp(tableSizes: number[]): WarmUpResult {
    const result = warmUpApplyPath(tableSizes, undefined, {
      createInnerTable: (entries, withMarks) => createMaglevTable(entries, withMarks, this.dp.innerTableFlags, this.dp.optionalMap('maglev_std') ? LB_MAPS.maglev_std.inner.flags : null),
      writeInnerSlots: writeMaglevSlotsFlat,
    });
    // And a bulk change at the largest of these sizes (100 of 1000 backends drained, undrained).
    const bulk = warmUpBulkPath(Math.max(0, ...tableSizes));
    return { ms: result.ms + bulk.ms, applies: result.applies + bulk.applies, slotsWritten: result.slotsWritten + bulk.slotsWritten };
  }

  /**
   * Makes the maps hold `state` (see src/balancer/reconciler.ts for order and ids).
   * @throws ReconcileError before any write when the kernel side cannot express the state
   */
  applyState(state: DataplaneState): ApplyResult {
    const result = this.reconciler.apply(state);
    this.syncReverseFrags(state, result.sameKeys);
    return result;
  }

  /**
   * applyState() with its large Maglev tables (>= 100000 slots) built on a worker thread
   * first, so that the caller's event loop keeps running during the builds (the daemon's
   * API and health checks). The same tables, the same writes.
   * @throws ReconcileError before any write when the kernel side cannot express the state
   */
  async applyStateAsync(state: DataplaneState): Promise<ApplyResult> {
    this.reconciler.assertInvariants(state);
    await this.reconciler.prebuildTables(state);
    const result = this.reconciler.applyAsserted(state);
    this.syncReverseFrags(state, result.sameKeys);
    return result;
  }

  /**
   * reverse_frags (see bpf/lb_abi.h): for each NAT backend address and protocol whose services
   * all have one VIP, {address, 0, proto} -> that VIP (counted under the lowest service id
   * among them and its backend there); addresses serving several VIPs get no entry, so their
   * non-first reply fragments pass untranslated (not_vip). Written after the reconciler, so
   * the ids exist; stale entries are removed. `sameKeys` (the reconciler's: every service and
   * backend key and id unchanged since its last apply) with that apply's entries written:
   * nothing to work out (1000 backends' groups and signature cost ~1 ms a change).
   */
  private syncReverseFrags(state: DataplaneState, sameKeys = false): void {
    if (sameKeys && this.reverseFragsWritten !== null) return;
    const PROTO: Record<string, number> = { tcp: 6, udp: 17 };
    const groups = new Map<string, { ip: string; proto: number; vips: Set<string>; best: { serviceId: number; backendId: number } | null }>();
    for (const s of state.services) {
      if (s.mode !== 'nat') continue;
      const serviceId = this.reconciler.serviceId(s.name);
      for (const b of s.backends) {
        const key = `${b.address}/${s.protocol}`;
        const g = groups.get(key) ?? { ip: b.address, proto: PROTO[s.protocol], vips: new Set<string>(), best: null };
        g.vips.add(s.vip);
        const backendId = this.reconciler.backendId(s.name, b.address, b.port);
        if (serviceId !== null && backendId !== null && (!g.best || serviceId < g.best.serviceId)) g.best = { serviceId, backendId };
        groups.set(key, g);
      }
    }
    // Only this Balancer writes reverse_frags: when the entries are the ones it last wrote, the
    // map holds them (reading 1000 entries back costs ~10-20 ms of syscalls on every change).
    // The entries' fields say so before any is encoded (encoding 1000 cost ~2 ms a change).
    const wanted = [...groups.values()].filter((g) => g.vips.size === 1 && g.best);
    const signature = wanted.map((g) => `${g.ip}/${g.proto}>${[...g.vips][0]}#${g.best!.serviceId}#${g.best!.backendId}`).sort().join(',');
    if (signature === this.reverseFragsWritten) return;
    const desired = new Map<string, Buffer>();
    for (const g of wanted) {
      const family = familyCodec(g.ip);   // reverse_frags or reverse_frags6 (the key's size tells)
      const key = family.reverseKey({ ip: g.ip, port: 0, proto: g.proto });
      desired.set(key.toString('hex'), family.reverse({ vip: [...g.vips][0], vport: 0, serviceId: g.best!.serviceId, backendId: g.best!.backendId }));
    }
    this.reverseFragsWritten = null;
    for (const [name, family] of [['reverse_frags', 4], ['reverse_frags6', 6]] as const) {
      const m = this.dp.map(name);
      const mine = (hex: string) => (hex.length === FAMILY6.reverseKeySize * 2 ? 6 : 4) === family;
      const current = new Map([...m.entries()].map(([k, v]) => [k.toString('hex'), v]));
      for (const [hex, value] of desired) if (mine(hex) && !current.get(hex)?.equals(value)) m.update(Buffer.from(hex, 'hex'), value);
      for (const hex of current.keys()) if (!desired.has(hex)) m.delete(Buffer.from(hex, 'hex'));
    }
    this.reverseFragsWritten = signature;
  }

  /** The reverse_frags entries last written in full (null: unknown, read the map). */
  private reverseFragsWritten: string | null = null;
}
