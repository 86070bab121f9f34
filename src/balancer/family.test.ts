/**
 * IPv6 services through the reconciler against the REAL loaded bpf/lb.o (no kernel mocks; no pins,
 * no namespaces): a dual-stack state lands in the IPv6 sibling maps (services6, vips6, backends6,
 * reverse6, reverse_frags6, settings.vip_filter6), read back with the generated TypedMaps; ids are
 * one space over both families; a second apply writes nothing; pool changes swap tables with
 * transition marks as for IPv4; removals clean every v6 map; refused states write nothing.
 * service_slots6 (the direct-indexed copies in front of services6) as service_slots: first service
 * of a slot, write order, recover(); and (netns xlbs6, BPF_PROG_TEST_RUN) a frame to a v6 service
 * is forwarded byte for byte the same with and without its slot.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BpfMap } from '../bpf';
import { Dataplane, MAP_NAMES } from '../dataplane/dataplane';
import { typedLbMap } from '../dataplane/typed-map';
import { LB, decodeU32, encodeU32 } from '../dataplane/abi';
import { serviceSlotIndex, serviceSlotIndex6, vipFilterBit6, vipFilterWords, vipFilterWords6 } from '../dataplane/jhash';
import { kernelTestSkip } from '../../test/support/kernel-env';
import { enterV6TestRunNetns, removeV6TestRunNetns } from '../../test/support/v6-testrun-netns';
import { ETH_P_IPV6, buildFrame6, checksumProblems6, ipToU32 } from '../dataplane/packet';
import { createMaglevTable, readMaglevTable, writeMaglevSlotsFlat } from '../dataplane/maglev-tables';
import type { DataplaneBackend, DataplaneState } from '../dataplane/types';
import { Balancer } from './balancer';
import { buildMaglevTable } from './maglev';
import { Reconciler, type ReconcilerMaps } from './reconciler';
import { FAMILY4, FAMILY6, FamilyUnionMap, ServiceSlotsUnion, familyCodec } from './family';

const up = (address: string, port: number, weight = 1): DataplaneBackend => ({ address, port, weight, healthy: true, draining: false });
const PROTO = { tcp: 6, udp: 17 } as const;

function dualState(): DataplaneState {
  return {
    services: [
      { name: 'web', vip: '198.18.100.1', port: 80, protocol: 'tcp', mode: 'nat', tableSize: 13, backends: [up('198.18.1.2', 8080)] },
      {
        name: 'web6', vip: '2001:2::100', port: 80, protocol: 'tcp', mode: 'nat', tableSize: 251,
        backends: [up('2001:2::1:2', 8080), up('2001:2::1:3', 8080, 2), { ...up('2001:2::1:4', 0), draining: true }, { ...up('2001:2::1:5', 8080), healthy: false }],
      },
      { name: 'dns6', vip: '2001:2::100', port: 53, protocol: 'udp', mode: 'dsr', tableSize: 13, backends: [up('2001:2::1:2', 53), up('2001:2::1:6', 0)] },
      { name: 'any6', vip: '2001:2::101', port: 0, protocol: 'tcp', mode: 'nat', tableSize: 7, backends: [up('2001:2::1:7', 0)] },
    ],
    settings: { fragPolicy: 'drop', sampleRate: 0, flowCache: true, reverseGraceSeconds: 0 },
  };
}

function clone(s: DataplaneState): DataplaneState {
  return JSON.parse(JSON.stringify(s)) as DataplaneState;
}

function snapshot(dp: Dataplane): string {
  const out: string[] = [];
  for (const name of MAP_NAMES) {
    if (name === 'events') continue;
    const m = dp.map(name);
    for (const k of m.keys()) {
      const v = m.lookup(k);
      if (v && v.some((b) => b !== 0)) out.push(`${name}:${k.toString('hex')}=${v.toString('hex')}`);
    }
  }
  return out.sort().join('\n');
}

function innerTable(dp: Dataplane, serviceId: number): number[] | null {
  const v = dp.serviceTable(serviceId);
  if (!v) return null;
  const inner = BpfMap.fromId(decodeU32(v));
  try {
    const out: number[] = [];
    for (let i = 0; i < inner.maxEntries; i++) out.push(decodeU32(inner.lookup(encodeU32(i))!) & LB.SLOT_ID_MASK);
    return out;
  } finally {
    inner.close();
  }
}

/** Every entry a dual-stack state implies, in both families' maps, read back with TypedMaps; nothing else. */
function checkMaps(dp: Dataplane, lb: Balancer, state: DataplaneState): void {
  const t = {
    services: typedLbMap('services', dp.map('services')), services6: typedLbMap('services6', dp.map('services6')),
    vips: typedLbMap('vips', dp.map('vips')), vips6: typedLbMap('vips6', dp.map('vips6')),
    backends: typedLbMap('backends', dp.map('backends')), backends6: typedLbMap('backends6', dp.map('backends6')),
    reverse: typedLbMap('reverse', dp.map('reverse')), reverse6: typedLbMap('reverse6', dp.map('reverse6')),
    reverseFrags6: typedLbMap('reverse_frags6', dp.map('reverse_frags6')),
    settings: typedLbMap('settings', dp.map('settings')),
  };
  const v6 = (a: string) => a.includes(':');
  checkSlots6(dp, state);
  const ids = new Set<number>();
  const backendIds = new Map<number, 4 | 6>();
  const vipCounts = new Map<string, number>();
  let services4 = 0; let services6 = 0; let reverse4 = 0; let reverse6 = 0;
  for (const s of state.services) {
    const sid = lb.reconciler.serviceId(s.name)!;
    assert.ok(sid >= 1 && !ids.has(sid), `${s.name}: an id of its own`);
    ids.add(sid);
    const key = { vip: s.vip, port: s.port, proto: PROTO[s.protocol] };
    const usable = s.backends.filter((b) => b.healthy && !b.draining && b.weight > 0);
    const want = { id: sid, tableSize: usable.length ? s.tableSize : 0, mode: s.mode === 'nat' ? LB.MODE_NAT : LB.MODE_DSR, flags: 0 };
    if (v6(s.vip)) {
      services6++;
      assert.deepEqual(t.services6.get(key), want, `${s.name} in services6`);
      assert.equal(t.services.get({ ...key, vip: '198.18.0.1' })?.id === sid, false);
    } else {
      services4++;
      assert.deepEqual(t.services.get(key), want, `${s.name} in services`);
    }
    vipCounts.set(s.vip, (vipCounts.get(s.vip) ?? 0) + 1);
    const table = innerTable(dp, sid);
    if (!usable.length) assert.equal(table, null);
    else {
      const keys = usable.map((b) => ({ key: familyKey(b.address, b.port), weight: b.weight })).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
      const slots = buildMaglevTable(keys, s.tableSize);
      const byKey = new Map(usable.map((b) => [familyKey(b.address, b.port), lb.reconciler.backendId(s.name, b.address, b.port)!]));
      assert.deepEqual(table, [...slots].map((i) => byKey.get(keys[i].key)), `${s.name}: its Maglev table holds its backends' ids (the maglev map is shared)`);
    }
    for (const b of s.backends) {
      const bid = lb.reconciler.backendId(s.name, b.address, b.port)!;
      assert.ok(bid >= 1 && !backendIds.has(bid), `${s.name} ${b.address}: a backend id of its own (one space over both families)`);
      backendIds.set(bid, v6(b.address) ? 6 : 4);
      const flags = b.healthy ? LB.BACKEND_F_ACTIVE | (b.draining || b.weight === 0 ? LB.BACKEND_F_DRAINING : 0) : 0;
      const value = { ip: b.address, port: b.port, flags, mode: s.mode === 'dsr' ? LB.MODE_DSR : LB.MODE_NAT, serviceId: sid, vip: s.vip, vport: s.port, proto: PROTO[s.protocol] };
      assert.deepEqual((v6(b.address) ? t.backends6 : t.backends).get(bid), value, `${s.name} backend ${b.address}`);
      assert.ok(dp.map(v6(b.address) ? 'backends' : 'backends6').lookup(encodeU32(bid))!.every((x) => x === 0), 'the other family\'s slot of the id is zero');
      if (s.mode !== 'nat') continue;
      const rkey = { ip: b.address, port: b.port || s.port, proto: PROTO[s.protocol] };
      if (v6(b.address)) reverse6++; else reverse4++;
      assert.deepEqual((v6(b.address) ? t.reverse6 : t.reverse).get(rkey), { vip: s.vip, vport: s.port, serviceId: sid, backendId: bid });
    }
  }
  assert.equal(t.services.keys().length, services4, 'no other v4 services');
  assert.equal(t.services6.keys().length, services6, 'no other v6 services');
  assert.equal(t.reverse.keys().length, reverse4);
  assert.equal(t.reverse6.keys().length, reverse6);
  for (const [vip, count] of vipCounts) assert.deepEqual((v6(vip) ? t.vips6 : t.vips).get(vip), { services: count }, vip);
  assert.deepEqual(t.vips6.keys().sort(), [...vipCounts.keys()].filter(v6).sort());
  assert.deepEqual(t.vips.keys().sort(), [...vipCounts.keys()].filter((v) => !v6(v)).sort());
  for (let id = 1; id < dp.map('backends').maxEntries; id++) {
    if (backendIds.has(id)) continue;
    assert.ok(dp.map('backends').lookup(encodeU32(id))!.every((x) => x === 0), `backends[${id}] zero`);
    assert.ok(dp.map('backends6').lookup(encodeU32(id))!.every((x) => x === 0), `backends6[${id}] zero`);
  }
  // service_slots holds IPv4 services only
  for (const k of dp.map('service_slots').keys()) {
    const v = dp.map('service_slots').lookup(k)!;
    if (v.some((x) => x !== 0)) assert.ok(state.services.some((s) => !v6(s.vip) && v.subarray(0, FAMILY4.serviceKeySize).equals(FAMILY4.serviceKey({ vip: s.vip, port: s.port, proto: PROTO[s.protocol] }))));
  }
  const settings = t.settings.get(0)!;
  assert.deepEqual(settings.vipFilter, vipFilterWords(state.services.filter((s) => !v6(s.vip)).map((s) => ipToU32(s.vip))));
  assert.deepEqual(settings.vipFilter6, vipFilterWords6(state.services.filter((s) => v6(s.vip)).map((s) => s.vip)));
  // reverse_frags6: one entry per NAT backend address serving one VIP
  const frags = new Map<string, string>();
  for (const s of state.services) if (s.mode === 'nat' && v6(s.vip)) for (const b of s.backends) frags.set(`${b.address}/${s.protocol}`, s.vip);
  assert.deepEqual(t.reverseFrags6.entries().map(([k, v]) => `${k.ip}/${k.proto === 6 ? 'tcp' : 'udp'}:${k.port}=${v.vip}:${v.vport}`).sort(),
    [...frags].map(([k, vip]) => `${k}:0=${vip}:0`).sort());
}

/** service_slots6 holds, at serviceSlotIndex6 of each IPv6 service's key, the first such service of
 * the state's order (key + its services6 entry); every other slot is empty. */
function checkSlots6(dp: Dataplane, state: DataplaneState): void {
  const want = new Map<number, string>();
  for (const s of state.services) {
    if (!s.vip.includes(':')) continue;
    const key = FAMILY6.serviceKey({ vip: s.vip, port: s.port, proto: PROTO[s.protocol] });
    const index = serviceSlotIndex6(s.vip, s.port, PROTO[s.protocol]);
    if (!want.has(index)) want.set(index, Buffer.concat([key, dp.map('services6').lookup(key)!]).toString('hex'));
  }
  const slots = dp.map('service_slots6');
  for (let index = 0; index < LB.SERVICE_SLOTS; index++) {
    const v = slots.lookup(encodeU32(index))!;
    assert.equal(v.some((b) => b !== 0) ? v.toString('hex') : undefined, want.get(index), `service_slots6[${index}]`);
  }
}

/** A second reconciler over `dp`'s maps (as after a restart over the pins), recover()ed. */
function recoveredReconciler(dp: Dataplane): Reconciler {
  const maps: ReconcilerMaps = {
    services: dp.map('services'), vips: dp.map('vips'), maglev: dp.map('maglev'), maglevMarks: dp.map('maglev_marks'), serviceSlots: dp.map('service_slots'),
    backends: dp.map('backends'), reverse: dp.map('reverse'), settings: dp.map('settings'), serviceStats: dp.map('service_stats'), backendStats: dp.map('backend_stats'),
    v6: { services6: dp.map('services6'), vips6: dp.map('vips6'), backends6: dp.map('backends6'), reverse6: dp.map('reverse6'), serviceSlots6: dp.map('service_slots6') },
  };
  const again = new Reconciler(maps, { maxServices: 16, maxBackends: 64, maxVips: dp.map('vips').maxEntries, maxReverse: dp.map('reverse').maxEntries, maglevMaxSize: 65537 },
    (slots) => createMaglevTable(slots), readMaglevTable, Date.now, writeMaglevSlotsFlat);
  again.recover();
  return again;
}

function familyKey(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

describe('family codecs and union maps (unit)', () => {
  test('the families are told apart by size, and each codec encodes its own family', () => {
    assert.notEqual(FAMILY4.serviceKeySize, FAMILY6.serviceKeySize);
    assert.equal(familyCodec('2001:2::5'), FAMILY6);
    assert.equal(familyCodec('198.18.0.1'), FAMILY4);
    assert.equal(FAMILY6.serviceKey({ vip: '2001:2::5', port: 80, proto: 6 }).length, 20);
    assert.equal(FAMILY6.backend({ ip: '2001:2::5', port: 1, flags: 1, mode: 0, serviceId: 3, vip: '2001:2::100', vport: 80, proto: 6 })[FAMILY6.flagsAt], 1);
    assert.equal(FAMILY4.backend({ ip: '198.18.0.5', port: 1, flags: 1, mode: 0, serviceId: 3, vip: '198.18.0.100', vport: 80, proto: 6 })[FAMILY4.flagsAt], 1);
  });
  test('a union map sends keys (or ARRAY values) to their family and lists both', () => {
    const mk = () => { const m = new Map<string, Buffer>(); return { m, lookup: (k: Buffer) => m.get(k.toString('hex')) ?? null, update: (k: Buffer, v: Buffer) => { m.set(k.toString('hex'), v); }, delete: (k: Buffer) => m.delete(k.toString('hex')), keys: () => [...m.keys()].map((h) => Buffer.from(h, 'hex')) }; };
    const a = mk(); const b = mk();
    const u = new FamilyUnionMap(a, b, { key: 16 });
    u.update(Buffer.alloc(4, 1), Buffer.from([1]));
    u.update(Buffer.alloc(16, 2), Buffer.from([2]));
    assert.deepEqual([a.m.size, b.m.size], [1, 1]);
    assert.equal([...u.keys()].length, 2);
    assert.deepEqual(u.lookup(Buffer.alloc(16, 2)), Buffer.from([2]));
    const arr = new FamilyUnionMap(a, b, { value: 44 });
    arr.update(encodeU32(7), Buffer.alloc(44, 9));
    assert.ok(b.m.has(encodeU32(7).toString('hex')));
    assert.deepEqual(arr.lookup(encodeU32(7)), Buffer.alloc(44, 9));
    assert.throws(() => new FamilyUnionMap(a, undefined, { key: 16 }).update(Buffer.alloc(16), Buffer.alloc(1)), /no IPv6 map/);
  });
  test('the slots union: IPv4 slots first, IPv6 slots after them at serviceSlotIndex6; a family without its map keeps none', () => {
    const mk = () => { const m = new Map<string, Buffer>(); return { m, lookup: (k: Buffer) => m.get(k.toString('hex')) ?? null, update: (k: Buffer, v: Buffer) => { m.set(k.toString('hex'), v); }, delete: (k: Buffer) => m.delete(k.toString('hex')), keys: () => [...m.keys()].map((h) => Buffer.from(h, 'hex')) }; };
    const a = mk(); const b = mk();
    const u = new ServiceSlotsUnion(a, b);
    const k4 = FAMILY4.serviceKey({ vip: '198.18.0.1', port: 80, proto: 6 });
    const k6 = FAMILY6.serviceKey({ vip: '2001:2::1', port: 443, proto: 17 });
    assert.equal(u.slotOf(k4), serviceSlotIndex(k4));
    assert.equal(u.slotOf(k6), LB.SERVICE_SLOTS + serviceSlotIndex6('2001:2::1', 443, 17));
    assert.equal(FAMILY6.slotSize, 32);
    assert.equal(u.empty(u.slotOf(k6)).length, 32);
    assert.equal(u.empty(u.slotOf(k4)).length, FAMILY4.slotSize);
    u.update(encodeU32(u.slotOf(k6)), Buffer.alloc(32, 6));
    assert.deepEqual([...b.m.keys()], [encodeU32(serviceSlotIndex6('2001:2::1', 443, 17)).toString('hex')], 'the v6 map at its own index');
    assert.equal(a.m.size, 0);
    assert.deepEqual([...u.keys()].map(decodeU32), [u.slotOf(k6)]);
    assert.equal(new ServiceSlotsUnion(a, undefined).slotOf(k6), -1);
    assert.equal(new ServiceSlotsUnion(undefined, b).slotOf(k4), -1);
  });
});

describe('IPv6 services through the reconciler on the loaded bpf/lb.o', () => {
  let dp: Dataplane;
  let lb: Balancer;
  before(() => {
    dp = Dataplane.load({ hashSeed: 0x4321, maxServices: 16, maxBackends: 64, maxFlows: 1024, maglevMaxSize: 65537 });
    lb = new Balancer(dp);
  });
  after(() => dp?.close());

  test('a dual-stack state lands in both families\' maps; ids are one space', () => {
    const state = dualState();
    assert.ok(lb.applyState(state).writes > 0);
    checkMaps(dp, lb, state);
  });

  test('applying the same state again writes nothing', () => {
    const before = snapshot(dp);
    const r = lb.applyState(dualState());
    assert.equal(r.writes, 0);
    assert.deepEqual(r.tablesSwapped, []);
    assert.equal(snapshot(dp), before);
  });

  test('a v6 pool change swaps in a new table with transition marks, as for IPv4', () => {
    const state = dualState();
    state.services[1].backends.push(up('2001:2::1:8', 8080));
    const sid = lb.reconciler.serviceId('web6')!;
    const r = lb.applyState(state);
    assert.deepEqual(r.tablesSwapped, [sid]);
    checkMaps(dp, lb, state);
    assert.ok(lb.reconciler.transitionSlotCount() > 0, 'moved slots are marked');
    assert.ok(dp.map('maglev_marks').lookup(encodeU32(sid)), 'the marks table of the v6 service is installed');
  });

  test('down, drained and removed v6 backends: flags, zeroed slots and reverse6 entries follow', () => {
    const state = dualState();
    state.services[1].backends[0].healthy = false;     // 2001:2::1:2 down
    state.services[1].backends.splice(1, 1);           // 2001:2::1:3 removed
    state.services[1].backends.push(up('2001:2::1:8', 8080));   // one usable backend left
    const removedId = lb.reconciler.backendId('web6', '2001:2::1:3', 8080)!;
    lb.applyState(state);
    checkMaps(dp, lb, state);
    assert.ok(dp.map('backends6').lookup(encodeU32(removedId))!.every((x) => x === 0));
    assert.equal(typedLbMap('reverse6', dp.map('reverse6')).get({ ip: '2001:2::1:3', port: 8080, proto: 6 }), null);
  });

  test('recover() over the same maps re-learns v6 ids: the next apply writes nothing', () => {
    const state = dualState();
    lb.applyState(state);
    const again = recoveredReconciler(dp);
    for (const s of state.services) for (const b of s.backends) {
      assert.equal(again.backendId.call(again, s.name, b.address, b.port), null, 'names are learnt at the first apply');
    }
    const before = snapshot(dp);
    const r = again.apply(state);
    assert.equal(r.writes, 0, 'ids recovered from services6/backends6');
    assert.equal(snapshot(dp), before);
    assert.equal(again.backendId('web6', '2001:2::1:2', 8080), lb.reconciler.backendId('web6', '2001:2::1:2', 8080));
  });

  test('states the maps cannot hold are refused before any write (mixed family, non-canonical text, no v6 maps)', () => {
    const before = snapshot(dp);
    const writes = lb.reconciler.writeCount;
    const bad: Array<[string, (s: DataplaneState) => void, RegExp]> = [
      ['v4 backend behind a v6 VIP', (s) => { s.services[1].backends.push(up('198.18.1.9', 8080)); }, /invariant "family" broken: service "web6"/],
      ['v6 backend behind a v4 VIP', (s) => { s.services[0].backends.push(up('2001:2::9', 8080)); }, /invariant "family" broken: service "web"/],
      ['non-canonical VIP', (s) => { s.services[1].vip = '2001:0002::100'; }, /not an address in canonical form/],
      ['non-canonical backend', (s) => { s.services[1].backends[0].address = '2001:2:0:0:0:0:1:2'; }, /not an address in canonical form/],
    ];
    for (const [what, mutate, message] of bad) {
      const s = clone(dualState());
      mutate(s);
      assert.throws(() => lb.applyState(s), message, what);
      assert.equal(lb.reconciler.writeCount, writes, `${what}: no write`);
      assert.equal(snapshot(dp), before, `${what}: maps unchanged`);
    }
    const v4only = new Reconciler({
      services: dp.map('services'), vips: dp.map('vips'), maglev: dp.map('maglev'), backends: dp.map('backends'),
      reverse: dp.map('reverse'), settings: dp.map('settings'),
    }, { maxServices: 16, maxBackends: 64, maxVips: 256, maxReverse: 1024, maglevMaxSize: 65537 }, (slots) => createMaglevTable(slots));
    assert.throws(() => v4only.apply(dualState()), /IPv6 VIP 2001:2::100 but the data plane has no IPv6 maps/);
    assert.equal(snapshot(dp), before);
  });

  test('removing the v6 services empties every v6 map and the v6 VIP filter; IPv4 stays', () => {
    const state = dualState();
    state.services = state.services.filter((s) => !s.vip.includes(':'));
    lb.applyState(state);
    checkMaps(dp, lb, state);
    for (const name of ['services6', 'vips6', 'reverse6', 'reverse_frags6'] as const) assert.equal([...dp.map(name).keys()].length, 0, name);
    assert.deepEqual(typedLbMap('settings', dp.map('settings')).get(0)!.vipFilter6, new Array<number>(LB.VIP_FILTER_WORDS).fill(0));
  });
});

describe('IPv6 write order', () => {
  /**
   * As reconciler.test's write-order test, for IPv6 services: after EACH write to any map, every
   * VIP a packet could reach (vips6, services6) has its vip_filter6 bit, a live v6 service's
   * table_size never exceeds its installed table, and every id in that table is an ACTIVE
   * backends6 entry of that service. A service_slots6 copy is a service too (the program reads
   * it first): it names a services6 entry of the same id (written after it, cleared before it
   * goes) and meets the same table rules; after each apply it equals its services6 entry.
   */
  test('no packet can meet a half state between two writes (IPv6 maps)', () => {
    const dp = Dataplane.load({ hashSeed: 5, maxServices: 16, maxBackends: 64, maxFlows: 64, maglevMaxSize: 65537 });
    try {
      const t = {
        settings: typedLbMap('settings', dp.map('settings')), services6: typedLbMap('services6', dp.map('services6')),
        vips6: typedLbMap('vips6', dp.map('vips6')), backends6: typedLbMap('backends6', dp.map('backends6')),
        slots6: typedLbMap('service_slots6', dp.map('service_slots6')),
      };
      let slotCopiesSeen = 0;
      const violations: string[] = [];
      let checks = 0;
      const check = (after: string) => {
        checks++;
        const filter = t.settings.get(0)?.vipFilter6 ?? new Array<number>(LB.VIP_FILTER_WORDS).fill(0);
        for (const vip of [...t.vips6.keys(), ...t.services6.keys().map((k) => k.vip)]) {
          const bit = vipFilterBit6(vip);
          if (!((filter[bit >>> 5] >>> (bit & 31)) & 1)) violations.push(`${after}: VIP ${vip} not in vip_filter6`);
        }
        const slotCopies = t.slots6.entries().filter(([, slot]) => slot.key.proto !== 0);
        slotCopiesSeen += slotCopies.length;
        for (const [index, slot] of slotCopies) {
          const entry = t.services6.get(slot.key);
          if (!entry || entry.id !== slot.svc.id) violations.push(`${after}: service_slots6[${index}] holds service ${slot.svc.id} of ${slot.key.vip} port ${slot.key.port}, services6 ${entry ? `has ${entry.id}` : 'has none'}`);
        }
        for (const [key, svc] of [...t.services6.entries(), ...slotCopies.map(([, slot]) => [slot.key, slot.svc] as const)]) {
          if (t.vips6.get(key.vip) === null || svc.tableSize === 0) continue;
          const table = innerTable(dp, svc.id);
          if (!table) { violations.push(`${after}: service ${svc.id} table_size ${svc.tableSize} without a table`); continue; }
          if (table.length < svc.tableSize) violations.push(`${after}: service ${svc.id} table_size ${svc.tableSize} > table ${table.length}`);
          for (const id of new Set(table.slice(0, svc.tableSize))) {
            if (id === 0) continue;
            const b = t.backends6.get(id)!;
            if (!(b.flags & LB.BACKEND_F_ACTIVE) || b.serviceId !== svc.id) violations.push(`${after}: service ${svc.id} table holds backend ${id} (flags ${b.flags}, owner ${b.serviceId})`);
          }
        }
      };
      const watched = <T extends object>(name: string, map: T): T => new Proxy(map, {
        get(target, prop, receiver) {
          const v = Reflect.get(target, prop, receiver) as unknown;
          if ((prop === 'update' || prop === 'delete') && typeof v === 'function') {
            return (...args: unknown[]) => { const r = (v as (...a: unknown[]) => unknown).apply(target, args); check(`${String(prop)} ${name}`); return r; };
          }
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
      const w = (name: Parameters<Dataplane['map']>[0]) => watched(name, dp.map(name));
      const reconciler = new Reconciler({
        services: w('services'), vips: w('vips'), maglev: w('maglev'), maglevMarks: w('maglev_marks'), backends: w('backends'), reverse: w('reverse'), settings: w('settings'),
        v6: { services6: w('services6'), vips6: w('vips6'), backends6: w('backends6'), reverse6: w('reverse6'), serviceSlots6: w('service_slots6') },
      }, { maxServices: 16, maxBackends: 64, maxVips: 256, maxReverse: 4096, maglevMaxSize: 65537 }, createMaglevTable, readMaglevTable, Date.now, writeMaglevSlotsFlat);
      const steps: Array<[string, (s: DataplaneState) => void]> = [
        ['initial', () => {}],
        ['pool change', (s) => { s.services[1].backends.splice(0, 1); }],
        ['new backend', (s) => { s.services[1].backends.push(up('2001:2::1:20', 8080)); }],
        ['grow table', (s) => { s.services[1].tableSize = 509; }],
        ['shrink table', (s) => { s.services[1].tableSize = 7; }],
        ['all unhealthy', (s) => { for (const b of s.services[1].backends) b.healthy = false; }],
        ['healthy again', () => {}],
        ['service moves VIP', (s) => { s.services[3].vip = '2001:2::107'; }],
        ['service removed', (s) => { s.services.splice(2, 1); }],
        ['everything removed', (s) => { s.services = []; }],
        ['everything back', () => {}],
      ];
      for (const [what, mutate] of steps) {
        const s = dualState();
        mutate(s);
        reconciler.apply(s);
        assert.deepEqual(violations, [], what);
        checkSlots6(dp, s);
      }
      assert.ok(checks > 50, `checked after each of ${checks} writes`);
      assert.ok(slotCopiesSeen > 0, 'service_slots6 copies were checked');
    } finally {
      dp.close();
    }
  });
});

/** Two IPv6 listeners on `vip` (tcp) whose keys land in the same service_slots6 slot, and an IPv4
 * one whose service_slots index is that slot's number (searched; bounded). */
function collidingListeners(vip: string, vip4: string): { port: number; other: number; port4: number; index: number } {
  const index = serviceSlotIndex6(vip, 80, 6);
  let other = 0;
  for (let p = 81; p < 65536 && !other; p++) if (serviceSlotIndex6(vip, p, 6) === index) other = p;
  let port4 = 0;
  for (let p = 1; p < 65536 && !port4; p++) if (serviceSlotIndex(FAMILY4.serviceKey({ vip: vip4, port: p, proto: 6 })) === index) port4 = p;
  assert.ok(other && port4, 'colliding ports found');
  return { port: 80, other, port4, index };
}

describe('service_slots6 through the reconciler on the loaded bpf/lb.o', () => {
  const VIP = '2001:2::200';
  const VIP4 = '198.18.100.9';
  const c = collidingListeners(VIP, VIP4);
  const svc = (name: string, port: number, backend: string) => ({
    name, vip: VIP, port, protocol: 'tcp' as const, mode: 'nat' as const, tableSize: 13, backends: [up(backend, 8080)],
  });
  const a = svc('a', c.port, '2001:2::2:1');
  const b = svc('b', c.other, '2001:2::2:2');
  const v4 = { name: 'v4', vip: VIP4, port: c.port4, protocol: 'tcp' as const, mode: 'nat' as const, tableSize: 13, backends: [up('198.18.2.1', 8080)] };
  const state = (...services: DataplaneState['services']): DataplaneState => ({
    services: JSON.parse(JSON.stringify(services)) as DataplaneState['services'],
    settings: { fragPolicy: 'drop', sampleRate: 0, flowCache: true, reverseGraceSeconds: 0 },
  });
  const slot6 = (dp: Dataplane) => typedLbMap('service_slots6', dp.map('service_slots6')).get(c.index)!;
  let dp: Dataplane;
  let lb: Balancer;
  before(() => {
    dp = Dataplane.load({ hashSeed: 7, maxServices: 16, maxBackends: 64, maxFlows: 64, maglevMaxSize: 65537 });
    lb = new Balancer(dp);
  });
  after(() => dp?.close());

  test('an IPv6 service lands in service_slots6 at serviceSlotIndex6 with its services6 entry; a colliding one stays in services6 only; IPv4 keeps its own slot', () => {
    lb.applyState(state(a, b, v4));
    const entry = typedLbMap('services6', dp.map('services6')).get({ vip: VIP, port: c.port, proto: 6 });
    assert.deepEqual(slot6(dp), { key: { vip: VIP, port: c.port, proto: 6 }, svc: entry }, 'the first service of the slot');
    assert.ok(typedLbMap('services6', dp.map('services6')).get({ vip: VIP, port: c.other, proto: 6 }), 'the second one is in services6');
    const four = typedLbMap('service_slots', dp.map('service_slots')).get(c.index)!;
    assert.equal(four.key.vip, VIP4, 'the IPv4 slot of the same number holds the IPv4 service (the families do not compete)');
    checkSlots6(dp, state(a, b, v4));
  });

  test('the slot follows the state\'s order, and a table size change (no backend left) rewrites it', () => {
    lb.applyState(state(b, a, v4));
    assert.equal(slot6(dp).key.port, c.other, 'b is first now');
    checkSlots6(dp, state(b, a, v4));
    const down = state(b, a, v4);
    down.services[0].backends[0].healthy = false;
    lb.applyState(down);
    assert.equal(slot6(dp).svc.tableSize, 0, 'the copy follows services6');
    checkSlots6(dp, down);
    assert.equal(lb.applyState(down).writes, 0, 'nothing to write twice');
  });

  test('delete: the slot goes to the next service of the slot, then is emptied; services6 and the slot go together', () => {
    lb.applyState(state(b, a, v4));
    lb.applyState(state(a, v4));
    assert.equal(slot6(dp).key.port, c.port, 'b deleted: a takes its slot');
    checkSlots6(dp, state(a, v4));
    lb.applyState(state(v4));
    assert.equal(slot6(dp).key.proto, 0, 'a deleted: the slot is empty');
    assert.equal([...dp.map('services6').keys()].length, 0);
    checkSlots6(dp, state(v4));
    assert.equal(typedLbMap('service_slots', dp.map('service_slots')).get(c.index)!.key.vip, VIP4, 'the IPv4 slot stays');
  });

  test('after a restart (recover() over the same maps) the slots are read back: the same state writes nothing; a delete empties the slot', () => {
    lb.applyState(state(a, b, v4));
    const again = recoveredReconciler(dp);
    const before = snapshot(dp);
    assert.equal(again.apply(state(a, b, v4)).writes, 0, 'the recovered reconciler knows the slots');
    assert.equal(snapshot(dp), before);
    again.apply(state(b, v4));
    assert.equal(slot6(dp).key.port, c.other, 'a deleted by the new reconciler: b takes the slot');
    checkSlots6(dp, state(b, v4));
    again.apply(state(v4));
    assert.equal(slot6(dp).key.proto, 0);
    checkSlots6(dp, state(v4));
  });
});

const LB_MAC = '02:00:00:5e:00:01';
const CLIENT = '2001:2:0:61::10';
const CLIENT_MAC = '02:00:00:5e:00:0a';
const BACKEND_MACS: Record<string, string> = { '2001:2:0:62::11': '02:00:00:5e:01:11', '2001:2:0:62::12': '02:00:00:5e:01:12' };
const NETNS = {
  ns: 'xlbs6', dev: 'xlbs6-a', mac: LB_MAC, addresses: ['2001:2:0:61::1/64', '2001:2:0:62::1/64'],
  neighbours: { [CLIENT]: CLIENT_MAC, ...BACKEND_MACS },
};

describe('a frame to an IPv6 service is forwarded the same with and without its service_slots6 copy (netns xlbs6, BPF_PROG_TEST_RUN)', { skip: kernelTestSkip('the service_slots6 forwarding test') }, () => {
  let dp: Dataplane | null = null;
  let restore = (): void => {};
  let ifindex = 0;
  const VIP = '2001:2:0:160::1';
  const services: DataplaneState['services'] = [
    { name: 'nat6', vip: VIP, port: 80, protocol: 'tcp', mode: 'nat', tableSize: 251, backends: Object.keys(BACKEND_MACS).map((ip) => up(ip, 8080)) },
    { name: 'dsr6', vip: VIP, port: 53, protocol: 'udp', mode: 'dsr', tableSize: 13, backends: [up('2001:2:0:62::12', 0)] },
  ];

  before(() => {
    const entered = enterV6TestRunNetns(NETNS);
    ifindex = entered.ifindex;
    restore = entered.restore;
    dp = Dataplane.load({ hashSeed: 0x5107 });
    dp.writeInterfaceMac(NETNS.dev, ifindex);
    new Balancer(dp).applyState({ services, settings: { fragPolicy: 'drop', sampleRate: 0, flowCache: false } });
  });

  after(() => {
    dp?.close();
    restore();
    removeV6TestRunNetns(NETNS);
  });

  test('NAT66 TCP and DSR UDP: the reconciler wrote the slots; emptied, services6 answers with the same bytes', () => {
    const frames = [
      ...Array.from({ length: 24 }, (_, i) => buildFrame6({ eth: { dst: LB_MAC, src: CLIENT_MAC }, ip: { src: CLIENT, dst: VIP }, tcp: { sport: 42000 + i, dport: 80, flags: 0x18, payload: Buffer.from('slot6') } })),
      buildFrame6({ eth: { dst: LB_MAC, src: CLIENT_MAC }, ip: { src: CLIENT, dst: VIP }, udp: { sport: 5300, dport: 53, payload: Buffer.from('q') } }),
    ];
    const run = () => frames.map((f) => {
      const r = dp!.program.testRun(f, { ingressIfindex: ifindex });
      assert.equal(r.retval, 3, 'XDP_TX');
      return r.data;
    });
    const slots = dp!.map('service_slots6');
    const indexes = [serviceSlotIndex6(VIP, 80, 6), serviceSlotIndex6(VIP, 53, 17)];
    assert.notEqual(indexes[0], indexes[1]);
    for (const [i, s] of services.entries()) {
      const key = FAMILY6.serviceKey({ vip: s.vip, port: s.port, proto: PROTO[s.protocol] });
      assert.ok(slots.lookup(encodeU32(indexes[i]))!.equals(Buffer.concat([key, dp!.map('services6').lookup(key)!])), `${s.name}: its slot copy is written`);
    }
    const withSlot = run();
    const backends = new Set(withSlot.slice(0, 24).map((f) => f.subarray(14 + 24, 14 + 40).toString('hex')));
    assert.equal(backends.size, 2, 'both NAT backends get flows');
    for (const f of withSlot) {
      // checksumProblems6 says [] of a frame that is not IPv6 at all: make sure it is.
      assert.equal(f.readUInt16BE(12), ETH_P_IPV6, 'an IPv6 frame out (EtherType 0x86dd)');
      assert.deepEqual(checksumProblems6(f), []);
    }
    assert.equal(withSlot[24].readUInt16BE(14 + 40 + 2), 53, 'DSR keeps the port');
    for (const index of indexes) slots.update(encodeU32(index), Buffer.alloc(FAMILY6.slotSize));
    const without = run();
    assert.deepEqual(without.map((f) => f.toString('hex')), withSlot.map((f) => f.toString('hex')), 'the same frames out');
  });
});
