// The services page's transition badge (GET /transitions, issue 14): a service whose Maglev
// slots moved recently (a backend added, drained, removed, reweighted) shows how much moved.
import type { ServiceTransitionView, TransitionsView } from './api-types';
import { formatPercent } from './format';

/** The badge of a service in a transition (null: none): "transition 25.0% moved" and a tooltip. */
export function transitionBadgeText(t: ServiceTransitionView | null, view: TransitionsView | null): { label: string; title: string } | null {
  if (!t || !view || t.movedSlots === 0) return null;
  const next = view.nextSweepAt === null ? '' : `; next sweep ${new Date(view.nextSweepAt).toLocaleTimeString()}`;
  return {
    label: `transition: ${formatPercent(t.movedShare)} moved`,
    title: `${t.movedSlots} of ${t.tableSize} Maglev slots moved since ${t.since === null ? '?' : new Date(t.since).toLocaleTimeString()}: ` +
      `their packets consult the flow cache so established connections keep their backend (${t.seenSlots} still seen)${next}` +
      (view.flowCache ? '' : '. flowCache is off: the program ignores the marks'),
  };
}
