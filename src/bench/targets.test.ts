import { test } from 'node:test';
import assert from 'node:assert/strict';
import { forwardTargets, type ForwardCaseResult } from './forward';
import { httpTargets, type HttpCaseResult } from './http';
import { formatForward, formatHttp } from './format';
import type { Summary } from './stats';

const s = (median: number): Summary => ({ median, min: median, max: median, n: 1 });

function fwd(name: string, mpps: number, ns: number): ForwardCaseResult {
  return { name, label: name, reps: [], mpps: s(mpps), lbCpuNsPerPacket: s(ns), xdpRunNsPerPacket: null, lbCpuUtilisation: s(1) };
}

test('forward targets compare medians: Mpps ratios and inverted CPU-per-packet ratios', () => {
  const t = forwardTargets([fwd('xdplb-nat', 3, 100), fwd('xdp-fwd', 3, 95), fwd('nftables', 0.5, 700), fwd('iptables', 0.75, 400)]);
  const by = Object.fromEntries(t.map((x) => [x.description, x]));
  assert.equal(by['xdplb nat / xdp-fwd (Mpps)'].ratio, 1);
  assert.equal(by['xdplb nat / xdp-fwd (Mpps)'].met, true);
  assert.equal(by['xdp-fwd / xdplb nat (lb CPU per packet)'].ratio, 0.95);
  assert.equal(by['xdp-fwd / xdplb nat (lb CPU per packet)'].met, true);
  assert.equal(by['xdplb nat / nftables (Mpps)'].ratio, 6);
  assert.equal(by['xdplb nat / nftables (Mpps)'].met, true);
  assert.equal(by['xdplb nat / iptables (Mpps)'].ratio, 4);
  assert.equal(by['xdplb nat / iptables (Mpps)'].met, false);
  assert.equal(by['iptables / xdplb nat (lb CPU per packet)'].met, false);
});

test('forward targets are n/a, not failures, when a case did not run', () => {
  const t = forwardTargets([fwd('xdplb-nat', 3, 100)]);
  assert.ok(t.every((x) => x.ratio === null && x.met === null));
  assert.match(formatForward({
    kind: 'forward', reps: 1, packetsPerRep: 1, secondsPerRep: 1, flows: 1, frameBytes: 64, batchSize: 64,
    cpus: { generatorAndSink: 0, lb: 1 }, results: [fwd('xdplb-nat', 3, 100)], failures: [], targets: t, method: '',
  }), /xdplb nat \/ nftables \(Mpps\)\s+n\/a/);
});

function http(name: string, connection: 'keepalive' | 'close', rps: number): HttpCaseResult {
  return {
    name, label: name, connection, reps: [], requests: rps, seconds: 1, requestsPerSecond: rps,
    requestsPerSecondRange: { min: rps, max: rps }, latencyUs: { p50: 1, p99: 2, p999: 3, max: 4 }, errors: 0, non2xx: 0,
    lbCpuUsPerRequest: 1, lbCpuUtilisation: 0.5,
  };
}

test('http targets: xdplb >= 0.97x direct and >= 2x HAProxy per mode and connection', () => {
  const results = [http('xdplb-nat', 'keepalive', 970), http('direct', 'keepalive', 1000), http('haproxy', 'keepalive', 500),
    http('xdplb-nat', 'close', 100), http('direct', 'close', 200), http('haproxy', 'close', 100)];
  const by = Object.fromEntries(httpTargets(results).map((x) => [x.description, x]));
  assert.equal(by['xdplb nat / direct (keepalive)'].met, true);
  assert.ok(Math.abs(by['xdplb nat / haproxy (keepalive)'].ratio! - 1.94) < 1e-9);
  assert.equal(by['xdplb nat / haproxy (keepalive)'].met, false);
  assert.equal(by['xdplb nat / direct (close)'].met, false);
  assert.equal(by['xdplb dsr / direct (close)'].met, null);
  assert.match(formatHttp({ kind: 'http', reps: 1, seconds: 1, connections: 1, threads: 1, backends: 3, results, failures: [], targets: httpTargets(results), method: '' }),
    /xdplb-nat\s+keepalive\s+970 \[970-970\]/);
});

test('issue 14 target: xdplb-nat-tx at most 1.35x the reading XDP_TX forwarder up to 16384 flows, 1.5x beyond', () => {
  const results = [fwd('xdplb-nat-tx', 2.7, 140), fwd('xdp-fwd-read-tx', 2.7, 100)];
  const at = (flows: number) => forwardTargets(results, flows).find((x) => x.description.startsWith('xdplb-nat-tx / xdp-fwd-read-tx'))!;
  assert.deepEqual([at(16384).ratio, at(16384).goal, at(16384).met, at(16384).atMost], [1.4, 1.35, false, true]);
  assert.deepEqual([at(262144).goal, at(262144).met], [1.5, true]);
  const report = formatForward({
    kind: 'forward', reps: 1, packetsPerRep: 1, secondsPerRep: 1, flows: 16384, frameBytes: 64, batchSize: 64,
    cpus: { generatorAndSink: 0, lb: 1 }, results, failures: [], targets: forwardTargets(results, 16384), method: '',
  });
  assert.match(report, /xdplb-nat-tx \/ xdp-fwd-read-tx \(lb CPU per packet, 16384 flows\)\s+1\.40\s+<= 1\.35\s+MISSED/);
});
