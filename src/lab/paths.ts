/**
 * Where things are: the repository root (from src/ under tsx or from dist/src/ compiled), how to
 * start one of the lab's node scripts, and the lab's state directory.
 */
import path from 'node:path';
import { repoRoot } from '../paths';

export { repoRoot };


/**
 * The argv that runs one of the lab's scripts (a file beside this one, e.g. 'backend-server')
 * with the running node: compiled .js when we run from dist/, the .ts through tsx otherwise.
 * Run it with cwd = repoRoot() so that `--import tsx` resolves.
 */
export function nodeScriptCommand(script: string): string[] {
  if (__filename.endsWith('.ts')) return [process.execPath, '--import', 'tsx', path.join(__dirname, `${script}.ts`)];
  return [process.execPath, path.join(__dirname, `${script}.js`)];
}

/** The state directory of a lab: /run/xdplb-lab/<prefix> (tmpfs: a reboot forgets it with the namespaces). */
export function stateDir(prefix: string): string {
  return path.join(process.env.XDPLB_LAB_RUN_DIR ?? '/run/xdplb-lab', prefix);
}
