/**
 * The counters' contract (src/dataplane/counters.ts): the sums as pure functions, then on the real
 * kernel what a user reads (DataplaneInspector.readStats) from backend_fast_stats, and that a
 * removed backend's and a removed service's counts stay in their service's and the verdicts'
 * totals, across a restart (adopt) too. That the program counts a forwarded/reversed packet in
 * exactly its fast slot is test/datapath.test.ts's (every fixture's counter deltas); that the
 * verdicts add up over random traffic, the fuzz's. Pins under /sys/fs/bpf/xlbt-fc-pin, removed
 * by name.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { possibleCpus, repoRoot } from '../bpf';
import { encodePerCpu, encodeU32, LB, LbCounterCodec, LbFlowStatsCodec } from './abi';
import { addFastToVerdicts, fastSlot, readVerdictRows, verdictIndex, ZERO_FLOW, type FastCounters } from './counters';
import { Dataplane } from './dataplane';
import { Balancer } from '../balancer/balancer';
import { DataplaneInspector, dataplaneVerdictRows } from './inspect';
import type { FlowCounters, PacketCounter, StatsSnapshot } from './types';
import { kernelTestSkip } from '../../test/support/kernel-env';
import { twoServicesState } from '../../test/support/two-services';

const flow = (fwdPackets: number, fwdBytes: number, revPackets = 0, revBytes = 0): FlowCounters => ({ fwdPackets, fwdBytes, revPackets, revBytes });
const times = (c: FlowCounters, n: number) => flow(c.fwdPackets * n, c.fwdBytes * n, c.revPackets * n, c.revBytes * n);

test('fast counters add to the forwarded and reversed verdict rows of their action', () => {
  const rows = new Map<number, PacketCounter>([[verdictIndex(LB.REASON_FORWARDED, LB.ACTION_TX), { packets: 1, bytes: 10 }]]);
  const f: FastCounters = { tx: flow(2, 20, 3, 30), redirect: flow(4, 40, 0, 0) };
  addFastToVerdicts(rows, f);
  assert.deepEqual(Object.fromEntries(rows), {
    [verdictIndex(LB.REASON_FORWARDED, LB.ACTION_TX)]: { packets: 3, bytes: 30 },
    [verdictIndex(LB.REASON_REVERSED, LB.ACTION_TX)]: { packets: 3, bytes: 30 },
    [verdictIndex(LB.REASON_FORWARDED, LB.ACTION_REDIRECT)]: { packets: 4, bytes: 40 },
  }, 'zero counters add no row');
  assert.equal(fastSlot(7, false, 32), 7);
  assert.equal(fastSlot(7, true, 32), 39, 'the REDIRECT half starts at the backends map\'s size');
});

test('readVerdictRows: verdict_stats, every fast slot by its action, every retired entry', () => {
  const key = (i: number) => encodeU32(i);
  const val = (o: unknown) => Buffer.from(JSON.stringify(o));
  const decode = {
    counter: (v: Buffer) => JSON.parse(v.toString()) as PacketCounter,
    flow: (v: Buffer) => JSON.parse(v.toString()) as FlowCounters,
    retired: (v: Buffer) => JSON.parse(v.toString()) as FastCounters,
  };
  const rows = readVerdictRows(
    { lookupBatch: () => [[key(verdictIndex(LB.REASON_NO_SERVICE, LB.ACTION_DROP)), val({ packets: 5, bytes: 50 })], [key(0), val({ packets: 0, bytes: 0 })]] },
    { lookupBatch: () => [...Array(8).keys()].map((i) => [key(i), val(i === 3 ? flow(1, 100, 2, 200) : i === 7 ? flow(1, 60) : ZERO_FLOW)] as [Buffer, Buffer]) },
    { lookupBatch: () => [[key(0), val({ tx: flow(10, 1000), redirect: ZERO_FLOW })]] },
    decode);
  assert.deepEqual(Object.fromEntries(rows), {
    [verdictIndex(LB.REASON_NO_SERVICE, LB.ACTION_DROP)]: { packets: 5, bytes: 50 },
    [verdictIndex(LB.REASON_FORWARDED, LB.ACTION_TX)]: { packets: 11, bytes: 1100 },
    [verdictIndex(LB.REASON_REVERSED, LB.ACTION_TX)]: { packets: 2, bytes: 200 },
    [verdictIndex(LB.REASON_FORWARDED, LB.ACTION_REDIRECT)]: { packets: 1, bytes: 60 },
  });
  assert.deepEqual(readVerdictRows({ lookupBatch: () => [] }, null, null, decode).size, 0, 'pins without the fast maps');
});

const PIN = '/sys/fs/bpf/xlbt-fc-pin';
const skip = kernelTestSkip('fast counters kernel test');

const state = twoServicesState;

describe('fast counters on the real kernel', { skip }, () => {
  const cpus = possibleCpus();
  let dp: Dataplane | null = null;
  let lb: Balancer | null = null;
  let view: DataplaneInspector | null = null;
  const cleanup = () => fs.rmSync(PIN, { recursive: true, force: true });
  before(cleanup);
  after(() => { try { dp?.close(); } finally { cleanup(); } });

  /** What the program would have counted: `value` on every CPU of backend id's slot. */
  const count = (id: number, redirect: boolean, value: FlowCounters) =>
    dp!.map('backend_fast_stats').update(encodeU32(fastSlot(id, redirect, 32)), encodePerCpu(LbFlowStatsCodec, value, cpus));
  const verdicts = (s: StatsSnapshot) => ({ reasons: s.reasons, actions: s.actions });

  test('a backend\'s, its service\'s and the verdicts\' totals include its fast counters', () => {
    dp = Dataplane.load({ hashSeed: 1, maxServices: 8, maxBackends: 32, maxFlows: 256, pinDir: PIN });
    lb = new Balancer(dp);
    view = new DataplaneInspector(dp, lb.reconciler);
    lb.applyState(state());
    const b2 = lb.reconciler.backendId('dns', '198.18.1.2', 5353)!;
    const b3 = lb.reconciler.backendId('dns', '198.18.1.3', 5353)!;
    count(b2, false, flow(10, 1000, 5, 400));
    count(b2, true, flow(3, 300));
    count(b3, false, flow(7, 700));
    const s = view.readStats();
    assert.deepEqual(s.backends.dns['198.18.1.2:5353'], times(flow(13, 1300, 5, 400), cpus));
    assert.deepEqual(s.backends.dns['198.18.1.3:5353'], times(flow(7, 700), cpus));
    assert.deepEqual(s.services.dns, times(flow(20, 2000, 5, 400), cpus));
    assert.deepEqual(s.services.web, ZERO_FLOW);
    assert.deepEqual(s.reasons.forwarded, { packets: 20 * cpus, bytes: 2000 * cpus });
    assert.deepEqual(s.reasons.reversed, { packets: 5 * cpus, bytes: 400 * cpus });
    assert.deepEqual(s.actions.tx, { packets: 22 * cpus, bytes: 2100 * cpus });
    assert.deepEqual(s.actions.redirect, { packets: 3 * cpus, bytes: 300 * cpus });
    const rows = dataplaneVerdictRows(dp);
    assert.deepEqual(rows.get(verdictIndex(LB.REASON_FORWARDED, LB.ACTION_REDIRECT)), { packets: 3 * cpus, bytes: 300 * cpus });
  });

  test('a removed backend\'s counts stay with its service and the verdicts (retired_stats), also after a restart', () => {
    const before = view!.readStats();
    const dnsId = lb!.reconciler.serviceId('dns')!;
    const b2 = lb!.reconciler.backendId('dns', '198.18.1.2', 5353)!;
    const without = state();
    without.services[0].backends.shift();
    lb!.applyState(without);
    let s = view!.readStats();
    assert.deepEqual(Object.keys(s.backends.dns), ['198.18.1.3:5353']);
    assert.deepEqual(s.services.dns, before.services.dns, 'the service keeps what the removed backend carried');
    assert.deepEqual(verdicts(s), verdicts(before), 'so do the verdicts');
    for (const redirect of [false, true]) {
      const v = dp!.map('backend_fast_stats').lookup(encodeU32(fastSlot(b2, redirect, 32)))!;
      assert.ok(v.every((byte) => byte === 0), 'the freed id\'s fast slots are zero (a reuse starts from 0)');
    }
    assert.ok(dp!.map('retired_stats').lookup(encodeU32(dnsId))!.some((byte) => byte !== 0));
    // A restart: retired_stats is pinned with the rest.
    dp!.close();
    dp = Dataplane.adopt(PIN)!;
    lb = new Balancer(dp);
    view = new DataplaneInspector(dp, lb.reconciler);
    lb.applyState(without);
    s = view.readStats();
    assert.deepEqual(s.services.dns, before.services.dns);
    assert.deepEqual(verdicts(s), verdicts(before));
  });

  test('a removed service\'s retired counts move to retired_stats[0]: the verdicts keep them', () => {
    const before = view!.readStats();
    const dnsId = lb!.reconciler.serviceId('dns')!;
    const onlyWeb = state();
    onlyWeb.services.shift();
    lb!.applyState(onlyWeb);
    const s = view!.readStats();
    assert.deepEqual(Object.keys(s.services), ['web']);
    assert.deepEqual(verdicts(s), verdicts(before), 'nothing counted is lost from the verdicts');
    assert.ok(dp!.map('retired_stats').lookup(encodeU32(dnsId))!.every((byte) => byte === 0), 'a reused service id starts from 0');
    assert.ok(dp!.map('retired_stats').lookup(encodeU32(0))!.some((byte) => byte !== 0));
    // Added back: a new service from 0.
    lb!.applyState(state());
    assert.deepEqual(view!.readStats().services.dns, ZERO_FLOW);
  });
});

describe('pins of a build before the fast counters', { skip }, () => {
  const DIR = '/sys/fs/bpf/xlbt-fc-old';
  const cleanup = () => fs.rmSync(DIR, { recursive: true, force: true });
  before(cleanup);
  after(cleanup);

  test('are adopted and read as before; replaceProgram creates and pins the two maps; old and new counts add up', () => {
    const cpus = possibleCpus();
    const first = Dataplane.load({ hashSeed: 1, maxServices: 8, maxBackends: 32, maxFlows: 256, pinDir: DIR });
    let b2 = 0;
    try {
      const lb = new Balancer(first);
      lb.applyState(state());
      b2 = lb.reconciler.backendId('dns', '198.18.1.2', 5353)!;
      // What an older program counted: the service, the backend and the verdict of each packet.
      first.map('service_stats').update(encodeU32(lb.reconciler.serviceId('dns')!), encodePerCpu(LbFlowStatsCodec, flow(4, 400), cpus));
      first.map('backend_stats').update(encodeU32(b2), encodePerCpu(LbFlowStatsCodec, flow(4, 400), cpus));
      first.map('verdict_stats').update(encodeU32(verdictIndex(LB.REASON_FORWARDED, LB.ACTION_TX)),
        encodePerCpu(LbCounterCodec, { packets: 4, bytes: 400 }, cpus));
    } finally {
      first.close();
    }
    for (const name of ['backend_fast_stats', 'retired_stats']) fs.rmSync(path.join(DIR, 'maps', name));
    let dp = Dataplane.adopt(DIR)!;
    try {
      assert.equal(dp.optionalMap('backend_fast_stats'), null);
      let lb = new Balancer(dp);
      lb.applyState(state());
      const old = new DataplaneInspector(dp, lb.reconciler).readStats();
      assert.deepEqual(old.services.dns, times(flow(4, 400), cpus));
      assert.deepEqual(old.reasons.forwarded, { packets: 4 * cpus, bytes: 400 * cpus });
      dp.replaceProgram(path.join(repoRoot(), 'bpf', 'lb.o'));
      for (const name of ['backend_fast_stats', 'retired_stats']) assert.ok(fs.existsSync(path.join(DIR, 'maps', name)), `${name} pinned`);
      dp.close();
      dp = Dataplane.adopt(DIR)!;
      lb = new Balancer(dp);
      lb.applyState(state());
      dp.map('backend_fast_stats').update(encodeU32(fastSlot(b2, false, 32)), encodePerCpu(LbFlowStatsCodec, flow(6, 600), cpus));
      const s = new DataplaneInspector(dp, lb.reconciler).readStats();
      assert.deepEqual(s.services.dns, times(flow(10, 1000), cpus));
      assert.deepEqual(s.backends.dns['198.18.1.2:5353'], times(flow(10, 1000), cpus));
      assert.deepEqual(s.reasons.forwarded, { packets: 10 * cpus, bytes: 1000 * cpus });
    } finally {
      dp.close();
    }
  });
});
