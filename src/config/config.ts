/**
 * The config file (YAML): load with precise error positions, save atomically, and the secret
 * hashing used for users' passwords and API tokens.
 */
import { createHash, createHmac, randomBytes, scrypt, scryptSync, timingSafeEqual } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Document, LineCounter, parseDocument, isMap, isPair, isScalar, isSeq, visit } from 'yaml';
import { XdplbError } from '../domain/errors';
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

/** The first line of every file xdplb writes. */
export const CONFIG_HEADER = '# xdplb config (docs/config.md). Written by xdplb; comments are not kept.';
/** The end line: `# xdplb:end`, as xdplb writes it with the SHA-256 of every byte before it. */
export const END_MARKER = '# xdplb:end';
const END_LINE = /^# xdplb:end(?: sha256=([0-9a-f]{64}))?[ \t]*\r?$/;
/** A config file larger than this is refused unread (a symlink to /dev/zero or a log file). */
export const MAX_CONFIG_BYTES = 4 * 1024 * 1024;

/**
 * Refuses a file that may be half-written (docs/config.md, "Complete files only"): a file that
 * starts with xdplb's header line, or has an end line anywhere, must end with exactly one
 * complete `# xdplb:end` line (blank lines may follow), and when that line carries a sha256, it
 * must be the SHA-256 of every byte before the line. A file with neither is a hand-written one
 * without the opt-in and is not checked here.
 * @throws XdplbError XDPLB_ERR_VALIDATION "source:line: ..." (never quoting the file)
 */
export function checkComplete(text: string, source = '<config>'): void {
  const lines = text.split('\n');
  const ends: number[] = [];
  lines.forEach((line, i) => { if (line.startsWith(END_MARKER)) ends.push(i); });
  const sealed = text.startsWith(CONFIG_HEADER) || ends.length > 0;
  if (!sealed) return;
  const incomplete = (line: number, why: string): XdplbError =>
    new XdplbError('XDPLB_ERR_VALIDATION', `${source}:${line}: incomplete config file (truncated or half-written?): ${why}; nothing was applied`);
  if (ends.length === 0) {
    throw incomplete(lines.length, `it starts as a file written by xdplb but does not end with the line "${END_MARKER}"`);
  }
  if (ends.length > 1) throw incomplete(ends[1] + 1, `"${END_MARKER}" appears ${ends.length} times (a shorter file written over a longer one?)`);
  const at = ends[0];
  const after = lines.slice(at + 1).findIndex((l) => l.trim() !== '');
  if (after >= 0) throw incomplete(at + after + 2, `there is content after the line "${END_MARKER}"`);
  const match = END_LINE.exec(lines[at]);
  if (!match) throw incomplete(at + 1, `the end line is malformed (expected "${END_MARKER}" or "${END_MARKER} sha256=<64 hex digits>")`);
  // What xdplb wrote ends with a newline after the end line: without it, the line may be cut.
  if (text.startsWith(CONFIG_HEADER) && at === lines.length - 1) {
    throw incomplete(at + 1, `a file written by xdplb ends with a newline after its "${END_MARKER}" line`);
  }
  if (match[1] !== undefined) {
    const offset = lines.slice(0, at).reduce((n, l) => n + Buffer.byteLength(l) + 1, 0);
    const digest = createHash('sha256').update(Buffer.from(text).subarray(0, offset)).digest('hex');
    if (digest !== match[1]) {
      throw new XdplbError('XDPLB_ERR_VALIDATION', `${source}:${at + 1}: the file does not match the checksum in its end line ` +
        '(written over in place, or edited after xdplb wrote it); nothing was applied. After editing by hand, ' +
        `delete " sha256=..." from the last line (keep "${END_MARKER}")`);
    }
  }
}

/** True when a config configures nothing at all: no service, interface, user or token. */
export function isEmptyConfig(config: Readonly<Config>): boolean {
  return config.services.length === 0 && config.interfaces.length === 0 && config.users.length === 0 && config.tokens.length === 0 && !config.store;
}

/**
 * YAML's own messages can quote the file (a directive, an alias or tag name): ours never do.
 * Codes from the yaml package; unknown codes get a generic text.
 */
const YAML_REASONS: Record<string, string> = {
  ALIAS_PROPS: 'an alias cannot have an anchor or tag',
  BAD_ALIAS: 'bad alias',
  BAD_DIRECTIVE: 'bad or unsupported directive',
  BAD_DQ_ESCAPE: 'bad escape in a double-quoted string',
  BAD_INDENT: 'bad indentation',
  BAD_PROP_ORDER: 'anchors and tags must come before the value',
  BAD_SCALAR_START: 'a plain value cannot start with this character',
  BLOCK_AS_IMPLICIT_KEY: 'a block value cannot be a key',
  BLOCK_IN_FLOW: 'block values are not allowed inside [] or {}',
  DUPLICATE_KEY: 'map keys must be unique (duplicate key)',
  IMPOSSIBLE: 'unparsable input',
  KEY_OVER_1024_CHARS: 'an implicit key is longer than 1024 characters',
  MISSING_CHAR: 'a closing bracket, brace or quote is missing',
  MULTILINE_IMPLICIT_KEY: 'implicit keys must be on a single line',
  MULTIPLE_ANCHORS: 'a value can have only one anchor',
  MULTIPLE_DOCS: 'only one YAML document is allowed',
  MULTIPLE_TAGS: 'a value can have only one tag',
  NON_STRING_KEY: 'keys must be strings',
  TAB_AS_INDENT: 'tabs are not allowed as indentation',
  TAG_RESOLVE_FAILED: 'unknown or unresolvable tag',
  UNEXPECTED_TOKEN: 'unexpected token',
  BAD_COLLECTION_TYPE: 'bad collection type',
};

/** A pointer segment shown as is only when it looks like a field name (never a line of a secret file). */
function safeSegment(segment: string): string {
  return /^(?:\d{1,6}|[A-Za-z][A-Za-z0-9_-]{0,39})$/.test(segment) ? segment : '(unknown field)';
}

/**
 * Parses and validates config text (YAML, or JSON which is YAML). Plain passwords and tokens
 * are hashed. `source` names the file in messages. Messages name positions and fields, never
 * quote the text (a config path may point at a file that is not a config: its content stays
 * out of logs). Refused: a half-written file (checkComplete), a document that holds no config
 * (empty, comments only, `~`/null), and a config that configures nothing at all unless it says
 * `allowEmpty: true`.
 * @throws XdplbError XDPLB_ERR_VALIDATION "source:line:col: ..." for YAML syntax errors;
 *   XDPLB_ERR_VALIDATION / XDPLB_ERR_CONFLICT with `field` (JSON pointer) and the line of
 *   the offending node for schema and semantic errors.
 */
export function parseConfigText(text: string, source = '<config>', opts: { storeMode?: boolean } = {}): Config {
  checkComplete(text, source);
  // The YAML parser recurses per level: refuse pathological nesting before it runs.
  const deep = yamlNestingError(text);
  if (deep) throw new XdplbError('XDPLB_ERR_VALIDATION', `${source}:${deep.line}:${deep.col}: ${deep.reason}`);
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const error = doc.errors[0];
    const pos = error.linePos?.[0] ?? lineCounter.linePos(error.pos[0]);
    const reason = YAML_REASONS[error.code] ?? `YAML error ${String(error.code).replace(/[^A-Z_]/g, '')}`;
    throw new XdplbError('XDPLB_ERR_VALIDATION', `${source}:${pos.line}:${pos.col}: YAML syntax error: ${reason}`);
  }
  if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) {
    throw new XdplbError('XDPLB_ERR_VALIDATION', `${source}: the file holds no config (empty, only comments, or a null document): ` +
      'refused, it would remove every service, interface and user; to run with nothing configured, write "allowEmpty: true"');
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch {
    // An alias to a missing anchor, or an alias bomb: the messages quote the alias name.
    throw new XdplbError('XDPLB_ERR_VALIDATION', `${source}: YAML syntax error: unresolved or excessive aliases`);
  }
  let config: Config;
  try {
    config = hashPlainSecrets(validateState(data));
  } catch (error) {
    if (!(error instanceof XdplbError) || error.field === undefined) throw error;
    // Point at the deepest node of the pointer that exists in the document.
    const rawSegments = pointerSegments(error.field);
    let segments = rawSegments;
    let node: unknown;
    while (segments.length > 0 && !(node = doc.getIn(segments, true))) segments = segments.slice(0, -1);
    const range = (node as { range?: [number, number, number] } | undefined)?.range ?? (isScalar(doc.contents) ? undefined : doc.contents?.range);
    const where = range ? (({ line, col }) => `${source}:${line}:${col}`)(lineCounter.linePos(range[0])) : source;
    // An unknown key is the offending token itself: shown only when it looks like a field name.
    const field = rawSegments.length ? `/${rawSegments.map((s) => safeSegment(String(s)).replace(/~/g, '~0').replace(/\//g, '~1')).join('/')}` : '';
    let message = error.message;
    if (field !== error.field) message = message.startsWith(error.field) ? `${field}${message.slice(error.field.length)}` : `${field}: invalid`;
    throw new XdplbError(error.code, `${where}: ${message}`, field, { cause: error });
  }
  // storeMode: `xdplb daemon --store URL`: the file holds only node-local settings (or none).
  if (isEmptyConfig(config) && config.allowEmpty !== true && !opts.storeMode) {
    throw new XdplbError('XDPLB_ERR_VALIDATION', `${source}: the config has no services, interfaces, users or tokens: refused, it would ` +
      'remove everything; to run with nothing configured, write "allowEmpty: true"', '/allowEmpty');
  }
  return config;
}

/**
 * Reads and validates a config file. Symlinks are followed; the target must be a regular file
 * of at most MAX_CONFIG_BYTES.
 * @throws XdplbError XDPLB_ERR_CONFIG_FILE when the file cannot be read; otherwise as
 *   parseConfigText.
 */
export function loadConfigFile(file: string, opts: { storeMode?: boolean } = {}): Config {
  return parseConfigText(readConfigText(file), file, opts);
}

/**
 * The text of a config file (symlinks followed), refusing what is not a regular file or is
 * larger than MAX_CONFIG_BYTES, without reading it.
 * @throws XdplbError XDPLB_ERR_CONFIG_FILE
 */
export function readConfigText(file: string): string {
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) throw new Error('not a regular file');
    if (stat.size > MAX_CONFIG_BYTES) throw new Error(`larger than ${MAX_CONFIG_BYTES} bytes`);
    return fs.readFileSync(fd, 'utf8');
  } catch (error) {
    throw new XdplbError('XDPLB_ERR_CONFIG_FILE', `cannot read config file ${file}: ${(error as Error).message}`, undefined, { cause: error });
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
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

/**
 * The YAML text for a config (plain secrets are hashed first; keys in schema order): the header
 * line, the document, and the end line with the SHA-256 of everything before it (checkComplete).
 * `memo: false` (tests) always runs the YAML library for the text around the backend lists.
 */
export function formatConfig(config: Config, options: { plainYaml?: boolean; memo?: boolean } = {}): string {
  if (options.plainYaml) return sealed(yamlText(config));
  // Backend lists are most of a large file and cost the YAML library ~13 ms per 1000 backends:
  // they are written here, line for line as it writes them (format-fast.test compares the two),
  // before the copy (which then has no backends to clone).
  const lists = new Map<string, string[]>();
  // The text around the lists is the library's for the config without them: the last one is
  // remembered, and a change that touched only backends (the common case: a drain, a weight)
  // reuses it (~0.25 ms and ~120 KB of garbage a change less; format-memo.test checks the bytes).
  const memo = options.memo === false ? null : formatMemo;
  if (memo) {
    const shape = takeBackendLists(config, lists, memo.salt);
    if (sameData(shape, memo.shape)) {
      formatMemoHits++;
      return sealed(fillLists(memo.parts, memo.slots, lists));
    }
    lists.clear();
  }
  const salt = randomBytes(4).toString('hex');
  const shape = takeBackendLists(config, lists, salt);
  const text = yamlText(shape);
  const parts: string[] = [];
  const slots: Array<{ indent: string; token: string }> = [];
  let from = 0;
  for (const match of text.matchAll(BACKENDS_PLACEHOLDER)) {
    parts.push(text.slice(from, match.index));
    slots.push({ indent: match[1], token: match[2] });
    from = match.index + match[0].length;
  }
  parts.push(text.slice(from));
  // Remembered only when its text is a pure function of the shape (no plain secret to hash on
  // the way: hashPlainSecrets also records a verdict per secret) and every list was found.
  if (options.memo !== false && slots.filter((s) => lists.has(s.token)).length === lists.size && !hasPlainSecret(config)) {
    const copy = snapshotData(shape);
    if (copy !== NOT_DATA) formatMemo = { salt, shape: copy, parts, slots };
  }
  return sealed(fillLists(parts, slots, lists));
}

/** A placeholder line of takeBackendLists in the library's text: indent and token. */
const BACKENDS_PLACEHOLDER = /^( *)backends: (__xdplb_backends_[0-9a-f]+_\d+__)$/gm;

/** The last config formatConfig formatted with the YAML library: its salt, its shape (backend
 * lists as placeholders: a private copy), and its text cut at the placeholder lines. */
let formatMemo: { salt: string; shape: unknown; parts: string[]; slots: Array<{ indent: string; token: string }> } | null = null;
let formatMemoHits = 0;
/** How often formatConfig reused the text of the config before (tests). */
export function formatMemoStats(): { hits: number } { return { hits: formatMemoHits }; }

/** The header line, `body`, and the end line with the SHA-256 of both. */
function sealed(text: string): string {
  const body = `${CONFIG_HEADER}\n${text}`;
  return `${body}${END_MARKER} sha256=${createHash('sha256').update(body).digest('hex')}\n`;
}

/** The library's text with each placeholder line replaced by its list (a token not taken stays). */
function fillLists(parts: readonly string[], slots: ReadonlyArray<{ indent: string; token: string }>, lists: Map<string, string[]>): string {
  let text = parts[0];
  for (let i = 0; i < slots.length; i++) {
    const { indent, token } = slots[i];
    const items = lists.get(token);
    if (items) {
      text += `${indent}backends:`;
      for (const item of items) text += `\n${indent}  - ${item}`;
    } else {
      text += `${indent}backends: ${token}`;
    }
    text += parts[i + 1];
  }
  return text;
}

/** The YAML library's text of a config (no header, no end line). */
function yamlText(config: Config): string {
  const clone = hashPlainSecrets(structuredClone(config));
  // What xdplb writes, xdplb loads: emptied through the API (explicit), the file says so.
  if (isEmptyConfig(clone)) clone.allowEmpty = true;
  const copy = orderLikeSchema(clone, ConfigSchema as SchemaNode);
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
  return doc.toString({ lineWidth: 0 });
}

/** True when a user or token holds a plain secret (hashPlainSecrets would hash it). */
function hasPlainSecret(config: Config): boolean {
  const users = (config as { users?: unknown }).users;
  const tokens = (config as { tokens?: unknown }).tokens;
  return (Array.isArray(users) && users.some((u) => (u as { password?: unknown })?.password !== undefined))
    || (Array.isArray(tokens) && tokens.some((t) => (t as { token?: unknown })?.token !== undefined));
}

const NOT_DATA = Symbol('not data');
/** A deep copy of plain data (plain objects, dense arrays, primitives but symbols), else NOT_DATA. */
function snapshotData(value: unknown): unknown {
  if (value === null || (typeof value !== 'object' && typeof value !== 'function' && typeof value !== 'symbol')) return value;
  if (typeof value !== 'object') return NOT_DATA;
  if (Array.isArray(value)) {
    const copy: unknown[] = [];
    for (let i = 0; i < value.length; i++) {
      if (!(i in value)) return NOT_DATA;
      const item = snapshotData(value[i]);
      if (item === NOT_DATA) return NOT_DATA;
      copy.push(item);
    }
    return copy;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return NOT_DATA;
  // No prototype: a key "__proto__" is a key like any other.
  const copy = Object.create(null) as Record<string, unknown>;
  for (const key of Object.keys(value)) {
    const item = snapshotData((value as Record<string, unknown>)[key]);
    if (item === NOT_DATA) return NOT_DATA;
    copy[key] = item;
  }
  return copy;
}

/** True when `value` is the same data as `known` (a snapshotData copy): values (Object.is),
 * array items and object keys in the same order. */
function sameData(value: unknown, known: unknown): boolean {
  if (Object.is(value, known)) return true;
  if (value === null || known === null || typeof value !== 'object' || typeof known !== 'object') return false;
  if (Array.isArray(known)) {
    if (!Array.isArray(value) || value.length !== known.length) return false;
    for (let i = 0; i < known.length; i++) if (!(i in value) || !sameData(value[i], known[i])) return false;
    return true;
  }
  if (Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return false;
  const keys = Object.keys(value);
  const knownKeys = Object.keys(known);
  if (keys.length !== knownKeys.length) return false;
  for (let i = 0; i < keys.length; i++) {
    if (keys[i] !== knownKeys[i] || !sameData((value as Record<string, unknown>)[keys[i]], (known as Record<string, unknown>)[keys[i]])) return false;
  }
  return true;
}

/** BackendSpec's keys in schema order (the order the file lists them in). */
const BACKEND_KEYS = ['address', 'port', 'weight', 'drain'];

/** Flow lines of frozen backend objects (null: not plain). A DesiredState's config is frozen and
 * shares its untouched backends with the next one: a bulk change formats 100 lines of 1000. */
const backendLines = new WeakMap<object, string | null>();

/** A backend's flow line (`{ address: 198.18.1.1, port: 80, weight: 1 }`), or null when it is not
 * a plain {address, port, weight, drain} (IPv4 or IPv6 text, integers, booleans). */
function backendLine(b: unknown): string | null {
  if (b === null || typeof b !== 'object') return null;
  const frozen = Object.isFrozen(b);
  if (frozen) {
    const known = backendLines.get(b);
    if (known !== undefined) return known;
  }
  const record = b as Record<string, unknown>;
  let line: string | null = null;
  if (!Object.keys(record).some((k) => !BACKEND_KEYS.includes(k))) {
    const parts: string[] = [];
    for (const k of BACKEND_KEYS) {
      if (!(k in record) || record[k] === undefined) continue;
      const v = record[k];
      // IPv6 text is quoted: a plain scalar may not start with ':' (and reads as text either way).
      const v6 = k === 'address' && typeof v === 'string' && /^[0-9a-f:]{2,39}$/.test(v);
      if (k === 'address' ? !(typeof v === 'string' && (v6 || /^\d{1,3}(\.\d{1,3}){3}$/.test(v)))
        : k === 'drain' ? typeof v !== 'boolean' : !Number.isSafeInteger(v)) { parts.length = 0; break; }
      parts.push(`${k}: ${v6 ? JSON.stringify(v) : String(v)}`);
    }
    if (parts.length > 0) line = `{ ${parts.join(', ')} }`;
  }
  if (frozen) backendLines.set(b, line);
  return line;
}

/**
 * A shallow copy of `config` (nothing of it is changed) in which each service's non-empty
 * backend list whose items all have a flow line (backendLine) is a placeholder token (with
 * `salt`: random, so that no text of the config can be one); each list's lines go into `out`
 * by token. Anything else stays for the YAML library.
 */
function takeBackendLists(config: Config, out: Map<string, string[]>, salt: string): Config {
  const services = (config as { services?: unknown }).services;
  if (!Array.isArray(services)) return config;
  let copy: unknown[] | null = null;
  services.forEach((service: Record<string, unknown>, i) => {
    const backends = service?.backends;
    if (!Array.isArray(backends) || backends.length === 0) return;
    const lines: string[] = [];
    for (const b of backends) {
      const line = backendLine(b);
      if (line === null) return;
      lines.push(line);
    }
    const token = `__xdplb_backends_${salt}_${i}__`;
    (copy ??= [...services])[i] = { ...service, backends: token };
    out.set(token, lines);
  });
  return copy ? { ...config, services: copy } as unknown as Config : config;
}

export interface PreparedConfigWrite {
  /** The temporary file holding the new config, written and fsynced. */
  readonly temp: string;
  /** The file's new text (what commit() puts in place). */
  readonly text: string;
  /**
   * With `{ background: true }`: resolves once the temporary file is fsynced (the fsync runs on
   * the thread pool meanwhile); rejects with XdplbError STORAGE (the temporary file removed).
   */
  readonly durable?: Promise<void>;
  /**
   * Renames the temporary file over the config and fsyncs the directory (in the background
   * mode: waits for `durable` first, and the directory's fsync runs on the thread pool).
   * @throws XdplbError STORAGE
   */
  commit(): void | Promise<void>;
  /** Removes the temporary file (the config file stays as it was). Never throws. */
  abort(): void;
}

/** The catalogue error for a failed write: 507 XDPLB_ERR_STORAGE, naming the file and the cause. */
function storageError(file: string, error: unknown): XdplbError {
  const code = (error as NodeJS.ErrnoException).code;
  const why = code === 'ENOSPC' ? 'no space left on the device' : code === 'EROFS' ? 'read-only file system'
    : code === 'EDQUOT' ? 'disk quota exceeded' : (error as Error).message;
  return new XdplbError('XDPLB_ERR_STORAGE', `cannot write config file ${file}: ${why}; nothing was changed`, undefined, { cause: error });
}

/**
 * First half of an atomic write: validates `config` and writes it, fsynced, to a temporary
 * file in the config's directory; commit() renames it over the config. The daemon applies a
 * change to the kernel between the two, so a change that cannot be made durable never
 * reaches the kernel.
 * @throws XdplbError VALIDATION / CONFLICT when the config is invalid (nothing is written);
 *   XDPLB_ERR_STORAGE when writing fails (disk full, read-only: the temporary file is removed).
 */
export function prepareConfigFile(file: string, config: Config, options: { background?: boolean; validated?: boolean } = {}): PreparedConfigWrite {
  // `validated`: the config is a DesiredState's (validated whole when it was made; at 1000
  // backends a second validation cost ~1 ms a change).
  const text = formatConfig(options.validated ? config : validateState(config));
  const dir = path.dirname(path.resolve(file));
  const temp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  let fd: number | undefined;
  let durable: Promise<void> | undefined;
  try {
    let mode = 0o600;
    try { mode = fs.statSync(file).mode & 0o777; } catch { /* new file: private, it holds hashes */ }
    fd = fs.openSync(temp, 'wx', mode);
    // One write (a full disk or a read-only file system fails here, before anything else).
    fs.writeFileSync(fd, text);
    if (options.background) {
      // The fsync waits for the disk on the thread pool while the caller goes on (the kernel).
      const syncing = fd;
      fd = undefined;
      durable = new Promise<void>((resolve, reject) => {
        fs.fsync(syncing, (error) => {
          // Durable once fsync returned. Closed here (a few us): a close on the thread pool woke a
          // pool thread while the kernel took the change (see commit).
          if (!error) { resolve(); try { fs.closeSync(syncing); } catch { /* durable already */ } return; }
          fs.close(syncing, () => {
            fs.rm(temp, { force: true }, () => reject(storageError(file, error)));
          });
        });
      });
      durable.catch(() => { /* observed by commit(); an aborted write is not waited for */ });
    } else {
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      fd = undefined;
    }
  } catch (error) {
    if (fd !== undefined) try { fs.closeSync(fd); } catch { /* already failing */ }
    fs.rmSync(temp, { force: true });
    throw storageError(file, error);
  }
  let done = false;
  const abort = (): void => {
    if (done) return;
    done = true;
    try { fs.rmSync(temp, { force: true }); } catch { /* read-only now: nothing more to do */ }
  };
  // Renames the temp file into place (a failure removes it: nothing changed), then fsyncs the
  // directory: best effort, the new file is in place and that is no reason to undo the change.
  const place = (): void => {
    if (done) throw new Error('config write already committed or aborted');
    try {
      fs.renameSync(temp, file);
    } catch (error) {
      abort();
      throw storageError(file, error);
    }
    done = true;
  };
  if (durable) {
    const synced = durable;
    return {
      temp,
      text,
      durable: synced,
      abort,
      async commit() {
        if (done) throw new Error('config write already committed or aborted');
        try {
          await synced;
        } catch (error) {
          abort();
          throw error;
        }
        place();
        // The directory is opened here, after the kernel took the change (~20 us): an open on
        // the thread pool before it woke a pool thread that, on a busy 2-vCPU host, could take
        // the CPU from the change for a millisecond or more (issue 16's tail). Only the fsync
        // waits on the pool.
        let dirFd: number | undefined;
        try {
          dirFd = fs.openSync(dir, 'r');
          const fd = dirFd;
          await new Promise<void>((resolve) => { fs.fsync(fd, () => resolve()); });
        } catch { /* best effort */ } finally {
          if (dirFd !== undefined) try { fs.closeSync(dirFd); } catch { /* best effort */ }
        }
      },
    };
  }
  return {
    temp,
    text,
    abort,
    commit() {
      place();
      try {
        const dirFd = fs.openSync(dir, 'r');
        try { fs.fsyncSync(dirFd); } finally { fs.closeSync(dirFd); }
      } catch { /* best effort */ }
    },
  };
}

/**
 * Validates and writes a config atomically: a temporary file in the same directory is
 * written, fsynced and renamed over the target, then the directory is fsynced, so a reader
 * (or a crash) sees either the old or the new file, never half of one.
 * @throws XdplbError VALIDATION / CONFLICT when the config is invalid (nothing is written);
 *   XDPLB_ERR_STORAGE when writing fails (the temporary file is removed).
 */
export function saveConfigFile(file: string, config: Config): void {
  prepareConfigFile(file, config).commit();
}
