/* lb6.h: the IPv6 packet path (docs/datapath.md "IPv6"): classify -> service (services6) ->
 * Maglev (pick_backend6: the shared maglev / maglev_marks maps, flows6) -> NAT66 or DSR ->
 * forward; NAT66 replies (reverse6, reverse_frags6); ICMPv6 to a VIP. process6() is entered from
 * process() for EtherType 0x86DD. */
#ifndef XDPLB_LB6_H
#define XDPLB_LB6_H

/* Included once by lb.bpf.c, after icmp.h. */

/* False when the destination is surely not an IPv6 VIP (settings.vip_filter6). */
static __always_inline int maybe_vip6(const struct packet *p, __u32 fdaddr)
{
	__u32 bit = (__u32)(fdaddr * LB_VIP_FILTER_MUL) >> 24;

	return (p->settings->vip_filter6[(bit >> 5) & (LB_VIP_FILTER_WORDS - 1)] >> (bit & 31)) & 1;
}

/* The IPv6 service of exactly {vip, port, proto} (fvip = fold6(vip)): its service_slots6 copy when
 * the slot holds it, else the services6 hash map. */
static __always_inline struct lb_service *lookup_service6(const lb_in6 *vip, __u32 fvip, __be16 port, __u8 proto)
{
	struct lb_service6_key key = {};
	struct lb_service6_slot *slot;
	__u32 index;

	index = (fvip * (__u32)LB_SERVICE_SLOT_MUL ^
		 (((__u32)bpf_ntohs(port) << 8) | proto) * (__u32)LB_SERVICE_SLOT_MUL2) >> (32 - LB_SERVICE_SLOTS_BITS);
	slot = bpf_map_lookup_elem(&service_slots6, &index);
	if (slot && same_in6(&slot->key.vip, vip) && slot->key.port == port && slot->key.proto == proto)
		return &slot->svc;
	key.vip = *vip;
	key.port = port;
	key.proto = proto;
	return bpf_map_lookup_elem(&services6, &key);
}

/* The IPv6 service of {vip, port, proto}, else the VIP's every-port service of proto. */
static __always_inline struct lb_service *find_service6(const lb_in6 *vip, __u32 fvip, __be16 port, __u8 proto)
{
	struct lb_service *svc = lookup_service6(vip, fvip, port, proto);

	if (svc || port == 0)
		return svc;
	return lookup_service6(vip, fvip, 0, proto);
}

/* A packet to an IPv6 VIP from a martian source, or from the VIP itself. */
static __always_inline int martian_to_vip6(const struct packet *p)
{
	return martian6(&p->flow6.saddr) || same_in6(&p->flow6.saddr, &p->flow6.daddr);
}

#include "nat6.h"
#include "icmp6.h"

/* TCP/UDP to an IPv6 VIP with its service (or NULL): Maglev picks the backend; NAT66 or DSR.
 * fsaddr, fdaddr: fold6 of the flow's addresses. */
static __always_inline int to_service6(struct packet *p, const struct lb_service *svc, __u32 fsaddr,
				       __u32 fdaddr)
{
	const struct lb_flow_key6 *key = &p->flow6;
	struct lb_backend6 *b;

	if (!svc)
		return verdict(p, XDP_DROP, LB_REASON_NO_SERVICE);
	if (martian_to_vip6(p))
		return verdict(p, XDP_DROP, LB_REASON_MARTIAN);
	if (udp6_zero_checksum(p))
		return verdict(p, XDP_DROP, LB_REASON_BAD_CHECKSUM);
	p->service_id = svc->id;
	b = pick_backend6(p, svc, key, flow_hash6_folded(fsaddr, fdaddr, key->sport, key->dport, key->proto, hash_seed),
			  p->syn, 1);
	if (!b)
		return verdict(p, XDP_DROP, LB_REASON_NO_BACKEND);
	if (svc->mode == LB_MODE_DSR)
		return forward6(p, &b->ip, LB_REASON_FORWARDED);
	if (p->ip6->hop_limit <= 1)
		return ttl_expired6(p);
	return nat66_forward(p, b);     /* nat6.h: rewrite, or packet_too_big6 from the VIP */
}

/* The upper-layer header at frame offset `off` (<= 0x3fff) when `size` bytes of it lie inside both
 * the payload (`left` bytes from there) and the frame; NULL otherwise. The pointer is derived and
 * checked in one register (the verifier then knows its range wherever it is spilled). */
static __always_inline void *l4_at6(struct packet *p, __u32 off, __u32 size, __u32 left)
{
	void *h = (void *)(long)p->ctx->data + off;

	if (size > left || h + size > (void *)(long)p->ctx->data_end)
		return NULL;
	return h;
}

/* Sets l4, has_ports, the flow's ports and syn from a whole TCP/UDP header at `off`. */
static __always_inline int take_ports6(struct packet *p, __u32 off, __u8 proto, __u32 left)
{
	__u8 *h;

	if (proto == IPPROTO_TCP) {
		h = l4_at6(p, off, sizeof(struct tcphdr), left);
		if (!h)
			return PARSE_ERROR;
		p->syn = (h[TCP_FLAGS_OFF] & (TCP_SYN | TCP_ACK)) == TCP_SYN;
	} else {
		h = l4_at6(p, off, sizeof(struct udphdr), left);
		if (!h)
			return PARSE_ERROR;
	}
	p->l4 = h;
	p->has_ports = 1;
	*(__u32 *)&p->flow6.sport = *(__u32 *)h;   /* sport, dport as they sit in the header */
	return 0;
}

/* process6()'s one exit that is not a verdict: a whole ICMPv6 message to a VIP, p->l4 set; the
 * caller goes on with icmp6_to_vip() (a sibling subprogram, not a callee: see there). Not an
 * enum xdp_action. */
#define PROCESS6_ICMP_TO_VIP (-1)

/* The IPv6 path, from the fixed header on. Every exit is a verdict, except PROCESS6_ICMP_TO_VIP.
 * Inlined into xdp_lb, not a subprogram: a BPF-to-BPF call and its return cost ~18 ns on a CPU
 * whose kernel returns through a mitigation thunk (AMD's "Safe RET"), a third of the IPv6 path's
 * cost in `xdplb bench prog` (docs/datapath.md "Calls on the packet path"). */
static __always_inline int process6(struct packet *p)
{
	/* The cursor starts after the (untagged) Ethernet header again: taking the caller's by
	 * address would keep it in memory on the IPv4 path too. */
	struct cursor cur = { .pos = (void *)(long)p->ctx->data + sizeof(struct ethhdr), .end = p->data_end }, *c = &cur;
	__u32 left, off, fsaddr, fdaddr;
	__u16 frag;
	__u8 proto;
	int nh, walk, vip, is_fragment, tcp_udp;
	struct lb_service *svc;
	__u64 w;

	p->family = LB_FAMILY_IPV6;
	__builtin_memset(&p->flow6, 0, sizeof(p->flow6));
	if (!to_our_mac(p))
		return verdict(p, XDP_PASS, LB_REASON_OTHER_MAC);
	nh = parse_ipv6hdr(c, &p->ip6, &left);
	if (nh == PARSE_ERROR)
		return verdict(p, XDP_DROP, LB_REASON_MALFORMED);
	p->flow6.saddr = p->ip6->saddr;
	p->flow6.daddr = p->ip6->daddr;
	/* Each address folded once (the VIP filter, the service slot and the flow hash use them). */
	fsaddr = fold6(&p->flow6.saddr);
	fdaddr = fold6(&p->flow6.daddr);
	if (nh == IPPROTO_TCP || nh == IPPROTO_UDP || nh == NH_ICMPV6) {
		/* No extension header (the common case): no walk. */
		walk = EXT6_OK;
		proto = nh;
		frag = 0;
		off = sizeof(struct ethhdr) + sizeof(struct ipv6_fixed);
	} else {
		w = walk_ext6(p->ctx, sizeof(struct ethhdr) + sizeof(struct ipv6_fixed), nh, left);
		walk = WALK6_STATUS(w);
		proto = WALK6_PROTO(w);
		frag = WALK6_FRAG(w);
		left = WALK6_LEFT(w);
		off = WALK6_OFF(w);
	}
	/* One packet state from here on: headers re-derived from the walk's (bounded) offset. */
	if (off > 0x3fff)
		return verdict(p, XDP_DROP, LB_REASON_MALFORMED);
	p->flow6.proto = proto;
	p->payload_len = left;
	is_fragment = (frag & (FRAG6_OFFSET | FRAG6_MORE)) != 0;
	tcp_udp = walk == EXT6_OK && (proto == IPPROTO_TCP || proto == IPPROTO_UDP);
	vip = maybe_vip6(p, fdaddr);

	/* Whole TCP/UDP packets: the exact service (a match proves a VIP), or a NAT66 reply. */
	if (tcp_udp && !is_fragment && take_ports6(p, off, proto, left) == 0) {
		if (!vip)
			return from_backend6(p);
		svc = find_service6(&p->flow6.daddr, fdaddr, p->flow6.dport, proto);
		if (svc)
			return to_service6(p, svc, fsaddr, fdaddr);
	}

	if (!vip || !bpf_map_lookup_elem(&vips6, &p->flow6.daddr)) {
		if (p->has_ports)
			return from_backend6(p);
		if (walk == EXT6_TRUNCATED)
			return verdict(p, XDP_DROP, LB_REASON_MALFORMED);
		if (!tcp_udp || !is_fragment)
			return verdict(p, XDP_PASS, LB_REASON_NOT_VIP);
		if (frag & FRAG6_OFFSET)
			return fragment_from_backend6(p);
		/* A first fragment of a reply: its L4 header (ports) is there. */
		if (take_ports6(p, off, proto, left) != 0)
			return verdict(p, XDP_PASS, LB_REASON_NOT_VIP);
		return from_backend6(p);
	}

	/* To a VIP. */
	if (walk == EXT6_TRUNCATED)
		return verdict(p, XDP_DROP, LB_REASON_MALFORMED);
	/* A later fragment's next header may name an extension header of the first fragment: that is
	 * no reason to refuse it (the fragment policy decides below). */
	if (walk == EXT6_REFUSED ||
	    (!tcp_udp && proto != NH_ICMPV6 && !((frag & FRAG6_OFFSET) && NH_IS_EXT(proto))))
		return verdict(p, XDP_DROP, LB_REASON_EXT_HEADER);
	if (proto == NH_ICMPV6 && !is_fragment) {
		struct icmp6_fixed *icmp;

		icmp = l4_at6(p, off, sizeof(*icmp), left);
		if (!icmp)
			return verdict(p, XDP_DROP, LB_REASON_MALFORMED);
		p->l4 = icmp;
		/* Neighbour discovery is the kernel's, whoever it comes from (fe80::, ::). */
		if (icmp->type >= ICMPV6_ND_FIRST && icmp->type <= ICMPV6_ND_LAST)
			return verdict(p, XDP_PASS, LB_REASON_NOT_VIP);
	}
	if (martian_to_vip6(p))
		return verdict(p, XDP_DROP, LB_REASON_MARTIAN);
	if (is_fragment)
		return verdict(p, p->settings->frag_policy == LB_FRAG_PASS ? XDP_PASS : XDP_DROP, LB_REASON_FRAGMENT);
	if (tcp_udp) {
		if (!p->has_ports)
			return verdict(p, XDP_DROP, LB_REASON_MALFORMED);
		/* The exact {vip, port, proto} missed above: only the every-port service is left. */
		return to_service6(p, find_service6(&p->flow6.daddr, fdaddr, 0, proto), fsaddr, fdaddr);
	}
	/* A whole ICMPv6 message (the checks above let nothing else through). */
	p->l4 = l4_at6(p, off, sizeof(struct icmp6_fixed), left);
	if (!p->l4)
		return verdict(p, XDP_DROP, LB_REASON_MALFORMED);
	return PROCESS6_ICMP_TO_VIP;    /* process() calls icmp6_to_vip() */
}

#endif /* XDPLB_LB6_H */
