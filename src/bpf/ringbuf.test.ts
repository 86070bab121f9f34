/** Kernel tests: ring buffer records reach a JS callback through the event loop. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { BpfMap, BpfObject, Program, RingBuffer, repoRoot } from './index';
import { assertNoFdLeak, fdSnapshot, frame, testdataObject } from './testing';

function loadEventProgram(): { prog: Program; events: BpfMap } {
  const obj = BpfObject.load(testdataObject('bridge'));
  try {
    return { prog: obj.program('xdp_event'), events: obj.map('events') };
  } finally {
    obj.close();
  }
}

/** Resolves when `predicate` holds, polling on timers (the event loop keeps running meanwhile). */
async function until(predicate: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('one record per program run arrives through the callback, in order', async () => {
  const fdsBefore = fdSnapshot();
  const { prog, events } = loadEventProgram();
  const records: Buffer[] = [];
  const ring = new RingBuffer(events, (rec) => records.push(rec));
  try {
    for (let i = 0; i < 5; i++) prog.testRun(frame(0));
    assert.equal(records.length, 0, 'records must come from the event loop, not synchronously');
    await until(() => records.length === 5, 3000, '5 ring buffer records');
    assert.deepEqual(records.map((r) => Number(r.readBigUInt64LE(0))), [0, 1, 2, 3, 4]);
    for (const r of records) {
      assert.equal(r.length, 16);
      assert.equal(r.readUInt32LE(8), 64);
    }
    // more records later still arrive
    prog.testRun(frame(0));
    await until(() => records.length === 6, 3000, 'a 6th record');
  } finally {
    ring.close();
    ring.close();
    prog.close();
    events.close();
  }
  assertNoFdLeak(fdsBefore, 'ring buffer');
});

test('close() inside the callback stops delivery safely', async () => {
  const { prog, events } = loadEventProgram();
  let calls = 0;
  const ring: RingBuffer = new RingBuffer(events, () => {
    calls++;
    ring.close();
  });
  try {
    for (let i = 0; i < 3; i++) prog.testRun(frame(0));
    await until(() => calls > 0, 3000, 'the first record');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(calls, 1);
    assert.equal(ring.closed, true);
  } finally {
    ring.close();
    prog.close();
    events.close();
  }
});

test('a callback exception surfaces from consume()', () => {
  const { prog, events } = loadEventProgram();
  const ring = new RingBuffer(events, () => {
    throw new Error('boom from onRecord');
  });
  try {
    prog.testRun(frame(0));
    assert.throws(() => ring.consume(), /boom from onRecord/);
  } finally {
    ring.close();
    prog.close();
    events.close();
  }
});

test('a callback exception from the event loop is an uncaught exception, not a silent crash', () => {
  // In a child process: the test runner treats uncaught exceptions of its own process as failures.
  const addon = path.join(repoRoot(), 'build', 'Release', 'xdplb_native.node');
  const script = `
    const n = require(${JSON.stringify(addon)});
    const h = n.objectLoad(${JSON.stringify(testdataObject('bridge'))}, {});
    const prog = n.objectProgramFd(h, 'xdp_event');
    const events = n.objectMapFd(h, 'events');
    process.on('uncaughtException', (e) => { console.log('uncaught: ' + e.message); process.exit(0); });
    setTimeout(() => { console.log('no exception'); process.exit(2); }, 3000);
    new n.RingBufferConsumer(events, () => { throw new Error('boom in callback'); }, 'events');
    const frame = Buffer.alloc(64);
    n.testRun(prog, frame, {}, 'xdp_event');
  `;
  const out = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 10_000 });
  assert.match(out, /uncaught: boom in callback/);
});

test('an unref()ed RingBuffer lets the process exit', () => {
  const addon = path.join(repoRoot(), 'build', 'Release', 'xdplb_native.node');
  const script = `
    const n = require(${JSON.stringify(addon)});
    const h = n.objectLoad(${JSON.stringify(testdataObject('bridge'))}, {});
    const ring = new n.RingBufferConsumer(n.objectMapFd(h, 'events'), () => {}, 'events');
    ring.unref();
    process.on('exit', () => console.log('exited'));
  `;
  const out = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 10_000 });
  assert.match(out, /exited/);
});

test('a RingBuffer on a map that is not a ring buffer is refused', () => {
  const map = BpfMap.create({ type: 'array', name: 'xlbt_br_notrb', keySize: 4, valueSize: 4, maxEntries: 1 });
  try {
    assert.throws(() => new RingBuffer(map, () => {}), /not ringbuf/);
  } finally {
    map.close();
  }
});
