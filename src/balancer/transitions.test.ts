/**
 * Transition marks of the Maglev slots (src/balancer/transitions.ts, docs/decisions.md
 * "Stateless steady state"): the pure functions, the reconciler's marks and sweeps on a loaded
 * bpf/lb.o, and two data planes that applied the same changes choosing alike.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Dataplane } from '../dataplane/dataplane';
import { createMaglevTable, readMaglevTable, writeMaglevSlotsFlat, SLOT, SLOT_WORDS } from '../dataplane/maglev-tables';
import { buildFrame, parseFrame, IPPROTO_TCP, IPPROTO_UDP } from '../dataplane/packet';
import { encodeU32, LB, LbServiceKeyCodec } from '../dataplane/abi';
import { serviceSlotIndex } from '../dataplane/jhash';
import { Reconciler } from './reconciler';
import { markedCount, SlotTimes, startWindows, sweepSlots, transitionSlots, transitionSummary, type SlotBuffers } from './transitions';
import { nativeTransitionPass } from '../bpf/maglev-fill';
import type { DataplaneState } from '../dataplane/types';

const YOUNG = LB.SLOT_F_YOUNG << 8;
const slot = (t: Uint32Array, i: number) => Array.from(t.subarray(i * SLOT_WORDS, (i + 1) * SLOT_WORDS));

describe('transition marks (pure)', () => {
  const old = transitionSlots(undefined, Uint32Array.of(1, 2, 1, 2), new Set([1, 2]), 5);
  test('a first install has no marks', () => {
    assert.deepEqual(Array.from(old), [1, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0]);
  });
  test('a moved slot is marked with its old backend, the epoch, seen and young; the others are not', () => {
    const moved: number[] = [];
    const next = transitionSlots(old, Uint32Array.of(1, 3, 1, 2), new Set([1, 2, 3]), 9, moved);
    assert.deepEqual(slot(next, 1), [3, 2, 9, 1 | YOUNG]);
    for (const i of [0, 2, 3]) assert.deepEqual(slot(next, i).slice(1), [0, 0, 0], `slot ${i} unmarked`);
    assert.deepEqual(moved, [1]);
    // Moving again within the window: the first previous backend and the epoch stay.
    const again = transitionSlots(next, Uint32Array.of(1, 1, 1, 2), new Set([1, 2, 3]), 11, moved);
    assert.deepEqual(slot(again, 1), [1, 2, 9, 1 | YOUNG]);
    // A slot of a removed backend is not marked (its flows are gone with it); a removed previous
    // backend gives way to the current one (remembered flows stay valid, misses go there).
    const removed = transitionSlots(next, Uint32Array.of(1, 3, 1, 1), new Set([1, 3]), 12);
    assert.deepEqual(slot(removed, 3), [1, 0, 0, 0]);
    assert.deepEqual(slot(removed, 1), [3, 3, 9, 1 | (next[1 * SLOT_WORDS + SLOT.seenFlags] & YOUNG)]);
    // Another table size: nothing to compare slot by slot.
    assert.equal(markedCount(transitionSlots(next, Uint32Array.of(1, 2, 3), new Set([1, 2, 3]), 13)), 0);
  });
  test('a sweep ends young windows a period old, unsees seen slots, unmarks quiet ones', () => {
    const t = Uint32Array.from([
      1, 2, 9, 1 | YOUNG, // young since 0
      1, 2, 9, 1 | YOUNG, // young since 900 (not a period yet)
      2, 1, 9, 1,         // seen
      2, 1, 9, 0,         // quiet
      2, 0, 0, 0,         // not moved
    ]);
    const writes = sweepSlots(t, new Map([[0, 0], [1, 900]]), 1000, 1000);
    assert.deepEqual(writes.map(([i, w]) => [i, Array.from(w)]), [[0, [1, 2, 9, 0]], [2, [2, 1, 9, 0]], [3, [2, 0, 0, 0]]]);
  });
});

test('transitionSlots into reused buffers: the same slots as fresh arrays, written into the given table (never the old one)', () => {
  // Random sequences of tables over a small pool; each step once fresh, once into a dirty buffer.
  let seed = 7;
  const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) >>> 0; return seed % n; };
  const size = 257;
  const ids = () => Uint32Array.from({ length: size }, () => 1 + rnd(5));
  let fresh = transitionSlots(undefined, ids(), new Set([1, 2, 3, 4, 5]), 1);
  let reused = Uint32Array.from(fresh);
  const buffers: { out?: Uint32Array; changed?: Uint32Array } = { changed: new Uint32Array(size).fill(0xdead) };
  let spare = new Uint32Array(fresh.length).fill(0xffffffff);   // garbage in every word
  for (let step = 0; step < 40; step++) {
    const next = ids();
    const known = new Set([1, 2, 3, 4, 5].filter(() => rnd(4) !== 0));
    const d1 = { changed: null as Uint32Array | null, marked: 0 };
    const d2 = { changed: null as Uint32Array | null, marked: 0 };
    const a = transitionSlots(fresh, next, known, 10 + step, undefined, d1);
    buffers.out = spare;
    const b = transitionSlots(reused, next, known, 10 + step, undefined, d2, buffers);
    assert.equal(b, spare, `step ${step}: written into the spare table`);
    assert.deepEqual(Array.from(b), Array.from(a), `step ${step}: same slots`);
    assert.deepEqual(Array.from(d2.changed!), Array.from(d1.changed!), `step ${step}: same changed slots`);
    assert.equal(d2.marked, d1.marked);
    spare = reused;   // the replaced table is the next spare
    reused = b;
    fresh = a;
  }
  buffers.out = reused;
  assert.notEqual(transitionSlots(reused, ids(), new Set([1]), 99, undefined, undefined, buffers), reused, 'the old table itself is never the output');
});

/** transitionSlots() slot by slot as documented (every slot worked out, none copied): the reference. */
function plainTransition(table: Uint32Array, ids: Uint32Array, known: ReadonlySet<number>, epoch: number): { slots: Uint32Array; changed: number[]; marked: number } {
  const slots = new Uint32Array(table.length);
  const changed: number[] = [];
  let marked = 0;
  for (let i = 0, at = 0; i < ids.length; i++, at += SLOT_WORDS) {
    const [oldCur, oldPrev, oldEpoch, oldSeen] = table.subarray(at, at + SLOT_WORDS);
    let w = [ids[i], 0, 0, 0];
    if (oldPrev !== 0) w = [ids[i], known.has(oldPrev) ? oldPrev : ids[i], oldEpoch, ids[i] !== oldCur ? 1 | YOUNG : (oldSeen & YOUNG) | 1];
    else if (ids[i] !== oldCur && oldCur !== 0 && known.has(oldCur)) w = [ids[i], oldCur, epoch, 1 | YOUNG];
    slots.set(w, at);
    if (w[1] !== 0) marked++;
    if (w.some((x, k) => x !== table[at + k])) changed.push(i);
  }
  return { slots, changed, marked };
}

test('both transitionSlots engines (the addon and the TypeScript loop) give the slots, changed slots and marked count of the reference', () => {
  assert.ok(nativeTransitionPass(), 'the addon transition pass is built (the daemon uses it)');
  for (const engine of ['native', 'js'] as const) {
    let seed = 4242;
    const rand = (n: number): number => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return (seed >>> 8) % n; };
    const size = 1021;
    let table = transitionSlots(undefined, Uint32Array.from({ length: size }, () => 1 + rand(6)), new Set([1, 2, 3, 4, 5, 6]), 1, undefined, undefined, undefined, engine);
    const buffers: SlotBuffers = { changed: new Uint32Array(size).fill(0xdead) };
    for (let round = 0; round < 60; round++) {
      // Backends come and go (ids up to 300: the known bitmap is longer than the table's ids),
      // a third of the slots move, and now and then a slot holds leftovers read back from a kernel.
      const known = new Set(Array.from({ length: 10 }, (_, i) => (i < 8 ? i + 1 : 290 + i)).filter(() => rand(5) !== 0));
      const ids = Uint32Array.from({ length: size }, (_, i) => (rand(3) === 0 ? [...known][rand(known.size)] ?? 0 : table[i * SLOT_WORDS]));
      if (round % 7 === 6) table[rand(size) * SLOT_WORDS + SLOT.seenFlags] = 1 | YOUNG;
      if (round % 11 === 10) table[rand(size) * SLOT_WORDS + SLOT.epoch] = 3;
      const want = plainTransition(table, ids, known, 100 + round);
      const diff = { changed: null as Uint32Array | null, marked: 0 };
      buffers.out = Uint32Array.from(table, () => rand(1 << 30));   // garbage in every word
      const next = transitionSlots(table, ids, known, 100 + round, undefined, diff, buffers, engine);
      assert.equal(next, buffers.out, `${engine} round ${round}: written into the given table`);
      assert.deepEqual(Array.from(next), Array.from(want.slots), `${engine} round ${round}: slots`);
      assert.deepEqual(Array.from(diff.changed!), want.changed, `${engine} round ${round}: changed slots`);
      assert.equal(diff.marked, want.marked, `${engine} round ${round}: marked slots`);
      // Without a diff asked for: the same slots.
      assert.deepEqual(Array.from(transitionSlots(table, ids, known, 100 + round, undefined, undefined, undefined, engine)), Array.from(want.slots));
      table = next;
    }
  }
});

test('startWindows starts exactly the windows transitionSlots lists as moved (random tables, marks and removed backends)', () => {
  let seed = 77;
  const rand = (n: number): number => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return (seed >>> 8) % n; };
  const size = 257;
  let table = transitionSlots(undefined, Uint32Array.from({ length: size }, () => 1 + rand(6)), new Set([1, 2, 3, 4, 5, 6]), 1);
  for (let round = 0; round < 40; round++) {
    const known = new Set(Array.from({ length: 8 }, (_, i) => i + 1).filter(() => rand(5) !== 0));
    const ids = Uint32Array.from({ length: size }, (_, i) => (rand(3) === 0 ? [...known][rand(known.size)] ?? 0 : table[i * SLOT_WORDS]));
    const moved: number[] = [];
    const diff = { changed: null as Uint32Array | null, marked: 0 };
    const next = transitionSlots(table, ids, known, 2 + round, moved, diff, { out: Uint32Array.from(table, () => rand(9)) });
    const want = plainTransition(table, ids, known, 2 + round);
    assert.deepEqual(Array.from(next), Array.from(want.slots), `round ${round}: slots`);
    assert.deepEqual(Array.from(diff.changed!), want.changed, `round ${round}: changed`);
    // Leftovers in an unmarked slot (e.g. read back from the kernel) are cleared.
    if (round % 10 === 9) next[rand(size) * SLOT_WORDS + SLOT.seenFlags] = 1;
    const young = new SlotTimes(size);
    startWindows(table, next, diff.changed!, young, 1000 + round);
    const started = Array.from({ length: size }, (_, i) => i).filter((i) => young.get(i) !== undefined);
    assert.deepEqual(started, moved, `round ${round}`);
    assert.ok(started.every((i) => young.get(i) === 1000 + round));
    table = next;
  }
});

test('transitionSummary: moved, seen and young slots, the share, the oldest epoch', () => {
  const t = Uint32Array.from([
    1, 2, 12, 1 | YOUNG, // moved at epoch 12, seen, young
    1, 2, 9, 1,          // moved at epoch 9, seen
    2, 1, 10, 0,         // moved, quiet
    2, 0, 0, 0,          // not moved
  ]);
  assert.deepEqual(transitionSummary(t), { tableSize: 4, movedSlots: 3, movedShare: 0.75, seenSlots: 2, youngSlots: 1, since: 9000 });
  assert.deepEqual(transitionSummary(Uint32Array.of(1, 0, 0, 0)), { tableSize: 1, movedSlots: 0, movedShare: 0, seenSlots: 0, youngSlots: 0, since: null });
  assert.deepEqual(transitionSummary(new Uint32Array(0)), { tableSize: 0, movedSlots: 0, movedShare: 0, seenSlots: 0, youngSlots: 0, since: null });
});

describe('transition marks on bpf/lb.o', () => {
  let x: Dataplane;
  let a: Dataplane;
  let b: Dataplane;
  let clock = 1_000_000_000;
  const reconcilerOf = (dp: Dataplane): Reconciler => new Reconciler({
    services: dp.map('services'), vips: dp.map('vips'), maglev: dp.map('maglev'), maglevMarks: dp.map('maglev_marks'), serviceSlots: dp.map('service_slots'), backends: dp.map('backends'),
    reverse: dp.map('reverse'), settings: dp.map('settings'),
  }, { maxServices: 8, maxBackends: 32, maxVips: 256, maxReverse: 4096, maglevMaxSize: 65537 },
  createMaglevTable, readMaglevTable, () => clock, writeMaglevSlotsFlat);
  const up = (address: string, weight = 1) => ({ address, port: 8080, weight, healthy: true, draining: false });
  const state = (backends: ReturnType<typeof up>[]): DataplaneState => ({
    services: [
      { name: 'web', vip: '198.18.100.1', port: 80, protocol: 'tcp', mode: 'nat', tableSize: 251, backends },
      { name: 'udp', vip: '198.18.100.1', port: 80, protocol: 'udp', mode: 'nat', tableSize: 251, backends },
    ],
    settings: { fragPolicy: 'drop', sampleRate: 0, flowCache: true, transitionSeconds: 10 },
  });
  const frame = (sport: number, flags: number, proto = IPPROTO_TCP) => buildFrame({
    ip: { src: '198.18.0.2', dst: '198.18.100.1', proto },
    ...(proto === IPPROTO_TCP ? { tcp: { sport, dport: 80, flags } } : { udp: { sport, dport: 80 } }),
  });
  /** The backend address a packet went to (the NAT-rewritten destination; no route here). */
  const sentTo = (dp: Dataplane, f: Buffer) => parseFrame(dp.testRun(f).data).ipv4!.dst;
  const tableOf = (dp: Dataplane, r: Reconciler) => {
    const key = encodeU32(r.serviceId('web')!);
    return readMaglevTable(dp.serviceTable(key.readUInt32LE(0))!, dp.map('maglev_marks').lookup(key))!;
  };

  before(() => {
    x = Dataplane.load({ hashSeed: 3, maxServices: 8, maxBackends: 32, maxFlows: 4096 });
    a = Dataplane.load({ hashSeed: 3, maxServices: 8, maxBackends: 32, maxFlows: 4096 });
    b = Dataplane.load({ hashSeed: 3, maxServices: 8, maxBackends: 32, maxFlows: 4096 });
  });
  after(() => { x?.close(); a?.close(); b?.close(); });

  test('drain: established segments keep the drained backend, SYNs go elsewhere; the mark ends when quiet', () => {
    const r = reconcilerOf(x);
    const pool = [up('198.18.1.2'), up('198.18.1.3'), up('198.18.1.4')];
    r.apply(state(pool));
    assert.equal(r.transitionSlotCount(), 0, 'a first install marks nothing');
    // Which client ports the drained backend (198.18.1.3) holds before the drain.
    const ports = Array.from({ length: 600 }, (_, i) => 20000 + i);
    const before = new Map(ports.map((p) => [p, sentTo(x, frame(p, 0x10))]));
    const onDrained = ports.filter((p) => before.get(p) === '198.18.1.3');
    assert.ok(onDrained.length > 100);
    const established = onDrained.filter((_, i) => i % 2 === 0);
    const reopened = onDrained.filter((_, i) => i % 2 === 1);
    assert.equal(x.map('flows').lookup(encodeU32(0))!.every((byte) => byte === 0), true, 'nothing remembered in the steady state');
    r.apply(state([pool[0], { ...pool[1], draining: true }, pool[2]]));
    const marked = r.transitionSlotCount();
    assert.ok(marked > 2 * 40 && marked < 2 * 251 / 2, `the drained backend's slots are marked in both services (${marked})`);
    for (const p of established) assert.equal(sentTo(x, frame(p, 0x10)), '198.18.1.3', `:${p} established stays`);
    for (const p of reopened) {
      const to = sentTo(x, frame(p, 0x02));
      assert.notEqual(to, '198.18.1.3', `:${p} a new connection (SYN) does not go to the drained backend`);
      assert.equal(sentTo(x, frame(p, 0x10)), to, `:${p} and its next segment follows it`);
    }
    // Other backends' connections: unchanged (their slots did not move).
    for (const p of ports) if (!onDrained.includes(p)) assert.equal(sentTo(x, frame(p, 0x10)), before.get(p));
    // Sweeps (period 10 s): young for at least a period; then a slot stays while seen.
    clock += 5_000;
    assert.deepEqual(r.sweepTransitions(), { cleared: 0, aged: 0, marked }, 'younger than a period: untouched');
    clock += 5_000;
    assert.equal(r.sweepTransitions().aged, marked, 'the young phase ends');
    for (const p of established) assert.equal(sentTo(x, frame(p, 0x10)), '198.18.1.3');
    clock += 10_000;
    const swept = r.sweepTransitions();
    assert.ok(swept.aged > 0 && swept.cleared > 0 && swept.marked === swept.aged, `slots with traffic stay, quiet ones go: ${JSON.stringify(swept)}`);
    for (const p of established) assert.equal(sentTo(x, frame(p, 0x10)), '198.18.1.3', 'still the drained backend');
    clock += 10_000;
    assert.deepEqual(r.sweepTransitions(), { cleared: 0, aged: swept.aged, marked: swept.aged }, 'seen again: one more period');
    clock += 10_000;
    assert.deepEqual(r.sweepTransitions(), { cleared: swept.aged, aged: 0, marked: 0 }, 'no traffic for a period: every mark gone');
    assert.equal(markedCount(tableOf(x, r)), 0, 'the kernel table has no marks');
    // The zeroed marks table stays while the table lives (the next change marks slots in place).
    assert.notEqual(x.map('maglev_marks').lookup(encodeU32(r.serviceId('web')!)), null, 'the marks table stays, zeroed');
    // The drain is over: the slot's current backend takes every packet.
    assert.notEqual(sentTo(x, frame(established[0], 0x10)), '198.18.1.3');
  });

  test('service_slots: two services in one slot both forward (the second through services); removing the first moves the slot', () => {
    const d = Dataplane.load({ hashSeed: 3, maxServices: 8, maxBackends: 32, maxFlows: 64 });
    try {
      const r = reconcilerOf(d);
      // Two UDP VIPs:80 whose keys land in the same service_slots slot.
      const keyOf = (vip: string) => LbServiceKeyCodec.encode({ vip, port: 80, proto: IPPROTO_UDP });
      const first = '198.18.100.1';
      const nth = (n: number) => `198.18.${100 + (n >> 8)}.${n & 255}`;
      let n = 2;
      while (n < 20000 && serviceSlotIndex(keyOf(nth(n))) !== serviceSlotIndex(keyOf(first))) n++;
      const second = nth(n);
      const svc = (name: string, vip: string, backend: string) => ({
        name, vip, port: 80, protocol: 'udp' as const, mode: 'nat' as const, tableSize: 13, backends: [up(backend)] });
      const settings = { fragPolicy: 'drop' as const, sampleRate: 0, flowCache: true };
      const udp = (vip: string) => buildFrame({ ip: { src: '198.18.0.2', dst: vip, proto: IPPROTO_UDP }, udp: { sport: 999, dport: 80 } });
      r.apply({ services: [svc('a', first, '198.18.3.1'), svc('b', second, '198.18.3.2')], settings });
      const slot = d.map('service_slots').lookup(encodeU32(serviceSlotIndex(keyOf(first))))!;
      assert.ok(slot.subarray(0, 8).equals(keyOf(first)), 'the slot holds the first service');
      assert.equal(sentTo(d, udp(first)), '198.18.3.1');
      assert.equal(sentTo(d, udp(second)), '198.18.3.2', 'the second is found in services');
      r.apply({ services: [svc('b', second, '198.18.3.2')], settings });
      const after = d.map('service_slots').lookup(encodeU32(serviceSlotIndex(keyOf(first))))!;
      assert.ok(after.subarray(0, 8).equals(keyOf(second)), 'the slot now holds the second service');
      assert.equal(d.testRun(udp(first)).retval, LB.ACTION_PASS, 'the removed VIP is not served (not_vip)');
      assert.equal(sentTo(d, udp(second)), '198.18.3.2');
    } finally {
      d.close();
    }
  });

  test('two data planes that applied the same changes choose the same backend for every packet, moved slots included', () => {
    const ra = reconcilerOf(a);
    const rb = reconcilerOf(b);
    const steps = [
      state([up('198.18.2.1'), up('198.18.2.2'), up('198.18.2.3')]),
      state([up('198.18.2.1'), up('198.18.2.2'), up('198.18.2.3'), up('198.18.2.4')]),            // added
      state([up('198.18.2.1', 3), up('198.18.2.2'), up('198.18.2.3'), up('198.18.2.4')]),         // reweighted
      state([up('198.18.2.1', 3), { ...up('198.18.2.2'), draining: true }, up('198.18.2.4')]),    // drained + removed
    ];
    for (const s of steps) {
      ra.apply(s);
      clock += 1_000;
      rb.apply(s);
    }
    const ta = tableOf(a, ra);
    const tb = tableOf(b, rb);
    for (let i = 0; i < ta.length; i += SLOT_WORDS) {
      assert.deepEqual([ta[i], ta[i + SLOT.prev], ta[i + SLOT.seenFlags] >> 8], [tb[i], tb[i + SLOT.prev], tb[i + SLOT.seenFlags] >> 8], `slot ${i / SLOT_WORDS}`);
    }
    assert.ok(ra.transitionSlotCount() > 20, 'the changes moved slots');
    // The same packets in the same order (each node remembers what it chose): the same choices.
    for (let p = 30000; p < 30600; p++) {
      for (const [flags, proto] of [[0x10, IPPROTO_TCP], [0x02, IPPROTO_TCP], [0x10, IPPROTO_TCP], [0, IPPROTO_UDP]] as const) {
        const to = sentTo(a, frame(p, flags, proto));
        assert.match(to, /^198\.18\.2\./, 'sent to a backend');
        assert.equal(sentTo(b, frame(p, flags, proto)), to, `:${p} flags ${flags} proto ${proto}`);
      }
    }
  });
});
