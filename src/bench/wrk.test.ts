import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseWrkOutput } from './wrk';

test('parseWrkOutput reads the Lua hook line', () => {
  const out = 'Running 1s test\n  2 threads\nXLBB {"requests":2000,"durationUs":1000000,"p50":100,"p99":900,"p999":1500,"max":3000,"errors":1,"non2xx":0}\n';
  const r = parseWrkOutput(out);
  assert.equal(r.requests, 2000);
  assert.equal(r.requestsPerSecond, 2000);
  assert.deepEqual(r.latencyUs, { p50: 100, p99: 900, p999: 1500, max: 3000 });
  assert.equal(r.errors, 1);
});

test('parseWrkOutput names the problem when there is no result', () => {
  assert.throws(() => parseWrkOutput('unable to connect'), /no result/);
});
