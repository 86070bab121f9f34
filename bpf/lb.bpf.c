/* lb.bpf.c: the xdplb XDP entry point: parse -> classify -> pick backend -> rewrite -> forward.
 * The transition cache, next hop, NAT and ICMP live in flow_cache.h, next_hop.h, nat.h and icmp.h. */
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lb_abi.h"
#include "maps.h"
#include "parse.h"
#include "csum.h"
#include "jhash.h"
#include "hash6.h"
#include "fastmod.h"
#include "parse6.h"

#define AF_INET 2
#define IP_MF 0x2000         /* frag_off flags/offset, host order */
#define IP_OFFSET 0x1fff
#define ECHO_REPLY_TTL 64
#define TCP_CHECK_OFF 16     /* offset of the checksum in the TCP header */
#define TCP_FLAGS_OFF 13     /* offset of the flags byte (CWR ECE URG ACK PSH RST SYN FIN) */
#define TCP_SYN 0x02
#define TCP_ACK 0x10
#define UDP_CHECK_OFF 6

char LICENSE[] SEC("license") = "GPL";

_Static_assert(LB_FLOW_WAYS == 1 << LB_FLOW_WAYS_BITS, "LB_FLOW_WAYS is 2^LB_FLOW_WAYS_BITS");
_Static_assert(sizeof(struct lb_flow_key) == 2 * sizeof(__u64), "flow_word() reads a key as two u64");
_Static_assert(sizeof(struct lb_service_slot) == 20 && __builtin_offsetof(struct lb_service_slot, svc) == 8,
	       "lookup_service() reads a slot's key as one u64");
_Static_assert(sizeof(struct lb_service_key) == 8 && __builtin_offsetof(struct lb_service_key, port) == 4 &&
	       __builtin_offsetof(struct lb_service_key, proto) == 6, "addr_port_key() builds lb_service_key");
_Static_assert(sizeof(struct lb_reverse_key) == 8 && __builtin_offsetof(struct lb_reverse_key, port) == 4 &&
	       __builtin_offsetof(struct lb_reverse_key, proto) == 6, "addr_port_key() builds lb_reverse_key");
_Static_assert(LB_VERDICT_SLOTS == LB_REASON_SLOTS * LB_ACTION_SLOTS, "one verdict slot per {reason, action}");
_Static_assert(LB_FAST_STATS_SLOTS == LB_MAX_BACKENDS * 2, "two backend_fast_stats slots per backend id");
_Static_assert(LB_ACTION_ABORTED == XDP_ABORTED && LB_ACTION_DROP == XDP_DROP && LB_ACTION_PASS == XDP_PASS &&
	       LB_ACTION_TX == XDP_TX && LB_ACTION_REDIRECT == XDP_REDIRECT, "LB_ACTION_* are enum xdp_action");
_Static_assert(__builtin_offsetof(struct lb_flow_stats, rev_packets) == sizeof(struct lb_counter) &&
	       __builtin_offsetof(struct lb_flow_stats, fwd_bytes) == __builtin_offsetof(struct lb_counter, bytes),
	       "count_flow() treats lb_flow_stats as two lb_counter pairs");

/* Load-time knob: seed of the flow hash; every balancer node behind one ECMP group uses the same. */
const volatile __u32 hash_seed = 0;

/* Load-time knob: the longest a CPU reuses a next hop (MACs, egress) without asking the kernel
 * again; under 10 ms (e.g. 0) asks on every packet. 100 ms is under TCP's minimum RTO (200 ms):
 * a neighbour or route change is seen before the first retransmission of a segment sent the
 * old way. */
const volatile __u64 nexthop_ttl_ns = 100 * 1000 * 1000;

/* Load-time knob, from the backends map's size: backend_fast_stats holds the XDP_TX slots of backend
 * ids 0..fast_redirect_base-1, then their XDP_REDIRECT slots. */
const volatile __u32 fast_redirect_base = LB_MAX_BACKENDS;

/* Load-time knob, from the flows map's size: flows holds flow_sets_mask + 1 sets (a power of two). */
const volatile __u32 flow_sets_mask = LB_MAX_FLOWS / LB_FLOW_WAYS - 1;

/* Load-time knob, from the flows6 map's size: flows6 holds flow_sets_mask6 + 1 sets. */
const volatile __u32 flow_sets_mask6 = LB_MAX_FLOWS6 / LB_FLOW_WAYS - 1;

/* What the program runs with if the settings entry cannot be read (it always can: ARRAY[1]). */
static const struct lb_settings no_settings = {};

/* Source and destination ports, common to the TCP and UDP headers (network order). */
struct l4_ports {
	__be16 source;
	__be16 dest;
};

/* The packet in flight and the bookkeeping of its verdict. */
/* Without holes (frame_len beside ingress_ifindex, the bytes together): it is most of xdp_lb's
 * stack frame, under every call chain whose combined stack the verifier limits to 512 bytes. */
struct packet {
	struct xdp_md *ctx;
	void *data_end;
	__u32 ingress_ifindex;  /* read once: each ctx->ingress_ifindex is a chain of loads */
	__u32 frame_len;
	struct ethhdr *eth;
	/* The network header of the packet's family (one slot: this frame sits under every call
	 * chain, whose combined stack the verifier limits to 512 bytes). */
	union {
		struct iphdr *ip;        /* IPv4 */
		struct ipv6_fixed *ip6;  /* IPv6 (family 6): the fixed header */
	};
	void *l4;               /* TCP/UDP/ICMP fixed header inside the frame, or NULL */
	__u32 payload_len;      /* IP payload bytes according to tot_len */
	__u8 has_ports;         /* l4 is a whole TCP/UDP header (ports in flow) */
	__u8 syn;               /* a TCP SYN without ACK (opens a connection), set with has_ports */
	__u8 reason;
	__u8 family;            /* LB_FAMILY_* once the EtherType is known, else 0 (events) */
	const struct lb_settings *settings;
	/* The 5-tuple as received (the flow cache's key and the trace event's); ports 0 unless
	 * TCP/UDP. */
	union {
		struct lb_flow_key flow;    /* IPv4: read as two u64 (flow_word) */
		struct lb_flow_key6 flow6;  /* IPv6 (zeroed by process6) */
	} __attribute__((aligned(8)));
	__u32 service_id;
	__u32 backend_id;
};

static __always_inline int verdict(struct packet *p, int action, __u8 reason)
{
	p->reason = reason;
	return action;
}

/* ---- backend choice ---------------------------------------------------------------------- */

/* jhash over host-order words (so every architecture agrees): {saddr, daddr, sport << 16 | dport}
 * with the protocol folded into the seed for TCP/UDP (one jhash round, as the kernel's own
 * connection hashes do: a fourth word would cost a whole extra mix), {saddr, daddr, proto}
 * otherwise. */
static __always_inline __u32 flow_hash(__be32 saddr, __be32 daddr, __be16 sport, __be16 dport,
				       __u8 proto)
{
	if (proto == IPPROTO_TCP || proto == IPPROTO_UDP)
		return jhash_3words(bpf_ntohl(saddr), bpf_ntohl(daddr),
				    ((__u32)bpf_ntohs(sport) << 16) | bpf_ntohs(dport), hash_seed ^ proto);
	return jhash_3words(bpf_ntohl(saddr), bpf_ntohl(daddr), proto, hash_seed);
}

/* A backend may take a packet of a service while ACTIVE and owned by that service. */
static __always_inline struct lb_backend *usable_backend(__u32 id, __u32 service_id)
{
	struct lb_backend *b;

	if (id == 0)
		return NULL;
	b = bpf_map_lookup_elem(&backends, &id);
	if (!b || !(b->flags & LB_BACKEND_F_ACTIVE) || b->service_id != service_id)
		return NULL;
	return b;
}

/* An {address, port, proto} hash map key (struct lb_service_key, struct lb_reverse_key) as one
 * u64, to be stored whole: the map hashes and compares it in u32/u64 words, which the separate
 * narrower stores of a struct initializer could not store-forward. */
static __always_inline __u64 addr_port_key(__be32 addr, __be16 port, __u8 proto)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return addr | ((__u64)port << 32) | ((__u64)proto << 48);
#else
	return ((__u64)addr << 32) | ((__u64)port << 16) | ((__u64)proto << 8);
#endif
}

/* The service of `key` (addr_port_key()): its service_slots copy when the slot holds it, else
 * the services hash map. */
static __always_inline struct lb_service *lookup_service(__u64 key)
{
	__u32 index = ((__u32)key * (__u32)LB_SERVICE_SLOT_MUL ^ (__u32)(key >> 32) * (__u32)LB_SERVICE_SLOT_MUL2) >>
		      (32 - LB_SERVICE_SLOTS_BITS);
	struct lb_service_slot *slot = bpf_map_lookup_elem(&service_slots, &index);

	if (slot && *(__u64 *)&slot->key == key)
		return &slot->svc;
	return bpf_map_lookup_elem(&services, &key);
}

/* The service of {vip, port, proto}, else the VIP's every-port service of proto. */
static __always_inline struct lb_service *find_service(__be32 vip, __be16 port, __u8 proto)
{
	struct lb_service *svc;

	svc = lookup_service(addr_port_key(vip, port, proto));
	if (svc)
		return svc;
	return lookup_service(addr_port_key(vip, 0, proto));
}

#include "flow_cache.h"

/* An IPv6 backend may take a packet of a service while ACTIVE and owned by that service. */
static __always_inline struct lb_backend6 *usable_backend6(__u32 id, __u32 service_id)
{
	struct lb_backend6 *b;

	if (id == 0)
		return NULL;
	b = bpf_map_lookup_elem(&backends6, &id);
	if (!b || !(b->flags & LB_BACKEND_F_ACTIVE) || b->service_id != service_id)
		return NULL;
	return b;
}

/* moved_slot_backend##SFX for one family (IPv4: no suffix, flows, backends; IPv6: 6, flows6,
 * backends6), written once:
 * The backend of a flow in a moved slot (its mark m, current backend `id`), flow cache on: a SYN
 * takes the current backend; a flow remembered in this transition keeps its backend while usable
 * (and marks the slot seen when that is not the current one); another miss goes to the previous
 * backend (TCP always, UDP only while the slot is YOUNG) when usable, else to the current one. A
 * SYN or a miss is remembered when `remember` (ICMP errors only look). */
#define MOVED_SLOT_BACKEND(SFX, KEY, SET, ENTRY, HASH)							\
static __always_inline __u32 moved_slot_backend##SFX(struct lb_slot_mark *m, __u32 id,			\
						     const struct lb_service *svc, const struct KEY *key, \
						     int syn, int remember)				\
{													\
	__u32 hash = HASH, epoch = m->epoch;								\
	struct SET *set = flow_set##SFX(hash);								\
	struct ENTRY *e;										\
													\
	if (!set)											\
		return id;										\
	if (!syn) {											\
		e = flow_cache_find##SFX(set, key, hash, epoch);					\
		if (e && usable_backend##SFX(e->backend_id, svc->id)) {				\
			__u32 kept = e->backend_id;							\
													\
			if (kept != id && remember && !m->seen)						\
				m->seen = 1;								\
			return kept;									\
		}											\
		if ((key->proto == IPPROTO_TCP || (m->flags & LB_SLOT_F_YOUNG)) &&			\
		    usable_backend##SFX(m->prev_id, svc->id))						\
			id = m->prev_id;								\
	}												\
	if (remember)											\
		flow_cache_remember##SFX(set, key, hash, id, epoch);					\
	return id;											\
}

MOVED_SLOT_BACKEND(, lb_flow_key, lb_flow_set, lb_flow_entry, flow_cache_hash(key))
MOVED_SLOT_BACKEND(6, lb_flow_key6, lb_flow_set6, lb_flow_entry6, flow_cache_hash6(key, hash_seed))

/* The backend of svc for the flow `key` (struct lb_flow_key, or lb_flow_key6 when v6, a
 * constant): its Maglev slot's current backend, or in a moved slot with the flow cache on,
 * moved_slot_backend()'s choice. `hash` is the family's flow hash of key. Returns the
 * struct lb_backend (v6: lb_backend6) and sets p->backend_id. */
static __always_inline void *pick_backend_of(struct packet *p, const struct lb_service *svc, const void *key,
					     __u32 hash, int syn, int remember, const int v6)
{
	void *b;
	__u32 slot, id, *value = NULL;
	void *table;

	if (svc->table_size == 0)
		return NULL;
	slot = maglev_slot(hash, svc->table_size);    /* fastmod.h: hash % table_size */
	/* A table of the default size is in maglev_std (maps.h): a fixed-size inner array, whose
	 * lookup the verifier inlines. Else, or not there (pins of a build without maglev_std, a
	 * table moving between the two), in maglev: tables of any size, a lookup is a call. */
	if (svc->table_size == LB_MAGLEV_DEFAULT_SIZE) {
		table = bpf_map_lookup_elem(&maglev_std, &svc->id);
		if (table)
			value = bpf_map_lookup_elem(table, &slot);
	}
	if (!value) {
		table = bpf_map_lookup_elem(&maglev, &svc->id);
		if (!table)
			return NULL;
		value = bpf_map_lookup_elem(table, &slot);
		if (!value)
			return NULL;
	}
	id = *value;
	if (id & LB_SLOT_MOVED) {
		id &= LB_SLOT_ID_MASK;
		if (p->settings->flow_cache) {
			void *marks = bpf_map_lookup_elem(&maglev_marks, &svc->id);
			struct lb_slot_mark *m = marks ? bpf_map_lookup_elem(marks, &slot) : NULL;

			if (m && m->prev_id)
				id = v6 ? moved_slot_backend6(m, id, svc, key, syn, remember)
					: moved_slot_backend(m, id, svc, key, syn, remember);
		}
	}
	b = v6 ? (void *)usable_backend6(id, svc->id) : (void *)usable_backend(id, svc->id);
	if (!b)
		return NULL;
	p->backend_id = id;
	return b;
}

static __always_inline struct lb_backend *pick_backend(struct packet *p, const struct lb_service *svc,
						       const struct lb_flow_key *key, __u32 hash, int syn,
						       int remember)
{
	return pick_backend_of(p, svc, key, hash, syn, remember, 0);
}

static __always_inline struct lb_backend6 *pick_backend6(struct packet *p, const struct lb_service *svc,
							 const struct lb_flow_key6 *key, __u32 hash, int syn,
							 int remember)
{
	return pick_backend_of(p, svc, key, hash, syn, remember, 1);
}

/* ---- sanity checks ----------------------------------------------------------------------- */

/* The frame is addressed to the ingress interface's own unicast MAC (if_macs, see lb_abi.h), or
 * the interface is unknown to if_macs (not checked). Broadcast and multicast never match. */
static __always_inline int to_our_mac(const struct packet *p)
{
	__u32 slot = p->ingress_ifindex & (LB_IF_SLOTS - 1);
	const struct lb_if_mac *m = bpf_map_lookup_elem(&if_macs, &slot);
	const void *dest = p->eth->h_dest;

	if (!m || m->ifindex != p->ingress_ifindex)
		return 1;
	return *(const __u32 *)dest == *(const __u32 *)m->mac &&
	       *(const __u16 *)(dest + 4) == *(const __u16 *)(m->mac + 4);
}

/* False when the destination is surely not a VIP (settings.vip_filter, see lb_abi.h). */
static __always_inline int maybe_vip(const struct packet *p)
{
	__u32 bit = (__u32)(bpf_ntohl(p->flow.daddr) * LB_VIP_FILTER_MUL) >> 24;

	return (p->settings->vip_filter[(bit >> 5) & (LB_VIP_FILTER_WORDS - 1)] >> (bit & 31)) & 1;
}

/* Adds a 64-bit accumulator of 32-bit words into 16 bits (ones' complement). */
static __always_inline __u16 csum_fold64(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	return csum_fold32((__u32)sum);
}

/* RFC 1812 5.2.2: the IPv4 header checksum verifies (the header sums to 0xffff). The 20 fixed
 * bytes are summed as five 32-bit words; options word by word. Words are loaded natively: the
 * ones'-complement sum commutes with byte swapping, and 0xffff is its own swap. */
static __always_inline int ip_checksum_ok(const struct packet *p)
{
	const __u32 *w = (const void *)p->ip;
	__u32 words = p->ip->ihl;
	__u64 sum = (__u64)w[0] + w[1] + w[2] + w[3] + w[4];

	/* Options (rare): a bounded loop, checked word by word against the frame's end. */
	for (__u32 i = 5; i < 15 && i < words; i++) {
		if ((void *)(w + i + 1) > p->data_end)
			return 0;
		sum += w[i];
	}
	return csum_fold64(sum) == 0xffff;
}

/* A source no client has (RFC 1812 5.3.7, RFC 6890): 0.0.0.0/8, 127.0.0.0/8, 224.0.0.0/4
 * (multicast), 240.0.0.0/4 (reserved, and 255.255.255.255). */
static __always_inline int martian_addr(__be32 addr)
{
	__u8 first = bpf_ntohl(addr) >> 24;

	return first == 0 || first == 127 || first >= 224;
}

/* A packet to a VIP from a martian source, or from the VIP itself. */
static __always_inline int martian_to_vip(const struct packet *p)
{
	return martian_addr(p->flow.saddr) || p->flow.saddr == p->flow.daddr;
}

/* ---- forwarding, NAT, ICMP ---------------------------------------------------------------- */

#include "next_hop.h"
#include "nat.h"
#include "icmp.h"
#include "lb6.h"

/* ---- the packet classes ------------------------------------------------------------------ */

/* TCP/UDP of service svc, backend b (at `addr`, its address) chosen: rewrite (nat) or not
 * (dsr), then forward. */
static __always_inline int to_backend(struct packet *p, __u32 service_id, __u8 mode,
				      const struct lb_backend *b, __be32 addr)
{
	p->service_id = service_id;
	if (mode == LB_MODE_DSR)
		return forward(p, addr, LB_REASON_FORWARDED);
	if (p->ip->ttl <= 1)
		return ttl_expired(p);
	return nat_forward(p, b, addr);    /* nat.h: rewrite, or frag_needed from the VIP */
}

/* TCP/UDP to a VIP with its service (or NULL: none): Maglev picks the backend (in a moved slot
 * with the help of the flow cache). */
static __always_inline int to_service(struct packet *p, const struct lb_service *svc)
{
	const struct lb_flow_key *key = &p->flow;
	struct lb_backend *b;

	if (!svc)
		return verdict(p, XDP_DROP, LB_REASON_NO_SERVICE);
	if (martian_to_vip(p))
		return verdict(p, XDP_DROP, LB_REASON_MARTIAN);
	p->service_id = svc->id;
	b = pick_backend(p, svc, key, flow_hash(key->saddr, key->daddr, key->sport, key->dport, key->proto),
			 p->syn, 1);
	if (!b)
		return verdict(p, XDP_DROP, LB_REASON_NO_BACKEND);
	return to_backend(p, svc->id, svc->mode, b, b->ip);
}

/* Parses and dispatches. Every helper ends in a verdict (action + reason), so there is no
 * "continue" state: the one exit is finish(), called from xdp_lb. */
static __always_inline int process(struct packet *p)
{
	struct cursor c = { .pos = (void *)(long)p->ctx->data, .end = p->data_end };
	int eth_type, proto, is_fragment, vip;
	struct lb_service *svc;

	eth_type = parse_ethhdr(&c, &p->eth);
	if (eth_type == PARSE_ERROR)
		return verdict(p, XDP_DROP, LB_REASON_MALFORMED);
	if (eth_type == ETH_P_8021Q || eth_type == ETH_P_8021AD)
		return verdict(p, XDP_PASS, LB_REASON_VLAN);
	if (eth_type != ETH_P_IP) {
		if (eth_type == ETH_P_IPV6) {
			int action = process6(p);

			if (action == PROCESS6_ICMP_TO_VIP)
				return icmp6_to_vip(p);
			return action;
		}
		return verdict(p, XDP_PASS, LB_REASON_NOT_IP);
	}
	p->family = LB_FAMILY_IPV4;
	/* Only frames addressed to this interface are ours: a flooded or promiscuously received
	 * frame would otherwise be forwarded twice (by us and by the host it was meant for). */
	if (!to_our_mac(p))
		return verdict(p, XDP_PASS, LB_REASON_OTHER_MAC);

	proto = parse_iphdr(&c, &p->ip, &p->payload_len);
	if (proto == PARSE_ERROR)
		return verdict(p, XDP_DROP, LB_REASON_MALFORMED);
	/* The key is written as the two u64 words the flow cache reads (one load each from the
	 * packet): a u64 load from stack bytes written by several narrower stores cannot be
	 * store-forwarded and waits until they reach the cache (~5 ns here). */
	set_flow_word(&p->flow, 0, *(__u64 *)&p->ip->saddr);   /* saddr, daddr */
	set_flow_word(&p->flow, 1, flow_word1(0, proto));
	if (!ip_checksum_ok(p))
		return verdict(p, XDP_DROP, LB_REASON_BAD_CHECKSUM);
	is_fragment = (bpf_ntohs(p->ip->frag_off) & (IP_MF | IP_OFFSET)) != 0;
	vip = maybe_vip(p);

	/* Whole TCP/UDP packets carry ports: VIP traffic and NAT replies both need them. */
	if (!is_fragment && (proto == IPPROTO_TCP || proto == IPPROTO_UDP) &&
	    parse_l4(&c, proto, p->payload_len, &p->l4) != PARSE_ERROR) {
		__u64 key;

		p->has_ports = 1;
		set_flow_word(&p->flow, 1, flow_word1(*(__u32 *)p->l4, proto));   /* sport, dport */
		/* A SYN opens a connection: in a moved slot it takes the current backend. */
		p->syn = proto == IPPROTO_TCP && (((__u8 *)p->l4)[TCP_FLAGS_OFF] & (TCP_SYN | TCP_ACK)) == TCP_SYN;
		if (!vip)
			return from_backend(p);
		/* An exact service match proves the address is a VIP (user space puts every
		 * service's VIP in vips), so the vips lookup is skipped. */
		key = addr_port_key(p->flow.daddr, p->flow.dport, proto);
		svc = lookup_service(key);
		if (svc)
			return to_service(p, svc);
	}

	if (!vip || !bpf_map_lookup_elem(&vips, &p->flow.daddr)) {
		/* Replies come from backends as TCP/UDP packets or fragments of them; anything else
		 * is not ours. */
		if (p->has_ports)
			return from_backend(p);
		if (!is_fragment || (proto != IPPROTO_TCP && proto != IPPROTO_UDP))
			return verdict(p, XDP_PASS, LB_REASON_NOT_VIP);
		if (bpf_ntohs(p->ip->frag_off) & IP_OFFSET)
			return fragment_from_backend(p);
		/* A first fragment: the L4 header (ports) is there, as in a whole reply. */
		if (parse_l4(&c, proto, p->payload_len, &p->l4) == PARSE_ERROR)
			return verdict(p, XDP_PASS, LB_REASON_NOT_VIP);
		p->has_ports = 1;
		set_flow_word(&p->flow, 1, flow_word1(*(__u32 *)p->l4, proto));
		return from_backend(p);
	}
	if (martian_to_vip(p))
		return verdict(p, XDP_DROP, LB_REASON_MARTIAN);

	if (is_fragment)
		return verdict(p, p->settings->frag_policy == LB_FRAG_PASS ? XDP_PASS : XDP_DROP,
			       LB_REASON_FRAGMENT);
	if (proto == IPPROTO_TCP || proto == IPPROTO_UDP) {
		__u64 key = addr_port_key(p->flow.daddr, 0, proto);

		if (!p->has_ports)
			return verdict(p, XDP_DROP, LB_REASON_MALFORMED);
		/* The exact {vip, port, proto} missed above: only the every-port service is left. */
		return to_service(p, lookup_service(key));
	}
	if (parse_l4(&c, proto, p->payload_len, &p->l4) == PARSE_ERROR)
		return verdict(p, XDP_DROP, LB_REASON_MALFORMED);
	if (proto == IPPROTO_ICMP)
		return icmp_to_vip(p);
	return verdict(p, XDP_DROP, LB_REASON_NO_SERVICE);
}

/* ---- the one exit ------------------------------------------------------------------------ */

static __always_inline void count(void *map, __u32 index, __u32 bytes)
{
	struct lb_counter *counter = bpf_map_lookup_elem(map, &index);

	if (counter) {
		counter->packets++;
		counter->bytes += bytes;
	}
}

/* Counts a packet in the forward (fwd_packets, fwd_bytes) or reply (rev_*) pair of `map`[index]:
 * the pairs are adjacent (lb_abi.h), so the direction is an offset, not a branch per field. */
static __always_inline void count_flow(void *map, __u32 index, __u32 bytes, int reply)
{
	struct lb_flow_stats *stats = bpf_map_lookup_elem(map, &index);
	struct lb_counter *pair;

	if (!stats)
		return;
	pair = (struct lb_counter *)stats + (reply ? 1 : 0);
	pair->packets++;
	pair->bytes += bytes;
}

static __always_inline void emit_event(struct packet *p, int action)
{
	__u32 rate = p->settings->sample_rate;
	struct lb_event *e;

	if (rate == 0 || (rate != 1 && bpf_get_prandom_u32() % rate != 0))
		return;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return;                 /* ring full: the trace is best effort */
	e->ts_ns = bpf_ktime_get_ns();
	e->ifindex = p->ingress_ifindex;
	e->pkt_len = p->frame_len;
	e->service_id = p->service_id;
	e->backend_id = p->backend_id;
	if (p->family == LB_FAMILY_IPV6) {
		e->saddr = p->flow6.saddr;
		e->daddr = p->flow6.daddr;
		e->sport = p->flow6.sport;
		e->dport = p->flow6.dport;
		e->proto = p->flow6.proto;
		goto verdict;
	}
	/* IPv4 as the v4-mapped ::ffff:a.b.c.d (the TS decoder turns family 4 back into dotted text) */
	e->saddr.w[0] = 0;
	e->saddr.w[1] = 0;
	e->saddr.w[2] = bpf_htonl(0xffff);
	e->saddr.w[3] = p->flow.saddr;
	e->daddr.w[0] = 0;
	e->daddr.w[1] = 0;
	e->daddr.w[2] = bpf_htonl(0xffff);
	e->daddr.w[3] = p->flow.daddr;
	e->sport = p->flow.sport;
	e->dport = p->flow.dport;
	e->proto = p->flow.proto;
verdict:
	e->action = action;
	e->reason = p->reason;
	e->family = p->family;
	bpf_ringbuf_submit(e, 0);
}

/* Counts the verdict ({reason, action}, and the service/backend that carried the packet). A
 * packet to or from a backend that left with TX or REDIRECT (nearly every packet) is one update of
 * backend_fast_stats, which user space adds to its service's and its verdict's totals; any other
 * is counted under its verdict, and its service and backend when it has them. */
static __always_inline int finish(struct packet *p, int action)
{
	int reply = p->reason == LB_REASON_REVERSED;

	if ((p->reason == LB_REASON_FORWARDED || reply) && p->backend_id != 0 &&
	    (action == XDP_TX || action == XDP_REDIRECT)) {
		count_flow(&backend_fast_stats, p->backend_id + (action == XDP_REDIRECT ? fast_redirect_base : 0),
			   p->frame_len, reply);
	} else {
		count(&verdict_stats, p->reason * LB_ACTION_SLOTS + ((__u32)action & (LB_ACTION_SLOTS - 1)),
		      p->frame_len);
		if (p->reason == LB_REASON_FORWARDED || p->reason == LB_REASON_ICMP_ERROR || reply) {
			count_flow(&service_stats, p->service_id, p->frame_len, reply);
			count_flow(&backend_stats, p->backend_id, p->frame_len, reply);
		}
	}
	emit_event(p, action);
	return action;
}

SEC("xdp")
int xdp_lb(struct xdp_md *ctx)
{
	/* Not zeroed as a whole (11 stores): the parsers set eth, ip, l4 and payload_len before any
	 * use and every verdict sets reason. What may be read before it is written is zeroed here:
	 * the flow key (ports stay 0 unless TCP/UDP; its pad is hashed and compared) and the ids a
	 * verdict is counted under. */
	struct packet p;
	__u32 zero = 0;

	p.ctx = ctx;
	p.data_end = (void *)(long)ctx->data_end;
	p.ingress_ifindex = ctx->ingress_ifindex;
	p.frame_len = ctx->data_end - ctx->data;
	__builtin_memset(&p.flow, 0, sizeof(p.flow));
	p.has_ports = 0;
	p.syn = 0;
	p.family = 0;
	p.service_id = 0;
	p.backend_id = 0;

	p.settings = bpf_map_lookup_elem(&settings, &zero);
	if (!p.settings)
		p.settings = &no_settings;
	return finish(&p, process(&p));
}
