/**
 * Inspection of a loaded data plane: its counters summed over CPUs and its maps browsed, decoded,
 * with service and backend names resolved through the reconciler's ids (IdNames). Reads only:
 * nothing here writes a map.
 */
import { possibleCpus, type BpfMap } from '../bpf';
import {
  LB, LbCounterCodec, LbFlowStatsCodec, LbRetiredStatsCodec, LbServiceKeyCodec, LbServiceCodec, LbBackendCodec,
  LbReverseKeyCodec, LbReverseCodec, LbFlowSetCodec, LbServiceSlotCodec, LbSettingsCodec, LbVipCodec, LbIfMacCodec,
  LbService6KeyCodec, LbService6SlotCodec, LbBackend6Codec, LbReverse6KeyCodec, LbReverse6Codec, LbFlowSet6Codec,
  bytesToIpv4, bytesToIpv6, decodePerCpuSum, decodeU32, encodeU32,
} from './abi';
import {
  REASONS, XDP_ACTIONS, type FlowCounters, type PacketCounter, type StatsSnapshot, type XdpAction, type Reason,
} from './types';
import { MAP_NAMES, type MapName } from './load-options';
import { addFast, addFastToVerdicts, addFlow, fastSlot, fastTotal, readVerdictRows, ZERO_FLOW, type FastCounters } from './counters';
import { innerTableSize } from './maglev-tables';
import type { Dataplane } from './dataplane';

/**
 * The names behind the ids the maps hold: what the reconciler (src/balancer/reconciler.ts)
 * allocated. Ids it does not know resolve to null.
 */
export interface IdNames {
  /** [id, name] of every service it placed. */
  services(): Array<[number, string]>;
  /** [id, {serviceId, key "address:port"}] of every backend it placed. */
  backends(): Array<[number, { serviceId: number; key: string }]>;
  serviceName(id: number): string | null;
  backendName(id: number): string | null;
}

export interface MapSummary {
  name: string; id: number; type: number; typeName: string; keySize: number; valueSize: number;
  maxEntries: number; usedEntries: number;
}
export interface MapEntriesPage { name: string; total: number; offset: number; entries: Array<{ key: unknown; value: unknown }> }

export class DataplaneInspector {
  private readonly cpus = possibleCpus();

  /** Reads `dp`'s maps (which stay the data plane's); `names` resolves the ids in them. */
  constructor(private readonly dp: Dataplane, private readonly names: IdNames) {}

  /** Every counter summed over CPUs, names resolved (src/dataplane/counters.ts: how the maps
   * add up). @throws BpfError */
  readStats(): StatsSnapshot {
    const services: Record<string, FlowCounters> = {};
    const backends: Record<string, Record<string, FlowCounters>> = {};
    const serviceIds = this.names.services();
    const serviceValues = this.perCpuValues(this.dp.map('service_stats'), serviceIds.map(([id]) => id));
    const retired = this.retiredStats();
    for (const [id, name] of serviceIds) {
      const value = serviceValues.get(id);
      const own = value ? decodePerCpuSum(LbFlowStatsCodec, value, this.cpus) : { ...ZERO_FLOW };
      const gone = retired.get(id);
      services[name] = gone ? addFlow(own, fastTotal(gone)) : own;
      backends[name] = {};
    }
    const backendIds = this.names.backends();
    const ids: Record<string, Record<string, number>> = {};
    const backendValues = this.perCpuValues(this.dp.map('backend_stats'), backendIds.map(([id]) => id));
    const fast = this.fastStats(backendIds.map(([id]) => id));
    let allFast: FastCounters = { tx: { ...ZERO_FLOW }, redirect: { ...ZERO_FLOW } };
    for (const [id, b] of backendIds) {
      const f = fast.get(id);
      if (f) allFast = addFast(allFast, f);
      const service = this.names.serviceName(b.serviceId);
      if (service === null) continue;
      const value = backendValues.get(id);
      const own = value ? decodePerCpuSum(LbFlowStatsCodec, value, this.cpus) : { ...ZERO_FLOW };
      const total = f ? addFlow(own, fastTotal(f)) : own;
      backends[service] ??= {};
      backends[service][b.key] = total;
      if (f && services[service]) services[service] = addFlow(services[service], fastTotal(f));
      (ids[service] ??= {})[b.key] = id;
    }
    for (const r of retired.values()) allFast = addFast(allFast, r);
    const { actions, reasons } = this.verdictTotals(allFast);
    return { at: Date.now(), services, backends, backendIds: ids, actions, reasons };
  }

  /** backend_fast_stats of backends `ids`, summed over CPUs (none when the map is absent: pins of
   * a build before it). */
  private fastStats(ids: number[]): Map<number, FastCounters> {
    const out = new Map<number, FastCounters>();
    const map = this.dp.optionalMap('backend_fast_stats');
    if (!map) return out;
    const base = map.maxEntries / 2;
    const values = this.perCpuValues(map, ids.flatMap((id) => [fastSlot(id, false, base), fastSlot(id, true, base)]));
    for (const id of ids) {
      const tx = values.get(fastSlot(id, false, base));
      const redirect = values.get(fastSlot(id, true, base));
      if (!tx && !redirect) continue;
      out.set(id, {
        tx: tx ? decodePerCpuSum(LbFlowStatsCodec, tx, this.cpus) : { ...ZERO_FLOW },
        redirect: redirect ? decodePerCpuSum(LbFlowStatsCodec, redirect, this.cpus) : { ...ZERO_FLOW },
      });
    }
    return out;
  }

  /** The backend and action of a backend_fast_stats index (its TX half, then its REDIRECT half). */
  private fastSlotOwner(index: number): { backend: string | null; action: 'tx' | 'redirect' } {
    const base = this.dp.map('backend_fast_stats').maxEntries / 2;
    return index < base ? { backend: this.names.backendName(index), action: 'tx' } : { backend: this.names.backendName(index - base), action: 'redirect' };
  }

  /** retired_stats by service id (0: of removed services), the entries in use. */
  private retiredStats(): Map<number, FastCounters> {
    const out = new Map<number, FastCounters>();
    const map = this.dp.optionalMap('retired_stats');
    if (!map) return out;
    for (const [key, value] of map.lookupBatch()) {
      if (!value.some((byte) => byte !== 0)) continue;
      out.set(decodeU32(key), LbRetiredStatsCodec.decode(value));
    }
    return out;
  }

  /** The balancer's maps with kernel info and how many entries are in use. @throws BpfError */
  mapView(): MapSummary[] {
    return MAP_NAMES.filter((name) => this.dp.optionalMap(name)).map((name) => {
      const m = this.dp.map(name);
      const info = m.info();
      return {
        name, id: info.id, type: info.type, typeName: info.typeName, keySize: info.keySize,
        valueSize: info.valueSize, maxEntries: info.maxEntries,
        usedEntries: name === 'events' ? 0 : this.usedEntries(name).length,
      };
    });
  }

  /**
   * One page of a map's used entries, decoded (per-CPU values summed).
   * @throws Error for an unknown map name or a bad offset/limit
   */
  mapEntries(name: string, offset = 0, limit = 100): MapEntriesPage {
    if (!(MAP_NAMES as readonly string[]).includes(name)) throw new Error(`dataplane: no map named "${name}"`);
    if (!Number.isInteger(offset) || offset < 0 || !Number.isInteger(limit) || limit < 0) {
      throw new Error(`dataplane: offset ${offset} / limit ${limit} must be integers >= 0`);
    }
    const mapName = name as MapName;
    if (mapName === 'events' || !this.dp.optionalMap(mapName)) return { name, total: 0, offset, entries: [] };
    const used = this.usedEntries(mapName);
    const entries = used.slice(offset, offset + limit).map(([key, value]) => this.decodeEntry(mapName, key, value));
    return { name, total: used.length, offset, entries };
  }

  /** Raw values of `ids` in a per-CPU array: key by key for a few, one batch read for many. */
  private perCpuValues(map: BpfMap, ids: number[]): Map<number, Buffer> {
    const out = new Map<number, Buffer>();
    if (ids.length > 64) {
      const wanted = new Set(ids);
      for (const [key, value] of map.lookupBatch()) {
        const id = decodeU32(key);
        if (wanted.has(id)) out.set(id, value);
      }
      return out;
    }
    for (const id of ids) {
      const value = map.lookup(encodeU32(id));
      if (value) out.set(id, value);
    }
    return out;
  }

  /** verdict_stats (one batch read) with the fast counters `fast` (every backend's and retired
   * entry's, summed), per XDP action and per reason. */
  private verdictTotals(fast: FastCounters): { actions: Record<XdpAction, PacketCounter>; reasons: Record<Reason, PacketCounter> } {
    const actions = Object.fromEntries(XDP_ACTIONS.map((a) => [a, { packets: 0, bytes: 0 }])) as Record<XdpAction, PacketCounter>;
    const reasons = Object.fromEntries(REASONS.map((r) => [r, { packets: 0, bytes: 0 }])) as Record<Reason, PacketCounter>;
    const rows = addFastToVerdicts(readVerdictRows(this.dp.map('verdict_stats'), null, null, counterDecoders(this.cpus)), fast);
    for (const [index, c] of rows) {
      const { reason, action } = verdictSlot(index);
      for (const sum of [actions[XDP_ACTIONS[action]], reasons[REASONS[reason]]]) {
        if (!sum) continue;   // a slot past the named actions/reasons: never written by the program
        sum.packets += c.packets;
        sum.bytes += c.bytes;
      }
    }
    return { actions, reasons };
  }

  /**
   * Entries in use: every entry of a hash, the non-zero slots of an array (an unused array slot
   * reads as zeros). One BPF_MAP_LOOKUP_BATCH where the map type has it, else key by key.
   */
  private usedEntries(name: MapName): Array<[Buffer, Buffer]> {
    const m = this.dp.map(name);
    let all: Array<[Buffer, Buffer]>;
    try {
      all = m.lookupBatch();
    } catch {
      all = [...m.entries()];
    }
    if (!/array/.test(m.typeName) || /of_maps/.test(m.typeName)) return all;
    return all.filter(([, v]) => v.some((byte) => byte !== 0));
  }

  private decodeEntry(name: MapName, key: Buffer, value: Buffer): { key: unknown; value: unknown } {
    const index = decodeU32(key);
    switch (name) {
      case 'services': return { key: LbServiceKeyCodec.decode(key), value: { ...LbServiceCodec.decode(value), name: this.names.serviceName(LbServiceCodec.decode(value).id) } };
      case 'vips': return { key: bytesToIpv4(key), value: LbVipCodec.decode(value) };
      case 'maglev':
      case 'maglev_std': return { key: index, value: { innerMapId: decodeU32(value), tableSize: innerTableSize(decodeU32(value)), service: this.names.serviceName(index) } };
      case 'service_slots': return { key: index, value: LbServiceSlotCodec.decode(value) };
      case 'maglev_marks': return { key: index, value: { innerMapId: decodeU32(value), tableSize: innerTableSize(decodeU32(value)), service: this.names.serviceName(index) } };
      case 'backends': return { key: index, value: { ...LbBackendCodec.decode(value), name: this.names.backendName(index) } };
      case 'reverse': case 'reverse_frags': return { key: LbReverseKeyCodec.decode(key), value: LbReverseCodec.decode(value) };
      case 'if_macs': {
        const v = LbIfMacCodec.decode(value);
        return { key: index, value: { ifindex: v.ifindex, mac: v.mac.map((b) => b.toString(16).padStart(2, '0')).join(':') } };
      }
      case 'flows': return {
        key: index,
        value: LbFlowSetCodec.decode(value).way.filter((w) => w.backendId !== 0)
          .map((w) => ({ ...w.key, backendId: w.backendId, epoch: w.epoch, backend: this.names.backendName(w.backendId), referenced: w.referenced === 1 })),
      };
      case 'services6': return { key: LbService6KeyCodec.decode(key), value: { ...LbServiceCodec.decode(value), name: this.names.serviceName(LbServiceCodec.decode(value).id) } };
      case 'vips6': return { key: bytesToIpv6(key), value: LbVipCodec.decode(value) };
      case 'service_slots6': return { key: index, value: LbService6SlotCodec.decode(value) };
      case 'backends6': return { key: index, value: { ...LbBackend6Codec.decode(value), name: this.names.backendName(index) } };
      case 'reverse6': case 'reverse_frags6': return { key: LbReverse6KeyCodec.decode(key), value: LbReverse6Codec.decode(value) };
      case 'flows6': return {
        key: index,
        value: LbFlowSet6Codec.decode(value).way.filter((w) => w.backendId !== 0)
          .map((w) => ({ ...w.key, backendId: w.backendId, epoch: w.epoch, backend: this.names.backendName(w.backendId), referenced: w.referenced === 1 })),
      };
      case 'settings': return { key: index, value: LbSettingsCodec.decode(value) };
      case 'tx_ports': return { key: index, value: decodeU32(value) };
      case 'service_stats': return { key: index, value: { ...decodePerCpuSum(LbFlowStatsCodec, value, this.cpus), service: this.names.serviceName(index) } };
      case 'backend_stats': return { key: index, value: { ...decodePerCpuSum(LbFlowStatsCodec, value, this.cpus), backend: this.names.backendName(index) } };
      case 'backend_fast_stats': return {
        key: index,
        value: { ...decodePerCpuSum(LbFlowStatsCodec, value, this.cpus), ...this.fastSlotOwner(index) },
      };
      case 'retired_stats': return { key: index, value: { ...LbRetiredStatsCodec.decode(value), service: index === 0 ? null : this.names.serviceName(index) } };
      case 'verdict_stats': {
        const { reason, action } = verdictSlot(index);
        return { key: `${REASONS[reason] ?? reason}/${XDP_ACTIONS[action] ?? action}`, value: decodePerCpuSum(LbCounterCodec, value, this.cpus) };
      }
      case 'events': return { key: index, value: null };
    }
  }
}

/** The {reason, action} of a verdict_stats index (lb_abi.h LB_VERDICT_SLOTS). */
export function verdictSlot(index: number): { reason: number; action: number } {
  return { reason: Math.floor(index / LB.ACTION_SLOTS), action: index % LB.ACTION_SLOTS };
}

/** The verdict rows as reported, read from the maps of `dp` (counters.ts readVerdictRows). */
export function dataplaneVerdictRows(dp: Pick<Dataplane, 'map' | 'optionalMap'>): Map<number, PacketCounter> {
  return readVerdictRows(dp.map('verdict_stats'), dp.optionalMap('backend_fast_stats'), dp.optionalMap('retired_stats'), counterDecoders(possibleCpus()));
}

/** The counter maps' values decoded (per-CPU ones summed over `cpus`), as readVerdictRows takes them. */
function counterDecoders(cpus: number): Parameters<typeof readVerdictRows>[3] {
  return {
    counter: (v) => decodePerCpuSum(LbCounterCodec, v, cpus),
    flow: (v) => decodePerCpuSum(LbFlowStatsCodec, v, cpus),
    retired: (v) => LbRetiredStatsCodec.decode(v),
  };
}
