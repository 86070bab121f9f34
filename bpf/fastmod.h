/* fastmod.h: a flow hash's Maglev slot (hash mod table size) without a division for the default
 * table size. Free of the program's globals so that a unit test can build it natively
 * (src/dataplane/fastmod.test.ts compares it with % over every class of input). Needs lb_abi.h.
 *
 * A division by a run-time divisor is the program's one `div` (the BPF JIT emits a 64-bit div
 * on x86: 14-40+ cycles on the CPUs this runs on). For a divisor d known at compile time,
 * Lemire's "faster remainder by direct computation" (Lemire, Kaser, Kurz 2019) is exact for
 * every 32-bit n: with c = floor((2^64 - 1) / d) + 1, n mod d = high 64 bits of
 * ((c * n mod 2^64) * d). BPF has no 64x64 -> 128 multiply, so the high part is assembled from
 * two 32x32 -> 64 products (d < 2^32). The result equals n % d: every node, and the reference
 * model, keeps the slot it had. */
#ifndef XDPLB_FASTMOD_H
#define XDPLB_FASTMOD_H

#include <linux/types.h>

#define FASTMOD_C(d) (0xffffffffffffffffULL / (d) + 1)

/* n mod d for a compile-time d (2 <= d < 2^32) and its c = FASTMOD_C(d). */
static __always_inline __u32 fastmod_u32(__u32 n, __u32 d, __u64 c)
{
	__u64 low = c * n;    /* the fraction n / d in 0.64 fixed point */

	/* high 64 bits of low * d: (hi32 * d) + ((lo32 * d) >> 32), then >> 32 */
	return (__u32)((((low >> 32) * d) + (((low & 0xffffffffULL) * d) >> 32)) >> 32);
}

/* The Maglev slot of `hash` in a table of `size` slots: the default size by fastmod_u32, any
 * other by the division. */
static __always_inline __u32 maglev_slot(__u32 hash, __u32 size)
{
	if (size == LB_MAGLEV_DEFAULT_SIZE)
		return fastmod_u32(hash, LB_MAGLEV_DEFAULT_SIZE, FASTMOD_C(LB_MAGLEV_DEFAULT_SIZE));
	return hash % size;
}

#endif /* XDPLB_FASTMOD_H */
