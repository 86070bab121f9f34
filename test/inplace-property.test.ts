/**
 * Property test of the in-place Maglev writes (issue 16, docs/decisions.md "Control plane at
 * kernel speed"), on a loaded bpf/lb.o (unpinned, no namespace, no port: nothing named here is
 * shared; the xlbk prefix is this file's):
 * - random sequences of bulk and single changes (drain, undrain, weight, health down/up, add,
 *   remove, several at once, a table size change now and then) applied by the reconciler;
 * - the writer is paused after every map write (update/delete syscall) and inside every in-place
 *   table write (each store or batch step cut into random chunks): at each pause the kernel maps
 *   are checked directly (a live service has its table; no slot of it points at a backend that
 *   is not usable for it, unless the state before or after has no usable backend; a moved slot
 *   has its mark) and packets are replayed through the program (BPF_PROG_TEST_RUN): a flow of a
 *   service with usable backends before and after goes to one of its backends that is usable
 *   before or after, never nowhere;
 * - after each change the kernel tables equal a fresh build of the final state (slot by slot,
 *   by backend address), and at the end of a sequence those of a fresh data plane that applied
 *   only the final state.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BpfMap } from '../src/bpf';
import { Dataplane } from '../src/dataplane/dataplane';
import { createMaglevTable, readMaglevTable, writeMaglevSlotsFlat, SLOT_WORDS } from '../src/dataplane/maglev-tables';
import { buildFrame, parseFrame, IPPROTO_TCP, IPPROTO_UDP } from '../src/dataplane/packet';
import { LB, LbBackendCodec, LbServiceCodec, LbServiceKeyCodec, encodeU32, decodeU32 } from '../src/dataplane/abi';
import { buildMaglevTable } from '../src/balancer/maglev';
import { Reconciler, type KernelMap } from '../src/balancer/reconciler';
import type { DataplaneBackend, DataplaneService, DataplaneState } from '../src/dataplane/types';
import { kernelTestSkip } from './support/kernel-env';
import { rng } from './support/rng';

const skipReason = kernelTestSkip('the in-place Maglev property test');
const PROTO = { tcp: IPPROTO_TCP, udp: IPPROTO_UDP } as const;
const SEQUENCES = 4;
const CHANGES = 18;

type Spec = { name: string; vip: string; port: number; protocol: 'tcp' | 'udp'; sizes: number[] };
const SPECS: Spec[] = [
  { name: 'web', vip: '198.18.120.1', port: 80, protocol: 'tcp', sizes: [251, 509] },
  { name: 'dns', vip: '198.18.120.2', port: 53, protocol: 'udp', sizes: [1021] },
  { name: 'big', vip: '198.18.120.1', port: 443, protocol: 'tcp', sizes: [65537] },
];
const POOL = 12;

function inTable(b: DataplaneBackend): boolean {
  return b.healthy && !b.draining && b.weight > 0;
}

function clone(s: DataplaneState): DataplaneState {
  return { settings: { ...s.settings }, services: s.services.map((x) => ({ ...x, backends: x.backends.map((b) => ({ ...b })) })) };
}

/** The backends of `service` the program may use (ACTIVE: healthy) in a state, by address. */
function activeAddresses(state: DataplaneState | null, service: string): Set<string> {
  const s = state?.services.find((x) => x.name === service);
  return new Set(s ? s.backends.filter((b) => b.healthy).map((b) => b.address) : []);
}

function usableCount(state: DataplaneState | null, service: string): number {
  return state?.services.find((x) => x.name === service)?.backends.filter(inTable).length ?? 0;
}

/** One random change (single or bulk) to `state`, in place; returns its description. */
function mutate(state: DataplaneState, next: () => number): string {
  const pick = <T>(xs: T[]): T => xs[Math.floor(next() * xs.length)];
  const r = next();
  // Now and then a service comes or goes, or changes its table size.
  if (r < 0.06 && state.services.length > 1) {
    const s = pick(state.services);
    state.services = state.services.filter((x) => x !== s);
    return `remove service ${s.name}`;
  }
  if (r < 0.12 && state.services.length < SPECS.length) {
    const spec = SPECS.find((x) => !state.services.some((s) => s.name === x.name))!;
    state.services.push(serviceOf(spec, spec.sizes[0], next));
    return `add service ${spec.name}`;
  }
  const s = pick(state.services);
  const spec = SPECS.find((x) => x.name === s.name)!;
  if (r < 0.16 && spec.sizes.length > 1) {
    s.tableSize = spec.sizes.find((m) => m !== s.tableSize)!;
    return `${s.name}: table size ${s.tableSize}`;
  }
  const one = (b: DataplaneBackend): string => {
    const k = Math.floor(next() * 6);
    switch (k) {
      case 0: b.draining = !b.draining; return `${b.address} draining=${b.draining}`;
      case 1: b.weight = Math.floor(next() * 4); return `${b.address} weight=${b.weight}`;
      case 2: b.healthy = !b.healthy; return `${b.address} healthy=${b.healthy}`;
      default: b.draining = false; b.healthy = true; b.weight = b.weight || 1; return `${b.address} in`;
    }
  };
  if (r < 0.3) {
    // Add or remove a backend.
    const free = Array.from({ length: POOL }, (_, i) => addressOf(s.name, i)).filter((a) => !s.backends.some((b) => b.address === a));
    if (free.length && (next() < 0.5 || s.backends.length < 2)) {
      const address = pick(free);
      s.backends.push({ address, port: 8080, weight: 1, healthy: true, draining: false });
      return `${s.name}: add ${address}`;
    }
    const b = pick(s.backends);
    s.backends = s.backends.filter((x) => x !== b);
    return `${s.name}: remove ${b.address}`;
  }
  if (r < 0.6) return `${s.name}: ${one(pick(s.backends))}`;
  // Bulk: several backends of one or more services in one apply.
  const n = 2 + Math.floor(next() * 5);
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const t = pick(state.services);
    if (t.backends.length) out.push(`${t.name}: ${one(pick(t.backends))}`);
  }
  return `bulk [${out.join('; ')}]`;
}

function addressOf(service: string, i: number): string {
  return `198.18.${121 + SPECS.findIndex((s) => s.name === service)}.${i + 1}`;
}

function serviceOf(spec: Spec, tableSize: number, next: () => number): DataplaneService {
  const n = 3 + Math.floor(next() * (POOL - 3));
  return {
    name: spec.name, vip: spec.vip, port: spec.port, protocol: spec.protocol, mode: 'nat', tableSize,
    backends: Array.from({ length: n }, (_, i) => ({ address: addressOf(spec.name, i), port: 8080, weight: 1, healthy: true, draining: false })),
  };
}

/** The kernel's view of one service: id, table_size, the raw table words, marks words, and
 * backend address by id (only ACTIVE backends owned by the service). */
function kernelService(dp: Dataplane, s: { vip: string; port: number; protocol: 'tcp' | 'udp' }) {
  const raw = dp.map('services').lookup(LbServiceKeyCodec.encode({ vip: s.vip, port: s.port, proto: PROTO[s.protocol] }));
  if (!raw) return null;
  const svc = LbServiceCodec.decode(raw);
  const words = (outer: Buffer | null) => {
    if (!outer) return null;
    const m = BpfMap.fromId(decodeU32(outer));
    try { return { entries: m.maxEntries, words: m.readWords() }; } finally { m.close(); }
  };
  return {
    id: svc.id, tableSize: svc.tableSize,
    table: words(dp.serviceTable(svc.id)),
    marks: words(dp.map('maglev_marks').lookup(encodeU32(svc.id))),
  };
}

function usableBackend(dp: Dataplane, id: number, serviceId: number): string | null {
  if (id === 0) return null;
  const raw = dp.map('backends').lookup(encodeU32(id));
  if (!raw) return null;
  const b = LbBackendCodec.decode(raw);
  return (b.flags & LB.BACKEND_F_ACTIVE) && b.serviceId === serviceId ? b.ip : null;
}

describe('in-place Maglev writes: property', { skip: skipReason }, () => {
  let dp: Dataplane;
  const restore: Array<() => void> = [];
  let pause: (() => void) | null = null;
  let pauses = 0;
  let chunkRng = rng(1);
  let last: Reconciler | null = null;

  before(() => {
    dp = Dataplane.load({ hashSeed: 7, maxServices: 8, maxBackends: 128, maxFlows: 4096 });
    // Every in-place or batch table write is cut into 1-3 random chunks with a pause after each.
    const proto = BpfMap.prototype;
    const storeWords = proto.storeWords;
    proto.storeWords = function (this: BpfMap, offsets: Uint32Array, values: Uint32Array) {
      const cuts = [0, ...[Math.floor(chunkRng() * offsets.length), Math.floor(chunkRng() * offsets.length)].sort((a, b) => a - b), offsets.length];
      for (let c = 0; c + 1 < cuts.length; c++) {
        if (cuts[c + 1] <= cuts[c]) continue;
        storeWords.call(this, offsets.subarray(cuts[c], cuts[c + 1]), values.subarray(cuts[c], cuts[c + 1]));
        pause?.();
      }
    };
    restore.push(() => { proto.storeWords = storeWords; });
    const updateBatchFlat = proto.updateBatchFlat;
    proto.updateBatchFlat = function (this: BpfMap, keys: Buffer, values: Buffer, count: number, flag) {
      updateBatchFlat.call(this, keys, values, count, flag);
      pause?.();
    };
    restore.push(() => { proto.updateBatchFlat = updateBatchFlat; });
  });
  after(() => { for (const r of restore) r(); dp?.close(); });

  /** The data plane's maps, with a pause after every update and delete. */
  const paused = (m: BpfMap): KernelMap => ({
    lookup: (k) => m.lookup(k),
    update: (k, v, f) => { m.update(k, v, f); pause?.(); },
    delete: (k) => { const r = m.delete(k); pause?.(); return r; },
    keys: () => m.keys(),
  });
  const reconcilerOf = (plane: Dataplane, hook: boolean): Reconciler => {
    const map = (n: Parameters<Dataplane['map']>[0]) => (hook ? paused(plane.map(n)) : plane.map(n));
    return new Reconciler({
      services: map('services'), vips: map('vips'), maglev: map('maglev'), maglevMarks: map('maglev_marks'),
      serviceSlots: map('service_slots'), backends: map('backends'), reverse: map('reverse'), settings: map('settings'),
    }, { maxServices: 8, maxBackends: 128, maxVips: 256, maxReverse: 4096, maglevMaxSize: 65537 },
    (slots, withMarks) => createMaglevTable(slots, withMarks, plane.innerTableFlags), readMaglevTable, Date.now, writeMaglevSlotsFlat);
  };

  /** Checks the kernel at a pause of the change from `from` to `to` (see the module comment). */
  const checkPause = (from: DataplaneState | null, to: DataplaneState, where: () => string): void => {
    pauses++;
    for (const spec of SPECS) {
      const k = kernelService(dp, spec);
      if (!k || k.tableSize === 0) continue;
      const ctx = () => `${where()}: service ${spec.name} (id ${k.id}) at pause ${pauses}`;
      assert.ok(k.table, `${ctx()}: a live service without its table`);
      // A growing table goes in before table_size grows, a shrinking one after it shrinks.
      assert.ok(k.table.entries >= k.tableSize, `${ctx()}: table_size ${k.tableSize} above the installed table's ${k.table.entries} slots`);
      const emptyAllowed = usableCount(from, spec.name) === 0 || usableCount(to, spec.name) === 0;
      const ok = new Map<number, boolean>();
      for (let i = 0; i < k.tableSize; i++) {
        const word = k.table.words[i * 2];
        const id = word & LB.SLOT_ID_MASK;
        if (id === 0) {
          assert.ok(emptyAllowed, `${ctx()}: slot ${i} is empty while the service has usable backends before and after`);
        } else {
          if (!ok.has(id)) ok.set(id, usableBackend(dp, id, k.id) !== null);
          assert.ok(ok.get(id), `${ctx()}: slot ${i} points at backend id ${id}, not usable for the service`);
        }
        if (word & LB.SLOT_MOVED) {
          assert.ok(k.marks, `${ctx()}: slot ${i} is moved but the service has no marks table`);
          assert.notEqual(k.marks.words[i * 4], 0, `${ctx()}: slot ${i} is moved without its mark`);
        }
      }
      // Replayed flows: SYNs and established segments (TCP) or datagrams (UDP).
      const allowed = new Set([...activeAddresses(from, spec.name), ...activeAddresses(to, spec.name)]);
      const mustForward = usableCount(from, spec.name) > 0 && usableCount(to, spec.name) > 0;
      for (let p = 0; p < 6; p++) {
        const sport = 30000 + ((pauses * 7 + p * 131) % 20000);
        const frame = buildFrame({
          ip: { src: '198.18.0.2', dst: spec.vip, proto: PROTO[spec.protocol] },
          ...(spec.protocol === 'tcp' ? { tcp: { sport, dport: spec.port, flags: p % 2 ? 0x10 : 0x02 } } : { udp: { sport, dport: spec.port } }),
        });
        const dst = parseFrame(dp.testRun(frame).data).ipv4!.dst;
        if (dst === spec.vip) {
          assert.ok(!mustForward, `${ctx()}: a flow (sport ${sport}) went nowhere while the service has usable backends before and after`);
        } else {
          assert.ok(allowed.has(dst), `${ctx()}: a flow (sport ${sport}) went to ${dst}, usable neither before nor after`);
        }
      }
    }
  };

  /** The kernel tables against a fresh build of `state` (current backends by address). */
  const assertFresh = (plane: Dataplane, state: DataplaneState, label: string): void => {
    for (const s of state.services) {
      const k = kernelService(plane, s);
      assert.ok(k, `${label}: service ${s.name} in the kernel`);
      const usable = s.backends.filter(inTable).sort((a, b) => (`${a.address}:${a.port}` < `${b.address}:${b.port}` ? -1 : 1));
      const built = buildMaglevTable(usable.map((b) => ({ key: `${b.address}:${b.port}`, weight: b.weight })), s.tableSize);
      if (built.length === 0) {
        // No usable backend: no table (table_size 0), or a table of no current backend.
        if (k.tableSize === 0) continue;
        for (let i = 0; i < k.tableSize; i++) assert.equal(k.table!.words[i * 2] & LB.SLOT_ID_MASK, 0, `${label}: ${s.name} slot ${i} empty`);
        continue;
      }
      assert.equal(k.tableSize, s.tableSize, `${label}: ${s.name} table_size`);
      const names = new Map<number, string | null>();
      for (let i = 0; i < s.tableSize; i++) {
        const id: number = k.table!.words[i * 2] & LB.SLOT_ID_MASK;
        if (!names.has(id)) names.set(id, usableBackend(plane, id, k.id));
        if (names.get(id) !== usable[built[i]].address) {
          assert.fail(`${label}: ${s.name} slot ${i} holds ${names.get(id)}, a fresh build ${usable[built[i]].address}`);
        }
      }
    }
    for (const spec of SPECS) {
      if (!state.services.some((s) => s.name === spec.name)) assert.equal(kernelService(plane, spec), null, `${label}: ${spec.name} gone`);
    }
  };

  for (let seq = 0; seq < SEQUENCES; seq++) {
    test(`sequence ${seq}: ${CHANGES} random bulk and single changes, paused after every write`, () => {
      const seed = 0x16000 + seq;
      const next = rng(seed);
      chunkRng = rng(seed ^ 0x5a5a);
      // The data plane starts empty for each sequence (the previous one's services go first).
      pause = null;
      last?.apply({ services: [], settings: { fragPolicy: 'drop', sampleRate: 0, flowCache: true } });
      const r = reconcilerOf(dp, true);
      last = r;
      let state: DataplaneState = {
        services: SPECS.filter((_, i) => i !== seq % SPECS.length || seq === 0).map((spec) => serviceOf(spec, spec.sizes[0], next)),
        settings: { fragPolicy: 'drop', sampleRate: 0, flowCache: true, transitionSeconds: 60 },
      };
      let from: DataplaneState | null = { services: [], settings: state.settings };
      let what = 'first apply';
      pause = () => checkPause(from, state, () => `seed ${seed} ${what}`);
      const before = pauses;
      r.apply(state);
      assertFresh(dp, state, `seed ${seed} ${what}`);
      for (let c = 0; c < CHANGES; c++) {
        const to = clone(state);
        what = `change ${c}: ${mutate(to, next)}`;
        from = state;
        state = to;
        r.apply(state);
        assertFresh(dp, state, `seed ${seed} ${what}`);
      }
      pause = null;
      assert.ok(pauses - before > CHANGES * 3, `the writer was paused between writes (${pauses - before} pauses)`);
      // A fresh data plane that applied only the final state holds the same tables.
      const fresh = Dataplane.load({ hashSeed: 7, maxServices: 8, maxBackends: 128, maxFlows: 4096 });
      try {
        reconcilerOf(fresh, false).apply(state);
        assertFresh(fresh, state, `seed ${seed} fresh data plane`);
      } finally {
        fresh.close();
      }
    });
  }
});
