import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { hashSecret, parseConfigText } from '../config/config';
import { assessAccounts, enforceListenPolicy } from './listen-check';
import { startDaemon } from '../cli/daemon-process';
import { XdplbError } from '../domain/errors';

const silent = pino({ level: 'silent' });

function capture(): { logger: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => { lines.push(JSON.parse(line).msg); } });
  return { logger, lines };
}

describe('listen check at start-up', () => {
  test('plain secrets are judged by their text, hashed admin secrets against the known weak ones', async () => {
    const config = parseConfigText([
      'users:',
      '  - { name: admin, role: admin, password: admin }',
      '  - { name: one, role: admin, password: x }',
      '  - { name: demo, role: admin, passwordHash: "' + hashSecret('xdplb-demo-admin') + '" }',
      '  - { name: same, role: admin, passwordHash: "' + hashSecret('same') + '" }',
      '  - { name: good, role: admin, passwordHash: "' + hashSecret('a-long-unguessable-pass') + '" }',
      '  - { name: view, role: viewer, password: viewer-pass }',
      'tokens:',
      '  - { name: ci, role: admin, token: ci-token-0123456789abcdef }',
    ].join('\n'));
    const byName = Object.fromEntries((await assessAccounts(config)).map((a) => [a.name, a.weakness]));
    assert.match(byName.admin!, /user name/);
    assert.match(byName.one!, /fewer than 12/);
    assert.match(byName.demo!, /well-known default or the name/);
    assert.match(byName.same!, /well-known default or the name/);
    assert.equal(byName.good, null);
    assert.match(byName.view!, /well-known/);
    assert.equal(byName.ci, null);
  });

  test('refuses 0.0.0.0 with admin/admin, the demo password, a one-character password or no users; warns on loopback', async () => {
    const weakConfigs = [
      'users: [{ name: admin, role: admin, password: admin }]',
      'users: [{ name: admin, role: admin, password: xdplb-demo-admin }]',
      'users: [{ name: admin, role: admin, password: x }]',
      'users: [{ name: admin, role: admin, passwordHash: "' + hashSecret('admin') + '" }]',
      'users: []',
      'tokens: [{ name: ci, role: viewer, token: a-viewer-token-0123456789 }]',
    ];
    for (const text of weakConfigs) {
      // allowEmpty: 'users: []' alone configures nothing, which is refused before the policy.
      const config = parseConfigText(`${text}\nallowEmpty: true`);
      for (const listen of ['0.0.0.0:8720', '[::]:8720', '198.19.77.2:0']) {
        await assert.rejects(enforceListenPolicy(listen, config, silent), (error: XdplbError) => {
          assert.equal(error.code, 'XDPLB_ERR_VALIDATION');
          assert.equal(error.field, '/api/listen');
          assert.match(error.message, /^refusing to listen on /);
          return true;
        }, `${text} on ${listen}`);
      }
      const { logger, lines } = capture();
      await enforceListenPolicy('127.0.0.1:8720', config, logger);
      if (text.includes('name: admin')) assert.ok(lines.some((l) => /^weak credentials: /.test(l)), `${text}: ${lines.join(' | ')}`);
    }
    const strong = parseConfigText('users: [{ name: admin, role: admin, password: correct-horse-battery }]');
    await enforceListenPolicy('0.0.0.0:8720', strong, silent);
    await enforceListenPolicy('0.0.0.0:8720', parseConfigText('tokens: [{ name: t, role: admin, token: xlbt-dm-admin-token-0123456789 }]'), silent);
  });

  test('the daemon refuses before it touches the kernel', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xlbt-au-'));
    try {
      const configPath = path.join(dir, 'xdplb.yaml');
      fs.writeFileSync(configPath, 'api: { listen: "0.0.0.0:8771" }\nusers: [{ name: admin, role: admin, password: admin }]\n');
      const pinDir = path.join(dir, 'pins');
      await assert.rejects(startDaemon({ configPath, pinDir, logger: silent }), /refusing to listen on 0\.0\.0\.0:8771 \(beyond loopback\)/);
      assert.equal(fs.existsSync(pinDir), false, 'no data plane was loaded');
      await assert.rejects(startDaemon({ configPath, pinDir, logger: silent, listen: '198.19.77.2:8771' }), /refusing to listen on 198\.19\.77\.2:8771/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
