/* next_hop.h: FIB lookup, the per-CPU next-hop caches, and sending (send_to, send_back, forward). */
#ifndef XDPLB_NEXT_HOP_H
#define XDPLB_NEXT_HOP_H

/* Included once by lb.bpf.c, after struct packet, verdict() and the nexthop_ttl_ns knob. */

/* Next-hop expiry is counted in jiffies: bpf_jiffies64() is inlined by the verifier to one load,
 * where bpf_ktime_get_coarse_ns() is a helper call (~6 ns more per packet here). The tick rate
 * is not known here (CONFIG_HZ as a __kconfig extern would make loading fail wherever the kernel
 * config is unreadable), so ticks are counted at the longest tick Linux is built with (HZ 100):
 * the TTL is then never longer than nexthop_ttl_ns, and shorter at higher HZ (40% at HZ 250). */
#define LONGEST_TICK_NS (10 * 1000 * 1000)

/* Fills `fib` for a lookup of the next hop of `dst` for this packet (next_hop()). */
static __always_inline void next_hop_params(struct packet *p, __be32 dst, struct bpf_fib_lookup *fib)
{
	struct iphdr *ip = p->ip;

	fib->family = AF_INET;
	fib->tos = ip->tos;
	fib->l4_protocol = ip->protocol;
	fib->tot_len = bpf_ntohs(ip->tot_len);
	fib->ipv4_src = ip->saddr;
	fib->ipv4_dst = dst;
	fib->ifindex = p->ingress_ifindex;
	if (p->has_ports) {
		struct l4_ports *ports = p->l4;
		fib->sport = ports->source;
		fib->dport = ports->dest;
	}
}

/* Asks the kernel's FIB and neighbour tables for the next hop of `dst` (fills `fib`). */
static __always_inline int next_hop(struct packet *p, __be32 dst, struct bpf_fib_lookup *fib)
{
	next_hop_params(p, dst, fib);
	return bpf_fib_lookup(p->ctx, fib, sizeof(*fib), 0);
}

/* The answers from the VIP to a packet too big for the next hop (icmp.h, icmp6.h). The FIB
 * subprograms (forward_via_fib, nat_forward_fib and their IPv6 siblings) do not call them: they
 * return TOO_BIG_ACTION(mtu) (negative) and their inlined caller answers, so that the answer
 * (and csum_region under it) is one call deep as the TTL answer is (the stack of nested calls
 * is limited to 512 bytes). */
static __always_inline int frag_needed(struct packet *p, __u32 mtu);
static __always_inline int packet_too_big6(struct packet *p, __u32 mtu);
#define TOO_BIG_ACTION(mtu) (-(int)((mtu) & 0xffff) - 1)
#define TOO_BIG_MTU(action) ((__u32)(-(action) - 1))

#ifndef IP_DF
#define IP_DF 0x4000    /* IPv4 "don't fragment" (frag_off, host order) */
#endif

/* IPv4 with DF set: fragmenting is forbidden, the sender must be told (RFC 1191). */
static __always_inline int ip_dont_fragment(const struct packet *p)
{
	return (p->ip->frag_off & bpf_htons(IP_DF)) != 0;
}

/* Writes both MACs (12 bytes) as one u64 and one u32: the frame needs no alignment for that on
 * the architectures XDP runs on (the verifier checks packet alignment only where the CPU needs
 * it), and `macs` is 8-byte aligned in struct cached_next_hop. */
static __always_inline void copy_macs(struct ethhdr *eth, const struct mac_pair *macs)
{
	*(__u64 *)eth = *(const __u64 *)macs;
	*(__u32 *)((void *)eth + 8) = *(const __u32 *)((const void *)macs + 8);
}

/* Sends the packet back out the interface it came in on: XDP_TX, or with settings.tx_redirect a
 * redirect through tx_ports to the ingress interface, whose flush wakes the receiver (on veth,
 * XDP_TX toward a peer without an XDP program waits for the peer's next wake-up; see
 * docs/datapath.md). XDP_TX when the ingress interface is not in tx_ports. */
static __always_inline int send_back(struct packet *p, __u8 reason)
{
	if (p->settings->tx_redirect &&
	    bpf_redirect_map(&tx_ports, p->ingress_ifindex, XDP_PASS) == XDP_REDIRECT)
		return verdict(p, XDP_REDIRECT, reason);
	return verdict(p, XDP_TX, reason);
}

/* Sends the packet, its MACs written: TX on the ingress interface, REDIRECT through tx_ports
 * otherwise (PASS when the egress is not there). */
static __always_inline int send_out(struct packet *p, __u32 egress_ifindex, __u8 sent_reason)
{
	if (egress_ifindex == p->ingress_ifindex)
		return send_back(p, sent_reason);
	if (bpf_redirect_map(&tx_ports, egress_ifindex, XDP_PASS) != XDP_REDIRECT)
		return verdict(p, XDP_PASS, LB_REASON_NO_TX_PORT);
	return verdict(p, XDP_REDIRECT, sent_reason);
}

/* Writes a remembered next hop's MACs (`macs`: destination then source) and sends the packet. */
static __always_inline int send_to(struct packet *p, __u32 egress_ifindex,
				   const struct mac_pair *macs, __u8 sent_reason)
{
	copy_macs(p->eth, macs);
	return send_out(p, egress_ifindex, sent_reason);
}

/* Sends the packet to the next hop bpf_fib_lookup found (rc, fib), both families; the packet goes
 * to the kernel when there is none. The MACs go from `fib` straight into the frame (no copy on
 * the stack: the FIB subprograms calling this are the leaves of the deepest call chain, whose
 * combined stack the verifier limits to 512 bytes). */
static __always_inline int send(struct packet *p, int rc, const struct bpf_fib_lookup *fib, __u8 sent_reason)
{
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return verdict(p, XDP_PASS, LB_REASON_NO_NEIGH);
	/* Longer than the next hop's MTU and no answer from the VIP was due (IPv4 without DF, a
	 * reply): the kernel fragments it or answers (as it would forward it). */
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
		return verdict(p, XDP_PASS, LB_REASON_TOO_BIG);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return verdict(p, XDP_PASS, LB_REASON_NO_ROUTE);
	__builtin_memcpy(p->eth->h_dest, fib->dmac, ETH_ALEN);
	__builtin_memcpy(p->eth->h_source, fib->smac, ETH_ALEN);
	return send_out(p, fib->ifindex, sent_reason);
}

/* A remembered next hop answers for this packet: same destination and ingress, not longer than
 * what the kernel's MTU check passed, and not expired. */
static __always_inline int next_hop_fresh(const struct packet *p, const struct cached_next_hop *hop,
					  __be32 dst)
{
	return hop->dst == dst && hop->ingress_ifindex == p->ingress_ifindex &&
	       bpf_ntohs(p->ip->tot_len) <= hop->max_tot_len &&
	       bpf_jiffies64() < hop->expires_jiffies;
}

/* Stores the kernel's SUCCESS answer for `dst` (and this packet's ingress and length) in `hop`. */
static __always_inline void remember_next_hop(const struct packet *p, struct cached_next_hop *hop,
					      __be32 dst, const struct bpf_fib_lookup *fib)
{
	hop->expires_jiffies = bpf_jiffies64() + nexthop_ttl_ns / LONGEST_TICK_NS;
	hop->dst = dst;
	hop->ingress_ifindex = p->ingress_ifindex;
	hop->egress_ifindex = fib->ifindex;
	hop->max_tot_len = bpf_ntohs(p->ip->tot_len);
	__builtin_memcpy(hop->macs.dest, fib->dmac, ETH_ALEN);
	__builtin_memcpy(hop->macs.source, fib->smac, ETH_ALEN);
}

/* This CPU's next-hop slot `index` of `cache` (next_hops or client_next_hops); NULL when the
 * cache is off (nexthop_ttl_ns under one tick, e.g. 0). */
static __always_inline struct cached_next_hop *next_hop_slot(void *cache, __u32 index)
{
	if (nexthop_ttl_ns < LONGEST_TICK_NS)
		return NULL;
	return bpf_map_lookup_elem(cache, &index);
}

/* forward_via() without a fresh next hop: asks the kernel's FIB (a SUCCESS is remembered in
 * `hop`). A subprogram, not inlined, so that the compiler cannot hoist zeroing the 64-byte
 * lookup struct into the common path where the remembered next hop answers. */
static __noinline int forward_via_fib(struct packet *p, struct cached_next_hop *hop, __be32 dst,
				      __u8 sent_reason)
{
	struct bpf_fib_lookup fib = {};
	int rc;

	rc = next_hop(p, dst, &fib);
	/* A DSR packet (FORWARDED, not rewritten: still client -> VIP) too big for the next hop
	 * with DF: answered from the VIP as a NAT one is (nat_forward_fib). */
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED && sent_reason == LB_REASON_FORWARDED && ip_dont_fragment(p))
		return TOO_BIG_ACTION(fib.mtu_result);
	if (hop && rc == BPF_FIB_LKUP_RET_SUCCESS)
		remember_next_hop(p, hop, dst, &fib);
	return send(p, rc, &fib, sent_reason);
}

/* Sends the packet to `dst` through the remembered next hop in `hop` (may be NULL) while it is
 * fresh, else through the kernel's FIB. */
static __always_inline int forward_via(struct packet *p, struct cached_next_hop *hop, __be32 dst,
				       __u8 sent_reason)
{
	int action;

	if (hop && next_hop_fresh(p, hop, dst))
		return send_to(p, hop->egress_ifindex, &hop->macs, sent_reason);
	action = forward_via_fib(p, hop, dst, sent_reason);
	if (action < 0)
		return frag_needed(p, TOO_BIG_MTU(action));
	return action;
}

/* Sends the packet to backend p->backend_id at `dst` (next hop remembered per backend). */
static __always_inline int forward(struct packet *p, __be32 dst, __u8 sent_reason)
{
	return forward_via(p, next_hop_slot(&next_hops, p->backend_id), dst, sent_reason);
}

/* The client_next_hops slot of a client address (Fibonacci hashing; a collision only misses). */
static __always_inline __u32 client_slot(__be32 client)
{
	return (client * 2654435761u) >> (32 - CLIENT_NEXT_HOPS_BITS);
}

#endif /* XDPLB_NEXT_HOP_H */
