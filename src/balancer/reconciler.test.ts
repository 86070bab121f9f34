/**
 * The reconciler against the REAL loaded bpf/lb.o (no kernel mocks): apply states, read every
 * map back, check table swaps, removals, idempotence and refused states.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BpfMap } from '../bpf';
import { Dataplane, MAP_NAMES } from '../dataplane/dataplane';
import { createMaglevTable } from '../dataplane/maglev-tables';
import { Balancer } from './balancer';
import { Reconciler } from './reconciler';
import {
  LB, LbBackendCodec, LbReverseCodec, LbReverseKeyCodec, LbServiceCodec, LbServiceKeyCodec, LbSettingsCodec,
  LbVipCodec, decodeU32, encodeIpv4Key, encodeU32,
} from '../dataplane/abi';
import { buildMaglevTable } from './maglev';
import { offThreadAvailable } from './maglev-offthread';
import { serviceSlotIndex, vipFilterBit, vipFilterWords } from '../dataplane/jhash';
import { ipToU32 } from '../dataplane/packet';
import type { DataplaneBackend, DataplaneService, DataplaneState } from '../dataplane/types';

const up = (address: string, port: number, weight = 1): DataplaneBackend =>
  ({ address, port, weight, healthy: true, draining: false });

function baseState(): DataplaneState {
  return {
    services: [
      {
        name: 'web', vip: '198.18.100.1', port: 80, protocol: 'tcp', mode: 'nat', tableSize: 251,
        backends: [
          up('198.18.1.2', 8080, 1), up('198.18.1.3', 8080, 2), { ...up('198.18.1.4', 0), draining: true },
          { ...up('198.18.1.5', 8080), healthy: false },
        ],
      },
      {
        name: 'dns', vip: '198.18.100.1', port: 53, protocol: 'udp', mode: 'dsr', tableSize: 13,
        backends: [up('198.18.1.2', 53), up('198.18.1.6', 53)],
      },
      {
        name: 'every-port', vip: '198.18.100.2', port: 0, protocol: 'tcp', mode: 'nat', tableSize: 7,
        backends: [up('198.18.1.7', 0)],
      },
    ],
    // Removed backends' reverse entries go at once here (the grace period has tests of its own).
    settings: { fragPolicy: 'pass', sampleRate: 10, flowCache: true, reverseGraceSeconds: 0 },
  };
}

function clone(s: DataplaneState): DataplaneState {
  return JSON.parse(JSON.stringify(s)) as DataplaneState;
}

/** Every used entry of every map (hex), events excluded: the whole kernel-visible state. */
function snapshot(dp: Dataplane): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const name of MAP_NAMES) {
    if (name === 'events') continue;
    const m = dp.map(name);
    out[name] = [...m.keys()].flatMap((k) => {
      const v = m.lookup(k);
      return v && v.some((b) => b !== 0) ? [`${k.toString('hex')}=${v.toString('hex')}`] : [];
    }).sort();
  }
  return out;
}

function innerTableOf(dp: Dataplane, serviceId: number): { id: number; entries: number[] } | null {
  const v = dp.serviceTable(serviceId);
  if (!v) return null;
  const id = decodeU32(v);
  const inner = BpfMap.fromId(id);
  try {
    const entries: number[] = [];
    for (let i = 0; i < inner.maxEntries; i++) entries.push(decodeU32(inner.lookup(encodeU32(i))!) & LB.SLOT_ID_MASK);
    return { id, entries };
  } finally {
    inner.close();
  }
}

function mapExists(id: number): boolean {
  try {
    BpfMap.fromId(id).close();
    return true;
  } catch {
    return false;
  }
}

async function waitGone(id: number): Promise<boolean> {
  for (let i = 0; i < 250; i++) { // freed after an RCU grace period: allow up to 5 s
    if (!mapExists(id)) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return false;
}

/** Checks every map entry the state should produce, and nothing else. */
function checkMaps(dp: Dataplane, lb: Balancer, state: DataplaneState): void {
  const proto = { tcp: 6, udp: 17 } as const;
  const serviceKeys = new Set<string>();
  const reverseKeys = new Set<string>();
  const backendIds = new Set<number>();
  const vipCounts = new Map<string, number>();
  for (const s of state.services) {
    const sid = lb.reconciler.serviceId(s.name);
    assert.ok(sid !== null && sid >= 1 && sid < dp.map('services').maxEntries, `${s.name} has an id`);
    const key = LbServiceKeyCodec.encode({ vip: s.vip, port: s.port, proto: proto[s.protocol] });
    serviceKeys.add(key.toString('hex'));
    const svc = LbServiceCodec.decode(dp.map('services').lookup(key)!);
    const usable = s.backends.filter((b) => b.healthy && !b.draining && b.weight > 0);
    assert.deepEqual(svc, { id: sid, tableSize: usable.length ? s.tableSize : 0, mode: s.mode === 'nat' ? 0 : 1, flags: 0 }, s.name);
    vipCounts.set(s.vip, (vipCounts.get(s.vip) ?? 0) + 1);

    const table = buildMaglevTable(usable.map((b) => ({ key: `${b.address}:${b.port}`, weight: b.weight })), s.tableSize);
    const inner = innerTableOf(dp, sid!);
    if (usable.length === 0) {
      assert.equal(inner, null, `${s.name}: no table without usable backends`);
    } else {
      assert.ok(inner, `${s.name}: outer map holds a table`);
      assert.equal(inner.entries.length, s.tableSize);
      const expected = [...table].map((i) => lb.reconciler.backendId(s.name, usable[i].address, usable[i].port));
      assert.deepEqual(inner.entries, expected, `${s.name}: inner table is the Maglev table of its usable backends`);
    }
    for (const b of s.backends) {
      const bid = lb.reconciler.backendId(s.name, b.address, b.port)!;
      assert.ok(bid >= 1 && bid < dp.map('backends').maxEntries);
      assert.ok(!backendIds.has(bid), 'backend ids are unique');
      backendIds.add(bid);
      const flags = b.healthy ? LB.BACKEND_F_ACTIVE | (b.draining || b.weight === 0 ? LB.BACKEND_F_DRAINING : 0) : 0;
      assert.deepEqual(LbBackendCodec.decode(dp.map('backends').lookup(encodeU32(bid))!),
        { ip: b.address, port: b.port, flags, mode: s.mode === 'dsr' ? LB.MODE_DSR : LB.MODE_NAT, serviceId: sid,
          vip: s.vip, vport: s.port, proto: proto[s.protocol] }, `${s.name} backend ${b.address}:${b.port}`);
      if (s.mode !== 'nat') continue;
      const rkey = LbReverseKeyCodec.encode({ ip: b.address, port: b.port || s.port, proto: proto[s.protocol] });
      reverseKeys.add(rkey.toString('hex'));
      assert.deepEqual(LbReverseCodec.decode(dp.map('reverse').lookup(rkey)!),
        { vip: s.vip, vport: s.port, serviceId: sid, backendId: bid });
    }
  }
  assert.deepEqual(new Set([...dp.map('services').keys()].map((k) => k.toString('hex'))), serviceKeys, 'no other services');
  // service_slots: each slot holds a copy of a live services entry whose key lands there (the
  // first service of the state's order for that slot), nothing else.
  const wantSlots = new Map<number, string>();
  for (const s of state.services) {
    const key = LbServiceKeyCodec.encode({ vip: s.vip, port: s.port, proto: proto[s.protocol] });
    const index = serviceSlotIndex(key);
    if (!wantSlots.has(index)) wantSlots.set(index, Buffer.concat([key, dp.map('services').lookup(key)!]).toString('hex'));
  }
  const slots = dp.map('service_slots');
  for (const k of slots.keys()) {
    const v = slots.lookup(k)!;
    const index = decodeU32(k);
    assert.equal(v.some((b) => b !== 0) ? v.toString('hex') : undefined, wantSlots.get(index), `service_slots[${index}]`);
  }
  assert.deepEqual(new Set([...dp.map('reverse').keys()].map((k) => k.toString('hex'))), reverseKeys, 'no other reverse entries');
  for (const [vip, count] of vipCounts) {
    assert.deepEqual(LbVipCodec.decode(dp.map('vips').lookup(encodeIpv4Key(vip))!), { services: count });
  }
  assert.equal(dp.map('vips').count(), vipCounts.size);
  for (let id = 1; id < dp.map('backends').maxEntries; id++) {
    if (backendIds.has(id)) continue;
    assert.ok(dp.map('backends').lookup(encodeU32(id))!.every((b) => b === 0), `backend slot ${id} is zero`);
  }
  const st = state.settings;
  assert.deepEqual(LbSettingsCodec.decode(dp.map('settings').lookup(encodeU32(0))!), {
    fragPolicy: st.fragPolicy === 'pass' ? 1 : 0, sampleRate: st.sampleRate, flowCache: st.flowCache ? 1 : 0,
    txRedirect: st.txRedirect ? 1 : 0, vipFilter: vipFilterWords(state.services.map((s) => ipToU32(s.vip))),
    vipFilter6: new Array<number>(LB.VIP_FILTER_WORDS).fill(0),
  });
}

describe('reconciler on the loaded bpf/lb.o', () => {
  let dp: Dataplane;
  let lb: Balancer;
  before(() => {
    dp = Dataplane.load({ hashSeed: 0x1234, maxServices: 8, maxBackends: 32, maxFlows: 1024, maglevMaxSize: 65537 });
    lb = new Balancer(dp);
  });
  after(() => dp?.close());

  test('apply writes every entry the state implies', () => {
    const state = baseState();
    const r = lb.applyState(state);
    assert.ok(r.writes > 0);
    checkMaps(dp, lb, state);
  });

  test('applying the same state again writes nothing', () => {
    const before = snapshot(dp);
    const r = lb.applyState(baseState());
    assert.equal(r.writes, 0);
    assert.deepEqual(r.tablesSwapped, []);
    assert.deepEqual(snapshot(dp), before);
  });

  test('a pool change writes the changed slots in place (no outer-map update); a size change swaps in a new inner table and the old one is freed', async () => {
    const sid = lb.reconciler.serviceId('web')!;
    const old = innerTableOf(dp, sid)!;
    const oldMarks = dp.map('maglev_marks').lookup(encodeU32(sid));
    assert.ok(oldMarks, 'a table comes with its marks table');
    const removedId = lb.reconciler.backendId('web', '198.18.1.3', 8080)!;
    const state = baseState();
    state.services[0].backends.splice(1, 1); // drop 198.18.1.3:8080
    const r = lb.applyState(state);
    assert.deepEqual(r.tablesSwapped, [sid]);
    checkMaps(dp, lb, state);
    assert.equal(innerTableOf(dp, sid)!.id, old.id, 'the same inner map, written in place');
    assert.deepEqual(dp.map('maglev_marks').lookup(encodeU32(sid)), oldMarks, 'the same marks table');
    assert.ok(dp.map('backends').lookup(encodeU32(removedId))!.every((b) => b === 0), 'removed backend zeroed');
    // Untouched services keep their tables.
    assert.deepEqual(r.tablesSwapped.includes(lb.reconciler.serviceId('dns')!), false);
    // A size change cannot be written in place: a new table, the old one freed.
    const resized = baseState();
    resized.services[0].backends.splice(1, 1);
    resized.services[0].tableSize = 257;
    assert.deepEqual(lb.applyState(resized).tablesSwapped, [sid]);
    checkMaps(dp, lb, resized);
    assert.notEqual(innerTableOf(dp, sid)!.id, old.id, 'outer map points at a new inner map');
    assert.ok(await waitGone(old.id), `old inner map ${old.id} is freed`);
    lb.applyState(state);
    checkMaps(dp, lb, state);
  });

  test('new backends take fresh ids (round-robin), not the one just freed', () => {
    const freed = lb.reconciler.backendId('web', '198.18.1.2', 8080)!;
    const state = baseState();
    state.services[0].backends = state.services[0].backends.filter((b) => b.address !== '198.18.1.2');
    state.services[0].backends.splice(1, 1);
    lb.applyState(state);
    const again = baseState();
    again.services[0].backends.splice(1, 1);
    lb.applyState(again);
    const newId = lb.reconciler.backendId('web', '198.18.1.2', 8080)!;
    assert.notEqual(newId, freed);
    checkMaps(dp, lb, again);
  });

  test('table size grows and shrinks with table_size never above the installed table', () => {
    for (const size of [65537, 31, 251]) {
      const state = baseState();
      state.services[0].tableSize = size;
      lb.applyState(state);
      checkMaps(dp, lb, state);
      const inner = BpfMap.fromId(decodeU32(dp.serviceTable(lb.reconciler.serviceId('web')!)!));
      assert.equal(inner.maxEntries, size);
      inner.close();
    }
  });

  test('a service with no usable backend has table_size 0 and no table', () => {
    const state = baseState();
    state.services[2].backends[0].healthy = false;
    lb.applyState(state);
    checkMaps(dp, lb, state);
    lb.applyState(baseState());
    checkMaps(dp, lb, baseState());
  });

  test('removing a service removes its entry, table, backends, reverse entries and VIP share', () => {
    const state = baseState();
    const dnsId = lb.reconciler.serviceId('dns')!;
    const dnsBackends = [lb.reconciler.backendId('dns', '198.18.1.2', 53)!, lb.reconciler.backendId('dns', '198.18.1.6', 53)!];
    state.services.splice(1, 1);
    lb.applyState(state);
    checkMaps(dp, lb, state);
    assert.equal(dp.serviceTable(dnsId), null);
    assert.equal(lb.reconciler.serviceId('dns'), null);
    for (const id of dnsBackends) assert.ok(dp.map('backends').lookup(encodeU32(id))!.every((b) => b === 0));
    const allGone = { services: [], settings: state.settings };
    lb.applyState(allGone);
    checkMaps(dp, lb, allGone);
    for (let id = 1; id < 8; id++) assert.equal(dp.serviceTable(id), null);
    lb.applyState(baseState());
    checkMaps(dp, lb, baseState());
  });

  test('states the kernel cannot express are refused and nothing changes', () => {
    const before = snapshot(dp);
    const writes = lb.reconciler.writeCount;
    const bad: Array<[string, (s: DataplaneState) => void, RegExp]> = [
      ['two NAT services, one backend ip:port:proto', (s) => {
        s.services.push({ name: 'web2', vip: '198.18.100.3', port: 80, protocol: 'tcp', mode: 'nat', tableSize: 7,
          backends: [up('198.18.1.2', 8080)] });
      }, /replies from 198\.18\.1\.2\/tcp port 8080 would match both service "web" \(198\.18\.1\.2:8080\) and "web2"/],
      ['one destination twice in a service', (s) => { s.services[0].backends.push(up('198.18.1.4', 80)); }, /backend 198\.18\.1\.4:80: the same destination as backend 198\.18\.1\.4:0/],
      ['a wildcard beside a specific port of another VIP', (s) => {
        s.services.push({ name: 'alt', vip: '198.18.100.3', port: 80, protocol: 'tcp', mode: 'nat', tableSize: 7,
          backends: [up('198.18.1.7', 80)] });
      }, /port 80 \(and any port\) would match both service "every-port"/],
      ['DSR port translation', (s) => { s.services[1].backends[0].port = 5353; }, /DSR cannot translate ports/],
      ['more services than the maps hold', (s) => {
        for (let i = 0; i < 6; i++) {
          s.services.push({ name: `x${i}`, vip: `198.18.101.${i + 1}`, port: 1, protocol: 'tcp', mode: 'dsr', tableSize: 7, backends: [] });
        }
      }, /9 services exceed the data plane's 7/],
      ['more backends than the maps hold', (s) => {
        s.services[1].backends = Array.from({ length: 40 }, (_, i) => up(`198.18.2.${i + 1}`, 53));
        s.services[1].tableSize = 251;
      }, /backends exceed the data plane's 31/],
      ['table size not prime', (s) => { s.services[0].tableSize = 100; }, /service "web": tableSize 100 is not a prime/],
      ['table size above the largest', (s) => { s.services[0].tableSize = 131071; }, /exceeds the largest table/],
      ['port-0 NAT service with a backend port', (s) => { s.services[2].backends[0].port = 8080; }, /needs backends on port 0/],
      ['duplicate service key', (s) => { s.services[1].port = 80; s.services[1].protocol = 'tcp'; }, /is already service "web"/],
      ['bad address', (s) => { s.services[0].backends[0].address = '198.18.1'; }, /not an address in canonical form/],
    ];
    for (const [what, mutate, message] of bad) {
      const s = clone(baseState());
      mutate(s);
      assert.throws(() => lb.applyState(s), message, what);
      assert.equal(lb.reconciler.writeCount, writes, `${what}: no write`);
      assert.deepEqual(snapshot(dp), before, `${what}: maps unchanged`);
    }
  });
});

describe('reconciler with services on every port', () => {
  test('a wildcard NAT backend may also serve a specific port of the same VIP untranslated', () => {
    const dp = Dataplane.load({ hashSeed: 7, maxServices: 8, maxBackends: 16, maxFlows: 64 });
    const lb = new Balancer(dp);
    try {
      const s = baseState();
      s.services.push({ name: 'same-vip', vip: '198.18.100.2', port: 80, protocol: 'tcp', mode: 'nat', tableSize: 7,
        backends: [up('198.18.1.7', 0)] });
      lb.applyState(s);
      checkMaps(dp, lb, s);
    } finally {
      dp.close();
    }
  });

  test('a port-0 NAT service maps reverse key port 0 -> vport 0', () => {
    const dp = Dataplane.load({ hashSeed: 7, maxServices: 4, maxBackends: 8, maxFlows: 64 });
    const lb = new Balancer(dp);
    try {
      const s: DataplaneService = { name: 'any', vip: '198.18.100.9', port: 0, protocol: 'udp', mode: 'nat', tableSize: 7,
        backends: [up('198.18.1.9', 0)] };
      lb.applyState({ services: [s], settings: { fragPolicy: 'drop', sampleRate: 0, flowCache: false } });
      const rkey = LbReverseKeyCodec.encode({ ip: '198.18.1.9', port: 0, proto: 17 });
      assert.deepEqual(LbReverseCodec.decode(dp.map('reverse').lookup(rkey)!),
        { vip: '198.18.100.9', vport: 0, serviceId: lb.reconciler.serviceId('any'), backendId: lb.reconciler.backendId('any', '198.18.1.9', 0) });
    } finally {
      dp.close();
    }
  });
});

describe('reconciler write order', () => {
  /**
   * Runs a sequence of states through a Reconciler whose (real) maps report every write, and
   * after EACH write checks what a packet could meet: a live service's table_size never exceeds
   * its installed table, and every backend id in a table is ACTIVE and owned by that service.
   */
  test('no packet can meet a half state between two writes', () => {
    const dp = Dataplane.load({ hashSeed: 3, maxServices: 8, maxBackends: 32, maxFlows: 64, maglevMaxSize: 65537 });
    try {
      const violations: string[] = [];
      let checks = 0;
      const check = (after: string) => {
        checks++;
        // The program skips every lookup for an address whose VIP filter bit is clear.
        const filter = LbSettingsCodec.decode(dp.map('settings').lookup(encodeU32(0))!).vipFilter;
        const reachable = [
          ...[...dp.map('vips').keys()].map((k) => k.readUInt32BE(0)),
          ...[...dp.map('services').keys()].map((k) => k.readUInt32BE(0)),
        ];
        for (const address of reachable) {
          const bit = vipFilterBit(address);
          if (!((filter[bit >>> 5] >>> (bit & 31)) & 1)) violations.push(`${after}: VIP ${address >>> 24}.${(address >>> 16) & 255}.${(address >>> 8) & 255}.${address & 255} not in the VIP filter`);
        }
        for (const [key, value] of dp.map('services').entries()) {
          const svc = LbServiceCodec.decode(value);
          const vip = LbServiceKeyCodec.decode(key).vip;
          const live = dp.map('vips').lookup(encodeIpv4Key(vip)) !== null;
          if (!live || svc.tableSize === 0) continue;
          const outer = dp.serviceTable(svc.id);
          if (!outer) { violations.push(`${after}: service ${svc.id} table_size ${svc.tableSize} without a table`); continue; }
          const inner = BpfMap.fromId(decodeU32(outer));
          try {
            if (inner.maxEntries < svc.tableSize) violations.push(`${after}: service ${svc.id} table_size ${svc.tableSize} > table ${inner.maxEntries}`);
            const ids = new Set<number>();
            for (let i = 0; i < Math.min(inner.maxEntries, svc.tableSize); i++) ids.add(decodeU32(inner.lookup(encodeU32(i))!));
            for (const id of ids) {
              const b = LbBackendCodec.decode(dp.map('backends').lookup(encodeU32(id))!);
              if (!(b.flags & LB.BACKEND_F_ACTIVE) || b.serviceId !== svc.id) {
                violations.push(`${after}: service ${svc.id} table holds backend ${id} (flags ${b.flags}, owner ${b.serviceId})`);
              }
            }
          } finally {
            inner.close();
          }
        }
      };
      const watched = <T extends object>(name: string, map: T): T => new Proxy(map, {
        get(target, prop, receiver) {
          const v = Reflect.get(target, prop, receiver) as unknown;
          if ((prop === 'update' || prop === 'delete') && typeof v === 'function') {
            return (...args: unknown[]) => {
              const r = (v as (...a: unknown[]) => unknown).apply(target, args);
              check(`${String(prop)} ${name}`);
              return r;
            };
          }
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
      const reconciler = new Reconciler({
        services: watched('services', dp.map('services')), vips: watched('vips', dp.map('vips')),
        maglev: watched('maglev', dp.map('maglev')), backends: watched('backends', dp.map('backends')),
        reverse: watched('reverse', dp.map('reverse')), settings: watched('settings', dp.map('settings')),
      }, { maxServices: 8, maxBackends: 32, maxVips: 256, maxReverse: 4096, maglevMaxSize: 65537 }, createMaglevTable);

      const small = (): DataplaneState => {
        const s = baseState();
        s.services[0].tableSize = 31;
        return s;
      };
      const steps: Array<[string, (s: DataplaneState) => void]> = [
        ['initial', () => {}],
        ['pool change', (s) => { s.services[0].backends.splice(0, 1); }],
        ['new backend', (s) => { s.services[0].backends.push(up('198.18.1.20', 8080)); }],
        ['grow table', (s) => { s.services[0].tableSize = 251; }],
        ['shrink table', (s) => { s.services[0].tableSize = 7; }],
        ['all unhealthy', (s) => { for (const b of s.services[0].backends) b.healthy = false; }],
        ['healthy again', () => {}],
        ['service moves VIP', (s) => { s.services[2].vip = '198.18.100.7'; }],
        ['service removed', (s) => { s.services.splice(1, 1); }],
        ['everything removed', (s) => { s.services = []; }],
        ['everything back', () => {}],
      ];
      for (const [what, mutate] of steps) {
        const s = small();
        mutate(s);
        reconciler.apply(s);
        assert.deepEqual(violations, [], what);
      }
      assert.ok(checks > 50, `checked after each of ${checks} writes`);
    } finally {
      dp.close();
    }
  });
});

describe('reconciler id exhaustion', () => {
  test('replacing a full pool at once is refused whole; in two steps it works', () => {
    const dp = Dataplane.load({ hashSeed: 9, maxServices: 4, maxBackends: 8, maxFlows: 64 });
    const lb = new Balancer(dp);
    try {
      const pool = (third: number): DataplaneState => ({
        services: [{ name: 's', vip: '198.18.100.1', port: 80, protocol: 'tcp', mode: 'nat', tableSize: 13,
          backends: Array.from({ length: 7 }, (_, i) => up(`198.18.${third}.${i + 1}`, 80)) }],
        settings: { fragPolicy: 'drop', sampleRate: 0, flowCache: true, reverseGraceSeconds: 0 },
      });
      lb.applyState(pool(1));
      const before = snapshot(dp);
      const writes = lb.reconciler.writeCount;
      assert.throws(() => lb.applyState(pool(2)), /no free backend id: all 7 are in use/);
      assert.equal(lb.reconciler.writeCount, writes);
      assert.deepEqual(snapshot(dp), before);
      lb.applyState({ ...pool(1), services: [{ ...pool(1).services[0], backends: [] }] });
      lb.applyState(pool(2));
      checkMaps(dp, lb, pool(2));
    } finally {
      dp.close();
    }
  });
});

describe('large Maglev tables are built off the event loop (applyStateAsync)', () => {
  const bigState = (): DataplaneState => ({
    services: [{
      name: 'big', vip: '198.18.100.9', port: 80, protocol: 'tcp', mode: 'nat', tableSize: 100003,
      backends: Array.from({ length: 300 }, (_, i) => up(`198.18.${2 + (i >> 8)}.${i & 0xff}`, 8080, 1 + (i % 3))),
    }],
    settings: { fragPolicy: 'drop', sampleRate: 0, flowCache: true },
  });

  test('the same maps as applyState, and the event loop keeps turning during the build', async () => {
    assert.ok(offThreadAvailable(), 'the compiled worker is next to the reconciler (dist/)');
    const opts = { hashSeed: 0x1234, maxServices: 8, maxBackends: 512, maxFlows: 1024, maglevMaxSize: 1048573 };
    const sync = Dataplane.load(opts);
    const async_ = Dataplane.load(opts);
    const syncLb = new Balancer(sync);
    const asyncLb = new Balancer(async_);
    try {
      syncLb.applyState(bigState());
      let ticks = 0;
      const timer = setInterval(() => { ticks++; }, 1);
      let r;
      try {
        r = await asyncLb.applyStateAsync(bigState());
      } finally {
        clearInterval(timer);
      }
      assert.ok(ticks > 0, 'timers ran while the 100003-slot table was being built');
      assert.deepEqual(r.tablesSwapped, [asyncLb.reconciler.serviceId('big')]);
      assert.deepEqual(snapshot(async_).services, snapshot(sync).services);
      assert.deepEqual(snapshot(async_).backends, snapshot(sync).backends);
      const want = innerTableOf(sync, syncLb.reconciler.serviceId('big')!)!.entries;
      assert.deepEqual(innerTableOf(async_, asyncLb.reconciler.serviceId('big')!)!.entries, want, 'the worker built the same table');
      // The same state again: nothing to build, nothing to write.
      assert.equal((await asyncLb.applyStateAsync(bigState())).writes, 0);
      // A state the kernel side refuses is refused before any build, and changes nothing.
      const before = snapshot(async_);
      const bad = bigState();
      bad.services[0].tableSize = 100004;
      await assert.rejects(() => asyncLb.applyStateAsync(bad), /not a prime|prime/);
      assert.deepEqual(snapshot(async_), before);
    } finally {
      sync.close();
      async_.close();
    }
  });
});

describe("a removed NAT backend's reverse entry: kept for the grace period", () => {
  let dp: Dataplane;
  let clock = 1_000_000;
  const limits = { maxServices: 8, maxBackends: 32, maxVips: 256, maxReverse: 4096, maglevMaxSize: 65537 };
  const reconcilerOf = (maxReverse = limits.maxReverse): Reconciler => new Reconciler({
    services: dp.map('services'), vips: dp.map('vips'), maglev: dp.map('maglev'), backends: dp.map('backends'),
    reverse: dp.map('reverse'), settings: dp.map('settings'),
  }, { ...limits, maxReverse }, createMaglevTable, undefined, () => clock);
  const web = (grace: number | undefined, ...backends: string[]): DataplaneState => ({
    services: [{
      name: 'web', vip: '198.18.100.1', port: 80, protocol: 'tcp', mode: 'nat', tableSize: 31,
      backends: backends.map((a) => up(a, 8080)),
    }],
    settings: { fragPolicy: 'drop', sampleRate: 0, flowCache: true, ...(grace === undefined ? {} : { reverseGraceSeconds: grace }) },
  });
  const rkey = (address: string, port = 8080): Buffer => LbReverseKeyCodec.encode({ ip: address, port, proto: 6 });
  const reverseOf = (address: string, port = 8080) => {
    const v = dp.map('reverse').lookup(rkey(address, port));
    return v ? LbReverseCodec.decode(v) : null;
  };

  before(() => {
    dp = Dataplane.load({ hashSeed: 7, maxServices: 8, maxBackends: 32, maxFlows: 64, maglevMaxSize: 65537 });
  });
  after(() => dp?.close());

  test('stays translated (counted under no backend) until the grace period ends, then goes', () => {
    const r = reconcilerOf();
    r.apply(web(60, '198.18.1.2', '198.18.1.3'));
    const webId = r.serviceId('web')!;
    const removedId = r.backendId('web', '198.18.1.3', 8080)!;
    r.apply(web(60, '198.18.1.2'));
    assert.deepEqual(reverseOf('198.18.1.3'), { vip: '198.18.100.1', vport: 80, serviceId: webId, backendId: 0 });
    assert.ok(dp.map('backends').lookup(encodeU32(removedId))!.every((b) => b === 0), 'the backend itself is gone');
    assert.equal(r.nextReverseExpiry(), clock + 60_000);
    assert.equal(r.apply(web(60, '198.18.1.2')).writes, 0, 'a second apply keeps it and writes nothing');
    clock += 59_999;
    assert.equal(r.expireReverse(), 0);
    assert.ok(reverseOf('198.18.1.3'));
    clock += 1;
    assert.equal(r.expireReverse(), 1);
    assert.equal(reverseOf('198.18.1.3'), null);
    assert.equal(r.nextReverseExpiry(), null);
    assert.ok(reverseOf('198.18.1.2'), 'the live backend keeps its entry');
    r.apply({ services: [], settings: web(0).settings });
  });

  test('the default grace period is 300 s', () => {
    const r = reconcilerOf();
    r.apply(web(undefined, '198.18.1.2'));
    r.apply(web(undefined));
    assert.equal(r.nextReverseExpiry(), clock + 300_000);
    r.apply({ services: [], settings: web(0).settings });
    assert.equal(reverseOf('198.18.1.2'), null, 'grace 0: removed at once, also an entry already in its grace period');
    assert.equal(r.nextReverseExpiry(), null);
  });

  test('a backend that claims the key again owns it at once', () => {
    const r = reconcilerOf();
    r.apply(web(60, '198.18.1.2', '198.18.1.3'));
    r.apply(web(60, '198.18.1.2'));
    assert.equal(reverseOf('198.18.1.3')!.backendId, 0);
    r.apply(web(60, '198.18.1.2', '198.18.1.3'));
    const back = r.backendId('web', '198.18.1.3', 8080)!;
    assert.deepEqual(reverseOf('198.18.1.3'), { vip: '198.18.100.1', vport: 80, serviceId: r.serviceId('web')!, backendId: back });
    assert.equal(r.nextReverseExpiry(), null);
    clock += 3_600_000;
    assert.equal(r.expireReverse(), 0);
    assert.ok(reverseOf('198.18.1.3'));
    // Another service taking the key is a new owner too.
    const other = web(60, '198.18.1.2');
    other.services.push({ name: 'api', vip: '198.18.100.5', port: 443, protocol: 'tcp', mode: 'nat', tableSize: 7, backends: [up('198.18.1.3', 8080)] });
    r.apply(web(60, '198.18.1.2'));
    r.apply(other);
    assert.deepEqual(reverseOf('198.18.1.3'), { vip: '198.18.100.5', vport: 443, serviceId: r.serviceId('api')!, backendId: r.backendId('api', '198.18.1.3', 8080)! });
    assert.equal(r.nextReverseExpiry(), null);
    r.apply({ services: [], settings: web(0).settings });
  });

  test("a removed service's entries are kept under no service; a shorter grace shortens pending ones", () => {
    const r = reconcilerOf();
    r.apply(web(600, '198.18.1.2'));
    r.apply({ services: [], settings: web(600).settings });
    assert.deepEqual(reverseOf('198.18.1.2'), { vip: '198.18.100.1', vport: 80, serviceId: 0, backendId: 0 });
    assert.equal(r.nextReverseExpiry(), clock + 600_000);
    r.apply({ services: [], settings: web(5).settings });
    assert.equal(r.nextReverseExpiry(), clock + 5_000);
    clock += 5_000;
    assert.equal(r.expireReverse(), 1);
    assert.equal(dp.map('reverse').count(), 0);
  });

  test('after a restart (adopt), an entry nobody claims gets a grace period from the first apply', () => {
    const first = reconcilerOf();
    first.apply(web(60, '198.18.1.2', '198.18.1.3'));
    // The daemon stops; the config loses 1.3 meanwhile; a new daemon adopts the pinned maps.
    const second = reconcilerOf();
    second.recover();
    second.apply(web(60, '198.18.1.2'));
    assert.equal(reverseOf('198.18.1.3')!.backendId, 0);
    assert.equal(second.nextReverseExpiry(), clock + 60_000);
    clock += 60_000;
    assert.equal(second.expireReverse(), 1);
    assert.equal(reverseOf('198.18.1.3'), null);
    second.apply({ services: [], settings: web(0).settings });
  });

  test('entries in their grace period make room for new backends (soonest to go first)', () => {
    const r = reconcilerOf(3);
    r.apply(web(60, '198.18.1.2', '198.18.1.3', '198.18.1.4'));
    r.apply(web(60, '198.18.1.2', '198.18.1.4'));        // 1.3 kept, goes at +60 s
    clock += 1000;
    r.apply(web(60, '198.18.1.2'));                      // 1.4 kept, goes at +61 s
    assert.equal(dp.map('reverse').count(), 3);
    r.apply(web(60, '198.18.1.2', '198.18.1.5'));        // a fourth key: 1.3 makes room
    assert.equal(reverseOf('198.18.1.3'), null);
    assert.ok(reverseOf('198.18.1.4'));
    assert.ok(reverseOf('198.18.1.5'));
    assert.equal(dp.map('reverse').count(), 3);
    r.apply({ services: [], settings: web(0).settings });
  });
});

describe('recently built Maglev tables (issue 16)', () => {
  test('a pool seen again takes its table without a build, and the same table as a build', async () => {
    const { maglevBuildTime } = await import('./maglev');
    const d = Dataplane.load({ hashSeed: 5, maxServices: 8, maxBackends: 64, maxFlows: 256 });
    try {
      const lb = new Balancer(d);
      const pool = Array.from({ length: 6 }, (_, i) => ({ address: `198.18.140.${i + 1}`, port: 8080, weight: 1, healthy: true, draining: false }));
      const state = (downIndex: number | null): DataplaneState => ({
        services: [{ name: 'web', vip: '198.18.139.1', port: 80, protocol: 'tcp', mode: 'nat', tableSize: 65537,
          backends: pool.map((b, i) => ({ ...b, healthy: i !== downIndex })) }],
        settings: { fragPolicy: 'drop', sampleRate: 0, flowCache: true },
      });
      lb.applyState(state(null));
      const built = (f: () => void): number => { const t = maglevBuildTime(); f(); return maglevBuildTime() - t; };
      assert.ok(built(() => lb.applyState(state(2))) > 0, 'a new pool is built');
      const again = built(() => lb.applyState(state(null)));
      assert.equal(again, 0, 'the first pool again: no build');
      checkMaps(d, lb, state(null));
      assert.equal(built(() => lb.applyState(state(2))), 0, 'and the second');
      checkMaps(d, lb, state(2));
    } finally {
      d.close();
    }
  });

  test('a cycle of 24 pools of 65537 slots (drain each of 12 backends, then undrain each) is built once', async () => {
    const { maglevBuildTime } = await import('./maglev');
    const d = Dataplane.load({ hashSeed: 5, maxServices: 8, maxBackends: 64, maxFlows: 256 });
    try {
      const lb = new Balancer(d);
      const drained = new Set<number>();
      const state = (): DataplaneState => ({
        services: [{ name: 'web', vip: '198.18.139.1', port: 80, protocol: 'tcp', mode: 'nat', tableSize: 65537,
          backends: Array.from({ length: 12 }, (_, i) => ({ address: `198.18.141.${i + 1}`, port: 8080, weight: 1, healthy: true, draining: drained.has(i) })) }],
        settings: { fragPolicy: 'drop', sampleRate: 0, flowCache: true },
      });
      lb.applyState(state());
      const step = (k: number) => { const i = k % 12; if (Math.floor(k / 12) % 2 === 0) drained.add(i); else drained.delete(i); lb.applyState(state()); };
      for (let k = 0; k < 24; k++) step(k);
      const t = maglevBuildTime();
      for (let k = 24; k < 48; k++) step(k);
      assert.equal(maglevBuildTime() - t, 0, 'the second pass over the 24 pools: every table kept');
      checkMaps(d, lb, state());
    } finally {
      d.close();
    }
  });
});

describe('a change costs what changed, not the pool (issue 16 bulk)', () => {
  const pool = (n: number) => Array.from({ length: n }, (_, i) => up(`198.18.${150 + Math.floor(i / 250)}.${(i % 250) + 1}`, 8080));
  const state = (backends: DataplaneBackend[], extra: DataplaneService[] = []): DataplaneState => ({
    services: [{ name: 'bulk', vip: '198.18.149.1', port: 80, protocol: 'tcp', mode: 'nat', tableSize: 10007, backends }, ...extra],
    settings: { fragPolicy: 'drop', sampleRate: 0, flowCache: true, reverseGraceSeconds: 0 },
  });

  test('draining 100 of 1000 backends compares those 100; weights, health, removals and additions keep the maps those of the state', () => {
    const d = Dataplane.load({ hashSeed: 11, maxServices: 8, maxBackends: 2048, maxFlows: 256, maglevMaxSize: 65537 });
    try {
      const lb = new Balancer(d);
      const backends = pool(1000);
      const first = lb.applyState(state(backends));
      assert.equal(first.backendsCompared, 1000, 'the first apply compares every backend');
      assert.equal(first.sameKeys, false);
      for (const b of backends.slice(0, 100)) b.draining = true;
      const drain = lb.applyState(state(backends));
      assert.deepEqual({ compared: drain.backendsCompared, sameKeys: drain.sameKeys, swapped: drain.tablesSwapped.length }, { compared: 100, sameKeys: true, swapped: 1 });
      checkMaps(d, lb, state(backends));
      for (const b of backends.slice(0, 100)) b.draining = false;
      assert.equal(lb.applyState(state(backends)).backendsCompared, 100);
      checkMaps(d, lb, state(backends));
      // A weight is not in the backend's entry: nothing to compare, only the table changes.
      backends[7].weight = 3;
      const weighted = lb.applyState(state(backends));
      assert.deepEqual({ compared: weighted.backendsCompared, swapped: weighted.tablesSwapped.length }, { compared: 0, swapped: 1 });
      checkMaps(d, lb, state(backends));
      backends[500].healthy = false;
      assert.equal(lb.applyState(state(backends)).backendsCompared, 1);
      checkMaps(d, lb, state(backends));
      // A backend removed: the keys changed (the backends after it are compared again).
      backends.splice(900, 1);
      const removed = lb.applyState(state(backends));
      assert.equal(removed.sameKeys, false);
      checkMaps(d, lb, state(backends));
      backends.push(up('198.18.160.1', 8080));
      assert.equal(lb.applyState(state(backends)).backendsCompared, 1, 'one backend added at the end');
      checkMaps(d, lb, state(backends));
      // The same state again: nothing compared, nothing written.
      const again = lb.applyState(state(backends));
      assert.deepEqual({ compared: again.backendsCompared, writes: again.writes }, { compared: 0, writes: 0 });
    } finally {
      d.close();
    }
  });

  test("a new service's first changes allocate no table-sized array: its change buffers are made with its table", () => {
    const d = Dataplane.load({ hashSeed: 13, maxServices: 8, maxBackends: 256, maxFlows: 64, maglevMaxSize: 65537 });
    try {
      const lb = new Balancer(d);
      const backends = pool(100);
      const big = (b: DataplaneBackend[]): DataplaneState => ({ ...state([]), services: [{ ...state([]).services[0], tableSize: 65537, backends: b }] });
      lb.applyState(big(backends));
      // A flat table of 65537 slots is 1 MiB (4 words a slot); each drain below builds one new
      // pool's table (65537 u32, 256 KiB) and nothing else of that size.
      for (let k = 1; k <= 3; k++) {
        backends.forEach((b, i) => { b.draining = i < 10 * k; });
        const before = process.memoryUsage().arrayBuffers;
        lb.applyState(big(backends));
        const grown = process.memoryUsage().arrayBuffers - before;
        assert.ok(grown < 1 << 20, `change ${k} allocated ${grown} bytes of arrays (a 65537-slot flat table is ${1 << 20})`);
        checkMaps(d, lb, big(backends));
      }
    } finally {
      d.close();
    }
  });

  test('an apply the kernel refuses half-way leaves the next one comparing every backend with the maps', () => {
    const d = Dataplane.load({ hashSeed: 12, maxServices: 8, maxBackends: 64, maxFlows: 64, maglevMaxSize: 65537 });
    try {
      let failAfter = Infinity;
      const backendsMap = d.map('backends');
      const failing = new Proxy(backendsMap, {
        get(target, prop, receiver) {
          const v = Reflect.get(target, prop, receiver) as unknown;
          if (prop === 'update') {
            return (...args: unknown[]) => {
              if (failAfter-- <= 0) throw new Error('refused (test)');
              return (v as (...a: unknown[]) => unknown).apply(target, args);
            };
          }
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
      const reconciler = new Reconciler({
        services: d.map('services'), vips: d.map('vips'), maglev: d.map('maglev'), serviceSlots: d.map('service_slots'), backends: failing,
        reverse: d.map('reverse'), settings: d.map('settings'),
      }, { maxServices: 8, maxBackends: 64, maxVips: 256, maxReverse: 4096, maglevMaxSize: 65537 }, createMaglevTable);
      const lb = { reconciler } as unknown as Balancer;
      const backends = pool(40);
      reconciler.apply(state(backends));
      for (const b of backends.slice(0, 10)) b.draining = true;
      failAfter = 4;   // 4 of the 10 drained backends' entries written, then a refusal
      assert.throws(() => reconciler.apply(state(backends)), /refused \(test\)/);
      failAfter = Infinity;
      // The caller restores the previous state: every backend compared, the maps are that state's.
      for (const b of backends.slice(0, 10)) b.draining = false;
      const restored = reconciler.apply(state(backends));
      assert.equal(restored.backendsCompared, 40);
      checkMaps(d, lb, state(backends));
    } finally {
      d.close();
    }
  });

  test('any sequence of bulk and single changes leaves the maps those of a fresh build of the final state', () => {
    const d = Dataplane.load({ hashSeed: 13, maxServices: 8, maxBackends: 256, maxFlows: 64, maglevMaxSize: 65537 });
    try {
      const lb = new Balancer(d);
      let seed = 0x5eed;
      const rand = (n: number): number => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return (seed >>> 8) % n; };
      let next = 0;
      const fresh = (): DataplaneBackend => { next++; return up(`198.18.${170 + Math.floor(next / 250)}.${(next % 250) + 1}`, 8080); };
      const web = Array.from({ length: 60 }, fresh);
      const dns: DataplaneService = { name: 'dns', vip: '198.18.149.2', port: 53, protocol: 'udp', mode: 'dsr', tableSize: 251, backends: Array.from({ length: 5 }, () => ({ ...fresh(), port: 53 })) };
      let withDns = true;
      const current = (): DataplaneState => state(web.map((b) => ({ ...b })), withDns ? [{ ...dns, backends: dns.backends.map((b) => ({ ...b })) }] : []);
      lb.applyState(current());
      const ops: Array<[string, () => void]> = [
        ['bulk drain flip', () => { const from = rand(web.length); for (let k = 0; k < 20; k++) { const b = web[(from + k) % web.length]; b.draining = !b.draining; } }],
        ['one drain flip', () => { const b = web[rand(web.length)]; b.draining = !b.draining; }],
        ['bulk weights', () => { for (let k = 0; k < 15; k++) web[rand(web.length)].weight = rand(4); }],
        ['health flips', () => { for (let k = 0; k < 5; k++) { const b = web[rand(web.length)]; b.healthy = !b.healthy; } }],
        ['remove one', () => { if (web.length > 2) web.splice(rand(web.length), 1); }],
        ['add one', () => { web.splice(rand(web.length + 1), 0, fresh()); }],
        ['swap two', () => { const i = rand(web.length); const j = rand(web.length); [web[i], web[j]] = [web[j], web[i]]; }],
        ['dns drained', () => { dns.backends[rand(dns.backends.length)].draining = rand(2) === 0; }],
        ['dns service removed or back', () => { withDns = !withDns; }],
        ['nothing', () => {}],
      ];
      const done: string[] = [];
      for (let step = 0; step < 80; step++) {
        const [what, op] = ops[rand(ops.length)];
        op();
        done.push(what);
        lb.applyState(current());
        checkMaps(d, lb, current());
        // A second reconciler over fresh maps, given only the final state, holds the same tables.
        if (step % 20 === 19) {
          const d2 = Dataplane.load({ hashSeed: 13, maxServices: 8, maxBackends: 256, maxFlows: 64, maglevMaxSize: 65537 });
          try {
            const lb2 = new Balancer(d2);
            lb2.applyState(current());
            for (const s of current().services) {
              const name = (lb1: Balancer, dp: Dataplane) => innerTableOf(dp, lb1.reconciler.serviceId(s.name)!)?.entries.map((id) => id && lb1.reconciler.backendName(id));
              assert.deepEqual(name(lb, d), name(lb2, d2), `${s.name} after ${done.join(', ')}`);
            }
          } finally {
            d2.close();
          }
        }
      }
    } finally {
      d.close();
    }
  });
});
