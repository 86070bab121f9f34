/**
 * The config file (YAML): load with precise error positions, save atomically, and the secret
 * hashing used for users' passwords and API tokens.
 */
import { createHmac, randomBytes, scrypt, scryptSync, timingSafeEqual } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Document, LineCounter, parseDocument, isMap, isPair, isScalar, isSeq, visit } from 'yaml';
import { XdplbError } from '../api/errors';
import { NAMED_SCHEMAS, ConfigSchema, type Config } from './schema';
import { validateState } from './state';
import { yamlNestingError } from './json';
import { rememberPlainSecret } from './secret-policy';

// ---------------------------------------------------------------------------------------------
// Secrets: scrypt$N$r$p$salt$hash (salt and hash base64url)

const SCRYPT_N = 16384;
const SCRYPT_R = 8;
const SCRYPT_P = 1;
const SCRYPT_KEYLEN = 32;

/** Hashes a password or token with scrypt and a random 16-byte salt: "scrypt$N$r$p$salt$hash". */
export function hashSecret(plain: string, salt: Buffer = randomBytes(16)): string {
  const hash = scryptSync(plain, salt, SCRYPT_KEYLEN, { N: SCRYPT_N, r: SCRYPT_R, p: SCRYPT_P });
  return ['scrypt', SCRYPT_N, SCRYPT_R, SCRYPT_P, salt.toString('base64url'), hash.toString('base64url')].join('$');
}

const plainSaltKey = randomBytes(32);
/**
 * hashSecret for a plain secret from a config file: within one process the same text of the
 * same entry hashes to the same string, so a reload that leaves a plain password alone is not
 * a password change (which would end that user's sessions). The salt is an HMAC under a random
 * per-process key: it reveals nothing about the secret and differs in every process.
 */
export function hashPlainSecret(plain: string, entry: string): string {
  return hashSecret(plain, createHmac('sha256', plainSaltKey).update(entry).update('\0').update(plain).digest().subarray(0, 16));
}

interface ScryptHash { N: number; r: number; p: number; salt: Buffer; expected: Buffer }

/** The parts of a hashSecret string, or null when it is malformed or its cost is out of range. */
function parseSecretHash(stored: string): ScryptHash | null {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return null;
  const [N, r, p] = parts.slice(1, 4).map(Number);
  // Bounds stop a config from making every check cost seconds or gigabytes.
  if (!Number.isInteger(N) || N < 2 || N > 1 << 20 || (N & (N - 1)) !== 0) return null;
  if (!Number.isInteger(r) || r < 1 || r > 32 || !Number.isInteger(p) || p < 1 || p > 16) return null;
  const salt = Buffer.from(parts[4], 'base64url');
  const expected = Buffer.from(parts[5], 'base64url');
  if (salt.length < 8 || expected.length < 16 || expected.length > 64) return null;
  return { N, r, p, salt, expected };
}

/**
 * True when `plain` matches a hash from hashSecret (compared in constant time). A malformed
 * hash, or one whose cost parameters are out of the sane range, never matches. Blocks the
 * event loop for the whole hash: servers use verifySecretAsync.
 */
export function verifySecret(plain: string, stored: string): boolean {
  const h = parseSecretHash(stored);
  if (!h) return false;
  let actual: Buffer;
  try {
    actual = scryptSync(plain, h.salt, h.expected.length, { N: h.N, r: h.r, p: h.p, maxmem: 256 * h.N * h.r + 1024 * 1024 });
  } catch {
    return false;
  }
  return timingSafeEqual(actual, h.expected);
}

/** verifySecret on libuv's thread pool: the event loop keeps serving while the hash runs. */
export async function verifySecretAsync(plain: string, stored: string): Promise<boolean> {
  const h = parseSecretHash(stored);
  if (!h) return false;
  const actual = await new Promise<Buffer | null>((resolve) => {
    scrypt(plain, h.salt, h.expected.length, { N: h.N, r: h.r, p: h.p, maxmem: 256 * h.N * h.r + 1024 * 1024 }, (err, key) => resolve(err ? null : key));
  });
  return actual !== null && timingSafeEqual(actual, h.expected);
}

/** Replaces plain `password:` / `token:` entries by their hashes (so they are never saved). */
function hashPlainSecrets(config: Config): Config {
  for (const user of config.users) {
    if (user.password !== undefined) {
      user.passwordHash = hashPlainSecret(user.password, `user:${user.name}`);
      rememberPlainSecret(user.passwordHash, 'user', user.name, user.password);
      delete user.password;
    }
  }
  for (const token of config.tokens) {
    if (token.token !== undefined) {
      token.tokenHash = hashPlainSecret(token.token, `token:${token.name}`);
      rememberPlainSecret(token.tokenHash, 'token', token.name, token.token);
      delete token.token;
    }
  }
  return config;
}

// ---------------------------------------------------------------------------------------------
// Loading

/** Splits a JSON pointer into its path segments (numbers for array indexes). */
function pointerSegments(pointer: string): Array<string | number> {
  if (!pointer) return [];
  return pointer.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~')).map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

/**
 * Parses and validates config text (YAML, or JSON which is YAML). Plain passwords and tokens
 * are hashed. `source` names the file in messages.
 * @throws XdplbError XDPLB_ERR_VALIDATION "source:line:col: ..." for YAML syntax errors;
 *   XDPLB_ERR_VALIDATION / XDPLB_ERR_CONFLICT with `field` (JSON pointer) and the line of
 *   the offending node for schema and semantic errors.
 */
export function parseConfigText(text: string, source = '<config>'): Config {
  // The YAML parser recurses per level: refuse pathological nesting before it runs.
  const deep = yamlNestingError(text);
  if (deep) throw new XdplbError('XDPLB_ERR_VALIDATION', `${source}:${deep.line}:${deep.col}: ${deep.reason}`);
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const error = doc.errors[0];
    const pos = error.linePos?.[0] ?? lineCounter.linePos(error.pos[0]);
    const reason = error.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
    throw new XdplbError('XDPLB_ERR_VALIDATION', `${source}:${pos.line}:${pos.col}: YAML syntax error: ${reason}`);
  }
  const data = doc.toJS({ maxAliasCount: 100 }) ?? {};
  try {
    return hashPlainSecrets(validateState(data));
  } catch (error) {
    if (!(error instanceof XdplbError) || error.field === undefined) throw error;
    // Point at the deepest node of the pointer that exists in the document.
    let segments = pointerSegments(error.field);
    let node: unknown;
    while (segments.length > 0 && !(node = doc.getIn(segments, true))) segments = segments.slice(0, -1);
    const range = (node as { range?: [number, number, number] } | undefined)?.range ?? (isScalar(doc.contents) ? undefined : doc.contents?.range);
    const where = range ? (({ line, col }) => `${source}:${line}:${col}`)(lineCounter.linePos(range[0])) : source;
    throw new XdplbError(error.code, `${where}: ${error.message}`, error.field, { cause: error });
  }
}

/**
 * Reads and validates a config file.
 * @throws XdplbError XDPLB_ERR_CONFIG_FILE when the file cannot be read; otherwise as
 *   parseConfigText.
 */
export function loadConfigFile(file: string): Config {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new XdplbError('XDPLB_ERR_CONFIG_FILE', `cannot read config file ${file}: ${(error as Error).message}`, undefined, { cause: error });
  }
  return parseConfigText(text, file);
}

// ---------------------------------------------------------------------------------------------
// Saving

type SchemaNode = { $ref?: string; properties?: Record<string, SchemaNode>; items?: SchemaNode | SchemaNode[] };
const schemasById = new Map(NAMED_SCHEMAS.map((s) => [String(s.$id), s as SchemaNode]));

/** A copy of `value` with object keys in the order the schema declares them (stable diffs). */
function orderLikeSchema(value: unknown, schema: SchemaNode | undefined): unknown {
  const resolved = schema?.$ref ? schemasById.get(schema.$ref.replace(/#$/, '')) : schema;
  if (Array.isArray(value)) {
    const items = Array.isArray(resolved?.items) ? undefined : resolved?.items;
    return value.map((item) => orderLikeSchema(item, items));
  }
  if (value === null || typeof value !== 'object') return value;
  const props = resolved?.properties ?? {};
  const record = value as Record<string, unknown>;
  const keys = [...Object.keys(props).filter((k) => k in record), ...Object.keys(record).filter((k) => !(k in props))];
  return Object.fromEntries(keys.map((k) => [k, orderLikeSchema(record[k], props[k])]));
}

/** Lists whose items read best on one line each. */
const FLOW_ITEM_LISTS = new Set(['interfaces', 'backends', 'users', 'tokens']);

/** The YAML text for a config (plain secrets are hashed first; keys in schema order). */
export function formatConfig(config: Config): string {
  const copy = orderLikeSchema(hashPlainSecrets(structuredClone(config)), ConfigSchema as SchemaNode);
  const doc = new Document(copy);
  visit(doc, {
    Pair(_key, pair) {
      if (isPair(pair) && isScalar(pair.key) && FLOW_ITEM_LISTS.has(String(pair.key.value)) && isSeq(pair.value)) {
        for (const item of pair.value.items) if (isMap(item)) item.flow = true;
      }
      if (isPair(pair) && isScalar(pair.key) && ['maglev', 'sampling', 'api', 'healthCheck'].includes(String(pair.key.value)) && isMap(pair.value)) {
        pair.value.flow = true;
      }
    },
  });
  return `# xdplb config (docs/config.md). Written by xdplb; comments are not kept.\n${doc.toString({ lineWidth: 0 })}`;
}

/**
 * Validates and writes a config atomically: a temporary file in the same directory is
 * written, fsynced and renamed over the target, then the directory is fsynced, so a reader
 * (or a crash) sees either the old or the new file, never half of one.
 * @throws XdplbError VALIDATION / CONFLICT when the config is invalid (nothing is written);
 *   XDPLB_ERR_CONFIG_FILE when writing fails (the temporary file is removed).
 */
export function saveConfigFile(file: string, config: Config): void {
  const text = formatConfig(validateState(config));
  const dir = path.dirname(path.resolve(file));
  const temp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  let fd: number | undefined;
  try {
    let mode = 0o600;
    try { mode = fs.statSync(file).mode & 0o777; } catch { /* new file: private, it holds hashes */ }
    fd = fs.openSync(temp, 'wx', mode);
    fs.writeFileSync(fd, text);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(temp, file);
    const dirFd = fs.openSync(dir, 'r');
    try { fs.fsyncSync(dirFd); } finally { fs.closeSync(dirFd); }
  } catch (error) {
    if (fd !== undefined) fs.closeSync(fd);
    fs.rmSync(temp, { force: true });
    throw new XdplbError('XDPLB_ERR_CONFIG_FILE', `cannot write config file ${file}: ${(error as Error).message}`, undefined, { cause: error });
  }
}
