/**
 * The address families of the reconciler (issue 15, /work/wt/notes/V6.md): IPv4 services live in
 * services / vips / backends / reverse (/ reverse_frags), IPv6 services in their siblings
 * services6 / vips6 / backends6 / reverse6 (/ reverse_frags6). Everything without an address is
 * shared (maglev, maglev_marks, service_stats, backend_stats, backend_fast_stats, retired_stats, settings), and service and backend
 * ids are one id space over both families.
 *
 * The reconciler keeps one code path for both: it works on FamilyUnionMap views that hold the v4
 * and the v6 map of one kind and send each key (or value) to its family's map by its size (the
 * structs of the two families have different sizes: lb_service_key 8 / lb_service6_key 20 bytes,
 * a VIP 4 / 16, lb_reverse_key 8 / lb_reverse6_key 20, lb_backend 20 / lb_backend6 44), and on
 * the FamilyCodec of a service's VIP to build its keys and values.
 */
import {
  LB, LbBackendCodec, LbBackend6Codec, LbReverseCodec, LbReverse6Codec, LbReverseKeyCodec, LbReverse6KeyCodec,
  LbServiceCodec, LbServiceKeyCodec, LbService6KeyCodec, LbServiceSlotCodec, LbService6SlotCodec, decodeU32, encodeU32,
  type LbBackend, type LbReverse, type LbReverseKey, type LbServiceKey,
} from '../dataplane/abi';
import { serviceSlotIndex, serviceSlotIndex6 } from '../dataplane/jhash';
import { addressBytes, addressFromBytes, familyOf, type AddressFamily } from '../domain/address';

/** The part of a bridge BpfMap the reconciler uses (reconciler.ts's KernelMap). */
export interface FamilyKernelMap {
  lookup(key: Buffer): Buffer | null;
  update(key: Buffer, value: Buffer, flag?: 'any' | 'noexist' | 'exist'): void;
  delete(key: Buffer): boolean | void;
  keys(): Iterable<Buffer>;
}

/** The IPv6 siblings of the maps keyed or valued by an address. */
export interface Family6Maps {
  services6: FamilyKernelMap;
  vips6: FamilyKernelMap;
  backends6: FamilyKernelMap;
  reverse6: FamilyKernelMap;
  /** service_slots6: direct-indexed copies of services6 entries (absent: none kept) */
  serviceSlots6?: FamilyKernelMap;
}

/** How one family's keys and values are built. Field names are the same for both families. */
export interface FamilyCodec {
  readonly family: AddressFamily;
  readonly serviceKeySize: number;
  readonly backendSize: number;
  /** offset of lb_backend(6).flags */
  readonly flagsAt: number;
  readonly reverseKeySize: number;
  readonly reverseSize: number;
  /** size of a service_slots(6) value: the service key, then its lb_service */
  readonly slotSize: number;
  /** the service_slots(6) index of an encoded service key (the program's lookup_service(6)) */
  slotIndex(serviceKey: Buffer): number;
  serviceKey(key: LbServiceKey): Buffer;
  backend(value: LbBackend): Buffer;
  decodeBackend(value: Buffer): LbBackend;
  reverseKey(key: LbReverseKey): Buffer;
  reverse(value: LbReverse): Buffer;
  decodeReverse(value: Buffer): LbReverse;
}

function offsetOf(fields: ReadonlyArray<{ c: string; offset: number }>, c: string): number {
  return fields.find((f) => f.c === c)!.offset;
}

export const FAMILY4: FamilyCodec = {
  family: 4,
  serviceKeySize: LbServiceKeyCodec.size,
  backendSize: LbBackendCodec.size,
  flagsAt: offsetOf(LbBackendCodec.fields, 'flags'),
  reverseKeySize: LbReverseKeyCodec.size,
  reverseSize: LbReverseCodec.size,
  slotSize: LbServiceSlotCodec.size,
  slotIndex: (k) => serviceSlotIndex(k),
  serviceKey: (k) => LbServiceKeyCodec.encode(k),
  backend: (v) => LbBackendCodec.encode(v),
  decodeBackend: (v) => LbBackendCodec.decode(v),
  reverseKey: (k) => LbReverseKeyCodec.encode(k),
  reverse: (v) => LbReverseCodec.encode(v),
  decodeReverse: (v) => LbReverseCodec.decode(v),
};

export const FAMILY6: FamilyCodec = {
  family: 6,
  serviceKeySize: LbService6KeyCodec.size,
  backendSize: LbBackend6Codec.size,
  flagsAt: offsetOf(LbBackend6Codec.fields, 'flags'),
  reverseKeySize: LbReverse6KeyCodec.size,
  reverseSize: LbReverse6Codec.size,
  slotSize: LbService6SlotCodec.size,
  // lb_service6_key: vip (16 bytes), port (network order), proto
  slotIndex: (k) => serviceSlotIndex6(k.subarray(0, 16), k.readUInt16BE(16), k[18]),
  serviceKey: (k) => LbService6KeyCodec.encode(k),
  backend: (v) => LbBackend6Codec.encode(v),
  decodeBackend: (v) => LbBackend6Codec.decode(v),
  reverseKey: (k) => LbReverse6KeyCodec.encode(k),
  reverse: (v) => LbReverse6Codec.encode(v),
  decodeReverse: (v) => LbReverse6Codec.decode(v),
};

// The dispatch by size needs the two families' sizes to differ (true of the ABI; asserted at load).
for (const k of ['serviceKeySize', 'backendSize', 'reverseKeySize', 'reverseSize'] as const) {
  if (FAMILY4[k] === FAMILY6[k]) throw new Error(`family: ${k} is the same for IPv4 and IPv6 (${FAMILY4[k]}); the maps cannot be told apart by size`);
}

// A slot value is the service key followed by its lb_service (no padding between).
for (const f of [FAMILY4, FAMILY6]) {
  if (f.slotSize !== f.serviceKeySize + LbServiceCodec.size) throw new Error(`family: the IPv${f.family} service slot is not key + lb_service (${f.slotSize} bytes)`);
}

/** The codec of a validated address's family. */
export function familyCodec(address: string): FamilyCodec {
  return familyOf(address) === 6 ? FAMILY6 : FAMILY4;
}

/** The codec of a backend value (lb_backend or lb_backend6) by its size. */
export function codecOfBackend(value: Buffer): FamilyCodec {
  return value.length === FAMILY6.backendSize ? FAMILY6 : FAMILY4;
}

/** The codec of a reverse value (lb_reverse or lb_reverse6) by its size. */
export function codecOfReverse(value: Buffer): FamilyCodec {
  return value.length === FAMILY6.reverseSize ? FAMILY6 : FAMILY4;
}

/** True for an IPv4 services key (8 bytes; an IPv6 one is 20). */
export function isServiceKey4(key: Buffer): boolean {
  return key.length === FAMILY4.serviceKeySize;
}

/** A VIP map key (4 or 16 bytes) as canonical text, and back. */
export function vipFromKey(key: Buffer): string {
  return addressFromBytes(key);
}
export function vipKey(vip: string): Buffer {
  return addressBytes(vip);
}

/** A zero value of the same family (and size) as `value`. */
export function zeroLike(value: Buffer): Buffer {
  return Buffer.alloc(value.length);
}

/**
 * One map kind over both families: keys (HASH maps) or values (the backends ARRAY, whose keys
 * are ids of one space) go to the map of their family by size. Without the IPv6 map, IPv6 keys
 * are refused (the reconciler refuses IPv6 services before it gets here).
 */
export class FamilyUnionMap implements FamilyKernelMap {
  constructor(
    private readonly v4: FamilyKernelMap,
    private readonly v6: FamilyKernelMap | undefined,
    /** 'key': a HASH map told apart by the key's size (v6KeySize); 'value': an ARRAY by the value's size */
    private readonly by: { key: number } | { value: number },
  ) {}

  private forKey(key: Buffer): FamilyKernelMap {
    if ('key' in this.by && key.length === this.by.key) {
      if (!this.v6) throw new Error('family: an IPv6 entry but no IPv6 map');
      return this.v6;
    }
    return this.v4;
  }

  lookup(key: Buffer): Buffer | null {
    if ('key' in this.by) return this.forKey(key).lookup(key);
    // An ARRAY of one id space: the id's entry is in one of the two (the other is zero).
    const four = this.v4.lookup(key);
    if (!this.v6 || (four && four.some((b) => b !== 0))) return four;
    const six = this.v6.lookup(key);
    return six && six.some((b) => b !== 0) ? six : four;
  }

  update(key: Buffer, value: Buffer, flag?: 'any' | 'noexist' | 'exist'): void {
    if ('value' in this.by) {
      if (value.length === this.by.value) {
        if (!this.v6) throw new Error('family: an IPv6 entry but no IPv6 map');
        this.v6.update(key, value, flag);
      } else this.v4.update(key, value, flag);
      return;
    }
    this.forKey(key).update(key, value, flag);
  }

  delete(key: Buffer): boolean | void {
    return this.forKey(key).delete(key);
  }

  *keys(): Iterable<Buffer> {
    yield* this.v4.keys();
    if (this.v6) yield* this.v6.keys();
  }
}

/**
 * `maps` with services, vips, backends and reverse replaced by views over both families (the
 * reconciler's one code path); the rest (maglev, settings, stats...) has no address and is shared.
 */
export function familyUnionMaps<M extends { services: FamilyKernelMap; vips: FamilyKernelMap; backends: FamilyKernelMap; reverse: FamilyKernelMap; v6?: Family6Maps }>(maps: M): M {
  const v6 = maps.v6;
  return {
    ...maps,
    services: new FamilyUnionMap(maps.services, v6?.services6, { key: FAMILY6.serviceKeySize }),
    vips: new FamilyUnionMap(maps.vips, v6?.vips6, { key: 16 }),
    backends: new FamilyUnionMap(maps.backends, v6?.backends6, { value: FAMILY6.backendSize }),
    reverse: new FamilyUnionMap(maps.reverse, v6?.reverse6, { key: FAMILY6.reverseKeySize }),
  };
}

/**
 * service_slots and service_slots6 as one ARRAY of 2 * LB_SERVICE_SLOTS slots: the IPv4 slots
 * at 0..LB_SERVICE_SLOTS-1, the IPv6 ones after them (each family's slots are its own: an IPv4
 * and an IPv6 service never compete for a slot). The reconciler keeps one code path (which
 * service a slot holds, its read-back mirror, the write order) for both families over it. A
 * family without its map keeps no slots (slotOf is -1).
 */
export class ServiceSlotsUnion implements FamilyKernelMap {
  constructor(private readonly v4: FamilyKernelMap | undefined, private readonly v6: FamilyKernelMap | undefined) {}

  /** The union slot of an encoded services / services6 key, or -1 when its family keeps no slots. */
  slotOf(serviceKey: Buffer): number {
    if (isServiceKey4(serviceKey)) return this.v4 ? FAMILY4.slotIndex(serviceKey) : -1;
    return this.v6 ? LB.SERVICE_SLOTS + FAMILY6.slotIndex(serviceKey) : -1;
  }

  /** An empty slot's value (all zero) for a union slot. */
  empty(slot: number): Buffer {
    return Buffer.alloc(slot < LB.SERVICE_SLOTS ? FAMILY4.slotSize : FAMILY6.slotSize);
  }

  /** The family's map and its own index of a union slot key. */
  private at(key: Buffer): [FamilyKernelMap, Buffer] {
    const slot = decodeU32(key);
    const map = slot < LB.SERVICE_SLOTS ? this.v4 : this.v6;
    if (!map || slot >= 2 * LB.SERVICE_SLOTS) throw new Error(`family: no service slot ${slot}`);
    return [map, slot < LB.SERVICE_SLOTS ? key : encodeU32(slot - LB.SERVICE_SLOTS)];
  }

  lookup(key: Buffer): Buffer | null {
    const [map, k] = this.at(key);
    return map.lookup(k);
  }

  update(key: Buffer, value: Buffer, flag?: 'any' | 'noexist' | 'exist'): void {
    const [map, k] = this.at(key);
    map.update(k, value, flag);
  }

  delete(key: Buffer): boolean | void {
    const [map, k] = this.at(key);
    return map.delete(k);
  }

  *keys(): Iterable<Buffer> {
    if (this.v4) yield* this.v4.keys();
    if (this.v6) for (const k of this.v6.keys()) yield encodeU32(decodeU32(k) + LB.SERVICE_SLOTS);
  }
}
