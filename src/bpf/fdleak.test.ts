/** Kernel test: a whole cycle through every kind of handle leaves no file descriptor behind. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import {
  BPF_F_INNER_MAP, BpfError, BpfMap, BpfObject, Program, RingBuffer, XdpLink, btfStructLayout, enableRunStats,
  enterNetns, listMaps, listPrograms, openFdCount, xdpAttachments,
} from './index';
import {
  PIN_DIR, assertNoFdLeak, createVethNetns, fdSnapshot, frame, freshPinDir, testdataObject, u32, u64,
} from './testing';

const NS = 'xlbt-br-t4';
const VETH_A = 'xlbt-br6';
const VETH_B = 'xlbt-br7';

let removeNetns: () => void = () => {};
let removePins: () => void = () => {};
before(() => {
  removeNetns = createVethNetns(NS, VETH_A, VETH_B);
  removePins = freshPinDir();
});
after(() => {
  removeNetns();
  removePins();
});

async function everything(round: number): Promise<void> {
  const bridge = testdataObject('bridge');
  const obj = BpfObject.load(bridge, { maxEntries: { slots: 8 }, innerMaxEntries: { outer: 8 }, globals: { stamp: u32(round) } });
  const verdict = obj.program('xdp_verdict');
  const eventProg = obj.program('xdp_event');
  const maps = obj.maps();
  obj.close();
  const byName = Object.fromEntries(maps.map((m) => [m.name, m]));

  byName.table!.update(u32(1), u64(1));
  byName.table!.updateBatch([u32(2), u32(3)], [u64(2), u64(3)]);
  assert.equal(byName.table!.lookupBatch().length, 3);
  const inner = BpfMap.create({ type: 'array', name: 'xlbt_br_fd_in', keySize: 4, valueSize: 4, maxEntries: 3, flags: BPF_F_INNER_MAP });
  byName.outer!.setInnerMap(u32(0), inner);

  const tablePin = path.join(PIN_DIR, `table${round}`);
  byName.table!.pin(tablePin);
  BpfMap.fromPin(tablePin).close();
  const progPin = path.join(PIN_DIR, `prog${round}`);
  verdict.pin(progPin);
  Program.fromPin(progPin).close();
  Program.fromId(verdict.info().id).close();

  const stats = enableRunStats();
  listPrograms();
  listMaps();
  verdict.testRun(frame(1));
  verdict.testRunMany(frame(1), 10, { pinCpu: 0 });
  stats.close();

  let records = 0;
  const ring = new RingBuffer(byName.events!, () => records++);
  eventProg.testRun(frame(0));
  const deadline = Date.now() + 3000;
  while (records === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  assert.equal(records, 1);
  ring.close();

  const restore = enterNetns(NS);
  try {
    const link = XdpLink.attach(verdict, VETH_A, 'native');
    const linkPin = path.join(PIN_DIR, `link${round}`);
    link.pin(linkPin);
    link.close();
    const reopened = XdpLink.fromPin(linkPin);
    assert.equal(xdpAttachments().length, 1);
    reopened.detach();
    reopened.close();
    assert.throws(() => XdpLink.attach(verdict, 'xlbt-br-none', 'generic'), BpfError);
  } finally {
    restore();
  }

  btfStructLayout(bridge, 'event');
  assert.throws(() => BpfObject.load(testdataObject('verifier_reject')), BpfError);
  assert.throws(() => BpfObject.load(testdataObject('missing')), BpfError);
  assert.throws(() => BpfMap.fromPin(path.join(PIN_DIR, 'none')), BpfError);

  inner.close();
  maps.forEach((m) => m.close());
  verdict.close();
  eventProg.close();
}

test('no fd is left open after a full cycle with everything closed', async () => {
  await everything(0); // warm-up: lazy loading of the addon and of node internals
  const before = fdSnapshot();
  const countBefore = openFdCount();
  await everything(1);
  await everything(2);
  assertNoFdLeak(before, 'two full cycles');
  if (!process.execArgv.some((a) => a.includes('tsx'))) {
    // Compiled (dist/): nothing else opens files in the background, so the raw count must match too.
    assert.equal(openFdCount(), countBefore);
  }
});
