/** Unit tests of BpfError (no kernel needed). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BpfError, bpfError } from './errors';

test('BpfError keeps every field and is an Error', () => {
  const err = new BpfError({ message: 'm', op: 'map lookup', errno: 2, code: 'ENOENT', hint: 'h', verifierLog: 'v' });
  assert.ok(err instanceof Error);
  assert.equal(err.name, 'BpfError');
  assert.deepEqual([err.message, err.op, err.errno, err.code, err.hint, err.verifierLog], ['m', 'map lookup', 2, 'ENOENT', 'h', 'v']);
  const bare = new BpfError({ message: 'm', op: 'o', errno: 1, code: 'EPERM' });
  assert.equal(bare.hint, undefined);
  assert.equal(bare.verifierLog, undefined);
});

test('bpfError builds the message from op, object, code and detail', () => {
  const err = bpfError('map update', "map 'x'", 'EINVAL', 'value must be 8 bytes, got 4');
  assert.equal(err.message, "map update map 'x': EINVAL (value must be 8 bytes, got 4)");
  assert.equal(err.errno, 22);
  assert.equal(err.code, 'EINVAL');
});
