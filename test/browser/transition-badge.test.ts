// The services page's transition badge (web/src/transition-badge.ts), checked under Node.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { transitionBadgeText } from '../../web/src/transition-badge';
import type { TransitionsView } from '../../src/domain/types';

const view: TransitionsView = {
  transitionSeconds: 60, nextSweepAt: Date.UTC(2026, 11, 5, 1, 0, 42), flowCache: true,
  services: [{ service: 'web', tableSize: 65537, movedSlots: 16384, movedShare: 16384 / 65537, seenSlots: 120, youngSlots: 16384, since: Date.UTC(2026, 11, 5, 0, 59, 42) }],
};

test('a service in a transition: its moved share, and the counts and times in the tooltip', () => {
  const text = transitionBadgeText(view.services[0], view)!;
  assert.equal(text.label, 'transition: 25.0 % moved');
  assert.match(text.title, /^16384 of 65537 Maglev slots moved since .+: their packets consult the flow cache .*\(120 still seen\); next sweep .+$/);
  assert.match(transitionBadgeText(view.services[0], { ...view, flowCache: false })!.title, /flowCache is off/);
});

test('no badge at rest or without a view', () => {
  assert.equal(transitionBadgeText({ ...view.services[0], movedSlots: 0, movedShare: 0 }, view), null);
  assert.equal(transitionBadgeText(null, view), null);
  assert.equal(transitionBadgeText(view.services[0], null), null);
});
