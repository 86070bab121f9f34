/**
 * Bob Jenkins' lookup3 as the kernel's jhash2(), bit-identical to bpf/jhash.h, and the flow
 * hash the XDP program picks Maglev slots with (test/datapath.test.ts checks both agree); also
 * the program's other two hashes: the flow cache's and the VIP filter's. The IPv6 siblings
 * (fold6, flowHash6, flowCacheHash6, vipFilterBit6) take addresses as IPv6 text or 16 bytes.
 */
import { LB, ipv6ToBytes } from './abi';

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

/** An IPv6 address as text (any valid form) or its 16 network-order bytes. */
export type Ipv6Input = string | Uint8Array;

function v6Bytes(a: Ipv6Input): Buffer {
  if (typeof a === 'string') return ipv6ToBytes(a);
  if (a.length !== 16) throw new Error(`jhash: an IPv6 address is 16 bytes, got ${a.length}`);
  return Buffer.from(a.buffer, a.byteOffset, 16);
}

/** fold6 (docs/datapath.md, IPv6): the xor of an IPv6 address's four words, each host order
 * (bpf_ntohl of the network word), as bpf/lb6.h fold6() computes it. */
export function fold6(address: Ipv6Input): number {
  const b = v6Bytes(address);
  return (b.readUInt32BE(0) ^ b.readUInt32BE(4) ^ b.readUInt32BE(8) ^ b.readUInt32BE(12)) >>> 0;
}

/** Seed xor of every IPv6 Maglev flow hash: keeps a v6 flow's hash apart from a v4 flow whose
 * words equal the folds. */
export const FLOW_HASH6_SALT = 0x60000000;

/**
 * The program's IPv6 flow hash (bpf/lb6.h flow_hash6): jhash_3words(fold6(saddr), fold6(daddr),
 * sport << 16 | dport, seed ^ proto ^ 0x60000000) for TCP/UDP, jhash_3words(fold6(saddr),
 * fold6(daddr), proto, seed ^ 0x60000000) otherwise.
 */
export function flowHash6(saddr: Ipv6Input, daddr: Ipv6Input, sport: number, dport: number, proto: number, seed: number): number {
  const s = fold6(saddr);
  const d = fold6(daddr);
  if (proto === 6 || proto === 17) return jhash2([s, d, ((sport << 16) | dport) >>> 0], (seed ^ proto ^ FLOW_HASH6_SALT) >>> 0);
  return jhash2([s, d, proto], (seed ^ FLOW_HASH6_SALT) >>> 0);
}

/**
 * The program's flows6 hash (bpf/lb6.h flow_cache_hash6): the 40-byte struct lb_flow_key6 as
 * five 64-bit words w0..w4 as they sit in memory (little-endian host): {saddr} = w0, w1,
 * {daddr} = w2, w3, {sport, dport, proto, pad} = w4; h = (w0 ^ w1) * K1 ^ (w2 ^ w3) * K2 ^
 * (w4 ^ seed) * K3, then h ^= h >> 32, h *= K4, and the high 32 bits. Picks a flows6 set and
 * seeds the entry's check word (the rules of flowCacheHash).
 */
export function flowCacheHash6(saddr: Ipv6Input, daddr: Ipv6Input, sport: number, dport: number, proto: number, seed: number): number {
  const key = Buffer.alloc(40);
  v6Bytes(saddr).copy(key, 0);
  v6Bytes(daddr).copy(key, 16);
  key.writeUInt16BE(sport, 32);
  key.writeUInt16BE(dport, 34);
  key.writeUInt8(proto, 36);
  const w = (i: number) => key.readBigUInt64LE(i * 8);
  let h = (((w(0) ^ w(1)) * FLOW6_K1) & MASK64) ^ (((w(2) ^ w(3)) * FLOW6_K2) & MASK64)
    ^ (((w(4) ^ BigInt(seed >>> 0)) * FLOW6_K3) & MASK64);
  h ^= h >> 32n;
  h = (h * FLOW6_K4) & MASK64;
  return Number(h >> 32n);
}

const FLOW6_K1 = 0x9e3779b97f4a7c15n;
const FLOW6_K2 = 0xc2b2ae3d27d4eb4fn;
const FLOW6_K3 = 0x165667b19e3779f9n;
const FLOW6_K4 = 0x27d4eb2f165667c5n;

/** The settings.vip_filter6 bit of an IPv6 VIP: (fold6(vip) * LB_VIP_FILTER_MUL) >> 24. */
export function vipFilterBit6(address: Ipv6Input): number {
  return Math.imul(fold6(address), LB.VIP_FILTER_MUL) >>> 24;
}

/** settings.vip_filter6 words (LB.VIP_FILTER_WORDS x u32) with the bit of every IPv6 address set. */
export function vipFilterWords6(addresses: Iterable<Ipv6Input>): number[] {
  const words = new Array<number>(LB.VIP_FILTER_WORDS).fill(0);
  for (const a of addresses) {
    const bit = vipFilterBit6(a);
    words[bit >>> 5] = (words[bit >>> 5] | (1 << (bit & 31))) >>> 0;
  }
  return words;
}

/** The service_slots6 index of an IPv6 service key (bpf/lb6.h lookup_service6):
 * (fold6(vip) * LB_SERVICE_SLOT_MUL ^ (port << 8 | proto) * LB_SERVICE_SLOT_MUL2) >> (32 - bits). */
export function serviceSlotIndex6(vip: Ipv6Input, port: number, proto: number): number {
  const h = (Math.imul(fold6(vip), LB.SERVICE_SLOT_MUL) ^ Math.imul(((port << 8) | proto) >>> 0, LB.SERVICE_SLOT_MUL2)) >>> 0;
  return h >>> (32 - LB.SERVICE_SLOTS_BITS);
}
