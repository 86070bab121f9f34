// IP address text for the dashboard, both families: parse any valid form, print the canonical
// one (RFC 5952 for IPv6: lower case, no leading zeros, the longest run of two or more zero
// groups as `::`, the first on a tie, no dotted IPv4 tail), `[v6]:port` where a port follows.
// Pure functions without Node's Buffer (the browser bundle has none), so test/browser/*.test.ts
// checks them under Node. The daemon's parser is src/domain/address.ts (it needs Node's Buffer,
// so the bundle cannot import it); test/browser/address.test.ts checks that the two accept and
// refuse the same input and print the same canonical text.

export type Family = 4 | 6;
export interface IpAddress {
  family: Family;
  /** Canonical text. */
  text: string;
  /** 4 (IPv4) or 16 (IPv6) bytes, network order. */
  bytes: number[];
}

/** A filter's address: one address, or a prefix (`2001:2::/48`, `198.18.0.0/15`). */
export interface IpPrefix extends IpAddress { length: number }

function parseV4(text: string): number[] | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  const out: number[] = [];
  for (const p of parts) {
    // Decimal only, no leading zeros ("010" is octal to some parsers: ambiguous, refused).
    if (!/^(0|[1-9]\d{0,2})$/.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    out.push(n);
  }
  return out;
}

function parseV6(text: string): number[] | null {
  if (!/^[0-9a-fA-F:.]+$/.test(text)) return null;
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const groups = (part: string): number[] | null => {
    if (part === '') return [];
    const out: number[] = [];
    const items = part.split(':');
    for (let i = 0; i < items.length; i++) {
      const item = items[i];
      if (i === items.length - 1 && item.includes('.')) {
        const v4 = parseV4(item);
        if (!v4) return null;
        out.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(item)) return null;
        out.push(parseInt(item, 16));
      }
    }
    return out;
  };
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  if (!head || !tail) return null;
  // A dotted tail only at the very end.
  if (halves.length === 2 && halves[0].includes('.')) return null;
  let words: number[];
  if (halves.length === 2) {
    const missing = 8 - head.length - tail.length;
    if (missing < 1) return null; // "::" stands for at least one zero group
    words = [...head, ...new Array<number>(missing).fill(0), ...tail];
  } else {
    if (head.length !== 8) return null;
    words = head;
  }
  const bytes: number[] = [];
  for (const w of words) bytes.push(w >> 8, w & 0xff);
  return bytes;
}

/** RFC 5952 text of 16 bytes. */
export function formatIpv6(bytes: ArrayLike<number>): string {
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((bytes[i] << 8) | bytes[i + 1]);
  let bestStart = -1;
  let bestLen = 1; // a single zero group is not shortened
  for (let i = 0; i < 8;) {
    if (words[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = (ws: number[]) => ws.map((w) => w.toString(16)).join(':');
  if (bestStart < 0) return hex(words);
  return `${hex(words.slice(0, bestStart))}::${hex(words.slice(bestStart + bestLen))}`;
}

/**
 * Parses an IPv4 (dotted quad) or IPv6 (any RFC 4291 text form) address.
 * @throws Error naming the text when it is neither.
 */
export function parseIp(input: string): IpAddress {
  const text = input.trim();
  const v4 = parseV4(text);
  if (v4) return { family: 4, text: v4.join('.'), bytes: v4 };
  const v6 = text.includes(':') ? parseV6(text) : null;
  if (v6) return { family: 6, text: formatIpv6(v6), bytes: v6 };
  throw new Error(`"${text}" is not an IPv4 or IPv6 address`);
}

/** parseIp, or null for anything that is not an address. */
export function tryParseIp(input: string): IpAddress | null {
  try { return parseIp(input); } catch { return null; }
}

/** The canonical text of an address, or the input unchanged when it is not one. */
export function canonicalIp(input: string): string {
  return tryParseIp(input)?.text ?? input;
}

/** `198.18.0.10:80`, `[2001:2::10]:80`. */
export function formatHostPort(address: string, port: number | string): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/**
 * Splits `a.b.c.d:port` or `[v6]:port` (the form of backend keys) into address text and port.
 * The address is not validated here (the daemon does that and says what is wrong).
 * @throws Error naming the text when it has no port, a bad port, or an unbracketed IPv6 address.
 */
export function splitHostPort(input: string): { address: string; port: number } {
  const text = input.trim();
  let address: string;
  let portText: string;
  const bracket = /^\[([^\]]*)\]:(\d+)$/.exec(text);
  if (bracket) {
    [, address, portText] = bracket;
  } else if (/^\[[^\]]*\]$/.test(text)) {
    throw new Error(`"${text}" has no port (write [IPv6]:port)`);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) throw new Error(`"${text}" has no port (write address:port, [IPv6]:port)`);
    if (text.indexOf(':') !== colon) throw new Error(`"${text}": write an IPv6 address with a port as [address]:port`);
    address = text.slice(0, colon);
    portText = text.slice(colon + 1);
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) throw new Error(`"${text}": the port must be 0..65535`);
  return { address, port: Number(portText) };
}

/**
 * A list of address:port entries (`198.18.1.20:8080 [2001:2::1:20]:8080`, separated by spaces
 * or commas), split as splitHostPort does; '' is the empty list.
 * @throws Error naming the first entry that is not address:port.
 */
export function splitHostPortList(text: string): Array<{ address: string; port: number }> {
  return text.split(/[\s,]+/).filter(Boolean).map(splitHostPort);
}

/**
 * `[2001:2:0::5]:80` -> `[2001:2::5]:80`, `198.18.1.2:80` unchanged: a backend key in canonical form.
 * @throws Error naming the text when it is not address:port with a valid address.
 */
export function canonicalHostPort(input: string): string {
  const { address, port } = splitHostPort(input);
  return formatHostPort(parseIp(address).text, port);
}

/**
 * Parses a filter address: an address (any form) or a prefix `address/length`.
 * @throws Error naming what is wrong.
 */
export function parsePrefix(input: string): IpPrefix {
  const text = input.trim();
  const slash = text.indexOf('/');
  const addr = parseIp(slash < 0 ? text : text.slice(0, slash));
  const max = addr.family === 4 ? 32 : 128;
  if (slash < 0) return { ...addr, length: max };
  const lenText = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > max) throw new Error(`"${text}": the prefix length must be 0..${max} for IPv${addr.family}`);
  return { ...addr, length: Number(lenText) };
}

/** Whether `addr` lies in `prefix` (same family only: an IPv4 prefix never matches an IPv6 address). */
export function prefixContains(prefix: IpPrefix, addr: IpAddress): boolean {
  if (prefix.family !== addr.family) return false;
  let bits = prefix.length;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((prefix.bytes[i] & mask) !== (addr.bytes[i] & mask)) return false;
  }
  return true;
}
