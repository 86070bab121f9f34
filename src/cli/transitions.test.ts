/** `xdplb transitions` and the transition line of `xdplb service show`: the text operators read. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatTransitions, transitionLine, whenText } from './transitions';
import type { TransitionsView } from '../domain/types';

const NOW = Date.UTC(2026, 11, 5, 1, 0, 0);
const view: TransitionsView = {
  transitionSeconds: 60, nextSweepAt: NOW + 42_000, flowCache: true,
  services: [
    { service: 'web', tableSize: 65537, movedSlots: 16384, movedShare: 16384 / 65537, seenSlots: 120, youngSlots: 16384, since: NOW - 18_000 },
    { service: 'dns', tableSize: 13, movedSlots: 0, movedShare: 0, seenSlots: 0, youngSlots: 0, since: null },
  ],
};

test('times: UTC time of day and how far from now', () => {
  assert.equal(whenText(NOW - 18_000, NOW), '00:59:42 (18 s ago)');
  assert.equal(whenText(NOW + 42_000, NOW), '01:00:42 (in 42 s)');
  assert.equal(whenText(NOW, NOW), '01:00:00 (now)');
  assert.equal(whenText(null, NOW), '-');
});

test('the table: the schedule, a row per service, the total', () => {
  assert.equal(formatTransitions(view, NOW), [
    'sweep every 60 s (a mark lasts >= 120 s), next 01:00:42 (in 42 s)',
    'Service  Table  Moved  Share  Seen  Young  Since',
    'web      65537  16384  25.0%  120   16384  00:59:42 (18 s ago)',
    'dns      13     0      0.0%   0     0      -',
    '16384 moved slot(s): their packets consult the flow cache',
  ].join('\n'));
  const rest = formatTransitions({ ...view, nextSweepAt: null, flowCache: false, services: [view.services[1]] }, NOW);
  assert.match(rest, /^sweep every 60 s \(a mark lasts >= 120 s\), next none \(nothing moved\); flowCache off: the program ignores the marks/);
  assert.match(rest, /\nsteady state: no moved slots, no per-flow state$/);
  assert.match(formatTransitions({ ...view, services: [] }, NOW), /\nno services$/);
});

test('the line of `service show`', () => {
  assert.equal(transitionLine({ ...view.services[0], nextSweepAt: view.nextSweepAt }, NOW),
    'transition: 16384 of 65537 slots moved (25.0%), 120 seen since the last sweep, since 00:59:42 (18 s ago), next sweep 01:00:42 (in 42 s)');
  assert.equal(transitionLine({ ...view.services[1], nextSweepAt: null }, NOW), 'transition: none (steady state)');
});
