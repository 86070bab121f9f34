import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { withBenchLock } from './lock';

test('withBenchLock serialises runs, releases on failure and takes over a stale lock', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'xlbb-lock-'));
  const file = path.join(dir, 'lock');
  try {
    const order: string[] = [];
    const a = withBenchLock(async () => { order.push('a start'); await new Promise((r) => setTimeout(r, 300)); order.push('a end'); }, { path: file });
    await new Promise((r) => setTimeout(r, 50));
    // Same process: a second holder is refused (a nested run would deadlock).
    await assert.rejects(withBenchLock(async () => undefined, { path: file }), /already held by this process/);
    await a;
    assert.deepEqual(order, ['a start', 'a end']);
    assert.equal(existsSync(file), false, 'released');

    await assert.rejects(withBenchLock(async () => { throw new Error('boom'); }, { path: file }), /boom/);
    assert.equal(existsSync(file), false, 'released after a failure');

    // A live other process holds it: we wait, then give up with its pid.
    const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 5000)']);
    try {
      writeFileSync(file, `${other.pid}\n`);
      let waitedFor = 0;
      await assert.rejects(withBenchLock(async () => undefined, { path: file, waitMs: 700, onWait: (pid) => { waitedFor = pid; } }),
        new RegExp(`pid ${other.pid}`));
      assert.equal(waitedFor, other.pid);
    } finally {
      other.kill('SIGKILL');
      await new Promise((r) => other.once('exit', r));
    }
    // Now its owner is gone: the lock is stale and taken over.
    assert.equal(await withBenchLock(async () => 42, { path: file }), 42);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
