/**
 * Who is calling: users log in for 12-hour session tokens; scripts use API tokens from the
 * config. Only hashes are kept: sessions by SHA-256 of the token (random 32 bytes, so a fast
 * hash is enough), configured users and tokens by scrypt (see src/config/config.ts).
 *
 * scrypt runs on libuv's thread pool, at most `maxConcurrentHashes` at a time (the pool's other
 * threads keep serving file and DNS work), so logins never stall the event loop. Failed
 * attempts back off per client address and user name together (and, more loosely, per
 * address): someone guessing from one address cannot lock the owner out of another.
 * Revocation (logout, a changed password or role, a removed user or token) is announced to
 * onRevoke listeners, which is how open streams end within a second.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Role } from '../domain/types';
import { XdplbError } from '../domain/errors';
import { BackoffLimiter, addressKey } from './login-limiter';
import { hashPlainSecret, hashSecret, verifySecretAsync } from '../config/config';
import type { TokenEntry, UserEntry } from '../config/schema';

export interface Identity { name: string; role: Role }

export interface AuthStoreOptions {
  /** Session lifetime; default 12 h. */
  sessionTtlMs?: number;
  /** Failed logins of one user name from one client address before back-off starts; default 5. */
  freeFailures?: number;
  /** Failed logins from one client address, whatever the user names, before back-off starts; default 30. */
  freeFailuresPerAddress?: number;
  /** First back-off wait; doubles with each further failure. Default 1 s. */
  backoffBaseMs?: number;
  /** Longest back-off wait; default 15 min. */
  maxBackoffMs?: number;
  /** Most (address, user) and address entries the back-off remembers; default 10000 each. */
  maxLimiterEntries?: number;
  /** scrypt hashes computed at once; default 2 (libuv's pool has 4 threads). */
  maxConcurrentHashes?: number;
  /** Logins waiting for a hash slot; beyond it: XDPLB_ERR_RATE_LIMITED. Default 32. */
  maxQueuedHashes?: number;
  /** Live sessions of one user; a new login beyond it ends that user's oldest. Default 100. */
  maxSessionsPerUser?: number;
  /** Live sessions in all; default 10000 (100 users x 100, so no user's logins push out another's). */
  maxSessions?: number;
  /** Clock (ms), for tests. */
  now?: () => number;
}

/** XDPLB_ERR_RATE_LIMITED with the wait the server sends as Retry-After. */
export class RateLimitedError extends XdplbError {
  readonly retryAfterSeconds: number;
  constructor(message: string, retryAfterMs: number) {
    super('XDPLB_ERR_RATE_LIMITED', message);
    this.retryAfterSeconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
  }
}

interface Session { identity: Identity; expiresAt: number; credentialHash: string }
interface Credential { identity: Identity; hash: string }
interface VerifiedToken { identity: Identity; hash: string }

const SESSION_TTL_MS = 12 * 60 * 60 * 1000;
const MAX_SESSIONS = 10000;
const MAX_SESSIONS_PER_USER = 100;
const MAX_BEARER_LENGTH = 1024;
/** Limiter "user name" for bearer tokens: never a valid user name (see NAME_PATTERN). */
const BEARER_SUBJECT = '(bearer)';
// Verifying an unknown user name against this keeps login time independent of whether it exists.
let dummyHash: string | undefined;
function dummyHashOnce(): string {
  return (dummyHash ??= hashSecret(randomBytes(16).toString('hex')));
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

function credentialsFrom<T extends { name: string; role: Role }>(kind: string, entries: T[], hashOf: (e: T) => string | undefined, plainOf: (e: T) => string | undefined): Credential[] {
  return entries.map((entry) => {
    const plain = plainOf(entry);
    const hash = hashOf(entry) ?? (plain !== undefined ? hashPlainSecret(plain, `${kind}:${entry.name}`) : undefined);
    if (hash === undefined) throw new XdplbError('XDPLB_ERR_VALIDATION', `"${entry.name}" has no secret`);
    return { identity: { name: entry.name, role: entry.role }, hash };
  });
}

export class AuthStore {
  private users: Credential[] = [];
  private tokens: Credential[] = [];
  private readonly sessions = new Map<string, Session>();
  /** SHA-256 of API tokens already verified by scrypt -> identity (scrypt per request is too slow). */
  private readonly verifiedTokens = new Map<string, VerifiedToken>();
  /** SHA-256 of bearers that matched nothing: a client retrying a stale token costs no scrypt. */
  private readonly rejectedTokens = new Set<string>();
  /** Configured token hashes logged out in this process (until they leave the config). */
  private readonly revokedTokenHashes = new Set<string>();
  /**
   * SHA-256 of logged-out API token bearers -> the configured hash they matched: the bearer
   * stays refused even when another token entry holds the same secret, until that hash leaves
   * the config.
   */
  private readonly revokedBearers = new Map<string, string>();
  private readonly revokeListeners = new Set<() => void>();
  private readonly perUser: BackoffLimiter;
  private readonly perAddress: BackoffLimiter;
  private readonly ttl: number;
  private readonly now: () => number;
  private readonly maxHashes: number;
  private readonly maxQueued: number;
  private readonly maxSessionsPerUser: number;
  private readonly maxSessions: number;
  private activeHashes = 0;
  private readonly hashQueue: Array<() => void> = [];

  /** @throws XdplbError XDPLB_ERR_VALIDATION when an entry has neither a hash nor a plain secret. */
  constructor(users: UserEntry[] = [], tokens: TokenEntry[] = [], options: AuthStoreOptions = {}) {
    this.ttl = options.sessionTtlMs ?? SESSION_TTL_MS;
    this.now = options.now ?? Date.now;
    this.maxSessionsPerUser = options.maxSessionsPerUser ?? MAX_SESSIONS_PER_USER;
    this.maxSessions = options.maxSessions ?? MAX_SESSIONS;
    const backoff = { baseMs: options.backoffBaseMs, maxMs: options.maxBackoffMs, maxEntries: options.maxLimiterEntries, now: this.now };
    this.perUser = new BackoffLimiter({ ...backoff, free: options.freeFailures ?? 5 });
    this.perAddress = new BackoffLimiter({ ...backoff, free: options.freeFailuresPerAddress ?? 30 });
    this.maxHashes = options.maxConcurrentHashes ?? 2;
    this.maxQueued = options.maxQueuedHashes ?? 32;
    // Now, at start-up, rather than inside the first login of an unknown name (on the event loop).
    dummyHashOnce();
    this.update(users, tokens);
  }

  /**
   * Replaces the configured users and tokens (e.g. after a config reload). Sessions of users
   * that are gone, whose role changed or whose password hash changed end, as do verified
   * tokens that are gone or changed; open streams hear of it through onRevoke.
   */
  update(users: UserEntry[], tokens: TokenEntry[]): void {
    this.users = credentialsFrom('user', users, (u) => u.passwordHash, (u) => u.password);
    this.tokens = credentialsFrom('token', tokens, (t) => t.tokenHash, (t) => t.token);
    this.rejectedTokens.clear();
    let revoked = false;
    const userByName = new Map(this.users.map((u) => [u.identity.name, u]));
    for (const [key, session] of this.sessions) {
      const user = userByName.get(session.identity.name);
      if (!user || user.identity.role !== session.identity.role || user.hash !== session.credentialHash) {
        this.sessions.delete(key);
        revoked = true;
      }
    }
    const tokenByHash = new Map(this.tokens.map((t) => [t.hash, t.identity]));
    for (const [key, verified] of this.verifiedTokens) {
      const identity = tokenByHash.get(verified.hash);
      if (!identity || identity.name !== verified.identity.name || identity.role !== verified.identity.role) {
        this.verifiedTokens.delete(key);
        revoked = true;
      }
    }
    for (const hash of this.revokedTokenHashes) if (!tokenByHash.has(hash)) this.revokedTokenHashes.delete(hash);
    for (const [key, hash] of this.revokedBearers) if (!tokenByHash.has(hash)) this.revokedBearers.delete(key);
    if (revoked) this.announceRevocation();
  }

  /**
   * Checks a user's password (off the event loop) and opens a session. `address` is the
   * client's address: failures back off per address and user name together, and per address.
   * @throws XdplbError XDPLB_ERR_UNAUTHENTICATED on a wrong name or password (same message
   *   for both); RateLimitedError (XDPLB_ERR_RATE_LIMITED) while this address and name (or
   *   this address) must wait, or when too many logins are already waiting for a hash.
   */
  async login(name: string, password: string, clientAddress = ''): Promise<{ token: string; user: Identity }> {
    const address = addressKey(clientAddress);
    const userKey = `${address}\n${name}`;
    this.checkBackoff(userKey, address);
    const user = this.users.find((u) => u.identity.name === name);
    // Charged before hashing and refunded on success, so parallel guesses cannot outrun the count.
    this.perUser.fail(userKey);
    this.perAddress.fail(address);
    let ok: boolean;
    try {
      ok = (await this.withHashSlot(() => verifySecretAsync(password, user?.hash ?? dummyHashOnce()))) && user !== undefined;
    } catch (error) {
      this.perUser.refund(userKey);
      this.perAddress.refund(address);
      throw error;
    }
    if (!ok) throw new XdplbError('XDPLB_ERR_UNAUTHENTICATED', 'wrong user name or password');
    // The config may have changed while hashing: a user removed, or whose password or role
    // changed meanwhile, gets no session (update() could not end one that did not exist yet).
    const current = this.users.find((u) => u.identity.name === name);
    if (!current || current.hash !== user!.hash || current.identity.role !== user!.identity.role) {
      throw new XdplbError('XDPLB_ERR_UNAUTHENTICATED', 'wrong user name or password');
    }
    this.perUser.reset(userKey);
    this.perAddress.refund(address);
    const now = this.now();
    this.pruneSessions(now, name);
    const token = randomBytes(32).toString('hex');
    this.sessions.set(sha256(token), { identity: { ...user!.identity }, expiresAt: now + this.ttl, credentialHash: user!.hash });
    return { token, user: { ...user!.identity } };
  }

  /**
   * Ends what the bearer stands for: a session ends; a configured API token is revoked in this
   * process until the config's tokens change it or the daemon restarts (remove it from the
   * config to revoke it for good). Open streams of it close. Returns what was ended, or null.
   */
  logout(bearer: string): 'session' | 'token' | null {
    const key = sha256(bearer);
    if (this.sessions.delete(key)) {
      this.announceRevocation();
      return 'session';
    }
    const verified = this.verifiedTokens.get(key);
    if (!verified) return null;
    this.revokedTokenHashes.add(verified.hash);
    this.revokedBearers.set(key, verified.hash);
    for (const [k, v] of this.verifiedTokens) if (v.hash === verified.hash) this.verifiedTokens.delete(k);
    this.announceRevocation();
    return 'token';
  }

  /**
   * The identity behind a session or API token, or null when it is unknown, expired or revoked.
   * An API token seen for the first time is checked by scrypt off the event loop; unknown
   * bearers back off per client address like failed logins.
   * @throws RateLimitedError while `address` must wait after too many unknown bearers.
   */
  async authenticate(bearer: string | null | undefined, clientAddress = ''): Promise<Identity | null> {
    if (!bearer || bearer.length > MAX_BEARER_LENGTH) return null;
    const key = sha256(bearer);
    const known = this.identityFor(key);
    if (known) return known;
    if (this.rejectedTokens.has(key) || this.sessions.has(key) || this.revokedBearers.has(key)) return null;
    const candidates = this.tokens.filter((t) => !this.revokedTokenHashes.has(t.hash));
    if (candidates.length > 0) {
      const address = addressKey(clientAddress);
      const subject = `${address}\n${BEARER_SUBJECT}`;
      this.checkBackoff(subject, address);
      this.perUser.fail(subject);
      for (const token of candidates) {
        if (await this.withHashSlot(() => verifySecretAsync(bearer, token.hash))) {
          this.perUser.refund(subject);
          // The config may have changed while hashing: only a token still configured counts.
          if (!this.tokens.some((t) => t.hash === token.hash) || this.revokedTokenHashes.has(token.hash) || this.revokedBearers.has(key)) return null;
          this.verifiedTokens.set(key, { identity: token.identity, hash: token.hash });
          return { ...token.identity };
        }
      }
    }
    if (this.rejectedTokens.size >= MAX_SESSIONS) this.rejectedTokens.clear();
    this.rejectedTokens.add(key);
    return null;
  }

  /** The SHA-256 key under which a bearer is known (what open streams remember, not the bearer). */
  keyOf(bearer: string): string {
    return sha256(bearer);
  }

  /** True while the bearer with this key is a live session or a verified, unrevoked API token (no hashing). */
  isCurrent(key: string): boolean {
    return this.identityFor(key) !== null;
  }

  /** Calls `listener` after any revocation; returns the function that stops it. */
  onRevoke(listener: () => void): () => void {
    this.revokeListeners.add(listener);
    return () => { this.revokeListeners.delete(listener); };
  }

  /** Number of live sessions (for metrics). */
  sessionCount(): number {
    this.pruneSessions(this.now());
    return this.sessions.size;
  }

  private identityFor(key: string): Identity | null {
    const session = this.sessions.get(key);
    if (session) {
      if (session.expiresAt > this.now()) return { ...session.identity };
      this.sessions.delete(key);
      return null;
    }
    const verified = this.verifiedTokens.get(key);
    return verified ? { ...verified.identity } : null;
  }

  private checkBackoff(userKey: string, address: string): void {
    const wait = Math.max(this.perUser.retryAfter(userKey), this.perAddress.retryAfter(address));
    if (wait > 0) throw new RateLimitedError(`too many failed attempts from this address; try again in ${Math.ceil(wait / 1000)} s`, wait);
    if (this.activeHashes >= this.maxHashes && this.hashQueue.length >= this.maxQueued) {
      throw new RateLimitedError('too many logins in progress; try again in a second', 1000);
    }
  }

  /** Runs `hash` when one of the maxConcurrentHashes slots is free (FIFO). */
  private async withHashSlot<T>(hash: () => Promise<T>): Promise<T> {
    if (this.activeHashes >= this.maxHashes) {
      if (this.hashQueue.length >= this.maxQueued) throw new RateLimitedError('too many logins in progress; try again in a second', 1000);
      await new Promise<void>((resolve) => this.hashQueue.push(resolve));
    } else {
      this.activeHashes += 1;
    }
    try {
      return await hash();
    } finally {
      // Hand the slot straight to the next waiter (activeHashes stays), or free it.
      const next = this.hashQueue.shift();
      if (next) next(); else this.activeHashes -= 1;
    }
  }

  private announceRevocation(): void {
    for (const listener of this.revokeListeners) {
      try { listener(); } catch { /* a listener's failure must not stop the others */ }
    }
  }

  /**
   * Drops expired sessions; with `name`, makes room for one more session of that user: its own
   * oldest beyond its cap go (one account logging in again and again ends only its own sessions,
   * never the admin's), then, as a last memory bound, the oldest of all (insertion order).
   */
  private pruneSessions(now: number, name?: string): void {
    let own = 0;
    for (const [key, session] of this.sessions) {
      if (session.expiresAt <= now) this.sessions.delete(key);
      else if (session.identity.name === name) own++;
    }
    if (name === undefined) return;
    for (const [key, session] of this.sessions) {
      if (own < this.maxSessionsPerUser) break;
      if (session.identity.name === name) { this.sessions.delete(key); own--; }
    }
    for (const key of this.sessions.keys()) {
      if (this.sessions.size < this.maxSessions) break;
      this.sessions.delete(key);
    }
  }
}

/** The token in an `Authorization: Bearer <token>` header, or null. */
export function bearerFrom(header: string | undefined): string | null {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return match ? match[1] : null;
}
