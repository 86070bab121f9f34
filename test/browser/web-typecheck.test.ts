// The dashboard imports the API's types from src/domain/types.ts, but Vite only strips
// types: this type-checks web/ (strict, DOM lib) so that a contract change that breaks the
// dashboard fails here instead of in a browser.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { repoRoot } from './repo-root';

test('web/ type-checks against the API contract', { timeout: 120_000 }, () => {
  const root = repoRoot();
  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const result = spawnSync(process.execPath, [tsc, '--noEmit', '-p', path.join(root, 'web', 'tsconfig.json')], { encoding: 'utf8', cwd: root });
  assert.equal(result.status, 0, `tsc -p web/tsconfig.json:\n${result.stdout}${result.stderr}`);
});
