/** Kernel tests: map-in-map, inner arrays of different sizes swapped in with one outer update. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BPF_F_INNER_MAP, BpfMap, BpfObject, XDP_ACTIONS, openFdCount } from './index';
import { frame, testdataObject, u32 } from './testing';

function innerArray(name: string, size: number, values: Record<number, number>): BpfMap {
  const map = BpfMap.create({ type: 'array', name, keySize: 4, valueSize: 4, maxEntries: size, flags: BPF_F_INNER_MAP });
  for (const [k, v] of Object.entries(values)) map.update(u32(Number(k)), u32(v));
  return map;
}

test('inner arrays of different sizes swap atomically under the program', () => {
  const fdsBefore = openFdCount();
  const obj = BpfObject.load(testdataObject('bridge'), { maxEntries: { outer: 4 }, innerMaxEntries: { outer: 16 } });
  const prog = obj.program('xdp_inner_lookup');
  const outer = obj.map('outer');
  obj.close();
  const small = innerArray('xlbt_br_small', 4, { 1: 111 });
  const large = innerArray('xlbt_br_large', 32, { 1: 222, 20: 2020 });
  try {
    assert.equal(outer.maxEntries, 4);
    assert.equal(prog.testRun(frame(1)).retval, XDP_ACTIONS.ABORTED, 'empty slot must abort');

    outer.setInnerMap(u32(0), small);
    let run = prog.testRun(frame(1));
    assert.equal(run.retval, XDP_ACTIONS.TX);
    assert.equal(run.data.readUInt32LE(16), 111);
    assert.equal(prog.testRun(frame(20)).retval, XDP_ACTIONS.DROP, 'key 20 is beyond the small array');

    outer.setInnerMap(u32(0), large); // one update: the cut-over
    run = prog.testRun(frame(1));
    assert.equal(run.data.readUInt32LE(16), 222);
    run = prog.testRun(frame(20));
    assert.equal(run.retval, XDP_ACTIONS.TX);
    assert.equal(run.data.readUInt32LE(16), 2020);
    // a map-in-map lookup from user space returns the inner map's id
    assert.equal(outer.lookup(u32(0))!.readUInt32LE(), large.id);
  } finally {
    prog.close();
    outer.close();
    small.close();
    large.close();
  }
  assert.equal(openFdCount(), fdsBefore);
});

test('an ARRAY_OF_MAPS created from user space with an inner template fd', () => {
  const template = BpfMap.create({ type: 'array', name: 'xlbt_br_tmpl', keySize: 4, valueSize: 4, maxEntries: 1, flags: BPF_F_INNER_MAP });
  const outer = BpfMap.create({ type: 'array_of_maps', name: 'xlbt_br_outer', keySize: 4, valueSize: 4, maxEntries: 2, innerMapFd: template.fd });
  const inner = BpfMap.create({ type: 'array', name: 'xlbt_br_in', keySize: 4, valueSize: 4, maxEntries: 64, flags: BPF_F_INNER_MAP });
  try {
    assert.equal(outer.typeName, 'array_of_maps');
    outer.setInnerMap(u32(1), inner);
    assert.equal(outer.lookup(u32(1))!.readUInt32LE(), inner.id);
    assert.throws(() => inner.setInnerMap(u32(0), template), /not a map-in-map/);
  } finally {
    template.close();
    outer.close();
    inner.close();
  }
});
