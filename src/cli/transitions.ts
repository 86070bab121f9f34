/**
 * `xdplb transitions [service]`: the moved Maglev slots of each service (GET
 * /api/v1/transitions; docs/decisions.md "Stateless steady state"). A moved slot's packets
 * consult the flow cache until a sweep finds its earlier backends' flows quiet.
 */
import type { Command } from 'commander';
import type { ServiceTransitionView, TransitionsView } from '../domain/types';
import { withClientOptions, clientFrom, action, type ClientFlags } from './common';
import { formatTable, percent, printJson } from './output';

/** "12:30:05 (42 s ago)" / "(in 42 s)", in UTC; "-" for null. */
export function whenText(at: number | null, now: number): string {
  if (at === null) return '-';
  const s = Math.round((at - now) / 1000);
  return `${new Date(at).toISOString().slice(11, 19)} (${s < 0 ? `${-s} s ago` : s === 0 ? 'now' : `in ${s} s`})`;
}

/** The schedule line and one row per service. */
export function formatTransitions(view: TransitionsView, now = Date.now()): string {
  const moved = view.services.reduce((n, s) => n + s.movedSlots, 0);
  const head = `sweep every ${view.transitionSeconds} s (a mark lasts >= ${2 * view.transitionSeconds} s), next ${view.nextSweepAt === null ? 'none (nothing moved)' : whenText(view.nextSweepAt, now)}` +
    (view.flowCache ? '' : '; flowCache off: the program ignores the marks (purely stateless)');
  if (!view.services.length) return `${head}\nno services`;
  const rows = view.services.map((s) => [s.service, String(s.tableSize), String(s.movedSlots), percent(s.movedShare),
    String(s.seenSlots), String(s.youngSlots), whenText(s.since, now)]);
  const table = formatTable(['Service', 'Table', 'Moved', 'Share', 'Seen', 'Young', 'Since'], rows);
  return `${head}\n${table}\n${moved ? `${moved} moved slot(s): their packets consult the flow cache` : 'steady state: no moved slots, no per-flow state'}`;
}

/** One line for `service show`: "transition: 1234 of 65537 slots moved (1.9%) since ..., next sweep ...". */
export function transitionLine(one: ServiceTransitionView & { nextSweepAt: number | null }, now = Date.now()): string {
  if (!one.movedSlots) return 'transition: none (steady state)';
  return `transition: ${one.movedSlots} of ${one.tableSize} slots moved (${percent(one.movedShare)}), ${one.seenSlots} seen since the last sweep, ` +
    `since ${whenText(one.since, now)}, next sweep ${whenText(one.nextSweepAt, now)}`;
}

export function registerTransitionsCommand(program: Command): void {
  withClientOptions(program.command('transitions').description('moved Maglev slots per service (transitions after a backend change) and the sweep schedule')
    .argument('[service]', 'only this service'))
    .action(action(async (service: string | undefined, flags: ClientFlags) => {
      const client = clientFrom(flags);
      const view = await client.transitions();
      if (service !== undefined) {
        const one = view.services.find((s) => s.service === service);
        // The API's own error for an unknown service (404, one line).
        if (!one) await client.transition(service);
        view.services = one ? [one] : [];
      }
      if (flags.json) printJson(view); else console.log(formatTransitions(view));
    }));
}
