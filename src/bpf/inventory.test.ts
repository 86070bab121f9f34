/** Kernel tests: host inventory of programs and maps, run-time stats, BTF layouts. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BpfError, BpfObject, btfStructLayout, enableRunStats, ifHwAddr, ifIndex, ifName, listInterfaces, listMaps, listPrograms,
  openFdCount, possibleCpus,
} from './index';
import { frame, testdataObject } from './testing';

const BRIDGE = testdataObject('bridge');

test('listPrograms and listMaps include ours with full info; run_cnt grows with stats enabled', () => {
  const fdsBefore = openFdCount();
  const obj = BpfObject.load(BRIDGE);
  const prog = obj.program('xdp_verdict');
  const slots = obj.map('slots');
  obj.close();
  const stats = enableRunStats();
  try {
    const id = prog.info().id;
    const listed = listPrograms().find((p) => p.id === id);
    assert.ok(listed, 'our program is not listed');
    assert.equal(listed.name, 'xdp_verdict');
    assert.equal(listed.typeName, 'xdp');
    assert.match(listed.tag, /^[0-9a-f]{16}$/);
    assert.ok(Math.abs(listed.loadTime - Date.now()) < 60_000, `loadTime ${listed.loadTime} is not now`);
    assert.ok(listed.xlatedSize > 0);
    assert.ok(listed.mapIds.includes(slots.id));
    assert.equal(listed.uid, 0);

    const before = prog.info().runCount;
    for (let i = 0; i < 20; i++) prog.testRun(frame(1));
    const info = prog.info();
    assert.ok(info.runCount >= before + 20, `runCount ${info.runCount} did not grow from ${before}`);
    assert.ok(info.runTimeNs > 0);

    const map = listMaps().find((m) => m.id === slots.id);
    assert.ok(map);
    assert.equal(map.typeName, 'array');
    assert.equal(map.keySize, 4);
    assert.equal(map.valueSize, 8);
  } finally {
    stats.close();
    stats.close();
    prog.close();
    slots.close();
  }
  assert.equal(openFdCount(), fdsBefore);
});

test('interfaces: lo by name and index', () => {
  const lo = listInterfaces().find((i) => i.name === 'lo');
  assert.ok(lo);
  assert.equal(ifIndex('lo'), lo.index);
  assert.equal(ifName(lo.index), 'lo');
  assert.throws(() => ifName(999_999), BpfError);
  assert.ok(possibleCpus() >= 1);
});

test('ifHwAddr: an interface\'s MAC (lo: all zeros), ENODEV for an unknown name', () => {
  assert.deepEqual([...ifHwAddr('lo')], [0, 0, 0, 0, 0, 0]);
  assert.throws(() => ifHwAddr('xlbt-dv-none'), (err: unknown) => err instanceof BpfError && /ENODEV/.test(String(err)));
  assert.throws(() => ifHwAddr('x'.repeat(20)), BpfError);
});

test('btfStructLayout reads a struct from the object', () => {
  const layout = btfStructLayout(BRIDGE, 'event');
  assert.deepEqual(layout, {
    size: 16,
    members: [
      { name: 'seq', offset: 0, size: 8 },
      { name: 'pkt_len', offset: 8, size: 4 },
      { name: 'ifindex', offset: 12, size: 4 },
    ],
  });
  assert.throws(() => btfStructLayout(BRIDGE, 'no_such_struct'), (e: BpfError) => e.code === 'ENOENT' && /struct no_such_struct/.test(e.message));
  assert.throws(() => btfStructLayout('/nonexistent.o', 'event'), (e: BpfError) => e.code === 'ENOENT');
});
