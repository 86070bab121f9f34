/**
 * Bob Jenkins' lookup3 as the kernel's jhash2(), bit-identical to bpf/jhash.h, and the flow
 * hash the XDP program picks Maglev slots with (test/datapath.test.ts checks both agree); also
 * the program's other two hashes: the flow cache's and the VIP filter's.
 */
import { LB } from './abi';

const JHASH_INITVAL = 0xdeadbeef;

function rol32(word: number, shift: number): number {
  return ((word << shift) | (word >>> (32 - shift))) >>> 0;
}

function mix(s: Uint32Array): void {
  s[0] -= s[2]; s[0] ^= rol32(s[2], 4); s[2] += s[1];
  s[1] -= s[0]; s[1] ^= rol32(s[0], 6); s[0] += s[2];
  s[2] -= s[1]; s[2] ^= rol32(s[1], 8); s[1] += s[0];
  s[0] -= s[2]; s[0] ^= rol32(s[2], 16); s[2] += s[1];
  s[1] -= s[0]; s[1] ^= rol32(s[0], 19); s[0] += s[2];
  s[2] -= s[1]; s[2] ^= rol32(s[1], 4); s[1] += s[0];
}

function final(s: Uint32Array): void {
  s[2] ^= s[1]; s[2] -= rol32(s[1], 14);
  s[0] ^= s[2]; s[0] -= rol32(s[2], 11);
  s[1] ^= s[0]; s[1] -= rol32(s[0], 25);
  s[2] ^= s[1]; s[2] -= rol32(s[1], 16);
  s[0] ^= s[2]; s[0] -= rol32(s[2], 4);
  s[1] ^= s[0]; s[1] -= rol32(s[0], 14);
  s[2] ^= s[1]; s[2] -= rol32(s[1], 24);
}

/**
 * jhash2(words, words.length, seed) over 32-bit words (the kernel's lookup3 "hashword").
 * Throws on a word that is not an integer in [0, 2^32).
 */
export function jhash2(words: readonly number[], seed: number): number {
  for (const w of words) {
    if (!Number.isInteger(w) || w < 0 || w > 0xffffffff) throw new Error(`jhash2: word ${w} is not a u32`);
  }
  const s = new Uint32Array(3); // Uint32Array wraps every operation to 32 bits, as C does
  s[0] = s[1] = s[2] = JHASH_INITVAL + ((words.length << 2) >>> 0) + (seed >>> 0);
  let i = 0;
  let left = words.length;
  while (left > 3) {
    s[0] += words[i]; s[1] += words[i + 1]; s[2] += words[i + 2];
    mix(s);
    i += 3;
    left -= 3;
  }
  if (left === 0) return s[2];
  if (left >= 3) s[2] += words[i + 2];
  if (left >= 2) s[1] += words[i + 1];
  s[0] += words[i];
  final(s);
  return s[2];
}

/**
 * The program's flow hash (bpf/lb.bpf.c flow_hash): jhash2 over host-order words
 * {saddr, daddr, sport << 16 | dport} seeded with seed ^ proto for TCP/UDP, and
 * {saddr, daddr, proto} seeded with seed otherwise. Addresses are u32 (see ipToU32).
 */
export function flowHash(saddr: number, daddr: number, sport: number, dport: number, proto: number, seed: number): number {
  if (proto === 6 || proto === 17) return jhash2([saddr, daddr, ((sport << 16) | dport) >>> 0], (seed ^ proto) >>> 0);
  return jhash2([saddr, daddr, proto], seed);
}

const MASK64 = (1n << 64n) - 1n;

/**
 * The program's flow cache hash (bpf/flow_cache.h flow_cache_hash): picks a flow's set in the flows
 * map and seeds its check word. Takes host-order addresses (u32, see ipToU32) and ports; the
 * program hashes the key's two 64-bit words as they sit in memory (network-order fields read on
 * a little-endian host), which this rebuilds.
 */
export function flowCacheHash(saddr: number, daddr: number, sport: number, dport: number, proto: number, seed: number): number {
  const a = (BigInt(bswap32(daddr)) << 32n) | BigInt(bswap32(saddr));
  const b = ((BigInt(proto) << 32n) | (BigInt(bswap16(dport)) << 16n) | BigInt(bswap16(sport))) ^ BigInt(seed >>> 0);
  let h = ((a * 0x9e3779b97f4a7c15n) & MASK64) ^ ((b * 0xc2b2ae3d27d4eb4fn) & MASK64);
  h ^= h >> 32n;
  h = (h * 0x165667b19e3779f9n) & MASK64;
  return Number(h >> 32n);
}

function bswap32(x: number): number {
  return (((x & 0xff) << 24) | ((x & 0xff00) << 8) | ((x >>> 8) & 0xff00) | ((x >>> 24) & 0xff)) >>> 0;
}

function bswap16(x: number): number {
  return ((x & 0xff) << 8) | ((x >>> 8) & 0xff);
}

/** The settings.vip_filter bit of a VIP (host-order u32 address), as bpf/lb.bpf.c maybe_vip() computes it. */
export function vipFilterBit(address: number): number {
  return Math.imul(address >>> 0, LB.VIP_FILTER_MUL) >>> 24;
}

/** settings.vip_filter words (LB.VIP_FILTER_WORDS x u32) with the bit of every address set. */
export function vipFilterWords(addresses: Iterable<number>): number[] {
  const words = new Array<number>(LB.VIP_FILTER_WORDS).fill(0);
  for (const a of addresses) {
    const bit = vipFilterBit(a);
    words[bit >>> 5] = (words[bit >>> 5] | (1 << (bit & 31))) >>> 0;
  }
  return words;
}

/**
 * The service_slots index of a services key (the 8 bytes of struct lb_service_key), as
 * bpf/lb.bpf.c lookup_service() computes it on a little-endian host (the key's two u32 words as
 * they lie in memory).
 */
export function serviceSlotIndex(key: Buffer): number {
  const h = (Math.imul(key.readUInt32LE(0), LB.SERVICE_SLOT_MUL) ^ Math.imul(key.readUInt32LE(4), LB.SERVICE_SLOT_MUL2)) >>> 0;
  return h >>> (32 - LB.SERVICE_SLOTS_BITS);
}
