import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { hashSecret } from '../config/config';
import { AuthStore, bearerFrom } from './auth';
import { XdplbError } from './errors';

const users = [
  { name: 'admin', role: 'admin' as const, passwordHash: hashSecret('admin-pass') },
  { name: 'viewer', role: 'viewer' as const, password: 'viewer-pass' },
];
const tokens = [{ name: 'ci', role: 'admin' as const, tokenHash: hashSecret('ci-token-0123456789abcdef') }];

function code(fn: () => unknown): string {
  try { fn(); } catch (error) { if (error instanceof XdplbError) return error.code; throw error; }
  return 'no error';
}

describe('AuthStore', () => {
  test('login returns a 32-byte hex session token that authenticates', () => {
    const auth = new AuthStore(users, tokens);
    const { token, user } = auth.login('admin', 'admin-pass');
    assert.match(token, /^[0-9a-f]{64}$/);
    assert.deepEqual(user, { name: 'admin', role: 'admin' });
    assert.deepEqual(auth.authenticate(token), { name: 'admin', role: 'admin' });
    assert.deepEqual(auth.login('viewer', 'viewer-pass').user.role, 'viewer', 'plain passwords work too');
  });

  test('wrong password or unknown user: UNAUTHENTICATED', () => {
    const auth = new AuthStore(users, tokens);
    assert.equal(code(() => auth.login('admin', 'nope')), 'XDPLB_ERR_UNAUTHENTICATED');
    assert.equal(code(() => auth.login('ghost', 'admin-pass')), 'XDPLB_ERR_UNAUTHENTICATED');
  });

  test('logout ends the session', () => {
    const auth = new AuthStore(users, tokens);
    const { token } = auth.login('admin', 'admin-pass');
    assert.equal(auth.logout(token), true);
    assert.equal(auth.authenticate(token), null);
    assert.equal(auth.logout(token), false);
  });

  test('sessions expire after the TTL', () => {
    let now = 1_000_000;
    const auth = new AuthStore(users, tokens, { now: () => now });
    const { token } = auth.login('admin', 'admin-pass');
    now += 12 * 3600 * 1000 - 1;
    assert.ok(auth.authenticate(token));
    now += 1;
    assert.equal(auth.authenticate(token), null);
  });

  test('configured API tokens authenticate; others do not', () => {
    const auth = new AuthStore(users, tokens);
    assert.deepEqual(auth.authenticate('ci-token-0123456789abcdef'), { name: 'ci', role: 'admin' });
    assert.deepEqual(auth.authenticate('ci-token-0123456789abcdef'), { name: 'ci', role: 'admin' }, 'cached path');
    assert.equal(auth.authenticate('ci-token-0123456789abcdeX'), null);
    assert.equal(auth.authenticate(''), null);
    assert.equal(auth.authenticate(undefined), null);
    assert.equal(auth.authenticate('x'.repeat(5000)), null);
  });

  test('update() ends sessions of removed users and forgets old tokens', () => {
    const auth = new AuthStore(users, tokens);
    const admin = auth.login('admin', 'admin-pass').token;
    const viewer = auth.login('viewer', 'viewer-pass').token;
    assert.ok(auth.authenticate('ci-token-0123456789abcdef'));
    auth.update([users[1]], []);
    assert.equal(auth.authenticate(admin), null);
    assert.ok(auth.authenticate(viewer));
    assert.equal(auth.authenticate('ci-token-0123456789abcdef'), null);
    auth.update([users[1]], [{ name: 'ci2', role: 'viewer', token: 'ci-token-0123456789abcdef' }]);
    assert.deepEqual(auth.authenticate('ci-token-0123456789abcdef'), { name: 'ci2', role: 'viewer' }, 'a rejection is forgotten on update');
  });

  test('too many failures for a name are rate limited', () => {
    const auth = new AuthStore(users, tokens, { maxFailuresPerMinute: 3 });
    for (let i = 0; i < 3; i++) assert.equal(code(() => auth.login('viewer', 'bad')), 'XDPLB_ERR_UNAUTHENTICATED');
    assert.equal(code(() => auth.login('viewer', 'viewer-pass')), 'XDPLB_ERR_RATE_LIMITED');
    assert.ok(auth.login('admin', 'admin-pass').token, 'other names are unaffected');
  });

  test('bearerFrom', () => {
    assert.equal(bearerFrom('Bearer abc'), 'abc');
    assert.equal(bearerFrom('bearer  abc '), 'abc');
    assert.equal(bearerFrom('Basic abc'), null);
    assert.equal(bearerFrom(undefined), null);
  });
});
