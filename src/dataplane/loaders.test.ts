/**
 * Every loader of bpf/lb.o takes its options from lbLoadOptions() (directly, or through
 * Dataplane.reloadOptions(), which calls it): a source scan of src/ and test/, so that a new
 * loader that builds its own options (and forgets a global or a map size) fails here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { repoRoot } from '../bpf';

const ROOT = repoRoot();

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
    const rel = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...sources(rel));
    else if (e.name.endsWith('.ts')) out.push(rel);
  }
  return out;
}

/** `BpfObject.load(object, options)` calls of a file: [line, object text, options text]. */
function loadCalls(text: string): Array<{ line: number; object: string; options: string }> {
  const out: Array<{ line: number; object: string; options: string }> = [];
  for (const m of text.matchAll(/BpfObject\.load\(/g)) {
    // The arguments up to the matching parenthesis, split at the top-level comma.
    let depth = 1;
    let i = m.index! + m[0].length;
    const start = i;
    let comma = -1;
    for (; i < text.length && depth > 0; i++) {
      const c = text[i];
      if (c === '(' || c === '{' || c === '[') depth++;
      else if (c === ')' || c === '}' || c === ']') depth--;
      else if (c === ',' && depth === 1 && comma < 0) comma = i;
    }
    const args = text.slice(start, i - 1);
    const cut = comma < 0 ? args.length : comma - start;
    out.push({ line: text.slice(0, m.index).split('\n').length, object: args.slice(0, cut).trim(), options: args.slice(cut + 1).trim() });
  }
  return out;
}

/** Whether `options` is built by lbLoadOptions(): a call of it or of reloadOptions(), or a variable assigned from one. */
function fromLbLoadOptions(options: string, text: string): boolean {
  if (/^(lbLoadOptions|[\w.!]*reloadOptions)\(/.test(options)) return true;
  if (!/^\w+$/.test(options)) return false;
  return new RegExp(`\\b(const|let)\\s+${options}\\s*=\\s*(lbLoadOptions|[\\w.!]*reloadOptions)\\(`).test(text);
}

test('every BpfObject.load of bpf/lb.o in src/ and test/ uses lbLoadOptions()', () => {
  const lbLoads: string[] = [];
  const bad: string[] = [];
  for (const file of [...sources('src'), ...sources('test')].filter((f) => f !== path.join('src', 'dataplane', 'loaders.test.ts'))) {
    const text = fs.readFileSync(path.join(ROOT, file), 'utf8');
    for (const call of loadCalls(text)) {
      // lb.o by name, through the harness's LB_OBJECT(), or a Dataplane's object path (default lb.o).
      if (!/lb\.o|LB_OBJECT|objectPath/.test(call.object)) continue;
      lbLoads.push(`${file}:${call.line}`);
      if (!fromLbLoadOptions(call.options, text)) bad.push(`${file}:${call.line} BpfObject.load(${call.object}, ${call.options.split('\n')[0]})`);
    }
  }
  assert.deepEqual(bad, [], 'loaders of lb.o that build their own options');
  // The loaders this scan must see (so that a rename cannot make it vacuous).
  for (const where of ['src/dataplane/dataplane.ts', 'src/daemon/kernel-driver.ts', 'test/datapath-target.ts']) {
    assert.ok(lbLoads.some((l) => l.startsWith(`${where}:`)), `${where} loads lb.o`);
  }
});

test('the scan sees an own-options loader', () => {
  const text = "const o = { globals: {} };\nBpfObject.load(path.join(root, 'bpf', 'lb.o'), o);\nBpfObject.load(LB_OBJECT(), lbLoadOptions({ hashSeed: 1, flowSets: 2 }));\n";
  const calls = loadCalls(text);
  assert.deepEqual(calls.map((c) => c.line), [2, 3]);
  assert.equal(fromLbLoadOptions(calls[0].options, text), false);
  assert.equal(fromLbLoadOptions(calls[1].options, text), true);
  assert.equal(fromLbLoadOptions('load', 'const load = lbLoadOptions({});'), true);
  assert.equal(fromLbLoadOptions('opts', 'const opts = dp!.reloadOptions();'), true);
});
