import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { evaluateListenPolicy, isLoopbackHost, secretWeakness, type AssessedAccount } from './secret-policy';

const strongAdmin: AssessedAccount = { kind: 'user', name: 'admin', role: 'admin', weakness: null };
const weakAdmin: AssessedAccount = { kind: 'user', name: 'admin', role: 'admin', weakness: 'password is the user name' };

describe('secretWeakness', () => {
  test('passwords: the issue\'s cases fail, a reasonable password passes', () => {
    assert.match(secretWeakness('user', 'admin', 'admin')!, /user name/);
    assert.match(secretWeakness('user', 'ops', 'Admin')!, /well-known/);
    assert.match(secretWeakness('user', 'admin', 'xdplb-demo-admin')!, /well-known/, 'the demo password');
    assert.match(secretWeakness('user', 'admin', 'x')!, /fewer than 12 characters/);
    assert.match(secretWeakness('user', 'admin', 'short-pass1')!, /fewer than 12/);
    assert.match(secretWeakness('user', 'admin', 'aaaaaaaaaaaaaaaa')!, /different characters/);
    assert.match(secretWeakness('user', 'admin', 'abababababab')!, /different characters/);
    assert.equal(secretWeakness('user', 'admin', 'correct horse battery'), null);
    assert.equal(secretWeakness('user', 'ui-admin', 'ui-admin-secret-1'), null);
    assert.equal(secretWeakness('user', 'admin', 'ünïcödé-pässwörd'), null);
    assert.match(secretWeakness('user', 'admin', '🔑🔑🔑🔑🔑🔑')!, /fewer than 12 characters/, 'characters, not UTF-16 units');
  });

  test('tokens need 20 characters', () => {
    assert.match(secretWeakness('token', 'ci', 'ci-token-0123456')!, /fewer than 20/);
    assert.equal(secretWeakness('token', 'ci', 'xlbt-dm-admin-token-0123456789'), null);
    assert.match(secretWeakness('token', 'ci', '0000000000000000000000000')!, /different characters/);
  });
});

describe('isLoopbackHost', () => {
  test('loopback and not', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', 'LOCALHOST', '::ffff:127.0.0.1']) assert.equal(isLoopbackHost(h), true, h);
    for (const h of ['0.0.0.0', '::', '[::]', '198.19.77.2', '10.0.0.1', 'lb.example', '128.0.0.1', '::2', 'localhost.example']) assert.equal(isLoopbackHost(h), false, h);
  });
});

describe('evaluateListenPolicy', () => {
  test('loopback: allowed whatever the accounts, with a warning per weak one', () => {
    assert.deepEqual(evaluateListenPolicy('127.0.0.1:8720', []), { refusal: null, warnings: [] });
    const verdict = evaluateListenPolicy('[::1]:8720', [weakAdmin]);
    assert.equal(verdict.refusal, null);
    assert.deepEqual(verdict.warnings, ['user "admin" (admin): password is the user name']);
  });

  test('beyond loopback: refused without a strong admin', () => {
    for (const listen of ['0.0.0.0:8720', '[::]:8720', '198.19.77.2:0', 'lb.example:8720']) {
      const none = evaluateListenPolicy(listen, []);
      assert.match(none.refusal!, new RegExp(`refusing to listen on ${listen.replace(/[[\]]/g, '\\$&')} .*there is no admin user or admin token`));
      assert.equal(none.refusal!.includes('\n'), false, 'one line');
      assert.match(evaluateListenPolicy(listen, [weakAdmin]).refusal!, /user "admin" \(admin\): password is the user name/);
      assert.match(evaluateListenPolicy(listen, [{ ...strongAdmin, role: 'viewer' }]).refusal!, /no admin/, 'a strong viewer is not enough');
      assert.equal(evaluateListenPolicy(listen, [weakAdmin, strongAdmin]).refusal, null);
      assert.equal(evaluateListenPolicy(listen, [{ kind: 'token', name: 'ci', role: 'admin', weakness: null }]).refusal, null, 'a strong admin token is enough');
    }
  });

  test('weak accounts warn even when a strong admin allows listening', () => {
    const verdict = evaluateListenPolicy('0.0.0.0:8720', [strongAdmin, { kind: 'user', name: 'viewer', role: 'viewer', weakness: 'password is a well-known default' }]);
    assert.equal(verdict.refusal, null);
    assert.deepEqual(verdict.warnings, ['user "viewer" (viewer): password is a well-known default']);
  });
});
