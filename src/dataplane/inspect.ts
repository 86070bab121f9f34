/**
 * Inspection of a loaded data plane: its counters summed over CPUs and its maps browsed, decoded,
 * with service and backend names resolved through the reconciler's ids (IdNames). Reads only:
 * nothing here writes a map.
 */
import { possibleCpus, type BpfMap } from '../bpf';
import {
  LB, LbCounterCodec, LbFlowStatsCodec, LbServiceKeyCodec, LbServiceCodec, LbBackendCodec,
  LbReverseKeyCodec, LbReverseCodec, LbFlowSetCodec, LbServiceSlotCodec, LbSettingsCodec, LbVipCodec, LbIfMacCodec,
  LbService6KeyCodec, LbService6SlotCodec, LbBackend6Codec, LbReverse6KeyCodec, LbReverse6Codec, LbFlowSet6Codec,
  bytesToIpv4, bytesToIpv6, decodePerCpuSum, decodeU32, encodeU32,
} from './abi';
import {
  REASONS, XDP_ACTIONS, type FlowCounters, type PacketCounter, type StatsSnapshot, type XdpAction, type Reason,
} from './types';
import { MAP_NAMES, type MapName } from './load-options';
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

  /** Every counter summed over CPUs, names resolved. @throws BpfError */
  readStats(): StatsSnapshot {
    const services: Record<string, FlowCounters> = {};
    const backends: Record<string, Record<string, FlowCounters>> = {};
    const zeroFlow: FlowCounters = { fwdPackets: 0, fwdBytes: 0, revPackets: 0, revBytes: 0 };
    const serviceIds = this.names.services();
    const serviceValues = this.perCpuValues(this.dp.map('service_stats'), serviceIds.map(([id]) => id));
    for (const [id, name] of serviceIds) {
      const value = serviceValues.get(id);
      services[name] = value ? decodePerCpuSum(LbFlowStatsCodec, value, this.cpus) : { ...zeroFlow };
      backends[name] = {};
    }
    const backendIds = this.names.backends();
    const ids: Record<string, Record<string, number>> = {};
    const backendValues = this.perCpuValues(this.dp.map('backend_stats'), backendIds.map(([id]) => id));
    for (const [id, b] of backendIds) {
      const service = this.names.serviceName(b.serviceId);
      if (service === null) continue;
      const value = backendValues.get(id);
      backends[service] ??= {};
      backends[service][b.key] = value ? decodePerCpuSum(LbFlowStatsCodec, value, this.cpus) : { ...zeroFlow };
      (ids[service] ??= {})[b.key] = id;
    }
    const { actions, reasons } = this.verdictTotals();
    return { at: Date.now(), services, backends, backendIds: ids, actions, reasons };
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

  /** verdict_stats (one batch read) summed per XDP action and per reason. */
  private verdictTotals(): { actions: Record<XdpAction, PacketCounter>; reasons: Record<Reason, PacketCounter> } {
    const actions = Object.fromEntries(XDP_ACTIONS.map((a) => [a, { packets: 0, bytes: 0 }])) as Record<XdpAction, PacketCounter>;
    const reasons = Object.fromEntries(REASONS.map((r) => [r, { packets: 0, bytes: 0 }])) as Record<Reason, PacketCounter>;
    for (const [key, value] of this.dp.map('verdict_stats').lookupBatch()) {
      const { reason, action } = verdictSlot(decodeU32(key));
      const c = decodePerCpuSum(LbCounterCodec, value, this.cpus);
      if (c.packets === 0 && c.bytes === 0) continue;
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
