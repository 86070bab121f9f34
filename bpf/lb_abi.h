/* lb_abi.h: every struct and constant shared by the XDP program and user space (declared once). */
#ifndef XDPLB_LB_ABI_H
#define XDPLB_LB_ABI_H

/* No kernel includes: fixed-width types come from the includer (vmlinux/linux types in BPF,
 * <linux/types.h> in the addon). Network-order fields are __be16/__be32. */

/* Default map sizes; user space may change every one of them before load. */
#define LB_MAX_SERVICES 256       /* services, maglev (outer), service_stats */
#define LB_MAX_BACKENDS 4096      /* backends, backend_stats; backend id 0 is never used */
#define LB_MAX_VIPS 256           /* vips */
#define LB_MAX_REVERSE 16384      /* reverse: 4x the backends, so hash chains stay short */
#define LB_MAX_TX_PORTS 64        /* tx_ports DEVMAP_HASH */
#define LB_MAX_FLOWS 262144       /* flows the affinity cache holds (flows has /LB_FLOW_WAYS sets) */
#define LB_MAX_FLOWS6 65536       /* flows6 (IPv6 flows): the same, /LB_FLOW_WAYS sets */
#define LB_FLOW_WAYS_BITS 2
#define LB_FLOW_WAYS 4            /* flows: entries per set, 1 << LB_FLOW_WAYS_BITS */
#define LB_MAGLEV_DEFAULT_SIZE 65537 /* inner maglev table entries (prime) */
#define LB_EVENTS_BYTES (1 << 20) /* events ring buffer size */
#define LB_IF_SLOTS 1024          /* if_macs: ARRAY slot = ifindex & (LB_IF_SLOTS - 1) */

/* Forwarding mode of a service (lb_service.mode). */
#define LB_MODE_NAT 0
#define LB_MODE_DSR 1

/* Fragment policy (lb_settings.frag_policy). */
#define LB_FRAG_DROP 0
#define LB_FRAG_PASS 1

/* IPv6: the most extension headers the program walks before the L4 header (docs/decisions.md). */
#define LB_EXT_HEADERS_MAX 4

/* Address families (lb_event.family). */
#define LB_FAMILY_IPV4 4
#define LB_FAMILY_IPV6 6

/* lb_backend.flags */
#define LB_BACKEND_F_ACTIVE 1   /* entry in use; flows cached on it keep going to it */
#define LB_BACKEND_F_DRAINING 2 /* informational: draining backends are not in the maglev table,
                                 * but stay ACTIVE so their cached (existing) flows live on */

/* Verdict reasons: lb_event.reason and the row of verdict_stats. Every PASS/DROP/TX/REDIRECT
 * leaves the program with exactly one reason. */
#define LB_REASON_FORWARDED 0      /* VIP traffic sent to a backend (TX or REDIRECT) */
#define LB_REASON_REVERSED 1       /* NAT reply rewritten to the VIP and sent on */
#define LB_REASON_ICMP_ECHO 2      /* echo request to a VIP answered by the program */
#define LB_REASON_ICMP_ERROR 3     /* ICMP error quoting a VIP flow sent to its backend */
#define LB_REASON_NOT_IP 4         /* PASS: neither an IPv4 nor an IPv6 frame (ARP, LLDP, ...) */
#define LB_REASON_VLAN 5           /* PASS: 802.1Q/802.1ad tagged frame */
#define LB_REASON_NOT_VIP 6        /* PASS: IP but not for a VIP and not a NAT reply (IPv6: also ND, types 133..137) */
#define LB_REASON_MALFORMED 7      /* DROP: truncated header, IPv4 version != 4, IHL < 5, bad total length */
#define LB_REASON_FRAGMENT 8       /* DROP or PASS (per lb_settings.frag_policy): VIP fragment */
#define LB_REASON_NO_SERVICE 9     /* DROP: VIP address, but no service for this port/proto */
#define LB_REASON_NO_BACKEND 10    /* DROP: service has no usable backend */
#define LB_REASON_TTL 11           /* TTL <= 1 where the program would decrement it: a NAT TCP/UDP packet
                                   * to a VIP is answered with ICMP time exceeded from the VIP (TX, REDIRECT with tx_redirect, see
                                   * lb.bpf.c ttl_expired); a NAT reply is passed, and the kernel, which
                                   * routes it toward the client, answers time exceeded to the backend;
                                   * an ICMP error to a NAT VIP is passed (the kernel discards it: no
                                   * ICMP error about an ICMP error) */
#define LB_REASON_NO_NEIGH 12      /* PASS: no neighbour entry for the next hop yet */
#define LB_REASON_NO_ROUTE 13      /* PASS: bpf_fib_lookup found no usable route */
#define LB_REASON_NO_TX_PORT 14    /* PASS: egress interface not in tx_ports */
#define LB_REASON_ICMP_UNSUPPORTED 15 /* DROP: ICMP to a VIP that is neither echo nor a known error, or an
                                   * error whose quote is not a TCP/UDP packet from that VIP with ports
                                   * (another source, another protocol, a later fragment) */
#define LB_REASON_OTHER_MAC 16    /* PASS: IPv4 frame whose destination MAC is not the ingress interface's
                                   * own (broadcast, multicast, another host's unicast): not processed */
#define LB_REASON_MARTIAN 17      /* DROP: martian source toward a VIP (0/8, 127/8, 224/4, 240/4, the VIP
                                   * itself) or martian destination of a NAT reply (0/8, 127/8, 224/4, 240/4) */
#define LB_REASON_BAD_CHECKSUM 18 /* DROP: IPv4 header checksum wrong (RFC 1812 5.2.2), or the ICMP
                                   * checksum of an echo request to a VIP */
#define LB_REASON_EXT_HEADER 19   /* DROP: IPv6 to a VIP (or a NAT reply) whose extension-header chain the policy
                                   * refuses: routing header with segments left, ESP, no-next-header,
                                   * an unknown header, more than LB_EXT_HEADERS_MAX headers */
#define LB_REASON_TOO_BIG 20      /* longer than the MTU of the next hop toward the backend: a VIP packet (NAT
                                   * before its rewrite, DSR) with IPv4 DF or IPv6 answered from the VIP with
                                   * ICMP fragmentation needed / ICMPv6 Packet Too Big (TX/REDIRECT); anything
                                   * else (IPv4 without DF, a NAT reply) PASSed to the kernel to fragment */
#define LB_REASON_COUNT 21
#define LB_REASON_SLOTS 32

/* XDP actions: the kernel's enum xdp_action, named here so that user space has names and numbers
 * together (lb_event.action and the column of verdict_stats). */
#define LB_ACTION_ABORTED 0
#define LB_ACTION_DROP 1
#define LB_ACTION_PASS 2
#define LB_ACTION_TX 3
#define LB_ACTION_REDIRECT 4
#define LB_ACTION_SLOTS 8

/* verdict_stats: one counter per {reason, action}, at index reason * LB_ACTION_SLOTS + action
 * (one per-CPU update per packet; user space sums it per action and per reason). */
#define LB_VERDICT_SLOTS 256       /* LB_REASON_SLOTS * LB_ACTION_SLOTS */

/* An IPv6 address as it sits in the packet: four network-order words (gen-abi's field kind 'ipv6',
 * canonical RFC 5952 text in TypeScript). */
typedef struct {
	__be32 w[4];
} lb_in6;

/* services: key */
struct lb_service_key {
	__be32 vip;
	__be16 port;   /* 0 = every port of proto */
	__u8 proto;    /* IPPROTO_TCP / IPPROTO_UDP */
	__u8 pad;
};

/* services: value */
struct lb_service {
	__u32 id;          /* index into maglev (outer) and service_stats; 0 is never used */
	__u32 table_size;  /* M: entries of this service's inner maglev table (<= its max_entries) */
	__u8 mode;         /* LB_MODE_* */
	__u8 flags;
	__u16 pad;
};

/* service_slots: ARRAY[LB_SERVICE_SLOTS], a direct-indexed copy of services in front of the hash
 * map: slot = ((first u32 of the key * LB_SERVICE_SLOT_MUL) ^ (second u32 * LB_SERVICE_SLOT_MUL2)) >>
 * (32 - LB_SERVICE_SLOTS_BITS), the u32s as they lie in memory (host order). A
 * slot holds one service whose key lands there (the first in the state's order; the others are
 * found in services) with its entry, kept equal to the services entry by user space; key all zero
 * = empty (no packet's key is: proto is never 0). A match saves the hash map lookup. */
#define LB_SERVICE_SLOTS_BITS 10
#define LB_SERVICE_SLOTS 1024     /* 1 << LB_SERVICE_SLOTS_BITS */
#define LB_SERVICE_SLOT_MUL 2654435761  /* 0x9e3779b1 */
#define LB_SERVICE_SLOT_MUL2 2246822507 /* 0x85ebca6b */
struct lb_service_slot {
	struct lb_service_key key;
	struct lb_service svc;
};

/* vips: key is __be32 address; value: */
struct lb_vip {
	__u32 services;    /* number of services on this address (informational) */
};

/* backends: ARRAY indexed by backend id. The owner service's key and mode are repeated here so
 * that a flow cache hit needs no other lookup to check it addresses that service. */
struct lb_backend {
	__be32 ip;
	__be16 port;       /* 0 = keep the client's destination port */
	__u8 flags;        /* LB_BACKEND_F_* */
	__u8 mode;         /* the owner service's LB_MODE_* */
	__u32 service_id;  /* owner service */
	__be32 vip;        /* the owner service's key: VIP, */
	__be16 vport;      /* port (0 = every port), */
	__u8 proto;        /* protocol */
	__u8 pad;
};

/* reverse: key (source of a NAT-mode reply) */
struct lb_reverse_key {
	__be32 ip;         /* backend address */
	__be16 port;       /* backend port; 0 = any source port (wildcard service, port kept) */
	__u8 proto;
	__u8 pad;
};

/* reverse: value */
struct lb_reverse {
	__be32 vip;
	__be16 vport;      /* 0 = keep the reply's source port */
	__u16 pad;
	__u32 service_id;
	__u32 backend_id;
};

/* services6: key (an IPv6 service); value struct lb_service, as for IPv4 */
struct lb_service6_key {
	lb_in6 vip;
	__be16 port;   /* 0 = every port of proto */
	__u8 proto;
	__u8 pad;
};

/* service_slots6: ARRAY[LB_SERVICE_SLOTS], the IPv6 sibling of service_slots (a direct-indexed
 * copy of services6 entries in front of the hash map): slot = (fold6(vip) * LB_SERVICE_SLOT_MUL ^
 * (host-order port << 8 | proto) * LB_SERVICE_SLOT_MUL2) >> (32 - LB_SERVICE_SLOTS_BITS). Key all
 * zero = empty; user space keeps a slot equal to its services6 entry (or empty: then the hash map
 * answers, only slower). */
struct lb_service6_slot {
	struct lb_service6_key key;
	struct lb_service svc;
};

/* backends6: ARRAY indexed by backend id (one id space with backends: an id is used in one of
 * the two), the IPv6 sibling of lb_backend */
struct lb_backend6 {
	lb_in6 ip;
	__be16 port;       /* 0 = keep the client's destination port */
	__u8 flags;        /* LB_BACKEND_F_* */
	__u8 mode;         /* the owner service's LB_MODE_* */
	__u32 service_id;  /* owner service */
	lb_in6 vip;        /* the owner service's key: VIP, */
	__be16 vport;      /* port (0 = every port), */
	__u8 proto;        /* protocol */
	__u8 pad;
};

/* reverse6 (and reverse_frags6, port 0): key, the source of an IPv6 NAT-mode reply */
struct lb_reverse6_key {
	lb_in6 ip;         /* backend address */
	__be16 port;       /* backend port; 0 = any source port (wildcard service, port kept) */
	__u8 proto;
	__u8 pad;
};

/* reverse6 (and reverse_frags6, vport 0): value */
struct lb_reverse6 {
	lb_in6 vip;
	__be16 vport;      /* 0 = keep the reply's source port */
	__u16 pad;
	__u32 service_id;
	__u32 backend_id;
};

/* if_macs: ARRAY value, slot ifindex & (LB_IF_SLOTS - 1): the unicast MAC of an interface the
 * program is attached to, written by user space right after it attaches (Dataplane.attach;
 * unknown, so unchecked, until then) and refreshed on adopt. A slot whose ifindex is not the ingress interface's (0 = empty) means
 * "unknown interface": its frames are not MAC-checked (BPF_PROG_TEST_RUN, foreign attach). */
struct lb_if_mac {
	__u32 ifindex;
	__u8 mac[6];
	__u16 pad;
};

/* reverse_frags: key struct lb_reverse_key {backend ip, port 0, proto} -> struct lb_reverse
 * (vport 0): the one VIP every NAT service of that backend address and protocol answers for,
 * written only when there is exactly one. Non-first fragments of a reply carry no ports: they
 * are reverse-translated (source address only) through this entry, else passed (not_vip). */

/* settings.vip_filter: bit (host-order address * LB_VIP_FILTER_MUL) >> 24 is set for every VIP:
 * a superset of vips that costs no lookup (it shares the settings' cache line). A clear bit
 * proves "not a VIP" (host traffic and NAT replies skip the services/vips/flows lookups); a
 * set bit only says "maybe". User space sets a VIP's bit before the VIP goes live and clears
 * it only after the VIP is gone. */
#define LB_VIP_FILTER_WORDS 8     /* 256 bits */
#define LB_VIP_FILTER_MUL 2654435761 /* 0x9e3779b1 */

/* settings: ARRAY[1], run-time knobs */
struct lb_settings {
	__u32 frag_policy;   /* LB_FRAG_* */
	__u32 sample_rate;   /* 1 in N packets goes to events; 0 = off */
	__u32 flow_cache;    /* 1 = packets of moved Maglev slots consult and write flows (default), 0 = pure
	                      * Maglev: every packet goes to its slot's current backend */
	__u32 tx_redirect;   /* 1 = send back out the ingress interface with bpf_redirect_map, not XDP_TX
	                      * (veth: XDP_TX wakes a peer without an XDP program only when something
	                      * else does, see docs/datapath.md); 0 = XDP_TX */
	__u32 vip_filter[LB_VIP_FILTER_WORDS];
	__u32 vip_filter6[LB_VIP_FILTER_WORDS]; /* the same for IPv6 VIPs: bit (fold6(vip) * LB_VIP_FILTER_MUL) >> 24,
	                      * fold6 = the xor of the address's four host-order words */
};

/* The client->VIP 5-tuple as received: the flow cache's key */
struct lb_flow_key {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 pad[3];
};

/* flows: one remembered flow (32 bytes: a set is 128, and its index a shift). backend_id 0 =
 * empty way. Written and read only for packets of moved Maglev slots (LB_SLOT_MOVED): a hit counts only when epoch == the slot's epoch (an entry of an earlier transition is
 * stale), check == flow cache hash ^ (backend_id * LB_FLOW_CHECK_MUL) ^ epoch (two CPUs writing
 * one way cannot pass off a torn entry) and backends[backend_id] is ACTIVE and owned by the
 * packet's service. */
struct lb_flow_entry {
	struct lb_flow_key key;
	__u32 backend_id;
	__u32 epoch;         /* the slot's epoch when the flow was remembered */
	__u32 check;
	__u32 referenced;    /* 1 = a packet used the entry since its set last evicted (NRU) */
};
#define LB_FLOW_CHECK_MUL 2654435761 /* 0x9e3779b1 */

/* flows: ARRAY value, index = flow cache hash & (sets - 1), sets a power of two (the flow cache
 * hash: lb.bpf.c flow_cache_hash). A new flow (referenced 0) takes the way already holding its
 * key, else the first empty way, else the first unreferenced way from way (flow cache hash >>
 * (32 - LB_FLOW_WAYS_BITS)) on; when all four are referenced, all are cleared and that way is
 * taken (not-recently-used: flows in use survive a burst of new ones). */
struct lb_flow_set {
	struct lb_flow_entry way[LB_FLOW_WAYS];
};

/* The client->VIP 5-tuple of an IPv6 packet: the flows6 key */
struct lb_flow_key6 {
	lb_in6 saddr;
	lb_in6 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 pad[3];
};

/* flows6: one remembered IPv6 flow (the rules of lb_flow_entry; check uses the flows6 hash,
 * bpf/flow_cache6.h flow_cache_hash6) */
struct lb_flow_entry6 {
	struct lb_flow_key6 key;
	__u32 backend_id;
	__u32 epoch;
	__u32 check;
	__u32 referenced;
};

/* flows6: ARRAY value, index = flows6 hash & (sets - 1); the NRU policy of lb_flow_set */
struct lb_flow_set6 {
	struct lb_flow_entry6 way[LB_FLOW_WAYS];
};

/* maglev inner tables: ARRAY value, one u32 per slot (4 bytes: a 65537-slot table is 256 KiB, the
 * one per-flow-random line a steady-state packet reads): the slot's current backend id, with
 * LB_SLOT_MOVED set while the slot is in a transition (a table change gave it another backend
 * recently). A packet of an unmoved slot goes to that backend and touches no per-flow state. */
#define LB_SLOT_MOVED 2147483648 /* 1 << 31 */
#define LB_SLOT_ID_MASK 2147483647

/* maglev_marks inner tables (same size as the service's maglev table, installed with it and kept
 * as long as it lives, all zero while no slot is moved): ARRAY value, the transition of a moved slot. With the flow cache on, a packet of
 * a moved slot consults flows: a TCP SYN goes to the current backend and is remembered; a packet
 * whose flow is remembered in this transition (same epoch) keeps that backend while it is usable;
 * another miss goes to prev_id (TCP without SYN always, UDP only while LB_SLOT_F_YOUNG) when
 * usable, else to the current backend, and is remembered. User space ends the transition (clears
 * LB_SLOT_MOVED, zeroes the mark) once a sweep finds `seen` clear (docs/decisions.md, "Stateless
 * steady state"). */
struct lb_slot_mark {
	__u32 prev_id;     /* the backend the slot had before the transition (0: none) */
	__u32 epoch;       /* != 0: stamps the flows remembered in this transition */
	__u8 seen;         /* 1, set by the program (a byte store, no read-modify-write): a remembered flow on
	                    * a backend other than the current one was sent since user space last cleared it */
	__u8 flags;        /* LB_SLOT_F_*, user space's */
	__u16 pad;
};
#define LB_SLOT_F_YOUNG 1  /* the first sweep period of a transition: a UDP miss goes to prev_id too (UDP has
                            * no SYN that tells a new flow from an old one) */

/* service_stats and backend_stats: PERCPU_ARRAY values (index = id): packets with a service that
 * are not counted in backend_fast_stats (below), and what a build before it counted */
struct lb_flow_stats {
	__u64 fwd_packets;   /* client -> backend */
	__u64 fwd_bytes;
	__u64 rev_packets;   /* backend -> client (NAT replies) */
	__u64 rev_bytes;
};

/* verdict_stats: PERCPU_ARRAY value */
struct lb_counter {
	__u64 packets;
	__u64 bytes;
};

/* backend_fast_stats: PERCPU_ARRAY of struct lb_flow_stats, at index backend id, plus the size of
 * the backends map (the load-time fast_redirect_base) for XDP_REDIRECT: the XDP_TX slots of all
 * backends side by side, two to a cache line as in backend_stats. A packet forwarded to a backend (reason forwarded) or reversed from one (reason
 * reversed) and sent with XDP_TX or XDP_REDIRECT is counted here and nowhere else: one per-CPU
 * update per packet. Its service's totals and its verdict {reason, action} are summed in user
 * space (src/dataplane/counters.ts); every other packet is counted in verdict_stats (and, with a
 * service, service_stats and backend_stats) as before. */
#define LB_FAST_STATS_SLOTS 8192   /* LB_MAX_BACKENDS * 2: the TX half, then the REDIRECT half */

/* retired_stats: ARRAY (user space's only: the program never writes it) by service id, what the
 * backends removed from that service had counted in backend_fast_stats (carried at removal, so
 * that the service's and the verdicts' totals keep it); id 0: of services removed since. */
struct lb_retired_stats {
	struct lb_flow_stats tx;         /* left with XDP_TX */
	struct lb_flow_stats redirect;   /* left with XDP_REDIRECT */
};

/* events: ring buffer record (64 bytes) */
struct lb_event {
	__u64 ts_ns;        /* bpf_ktime_get_ns() */
	__u32 ifindex;      /* ingress interface */
	__u32 pkt_len;      /* frame length */
	__u32 service_id;   /* 0 = none */
	__u32 backend_id;   /* 0 = none */
	lb_in6 saddr;       /* as received; IPv4 as ::ffff:a.b.c.d (v4-mapped) */
	lb_in6 daddr;
	__be16 sport;       /* 0 when not TCP/UDP */
	__be16 dport;
	__u8 proto;
	__u8 action;        /* XDP action */
	__u8 reason;        /* LB_REASON_* */
	__u8 family;        /* LB_FAMILY_IPV4 or LB_FAMILY_IPV6 (0 = neither: not IP, VLAN, too short) */
};

#endif
