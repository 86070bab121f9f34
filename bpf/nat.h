/* nat.h: NAT: forward rewrite toward a backend, reverse NAT of replies (reply fragments too). */
#ifndef XDPLB_NAT_H
#define XDPLB_NAT_H

/* Included once by lb.bpf.c, after next_hop.h and the helpers it uses (addr_port_key,
 * martian_addr). */

/* The checksum difference of TTL - 1 without reading the word: ~old + (old - 0x0100) is
 * -0x0100 in ones'-complement arithmetic, whatever the old word (TTL >= 2: no borrow). */
#define TTL_DECREMENT_DIFF ((__u16)~bpf_htons(0x0100))

/* TTL - 1 (callers ensure TTL >= 2); the checksum difference is TTL_DECREMENT_DIFF. TTL and
 * protocol share one 16-bit word, changed as a whole: a byte store followed by a 16-bit reload
 * would stall on store forwarding. */
static __always_inline void decrement_ttl_only(struct iphdr *ip)
{
	__u16 *word = (__u16 *)&ip->ttl;   /* TTL is the word's first (high-order) byte */

	*word -= bpf_htons(0x0100);
}

/* TTL - 1; returns the IP checksum difference accumulated with `diff`. */
static __always_inline __u32 decrement_ttl(struct iphdr *ip, __u32 diff)
{
	decrement_ttl_only(ip);
	return diff + TTL_DECREMENT_DIFF;
}

/* Applies a pseudo-header/port difference to the TCP or UDP checksum at `l4`. The TCP bound is
 * re-checked because the verifier cannot tie a re-read protocol to the header size checked. */
static __always_inline void update_l4_check(struct packet *p, __u32 diff)
{
	if (p->flow.proto == IPPROTO_TCP) {
		struct tcphdr *tcp = p->l4;
		if ((void *)(tcp + 1) > p->data_end)
			return;
		tcp->check = csum_apply(tcp->check, diff);
	} else {
		struct udphdr *udp = p->l4;
		udp->check = csum_apply_udp(udp->check, diff);
	}
}

/* NAT forward: destination VIP(:port) -> backend(:port), TTL - 1, checksums. The address
 * difference is computed once: the IP header and the L4 pseudo-header both cover daddr. */
static __always_inline void nat_to_backend(struct packet *p, const struct lb_backend *b, __be32 addr)
{
	struct iphdr *ip = p->ip;
	struct l4_ports *ports = p->l4;
	__u32 addr_diff = csum_diff32(0, p->flow.daddr, addr), l4_diff = addr_diff;

	decrement_ttl_only(ip);
	ip->daddr = addr;
	if (b->port && b->port != p->flow.dport) {
		l4_diff = csum_diff16(l4_diff, p->flow.dport, b->port);
		ports->dest = b->port;
	}
	ip->check = csum_apply(ip->check, addr_diff + TTL_DECREMENT_DIFF);
	update_l4_check(p, l4_diff);
}

/* nat_forward() without a fresh next hop: asks the kernel's FIB BEFORE the rewrite (same
 * destination, length and source as after it; the backend's port for the lookup), so that a
 * packet too big for the next hop is answered from the VIP quoting the packet as the client sent
 * it (frag_needed, DF set); otherwise as forward_via_fib after nat_to_backend. */
static __noinline int nat_forward_fib(struct packet *p, struct cached_next_hop *hop,
				      const struct lb_backend *b, __be32 addr)
{
	struct bpf_fib_lookup fib = {};
	int rc;

	next_hop_params(p, addr, &fib);
	if (b->port && p->has_ports)
		fib.dport = b->port;
	rc = bpf_fib_lookup(p->ctx, &fib, sizeof(fib), 0);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED && ip_dont_fragment(p))
		return TOO_BIG_ACTION(fib.mtu_result);     /* nat_forward answers */
	nat_to_backend(p, b, addr);
	if (hop && rc == BPF_FIB_LKUP_RET_SUCCESS)
		remember_next_hop(p, hop, addr, &fib);
	return send(p, rc, &fib, LB_REASON_FORWARDED);
}

/* NAT forward to backend p->backend_id `b` at `addr`: through its remembered next hop while
 * fresh (it passed the kernel's MTU check for a packet at least this long: the rewrite keeps the
 * length), else nat_forward_fib. */
static __always_inline int nat_forward(struct packet *p, const struct lb_backend *b, __be32 addr)
{
	struct cached_next_hop *hop = next_hop_slot(&next_hops, p->backend_id);
	int action;

	if (hop && next_hop_fresh(p, hop, addr)) {
		nat_to_backend(p, b, addr);
		return send_to(p, hop->egress_ifindex, &hop->macs, LB_REASON_FORWARDED);
	}
	action = nat_forward_fib(p, hop, b, addr);
	if (action < 0)
		return frag_needed(p, TOO_BIG_MTU(action));
	return action;
}

/* NAT reply: source backend(:port) -> VIP(:vport), TTL - 1, checksums (as nat_to_backend).
 * A reply fragment: every fragment gets the address (and its IP checksum); only the first
 * carries the L4 header, whose checksum covers the whole datagram: the incremental update by
 * the changed address and port is exactly the whole datagram's new checksum, so it is applied
 * there as for a whole packet. Later fragments (no ports, has_ports 0) get the address only. */
static __always_inline void nat_to_client(struct packet *p, const struct lb_reverse *rev)
{
	struct iphdr *ip = p->ip;
	struct l4_ports *ports = p->l4;
	__u32 addr_diff = csum_diff32(0, p->flow.saddr, rev->vip), l4_diff = addr_diff;

	decrement_ttl_only(ip);
	ip->saddr = rev->vip;
	ip->check = csum_apply(ip->check, addr_diff + TTL_DECREMENT_DIFF);
	if (!p->has_ports)
		return;
	if (rev->vport && rev->vport != p->flow.sport) {
		l4_diff = csum_diff16(l4_diff, p->flow.sport, rev->vport);
		ports->source = rev->vport;
	}
	update_l4_check(p, l4_diff);
}

/* A NAT reply about to be sent: counted under its reverse entry's service and backend, TTL
 * checked, source rewritten. Returns -1 to go on sending, else the verdict (TTL <= 1). */
static __always_inline int nat_reply(struct packet *p, const struct lb_reverse *rev)
{
	p->service_id = rev->service_id;
	p->backend_id = rev->backend_id;
	if (p->ip->ttl <= 1)
		return verdict(p, XDP_PASS, LB_REASON_TTL);
	nat_to_client(p, rev);
	return -1;
}

/* from_backend() without a fresh next hop toward the client: asks the kernel's FIB. A
 * subprogram so that zeroing the lookup struct stays off the common path (see forward_via_fib).
 * The destination is the same before and after the rewrite: it is looked up first, so that what
 * the kernel would not forward is left alone. NOT_FWDED covers both this host's own addresses
 * (a backend answering the daemon's health checks) and destinations with no route; neither is
 * a client of a VIP. */
static __noinline int from_backend_fib(struct packet *p, const struct lb_reverse *rev,
				       struct cached_next_hop *hop)
{
	struct bpf_fib_lookup fib = {};
	int rc, action;

	rc = next_hop(p, p->flow.daddr, &fib);
	if (rc == BPF_FIB_LKUP_RET_NOT_FWDED)
		return verdict(p, XDP_PASS, LB_REASON_NOT_VIP);
	action = nat_reply(p, rev);
	if (action >= 0)
		return action;
	if (hop && rc == BPF_FIB_LKUP_RET_SUCCESS)
		remember_next_hop(p, hop, p->ip->daddr, &fib);
	return send(p, rc, &fib, LB_REASON_REVERSED);
}

/* A NAT reply (reverse entry rev) toward its client: a martian client is dropped. A remembered
 * next hop toward the client was a SUCCESS (so the client is not local). */
static __always_inline int reply_to_client(struct packet *p, const struct lb_reverse *rev)
{
	struct cached_next_hop *hop;
	int action;

	if (martian_addr(p->flow.daddr))
		return verdict(p, XDP_DROP, LB_REASON_MARTIAN);
	hop = next_hop_slot(&client_next_hops, client_slot(p->flow.daddr));
	if (!hop || !next_hop_fresh(p, hop, p->flow.daddr))
		return from_backend_fib(p, rev, hop);
	action = nat_reply(p, rev);
	if (action >= 0)
		return action;
	return send_to(p, hop->egress_ifindex, &hop->macs, LB_REASON_REVERSED);
}

/* Not to a VIP: a NAT-mode reply from a backend (exact source port, then any port), else not
 * ours. Whole TCP/UDP packets and first fragments (ports in flow). */
static __always_inline int from_backend(struct packet *p)
{
	__u64 key = addr_port_key(p->flow.saddr, p->flow.sport, p->flow.proto);
	struct lb_reverse *rev;

	rev = bpf_map_lookup_elem(&reverse, &key);
	if (!rev) {
		key = addr_port_key(p->flow.saddr, 0, p->flow.proto);
		rev = bpf_map_lookup_elem(&reverse, &key);
		if (!rev)
			return verdict(p, XDP_PASS, LB_REASON_NOT_VIP);
	}
	return reply_to_client(p, rev);
}

/* Not to a VIP: a later fragment (no ports) of a NAT reply, translated when its backend address
 * answers for exactly one VIP in this protocol (reverse_frags), else not ours. */
static __always_inline int fragment_from_backend(struct packet *p)
{
	__u64 key = addr_port_key(p->flow.saddr, 0, p->flow.proto);
	struct lb_reverse *rev = bpf_map_lookup_elem(&reverse_frags, &key);

	if (!rev)
		return verdict(p, XDP_PASS, LB_REASON_NOT_VIP);
	return reply_to_client(p, rev);
}

#endif /* XDPLB_NAT_H */
