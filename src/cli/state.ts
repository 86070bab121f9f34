/**
 * `xdplb apply -f FILE [--dry-run]` and `xdplb diff -f FILE`: the desired state as a whole
 * (every service, and the settings the file names) through PUT /api/v1/state, printed as the
 * diff it made (or would make) and the Maglev disruption (share of each service's flows that
 * move). `xdplb state get` prints the running desired state as such a file.
 */
import fs from 'node:fs';
import { Command } from 'commander';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import type { StateApplyResult, StateDiff, StateDocument } from '../domain/types';
import { withClientOptions, clientFrom, action, type ClientFlags } from './common';
import { UsageError, printJson } from './output';

/**
 * Reads a state file (YAML or JSON; "-" = stdin): `services:` (every service) and optionally
 * `settings:`. The API validates the content.
 * @throws UsageError when the file cannot be read or is not a YAML mapping
 */
export function readStateFile(file: string): StateDocument {
  let text: string;
  try {
    text = fs.readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new UsageError(`${file} is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new UsageError(`${file} must hold a mapping with services: (and optionally settings:)`);
  return doc as StateDocument;
}

/** The diff as lines: + added, - removed, ~ changed (backends indented under their service). */
export function formatDiff(diff: StateDiff): string[] {
  const out: string[] = [];
  for (const name of diff.added) out.push(`+ service ${name}`);
  for (const name of diff.removed) out.push(`- service ${name}`);
  for (const c of diff.changed) {
    out.push(`~ service ${c.name}${c.fields.length ? `: ${c.fields.join(', ')} changed` : ''}`);
    for (const b of c.backends.added) out.push(`    + backend ${b}`);
    for (const b of c.backends.removed) out.push(`    - backend ${b}`);
    for (const b of c.backends.changed) {
      const parts: string[] = [];
      if (b.from.weight !== b.to.weight) parts.push(`weight ${b.from.weight} -> ${b.to.weight}`);
      if (b.from.drain !== b.to.drain) parts.push(b.to.drain ? 'drain' : 'undrain');
      out.push(`    ~ backend ${b.backend}: ${parts.join(', ')}`);
    }
  }
  for (const s of diff.settings) out.push(`~ settings ${s.field}: ${JSON.stringify(s.from)} -> ${JSON.stringify(s.to)}`);
  return out;
}

/** What `apply`/`diff` print: the diff, then the disruption per service. */
export function formatApplyResult(r: StateApplyResult): string {
  const lines = formatDiff(r.diff);
  if (lines.length === 0) return 'no changes: the running state already is the desired one';
  const head = r.dryRun ? 'dry run: nothing was changed; the change would be:' : r.applied ? 'applied:' : 'not applied:';
  const disruption = r.disruption.filter((d) => d.change !== 'none').map((d) => `  ${d.service}: ${d.moved === null
    ? (d.change === 'added' ? 'new service' : 'removed: every flow ends')
    : `${(d.moved * 100).toFixed(2)} % of flows move (M=${d.tableSize})`}`);
  return [head, ...lines, ...(disruption.length ? ['Maglev disruption (share of each service\'s flows that move to another backend):', ...disruption] : [])].join('\n');
}

export function registerStateCommands(program: Command): void {
  withClientOptions(program.command('apply')
    .description('make the desired state the one in a file (every service; settings it names), in one change; prints the diff and the Maglev disruption')
    .requiredOption('-f, --file <file>', 'state file (YAML or JSON; - = stdin): services: [...], settings: {...}')
    .option('--dry-run', 'only print the diff and the disruption; change nothing'))
    .action(action(async (flags: ClientFlags & { file: string; dryRun?: boolean }) => {
      const result = await clientFrom(flags).applyState(readStateFile(flags.file), !!flags.dryRun);
      if (flags.json) printJson(result); else console.log(formatApplyResult(result));
    }));

  withClientOptions(program.command('diff')
    .description('what `apply -f FILE` would change, and the Maglev disruption it would cause (changes nothing)')
    .requiredOption('-f, --file <file>', 'state file (YAML or JSON; - = stdin)'))
    .action(action(async (flags: ClientFlags & { file: string }) => {
      const result = await clientFrom(flags).applyState(readStateFile(flags.file), true);
      if (flags.json) printJson(result); else console.log(formatApplyResult(result));
    }));

  const state = program.command('state').description('the desired state as a whole');
  withClientOptions(state.command('get').description('print the running desired state as a state file (YAML; --json for JSON)'))
    .action(action(async (flags: ClientFlags) => {
      const doc = await clientFrom(flags).getState();
      if (flags.json) printJson(doc); else process.stdout.write(toYaml(doc));
    }));
}
