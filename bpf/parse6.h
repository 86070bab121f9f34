/* parse6.h: IPv6 parsing through the cursor (parse.h): the fixed header and the bounded walk of
 * extension headers (docs/decisions.md "IPv6 extension headers"). */
#ifndef XDPLB_PARSE6_H
#define XDPLB_PARSE6_H

#include "parse.h"

/* Next-header values the walk knows (RFC 8200 4, RFC 4302, RFC 4303). */
#define NH_HOPOPTS 0
#define NH_TCP 6
#define NH_UDP 17
#define NH_ROUTING 43
#define NH_FRAGMENT 44
#define NH_ESP 50
#define NH_AH 51
#define NH_ICMPV6 58
#define NH_NONE 59
#define NH_DSTOPTS 60

/* ICMPv6 types the program handles (RFC 4443, RFC 4861). */
#define ICMPV6_DEST_UNREACH 1
#define ICMPV6_PKT_TOOBIG 2
#define ICMPV6_TIME_EXCEED 3
#define ICMPV6_PARAMPROB 4
#define ICMPV6_ECHO_REQUEST 128
#define ICMPV6_ECHO_REPLY 129
#define ICMPV6_ND_FIRST 133   /* router solicitation .. */
#define ICMPV6_ND_LAST 137    /* .. redirect: neighbour discovery, always the kernel's */

/* The IPv6 fixed header (RFC 8200 3), addresses as lb_in6. */
struct ipv6_fixed {
	__be32 vtc_flow;     /* version 4 bits, traffic class 8, flow label 20 */
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	lb_in6 saddr;
	lb_in6 daddr;
};

/* IPv6 fixed header: version 6, payload length != 0 (0 = jumbogram, RFC 2675: refused) and
 * 40 + payload length within the frame (a longer frame is Ethernet padding). On success *ip6
 * points at the header, *payload_len = payload length, the cursor is after the fixed header, and
 * the next header is returned. PARSE_ERROR (cursor unmoved) otherwise. */
static __always_inline int parse_ipv6hdr(struct cursor *c, struct ipv6_fixed **ip6, __u32 *payload_len)
{
	struct ipv6_fixed *hdr = c->pos;
	__u32 len;

	if ((void *)(hdr + 1) > c->end)
		return PARSE_ERROR;
	if ((*(__u8 *)hdr >> 4) != 6)
		return PARSE_ERROR;
	len = bpf_ntohs(hdr->payload_len);
	if (len == 0 || len > (__u32)(c->end - (void *)(hdr + 1)))
		return PARSE_ERROR;
	c->pos = hdr + 1;
	*ip6 = hdr;
	*payload_len = len;
	return hdr->nexthdr;
}

/* walk_ext6 results */
#define EXT6_OK 0         /* at an upper-layer header (*proto) */
#define EXT6_REFUSED 1    /* the policy refuses the chain (ext_header toward a VIP) */
#define EXT6_TRUNCATED 2  /* an extension header runs past the payload or the frame (malformed) */

/* Fragment header word (offset << 3 | M), host order */
#define FRAG6_OFFSET 0xfff8
#define FRAG6_MORE 0x0001

/* An extension header type the walk knows (hop-by-hop, routing, fragment, AH, destination options). */
#define NH_IS_EXT(nh) ((nh) == 0 || (nh) == 43 || (nh) == 44 || (nh) == 51 || (nh) == 60)

/* Walks at most LB_EXT_HEADERS_MAX extension headers from frame offset `off` (the first header
 * after the fixed one; `nh` = the fixed header's next header; `left` = the payload bytes from
 * there): hop-by-hop (first only), destination options, routing (segments left 0 only), fragment,
 * AH. Returns WALK6(status, proto, frag, off, left): on EXT6_OK, off is the upper-layer header's
 * frame offset, proto its protocol, left the payload bytes from there, frag the fragment header's
 * offset/M word (0 without one). ESP, no-next-header, a routing header with segments left,
 * hop-by-hop not first, or a fifth extension header: EXT6_REFUSED (proto = that header). A header
 * past the payload or the frame: EXT6_TRUNCATED.
 * A GLOBAL function, verified once on its own: inlined, every path through the chain would carry
 * its own packet range into the rest of the IPv6 path, and the verifier would walk that once per
 * path (past its instruction limit). */
#define WALK6(status, proto, frag, off, left) \
	((__u64)(status) << 56 | (__u64)(proto) << 48 | (__u64)(frag) << 32 | (__u64)(off) << 16 | (__u64)(left))
#define WALK6_STATUS(w) ((__u32)((w) >> 56))
#define WALK6_PROTO(w) ((__u8)((w) >> 48))
#define WALK6_FRAG(w) ((__u16)((w) >> 32))
#define WALK6_OFF(w) ((__u32)((w) >> 16) & 0xffff)
#define WALK6_LEFT(w) ((__u32)(w) & 0xffff)

__noinline __u64 walk_ext6(struct xdp_md *ctx, __u32 off, __u32 nh, __u32 left)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	__u8 next = nh;
	__u16 frag = 0;

	if (off > 0xff || left > 0xffff)
		return WALK6(EXT6_TRUNCATED, next, 0, 0, 0);
	for (int i = 0; i <= LB_EXT_HEADERS_MAX; i++) {
		__u8 *h;
		__u32 len;

		if (next == NH_HOPOPTS) {
			if (i != 0)
				return WALK6(EXT6_REFUSED, next, frag, off, left);
		} else if (next != NH_DSTOPTS && next != NH_ROUTING && next != NH_FRAGMENT && next != NH_AH) {
			return WALK6(next == NH_ESP || next == NH_NONE ? EXT6_REFUSED : EXT6_OK, next, frag, off, left);
		}
		if (i == LB_EXT_HEADERS_MAX)
			return WALK6(EXT6_REFUSED, next, frag, off, left);
		/* A mask the verifier sees (the compiler would drop it: it knows the bound, the
		 * verifier does not, from the 32-bit argument). */
		asm volatile("%0 &= 0x3fff" : "+r"(off));
		h = data + off;
		if ((void *)(h + 8) > end)
			return WALK6(EXT6_TRUNCATED, next, frag, off, left);
		if (left < 8)
			return WALK6(EXT6_TRUNCATED, next, frag, off, left);
		if (next == NH_FRAGMENT) {
			len = 8;
			frag = bpf_ntohs(*(__be16 *)(h + 2));
		} else if (next == NH_AH) {
			len = ((__u32)h[1] + 2) * 4;
		} else {
			len = ((__u32)h[1] + 1) * 8;
			if (next == NH_ROUTING && h[3] != 0)
				return WALK6(EXT6_REFUSED, next, frag, off, left);
		}
		if (len > left || (void *)(h + len) > end)
			return WALK6(EXT6_TRUNCATED, next, frag, off, left);
		next = h[0];
		off += len;
		left -= len;
		/* A later fragment: what follows its fragment header is fragment data (RFC 8200 4.5:
		 * the next header names the first header of the fragmentable part, which only the
		 * first fragment carries). Nothing more to walk. */
		if (frag & FRAG6_OFFSET)
			return WALK6(EXT6_OK, next, frag, off, left);
	}
	return WALK6(EXT6_REFUSED, next, frag, off, left);
}

/* Two IPv6 addresses are equal. */
static __always_inline int same_in6(const lb_in6 *a, const lb_in6 *b)
{
	return a->w[0] == b->w[0] && a->w[1] == b->w[1] && a->w[2] == b->w[2] && a->w[3] == b->w[3];
}

/* A source no IPv6 client has: ::/128 (unspecified), ::1 (loopback), ff00::/8 (multicast),
 * fe80::/10 (link-local), ::ffff:0:0/96 (v4-mapped). The VIP itself is the caller's check. */
static __always_inline int martian6(const lb_in6 *a)
{
	__u32 w0 = bpf_ntohl(a->w[0]);

	if ((w0 >> 24) == 0xff || (w0 & 0xffc00000) == 0xfe800000)
		return 1;
	if (w0 != 0 || a->w[1] != 0)
		return 0;
	if (a->w[2] == 0)
		return a->w[3] == 0 || a->w[3] == bpf_htonl(1);
	return a->w[2] == bpf_htonl(0xffff);
}

#endif /* XDPLB_PARSE6_H */
