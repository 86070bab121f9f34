import fs from 'node:fs';
import path from 'node:path';

/**
 * The repository root: the nearest ancestor of this file holding package.json, so that paths
 * work from test/browser/ (tsx) and from dist/test/browser/ (compiled).
 * @throws Error when no ancestor has a package.json.
 */
export function repoRoot(): string {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${__dirname}`);
    dir = parent;
  }
  return dir;
}
