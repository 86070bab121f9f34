/** Kernel tests of the libbpf bridge, step 1: load options, maps, test runs, XDP attach, errors. Run as root. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BpfError, BpfMap, BpfObject, Program, XDP_ACTIONS, XdpLink, enterNetns, ifIndex, possibleCpus,
  xdpAttachments,
} from './index';
import { assertNoFdLeak, createVethNetns, fdSnapshot, frame, testdataObject, u32, u64 } from './testing';

const BRIDGE = testdataObject('bridge');
const NS = 'xlbt-br-t1';
const VETH_A = 'xlbt-br0';
const VETH_B = 'xlbt-br1';

/** Asserts that `fn` throws a BpfError with `code` whose message matches `pattern`, and leaks no fd. */
function assertBpfError(fn: () => unknown, code: string, pattern: RegExp): BpfError {
  const before = fdSnapshot();
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assertNoFdLeak(before, 'a failed call');
  assert.ok(caught instanceof BpfError, `expected BpfError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  assert.match(caught.message, pattern);
  assert.equal(typeof caught.op, 'string');
  assert.ok(caught.errno > 0);
  return caught;
}

describe('object load with options', () => {
  test('max_entries and const volatile globals change what the program does', () => {
    const defaults = BpfObject.load(BRIDGE);
    const custom = BpfObject.load(BRIDGE, {
      maxEntries: { slots: 8 },
      globals: { verdict: u32(XDP_ACTIONS.TX), stamp: u32(0xa1b2c3d4) },
    });
    try {
      const plain = defaults.program('xdp_verdict');
      const tuned = custom.program('xdp_verdict');
      const slots = custom.map('slots');
      try {
        assert.equal(slots.maxEntries, 8);
        // slot 7 exists only in the 8-slot map; the verdict comes from the global.
        assert.equal(plain.testRun(frame(7)).retval, XDP_ACTIONS.DROP);
        assert.equal(plain.testRun(frame(1)).retval, XDP_ACTIONS.PASS);
        const run = tuned.testRun(frame(7));
        assert.equal(run.retval, XDP_ACTIONS.TX);
        assert.equal(run.data.readUInt32LE(16), 0xa1b2c3d4);
        assert.equal(run.data.length, 64);
        assert.ok(run.durationNs >= 0);
      } finally {
        plain.close();
        tuned.close();
        slots.close();
      }
    } finally {
      defaults.close();
      custom.close();
    }
  });

  test('program and map handles outlive the object', () => {
    const obj = BpfObject.load(BRIDGE);
    const prog = obj.program('xdp_verdict');
    const table = obj.map('table');
    obj.close();
    obj.close(); // idempotent
    try {
      assert.equal(prog.testRun(frame(1)).retval, XDP_ACTIONS.PASS);
      table.update(u32(1), u64(5));
      assert.deepEqual(table.lookup(u32(1)), u64(5));
      assert.equal(prog.info().name, 'xdp_verdict');
      assert.equal(prog.info().typeName, 'xdp');
    } finally {
      prog.close();
      prog.close();
      table.close();
    }
  });

  test('programNames and maps() list what the object has', () => {
    const obj = BpfObject.load(BRIDGE);
    try {
      assert.deepEqual(obj.programNames().sort(), ['xdp_drop_all', 'xdp_event', 'xdp_inner_lookup', 'xdp_verdict']);
      const maps = obj.maps();
      try {
        assert.deepEqual(maps.map((m) => m.name).sort(), ['events', 'outer', 'runs', 'slots', 'table']);
        const byName = Object.fromEntries(maps.map((m) => [m.name, m]));
        assert.equal(byName.table!.typeName, 'hash');
        assert.equal(byName.runs!.isPerCpu, true);
        assert.equal(byName.outer!.typeName, 'array_of_maps');
      } finally {
        maps.forEach((m) => m.close());
      }
    } finally {
      obj.close();
    }
  });
});

describe('maps', () => {
  test('CRUD with update flags, iteration and count on a hash', () => {
    const map = BpfMap.create({ type: 'hash', name: 'xlbt_br_hash', keySize: 4, valueSize: 8, maxEntries: 16 });
    try {
      assert.equal(map.lookup(u32(1)), null);
      map.update(u32(1), u64(10));
      map.update(u32(2), u64(20), 'noexist');
      assert.throws(() => map.update(u32(2), u64(21), 'noexist'), (e: BpfError) => e.code === 'EEXIST');
      assert.throws(() => map.update(u32(3), u64(30), 'exist'), (e: BpfError) => e.code === 'ENOENT');
      map.update(u32(2), u64(22), 'exist');
      assert.deepEqual(map.lookup(u32(2)), u64(22));
      assert.equal(map.count(), 2);
      const entries = [...map.entries()].map(([k, v]) => [k.readUInt32LE(), Number(v.readBigUInt64LE())]);
      assert.deepEqual(entries.sort((a, b) => a[0]! - b[0]!), [[1, 10], [2, 22]]);
      assert.equal(map.delete(u32(1)), true);
      assert.equal(map.delete(u32(1)), false);
      assert.deepEqual([...map.keys()].map((k) => k.readUInt32LE()), [2]);
      // deleting while iterating visits every key once
      for (let i = 10; i < 16; i++) map.update(u32(i), u64(i));
      const visited: number[] = [];
      for (const k of map.keys()) {
        visited.push(k.readUInt32LE());
        map.delete(k);
      }
      assert.deepEqual(visited.sort((a, b) => a - b), [2, 10, 11, 12, 13, 14, 15]);
      assert.equal(map.count(), 0);
    } finally {
      map.close();
    }
  });

  test('batch update and lookup', () => {
    const map = BpfMap.create({ type: 'BPF_MAP_TYPE_HASH', name: 'xlbt_br_batch', keySize: 4, valueSize: 8, maxEntries: 128 });
    try {
      const keys = Array.from({ length: 100 }, (_, i) => u32(i + 1));
      const values = keys.map((k) => u64(k.readUInt32LE() * 3));
      map.updateBatch(keys, values);
      assert.equal(map.count(), 100);
      const got = map.lookupBatch();
      assert.equal(got.length, 100);
      for (const [k, v] of got) assert.equal(Number(v.readBigUInt64LE()), k.readUInt32LE() * 3);
      assert.throws(() => map.updateBatch([u32(1)], []), /1 keys but 0 values/);
      // The flat form: entries back to back, checked against count x sizes before the syscall.
      map.updateBatchFlat(Buffer.concat([u32(201), u32(202)]), Buffer.concat([u64(7), u64(8)]), 2);
      assert.equal(Number(map.lookup(u32(202))!.readBigUInt64LE()), 8);
      assert.equal(map.count(), 102);
      assert.throws(() => map.updateBatchFlat(Buffer.concat([u32(203)]), Buffer.concat([u64(9), u64(9)]), 2),
        /2 entries need 8 key bytes and 16 value bytes, got 4 and 16/);
      assert.equal(map.count(), 102, 'a refused batch writes nothing');
    } finally {
      map.close();
    }
  });

  test('per-CPU values: one slot per possible CPU, summed over the program runs', () => {
    const obj = BpfObject.load(BRIDGE);
    const prog = obj.program('xdp_verdict');
    const runs = obj.map('runs');
    obj.close();
    try {
      assert.equal(runs.valueBufferSize, possibleCpus() * 8);
      for (let i = 0; i < 5; i++) prog.testRun(frame(0));
      prog.testRun(frame(0), { repeat: 10 });
      const perCpu = runs.lookupPerCpu(u32(0));
      assert.ok(perCpu);
      assert.equal(perCpu.length, possibleCpus());
      const total = perCpu.reduce((sum, b) => sum + b.readBigUInt64LE(), 0n);
      assert.equal(total, 15n);
      // writing per-CPU values: every CPU's slot
      const value = Buffer.alloc(runs.valueBufferSize);
      for (let cpu = 0; cpu < possibleCpus(); cpu++) value.writeBigUInt64LE(BigInt(cpu + 100), cpu * 8);
      runs.update(u32(0), value);
      assert.deepEqual(runs.lookupPerCpu(u32(0))!.map((b) => Number(b.readBigUInt64LE())),
        Array.from({ length: possibleCpus() }, (_, cpu) => cpu + 100));
    } finally {
      prog.close();
      runs.close();
    }
  });

  test('key and value size mismatches throw before the syscall, naming the map and the size', () => {
    const map = BpfMap.create({ type: 'array', name: 'xlbt_br_arr', keySize: 4, valueSize: 8, maxEntries: 4 });
    try {
      const err = assertBpfError(() => map.lookup(Buffer.alloc(2)), 'EINVAL', /map lookup map 'xlbt_br_arr'.*key must be 4 bytes, got 2/);
      assert.equal(err.op, 'map lookup');
      assertBpfError(() => map.update(u32(0), Buffer.alloc(4)), 'EINVAL', /value must be 8 bytes, got 4/);
      assertBpfError(() => map.delete(Buffer.alloc(8)), 'EINVAL', /map delete.*key must be 4 bytes/);
      assertBpfError(() => map.update(u32(9), u64(1)), 'E2BIG', /map update map 'xlbt_br_arr'/);
    } finally {
      map.close();
    }
    assertBpfError(() => map.lookup(u32(0)), 'EBADF', /closed/);
  });
});

describe('XDP in a lab namespace', () => {
  let cleanup: () => void = () => {};
  before(() => {
    cleanup = createVethNetns(NS, VETH_A, VETH_B);
  });
  after(() => cleanup());

  test('testRun with ingressIfindex of a veth inside the netns', () => {
    const obj = BpfObject.load(BRIDGE);
    const prog = obj.program('xdp_verdict');
    obj.close();
    const restore = enterNetns(NS);
    try {
      const ifindex = ifIndex(VETH_A);
      const run = prog.testRun(frame(1), { ingressIfindex: ifindex });
      assert.equal(run.retval, XDP_ACTIONS.PASS);
      assert.equal(run.data.readUInt32LE(20), ifindex);
    } finally {
      restore();
      restore(); // idempotent
      prog.close();
    }
    // back in the host namespace the veth is unknown
    assertBpfError(() => ifIndex(VETH_A), 'ENODEV', /interface lookup 'xlbt-br0'/);
  });

  test('attach native, see it in xdpAttachments, update the link program, detach', () => {
    const obj = BpfObject.load(BRIDGE);
    const verdict = obj.program('xdp_verdict');
    const dropAll = obj.program('xdp_drop_all');
    obj.close();
    const restore = enterNetns(NS);
    try {
      const link = XdpLink.attach(verdict, VETH_A, 'native');
      try {
        assert.equal(link.ifindex, ifIndex(VETH_A));
        let seen = xdpAttachments().find((a) => a.ifname === VETH_A);
        assert.ok(seen, 'attachment not listed');
        assert.equal(seen.mode, 'native');
        assert.equal(seen.progId, verdict.info().id);
        assertBpfError(() => XdpLink.attach(dropAll, VETH_A, 'native'), 'EBUSY', /xdp attach \(native\) interface 'xlbt-br0'.*already attached/);

        link.update(dropAll);
        seen = xdpAttachments().find((a) => a.ifname === VETH_A);
        assert.equal(seen?.progId, dropAll.info().id);
        assert.equal(link.progId(), dropAll.info().id);

        link.detach();
        assert.equal(xdpAttachments().find((a) => a.ifname === VETH_A), undefined);
      } finally {
        link.close();
      }
      assertBpfError(() => XdpLink.attach(verdict, 'xlbt-br-none', 'native'), 'ENODEV', /interface lookup 'xlbt-br-none'.*no such interface/);
    } finally {
      restore();
      verdict.close();
      dropAll.close();
    }
  });
});

describe('errors are clear and leak nothing', () => {
  test('missing object file', () => {
    assertBpfError(() => BpfObject.load(testdataObject('no_such_object')), 'ENOENT', /object open .*no_such_object\.o.*make -C bpf/);
  });

  test('unknown map and program names list what exists', () => {
    const obj = BpfObject.load(BRIDGE);
    try {
      assertBpfError(() => obj.map('nope'), 'ENOENT', /object map 'nope'.*it has: .*table/);
      assertBpfError(() => obj.program('nope'), 'ENOENT', /object program 'nope'.*it has: .*xdp_verdict/);
    } finally {
      obj.close();
    }
    assertBpfError(() => BpfObject.load(BRIDGE, { maxEntries: { nope: 4 } }), 'ENOENT', /map 'nope'/);
    assertBpfError(() => BpfObject.load(BRIDGE, { globals: { nope: u32(1) } }), 'ENOENT', /global 'nope'/);
    assertBpfError(() => BpfObject.load(BRIDGE, { globals: { verdict: u64(1) } }), 'EINVAL', /4 bytes, the value given is 8/);
  });

  test('verifier rejection carries the verifier log', () => {
    const err = assertBpfError(() => BpfObject.load(testdataObject('verifier_reject')), 'EACCES', /object load .*verifier_reject\.o/);
    assert.ok(err.verifierLog, 'no verifier log');
    assert.match(err.verifierLog, /invalid access to packet/);
    assert.match(err.message, /invalid access to packet/);
  });

  test('fromPin on a missing path', () => {
    assertBpfError(() => BpfMap.fromPin('/sys/fs/bpf/xlbt-br/none'), 'ENOENT', /map open pinned \/sys\/fs\/bpf\/xlbt-br\/none.*nothing is pinned/);
    assertBpfError(() => Program.fromPin('/sys/fs/bpf/xlbt-br/none'), 'ENOENT', /program open pinned/);
  });
});
