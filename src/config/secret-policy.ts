/**
 * The minimum policy for passwords and API tokens, and the rule that uses it: the daemon does
 * not listen beyond loopback unless at least one admin (user or API token) has a secret that
 * passes (docs/config.md, "Who may listen where"). On loopback, weak secrets only warn.
 *
 * A plain secret is judged by its text when the config is loaded (config.ts remembers the
 * verdict under its hash); a hashed one can only be compared with the known weak secrets
 * below and its own name, which the daemon does with scrypt at start-up.
 */
import { isIP } from 'node:net';

export const MIN_PASSWORD_LENGTH = 12;
export const MIN_TOKEN_LENGTH = 20;
const MIN_DISTINCT_PASSWORD_CHARS = 5;
const MIN_DISTINCT_TOKEN_CHARS = 8;

/** Secrets nobody may rely on beyond loopback: defaults, the demo's, the tests', the classics. */
export const KNOWN_WEAK_SECRETS: readonly string[] = Object.freeze([
  'admin', 'administrator', 'root', 'password', 'password1', 'passw0rd', 'changeme', 'change-me', 'secret', 'default',
  'letmein', 'qwerty', '123456', '12345678', '123456789', '1234567890', 'xdplb', 'xdplb-admin',
  'xdplb-demo-admin', 'xdplb-demo-viewer', 'admin-pass', 'viewer-pass', 'adminadmin', 'admin123',
]);

export type SecretKind = 'user' | 'token';

/**
 * Why a plain secret fails the policy, or null when it passes: passwords need 12 characters
 * (tokens 20), 5 (tokens 8) different characters, must not be the entry's name and must not be
 * a known weak secret (case-insensitive).
 */
export function secretWeakness(kind: SecretKind, name: string, plain: string): string | null {
  const what = kind === 'user' ? 'password' : 'token';
  const lower = plain.toLowerCase();
  if (lower === name.toLowerCase()) return `${what} is the ${kind === 'user' ? 'user' : 'token'} name`;
  if (KNOWN_WEAK_SECRETS.includes(lower)) return `${what} is a well-known default`;
  const minLength = kind === 'user' ? MIN_PASSWORD_LENGTH : MIN_TOKEN_LENGTH;
  if ([...plain].length < minLength) return `${what} has fewer than ${minLength} characters`;
  const minDistinct = kind === 'user' ? MIN_DISTINCT_PASSWORD_CHARS : MIN_DISTINCT_TOKEN_CHARS;
  if (new Set(plain).size < minDistinct) return `${what} has fewer than ${minDistinct} different characters`;
  return null;
}

/** The candidates a hashed secret of `name` is compared with (it cannot be judged otherwise). */
export function weakCandidatesFor(name: string): string[] {
  return [...new Set([name, name.toLowerCase(), ...KNOWN_WEAK_SECRETS])];
}

// Verdicts on plain secrets, by the hash they were stored as (bounded: oldest forgotten first).
const MAX_REMEMBERED = 1000;
const plainVerdicts = new Map<string, string | null>();

/** Remembers the verdict on a plain secret under the hash config.ts stored it as. */
export function rememberPlainSecret(hash: string, kind: SecretKind, name: string, plain: string): void {
  plainVerdicts.delete(hash);
  plainVerdicts.set(hash, secretWeakness(kind, name, plain));
  for (const key of plainVerdicts.keys()) {
    if (plainVerdicts.size <= MAX_REMEMBERED) break;
    plainVerdicts.delete(key);
  }
}

/** The remembered verdict for a hash (string = weak, null = passes), or undefined when the plain text was never seen. */
export function plainSecretVerdict(hash: string): string | null | undefined {
  return plainVerdicts.get(hash);
}

/** True for a listen host that only this machine can reach: 127.0.0.0/8, ::1, localhost. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h === '::1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h;
  return isIP(v4) === 4 && v4.startsWith('127.');
}

export interface AssessedAccount {
  kind: SecretKind;
  name: string;
  role: 'admin' | 'viewer';
  /** Why its secret fails the policy, or null when it passes. */
  weakness: string | null;
}

export interface ListenVerdict {
  /** One line: why the daemon must not listen there, or null when it may. */
  refusal: string | null;
  /** One line each: weak secrets and settings worth fixing even where listening is allowed. */
  warnings: string[];
}

/**
 * The listen policy, a pure function of the listen address ("host:port") and the accounts:
 * beyond loopback (0.0.0.0, ::, any other address or name) at least one admin user or admin
 * token must pass the policy; every weak account is a warning.
 */
export function evaluateListenPolicy(listen: string, accounts: readonly AssessedAccount[]): ListenVerdict {
  const host = listen.slice(0, listen.lastIndexOf(':'));
  const label = (a: AssessedAccount) => `${a.kind === 'user' ? 'user' : 'token'} "${a.name}" (${a.role})`;
  const warnings = accounts.filter((a) => a.weakness !== null).map((a) => `${label(a)}: ${a.weakness}`);
  if (isLoopbackHost(host)) return { refusal: null, warnings };
  if (accounts.some((a) => a.role === 'admin' && a.weakness === null)) return { refusal: null, warnings };
  const admins = accounts.filter((a) => a.role === 'admin');
  const why = admins.length === 0 ? 'there is no admin user or admin token' : admins.map((a) => `${label(a)}: ${a.weakness}`).join('; ');
  return {
    refusal: `refusing to listen on ${listen} (beyond loopback) without an admin whose password has at least ${MIN_PASSWORD_LENGTH} characters `
      + `(or an admin token of at least ${MIN_TOKEN_LENGTH}) and is not a default or its name: ${why} (docs/config.md; or listen on 127.0.0.1)`,
    warnings,
  };
}
