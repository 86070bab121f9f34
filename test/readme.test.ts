/**
 * The README's first two commands, run verbatim: they are the only ones CI calls (.ci/run), and
 * they work as root without sudo and, for a user who is not root, through sudo when there is one
 * or with a one-line reason when there is none. (The demo itself runs verbatim in test/lab.test.ts;
 * the test command is what CI runs.)
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { repoRoot } from '../src/paths';
import { readmeCommands } from './support/readme';

const isRoot = process.getuid?.() === 0;

test('the README opens with exactly the demo and the test command, without sudo', () => {
  const { demo, test: testCmd, all } = readmeCommands();
  assert.deepEqual(all, [demo, testCmd]);
  assert.equal(demo, 'npm run demo');
  assert.equal(testCmd, 'npm test');
});

test('.ci/run runs exactly the README test command', () => {
  const ci = fs.readFileSync(path.join(repoRoot(), '.ci/run'), 'utf8');
  const commands = ci.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#') && !/^(set|cd) /.test(l));
  assert.deepEqual(commands, [readmeCommands().test]);
});

test('package.json declares the Node versions the suite runs on (20, 22, 24)', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot(), 'package.json'), 'utf8')) as { engines?: { node?: string } };
  assert.equal(pkg.engines?.node, '^20.19.0 || ^22.12.0 || ^24.0.0');
});

// The scripts run from a copy owned by an unprivileged user, so nothing of the real tree can change.
describe('the README commands as a user who is not root', { skip: isRoot ? false : 'needs root to run as another user' }, () => {
  function runAsNobody(command: string, withSudo: boolean): { status: number | null; output: string; sudoArgs: string | null } {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xlbt-readme-'));
    try {
      fs.copyFileSync(path.join(repoRoot(), 'package.json'), path.join(dir, 'package.json'));
      fs.cpSync(path.join(repoRoot(), 'scripts'), path.join(dir, 'scripts'), { recursive: true });
      const bin = path.join(dir, 'bin');
      fs.mkdirSync(bin);
      const record = path.join(dir, 'sudo-args');
      // A sudo that records how the script re-runs itself (it cannot grant root to this user).
      if (withSudo) fs.writeFileSync(path.join(bin, 'sudo'), `#!/bin/sh\nprintf '%s\\n' "$@" > '${record}'\n`, { mode: 0o755 });
      spawnSync('chown', ['-R', 'nobody', dir]);
      const nodeDir = path.dirname(process.execPath);
      const r = spawnSync('runuser', ['-u', 'nobody', '--', 'env', `HOME=${dir}`, `npm_config_cache=${dir}/.npm`,
        'npm_config_update_notifier=false', `PATH=${bin}:${nodeDir}:/usr/bin:/bin`, 'bash', '-c', command],
      { cwd: dir, encoding: 'utf8', timeout: 60_000 });
      return { status: r.status, output: r.stdout + r.stderr, sudoArgs: fs.existsSync(record) ? fs.readFileSync(record, 'utf8') : null };
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  for (const which of ['demo', 'test'] as const) {
    test(`${which}: without sudo, exits 1 with a one-line reason and starts nothing`, () => {
      const command = readmeCommands()[which];
      const r = runAsNobody(command, false);
      assert.equal(r.status, 1, r.output);
      assert.match(r.output, /needs root \(network namespaces, XDP, bpffs\): run it as root, or as a user who can use sudo/);
      assert.doesNotMatch(r.output, /setup:|apt-get|demo: setup/);
    });

    test(`${which}: with sudo, re-runs the same script under sudo with the caller's PATH`, () => {
      const command = readmeCommands()[which];
      const r = runAsNobody(command, true);
      assert.equal(r.status, 0, r.output);
      assert.match(r.output, /not root; re-running with sudo/);
      const args = r.sudoArgs?.trim().split('\n') ?? [];
      assert.equal(args[0], '-E');
      assert.equal(args[1], 'env');
      assert.match(args[2] ?? '', /^PATH=.*\/bin:/);
      assert.equal(args[3], 'bash');
      assert.match(args[4] ?? '', which === 'demo' ? /\/scripts\/demo\.sh$/ : /\/scripts\/test\.sh$/);
    });
  }
});
