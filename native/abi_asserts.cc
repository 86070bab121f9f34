// abi_asserts.cc: the layout of every struct in bpf/lb_abi.h, written out from its comments, checked
// by the compiler. If one of these fails, lb_abi.h changed: update the TypeScript codecs with it.
#include <linux/types.h>

#include <cstddef>

#include "../bpf/lb_abi.h"

#define ABI_FIELD(type, field, off, sz)                                        \
  static_assert(offsetof(struct type, field) == (off), #type "." #field " offset"); \
  static_assert(sizeof(((struct type *)nullptr)->field) == (sz), #type "." #field " size")

static_assert(sizeof(struct lb_service_key) == 8, "lb_service_key size");
ABI_FIELD(lb_service_key, vip, 0, 4);
ABI_FIELD(lb_service_key, port, 4, 2);
ABI_FIELD(lb_service_key, proto, 6, 1);
ABI_FIELD(lb_service_key, pad, 7, 1);

static_assert(sizeof(struct lb_service) == 12, "lb_service size");
ABI_FIELD(lb_service, id, 0, 4);
ABI_FIELD(lb_service, table_size, 4, 4);
ABI_FIELD(lb_service, mode, 8, 1);
ABI_FIELD(lb_service, flags, 9, 1);
ABI_FIELD(lb_service, pad, 10, 2);

static_assert(sizeof(struct lb_vip) == 4, "lb_vip size");
ABI_FIELD(lb_vip, services, 0, 4);

static_assert(sizeof(struct lb_backend) == 20, "lb_backend size");
ABI_FIELD(lb_backend, ip, 0, 4);
ABI_FIELD(lb_backend, port, 4, 2);
ABI_FIELD(lb_backend, flags, 6, 1);
ABI_FIELD(lb_backend, mode, 7, 1);
ABI_FIELD(lb_backend, service_id, 8, 4);
ABI_FIELD(lb_backend, vip, 12, 4);
ABI_FIELD(lb_backend, vport, 16, 2);
ABI_FIELD(lb_backend, proto, 18, 1);
ABI_FIELD(lb_backend, pad, 19, 1);

static_assert(sizeof(struct lb_reverse_key) == 8, "lb_reverse_key size");
ABI_FIELD(lb_reverse_key, ip, 0, 4);
ABI_FIELD(lb_reverse_key, port, 4, 2);
ABI_FIELD(lb_reverse_key, proto, 6, 1);
ABI_FIELD(lb_reverse_key, pad, 7, 1);

static_assert(sizeof(struct lb_reverse) == 16, "lb_reverse size");
ABI_FIELD(lb_reverse, vip, 0, 4);
ABI_FIELD(lb_reverse, vport, 4, 2);
ABI_FIELD(lb_reverse, pad, 6, 2);
ABI_FIELD(lb_reverse, service_id, 8, 4);
ABI_FIELD(lb_reverse, backend_id, 12, 4);

static_assert(sizeof(struct lb_settings) == 16 + 4 * LB_VIP_FILTER_WORDS, "lb_settings size");
ABI_FIELD(lb_settings, frag_policy, 0, 4);
ABI_FIELD(lb_settings, sample_rate, 4, 4);
ABI_FIELD(lb_settings, flow_cache, 8, 4);
ABI_FIELD(lb_settings, tx_redirect, 12, 4);
ABI_FIELD(lb_settings, vip_filter, 16, 4 * LB_VIP_FILTER_WORDS);

static_assert(sizeof(struct lb_flow_key) == 16, "lb_flow_key size");
ABI_FIELD(lb_flow_key, saddr, 0, 4);
ABI_FIELD(lb_flow_key, daddr, 4, 4);
ABI_FIELD(lb_flow_key, sport, 8, 2);
ABI_FIELD(lb_flow_key, dport, 10, 2);
ABI_FIELD(lb_flow_key, proto, 12, 1);
ABI_FIELD(lb_flow_key, pad, 13, 3);

static_assert(sizeof(struct lb_flow_entry) == 32, "lb_flow_entry size");
ABI_FIELD(lb_flow_entry, key, 0, 16);
ABI_FIELD(lb_flow_entry, backend_id, 16, 4);
ABI_FIELD(lb_flow_entry, backend_ip, 20, 4);
ABI_FIELD(lb_flow_entry, check, 24, 4);
ABI_FIELD(lb_flow_entry, referenced, 28, 4);

static_assert(sizeof(struct lb_flow_set) == 32 * LB_FLOW_WAYS, "lb_flow_set size");
ABI_FIELD(lb_flow_set, way, 0, 32 * LB_FLOW_WAYS);


static_assert(sizeof(struct lb_flow_stats) == 32, "lb_flow_stats size");
ABI_FIELD(lb_flow_stats, fwd_packets, 0, 8);
ABI_FIELD(lb_flow_stats, fwd_bytes, 8, 8);
ABI_FIELD(lb_flow_stats, rev_packets, 16, 8);
ABI_FIELD(lb_flow_stats, rev_bytes, 24, 8);

static_assert(sizeof(struct lb_counter) == 16, "lb_counter size");
ABI_FIELD(lb_counter, packets, 0, 8);
ABI_FIELD(lb_counter, bytes, 8, 8);

static_assert(sizeof(struct lb_event) == 40, "lb_event size");
ABI_FIELD(lb_event, ts_ns, 0, 8);
ABI_FIELD(lb_event, ifindex, 8, 4);
ABI_FIELD(lb_event, pkt_len, 12, 4);
ABI_FIELD(lb_event, service_id, 16, 4);
ABI_FIELD(lb_event, backend_id, 20, 4);
ABI_FIELD(lb_event, saddr, 24, 4);
ABI_FIELD(lb_event, daddr, 28, 4);
ABI_FIELD(lb_event, sport, 32, 2);
ABI_FIELD(lb_event, dport, 34, 2);
ABI_FIELD(lb_event, proto, 36, 1);
ABI_FIELD(lb_event, action, 37, 1);
ABI_FIELD(lb_event, reason, 38, 1);
ABI_FIELD(lb_event, pad, 39, 1);
