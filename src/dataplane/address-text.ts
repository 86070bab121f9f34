/**
 * The one text <-> bytes codec of addresses (IPv4 dotted quads, IPv6 per RFC 4291 in and RFC 5952
 * out), shared by the address module (src/domain/address.ts: families, host:port, forbidden
 * classes, XdplbError) and the data plane (abi.ts's lb_in6 fields, packet.ts's frames). It lives
 * here, not in src/domain, because src/domain imports src/dataplane's types (src/layering.test.ts:
 * no circle of folders), so src/dataplane cannot import src/domain. No imports: a leaf.
 *
 * Every `parse*` returns the bytes or a one-line reason naming the bad text; the `fast*`
 * functions are their hot paths (null: ask the parse function why).
 */

const OCTET_RE = /^(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])$/;
const GROUP_RE = /^[0-9a-fA-F]{1,4}$/;

/**
 * The four octets of a strict dotted quad, or null: the hot path (every address of every
 * validation), one pass over the characters. parseDottedQuad says why when this says no.
 */
export function fastDottedQuad(text: string): number[] | null {
  const out = [0, 0, 0, 0];
  let part = 0; let value = 0; let digits = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 46) {   // '.'
      if (digits === 0 || part === 3) return null;
      out[part++] = value; value = 0; digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits === 1 && value === 0) return null;   // a leading zero
      value = value * 10 + (c - 48);
      if (++digits > 3 || value > 255) return null;
    } else return null;
  }
  if (part !== 3 || digits === 0) return null;
  out[3] = value;
  return out;
}

/** The four bytes of a strict dotted quad, or a reason why it is not one. */
export function parseDottedQuad(text: string): number[] | string {
  const fast = fastDottedQuad(text);
  if (fast) return fast;
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

/**
 * The 16 bytes of an IPv6 text form without a dotted tail, or null (then parseV6 decides, and
 * says why): the hot path, one pass over the characters.
 */
export function fastV6(text: string): Buffer | null {
  if (text.length < 2 || text.length > 39) return null;
  const words = new Array<number>(8);
  let n = 0; let gap = -1; let value = 0; let digits = 0;
  let i = 0;
  if (text.charCodeAt(0) === 58) {   // a leading ':' is only the start of '::'
    if (text.charCodeAt(1) !== 58) return null;
    gap = 0; i = 2;
    if (i === text.length) return Buffer.alloc(16);
  }
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    let d: number;
    if (c >= 48 && c <= 57) d = c - 48;
    else if (c >= 97 && c <= 102) d = c - 87;
    else if (c >= 65 && c <= 70) d = c - 55;
    else if (c === 58) {
      if (digits === 0) {
        // '::' (the second ':' of a pair), once, not after the start's own
        if (gap >= 0 || i === 0 || text.charCodeAt(i - 1) !== 58) return null;
        gap = n;
        continue;
      }
      if (n === 8) return null;
      words[n++] = value; value = 0; digits = 0;
      if (i === text.length - 1) return null;   // a trailing single ':'
      continue;
    } else return null;
    if (++digits > 4) return null;
    value = value * 16 + d;
  }
  if (digits > 0) {
    if (n === 8) return null;
    words[n++] = value;
  } else if (gap !== n) return null;   // ends in ':' without being '::'
  if (gap < 0 ? n !== 8 : n > 7) return null;
  const bytes = Buffer.alloc(16);
  const tail = gap < 0 ? 0 : n - gap;
  for (let w = 0; w < n; w++) {
    const at = gap >= 0 && w >= gap ? 8 - tail + (w - gap) : w;
    bytes[at * 2] = words[w] >> 8;
    bytes[at * 2 + 1] = words[w] & 255;
  }
  return bytes;
}

/** The 16 bytes of an IPv6 text form, or a reason why it is not one. */
export function parseV6(text: string): Buffer | string {
  const fast = fastV6(text);
  if (fast) return fast;
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

/** Canonical RFC 5952 text of the 16 bytes at `offset` (the caller checks there are 16). */
export function formatV6(bytes: Uint8Array, offset = 0): string {
  const words: number[] = [];
  for (let i = 0; i < 8; i++) words.push(bytes[offset + i * 2] * 256 + bytes[offset + i * 2 + 1]);
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

/**
 * The 16 network-order bytes of any RFC 4291 text form of an IPv6 address (hex groups in either
 * case, leading zeros, one `::`, a dotted IPv4 tail; no zone id, no prefix length).
 * @throws Error with a one-line reason naming the bad text
 */
export function ipv6ToBytes(text: string): Buffer {
  if (typeof text !== 'string') throw new Error(`an IPv6 address must be a string, not ${typeof text}`);
  const bytes = parseV6(text);
  if (typeof bytes === 'string') throw new Error(bytes);
  return bytes;
}

/**
 * The canonical RFC 5952 text of the 16 network-order bytes at `offset` (lower case, no leading
 * zeros, the longest run of two or more zero groups as `::`, the first on a tie; no dotted tail).
 * @throws RangeError when fewer than 16 bytes follow `offset`
 */
export function bytesToIpv6(bytes: Uint8Array, offset = 0): string {
  if (!(offset >= 0) || bytes.length < offset + 16) {
    throw new RangeError(`an IPv6 address is 16 bytes; ${bytes.length} bytes at offset ${offset} hold ${Math.max(0, bytes.length - offset)}`);
  }
  return formatV6(bytes, offset);
}
