import { test } from 'node:test';
import assert from 'node:assert/strict';
import { summarize, percentile, ratio } from './stats';

test('summarize gives median and range of odd and even lists', () => {
  assert.deepEqual(summarize([3, 1, 2]), { median: 2, min: 1, max: 3, n: 3 });
  assert.deepEqual(summarize([4, 1, 3, 2]), { median: 2.5, min: 1, max: 4, n: 4 });
  assert.throws(() => summarize([]), /no values/);
  assert.throws(() => summarize([1, NaN]), /non-finite/);
});

test('percentile uses the nearest rank', () => {
  const values = Array.from({ length: 100 }, (_, i) => 100 - i);
  assert.equal(percentile(values, 50), 50);
  assert.equal(percentile(values, 99), 99);
  assert.equal(percentile(values, 100), 100);
  assert.equal(percentile([7], 0), 7);
  assert.throws(() => percentile(values, 101), /within 0..100/);
});

test('ratio is null when it cannot be computed', () => {
  assert.equal(ratio(6, 3), 2);
  assert.equal(ratio(1, 0), null);
  assert.equal(ratio(null, 2), null);
});
