/** Kernel tests: testRunMany (fresh input per call, pinned CPU) and testRunLive (live frames). */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { BpfMap, BpfObject, Program, XDP_ACTIONS, enterNetns, ifIndex, possibleCpus } from './index';
import { assertNoFdLeak, createVethNetns, fdSnapshot, frame, testdataObject, threadCpus, u32 } from './testing';

const NS = 'xlbt-br-t3';
const VETH_A = 'xlbt-br4';
const VETH_B = 'xlbt-br5';

let prog: Program;
let runs: BpfMap;
let removeNetns: () => void = () => {};
let fdsBefore: string[] = [];

before(() => {
  fdsBefore = fdSnapshot();
  const obj = BpfObject.load(testdataObject('bridge'), { globals: { stamp: u32(0x5eed) } });
  prog = obj.program('xdp_verdict');
  runs = obj.map('runs');
  obj.close();
  removeNetns = createVethNetns(NS, VETH_A, VETH_B);
});

after(() => {
  prog.close();
  runs.close();
  removeNetns();
  assertNoFdLeak(fdsBefore, 'test run tests');
});

function runsPerCpu(): number[] {
  return runs.lookupPerCpu(u32(0))!.map((b) => Number(b.readBigUInt64LE()));
}

test('testRunMany: one duration per call, retval histogram, every run on the pinned CPU', () => {
  const cpu = possibleCpus() > 1 ? 1 : 0;
  const affinity = threadCpus();
  const before = runsPerCpu();
  const result = prog.testRunMany(frame(1), 500, { pinCpu: cpu });
  const after = runsPerCpu();
  assert.equal(result.durationsNs.length, 500);
  assert.ok(result.durationsNs instanceof Float64Array);
  assert.ok(result.durationsNs.every((d) => d >= 0));
  assert.deepEqual(result.retvals, { [XDP_ACTIONS.PASS]: 500 });
  assert.equal(after[cpu]! - before[cpu]!, 500, 'runs were not all on the pinned CPU');
  assert.equal(threadCpus(), affinity, 'CPU affinity was not restored');
  assert.equal(prog.testRunMany(frame(1), 0).durationsNs.length, 0);
  assert.throws(() => prog.testRunMany(frame(1), -1), /count must be a non-negative integer/);
});

test('testRunMany: every call starts from the fresh input packet and sees the ingress ifindex', () => {
  const restore = enterNetns(NS);
  try {
    const ifindex = ifIndex(VETH_A);
    // slot 9 is absent (4 slots): DROP; slot 2 present: PASS. Mixed in one histogram only if
    // inputs were reused, so a single input gives a single verdict.
    assert.deepEqual(prog.testRunMany(frame(9), 50, { ingressIfindex: ifindex }).retvals, { [XDP_ACTIONS.DROP]: 50 });
    assert.deepEqual(prog.testRunMany(frame(2), 50, { ingressIfindex: ifindex }).retvals, { [XDP_ACTIONS.PASS]: 50 });
    const one = prog.testRun(frame(2), { ingressIfindex: ifindex });
    assert.equal(one.data.readUInt32LE(16), 0x5eed);
  } finally {
    restore();
  }
});

test('testRunLive: frames run through the live XDP path on the pinned CPU', () => {
  const restore = enterNetns(NS);
  try {
    const cpu = 0;
    const before = runsPerCpu();
    const result = prog.testRunLive(frame(9), { count: 1000, batchSize: 64, ingressIfindex: ifIndex(VETH_A), pinCpu: cpu });
    const after = runsPerCpu();
    assert.equal(after[cpu]! - before[cpu]!, 1000);
    assert.ok(result.wallNs > 0);
    assert.ok(result.durationNs >= 0);
  } finally {
    restore();
  }
});
