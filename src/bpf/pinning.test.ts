/** Kernel tests: pinning and re-opening maps, programs and links; reusing pinned maps at load. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { BpfMap, BpfObject, Program, XDP_ACTIONS, XdpLink, enterNetns, xdpAttachments } from './index';
import { PIN_DIR, assertNoFdLeak, createVethNetns, fdSnapshot, frame, freshPinDir, testdataObject, u32, u64 } from './testing';

const BRIDGE = testdataObject('bridge');
const NS = 'xlbt-br-t2';
const VETH_A = 'xlbt-br2';
const VETH_B = 'xlbt-br3';

describe('pinning', () => {
  let removePins: () => void = () => {};
  let removeNetns: () => void = () => {};
  let fdsBefore: string[] = [];
  before(() => {
    fdsBefore = fdSnapshot();
    removePins = freshPinDir();
    removeNetns = createVethNetns(NS, VETH_A, VETH_B);
  });
  after(() => {
    removeNetns();
    removePins();
    assertNoFdLeak(fdsBefore, 'pinning tests');
  });

  test('a pinned map reopens with the same id and data, and is reused by a second load', () => {
    const pin = path.join(PIN_DIR, 'table');
    const first = BpfObject.load(BRIDGE);
    const table = first.map('table');
    first.close();
    table.update(u32(7), u64(77));
    table.pin(pin);
    const again = BpfMap.fromPin(pin);
    const second = BpfObject.load(BRIDGE, { reuseMaps: { table: pin } });
    const reused = second.map('table');
    second.close();
    try {
      assert.equal(again.id, table.id);
      assert.equal(again.name, 'table');
      assert.deepEqual(again.lookup(u32(7)), u64(77));
      assert.equal(reused.id, table.id);
      reused.update(u32(8), u64(88));
      assert.deepEqual(table.lookup(u32(8)), u64(88));
      assert.equal(BpfMap.fromId(table.id).close(), undefined);
    } finally {
      table.close();
      again.close();
      reused.close();
    }
  });

  test('a pinned program reopens by path and by id', () => {
    const pin = path.join(PIN_DIR, 'verdict');
    const obj = BpfObject.load(BRIDGE);
    const prog = obj.program('xdp_verdict');
    obj.close();
    prog.pin(pin);
    const id = prog.info().id;
    prog.close();
    const fromPin = Program.fromPin(pin);
    const fromId = Program.fromId(id);
    try {
      assert.equal(fromPin.info().id, id);
      assert.equal(fromPin.name, 'xdp_verdict');
      assert.equal(fromPin.testRun(frame(1)).retval, XDP_ACTIONS.PASS);
      assert.equal(fromId.info().id, id);
    } finally {
      fromPin.close();
      fromId.close();
    }
  });

  test('a pinned link keeps XDP attached after every fd closes; reopened, it updates and detaches', () => {
    const pin = path.join(PIN_DIR, 'link');
    const obj = BpfObject.load(BRIDGE);
    const verdict = obj.program('xdp_verdict');
    const dropAll = obj.program('xdp_drop_all');
    obj.close();
    const restore = enterNetns(NS);
    try {
      const link = XdpLink.attach(verdict, VETH_A, 'generic');
      link.pin(pin);
      const verdictId = verdict.info().id;
      link.close();
      verdict.close();
      let seen = xdpAttachments().find((a) => a.ifname === VETH_A);
      assert.equal(seen?.progId, verdictId);
      assert.equal(seen?.mode, 'generic');

      const reopened = XdpLink.fromPin(pin);
      try {
        assert.equal(reopened.progId(), verdictId);
        const byId = XdpLink.fromId(reopened.id);
        assert.equal(byId.ifindex, reopened.ifindex);
        byId.close();
        reopened.update(dropAll);
        seen = xdpAttachments().find((a) => a.ifname === VETH_A);
        assert.equal(seen?.progId, dropAll.info().id);
        reopened.detach();
        assert.equal(xdpAttachments().find((a) => a.ifname === VETH_A), undefined);
      } finally {
        reopened.close();
      }
    } finally {
      restore();
      verdict.close();
      dropAll.close();
    }
  });
});
