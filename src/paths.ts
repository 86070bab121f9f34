/** Files of this checkout, found the same way from src/ (tsx) and from dist/src/ (compiled). */
import fs from 'node:fs';
import path from 'node:path';

let cachedRoot: string | null = null;

/**
 * The repository root: the nearest directory above this module holding package.json.
 * @throws Error when there is no package.json above this file.
 */
export function repoRoot(): string {
  if (cachedRoot) return cachedRoot;
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`xdplb: no package.json above ${__dirname}`);
    dir = parent;
  }
  cachedRoot = dir;
  return dir;
}

/** Absolute path of a file of the checkout, e.g. repoPath('bpf/lb.o'). */
export function repoPath(relative: string): string {
  return path.join(repoRoot(), relative);
}
