/* nat6.h: IPv6 next hops (bpf_fib_lookup AF_INET6, next_hops6 / client_next_hops6), NAT66
 * forward and reverse rewrites. The IPv6 siblings of next_hop.h and nat.h; sending itself
 * (send_to, send_back, send) is shared. */
#ifndef XDPLB_NAT6_H
#define XDPLB_NAT6_H

/* Included once by lb.bpf.c, after next_hop.h and nat.h. */

#define AF_INET6 10


/* The IPv6 packet's length (40 + payload length), what the kernel's MTU check compares. */
static __always_inline __u32 ip6_len(const struct packet *p)
{
	return sizeof(struct ipv6_fixed) + bpf_ntohs(p->ip6->payload_len);
}

/* Asks the kernel's FIB and neighbour tables for the next hop of `dst` (fills `fib`). */
static __always_inline int next_hop6(struct packet *p, const lb_in6 *dst, struct bpf_fib_lookup *fib)
{
	struct ipv6_fixed *ip6 = p->ip6;

	fib->family = AF_INET6;
	fib->flowinfo = ip6->vtc_flow & bpf_htonl(0x0fffffff);
	fib->l4_protocol = p->flow6.proto;
	fib->tot_len = ip6_len(p);
	__builtin_memcpy(fib->ipv6_src, &ip6->saddr, 16);
	__builtin_memcpy(fib->ipv6_dst, dst, 16);
	fib->ifindex = p->ingress_ifindex;
	if (p->has_ports) {
		struct l4_ports *ports = p->l4;
		fib->sport = ports->source;
		fib->dport = ports->dest;
	}
	return bpf_fib_lookup(p->ctx, fib, sizeof(*fib), 0);
}

/* A remembered IPv6 next hop answers for this packet (the rules of next_hop_fresh). */
static __always_inline int next_hop6_fresh(const struct packet *p, const struct cached_next_hop6 *hop,
					   const lb_in6 *dst)
{
	return same_in6(&hop->dst, dst) && hop->ingress_ifindex == p->ingress_ifindex &&
	       ip6_len(p) <= hop->max_tot_len && bpf_jiffies64() < hop->expires_jiffies;
}

static __always_inline void remember_next_hop6(const struct packet *p, struct cached_next_hop6 *hop,
					       const lb_in6 *dst, const struct bpf_fib_lookup *fib)
{
	hop->expires_jiffies = bpf_jiffies64() + nexthop_ttl_ns / LONGEST_TICK_NS;
	hop->dst = *dst;
	hop->ingress_ifindex = p->ingress_ifindex;
	hop->egress_ifindex = fib->ifindex;
	hop->max_tot_len = ip6_len(p);
	__builtin_memcpy(hop->macs.dest, fib->dmac, ETH_ALEN);
	__builtin_memcpy(hop->macs.source, fib->smac, ETH_ALEN);
}

static __always_inline struct cached_next_hop6 *next_hop6_slot(void *cache, __u32 index)
{
	if (nexthop_ttl_ns < LONGEST_TICK_NS)
		return NULL;
	return bpf_map_lookup_elem(cache, &index);
}

/* forward6() without a fresh next hop (a subprogram, as forward_via_fib). */
static __noinline int forward6_fib(struct packet *p, struct cached_next_hop6 *hop, const lb_in6 *dst,
				   __u8 sent_reason)
{
	struct bpf_fib_lookup fib = {};
	int rc;

	rc = next_hop6(p, dst, &fib);
	/* A DSR packet (FORWARDED, not rewritten) too big for the next hop: Packet Too Big from the VIP. */
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED && sent_reason == LB_REASON_FORWARDED)
		return TOO_BIG_ACTION(fib.mtu_result);    /* forward6 answers */
	if (hop && rc == BPF_FIB_LKUP_RET_SUCCESS)
		remember_next_hop6(p, hop, dst, &fib);
	return send(p, rc, &fib, sent_reason);
}

/* Sends the packet to IPv6 backend p->backend_id at `dst` (next hop remembered per backend). */
static __always_inline int forward6(struct packet *p, const lb_in6 *dst, __u8 sent_reason)
{
	struct cached_next_hop6 *hop = next_hop6_slot(&next_hops6, p->backend_id);
	int action;

	if (hop && next_hop6_fresh(p, hop, dst))
		return send_to(p, hop->egress_ifindex, &hop->macs, sent_reason);
	action = forward6_fib(p, hop, dst, sent_reason);
	if (action < 0)
		return packet_too_big6(p, TOO_BIG_MTU(action));
	return action;
}

/* The client_next_hops6 slot of a client address. */
static __always_inline __u32 client_slot6(const lb_in6 *client)
{
	return (fold6(client) * 2654435761u) >> (32 - CLIENT_NEXT_HOPS_BITS);
}

/* The change of a 16-byte address as a checksum difference (16 bits, for csum_diff16 and
 * csum_apply): the words summed 32 bits at a time in a 64-bit accumulator, ~from for -from. The
 * 32-bit ones'-complement sum folded to 16 bits is the 16-bit sum of the halves (RFC 1071), and a
 * 32-bit ~ complements both halves: half the operations of eight csum_diff16 steps. */
static __always_inline __u32 csum_diff_in6(const lb_in6 *from, const lb_in6 *to)
{
	__u64 sum = (__u64)(__u32)~from->w[0] + (__u32)~from->w[1] + (__u32)~from->w[2] + (__u32)~from->w[3];

	sum += (__u64)to->w[0] + to->w[1] + to->w[2] + to->w[3];
	return csum_fold64(sum);
}

/* Applies a pseudo-header/port difference to the TCP or UDP checksum at l4 (IPv6: a UDP
 * checksum is never 0 here, such packets are dropped before). */
static __always_inline void update_l4_check6(struct packet *p, __u32 diff)
{
	if (p->flow6.proto == IPPROTO_TCP) {
		struct tcphdr *tcp = p->l4;
		if ((void *)(tcp + 1) > p->data_end)
			return;
		tcp->check = csum_apply(tcp->check, diff);
	} else {
		struct udphdr *udp = p->l4;
		if ((void *)(udp + 1) > p->data_end)
			return;
		udp->check = csum_apply_udp(udp->check, diff);
	}
}

/* A UDP header (l4, has_ports) whose checksum is 0: forbidden over IPv6 (RFC 8200 8.1). */
static __always_inline int udp6_zero_checksum(const struct packet *p)
{
	const struct udphdr *udp = p->l4;

	return p->flow6.proto == IPPROTO_UDP && (void *)(udp + 1) <= p->data_end && udp->check == 0;
}

/* NAT66 forward: destination VIP(:port) -> backend(:port), hop limit - 1, L4 checksum (IPv6 has
 * no header checksum; the pseudo-header covers the address). */
static __always_inline void nat66_to_backend(struct packet *p, const struct lb_backend6 *b)
{
	struct ipv6_fixed *ip6 = p->ip6;
	struct l4_ports *ports = p->l4;
	__u32 diff = csum_diff_in6(&p->flow6.daddr, &b->ip);

	ip6->hop_limit--;
	ip6->daddr = b->ip;
	if (b->port && b->port != p->flow6.dport) {
		diff = csum_diff16(diff, p->flow6.dport, b->port);
		ports->dest = b->port;
	}
	update_l4_check6(p, diff);
}

/* nat66_forward() without a fresh next hop: the FIB lookup BEFORE the rewrite (as
 * nat_forward_fib): too big for the next hop -> Packet Too Big from the VIP quoting the packet as
 * the client sent it; otherwise rewrite and send. */
static __noinline int nat66_forward_fib(struct packet *p, struct cached_next_hop6 *hop,
					const struct lb_backend6 *b)
{
	struct bpf_fib_lookup fib = {};
	int rc;

	/* b->ip itself (a backends6 value), not a copy on this (leaf) stack */
	rc = next_hop6(p, &b->ip, &fib);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
		return TOO_BIG_ACTION(fib.mtu_result);    /* nat66_forward answers */
	nat66_to_backend(p, b);
	if (hop && rc == BPF_FIB_LKUP_RET_SUCCESS)
		remember_next_hop6(p, hop, &b->ip, &fib);
	return send(p, rc, &fib, LB_REASON_FORWARDED);
}

/* NAT66 forward to backend p->backend_id `b`: through its remembered next hop while fresh (the
 * rewrite keeps the length), else nat66_forward_fib. */
static __always_inline int nat66_forward(struct packet *p, const struct lb_backend6 *b)
{
	struct cached_next_hop6 *hop = next_hop6_slot(&next_hops6, p->backend_id);
	int action;

	if (hop && next_hop6_fresh(p, hop, &b->ip)) {
		nat66_to_backend(p, b);
		return send_to(p, hop->egress_ifindex, &hop->macs, LB_REASON_FORWARDED);
	}
	action = nat66_forward_fib(p, hop, b);
	if (action < 0)
		return packet_too_big6(p, TOO_BIG_MTU(action));
	return action;
}

/* NAT66 reply: source backend(:port) -> VIP(:vport), hop limit - 1, L4 checksum; a later fragment
 * (no ports) gets the address only (as nat_to_client). */
static __always_inline void nat66_to_client(struct packet *p, const struct lb_reverse6 *rev)
{
	struct ipv6_fixed *ip6 = p->ip6;
	struct l4_ports *ports = p->l4;
	__u32 diff = csum_diff_in6(&p->flow6.saddr, &rev->vip);

	ip6->hop_limit--;
	ip6->saddr = rev->vip;
	if (!p->has_ports)
		return;
	if (rev->vport && rev->vport != p->flow6.sport) {
		diff = csum_diff16(diff, p->flow6.sport, rev->vport);
		ports->source = rev->vport;
	}
	update_l4_check6(p, diff);
}

/* A NAT66 reply about to be sent (the rules of nat_reply): -1 to go on, else the verdict. */
static __always_inline int nat66_reply(struct packet *p, const struct lb_reverse6 *rev)
{
	p->service_id = rev->service_id;
	p->backend_id = rev->backend_id;
	if (p->ip6->hop_limit <= 1)
		return verdict(p, XDP_PASS, LB_REASON_TTL);
	nat66_to_client(p, rev);
	return -1;
}

static __noinline int from_backend6_fib(struct packet *p, const struct lb_reverse6 *rev,
					struct cached_next_hop6 *hop)
{
	struct bpf_fib_lookup fib = {};
	int rc, action;

	rc = next_hop6(p, &p->flow6.daddr, &fib);
	if (rc == BPF_FIB_LKUP_RET_NOT_FWDED)
		return verdict(p, XDP_PASS, LB_REASON_NOT_VIP);
	action = nat66_reply(p, rev);
	if (action >= 0)
		return action;
	if (hop && rc == BPF_FIB_LKUP_RET_SUCCESS)
		remember_next_hop6(p, hop, &p->flow6.daddr, &fib);
	return send(p, rc, &fib, LB_REASON_REVERSED);
}

/* A NAT66 reply (reverse6 entry rev) toward its client (the rules of reply_to_client). */
static __always_inline int reply_to_client6(struct packet *p, const struct lb_reverse6 *rev)
{
	struct cached_next_hop6 *hop;
	int action;

	if (martian6(&p->flow6.daddr))
		return verdict(p, XDP_DROP, LB_REASON_MARTIAN);
	if (p->has_ports && udp6_zero_checksum(p))
		return verdict(p, XDP_DROP, LB_REASON_BAD_CHECKSUM);
	hop = next_hop6_slot(&client_next_hops6, client_slot6(&p->flow6.daddr));
	if (!hop || !next_hop6_fresh(p, hop, &p->flow6.daddr))
		return from_backend6_fib(p, rev, hop);
	action = nat66_reply(p, rev);
	if (action >= 0)
		return action;
	return send_to(p, hop->egress_ifindex, &hop->macs, LB_REASON_REVERSED);
}

/* Not to a VIP: a NAT66 reply from a backend (reverse6: exact source port, then any), else not ours. */
static __always_inline int from_backend6(struct packet *p)
{
	struct lb_reverse6_key key = {};
	struct lb_reverse6 *rev;

	key.ip = p->flow6.saddr;
	key.port = p->flow6.sport;
	key.proto = p->flow6.proto;
	rev = bpf_map_lookup_elem(&reverse6, &key);
	if (!rev) {
		key.port = 0;
		rev = bpf_map_lookup_elem(&reverse6, &key);
		if (!rev)
			return verdict(p, XDP_PASS, LB_REASON_NOT_VIP);
	}
	return reply_to_client6(p, rev);
}

/* Not to a VIP: a later fragment of a NAT66 reply, through reverse_frags6, else not ours. */
static __always_inline int fragment_from_backend6(struct packet *p)
{
	struct lb_reverse6_key key = {};
	struct lb_reverse6 *rev;

	key.ip = p->flow6.saddr;
	key.proto = p->flow6.proto;
	rev = bpf_map_lookup_elem(&reverse_frags6, &key);
	if (!rev)
		return verdict(p, XDP_PASS, LB_REASON_NOT_VIP);
	return reply_to_client6(p, rev);
}

#endif /* XDPLB_NAT6_H */
