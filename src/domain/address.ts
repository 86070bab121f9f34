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

const OCTET_RE = /^(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])$/;
const GROUP_RE = /^[0-9a-fA-F]{1,4}$/;

/** The four bytes of a strict dotted quad, or a reason why it is not one. */
function parseDottedQuad(text: string): number[] | string {
  const parts = text.split('.');
  if (parts.length !== 4) return `"${text}" is not a dotted-quad IPv4 address (it needs four decimal octets)`;
  const bytes: number[] = [];
  for (const part of parts) {
    if (part === '') return `"${text}" has an empty octet`;
    if (!/^[0-9]+$/.test(part)) return `"${text}" has an octet "${part}" that is not a decimal number`;
    if (part.length > 1 && part[0] === '0') return `"${text}" has an octet with a leading zero ("${part}"; write it without, octal is not accepted)`;
    if (!OCTET_RE.test(part)) return `"${text}" has an octet "${part}" above 255`;
    bytes.push(Number(part));
  }
  return bytes;
}

/** The 16 bytes of an IPv6 text form, or a reason why it is not one. */
function parseV6(text: string): Buffer | string {
  const where = `"${text}"`;
  if (text.includes('%')) return `${where} has a zone id ("%..."): zone ids are not accepted, an address of a service or backend is never an interface's`;
  if (/[[\]]/.test(text)) return `${where}: brackets belong only around an IPv6 address followed by a port ("[2001:2::5]:80")`;
  if (!/^[0-9a-fA-F:.]+$/.test(text)) return `${where} is not an IPv6 address (only hex digits, ":" and a dotted IPv4 tail are allowed)`;
  const doubles = text.split('::').length - 1;
  if (text.includes(':::')) return `${where} has ":::" (a zero run is written "::")`;
  if (doubles > 1) return `${where} has "::" more than once (it may stand for one run of zero groups only)`;
  let head: string[]; let tail: string[];
  if (doubles === 1) {
    const [h, t] = text.split('::');
    head = h === '' ? [] : h.split(':');
    tail = t === '' ? [] : t.split(':');
  } else {
    head = text.split(':');
    tail = [];
  }
  if (head.includes('') || tail.includes('')) {
    if (text.startsWith(':') && !text.startsWith('::')) return `${where} starts with a single ":"`;
    if (text.endsWith(':') && !text.endsWith('::')) return `${where} ends with a single ":"`;
    return `${where} has an empty group`;
  }
  // An embedded IPv4 tail (`::ffff:198.18.0.1`, `2001:2::198.18.0.1`) counts as two groups.
  const last = doubles === 1 ? tail : head;
  const words: number[] = [];
  let v4Tail: number[] | null = null;
  if (last.length > 0 && last[last.length - 1].includes('.')) {
    const quad = parseDottedQuad(last[last.length - 1]);
    if (typeof quad === 'string') return `${where} has a bad embedded IPv4 tail: ${quad}`;
    v4Tail = quad;
    last.pop();
  }
  const groups = [...head, ...tail];
  for (const group of groups) {
    if (group.includes('.')) return `${where} has a dotted IPv4 part ("${group}") before its last group`;
    if (!GROUP_RE.test(group)) {
      return group.length > 4
        ? `${where} has a group "${group}" longer than four hex digits`
        : `${where} has a group "${group}" that is not hexadecimal`;
    }
  }
  const explicit = groups.length + (v4Tail ? 2 : 0);
  if (doubles === 1) {
    if (explicit > 7) return `${where} has too many groups for "::" (${explicit} written, at most 7 beside "::")`;
  } else if (explicit !== 8) {
    return explicit > 8
      ? `${where} has too many groups (${explicit}; an IPv6 address has 8)`
      : `${where} has too few groups (${explicit}; an IPv6 address has 8, or use "::")`;
  }
  const headWords = head.map((g) => parseInt(g, 16));
  const tailWords = tail.map((g) => parseInt(g, 16));
  if (v4Tail) tailWords.push(v4Tail[0] * 256 + v4Tail[1], v4Tail[2] * 256 + v4Tail[3]);
  if (doubles === 0 && v4Tail) headWords.push(...tailWords.splice(0));
  words.push(...headWords, ...new Array<number>(8 - headWords.length - tailWords.length).fill(0), ...tailWords);
  const bytes = Buffer.alloc(16);
  words.forEach((w, i) => bytes.writeUInt16BE(w, i * 2));
  return bytes;
}

/** Canonical RFC 5952 text of 16 bytes. */
function formatV6(bytes: Uint8Array): string {
  const words: number[] = [];
  for (let i = 0; i < 8; i++) words.push(bytes[i * 2] * 256 + bytes[i * 2 + 1]);
  // The longest run of >= 2 zero groups; the first one on a tie.
  let bestStart = -1; let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (words[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = (ws: number[]) => ws.map((w) => w.toString(16)).join(':');
  if (bestLen < 2) return hex(words);
  return `${hex(words.slice(0, bestStart))}::${hex(words.slice(bestStart + bestLen))}`;
}

/** The parsed address, or a one-line reason why `text` is not an IPv4 or IPv6 address. */
export function tryParseAddress(text: unknown): ParsedAddress | { error: string } {
  if (typeof text !== 'string') return { error: 'an address must be a string' };
  if (text === '') return { error: 'the address is empty' };
  if (text.length > 64) return { error: `"${text.slice(0, 64)}..." is too long for an address` };
  if (text.trim() !== text) return { error: `"${text}" has white space around it` };
  if (!text.includes(':')) {
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

/** True when `address` (parsed) is inside `cidr` (same family). */
export function inPrefix(address: ParsedAddress, cidr: string): boolean {
  const [base, bitsText] = cidr.split('/');
  const prefix = parseAddress(base);
  if (prefix.family !== address.family) return false;
  const bits = Number(bitsText);
  for (let i = 0; i < bits; i++) {
    const byte = i >> 3; const mask = 0x80 >> (i & 7);
    if ((address.bytes[byte] & mask) !== (prefix.bytes[byte] & mask)) return false;
  }
  return true;
}

/** The class a valid address belongs to that can never be a VIP or backend, or null. */
export function forbiddenClass(address: ParsedAddress): AddressClass | null {
  const classes = address.family === 4 ? FORBIDDEN_IPV4_CLASSES : FORBIDDEN_IPV6_CLASSES;
  return classes.find((c) => inPrefix(address, c.cidr)) ?? null;
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
  const parsed = tryParseAddress(text);
  if ('error' in parsed) return parsed.error;
  return forbiddenAddressReason(parsed.text);
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
