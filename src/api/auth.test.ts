import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { hashSecret } from '../config/config';
import { AuthStore, RateLimitedError, bearerFrom } from './auth';
import { BackoffLimiter, addressKey } from './login-limiter';
import { XdplbError } from '../domain/errors';

const users = [
  { name: 'admin', role: 'admin' as const, passwordHash: hashSecret('admin-pass') },
  { name: 'viewer', role: 'viewer' as const, password: 'viewer-pass' },
];
const tokens = [{ name: 'ci', role: 'admin' as const, tokenHash: hashSecret('ci-token-0123456789abcdef') }];

async function code(fn: () => unknown): Promise<string> {
  try { await fn(); } catch (error) { if (error instanceof XdplbError) return error.code; throw error; }
  return 'no error';
}

describe('AuthStore', () => {
  test('login returns a 32-byte hex session token that authenticates', async () => {
    const auth = new AuthStore(users, tokens);
    const { token, user } = await auth.login('admin', 'admin-pass');
    assert.match(token, /^[0-9a-f]{64}$/);
    assert.deepEqual(user, { name: 'admin', role: 'admin' });
    assert.deepEqual(await auth.authenticate(token), { name: 'admin', role: 'admin' });
    assert.deepEqual((await auth.login('viewer', 'viewer-pass')).user.role, 'viewer', 'plain passwords work too');
  });

  test('wrong password or unknown user: UNAUTHENTICATED', async () => {
    const auth = new AuthStore(users, tokens);
    assert.equal(await code(() => auth.login('admin', 'nope')), 'XDPLB_ERR_UNAUTHENTICATED');
    assert.equal(await code(() => auth.login('ghost', 'admin-pass')), 'XDPLB_ERR_UNAUTHENTICATED');
  });

  test('logout ends the session', async () => {
    const auth = new AuthStore(users, tokens);
    const { token } = await auth.login('admin', 'admin-pass');
    assert.equal(auth.logout(token), 'session');
    assert.equal(await auth.authenticate(token), null);
    assert.equal(auth.logout(token), null);
  });

  test("one account logging in again and again ends only its own oldest sessions, never another user's", async () => {
    // 2 users x 3 = the whole table: the global bound alone would push the admin out.
    const auth = new AuthStore(users, tokens, { maxSessionsPerUser: 3, maxSessions: 6 });
    const admin = (await auth.login('admin', 'admin-pass')).token;
    const viewer: string[] = [];
    for (let i = 0; i < 12; i++) viewer.push((await auth.login('viewer', 'viewer-pass')).token);
    assert.deepEqual(await auth.authenticate(admin), { name: 'admin', role: 'admin' });
    // One client address per check: nine ended sessions in a row from one address would back off.
    const live = await Promise.all(viewer.map((t, i) => auth.authenticate(t, `198.18.0.${i + 1}`)));
    assert.deepEqual(live.map((id) => id !== null), [...Array(9).fill(false), true, true, true], 'the viewer keeps its 3 newest');
    assert.equal(auth.sessionCount(), 4);
  });

  test('logout of a configured API token revokes it until the config changes it', async () => {
    const auth = new AuthStore(users, tokens);
    const bearer = 'ci-token-0123456789abcdef';
    assert.ok(await auth.authenticate(bearer));
    let revocations = 0;
    auth.onRevoke(() => { revocations += 1; });
    assert.equal(auth.logout(bearer), 'token');
    assert.equal(revocations, 1);
    assert.equal(await auth.authenticate(bearer), null, 'revoked');
    assert.equal(auth.isCurrent(auth.keyOf(bearer)), false);
    auth.update(users, tokens);
    assert.equal(await auth.authenticate(bearer), null, 'a reload with the same token keeps it revoked');
    auth.update(users, [{ name: 'ci', role: 'admin', tokenHash: hashSecret(bearer) }]);
    assert.deepEqual(await auth.authenticate(bearer), { name: 'ci', role: 'admin' }, 'a newly configured token is valid');
  });

  test('logout of an API token revokes the bearer, also when another token entry holds the same secret', async () => {
    const secret = 'shared-token-0123456789abcdef';
    const twins = [
      { name: 'deploy', role: 'admin' as const, token: secret },
      { name: 'deploy-ro', role: 'viewer' as const, tokenHash: hashSecret(secret) },
    ];
    const auth = new AuthStore(users, twins);
    assert.deepEqual(await auth.authenticate(secret), { name: 'deploy', role: 'admin' });
    assert.equal(auth.logout(secret), 'token');
    assert.equal(await auth.authenticate(secret), null, 'the logged-out bearer came back as the other entry');
    auth.update(users, twins);
    assert.equal(await auth.authenticate(secret), null, 'a reload with the same tokens keeps it revoked');
    auth.update(users, [twins[1]]);
    assert.deepEqual(await auth.authenticate(secret), { name: 'deploy-ro', role: 'viewer' }, 'the config changed the tokens: it decides again');
  });

  test('sessions expire after the TTL', async () => {
    let now = 1_000_000;
    const auth = new AuthStore(users, tokens, { now: () => now });
    const { token } = await auth.login('admin', 'admin-pass');
    now += 12 * 3600 * 1000 - 1;
    assert.ok(await auth.authenticate(token));
    assert.equal(auth.isCurrent(auth.keyOf(token)), true);
    now += 1;
    assert.equal(auth.isCurrent(auth.keyOf(token)), false);
    assert.equal(await auth.authenticate(token), null);
  });

  test('configured API tokens authenticate; others do not', async () => {
    const auth = new AuthStore(users, tokens);
    assert.deepEqual(await auth.authenticate('ci-token-0123456789abcdef'), { name: 'ci', role: 'admin' });
    assert.deepEqual(await auth.authenticate('ci-token-0123456789abcdef'), { name: 'ci', role: 'admin' }, 'cached path');
    assert.equal(await auth.authenticate('ci-token-0123456789abcdeX'), null);
    assert.equal(await auth.authenticate(''), null);
    assert.equal(await auth.authenticate(undefined), null);
    assert.equal(await auth.authenticate('x'.repeat(5000)), null);
  });

  test('update() ends sessions of removed users and forgets old tokens', async () => {
    const auth = new AuthStore(users, tokens);
    const admin = (await auth.login('admin', 'admin-pass')).token;
    const viewer = (await auth.login('viewer', 'viewer-pass')).token;
    assert.ok(await auth.authenticate('ci-token-0123456789abcdef'));
    let revocations = 0;
    auth.onRevoke(() => { revocations += 1; });
    auth.update([users[1]], []);
    assert.equal(revocations, 1, 'announced once');
    assert.equal(await auth.authenticate(admin), null);
    assert.ok(await auth.authenticate(viewer));
    assert.equal(await auth.authenticate('ci-token-0123456789abcdef'), null);
    auth.update([users[1]], [{ name: 'ci2', role: 'viewer', token: 'ci-token-0123456789abcdef' }]);
    assert.deepEqual(await auth.authenticate('ci-token-0123456789abcdef'), { name: 'ci2', role: 'viewer' }, 'a rejection is forgotten on update');
  });

  test('a password change ends every session of that user, and only of that user', async () => {
    const auth = new AuthStore(users, tokens);
    const first = (await auth.login('admin', 'admin-pass')).token;
    const second = (await auth.login('admin', 'admin-pass', '198.18.0.9')).token;
    const viewer = (await auth.login('viewer', 'viewer-pass')).token;
    assert.ok(await auth.authenticate('ci-token-0123456789abcdef'));
    // A reload with the same hashes changes nothing.
    const hashed = [users[0], { name: 'viewer', role: 'viewer' as const, passwordHash: hashSecret('viewer-pass') }];
    auth.update(hashed, tokens);
    const viewerAgain = (await auth.login('viewer', 'viewer-pass')).token;
    auth.update(hashed, tokens);
    assert.ok(await auth.authenticate(first), 'unchanged hash: session stays');
    assert.ok(await auth.authenticate(viewerAgain));
    assert.equal(await auth.authenticate(viewer), null, 'the first reload changed the viewer\'s hash (plain -> hashed)');
    auth.update([{ ...users[0], passwordHash: hashSecret('new-admin-pass') }, hashed[1]], tokens);
    assert.equal(await auth.authenticate(first), null);
    assert.equal(await auth.authenticate(second), null);
    assert.ok(await auth.authenticate(viewerAgain), 'other users keep their sessions');
    assert.ok(await auth.authenticate('ci-token-0123456789abcdef'), 'unchanged tokens stay verified');
    assert.equal(await code(() => auth.login('admin', 'admin-pass')), 'XDPLB_ERR_UNAUTHENTICATED');
    assert.ok((await auth.login('admin', 'new-admin-pass')).token);
  });

  test('a login whose user is removed or whose password changes while it hashes opens no session', async () => {
    for (const change of [[], [{ ...users[0], passwordHash: hashSecret('changed-pass') }], [{ ...users[0], role: 'viewer' as const }]]) {
      const auth = new AuthStore(users, tokens);
      const pending = auth.login('admin', 'admin-pass');
      auth.update(change, tokens);   // a reload lands while scrypt runs on the thread pool
      const outcome = await pending.then((r) => r.token, (e: unknown) => (e instanceof XdplbError ? e.code : String(e)));
      if (/^[0-9a-f]{64}$/.test(outcome)) assert.equal(await auth.authenticate(outcome), null, `session of a revoked credential (${JSON.stringify(change)})`);
      else assert.equal(outcome, 'XDPLB_ERR_UNAUTHENTICATED');
    }
  });

  test('failures back off per address and user: the owner still logs in from elsewhere', async () => {
    let now = 5_000_000;
    const auth = new AuthStore(users, tokens, { freeFailures: 3, now: () => now });
    const attacker = '198.18.0.66';
    for (let i = 0; i < 3; i++) assert.equal(await code(() => auth.login('admin', 'guess', attacker)), 'XDPLB_ERR_UNAUTHENTICATED');
    assert.equal(await code(() => auth.login('admin', 'guess', attacker)), 'XDPLB_ERR_UNAUTHENTICATED', '4th: counted, then a wait');
    let limited: unknown;
    try { await auth.login('admin', 'admin-pass', attacker); } catch (error) { limited = error; }
    assert.ok(limited instanceof RateLimitedError, 'even the right password waits at that address');
    assert.equal(limited.retryAfterSeconds, 1);
    assert.ok((await auth.login('admin', 'admin-pass', '198.18.0.1')).token, 'the owner, from another address');
    assert.ok((await auth.login('viewer', 'viewer-pass', attacker)).token, 'another user from the same address');
    // Exponential: each further failure doubles the wait.
    now += 1000;
    assert.equal(await code(() => auth.login('admin', 'guess', attacker)), 'XDPLB_ERR_UNAUTHENTICATED');
    assert.equal(await code(() => auth.login('admin', 'admin-pass', attacker)), 'XDPLB_ERR_RATE_LIMITED');
    now += 1999;
    assert.equal(await code(() => auth.login('admin', 'admin-pass', attacker)), 'XDPLB_ERR_RATE_LIMITED');
    now += 1;
    assert.ok((await auth.login('admin', 'admin-pass', attacker)).token, 'after the wait the right password works');
    assert.equal(await code(() => auth.login('admin', 'guess', attacker)), 'XDPLB_ERR_UNAUTHENTICATED', 'a success resets the count');
  });

  test('many user names from one address back off too', async () => {
    const auth = new AuthStore(users, tokens, { freeFailures: 100, freeFailuresPerAddress: 4 });
    for (let i = 0; i < 5; i++) assert.equal(await code(() => auth.login(`user${i}`, 'x', '198.18.0.7')), 'XDPLB_ERR_UNAUTHENTICATED');
    assert.equal(await code(() => auth.login('admin', 'admin-pass', '198.18.0.7')), 'XDPLB_ERR_RATE_LIMITED');
    assert.ok((await auth.login('admin', 'admin-pass', '198.18.0.8')).token);
  });

  test('parallel guesses cannot outrun the count', async () => {
    const auth = new AuthStore(users, tokens, { freeFailures: 3, maxQueuedHashes: 100 });
    const results = await Promise.all(Array.from({ length: 12 }, () => code(() => auth.login('admin', 'guess', '198.18.0.5'))));
    assert.equal(results.filter((r) => r === 'XDPLB_ERR_UNAUTHENTICATED').length, 4, results.join());
    assert.equal(results.filter((r) => r === 'XDPLB_ERR_RATE_LIMITED').length, 8);
  });

  test('unknown bearers back off per address; known ones never hash again', async () => {
    const auth = new AuthStore(users, tokens, { freeFailures: 2 });
    for (let i = 0; i < 3; i++) assert.equal(await auth.authenticate(`unknown-bearer-${i}-0123456789`, '198.18.0.3'), null);
    assert.equal(await code(() => auth.authenticate('unknown-bearer-x-0123456789', '198.18.0.3')), 'XDPLB_ERR_RATE_LIMITED');
    assert.equal(await auth.authenticate('unknown-bearer-0-0123456789', '198.18.0.3'), null, 'a rejected bearer answers from the cache');
    assert.ok(await auth.authenticate('ci-token-0123456789abcdef', '198.18.0.4'));
  });

  test('concurrent hashes are bounded; beyond the queue: RATE_LIMITED', async () => {
    const auth = new AuthStore(users, tokens, { maxConcurrentHashes: 1, maxQueuedHashes: 2 });
    const results = await Promise.all(Array.from({ length: 5 }, (_, i) => code(() => auth.login('admin', 'guess', `198.18.1.${i}`))));
    assert.deepEqual(results.sort(), ['XDPLB_ERR_RATE_LIMITED', 'XDPLB_ERR_RATE_LIMITED', 'XDPLB_ERR_UNAUTHENTICATED', 'XDPLB_ERR_UNAUTHENTICATED', 'XDPLB_ERR_UNAUTHENTICATED']);
    assert.ok((await auth.login('admin', 'admin-pass', '198.18.1.0')).token, 'a refused-as-busy attempt was not counted as a failure');
  });

  test('bearerFrom', () => {
    assert.equal(bearerFrom('Bearer abc'), 'abc');
    assert.equal(bearerFrom('bearer  abc '), 'abc');
    assert.equal(bearerFrom('Basic abc'), null);
    assert.equal(bearerFrom(undefined), null);
  });
});

describe('addressKey', () => {
  test('IPv4 as is (also mapped), IPv6 by its /64', () => {
    assert.equal(addressKey('198.18.0.1'), '198.18.0.1');
    assert.equal(addressKey('::ffff:198.18.0.1'), '198.18.0.1');
    assert.equal(addressKey('2001:2:0:1:aaaa:bbbb:cccc:dddd'), '2001:2:0:1::/64');
    assert.equal(addressKey('2001:2:0:1::7'), '2001:2:0:1::/64');
    assert.equal(addressKey('2001:2::1'), '2001:2:0:0::/64');
    assert.equal(addressKey('2001:0002:0000:0001:0:0:0:1'), '2001:2:0:1::/64');
    assert.equal(addressKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
    assert.equal(addressKey('::1'), '0:0:0:0::/64');
    assert.equal(addressKey('64:ff9b::198.18.0.1'), '64:ff9b:0:0::/64');
    assert.equal(addressKey(''), '');
  });

  test('a client rotating through its IPv6 /64 is one client', async () => {
    const auth = new AuthStore(users, tokens, { freeFailures: 2 });
    for (let i = 1; i <= 3; i++) assert.equal(await code(() => auth.login('admin', 'guess', `2001:2:0:1::${i}`)), 'XDPLB_ERR_UNAUTHENTICATED');
    assert.equal(await code(() => auth.login('admin', 'admin-pass', '2001:2:0:1::99')), 'XDPLB_ERR_RATE_LIMITED');
    assert.ok((await auth.login('admin', 'admin-pass', '2001:2:0:2::1')).token, 'another /64 is another client');
  });
});

describe('BackoffLimiter', () => {
  test('free failures, then doubling waits up to the maximum; forgotten after the window', () => {
    let now = 0;
    const limiter = new BackoffLimiter({ free: 2, baseMs: 100, maxMs: 350, forgetMs: 10_000, now: () => now });
    limiter.fail('k'); limiter.fail('k');
    assert.equal(limiter.retryAfter('k'), 0);
    limiter.fail('k');
    assert.equal(limiter.retryAfter('k'), 100);
    limiter.fail('k');
    assert.equal(limiter.retryAfter('k'), 200);
    limiter.fail('k');
    assert.equal(limiter.retryAfter('k'), 350, 'capped');
    now += 10_001;
    assert.equal(limiter.retryAfter('k'), 0);
    assert.equal(limiter.size, 0, 'forgotten');
  });

  test('memory is bounded: the least recently failed keys go first', () => {
    const limiter = new BackoffLimiter({ maxEntries: 100 });
    for (let i = 0; i < 1000; i++) limiter.fail(`198.18.${i >> 8}.${i & 255}`);
    assert.equal(limiter.size, 100);
    limiter.fail('198.18.3.231');
    assert.equal(limiter.size, 100);
  });
});
