/* icmp6.h: ICMPv6 to a VIP: echo reply, time exceeded for NAT66 packets, errors quoting a VIP
 * flow to its backend (the IPv6 siblings of icmp.h). */
#ifndef XDPLB_ICMP6_H
#define XDPLB_ICMP6_H

/* Included once by lb.bpf.c, after icmp.h (csum_region) and nat6.h. */

struct icmp6_fixed {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be32 rest;        /* echo id/sequence, unused, MTU (packet too big), pointer */
};

#define ICMP6_ERROR_HOP_LIMIT 64
#define ICMP6_ERROR_LEN (sizeof(struct ipv6_fixed) + sizeof(struct icmp6_fixed))  /* prepended: 48 */
/* RFC 4443 2.4 (c): as much of the invoking packet as fits in the minimum MTU (1280) */
#define ICMP6_QUOTE_MAX (1280 - ICMP6_ERROR_LEN)

/* The pseudo-header sum (RFC 8200 8.1) of an upper-layer message of `len` bytes, natively loaded. */
static __always_inline __u64 pseudo6_sum(const lb_in6 *src, const lb_in6 *dst, __u32 len, __u8 nh)
{
	return (__u64)src->w[0] + src->w[1] + src->w[2] + src->w[3] + dst->w[0] + dst->w[1] + dst->w[2] +
	       dst->w[3] + bpf_htonl(len) + bpf_htonl(nh);
}

/* An ICMPv6 error (`type`, code 0, the 4 bytes after the checksum `rest`) about a TCP/UDP
 * packet to a VIP, from the VIP to the client, quoting the invoking packet as received (not
 * rewritten) up to ICMP6_QUOTE_MAX bytes, back out the ingress interface, counted under `reason`
 * (as icmp_error_from_vip). */
static __noinline int icmp6_error_from_vip(struct packet *p, __u8 type, __be32 rest, __u8 reason)
{
	struct xdp_md *ctx = p->ctx;
	/* The MACs as three words (not 12 bytes, each of which would be spilled across the
	 * helper calls below: this function is the leaf of the deepest call chain, whose combined
	 * stack the verifier limits to 512 bytes). The frame needs no alignment for that (see
	 * copy_macs). */
	const void *old = p->eth;
	__u32 dest_lo = *(const __u32 *)old, source_hi = *(const __u32 *)(old + 8);
	__u32 macs_mid = *(const __u32 *)(old + 4);     /* dest[4..5], source[0..1] */
	__u32 quoted = ip6_len(p);
	struct ethhdr *eth;
	struct ipv6_fixed *ip6, *invoking;
	struct icmp6_fixed *icmp;
	void *data, *end;
	int folded;

	if (quoted > ICMP6_QUOTE_MAX)
		quoted = ICMP6_QUOTE_MAX;
	if (bpf_xdp_adjust_tail(ctx, (int)(sizeof(*eth) + quoted) - (int)(p->data_end - old)))
		return verdict(p, XDP_DROP, reason);
	if (bpf_xdp_adjust_head(ctx, -(int)ICMP6_ERROR_LEN))
		return verdict(p, XDP_DROP, reason);
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	ip6 = data + sizeof(*eth);
	icmp = (void *)(ip6 + 1);
	invoking = (void *)(icmp + 1);   /* the quote begins with the invoking header: its addresses */
	if ((void *)(invoking + 1) > end)
		return verdict(p, XDP_DROP, reason);
	/* destination <- the received source, source <- the received destination */
	*(__u16 *)eth = (__u16)(macs_mid >> 16 * (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__));
	*(__u32 *)((void *)eth + 2) = source_hi;
	*(__u32 *)((void *)eth + 6) = dest_lo;
	*(__u16 *)((void *)eth + 10) = (__u16)(macs_mid >> 16 * (__BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__));
	eth->h_proto = bpf_htons(ETH_P_IPV6);
	ip6->vtc_flow = bpf_htonl(0x60000000);
	ip6->payload_len = bpf_htons(sizeof(*icmp) + quoted);
	ip6->nexthdr = NH_ICMPV6;
	ip6->hop_limit = ICMP6_ERROR_HOP_LIMIT;
	ip6->saddr = invoking->daddr;    /* from the VIP */
	ip6->daddr = invoking->saddr;    /* to the client */
	icmp->type = type;
	icmp->code = 0;
	icmp->checksum = 0;
	icmp->rest = rest;
	folded = csum_region(ctx, (void *)icmp - data, sizeof(*icmp) + quoted,
			     pseudo6_sum(&ip6->saddr, &ip6->daddr, sizeof(*icmp) + quoted, NH_ICMPV6));
	if (folded < 0)
		return verdict(p, XDP_DROP, reason);
	icmp->checksum = ~(__u16)folded;
	return send_back(p, reason);
}

/* A NAT66 TCP/UDP packet to a VIP whose hop limit would expire here (<= 1): ICMPv6 time exceeded
 * (type 3, code 0) from the VIP to the client. */
static __always_inline int ttl_expired6(struct packet *p)
{
	return icmp6_error_from_vip(p, ICMPV6_TIME_EXCEED, 0, LB_REASON_TTL);
}

/* A packet to an IPv6 VIP (NAT66: not yet rewritten; DSR) longer than the MTU `mtu` of the next
 * hop toward its backend: ICMPv6 Packet Too Big (type 2, code 0) with that MTU (RFC 4443 3.2,
 * RFC 8201), from the VIP, quoting the packet as the client sent it (see frag_needed). */
static __always_inline int packet_too_big6(struct packet *p, __u32 mtu)
{
	return icmp6_error_from_vip(p, ICMPV6_PKT_TOOBIG, bpf_htonl(mtu), LB_REASON_TOO_BIG);
}

/* Echo request to a VIP: verified over the pseudo-header, answered in place (echo reply from the
 * VIP, hop limit 64) and sent back out the ingress interface. */
static __always_inline int icmp6_echo_reply(struct packet *p)
{
	struct ethhdr *eth = p->eth;
	struct ipv6_fixed *ip6 = p->ip6;
	struct icmp6_fixed *icmp = p->l4;
	void *macs = eth;
	__u32 dest_lo, source_hi;
	__u16 dest_hi, source_lo, old_word;
	lb_in6 addr;

	if (csum_region(p->ctx, p->l4 - (void *)(long)p->ctx->data, p->payload_len,
			pseudo6_sum(&ip6->saddr, &ip6->daddr, p->payload_len, NH_ICMPV6)) != 0xffff)
		return verdict(p, XDP_DROP, LB_REASON_BAD_CHECKSUM);
	if ((void *)(icmp + 1) > p->data_end || (void *)(ip6 + 1) > p->data_end || (void *)(eth + 1) > p->data_end)
		return verdict(p, XDP_DROP, LB_REASON_MALFORMED);
	dest_lo = *(__u32 *)macs;
	source_hi = *(__u32 *)(macs + 8);
	dest_hi = *(__u16 *)(macs + 4);
	source_lo = *(__u16 *)(macs + 6);
	*(__u16 *)macs = source_lo;
	*(__u32 *)(macs + 2) = source_hi;
	*(__u32 *)(macs + 6) = dest_lo;
	*(__u16 *)(macs + 10) = dest_hi;
	addr = ip6->saddr;              /* swapping addresses leaves the pseudo-header sum unchanged */
	ip6->saddr = ip6->daddr;
	ip6->daddr = addr;
	ip6->hop_limit = ICMP6_ERROR_HOP_LIMIT;
	old_word = *(__u16 *)icmp;
	icmp->type = ICMPV6_ECHO_REPLY;
	icmp->checksum = csum_apply(icmp->checksum, csum_diff16(0, old_word, *(__u16 *)icmp));
	return send_back(p, LB_REASON_ICMP_ECHO);
}

/* NAT66 translation of an ICMPv6 error quoting VIP -> client (nat_icmp_error's rules): the outer
 * destination and the quoted source become the backend's (and the quoted source port); the quoted
 * L4 checksum (when quoted) and the ICMPv6 checksum (its pseudo-header has the outer destination)
 * are updated incrementally; hop limit - 1. */
static __always_inline void nat66_icmp_error(struct packet *p, struct ipv6_fixed *inner, struct l4_ports *ports,
					     int l4_check_off, const struct lb_backend6 *b)
{
	struct ipv6_fixed *ip6 = p->ip6;
	struct icmp6_fixed *icmp = p->l4;
	__u32 inner_diff, l4_diff, icmp_diff;
	__u16 old_check;

	if ((void *)(icmp + 1) > p->data_end)
		return;
	ip6->hop_limit--;
	icmp_diff = csum_diff_in6(&ip6->daddr, &b->ip);
	ip6->daddr = b->ip;

	inner_diff = csum_diff_in6(&inner->saddr, &b->ip);
	l4_diff = inner_diff;
	icmp_diff += inner_diff;
	inner->saddr = b->ip;

	if (b->port && b->port != ports->source) {
		l4_diff = csum_diff16(l4_diff, ports->source, b->port);
		icmp_diff = csum_diff16(icmp_diff, ports->source, b->port);
		ports->source = b->port;
	}
	if (l4_check_off == TCP_CHECK_OFF) {
		__u16 *check = (void *)ports + TCP_CHECK_OFF;
		if ((void *)(check + 1) <= p->data_end) {
			old_check = *check;
			*check = csum_apply(old_check, l4_diff);
			icmp_diff = csum_diff16(icmp_diff, old_check, *check);
		}
	} else if (l4_check_off == UDP_CHECK_OFF) {
		__u16 *check = (void *)ports + UDP_CHECK_OFF;
		if ((void *)(check + 1) <= p->data_end) {
			old_check = *check;
			*check = csum_apply_udp(old_check, l4_diff);
			icmp_diff = csum_diff16(icmp_diff, old_check, *check);
		}
	}
	icmp->checksum = csum_apply(icmp->checksum, icmp_diff);
}

/* Destination unreachable, packet too big, time exceeded, parameter problem quoting a TCP/UDP
 * packet VIP -> client (no extension headers in the quote): to the backend owning the client ->
 * VIP flow, as icmp_error_to_backend. */
static __always_inline int icmp6_error_to_backend(struct packet *p)
{
	struct icmp6_fixed *icmp = p->l4;
	struct ipv6_fixed *inner = (void *)(icmp + 1);
	struct l4_ports *ports;
	struct lb_flow_key6 key __attribute__((aligned(8))) = {};
	struct lb_service *svc;
	struct lb_backend6 *b;
	__u32 quoted = p->payload_len - sizeof(*icmp);
	int l4_check_off = 0;

	if ((void *)(inner + 1) > p->data_end || p->payload_len < sizeof(*icmp) + sizeof(*inner) + sizeof(*ports))
		return verdict(p, XDP_DROP, LB_REASON_MALFORMED);
	ports = (void *)(inner + 1);
	if ((void *)(ports + 1) > p->data_end)
		return verdict(p, XDP_DROP, LB_REASON_MALFORMED);
	if ((inner->nexthdr != IPPROTO_TCP && inner->nexthdr != IPPROTO_UDP) ||
	    !same_in6(&inner->saddr, &p->flow6.daddr))
		return verdict(p, XDP_DROP, LB_REASON_ICMP_UNSUPPORTED);

	svc = find_service6(&inner->saddr, fold6(&inner->saddr), ports->source, inner->nexthdr);
	if (!svc)
		return verdict(p, XDP_DROP, LB_REASON_NO_SERVICE);
	p->service_id = svc->id;
	key.saddr = inner->daddr;
	key.daddr = inner->saddr;
	key.sport = ports->dest;
	key.dport = ports->source;
	key.proto = inner->nexthdr;
	b = pick_backend6(p, svc, &key, flow_hash6(&key.saddr, &key.daddr, key.sport, key.dport, key.proto, hash_seed),
			  0, 0);
	if (!b)
		return verdict(p, XDP_DROP, LB_REASON_NO_BACKEND);
	if (svc->mode == LB_MODE_DSR)
		return forward6(p, &b->ip, LB_REASON_ICMP_ERROR);
	if (p->ip6->hop_limit <= 1)
		return verdict(p, XDP_PASS, LB_REASON_TTL);
	if (key.proto == IPPROTO_TCP && sizeof(*inner) + TCP_CHECK_OFF + 2 <= quoted)
		l4_check_off = TCP_CHECK_OFF;
	else if (key.proto == IPPROTO_UDP && sizeof(*inner) + UDP_CHECK_OFF + 2 <= quoted)
		l4_check_off = UDP_CHECK_OFF;
	nat66_icmp_error(p, inner, ports, l4_check_off, b);
	return forward6(p, &b->ip, LB_REASON_ICMP_ERROR);
}

/* A whole ICMPv6 message to a VIP (p->l4: its fixed header, checked). A subprogram called by
 * xdp_lb (process() after process6 returns PROCESS6_ICMP_TO_VIP), not by process6: the error
 * translation's many live values would otherwise grow process6's frame, which sits under every
 * FIB leaf of the deepest call chain (the verifier limits the combined stack to 512 bytes). */
static __noinline int icmp6_to_vip(struct packet *p)
{
	struct icmp6_fixed *icmp = p->l4;

	if (icmp->type == ICMPV6_ECHO_REQUEST)
		return icmp6_echo_reply(p);
	if (icmp->type >= ICMPV6_DEST_UNREACH && icmp->type <= ICMPV6_PARAMPROB)
		return icmp6_error_to_backend(p);
	return verdict(p, XDP_DROP, LB_REASON_ICMP_UNSUPPORTED);
}

#endif /* XDPLB_ICMP6_H */
