/**
 * Who is calling: users log in for 12-hour session tokens; scripts use API tokens from the
 * config. Only hashes are kept: sessions by SHA-256 of the token (random 32 bytes, so a fast
 * hash is enough), configured users and tokens by scrypt (see src/config/config.ts).
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Role } from './controller';
import { XdplbError } from './errors';
import { hashSecret, verifySecret } from '../config/config';
import type { TokenEntry, UserEntry } from '../config/schema';

export interface Identity { name: string; role: Role }

export interface AuthStoreOptions {
  /** Session lifetime; default 12 h. */
  sessionTtlMs?: number;
  /** Failed logins per user name within a minute before XDPLB_ERR_RATE_LIMITED; default 10. */
  maxFailuresPerMinute?: number;
  /** Clock (ms), for tests. */
  now?: () => number;
}

interface Session { identity: Identity; expiresAt: number }
interface Credential { identity: Identity; hash: string }

const SESSION_TTL_MS = 12 * 60 * 60 * 1000;
const MAX_SESSIONS = 10000;
const MAX_BEARER_LENGTH = 1024;
// Verifying an unknown user name against this keeps login time independent of whether it exists.
let dummyHash: string | undefined;
function dummyHashOnce(): string {
  return (dummyHash ??= hashSecret(randomBytes(16).toString('hex')));
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

function credentialsFrom<T extends { name: string; role: Role }>(entries: T[], hashOf: (e: T) => string | undefined, plainOf: (e: T) => string | undefined): Credential[] {
  return entries.map((entry) => {
    const plain = plainOf(entry);
    const hash = hashOf(entry) ?? (plain !== undefined ? hashSecret(plain) : undefined);
    if (hash === undefined) throw new XdplbError('XDPLB_ERR_VALIDATION', `"${entry.name}" has no secret`);
    return { identity: { name: entry.name, role: entry.role }, hash };
  });
}

export class AuthStore {
  private users: Credential[] = [];
  private tokens: Credential[] = [];
  private readonly sessions = new Map<string, Session>();
  /** SHA-256 of API tokens already verified by scrypt -> identity (scrypt per request is too slow). */
  private readonly verifiedTokens = new Map<string, Identity>();
  /** SHA-256 of bearers that matched nothing: a client retrying a stale token costs no scrypt. */
  private readonly rejectedTokens = new Set<string>();
  private readonly failures = new Map<string, number[]>();
  private readonly ttl: number;
  private readonly maxFailures: number;
  private readonly now: () => number;

  /** @throws XdplbError XDPLB_ERR_VALIDATION when an entry has neither a hash nor a plain secret. */
  constructor(users: UserEntry[] = [], tokens: TokenEntry[] = [], options: AuthStoreOptions = {}) {
    this.ttl = options.sessionTtlMs ?? SESSION_TTL_MS;
    this.maxFailures = options.maxFailuresPerMinute ?? 10;
    this.now = options.now ?? Date.now;
    this.update(users, tokens);
  }

  /**
   * Replaces the configured users and tokens (e.g. after a config reload). Sessions of users
   * that are gone or whose role changed end.
   */
  update(users: UserEntry[], tokens: TokenEntry[]): void {
    this.users = credentialsFrom(users, (u) => u.passwordHash, (u) => u.password);
    this.tokens = credentialsFrom(tokens, (t) => t.tokenHash, (t) => t.token);
    this.verifiedTokens.clear();
    this.rejectedTokens.clear();
    for (const [key, session] of this.sessions) {
      const user = this.users.find((u) => u.identity.name === session.identity.name);
      if (!user || user.identity.role !== session.identity.role) this.sessions.delete(key);
    }
  }

  /**
   * Checks a user's password and opens a session.
   * @throws XdplbError XDPLB_ERR_UNAUTHENTICATED on a wrong name or password (same message
   *   for both); XDPLB_ERR_RATE_LIMITED after too many failures for that name in a minute.
   */
  login(name: string, password: string): { token: string; user: Identity } {
    const now = this.now();
    const recent = (this.failures.get(name) ?? []).filter((t) => now - t < 60_000);
    if (recent.length >= this.maxFailures) throw new XdplbError('XDPLB_ERR_RATE_LIMITED');
    const user = this.users.find((u) => u.identity.name === name);
    const ok = verifySecret(password, user?.hash ?? dummyHashOnce()) && user !== undefined;
    if (!ok) {
      recent.push(now);
      if (this.failures.size > MAX_SESSIONS) this.failures.clear();
      this.failures.set(name, recent);
      throw new XdplbError('XDPLB_ERR_UNAUTHENTICATED', 'wrong user name or password');
    }
    this.failures.delete(name);
    this.pruneSessions(now);
    const token = randomBytes(32).toString('hex');
    this.sessions.set(sha256(token), { identity: { ...user.identity }, expiresAt: now + this.ttl });
    return { token, user: { ...user.identity } };
  }

  /** Ends a session; true when it existed. API tokens cannot be logged out. */
  logout(token: string): boolean {
    return this.sessions.delete(sha256(token));
  }

  /** The identity behind a session or API token, or null when it is unknown or expired. */
  authenticate(bearer: string | null | undefined): Identity | null {
    if (!bearer || bearer.length > MAX_BEARER_LENGTH) return null;
    const key = sha256(bearer);
    const session = this.sessions.get(key);
    if (session) {
      if (session.expiresAt > this.now()) return { ...session.identity };
      this.sessions.delete(key);
      return null;
    }
    const cached = this.verifiedTokens.get(key);
    if (cached) return { ...cached };
    if (this.rejectedTokens.has(key)) return null;
    for (const token of this.tokens) {
      if (verifySecret(bearer, token.hash)) {
        this.verifiedTokens.set(key, token.identity);
        return { ...token.identity };
      }
    }
    if (this.rejectedTokens.size >= MAX_SESSIONS) this.rejectedTokens.clear();
    this.rejectedTokens.add(key);
    return null;
  }

  /** Number of live sessions (for metrics). */
  sessionCount(): number {
    this.pruneSessions(this.now());
    return this.sessions.size;
  }

  private pruneSessions(now: number): void {
    for (const [key, session] of this.sessions) if (session.expiresAt <= now) this.sessions.delete(key);
    // Bound memory: drop the oldest sessions first (Map keeps insertion order).
    for (const key of this.sessions.keys()) {
      if (this.sessions.size < MAX_SESSIONS) break;
      this.sessions.delete(key);
    }
  }
}

/** The token in an `Authorization: Bearer <token>` header, or null. */
export function bearerFrom(header: string | undefined): string | null {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return match ? match[1] : null;
}
