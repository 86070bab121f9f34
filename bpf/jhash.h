/* jhash.h: Bob Jenkins' lookup3 hash as in the kernel's jhash2(), for fixed 3- and 4-word keys
 * (the flow hash uses 3 words). Mirrored bit for bit by src/dataplane/jhash.ts: a unit test
 * compares both on random words, a data-path test on the Maglev slots the program picks. */
#ifndef XDPLB_JHASH_H
#define XDPLB_JHASH_H

#include <linux/types.h>

#define JHASH_INITVAL 0xdeadbeef

static __always_inline __u32 rol32(__u32 word, unsigned int shift)
{
	return (word << shift) | (word >> ((-shift) & 31));
}

#define __jhash_mix(a, b, c)                    \
	{                                       \
		a -= c; a ^= rol32(c, 4);  c += b; \
		b -= a; b ^= rol32(a, 6);  a += c; \
		c -= b; c ^= rol32(b, 8);  b += a; \
		a -= c; a ^= rol32(c, 16); c += b; \
		b -= a; b ^= rol32(a, 19); a += c; \
		c -= b; c ^= rol32(b, 4);  b += a; \
	}

#define __jhash_final(a, b, c)                  \
	{                                       \
		c ^= b; c -= rol32(b, 14);      \
		a ^= c; a -= rol32(c, 11);      \
		b ^= a; b -= rol32(a, 25);      \
		c ^= b; c -= rol32(b, 16);      \
		a ^= c; a -= rol32(c, 4);       \
		b ^= a; b -= rol32(a, 14);      \
		c ^= b; c -= rol32(b, 24);      \
	}

/* jhash2(k, 3, seed) */
static __always_inline __u32 jhash_3words(__u32 a, __u32 b, __u32 c, __u32 seed)
{
	__u32 init = JHASH_INITVAL + (3 << 2) + seed;

	a += init;
	b += init;
	c += init;
	__jhash_final(a, b, c);
	return c;
}

/* jhash2(k, 4, seed): one mix round over k0..k2, then the final round over k3 */
static __always_inline __u32 jhash_4words(__u32 k0, __u32 k1, __u32 k2, __u32 k3, __u32 seed)
{
	__u32 a, b, c;

	a = b = c = JHASH_INITVAL + (4 << 2) + seed;
	a += k0;
	b += k1;
	c += k2;
	__jhash_mix(a, b, c);
	a += k3;
	__jhash_final(a, b, c);
	return c;
}

#endif
