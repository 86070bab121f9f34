/**
 * The two commands the README opens with (its first ```sh block), read from the README itself so
 * that tests run them verbatim: one runs the demo, one runs the whole test suite.
 */
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../../src/paths';

export interface ReadmeCommands { demo: string; test: string; all: string[] }

/** @throws Error when the README's first sh block is missing or does not hold both commands. */
export function readmeCommands(root = repoRoot()): ReadmeCommands {
  const text = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const block = /```sh\n([\s\S]*?)```/.exec(text);
  if (!block) throw new Error('README.md has no ```sh block');
  const all = block[1]!.split('\n').map((l) => l.replace(/#.*$/, '').trim()).filter(Boolean);
  const demo = all.find((c) => /\bdemo\b/.test(c));
  const test = all.find((c) => /\btest\b/.test(c));
  if (!demo || !test) throw new Error(`README.md's first sh block must hold the demo and the test command, has: ${all.join(' | ')}`);
  return { demo, test, all };
}
