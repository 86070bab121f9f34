/**
 * The folders of src/ are layers (docs/architecture.md): src/domain (types and the error
 * catalogue) is imported by every layer; the HTTP API (src/api) is imported only by the CLI,
 * whose daemon process (src/cli/daemon-process.ts) wires it to the daemon; and no two folders
 * import each other, directly or round a longer circle. Read from the sources (type-only
 * imports count: they tie the folders' designs together just the same).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { repoPath } from './paths';

/**
 * Edges that close a circle today and that another change removes. Each names where it is and
 * who removes it; delete the line when that lands.
 */
const KNOWN_CYCLE_EDGES: ReadonlyMap<string, string> = new Map([
]);

interface Import { from: string; to: string; specifier: string }

/** The folder under src/ a file belongs to ("api", "config"...), or its name for a file directly in src/. */
function layerOf(file: string, src: string): string {
  const parts = path.relative(src, file).split(path.sep);
  return parts.length === 1 ? parts[0].replace(/\.ts$/, '') : parts[0];
}

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [full] : [];
  });
}

/** Every relative import of `file` (import/export ... from, import(), require()). */
export function relativeImports(file: string, text: string): Array<{ specifier: string; target: string }> {
  const found: Array<{ specifier: string; target: string }> = [];
  const pattern = /(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*|^\s*import\s+)(['"])(\.{1,2}\/[^'"]*)\1/gm;
  for (const match of text.matchAll(pattern)) {
    found.push({ specifier: match[2], target: path.resolve(path.dirname(file), match[2]) });
  }
  return found;
}

function importsOf(src: string, include: (file: string) => boolean): Import[] {
  const out: Import[] = [];
  for (const file of sourceFiles(src).filter(include)) {
    for (const { specifier, target } of relativeImports(file, fs.readFileSync(file, 'utf8'))) {
      if (!target.startsWith(src + path.sep)) continue;
      out.push({ from: path.relative(src, file), to: path.relative(src, target), specifier });
    }
  }
  return out;
}

/** A circle of folders in `edges` ("a -> b" keys), as ["a", "b", "a"], or null. */
export function findCycle(edges: Iterable<string>): string[] | null {
  const next = new Map<string, string[]>();
  for (const edge of edges) {
    const [a, b] = edge.split(' -> ');
    next.set(a, [...(next.get(a) ?? []), b]);
  }
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (node: string): string[] | null => {
    if (state.get(node) === 'done') return null;
    if (state.get(node) === 'open') return [...stack.slice(stack.indexOf(node)), node];
    state.set(node, 'open');
    stack.push(node);
    for (const to of next.get(node) ?? []) {
      const cycle = visit(to);
      if (cycle) return cycle;
    }
    stack.pop();
    state.set(node, 'done');
    return null;
  };
  for (const node of [...next.keys()].sort()) {
    const cycle = visit(node);
    if (cycle) return cycle;
  }
  return null;
}

const SRC = repoPath('src');

test('only src/api and src/cli import from src/api (their test files too; test/ drives the API from outside)', () => {
  const offenders = importsOf(SRC, (file) => !['api', 'cli'].includes(layerOf(file, SRC)))
    .filter((i) => i.to.split(path.sep)[0] === 'api')
    .map((i) => `${i.from} imports ${i.specifier}`);
  assert.deepEqual(offenders, [], 'domain types and errors live in src/domain; the daemon process is wired in src/cli/daemon-process.ts');
});

test('src/domain imports only the types of the layers below it (bpf, dataplane), and the address codec', () => {
  const allowed = new Set(['domain', 'bpf', 'dataplane']);   // type-only: trace events, stats, program and map info
  // The one value it takes from below: the address text <-> bytes codec (a leaf without imports,
  // in src/dataplane because src/dataplane, which needs it, cannot import src/domain).
  const valueImports = new Set([path.join('dataplane', 'address-text')]);
  const domainFiles = (file: string) => layerOf(file, SRC) === 'domain';
  const offenders = importsOf(SRC, domainFiles)
    .filter((i) => !allowed.has(i.to.split(path.sep)[0]))
    .map((i) => `${i.from} imports ${i.specifier}`);
  assert.deepEqual(offenders, []);
  const values = sourceFiles(path.join(SRC, 'domain')).flatMap((file) => fs.readFileSync(file, 'utf8')
    .split('\n').filter((line) => /^import (?!type )/.test(line) && /from '\.\.\//.test(line))
    .map((line) => ({ file: path.relative(SRC, file), to: /from '\.\.\/([^']+)'/.exec(line)![1] })))
    .filter((i) => !i.file.endsWith('.test.ts') && !valueImports.has(i.to))
    .map((i) => `${i.file} imports a value from ../${i.to}`);
  assert.deepEqual(values, [], 'src/domain takes only types from below (and the address codec)');
  const codec = fs.readFileSync(path.join(SRC, 'dataplane', 'address-text.ts'), 'utf8');
  assert.deepEqual(relativeImports(path.join(SRC, 'dataplane', 'address-text.ts'), codec), [], 'the address codec is a leaf');
});

test('no circle of folders in src/ (test files aside)', (t) => {
  const edges = new Map<string, string>();
  for (const i of importsOf(SRC, (file) => !file.endsWith('.test.ts'))) {
    const a = layerOf(path.join(SRC, i.from), SRC);
    const b = layerOf(path.join(SRC, i.to), SRC);
    if (a !== b && !edges.has(`${a} -> ${b}`)) edges.set(`${a} -> ${b}`, `${i.from} imports ${i.specifier}`);
  }
  const checked = [...edges.keys()].filter((edge) => !KNOWN_CYCLE_EDGES.has(edge));
  for (const [edge, by] of KNOWN_CYCLE_EDGES) {
    if (!edges.has(edge)) t.diagnostic(`KNOWN_CYCLE_EDGES: "${edge}" is gone (${by}): delete its line`);
  }
  const cycle = findCycle(checked);
  const circle = cycle?.slice(1).map((to, n) => `${cycle[n]} -> ${to} (${edges.get(`${cycle[n]} -> ${to}`)})`);
  assert.equal(cycle, null, `a circle of folders: ${circle?.join(', ')}`);
  assert.ok(edges.size > 20, `the scan found the imports (${edges.size} folder edges)`);
});

test('the cycle finder finds circles, long and short, and passes a layered graph', () => {
  assert.deepEqual(findCycle(['a -> b', 'b -> a']), ['a', 'b', 'a']);
  assert.deepEqual(findCycle(['a -> b', 'b -> c', 'c -> a', 'c -> d']), ['a', 'b', 'c', 'a']);
  assert.equal(findCycle(['cli -> api', 'api -> domain', 'cli -> domain', 'config -> domain']), null);
  const imports = relativeImports('/r/src/x/y.ts', "import type { A } from '../api/types';\nexport { B } from './b';\nconst c = await import('../c');\nimport '../side';");
  assert.deepEqual(imports.map((i) => i.specifier), ['../api/types', './b', '../c', '../side']);
});
