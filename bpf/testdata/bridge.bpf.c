/* bridge.bpf.c: small programs that exercise the native bridge (maps, globals, map-in-map, ring buffer). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* Load-time knobs, set by the tests through LoadOptions.globals. */
const volatile __u32 verdict = XDP_PASS;
const volatile __u32 stamp = 0;

/* Sequence number of ring buffer records. */
__u64 event_seq = 0;

/* Slots checked by xdp_verdict; tests grow it with LoadOptions.maxEntries. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} slots SEC(".maps");

/* A plain hash for CRUD, iteration and batch tests. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} table SEC(".maps");

/* Runs counted per CPU by xdp_verdict. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} runs SEC(".maps");

/* Inner template of `outer`: BPF_F_INNER_MAP lets inner arrays of any size be swapped in. */
struct inner_array {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
	__uint(map_flags, BPF_F_INNER_MAP);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct inner_array);
} outer SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096 * 4);
} events SEC(".maps");

struct event {
	__u64 seq;
	__u32 pkt_len;
	__u32 ifindex;
};

/* Puts struct event into BTF (clang keeps the types of globals, not of locals) for btfStructLayout. */
const struct event *unused_event __attribute__((unused));

/* Returns `verdict` when slot pkt[14] exists (so max_entries shows in the verdict), DROP otherwise;
 * writes `stamp` and the ingress ifindex into bytes 16..23 so tests can read both back. */
SEC("xdp")
int xdp_verdict(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data;
	unsigned char *end = (void *)(long)ctx->data_end;
	__u32 zero = 0, slot, stamp_now = stamp; /* a volatile read: the loader's value, not the initializer */
	__u64 *runs_here = bpf_map_lookup_elem(&runs, &zero);

	if (runs_here)
		*runs_here += 1;
	if (data + 24 > end)
		return XDP_ABORTED;
	slot = data[14];
	if (!bpf_map_lookup_elem(&slots, &slot))
		return XDP_DROP;
	__builtin_memcpy(data + 16, &stamp_now, 4);
	__builtin_memcpy(data + 20, &ctx->ingress_ifindex, 4);
	return verdict;
}

/* Looks up key pkt[14] in the inner array at outer[0]; writes the value into bytes 16..19. */
SEC("xdp")
int xdp_inner_lookup(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data;
	unsigned char *end = (void *)(long)ctx->data_end;
	__u32 zero = 0, key;
	__u32 *value;
	void *inner;

	if (data + 20 > end)
		return XDP_ABORTED;
	inner = bpf_map_lookup_elem(&outer, &zero);
	if (!inner)
		return XDP_ABORTED;
	key = data[14];
	value = bpf_map_lookup_elem(inner, &key);
	if (!value)
		return XDP_DROP;
	__builtin_memcpy(data + 16, value, 4);
	return XDP_TX;
}

/* Writes one record per run into `events`. */
SEC("xdp")
int xdp_event(struct xdp_md *ctx)
{
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e)
		return XDP_ABORTED;
	e->seq = __sync_fetch_and_add(&event_seq, 1);
	e->pkt_len = ctx->data_end - ctx->data;
	e->ifindex = ctx->ingress_ifindex;
	bpf_ringbuf_submit(e, 0);
	return XDP_PASS;
}

/* Drops everything: the replacement program in link update tests. */
SEC("xdp")
int xdp_drop_all(struct xdp_md *ctx)
{
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
