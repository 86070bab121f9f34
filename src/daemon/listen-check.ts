/**
 * Start-up check of where the API may listen with the configured credentials (the policy is
 * src/config/secret-policy.ts): refuse to listen beyond loopback without a strong admin,
 * warn about weak secrets anywhere.
 */
import type { Logger } from 'pino';
import { XdplbError } from '../domain/errors';
import { verifySecretAsync } from '../config/config';
import type { Config } from '../config/schema';
import { evaluateListenPolicy, plainSecretVerdict, weakCandidatesFor, type AssessedAccount, type SecretKind } from '../config/secret-policy';

/**
 * Judges every user and token: by the verdict remembered when its plain text was loaded, or,
 * for admin secrets given only as hashes, by comparing the hash (scrypt, off the event loop)
 * with the known weak secrets and the entry's name. Hashed viewer secrets are not compared.
 */
export async function assessAccounts(config: Pick<Config, 'users' | 'tokens'>): Promise<AssessedAccount[]> {
  const entries: Array<{ kind: SecretKind; name: string; role: 'admin' | 'viewer'; hash: string | undefined }> = [
    ...config.users.map((u) => ({ kind: 'user' as const, name: u.name, role: u.role, hash: u.passwordHash })),
    ...config.tokens.map((t) => ({ kind: 'token' as const, name: t.name, role: t.role, hash: t.tokenHash })),
  ];
  return Promise.all(entries.map(async ({ kind, name, role, hash }) => {
    const what = kind === 'user' ? 'password' : 'token';
    if (hash === undefined) return { kind, name, role, weakness: `no ${what}` };
    const remembered = plainSecretVerdict(hash);
    if (remembered !== undefined || role !== 'admin') return { kind, name, role, weakness: remembered ?? null };
    const matches = await Promise.all(weakCandidatesFor(name).map((candidate) => verifySecretAsync(candidate, hash)));
    return { kind, name, role, weakness: matches.some(Boolean) ? `${what} is a well-known default or the name` : null };
  }));
}

/**
 * Logs a warning per weak account and throws when the policy refuses `listen` ("host:port").
 * @throws XdplbError XDPLB_ERR_VALIDATION (field /api/listen) with the policy's one-line reason.
 */
export async function enforceListenPolicy(listen: string, config: Pick<Config, 'users' | 'tokens'>, logger: Logger): Promise<void> {
  const verdict = evaluateListenPolicy(listen, await assessAccounts(config));
  for (const warning of verdict.warnings) logger.warn({ listen }, `weak credentials: ${warning}`);
  if (verdict.refusal) throw new XdplbError('XDPLB_ERR_VALIDATION', verdict.refusal, '/api/listen');
}
