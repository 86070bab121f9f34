/* csum.h: incremental Internet checksum updates (RFC 1624, eqn. 3: HC' = ~(~HC + ~m + m')).
 * Values are taken exactly as they sit in the packet (network order loaded natively): the
 * ones'-complement sum commutes with byte swapping (RFC 1071), so no conversion is needed. */
#ifndef XDPLB_CSUM_H
#define XDPLB_CSUM_H

#include <linux/types.h>

/* Folds a 32-bit ones'-complement accumulator into 16 bits (two rounds cover any u32). */
static __always_inline __u16 csum_fold32(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/* Adds the change of one 16-bit word (from -> to) to a difference accumulator. */
static __always_inline __u32 csum_diff16(__u32 acc, __u16 from, __u16 to)
{
	return acc + (__u16)~from + to;
}

/* Adds the change of one 32-bit field (two 16-bit words) to a difference accumulator. */
static __always_inline __u32 csum_diff32(__u32 acc, __u32 from, __u32 to)
{
	acc = csum_diff16(acc, (__u16)(from >> 16), (__u16)(to >> 16));
	return csum_diff16(acc, (__u16)from, (__u16)to);
}

/* Applies an accumulated difference to a checksum field value. */
static __always_inline __u16 csum_apply(__u16 check, __u32 diff)
{
	return (__u16)~csum_fold32((__u16)~check + diff);
}

/* UDP: a zero checksum means "none" and stays zero; a computed zero is sent as 0xffff. */
static __always_inline __u16 csum_apply_udp(__u16 check, __u32 diff)
{
	__u16 out;

	if (check == 0)
		return 0;
	out = csum_apply(check, diff);
	return out ? out : 0xffff;
}

#endif
