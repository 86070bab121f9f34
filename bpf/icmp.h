/* icmp.h: ICMP: echo reply, time exceeded for NAT packets, errors quoting a VIP to its backend. */
#ifndef XDPLB_ICMP_H
#define XDPLB_ICMP_H

/* Included once by lb.bpf.c, after nat.h and the helpers it uses (csum_fold64, find_service,
 * pick_backend, flow_hash). */

/* The longest ICMP message whose checksum is verified, in 32-bit words (no single-buffer XDP
 * frame is longer; a longer one is treated as failing). */
#define ICMP_CSUM_MAX_WORDS 1024

/* The ones'-complement sum of `left` bytes from frame offset `off` added to `sum`, folded to 16
 * bits; -1 when the region leaves the frame or is longer than ICMP_CSUM_MAX_WORDS words. A
 * GLOBAL function: the verifier checks it once, on its own, whatever the callers' packet states
 * (the IPv6 path reaches it with many), and the caller continues from one state. Used by the
 * ICMP (echo) and ICMPv6 (echo, the errors it builds) paths. */
__noinline int csum_region(struct xdp_md *ctx, __u32 off, __u32 left, __u64 sum)
{
	void *pos = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;

	if (off > 0x3fff)
		return -1;
	asm volatile("%0 &= 0x3fff" : "+r"(off));   /* a bound the verifier sees */
	pos += off;
	for (int i = 0; i < ICMP_CSUM_MAX_WORDS; i++) {
		if (left < 4)
			break;
		/* Walked as a pointer checked against the end each time (hidden from the compiler,
		 * which would otherwise rewrite the check in a form the verifier cannot follow). */
		asm volatile("" : "+r"(pos));
		if (pos + 4 > end)
			return -1;
		sum += *(__u32 *)pos;
		pos += 4;
		left -= 4;
	}
	if (left >= 4)
		return -1;
	asm volatile("" : "+r"(pos));
	if (left >= 2) {
		if (pos + 2 > end)
			return -1;
		sum += *(__u16 *)pos;
		pos += 2;
		left -= 2;
	}
	asm volatile("" : "+r"(pos));
	if (left) {
		if (pos + 1 > end)
			return -1;
		/* The odd last byte is the high byte of a zero-padded word: in the natively loaded
		 * (little-endian) sum that is the low byte, in a big-endian one the high byte. */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
		sum += *(__u8 *)pos;
#else
		sum += (__u32)*(__u8 *)pos << 8;
#endif
	}
	return csum_fold64(sum);
}

/* The ICMP message (payload_len bytes from l4) sums to 0xffff. */
static __always_inline int icmp_checksum_ok(struct packet *p)
{
	return csum_region(p->ctx, p->l4 - (void *)(long)p->ctx->data, p->payload_len, 0) == 0xffff;
}

/* TTL and tos of the ICMP errors the program sends (tos: precedence internetwork control, as
 * Linux's own ICMP errors). */
#define ICMP_ERROR_TTL 64
#define ICMP_ERROR_TOS 0xc0
#define ICMP_TIME_EXCEEDED_LEN (sizeof(struct iphdr) + sizeof(struct icmphdr))  /* prepended: 28 */

/* A NAT packet to a VIP whose TTL would expire here (<= 1): as a router (RFC 1812 5.3.1), the
 * program answers ICMP time exceeded (in transit) itself, quoting the IP header as received and
 * 8 bytes of its payload (RFC 792), from the VIP (the address the client sent to: its traceroute
 * shows the VIP, and the answer passes source filters that an interface address might not),
 * back out the ingress interface (send_back: XDP_TX, or a redirect with settings.tx_redirect).
 * The frame is cut to the quote and grown at the front
 * by the new IP and ICMP headers. Packet pointers are invalid afterwards (only scalars of p are
 * used after the call). Needs >= 8 payload bytes (callers have a TCP/UDP header). */
static __noinline int ttl_expired(struct packet *p)
{
	struct xdp_md *ctx = p->ctx;
	struct mac_pair macs __attribute__((aligned(8)));
	__u32 hdr_len = p->ip->ihl * 4, quoted = hdr_len + 8, words = quoted / 4, i;
	__be32 client = p->flow.saddr, vip = p->flow.daddr;
	__u8 tos = (p->ip->tos & IPTOS_TOS_MASK) | ICMP_ERROR_TOS;
	struct ethhdr *eth;
	struct iphdr *ip;
	struct icmphdr *icmp;
	const __u32 *w;
	void *data, *end;
	__u64 sum;

	__builtin_memcpy(macs.dest, p->eth->h_source, ETH_ALEN);
	__builtin_memcpy(macs.source, p->eth->h_dest, ETH_ALEN);
	if (bpf_xdp_adjust_tail(ctx, (int)(sizeof(*eth) + quoted) - (int)(p->data_end - (void *)p->eth)))
		return verdict(p, XDP_DROP, LB_REASON_TTL);
	if (bpf_xdp_adjust_head(ctx, -(int)ICMP_TIME_EXCEEDED_LEN))
		return verdict(p, XDP_DROP, LB_REASON_TTL);
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	ip = data + sizeof(*eth);
	icmp = (void *)(ip + 1);
	if ((void *)(icmp + 1) > end)
		return verdict(p, XDP_DROP, LB_REASON_TTL);
	copy_macs(eth, &macs);
	eth->h_proto = bpf_htons(ETH_P_IP);
	*(__u8 *)ip = 0x45;
	ip->tos = tos;
	ip->tot_len = bpf_htons(ICMP_TIME_EXCEEDED_LEN + quoted);
	ip->id = 0;
	ip->frag_off = 0;
	ip->ttl = ICMP_ERROR_TTL;
	ip->protocol = IPPROTO_ICMP;
	ip->check = 0;
	ip->saddr = vip;
	ip->daddr = client;
	w = (const void *)ip;
	ip->check = ~csum_fold64((__u64)w[0] + w[1] + w[2] + w[3] + w[4]);
	icmp->type = ICMP_TIME_EXCEEDED;
	icmp->code = 0;
	icmp->checksum = 0;
	icmp->rest = 0;
	/* The ICMP checksum: type/code and the quote (header as received + 8 bytes, whole words). */
	sum = *(__u16 *)icmp;
	w = (const void *)(icmp + 1);
	for (i = 0; i < 17 && i < words; i++) {
		/* Walked as a pointer checked against the end each time (hidden from the compiler,
		 * which would otherwise turn the check into a count the verifier cannot follow). */
		asm volatile("" : "+r"(w));
		if ((void *)(w + 1) > end)
			return verdict(p, XDP_DROP, LB_REASON_TTL);
		sum += *w++;
	}
	icmp->checksum = ~csum_fold64(sum);
	/* As an echo reply: XDP_TX, or the redirect that wakes a veth peer (settings.tx_redirect). */
	return send_back(p, LB_REASON_TTL);
}

/* Echo request to a VIP: answered in place and sent back out the ingress interface. */
static __always_inline int icmp_echo_reply(struct packet *p)
{
	struct ethhdr *eth = p->eth;
	struct iphdr *ip = p->ip;
	struct icmphdr *icmp;
	void *macs = eth;
	__u32 dest_lo = *(__u32 *)macs, source_hi = *(__u32 *)(macs + 8);
	__u16 dest_hi = *(__u16 *)(macs + 4), source_lo = *(__u16 *)(macs + 6);
	__u16 old_word;
	__be32 addr;

	/* A corrupted request is not answered (the reply would carry the corruption back). */
	if (!icmp_checksum_ok(p))
		return verdict(p, XDP_DROP, LB_REASON_BAD_CHECKSUM);
	icmp = p->l4;
	/* Swap the MACs in four loads and four stores (as copy_macs, no alignment needed). */
	*(__u16 *)macs = source_lo;
	*(__u32 *)(macs + 2) = source_hi;
	*(__u32 *)(macs + 6) = dest_lo;
	*(__u16 *)(macs + 10) = dest_hi;
	addr = ip->saddr;               /* swapping addresses leaves every checksum unchanged */
	ip->saddr = ip->daddr;
	ip->daddr = addr;

	old_word = *(__u16 *)icmp;      /* type and code share one checksum word */
	icmp->type = ICMP_ECHOREPLY;
	icmp->checksum = csum_apply(icmp->checksum, csum_diff16(0, old_word, *(__u16 *)icmp));

	old_word = *(__u16 *)&ip->ttl;
	ip->ttl = ECHO_REPLY_TTL;
	ip->check = csum_apply(ip->check, csum_diff16(0, old_word, *(__u16 *)&ip->ttl));
	return send_back(p, LB_REASON_ICMP_ECHO);
}

/* NAT translation of an ICMP error quoting VIP -> client: outer destination and quoted source
 * become the backend's (and the quoted source port, if the backend's differs); the outer IP,
 * quoted IP, quoted L4 (when inside the packet) and ICMP checksums are updated incrementally. */
static __always_inline void nat_icmp_error(struct packet *p, struct iphdr *inner, struct l4_ports *ports,
					   int l4_check_off, const struct lb_backend *b)
{
	struct iphdr *ip = p->ip;
	struct icmphdr *icmp = p->l4;
	__u32 ip_diff, inner_diff, l4_diff, icmp_diff;
	__u16 old_check;

	ip_diff = decrement_ttl(ip, 0);
	ip_diff = csum_diff32(ip_diff, ip->daddr, b->ip);
	ip->daddr = b->ip;
	ip->check = csum_apply(ip->check, ip_diff);

	inner_diff = csum_diff32(0, inner->saddr, b->ip);
	l4_diff = inner_diff;
	icmp_diff = inner_diff;
	inner->saddr = b->ip;
	old_check = inner->check;
	inner->check = csum_apply(old_check, inner_diff);
	icmp_diff = csum_diff16(icmp_diff, old_check, inner->check);

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

/* Destination unreachable / time exceeded quoting a packet VIP -> client: goes to the backend
 * that owns the client -> VIP flow (same choice as the forward direction). */
static __always_inline int icmp_error_to_backend(struct packet *p)
{
	struct icmphdr *icmp = p->l4;
	struct iphdr *inner = (void *)(icmp + 1);
	struct l4_ports *ports;
	struct lb_flow_key key __attribute__((aligned(8))) = {};
	struct lb_service *svc;
	struct lb_backend *b;
	__u32 inner_len, quoted = p->payload_len - sizeof(*icmp);
	int l4_check_off = 0;

	if ((void *)(inner + 1) > p->data_end || quoted < sizeof(*inner))
		return verdict(p, XDP_DROP, LB_REASON_MALFORMED);
	inner_len = inner->ihl * 4;
	if (inner_len < sizeof(*inner) || inner_len + sizeof(*ports) > quoted)
		return verdict(p, XDP_DROP, LB_REASON_MALFORMED);
	ports = (void *)inner + inner_len;
	if ((void *)(ports + 1) > p->data_end)
		return verdict(p, XDP_DROP, LB_REASON_MALFORMED);
	/* A quoted later fragment (offset != 0: a NAT reply's later fragments leave from the VIP)
	 * quotes payload bytes, not ports: there is no flow to find. */
	if ((inner->protocol != IPPROTO_TCP && inner->protocol != IPPROTO_UDP) ||
	    inner->saddr != p->flow.daddr || (inner->frag_off & bpf_htons(IP_OFFSET)))
		return verdict(p, XDP_DROP, LB_REASON_ICMP_UNSUPPORTED);

	svc = find_service(inner->saddr, ports->source, inner->protocol);
	if (!svc)
		return verdict(p, XDP_DROP, LB_REASON_NO_SERVICE);
	p->service_id = svc->id;
	key.saddr = inner->daddr;
	key.daddr = inner->saddr;
	key.sport = ports->dest;
	key.dport = ports->source;
	key.proto = inner->protocol;
	/* An error must not create flow state (it looks, remembers nothing, marks nothing). */
	b = pick_backend(p, svc, &key, flow_hash(key.saddr, key.daddr, key.sport, key.dport, key.proto), 0, 0);
	if (!b)
		return verdict(p, XDP_DROP, LB_REASON_NO_BACKEND);
	if (svc->mode == LB_MODE_DSR)
		return forward(p, b->ip, LB_REASON_ICMP_ERROR);
	if (p->ip->ttl <= 1)
		return verdict(p, XDP_PASS, LB_REASON_TTL);

	/* The quoted L4 checksum is fixed only if it lies inside the quoted bytes. */
	if (inner->protocol == IPPROTO_TCP && inner_len + TCP_CHECK_OFF + 2 <= quoted)
		l4_check_off = TCP_CHECK_OFF;
	else if (inner->protocol == IPPROTO_UDP && inner_len + UDP_CHECK_OFF + 2 <= quoted)
		l4_check_off = UDP_CHECK_OFF;
	nat_icmp_error(p, inner, ports, l4_check_off, b);
	return forward(p, b->ip, LB_REASON_ICMP_ERROR);
}

static __always_inline int icmp_to_vip(struct packet *p)
{
	struct icmphdr *icmp = p->l4;

	if (icmp->type == ICMP_ECHO)
		return icmp_echo_reply(p);
	if (icmp->type == ICMP_DEST_UNREACH || icmp->type == ICMP_TIME_EXCEEDED)
		return icmp_error_to_backend(p);
	return verdict(p, XDP_DROP, LB_REASON_ICMP_UNSUPPORTED);
}

#endif /* XDPLB_ICMP_H */
