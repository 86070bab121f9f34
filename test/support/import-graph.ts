/**
 * The import graph of the TypeScript sources under src/, read from the .ts files themselves
 * (type-only imports count: `import type` circles are circles for a reader too, though tsc
 * erases them from dist/), and its cycles: between modules, and between the folders of src/.
 */
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

/** module path relative to the root ("src/bench/http.ts") -> the modules it imports. */
export type ImportGraph = Map<string, Set<string>>;

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sourceFiles(p));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** The .ts file a relative specifier names, or null (packages, node: builtins, JSON). */
function resolve(fromFile: string, spec: string): string | null {
  if (!spec.startsWith('.')) return null;
  const base = path.resolve(path.dirname(fromFile), spec);
  for (const candidate of [`${base}.ts`, path.join(base, 'index.ts'), base]) {
    if (candidate.endsWith('.ts') && fs.existsSync(candidate) && fs.statSync(candidate).isFile()) return candidate;
  }
  return null;
}

/**
 * Every module under `root`/`dir` (tests excluded: a test may import what it tests from both
 * sides) with its imports of other modules there: import/export ... from, import type,
 * require() and import().
 */
export function importGraph(root: string, dir = 'src'): ImportGraph {
  const graph: ImportGraph = new Map();
  const files = sourceFiles(path.join(root, dir)).filter((f) => !f.endsWith('.test.ts'));
  for (const file of files) {
    const info = ts.preProcessFile(fs.readFileSync(file, 'utf8'), true, true);
    const deps = new Set<string>();
    for (const imported of info.importedFiles) {
      const target = resolve(file, imported.fileName);
      if (target && !target.endsWith('.test.ts')) deps.add(path.relative(root, target));
    }
    graph.set(path.relative(root, file), deps);
  }
  return graph;
}

/** The strongly connected components with more than one node (or a self-import), sorted. */
export function cycles(graph: Map<string, Set<string>>): string[][] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  // Tarjan, iterative (no recursion depth limit on a long chain).
  for (const start of graph.keys()) {
    if (index.has(start)) continue;
    const work: Array<{ node: string; next: Iterator<string> }> = [];
    const open = (node: string) => {
      index.set(node, counter);
      low.set(node, counter);
      counter++;
      stack.push(node);
      onStack.add(node);
      work.push({ node, next: (graph.get(node) ?? new Set<string>()).values() });
    };
    open(start);
    while (work.length) {
      const top = work[work.length - 1];
      const step = top.next.next();
      if (!step.done) {
        const dep = step.value;
        if (!index.has(dep)) open(dep);
        else if (onStack.has(dep)) low.set(top.node, Math.min(low.get(top.node)!, index.get(dep)!));
        continue;
      }
      work.pop();
      if (work.length) {
        const parent = work[work.length - 1].node;
        low.set(parent, Math.min(low.get(parent)!, low.get(top.node)!));
      }
      if (low.get(top.node) === index.get(top.node)) {
        const component: string[] = [];
        let node: string;
        do {
          node = stack.pop()!;
          onStack.delete(node);
          component.push(node);
        } while (node !== top.node);
        if (component.length > 1 || graph.get(top.node)?.has(top.node)) out.push(component.sort());
      }
    }
  }
  return out.sort((a, b) => a[0].localeCompare(b[0]));
}

/**
 * The folder of a module directly under dir ("src/bench/http.ts" -> "bench"); a module directly
 * in dir stands for itself ("src/cli.ts" -> "cli.ts": the entry point and a leaf utility are not
 * one layer).
 */
export function folderOf(module: string, dir = 'src'): string {
  return path.relative(dir, module).split(path.sep)[0];
}

/** The graph between the folders of `dir` (an edge for any import across two of them). */
export function folderGraph(graph: ImportGraph, dir = 'src'): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const [from, deps] of graph) {
    const a = folderOf(from, dir);
    if (!out.has(a)) out.set(a, new Set());
    for (const dep of deps) {
      const b = folderOf(dep, dir);
      if (a !== b) out.get(a)!.add(b);
    }
  }
  return out;
}

/** One import path from `from` to `to` in `graph` (breadth first), for messages; null when none. */
export function importPath(graph: Map<string, Set<string>>, from: string, to: string): string[] | null {
  const previous = new Map<string, string | null>([[from, null]]);
  const queue = [from];
  while (queue.length) {
    const node = queue.shift()!;
    for (const dep of graph.get(node) ?? []) {
      if (previous.has(dep)) continue;
      previous.set(dep, node);
      if (dep === to) {
        const route = [dep];
        for (let p = previous.get(dep); p != null; p = previous.get(p)) route.unshift(p);
        return route;
      }
      queue.push(dep);
    }
  }
  return null;
}
