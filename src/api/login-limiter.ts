/**
 * Failed-attempt back-off per key (e.g. "client address + user name"): the first `free`
 * failures cost nothing, each further one doubles the wait before the key may try again, up to
 * `maxMs`. Memory is bounded: a key is forgotten `forgetMs` after its last failure once its wait
 * is over, and beyond `maxEntries` keys the least recently failed are dropped first.
 */
import { isIP } from 'node:net';

/**
 * The part of a client address that back-off counts by: an IPv4 address (also when IPv4-mapped),
 * or the /64 of an IPv6 address (one host usually holds a whole /64 and could otherwise
 * rotate through it, each address with fresh free attempts).
 */
export function addressKey(address: string): string {
  const plain = address.replace(/%.*$/, '');
  if (plain.toLowerCase().startsWith('::ffff:') && isIP(plain.slice(7)) === 4) return plain.slice(7);
  if (isIP(plain) !== 6) return plain;
  const groups = (text: string) => (text === '' ? [] : text.split(':').flatMap((g) => (g.includes('.') ? ['0', '0'] : [g])));
  let all: string[];
  if (plain.includes('::')) {
    const [head, tail] = plain.split('::');
    const h = groups(head);
    const t = groups(tail);
    all = [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  } else {
    all = groups(plain);
  }
  return `${all.slice(0, 4).map((g) => parseInt(g, 16).toString(16)).join(':')}::/64`;
}

export interface BackoffOptions {
  /** Failures without any wait; default 5. */
  free?: number;
  /** Wait after the first failure beyond `free`; doubles with each further one. Default 1 s. */
  baseMs?: number;
  /** Longest wait; default 15 min. */
  maxMs?: number;
  /** A key whose wait is over is forgotten this long after its last failure; default 15 min. */
  forgetMs?: number;
  /** Most keys remembered; default 10000. */
  maxEntries?: number;
  now?: () => number;
}

interface Entry { failures: number; last: number }

export class BackoffLimiter {
  private readonly entries = new Map<string, Entry>();
  private readonly free: number;
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly forgetMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(options: BackoffOptions = {}) {
    this.free = options.free ?? 5;
    this.baseMs = options.baseMs ?? 1000;
    this.maxMs = options.maxMs ?? 15 * 60_000;
    this.forgetMs = options.forgetMs ?? 15 * 60_000;
    this.maxEntries = options.maxEntries ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  /** The wait after `failures` failures (0 while within the free allowance). */
  delayAfter(failures: number): number {
    const over = failures - this.free;
    return over > 0 ? Math.min(this.maxMs, this.baseMs * 2 ** (over - 1)) : 0;
  }

  /** Milliseconds until `key` may try again; 0 = now. */
  retryAfter(key: string): number {
    const entry = this.live(key);
    return entry ? Math.max(0, entry.last + this.delayAfter(entry.failures) - this.now()) : 0;
  }

  /** Counts one failure (or an attempt charged before its outcome is known, see refund). */
  fail(key: string): void {
    const entry = this.live(key) ?? { failures: 0, last: 0 };
    entry.failures += 1;
    entry.last = this.now();
    // Re-insert: the Map's order is then "least recently failed first", the eviction order.
    this.entries.delete(key);
    this.entries.set(key, entry);
    this.evict();
  }

  /** Takes back one charged failure (the attempt succeeded). */
  refund(key: string): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    entry.failures -= 1;
    if (entry.failures <= 0) this.entries.delete(key);
  }

  /** Forgets the key (a success proves the owner is at this key). */
  reset(key: string): void {
    this.entries.delete(key);
  }

  /** Keys remembered (for tests and metrics). */
  get size(): number {
    return this.entries.size;
  }

  private live(key: string): Entry | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    const now = this.now();
    if (now - entry.last > this.forgetMs && now >= entry.last + this.delayAfter(entry.failures)) {
      this.entries.delete(key);
      return undefined;
    }
    return entry;
  }

  private evict(): void {
    if (this.entries.size <= this.maxEntries) return;
    for (const key of [...this.entries.keys()]) this.live(key);
    for (const key of this.entries.keys()) {
      if (this.entries.size <= this.maxEntries) break;
      this.entries.delete(key);
    }
  }
}
