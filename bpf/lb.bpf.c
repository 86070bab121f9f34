/* lb.bpf.c: the xdplb XDP entry point: parse -> classify -> pick backend -> rewrite -> forward. */
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
_Static_assert(sizeof(struct lb_service_key) == 8 && __builtin_offsetof(struct lb_service_key, port) == 4 &&
	       __builtin_offsetof(struct lb_service_key, proto) == 6, "addr_port_key() builds lb_service_key");
_Static_assert(sizeof(struct lb_reverse_key) == 8 && __builtin_offsetof(struct lb_reverse_key, port) == 4 &&
	       __builtin_offsetof(struct lb_reverse_key, proto) == 6, "addr_port_key() builds lb_reverse_key");
_Static_assert(LB_VERDICT_SLOTS == LB_REASON_SLOTS * LB_ACTION_SLOTS, "one verdict slot per {reason, action}");
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

/* Load-time knob, from the flows map's size: flows holds flow_sets_mask + 1 sets (a power of two). */
const volatile __u32 flow_sets_mask = LB_MAX_FLOWS / LB_FLOW_WAYS - 1;

/* What the program runs with if the settings entry cannot be read (it always can: ARRAY[1]). */
static const struct lb_settings no_settings = {};

/* Next-hop expiry is counted in jiffies: bpf_jiffies64() is inlined by the verifier to one load,
 * where bpf_ktime_get_coarse_ns() is a helper call (~6 ns more per packet here). The tick rate
 * is not known here (CONFIG_HZ as a __kconfig extern would make loading fail wherever the kernel
 * config is unreadable), so ticks are counted at the longest tick Linux is built with (HZ 100):
 * the TTL is then never longer than nexthop_ttl_ns, and shorter at higher HZ (40% at HZ 250). */
#define LONGEST_TICK_NS (10 * 1000 * 1000)

/* Source and destination ports, common to the TCP and UDP headers (network order). */
struct l4_ports {
	__be16 source;
	__be16 dest;
};

/* The packet in flight and the bookkeeping of its verdict. */
struct packet {
	struct xdp_md *ctx;
	void *data_end;
	__u32 ingress_ifindex;  /* read once: each ctx->ingress_ifindex is a chain of loads */
	struct ethhdr *eth;
	struct iphdr *ip;
	void *l4;               /* TCP/UDP/ICMP fixed header inside the frame, or NULL */
	__u32 payload_len;      /* IP payload bytes according to tot_len */
	__u8 has_ports;         /* l4 is a whole TCP/UDP header (ports in flow) */
	__u32 frame_len;
	const struct lb_settings *settings;
	/* The 5-tuple as received (the flow cache's key and the trace event's); ports 0 unless
	 * TCP/UDP. */
	struct lb_flow_key flow __attribute__((aligned(8)));  /* read as two u64 (flow_word) */
	/* The flow's set in flows and its flow cache hash, once the hot path has probed it. */
	struct lb_flow_set *flow_set;
	__u32 flow_cache_hash;
	__u8 reason;
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

/* ---- the flow cache (flows: sets of LB_FLOW_WAYS entries, see lb_abi.h) ---------------- */

static __always_inline __u32 flow_check(__u32 hash, __u32 backend_id)
{
	return hash ^ (__u32)(backend_id * LB_FLOW_CHECK_MUL);
}

/* The key as two 64-bit words ({saddr, daddr} and {sport, dport, proto, pad}); pad is always 0. */
static __always_inline __u64 flow_word(const struct lb_flow_key *k, int i)
{
	return ((const __u64 *)k)[i];
}

static __always_inline void set_flow_word(struct lb_flow_key *k, int i, __u64 word)
{
	((__u64 *)k)[i] = word;
}

/* Word 1 of a key: {sport, dport} as the 4 bytes sit in the L4 header (0 without ports), proto,
 * zero pad. */
static __always_inline __u64 flow_word1(__u32 ports, __u8 proto)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return ports | ((__u64)proto << 32);
#else
	return ((__u64)ports << 32) | ((__u64)proto << 24);
#endif
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

static __always_inline int same_flow(const struct lb_flow_key *a, const struct lb_flow_key *b)
{
	return flow_word(a, 0) == flow_word(b, 0) && flow_word(a, 1) == flow_word(b, 1);
}

/* The flow cache's hash of a flow (set index, check word, victim way): two 64-bit multiplies and
 * a fold over the key's two words as they sit in memory, cheaper than jhash (the cache is this
 * node's own, so it need not be the Maglev hash and need not agree across architectures);
 * seeded, so that nobody outside can aim flows at one set. src/dataplane/jhash.ts
 * flowCacheHash computes the same on a little-endian host. */
static __always_inline __u32 flow_cache_hash(const struct lb_flow_key *k)
{
	__u64 h = (flow_word(k, 0) * 0x9e3779b97f4a7c15ULL) ^ ((flow_word(k, 1) ^ hash_seed) * 0xc2b2ae3d27d4eb4fULL);

	h ^= h >> 32;
	h *= 0x165667b19e3779f9ULL;
	return h >> 32;
}

/* The set a flow cache hash falls in (NULL only if flows is smaller than flow_sets_mask says). */
static __always_inline struct lb_flow_set *flow_set(__u32 hash)
{
	__u32 index = hash & flow_sets_mask;

	return bpf_map_lookup_elem(&flows, &index);
}

/* With the flow cache on: `key`'s set, its flow cache hash in *hash; NULL when the cache is off. */
static __always_inline struct lb_flow_set *flow_cache_slot(const struct packet *p, const struct lb_flow_key *key,
							   __u32 *hash)
{
	if (!p->settings->flow_cache)
		return NULL;
	*hash = flow_cache_hash(key);
	return flow_set(*hash);
}

/* The entry remembering the flow in `set`, NULL when none (or a torn entry); marks the entry
 * referenced (a write only the first time after each eviction sweep of its set). */
static __always_inline struct lb_flow_entry *flow_cache_find(struct lb_flow_set *set,
							     const struct lb_flow_key *key, __u32 hash)
{
#pragma unroll
	for (int w = 0; w < LB_FLOW_WAYS; w++) {
		struct lb_flow_entry *e = &set->way[w];

		if (!same_flow(&e->key, key))
			continue;
		if (e->backend_id == 0 || e->check != flow_check(hash, e->backend_id))
			return NULL;
		if (!e->referenced)
			e->referenced = 1;
		return e;
	}
	return NULL;
}

/* Remembers the flow's backend (unreferenced): in the way holding the flow, else the first empty
 * way, else the first unreferenced way from way (hash >> 30) on, else (all referenced) way
 * (hash >> 30) after clearing every way's mark: not-recently-used, decided by the set's
 * contents alone (test/refmodel.ts mirrors it). */
static __always_inline void flow_cache_remember(struct lb_flow_set *set, const struct lb_flow_key *key,
						__u32 hash, __u32 backend_id, __be32 backend_ip)
{
	struct lb_flow_entry *e;
	int victim = -1;

#pragma unroll
	for (int w = 0; w < LB_FLOW_WAYS; w++) {
		if (victim < 0 && same_flow(&set->way[w].key, key))
			victim = w;
	}
#pragma unroll
	for (int w = 0; w < LB_FLOW_WAYS; w++) {
		if (victim < 0 && set->way[w].backend_id == 0)
			victim = w;
	}
	if (victim < 0) {
		__u32 start = hash >> (32 - LB_FLOW_WAYS_BITS);

#pragma unroll
		for (int i = 0; i < LB_FLOW_WAYS; i++) {
			__u32 w = (start + i) & (LB_FLOW_WAYS - 1);

			if (victim < 0 && !set->way[w].referenced)
				victim = w;
		}
		if (victim < 0) {
#pragma unroll
			for (int w = 0; w < LB_FLOW_WAYS; w++)
				set->way[w].referenced = 0;
			victim = start;
		}
	}
	e = &set->way[victim & (LB_FLOW_WAYS - 1)];
	e->key = *key;
	e->backend_id = backend_id;
	e->backend_ip = backend_ip;
	e->check = flow_check(hash, backend_id);
	e->referenced = 0;
}

/* The flow cache's backend if usable for svc (when `consult`), else the service's Maglev slot;
 * a Maglev choice is remembered if `remember`. `hash` is flow_hash() of key (the Maglev hash);
 * `set` and `cache_hash` are flow_cache_slot()'s answer for key (set NULL: cache off). */
static __always_inline struct lb_backend *pick_backend(struct packet *p, const struct lb_service *svc,
						       const struct lb_flow_key *key, __u32 hash,
						       struct lb_flow_set *set, __u32 cache_hash,
						       int consult, int remember)
{
	struct lb_backend *b;
	__u32 slot, *id;
	void *table;

	if (set && consult) {
		struct lb_flow_entry *e = flow_cache_find(set, key, cache_hash);

		if (e) {
			__u32 cached = e->backend_id;

			b = usable_backend(cached, svc->id);
			if (b && b->ip == e->backend_ip) {
				p->backend_id = cached;
				return b;
			}
		}
	}
	table = bpf_map_lookup_elem(&maglev, &svc->id);
	if (!table || svc->table_size == 0)
		return NULL;
	slot = hash % svc->table_size;
	id = bpf_map_lookup_elem(table, &slot);
	if (!id)
		return NULL;
	b = usable_backend(*id, svc->id);
	if (!b)
		return NULL;
	p->backend_id = *id;
	if (set && remember)
		flow_cache_remember(set, key, cache_hash, *id, b->ip);
	return b;
}

/* The service of {vip, port, proto}, else the VIP's every-port service of proto. */
static __always_inline struct lb_service *find_service(__be32 vip, __be16 port, __u8 proto)
{
	__u64 key = addr_port_key(vip, port, proto);
	struct lb_service *svc;

	svc = bpf_map_lookup_elem(&services, &key);
	if (svc)
		return svc;
	key = addr_port_key(vip, 0, proto);
	return bpf_map_lookup_elem(&services, &key);
}

/* ---- rewriting --------------------------------------------------------------------------- */

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

/* ---- forwarding -------------------------------------------------------------------------- */

/* Asks the kernel's FIB and neighbour tables for the next hop of `dst` (fills `fib`). */
static __always_inline int next_hop(struct packet *p, __be32 dst, struct bpf_fib_lookup *fib)
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
	return bpf_fib_lookup(p->ctx, fib, sizeof(*fib), 0);
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

/* Writes the next hop's MACs (`macs`: destination then source) and sends the packet: TX on the
 * ingress interface, REDIRECT through tx_ports otherwise (PASS when the egress is not there). */
static __always_inline int send_to(struct packet *p, __u32 egress_ifindex,
				   const struct mac_pair *macs, __u8 sent_reason)
{
	int action;

	copy_macs(p->eth, macs);
	if (egress_ifindex == p->ingress_ifindex)
		return send_back(p, sent_reason);
	action = bpf_redirect_map(&tx_ports, egress_ifindex, XDP_PASS);
	if (action != XDP_REDIRECT)
		return verdict(p, XDP_PASS, LB_REASON_NO_TX_PORT);
	return verdict(p, XDP_REDIRECT, sent_reason);
}

/* Sends the packet to the next hop bpf_fib_lookup found (rc, fib); the packet goes to the
 * kernel when there is none. */
static __always_inline int send(struct packet *p, int rc, struct bpf_fib_lookup *fib, __u8 sent_reason)
{
	struct mac_pair macs __attribute__((aligned(8)));  /* copy_macs reads it as u64 + u32 */

	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return verdict(p, XDP_PASS, LB_REASON_NO_NEIGH);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return verdict(p, XDP_PASS, LB_REASON_NO_ROUTE);
	__builtin_memcpy(macs.dest, fib->dmac, ETH_ALEN);
	__builtin_memcpy(macs.source, fib->smac, ETH_ALEN);
	return send_to(p, fib->ifindex, &macs, sent_reason);
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
	if (hop && rc == BPF_FIB_LKUP_RET_SUCCESS)
		remember_next_hop(p, hop, dst, &fib);
	return send(p, rc, &fib, sent_reason);
}

/* Sends the packet to `dst` through the remembered next hop in `hop` (may be NULL) while it is
 * fresh, else through the kernel's FIB. */
static __always_inline int forward_via(struct packet *p, struct cached_next_hop *hop, __be32 dst,
				       __u8 sent_reason)
{
	if (hop && next_hop_fresh(p, hop, dst))
		return send_to(p, hop->egress_ifindex, &hop->macs, sent_reason);
	return forward_via_fib(p, hop, dst, sent_reason);
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

/* False when the destination is surely not a VIP (settings.vip_filter, see lb_abi.h). */
static __always_inline int maybe_vip(const struct packet *p)
{
	__u32 bit = (__u32)(bpf_ntohl(p->flow.daddr) * LB_VIP_FILTER_MUL) >> 24;

	return (p->settings->vip_filter[(bit >> 5) & (LB_VIP_FILTER_WORDS - 1)] >> (bit & 31)) & 1;
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

/* The longest ICMP message whose checksum is verified, in 32-bit words (no single-buffer XDP
 * frame is longer; a longer one is treated as failing). */
#define ICMP_CSUM_MAX_WORDS 1024

/* The ICMP message (payload_len bytes from l4) sums to 0xffff. A subprogram: its loop is
 * verified once per exit, and the caller continues from one state. */
static __noinline int icmp_checksum_ok(struct packet *p)
{
	void *pos = p->l4, *end = p->data_end;
	__u32 left = p->payload_len;
	__u64 sum = 0;

	for (int i = 0; i < ICMP_CSUM_MAX_WORDS; i++) {
		if (left < 4)
			break;
		if (pos + 4 > end)
			return 0;
		sum += *(__u32 *)pos;
		pos += 4;
		left -= 4;
	}
	if (left >= 4)
		return 0;
	if (left >= 2) {
		if (pos + 2 > end)
			return 0;
		sum += *(__u16 *)pos;
		pos += 2;
		left -= 2;
	}
	if (left) {
		if (pos + 1 > end)
			return 0;
		/* The odd last byte is the high byte of a zero-padded word: in the natively loaded
		 * (little-endian) sum that is the low byte, in a big-endian one the high byte. */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
		sum += *(__u8 *)pos;
#else
		sum += (__u32)*(__u8 *)pos << 8;
#endif
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
	nat_to_backend(p, b, addr);
	return forward(p, addr, LB_REASON_FORWARDED);
}

/* TCP/UDP to a VIP with its service (or NULL: none), the flow cache already missed or off:
 * Maglev picks the backend (and the cache remembers it). */
static __always_inline int to_service(struct packet *p, const struct lb_service *svc)
{
	const struct lb_flow_key *key = &p->flow;
	struct lb_backend *b;

	if (!svc)
		return verdict(p, XDP_DROP, LB_REASON_NO_SERVICE);
	if (martian_to_vip(p))
		return verdict(p, XDP_DROP, LB_REASON_MARTIAN);
	p->service_id = svc->id;
	if (!p->flow_set)       /* not probed by the hot path (a SYN, or the cache is off) */
		p->flow_set = flow_cache_slot(p, key, &p->flow_cache_hash);
	b = pick_backend(p, svc, key, flow_hash(key->saddr, key->daddr, key->sport, key->dport, key->proto),
			 p->flow_set, p->flow_cache_hash, 0, 1);
	if (!b)
		return verdict(p, XDP_DROP, LB_REASON_NO_BACKEND);
	return to_backend(p, svc->id, svc->mode, b, b->ip);
}

/* The hot path: a TCP/UDP packet of a remembered flow. Sends it when the flow's backend is still
 * ACTIVE and its service is the one the packet addresses ({vip, port, proto} exactly, or the
 * VIP's every-port service with no exact service for the port); returns -1 otherwise (the
 * packet then takes the services/Maglev path). No hash map is consulted for an exact service. */
static __always_inline int to_cached_backend(struct packet *p)
{
	struct lb_flow_entry *e;
	struct lb_backend *b;
	__be32 addr;
	__u32 id;

	/* A SYN opens a new connection: it follows the current Maglev table (and replaces what
	 * an old connection with the same 5-tuple left in the cache), as Katran does, so that a
	 * reused client port cannot reach a draining backend. */
	if (p->flow.proto == IPPROTO_TCP && (((__u8 *)p->l4)[TCP_FLAGS_OFF] & (TCP_SYN | TCP_ACK)) == TCP_SYN)
		return -1;
	p->flow_set = flow_cache_slot(p, &p->flow, &p->flow_cache_hash);
	if (!p->flow_set)
		return -1;
	e = flow_cache_find(p->flow_set, &p->flow, p->flow_cache_hash);
	if (!e)
		return -1;
	id = e->backend_id;
	addr = e->backend_ip;
	b = bpf_map_lookup_elem(&backends, &id);
	if (!b || !(b->flags & LB_BACKEND_F_ACTIVE) || b->vip != p->flow.daddr || b->proto != p->flow.proto ||
	    b->ip != addr)
		return -1;
	/* addr == b->ip now; hidden from the compiler, which would otherwise take b->ip (known only
	 * after the backends lookup) for the rewrite and the next hop instead of the entry's copy. */
	asm volatile("" : "+r"(addr));
	if (b->vport != p->flow.dport) {
		__u64 exact = addr_port_key(p->flow.daddr, p->flow.dport, p->flow.proto);

		if (b->vport != 0 || bpf_map_lookup_elem(&services, &exact))
			return -1;
	}
	if (martian_to_vip(p))
		return verdict(p, XDP_DROP, LB_REASON_MARTIAN);
	p->backend_id = id;
	return to_backend(p, b->service_id, b->mode, b, addr);
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
	struct lb_flow_set *set;
	struct lb_service *svc;
	struct lb_backend *b;
	__u32 cache_hash = 0, inner_len, quoted = p->payload_len - sizeof(*icmp);
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
	/* An error must not create flow state. */
	set = flow_cache_slot(p, &key, &cache_hash);
	b = pick_backend(p, svc, &key, flow_hash(key.saddr, key.daddr, key.sport, key.dport, key.proto),
			 set, cache_hash, 1, 0);
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
	if (eth_type != ETH_P_IP)
		return verdict(p, XDP_PASS, LB_REASON_NOT_IPV4);
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
		if (!vip)
			return from_backend(p);
		/* Hot path: a remembered flow of a live service. Then an exact service match
		 * proves the address is a VIP (user space puts every service's VIP in vips), so
		 * the vips lookup is skipped. */
		if (p->settings->flow_cache) {
			int action = to_cached_backend(p);

			if (action >= 0)
				return action;
		}
		key = addr_port_key(p->flow.daddr, p->flow.dport, proto);
		svc = bpf_map_lookup_elem(&services, &key);
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
		return to_service(p, bpf_map_lookup_elem(&services, &key));
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
	e->saddr = p->flow.saddr;
	e->daddr = p->flow.daddr;
	e->sport = p->flow.sport;
	e->dport = p->flow.dport;
	e->proto = p->flow.proto;
	e->action = action;
	e->reason = p->reason;
	e->pad = 0;
	bpf_ringbuf_submit(e, 0);
}

/* Counts the verdict ({reason, action}, and the service/backend that carried the packet). */
static __always_inline int finish(struct packet *p, int action)
{
	count(&verdict_stats, p->reason * LB_ACTION_SLOTS + ((__u32)action & (LB_ACTION_SLOTS - 1)), p->frame_len);
	if (p->reason == LB_REASON_FORWARDED || p->reason == LB_REASON_ICMP_ERROR ||
	    p->reason == LB_REASON_REVERSED) {
		int reply = p->reason == LB_REASON_REVERSED;
		count_flow(&service_stats, p->service_id, p->frame_len, reply);
		count_flow(&backend_stats, p->backend_id, p->frame_len, reply);
	}
	emit_event(p, action);
	return action;
}

SEC("xdp")
int xdp_lb(struct xdp_md *ctx)
{
	/* Not zeroed as a whole (11 stores): the parsers set eth, ip, l4 and payload_len before any
	 * use, every verdict sets reason, and flow_cache_hash is read only with flow_set. What may
	 * be read before it is written is zeroed here: the flow key (ports stay 0 unless TCP/UDP;
	 * its pad is hashed and compared), flow_set and the ids a verdict is counted under. */
	struct packet p;
	__u32 zero = 0;

	p.ctx = ctx;
	p.data_end = (void *)(long)ctx->data_end;
	p.ingress_ifindex = ctx->ingress_ifindex;
	p.frame_len = ctx->data_end - ctx->data;
	__builtin_memset(&p.flow, 0, sizeof(p.flow));
	p.flow_set = NULL;
	p.has_ports = 0;
	p.service_id = 0;
	p.backend_id = 0;

	p.settings = bpf_map_lookup_elem(&settings, &zero);
	if (!p.settings)
		p.settings = &no_settings;
	return finish(&p, process(&p));
}
