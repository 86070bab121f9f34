import { test } from 'node:test';
import assert from 'node:assert/strict';
import { computeStatsView, StatsHistory, StatsSampler, type StatsLayout } from './stats-history';
import { REASONS, XDP_ACTIONS, type StatsSnapshot } from '../dataplane/types';

function snapshot(at: number, n: number): StatsSnapshot {
  const actions = Object.fromEntries(XDP_ACTIONS.map((a) => [a, { packets: 0, bytes: 0 }])) as StatsSnapshot['actions'];
  const reasons = Object.fromEntries(REASONS.map((r) => [r, { packets: 0, bytes: 0 }])) as StatsSnapshot['reasons'];
  actions.tx = { packets: 10 * n, bytes: 1000 * n };
  actions.pass = { packets: n, bytes: 60 * n };
  reasons.forwarded = { packets: 10 * n, bytes: 1000 * n };
  return {
    at, actions, reasons,
    services: { web: { fwdPackets: 10 * n, fwdBytes: 1000 * n, revPackets: 5 * n, revBytes: 300 * n } },
    backends: { web: { '198.18.1.11:80': { fwdPackets: 10 * n, fwdBytes: 1000 * n, revPackets: 5 * n, revBytes: 300 * n } } },
  };
}

const layout: StatsLayout = {
  services: [
    { name: 'web', backends: [{ key: '198.18.1.11:80', health: 'up' }, { key: '198.18.1.12:80', health: 'down' }] },
    { name: 'idle', backends: [] },
  ],
};

test('rates are counter differences over the elapsed time (bps in bits)', () => {
  const view = computeStatsView(snapshot(3000, 7), snapshot(1000, 3), layout);
  assert.equal(view.interval, 2);
  assert.deepEqual(view.totals, { pps: (11 * 7 - 11 * 3) / 2, bps: ((1060 * 7 - 1060 * 3) / 2) * 8, packets: 77, bytes: 7420 });
  const web = view.services[0];
  assert.equal(web.fwdPps, 20);
  assert.equal(web.fwdBps, 2000 * 8);
  assert.equal(web.revPps, 10);
  assert.equal(web.packets, 105);
  assert.deepEqual(web.backends.map((b) => [b.key, b.fwdPps, b.health]), [['198.18.1.11:80', 20, 'up'], ['198.18.1.12:80', 0, 'down']]);
  assert.deepEqual(view.services[1], { name: 'idle', fwdPps: 0, fwdBps: 0, revPps: 0, revBps: 0, packets: 0, bytes: 0, backends: [] });
  assert.deepEqual(view.actions.find((a) => a.name === 'tx'), { name: 'tx', pps: 20, packets: 70 });
  assert.equal(view.reasons.length, REASONS.length);
});

test('first sample has no rates; a reset counter counts from zero', () => {
  const first = computeStatsView(snapshot(1000, 5), null, layout);
  assert.equal(first.totals.pps, 0);
  assert.equal(first.totals.packets, 55);
  const afterReset = computeStatsView(snapshot(2000, 1), snapshot(1000, 5), layout);
  assert.equal(afterReset.services[0].fwdPps, 10);
});

test('a backend removed and added back between two samples (new data-plane id) counts from zero, never negative', () => {
  const withIds = (at: number, n: number, id: number): StatsSnapshot => ({ ...snapshot(at, n), backendIds: { web: { '198.18.1.11:80': id } } });
  // Re-added with a new id, and already past the old count: all of it is new (not 150 - 100).
  const passed = computeStatsView(withIds(2000, 15, 9), withIds(1000, 10, 3), layout);
  assert.equal(passed.services[0].backends[0].fwdPps, 150);
  assert.equal(passed.services[0].backends[0].revPps, 75);
  // Re-added and below the old count: the new count, not a negative rate.
  const below = computeStatsView(withIds(2000, 2, 9), withIds(1000, 10, 3), layout);
  assert.equal(below.services[0].backends[0].fwdPps, 20);
  // The same id: the ordinary difference.
  const same = computeStatsView(withIds(2000, 15, 3), withIds(1000, 10, 3), layout);
  assert.equal(same.services[0].backends[0].fwdPps, 50);
  for (const v of [passed, below, same]) for (const b of v.services[0].backends) assert.ok(b.fwdPps >= 0 && b.revPps >= 0);
});

test('history keeps the newest `capacity` samples and answers by seconds', () => {
  const history = new StatsHistory(5);
  for (let i = 1; i <= 8; i++) history.push(computeStatsView(snapshot(i * 1000, i), null, layout));
  assert.equal(history.size, 5);
  assert.deepEqual(history.last(3).map((v) => v.at), [6000, 7000, 8000]);
  assert.deepEqual(history.last(300).map((v) => v.at), [4000, 5000, 6000, 7000, 8000]);
  assert.deepEqual(history.last(0), []);
});

test('sampler computes against the previous snapshot and reports each view', () => {
  let n = 0;
  const seen: number[] = [];
  const sampler = new StatsSampler(() => { n++; return snapshot(n * 1000, n); }, () => layout, (v) => seen.push(v.services[0].fwdPps));
  sampler.sample();
  sampler.sample();
  sampler.sample();
  assert.deepEqual(seen, [0, 10, 10]);
  assert.equal(sampler.current().at, 3000);
  assert.equal(sampler.history.size, 3);
});
