/* maps.h: every map of the XDP program (sizes from lb_abi.h; user space may resize before load). */
#ifndef XDPLB_MAPS_H
#define XDPLB_MAPS_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include "lb_abi.h"

/* services: {vip, port, proto} -> service; port 0 is the every-port (wildcard) service */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_SERVICES);
	__type(key, struct lb_service_key);
	__type(value, struct lb_service);
} services SEC(".maps");

/* service_slots: direct-indexed copies of services entries (see lb_abi.h) */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LB_SERVICE_SLOTS);
	__type(key, __u32);
	__type(value, struct lb_service_slot);
} service_slots SEC(".maps");

/* vips: every VIP address (fragments and ICMP carry no port, so they are classified by address) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_VIPS);
	__type(key, __be32);
	__type(value, struct lb_vip);
} vips SEC(".maps");

/* maglev_table: template of one service's inner table, slot -> backend id | LB_SLOT_MOVED (sizes
 * differ per service; mmapable: user space writes changed slots in place, one u32 store each) */
struct maglev_table {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LB_MAGLEV_DEFAULT_SIZE);
	__uint(map_flags, BPF_F_INNER_MAP | BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u32);
};

/* maglev: service id -> its inner maglev table; a pool change swaps one entry (atomic cut-over) */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, LB_MAX_SERVICES);
	__type(key, __u32);
	__array(values, struct maglev_table);
} maglev SEC(".maps");

/* maglev_std_table: template of the inner table of a service at the default size
 * (LB_MAGLEV_DEFAULT_SIZE), every such table exactly that size: without BPF_F_INNER_MAP the
 * verifier inlines a lookup in it (a few instructions) where a lookup in a maglev_table is a
 * call to the kernel (~18 ns with a return thunk: docs/datapath.md "Calls on the packet path") */
struct maglev_std_table {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LB_MAGLEV_DEFAULT_SIZE);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u32);
};

/* maglev_std: service id -> its inner table when the service's table has the default size (the
 * program looks there first for such a service, then in maglev: pins of a build without
 * maglev_std, or a table being moved between the two) */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, LB_MAX_SERVICES);
	__type(key, __u32);
	__array(values, struct maglev_std_table);
} maglev_std SEC(".maps");

/* slot_marks: template of a service's transition marks, slot -> struct lb_slot_mark */
struct slot_marks {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LB_MAGLEV_DEFAULT_SIZE);
	__uint(map_flags, BPF_F_INNER_MAP | BPF_F_MMAPABLE);
	/* By sizes: clang's BTF has only a forward declaration of a struct reached through an inner
	 * map definition, which libbpf cannot size (the layout is lb_abi.h's, generated from it). */
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(struct lb_slot_mark));
};

/* maglev_marks: service id -> its transition marks (installed with the service's table and kept
 * while it lives; a mark is written before its slot says LB_SLOT_MOVED and zeroed after) */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, LB_MAX_SERVICES);
	__type(key, __u32);
	__array(values, struct slot_marks);
} maglev_marks SEC(".maps");

/* backends: backend id -> address, port, flags, owner service */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LB_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct lb_backend);
} backends SEC(".maps");

/* reverse: source {backend ip, port, proto} of a NAT-mode reply -> the VIP it answers for */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_REVERSE);
	__type(key, struct lb_reverse_key);
	__type(value, struct lb_reverse);
} reverse SEC(".maps");

/* reverse_frags: {backend ip, 0, proto} -> the backend address's only VIP (see lb_abi.h) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_BACKENDS);
	__type(key, struct lb_reverse_key);
	__type(value, struct lb_reverse);
} reverse_frags SEC(".maps");

/* if_macs: ifindex slot -> the attached interface's own MAC (see lb_abi.h) */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LB_IF_SLOTS);
	__type(key, __u32);
	__type(value, struct lb_if_mac);
} if_macs SEC(".maps");

/* flows: the transition cache, sets of LB_FLOW_WAYS remembered flows (see lb_flow_set); a plain
 * shared ARRAY, looked up without hashing or locking, and only for packets of moved Maglev slots */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LB_MAX_FLOWS / LB_FLOW_WAYS);
	__type(key, __u32);
	__type(value, struct lb_flow_set);
} flows SEC(".maps");

/* ---- IPv6 siblings of the maps keyed or valued by an address (docs/decisions.md "IPv6: sibling
 * maps"): the IPv4 maps keep their 4-byte keys, so the IPv4 path's lookups cost what they did. ---- */

/* services6: {vip, port, proto} -> service (same lb_service, same id space as services) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_SERVICES);
	__type(key, struct lb_service6_key);
	__type(value, struct lb_service);
} services6 SEC(".maps");

/* service_slots6: direct-indexed copies of services6 entries (see lb_abi.h) */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LB_SERVICE_SLOTS);
	__type(key, __u32);
	__type(value, struct lb_service6_slot);
} service_slots6 SEC(".maps");

/* vips6: every IPv6 VIP address */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_VIPS);
	__type(key, lb_in6);
	__type(value, struct lb_vip);
} vips6 SEC(".maps");

/* backends6: backend id -> IPv6 address, port, flags, owner service (an id is in backends or here) */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LB_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct lb_backend6);
} backends6 SEC(".maps");

/* reverse6: source {backend ip, port, proto} of an IPv6 NAT-mode reply -> the VIP it answers for */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_REVERSE);
	__type(key, struct lb_reverse6_key);
	__type(value, struct lb_reverse6);
} reverse6 SEC(".maps");

/* reverse_frags6: {backend ip, 0, proto} -> the backend address's only IPv6 VIP */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_BACKENDS);
	__type(key, struct lb_reverse6_key);
	__type(value, struct lb_reverse6);
} reverse_frags6 SEC(".maps");

/* flows6: the IPv6 transition cache (sets of LB_FLOW_WAYS lb_flow_entry6) */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LB_MAX_FLOWS6 / LB_FLOW_WAYS);
	__type(key, __u32);
	__type(value, struct lb_flow_set6);
} flows6 SEC(".maps");

/* settings: the run-time knobs, one entry */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lb_settings);
} settings SEC(".maps");

/* tx_ports: egress ifindex -> ifindex, the interfaces bpf_redirect_map may send to */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, LB_MAX_TX_PORTS);
	__type(key, __u32);
	__type(value, __u32);
} tx_ports SEC(".maps");

/* Destination then source MAC, as they sit in the Ethernet header. */
struct mac_pair {
	__u8 dest[ETH_ALEN];
	__u8 source[ETH_ALEN];
};

/* One remembered bpf_fib_lookup SUCCESS toward a backend or a client. Kernel-internal: this
 * struct never crosses to user space (the control plane neither reads nor writes next_hops or
 * client_next_hops), so it lives here and not in lb_abi.h. An entry answers only for the same
 * destination address, the same ingress interface and IP packets no longer than the one the
 * kernel checked (the route's MTU), until it expires. The MACs sit at offset 8 so that a send
 * copies them as one u64 and one u32 (lb.bpf.c copy_macs). */
struct cached_next_hop {
	__u64 expires_jiffies;  /* bpf_jiffies64() deadline */
	struct mac_pair macs;
	__be32 dst;             /* the address looked up */
	__u32 ingress_ifindex;
	__u32 egress_ifindex;
	__u16 max_tot_len;      /* IP total length the kernel's MTU check passed (host order) */
	__u8 pad[6];
};

/* next_hops: per-CPU, backend id -> its last next hop (a hit saves bpf_fib_lookup: ~130 ns on
 * the loaded test VM, see docs/datapath.md) */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LB_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct cached_next_hop);
} next_hops SEC(".maps");

/* client_next_hops: per-CPU, hash of a client address -> its last next hop (NAT replies). Sized
 * here, not in lb_abi.h: user space never sees it; 1024 x 40 bytes per CPU. */
#define CLIENT_NEXT_HOPS_BITS 10
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1 << CLIENT_NEXT_HOPS_BITS);
	__type(key, __u32);
	__type(value, struct cached_next_hop);
} client_next_hops SEC(".maps");

/* The IPv6 sibling of cached_next_hop (kernel-internal too). */
struct cached_next_hop6 {
	__u64 expires_jiffies;  /* bpf_jiffies64() deadline */
	struct mac_pair macs;
	__u32 ingress_ifindex;
	lb_in6 dst;             /* the address looked up */
	__u32 egress_ifindex;
	__u16 max_tot_len;      /* IPv6 packet length (40 + payload) the kernel's MTU check passed */
	__u16 pad;
};

/* next_hops6: per-CPU, backend id -> its last next hop (IPv6 backends) */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LB_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct cached_next_hop6);
} next_hops6 SEC(".maps");

/* client_next_hops6: per-CPU, hash of an IPv6 client address -> its last next hop (NAT replies) */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1 << CLIENT_NEXT_HOPS_BITS);
	__type(key, __u32);
	__type(value, struct cached_next_hop6);
} client_next_hops6 SEC(".maps");

/* service_stats: per-CPU forward/reverse packets and bytes by service id (those not in backend_fast_stats) */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LB_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct lb_flow_stats);
} service_stats SEC(".maps");

/* backend_stats: per-CPU forward/reverse packets and bytes by backend id (those not in backend_fast_stats) */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LB_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct lb_flow_stats);
} backend_stats SEC(".maps");

/* backend_fast_stats: per-CPU forward/reverse packets and bytes of packets sent to or from a
 * backend with XDP_TX/XDP_REDIRECT, at backend id (+ fast_redirect_base for REDIRECT; lb_abi.h) */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LB_FAST_STATS_SLOTS);
	__type(key, __u32);
	__type(value, struct lb_flow_stats);
} backend_fast_stats SEC(".maps");

/* retired_stats: removed backends' backend_fast_stats by service id, written by user space only */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LB_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct lb_retired_stats);
} retired_stats SEC(".maps");

/* verdict_stats: per-CPU packets and bytes by {verdict reason (LB_REASON_*), XDP action}, at
 * index reason * LB_ACTION_SLOTS + action */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LB_VERDICT_SLOTS);
	__type(key, __u32);
	__type(value, struct lb_counter);
} verdict_stats SEC(".maps");

/* events: sampled lb_event records for the trace log */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, LB_EVENTS_BYTES);
} events SEC(".maps");

#endif
