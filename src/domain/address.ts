/**
 * The one address module (IPv4 and IPv6, see /work/wt/notes/V6.md "Control plane"): every
 * layer that reads an address from a user (config file, API, CLI), prints one, keys a map by
 * one or turns one into bytes for the kernel goes through here.
 *
 * - Input: IPv4 as a strict dotted quad (four decimal octets, no leading zeros); IPv6 in any
 *   RFC 4291 text form (upper or lower case, leading zeros up to four digits a group, one `::`,
 *   an embedded dotted IPv4 tail). Zone ids (`fe80::1%eth0`) are refused: an address of a
 *   service is global, never an interface's.
 * - Output: one canonical text per address. IPv4 dotted; IPv6 per RFC 5952: lower case, no
 *   leading zeros, the longest run of two or more zero groups as `::` (the first on a tie), a
 *   single zero group written `0`, never a dotted IPv4 tail.
 * - With a port: `a.b.c.d:port` and `[v6]:port` (RFC 5952 section 6).
 * - Forbidden classes: addresses that can never be a VIP or a backend, each with a one-line
 *   reason naming the class and its CIDR.
 */
import { XdplbError } from './errors';
import { fastDottedQuad, parseDottedQuad, fastV6, parseV6, formatV6 } from '../dataplane/address-text';

export type AddressFamily = 4 | 6;

/** A parsed address: its family, its canonical text and its network-order bytes (4 or 16). */
export interface ParsedAddress {
  readonly family: AddressFamily;
  readonly text: string;
  readonly bytes: Buffer;
}

/** A parsed `host:port`: the address and the port (0..65535; 0 is the project's "any port"). */
export interface ParsedHostPort {
  readonly address: ParsedAddress;
  readonly port: number;
  /** The canonical `a.b.c.d:port` / `[v6]:port` text. */
  readonly text: string;
}

// ---------------------------------------------------------------------------------------------
// Parsing

/** The parsed address, or a one-line reason why `text` is not an IPv4 or IPv6 address. */
export function tryParseAddress(text: unknown): ParsedAddress | { error: string } {
  if (typeof text !== 'string') return { error: 'an address must be a string' };
  if (text.length <= 39 && text.includes(':')) {
    const fast = fastV6(text);
    if (fast) return { family: 6, text: formatV6(fast), bytes: fast };
  }
  if (text === '') return { error: 'the address is empty' };
  if (text.length > 64) return { error: `"${text.slice(0, 64)}..." is too long for an address` };
  if (text.trim() !== text) return { error: `"${text}" has white space around it` };
  if (!text.includes(':')) {
    const fast = fastDottedQuad(text);
    if (fast) return { family: 4, text, bytes: Buffer.from(fast) };
    if (/^[0-9.]+$/.test(text)) {
      const quad = parseDottedQuad(text);
      if (typeof quad === 'string') return { error: quad };
      return { family: 4, text: quad.join('.'), bytes: Buffer.from(quad) };
    }
    if (text.includes('%')) return { error: `"${text}" has a zone id ("%..."): zone ids are not accepted` };
    return { error: `"${text}" is not an IPv4 or IPv6 address (host names are not accepted)` };
  }
  const bytes = parseV6(text);
  if (typeof bytes === 'string') return { error: bytes };
  return { family: 6, text: formatV6(bytes), bytes };
}

/** The parsed address; throws XDPLB_ERR_VALIDATION with a one-line reason (and `field`, if given). */
export function parseAddress(text: unknown, field?: string): ParsedAddress {
  const parsed = tryParseAddress(text);
  if ('error' in parsed) throw new XdplbError('XDPLB_ERR_VALIDATION', parsed.error, field);
  return parsed;
}

/** True when `text` is a valid address of either family (any accepted text form). */
export function isAddress(text: unknown): boolean {
  return !('error' in tryParseAddress(text));
}

/**
 * True when `text` is an address in its canonical form (what the state holds): cheap for a
 * dotted quad (no allocation), for the checks that run on every apply.
 */
export function isCanonicalAddress(text: string): boolean {
  if (typeof text !== 'string') return false;
  if (!text.includes(':')) return text.length <= 15 && fastDottedQuad(text) !== null;
  const bytes = fastV6(text);
  return bytes !== null && formatV6(bytes) === text;
}

/** The canonical text of a valid address (throws on an invalid one). */
export function canonicalAddress(text: string): string {
  return parseAddress(text).text;
}

/** The canonical text when `text` is a valid address, else `text` unchanged (for outputs of data already validated). */
export function canonicalOrSelf(text: string): string {
  const parsed = tryParseAddress(text);
  return 'error' in parsed ? text : parsed.text;
}

/** 4 or 6 for a valid address, null otherwise. Cheap: a valid address has ':' exactly when it is IPv6. */
export function addressFamily(text: string): AddressFamily | null {
  const parsed = tryParseAddress(text);
  return 'error' in parsed ? null : parsed.family;
}

/** The canonical text of 4 (IPv4) or 16 (IPv6) network-order bytes. */
export function addressFromBytes(bytes: Uint8Array): string {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  if (bytes.length === 16) return formatV6(bytes);
  throw new RangeError(`an address has 4 or 16 bytes, not ${bytes.length}`);
}

/** Network-order bytes of an address (4 or 16). */
export function addressBytes(text: string): Buffer {
  return parseAddress(text).bytes;
}

// ---------------------------------------------------------------------------------------------
// With a port

/** `a.b.c.d:port` or `[v6]:port`, canonical (the address may be in any accepted text form). */
export function formatHostPort(address: string, port: number): string {
  const parsed = tryParseAddress(address);
  const text = 'error' in parsed ? address : parsed.text;
  const host = 'error' in parsed ? (address.includes(':') ? `[${address}]` : address) : parsed.family === 6 ? `[${text}]` : text;
  return `${host}:${port}`;
}

/**
 * `a.b.c.d:port` / `[v6]:port` of an address already in canonical text (validated state, map
 * contents): no parsing, for hot paths (keys of every backend on every apply).
 */
export function joinHostPort(canonical: string, port: number): string {
  return canonical.includes(':') ? `[${canonical}]:${port}` : `${canonical}:${port}`;
}

/** The family of an address already validated (cheap: IPv6 text always has a ':', IPv4 never). */
export function familyOf(validated: string): AddressFamily {
  return validated.includes(':') ? 6 : 4;
}

/** A port as text: decimal 0..65535, no sign, no leading zeros; a reason otherwise. */
export function tryParsePort(text: string): number | { error: string } {
  if (text === '') return { error: 'the port is empty' };
  if (!/^[0-9]+$/.test(text)) return { error: `port "${text}" is not a decimal number` };
  if (text.length > 1 && text[0] === '0') return { error: `port "${text}" has a leading zero` };
  const port = Number(text);
  if (port > 65535) return { error: `port ${text} is out of range (0..65535)` };
  return port;
}

/**
 * `a.b.c.d:port` or `[v6]:port` (any accepted address text form inside the brackets), or a
 * one-line reason. An unbracketed IPv6 address with a port is refused (it is ambiguous:
 * `2001:2::5:80` is itself an address).
 */
export function tryParseHostPort(text: unknown): ParsedHostPort | { error: string } {
  if (typeof text !== 'string') return { error: 'an address:port must be a string' };
  let host: string; let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) return { error: `"${text}" opens "[" without closing it ("[2001:2::5]:80")` };
    host = text.slice(1, close);
    const rest = text.slice(close + 1);
    if (!rest.startsWith(':')) return { error: `"${text}" needs ":port" after "]" ("[2001:2::5]:80")` };
    portText = rest.slice(1);
    const inner = tryParseAddress(host);
    if ('error' in inner) return inner;
    if (inner.family !== 6) return { error: `"${text}": brackets are only for IPv6 addresses (write ${inner.text}:${portText})` };
  } else {
    const colons = text.split(':').length - 1;
    if (colons === 0) return { error: `"${text}" has no port (write address:port, or [IPv6]:port)` };
    if (colons > 1) return { error: `"${text}": an IPv6 address with a port is written in brackets ("[2001:2::5]:80")` };
    const at = text.lastIndexOf(':');
    host = text.slice(0, at);
    portText = text.slice(at + 1);
  }
  const address = tryParseAddress(host);
  if ('error' in address) return address;
  const port = tryParsePort(portText);
  if (typeof port !== 'number') return { error: `"${text}": ${port.error}` };
  return { address, port, text: formatHostPort(address.text, port) };
}

/** Like tryParseHostPort; throws XDPLB_ERR_VALIDATION with the reason. */
export function parseHostPort(text: unknown, field?: string): ParsedHostPort {
  const parsed = tryParseHostPort(text);
  if ('error' in parsed) throw new XdplbError('XDPLB_ERR_VALIDATION', parsed.error, field);
  return parsed;
}

// ---------------------------------------------------------------------------------------------
// Forbidden classes

/** An address class that can never be a VIP or backend: its CIDR and what it is. */
export interface AddressClass { readonly cidr: string; readonly what: string }

/**
 * IPv4 classes (the order matters: 255.255.255.255 is named before 240/4 holds it). Also carried
 * by src/config/schema.ts (UNUSABLE_IPV4_CLASSES, with the regex that refuses them).
 * 198.18.0.0/15 (the lab's benchmarking range) stays usable.
 */
export const FORBIDDEN_IPV4_CLASSES: readonly AddressClass[] = [
  { cidr: '0.0.0.0/8', what: 'a "this network" address (with the unspecified 0.0.0.0)' },
  { cidr: '127.0.0.0/8', what: 'a loopback address' },
  { cidr: '169.254.0.0/16', what: 'a link-local address' },
  { cidr: '224.0.0.0/4', what: 'a multicast address' },
  { cidr: '255.255.255.255/32', what: 'the limited broadcast address' },
  { cidr: '240.0.0.0/4', what: 'a reserved (class E) address' },
];

/** IPv6 classes. 2001:2::/48 (the lab's benchmarking range) stays usable. */
export const FORBIDDEN_IPV6_CLASSES: readonly AddressClass[] = [
  { cidr: '::/128', what: 'the unspecified address' },
  { cidr: '::1/128', what: 'the loopback address' },
  { cidr: 'fe80::/10', what: 'a link-local address' },
  { cidr: 'ff00::/8', what: 'a multicast address' },
  { cidr: '::ffff:0:0/96', what: 'an IPv4-mapped address (write the IPv4 address itself; a service is one family)' },
];

const prefixCache = new Map<string, { family: AddressFamily; bytes: Uint8Array; bits: number }>();

/** True when `address` (parsed) is inside `cidr` (same family). */
export function inPrefix(address: Pick<ParsedAddress, 'family' | 'bytes'>, cidr: string): boolean {
  let prefix = prefixCache.get(cidr);
  if (!prefix) {
    const [base, bitsText] = cidr.split('/');
    const parsed = parseAddress(base);
    prefix = { family: parsed.family, bytes: parsed.bytes, bits: Number(bitsText) };
    prefixCache.set(cidr, prefix);
  }
  if (prefix.family !== address.family) return false;
  const whole = prefix.bits >> 3;
  for (let i = 0; i < whole; i++) if (address.bytes[i] !== prefix.bytes[i]) return false;
  const rest = prefix.bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (address.bytes[whole] & mask) === (prefix.bytes[whole] & mask);
}

/** The class a valid address belongs to that can never be a VIP or backend, or null. */
export function forbiddenClass(address: Pick<ParsedAddress, 'family' | 'bytes'>): AddressClass | null {
  const classes = address.family === 4 ? FORBIDDEN_IPV4_CLASSES : FORBIDDEN_IPV6_CLASSES;
  for (const c of classes) if (inPrefix(address, c.cidr)) return c;
  return null;
}

/**
 * Why an address can never be a VIP or backend ("::1 is the loopback address (::1/128) and can
 * never be a VIP or backend"), or null when it is usable or not an address at all (that is the
 * parser's business).
 */
export function forbiddenAddressReason(text: string): string | null {
  const parsed = tryParseAddress(text);
  if ('error' in parsed) return null;
  const found = forbiddenClass(parsed);
  return found ? `${parsed.text} is ${found.what} (${found.cidr}) and can never be a VIP or backend` : null;
}

/** Why `text` cannot be a VIP (not an address, or a forbidden class), or null when it can. */
export function isForbiddenVip(text: string): string | null {
  // The hot path (the schema's format runs it for every address of every validation): a
  // dotted quad is checked without building a ParsedAddress.
  const quad = typeof text === 'string' && text.length <= 15 ? fastDottedQuad(text) : null;
  if (quad) {
    const found = forbiddenClass({ family: 4, bytes: quad as unknown as Buffer });
    return found ? `${text} is ${found.what} (${found.cidr}) and can never be a VIP or backend` : null;
  }
  const parsed = tryParseAddress(text);
  if ('error' in parsed) return parsed.error;
  const found = forbiddenClass(parsed);
  return found ? `${parsed.text} is ${found.what} (${found.cidr}) and can never be a VIP or backend` : null;
}

/** Why `text` cannot be a backend address, or null when it can (today the same classes as a VIP). */
export function isForbiddenBackend(text: string): string | null {
  return isForbiddenVip(text);
}

// ---------------------------------------------------------------------------------------------
// Ordering and hashing helpers

/** Orders addresses: IPv4 before IPv6, then by bytes (for stable listings). */
export function compareAddresses(a: string, b: string): number {
  const pa = tryParseAddress(a); const pb = tryParseAddress(b);
  if ('error' in pa || 'error' in pb) return a < b ? -1 : a > b ? 1 : 0;
  if (pa.family !== pb.family) return pa.family - pb.family;
  return Buffer.compare(pa.bytes, pb.bytes);
}

/**
 * fold6 of V6.md: the XOR of the four 32-bit words of a v6 address, each in host order (the value
 * bpf_ntohl gives of the network word). Used by the VIP filter and the v6 Maglev flow hash.
 */
export function fold6(bytes: Uint8Array): number {
  let x = 0;
  for (let i = 0; i < 16; i += 4) x ^= ((bytes[i] << 24) | (bytes[i + 1] << 16) | (bytes[i + 2] << 8) | bytes[i + 3]);
  return x >>> 0;
}
