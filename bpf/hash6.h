/* hash6.h: the IPv6 hashes (fold6, the Maglev flow hash, the flows6 hash), free of the program's
 * globals so that a unit test can build them natively (src/dataplane/jhash.test.ts compares them
 * with src/dataplane/jhash.ts fold6 / flowHash6 / flowCacheHash6). Needs lb_abi.h and jhash.h. */
#ifndef XDPLB_HASH6_H
#define XDPLB_HASH6_H

#include <bpf/bpf_endian.h>

#define FLOW_HASH6_SALT 0x60000000 /* a v6 flow's Maglev hash never equals a v4 flow's with equal words */

/* fold6: the xor of the address's four words, each in host order (xor commutes with the byte
 * swap: one swap of the xor of the words as loaded). */
static __always_inline __u32 fold6(const lb_in6 *a)
{
	return bpf_ntohl(a->w[0] ^ a->w[1] ^ a->w[2] ^ a->w[3]);
}

/* The Maglev flow hash of an IPv6 flow from its folded addresses (fold6 of each; the packet path
 * folds each address once): jhash_3words over the folded addresses and the ports (TCP/UDP, proto
 * in the seed) or proto, seed salted (docs/datapath.md "IPv6"). */
static __always_inline __u32 flow_hash6_folded(__u32 fsaddr, __u32 fdaddr, __be16 sport, __be16 dport,
					       __u8 proto, __u32 seed)
{
	if (proto == 6 || proto == 17)
		return jhash_3words(fsaddr, fdaddr, ((__u32)bpf_ntohs(sport) << 16) | bpf_ntohs(dport),
				    seed ^ proto ^ FLOW_HASH6_SALT);
	return jhash_3words(fsaddr, fdaddr, proto, seed ^ FLOW_HASH6_SALT);
}

/* The Maglev flow hash of an IPv6 flow. */
static __always_inline __u32 flow_hash6(const lb_in6 *saddr, const lb_in6 *daddr, __be16 sport, __be16 dport,
					__u8 proto, __u32 seed)
{
	return flow_hash6_folded(fold6(saddr), fold6(daddr), sport, dport, proto, seed);
}

/* The flows6 hash: the 40-byte key as five u64 words as they sit in memory; the two words of
 * each address xored, each of the three results multiplied by its own odd constant, folded.
 * This node's own (need not agree across architectures); seeded. */
static __always_inline __u32 flow_cache_hash6(const struct lb_flow_key6 *k, __u32 seed)
{
	const __u64 *w = (const __u64 *)k;
	__u64 h = ((w[0] ^ w[1]) * 0x9e3779b97f4a7c15ULL) ^ ((w[2] ^ w[3]) * 0xc2b2ae3d27d4eb4fULL) ^
		  ((w[4] ^ seed) * 0x165667b19e3779f9ULL);

	h ^= h >> 32;
	h *= 0x27d4eb2f165667c5ULL;
	return h >> 32;
}

#endif /* XDPLB_HASH6_H */
