// The dashboard's number formatting (web/src/format.ts), checked under Node: the screenshots
// are only as readable as these strings.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatBps, formatBytesRate, formatCount, formatEndpoint, formatNs, formatPercent, formatPps, formatProto, formatSi } from '../../web/src/format';

test('rates carry SI prefixes with three significant digits', () => {
  assert.equal(formatPps(0), '0 pps');
  assert.equal(formatPps(950), '950 pps');
  assert.equal(formatPps(1234), '1.23 kpps');
  assert.equal(formatPps(1_200_000), '1.2 Mpps');
  assert.equal(formatPps(14_880_952), '14.9 Mpps');
  assert.equal(formatBytesRate(3_400_000), '3.4 MB/s');
  assert.equal(formatBytesRate(999.7), '1 kB/s');
  assert.equal(formatSi(-2500, 'B'), '-2.5 kB');
  assert.equal(formatSi(Number.NaN), '—');
});

test('counters are exact below a million', () => {
  assert.equal(formatCount(1234567), '1.23 M');
  assert.equal(formatCount(999_999), '999,999');
  assert.equal(formatCount(0), '0');
});

test('durations, percentages, protocols, endpoints', () => {
  assert.equal(formatNs(null), '—');
  assert.equal(formatNs(7.25), '7.3 ns');
  assert.equal(formatNs(87), '87 ns');
  assert.equal(formatNs(1500), '1.50 µs');
  assert.equal(formatNs(2_300_000), '2.3 ms');
  assert.equal(formatPercent(0.125), '12.5 %');
  assert.equal(formatProto(6), 'tcp');
  assert.equal(formatProto(17), 'udp');
  assert.equal(formatProto(47), '47');
  assert.equal(formatEndpoint('198.18.0.10', 0, 'udp'), '198.18.0.10:*/udp');
  assert.equal(formatEndpoint('198.18.0.10', 80), '198.18.0.10:80');
});

test("the API's bits per second show as bytes per second", () => {
  assert.equal(formatBps(27_200_000), '3.4 MB/s');
  assert.equal(formatBps(8), '1 B/s');
});
