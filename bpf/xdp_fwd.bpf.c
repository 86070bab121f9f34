/* xdp_fwd.bpf.c: the benchmark's own XDP programs: the trivial forwarder (the ceiling any XDP
 * load balancer is measured against) and its variant that reads the headers first, the packet generator (IPv4 and IPv6) run by BPF_PROG_TEST_RUN with
 * LIVE_FRAMES, and the sink that counts then drops what arrives. Benchmarks only. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* ---- trivial forwarder: rewrite both MACs, redirect to the one egress port ---- */

/* Set before load: the next hop's MAC (destination) and the egress interface's MAC (source). */
const volatile __u8 fwd_dst_mac[ETH_ALEN] = {};
const volatile __u8 fwd_src_mac[ETH_ALEN] = {};

/* fwd_ports: slot 0 holds the egress ifindex (a DEVMAP, as the load balancer uses) */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} fwd_ports SEC(".maps");

/* Both forwarders' last step: the next hop's MACs, then out of the one egress port. */
static __always_inline int forward_frame(struct ethhdr *eth)
{
	__builtin_memcpy(eth->h_dest, (const void *)fwd_dst_mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, (const void *)fwd_src_mac, ETH_ALEN);
	return bpf_redirect_map(&fwd_ports, 0, XDP_DROP);
}

SEC("xdp")
int xdp_fwd(struct xdp_md *ctx)
{
	struct ethhdr *eth = (void *)(long)ctx->data;

	if ((void *)(eth + 1) > (void *)(long)ctx->data_end)
		return XDP_DROP;
	return forward_frame(eth);
}

/* The same forwarder, but it first reads what any L3/L4 balancer must read: the EtherType, the
 * IPv4 addresses and protocol and the UDP/TCP ports (a frame that is not IPv4 with ports is
 * dropped). xdp_fwd never reads the frame, so it does not pay for bringing the frame's first
 * line over from the CPU that wrote it; this one does, as the balancer does. */
static __always_inline struct ethhdr *read_5tuple(struct xdp_md *ctx)
{
	struct ethhdr *eth = (void *)(long)ctx->data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *ports = (void *)(ip + 1);

	if ((void *)(ports + 1) > (void *)(long)ctx->data_end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5 ||
	    (ip->protocol != IPPROTO_UDP && ip->protocol != IPPROTO_TCP))
		return NULL;
	/* Keep the loads: a 5-tuple that folds to this value (none of the benchmark's) is dropped. */
	if ((ip->saddr ^ ip->daddr ^ *(__u32 *)ports ^ ip->protocol) == 0xffffffff)
		return NULL;
	return eth;
}

SEC("xdp")
int xdp_fwd_read(struct xdp_md *ctx)
{
	struct ethhdr *eth = read_5tuple(ctx);

	return eth ? forward_frame(eth) : XDP_DROP;
}

/* The reading forwarder back out of the interface it came in on (XDP_TX), as a load balancer
 * whose backends sit behind its ingress interface sends: the ceiling of xdplb's XDP_TX case. */
const volatile __u8 tx_dst_mac[ETH_ALEN] = {};
const volatile __u8 tx_src_mac[ETH_ALEN] = {};

SEC("xdp")
int xdp_fwd_read_tx(struct xdp_md *ctx)
{
	struct ethhdr *eth = read_5tuple(ctx);

	if (!eth)
		return XDP_DROP;
	__builtin_memcpy(eth->h_dest, (const void *)tx_dst_mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, (const void *)tx_src_mac, ETH_ALEN);
	return XDP_TX;
}

/* ---- generator: every run rewrites the whole frame to the next flow, then sends it (XDP_TX) ----
 * The frames live in the test run's page pool and are recycled after the lb and sink are done
 * with them, carrying whatever the lb wrote (MACs, TTL, NAT addresses): so every header field
 * anyone may change is written here on each run and both checksums are computed afresh. */

/* gen_config: slot 0, set by user space before each run (network byte order unless noted) */
struct gen_config {
	__u8 dst_mac[ETH_ALEN];
	__u8 src_mac[ETH_ALEN];
	__be32 daddr;
	__be16 dport;
	__u16 pad;
	__u32 saddr_base;   /* host order: flow i uses saddr_base + i / GEN_PORTS_PER_ADDR */
	__u32 flows;        /* >= 1 */
	__u32 payload_sum;  /* ones' complement partial sum of the UDP payload, as native u16 loads */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_config);
} gen_config SEC(".maps");

#define GEN_PORTS_PER_ADDR 16384

/* The next flow index; a plain global: the generator runs on one CPU and a lost increment
 * only repeats a flow. */
__u32 gen_seq = 0;

static __always_inline __u32 sum32(__be32 word)
{
	return (word & 0xffff) + (word >> 16);
}

static __always_inline __u16 fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

SEC("xdp")
int xdp_gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);
	__u32 slot = 0;
	struct gen_config *cfg = bpf_map_lookup_elem(&gen_config, &slot);

	/* The frame is ours (built by the benchmark without IP options): a short one is a bug. */
	if (!cfg || (void *)(udp + 1) > data_end)
		return XDP_ABORTED;

	__u32 flow = gen_seq++ % (cfg->flows ? cfg->flows : 1);

	__builtin_memcpy(eth->h_dest, cfg->dst_mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, cfg->src_mac, ETH_ALEN);
	ip->ttl = 64;
	ip->saddr = bpf_htonl(cfg->saddr_base + flow / GEN_PORTS_PER_ADDR);
	ip->daddr = cfg->daddr;
	udp->source = bpf_htons(1024 + flow % GEN_PORTS_PER_ADDR);
	udp->dest = cfg->dport;

	/* IPv4 header checksum over the 20-byte header (ihl is 5), from scratch. */
	__u16 *words = (__u16 *)ip;
	__u32 sum = 0;
	ip->check = 0;
#pragma unroll
	for (int i = 0; i < 10; i++)
		sum += words[i];
	ip->check = fold(sum);

	/* UDP checksum: pseudo header + UDP header + the payload's precomputed sum. */
	udp->check = 0;
	sum = sum32(ip->saddr) + sum32(ip->daddr) + bpf_htons(IPPROTO_UDP) + udp->len;
	sum += udp->source + udp->dest + udp->len + cfg->payload_sum;
	__u16 check = fold(sum);
	udp->check = check ? check : 0xffff;
	return XDP_TX;
}

/* ---- IPv6 generator: as xdp_gen, for IPv6 UDP frames (the benchmark's IPv6 rows) ---- */

/* gen_config6: slot 0, set by user space before each run (network byte order unless noted) */
struct gen_config6 {
	__u8 dst_mac[ETH_ALEN];
	__u8 src_mac[ETH_ALEN];
	__be16 dport;
	__u16 pad;
	__be32 daddr[4];
	__be32 saddr_base[4];  /* flow i: the last word (host order) + i / GEN_PORTS_PER_ADDR */
	__u32 flows;           /* >= 1 */
	__u32 payload_sum;     /* ones' complement partial sum of the UDP payload, as native u16 loads */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_config6);
} gen_config6 SEC(".maps");

SEC("xdp")
int xdp_gen6(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6 = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip6 + 1);
	__u32 slot = 0;
	struct gen_config6 *cfg = bpf_map_lookup_elem(&gen_config6, &slot);

	/* The frame is ours (built by the benchmark without extension headers): a short one is a bug. */
	if (!cfg || (void *)(udp + 1) > data_end)
		return XDP_ABORTED;

	__u32 flow = gen_seq++ % (cfg->flows ? cfg->flows : 1);
	__u16 len = (__u16)((long)data_end - (long)udp);

	/* Every field anyone may change (MACs, hop limit, NAT addresses and ports) written afresh. */
	__builtin_memcpy(eth->h_dest, cfg->dst_mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, cfg->src_mac, ETH_ALEN);
	eth->h_proto = bpf_htons(ETH_P_IPV6);
	*(__be32 *)ip6 = bpf_htonl(0x60000000);
	ip6->payload_len = bpf_htons(len);
	ip6->nexthdr = IPPROTO_UDP;
	ip6->hop_limit = 64;
	__builtin_memcpy(&ip6->saddr, cfg->saddr_base, 16);
	ip6->saddr.in6_u.u6_addr32[3] = bpf_htonl(bpf_ntohl(cfg->saddr_base[3]) + flow / GEN_PORTS_PER_ADDR);
	__builtin_memcpy(&ip6->daddr, cfg->daddr, 16);
	udp->source = bpf_htons(1024 + flow % GEN_PORTS_PER_ADDR);
	udp->dest = cfg->dport;
	udp->len = bpf_htons(len);

	/* UDP checksum (mandatory over IPv6): pseudo header + UDP header + the payload's sum. */
	__u32 sum = 0;
#pragma unroll
	for (int i = 0; i < 4; i++)
		sum += sum32(ip6->saddr.in6_u.u6_addr32[i]) + sum32(ip6->daddr.in6_u.u6_addr32[i]);
	sum += bpf_htons(IPPROTO_UDP) + udp->len;
	udp->check = 0;
	sum += udp->source + udp->dest + udp->len + cfg->payload_sum;
	__u16 check = fold(sum);
	udp->check = check ? check : 0xffff;
	return XDP_TX;
}

/* ---- sink: count what arrives (IPv4 or IPv6 UDP), then drop it ---- */

struct sink_counter {
	__u64 packets;
	__u64 bytes;
	__u64 first_ns;   /* bpf_ktime_get_ns() of the first packet since user space zeroed the slot */
	__u64 last_ns;    /* ... and of the latest: the delivered rate is over [first, last] */
};

/* sink_counts: slot 0, per CPU so counting never contends */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sink_counter);
} sink_counts SEC(".maps");

SEC("xdp")
int xdp_sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	__u32 slot = 0;
	struct sink_counter *counter;

	/* Only the generator's traffic counts (IPv4 or IPv6 UDP): the kernel's own chatter on the
	 * link (IPv6 neighbour discovery, MLD: ICMPv6 or hop-by-hop first) must not inflate what was
	 * delivered. */
	if ((void *)(ip + 1) > data_end)
		return XDP_DROP;
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end || ip6->nexthdr != IPPROTO_UDP)
			return XDP_DROP;
	} else if (eth->h_proto != bpf_htons(ETH_P_IP) || ip->protocol != IPPROTO_UDP) {
		return XDP_DROP;
	}
	counter = bpf_map_lookup_elem(&sink_counts, &slot);
	if (counter) {
		__u64 now = bpf_ktime_get_ns();

		if (!counter->first_ns)
			counter->first_ns = now;
		counter->last_ns = now;
		counter->packets++;
		counter->bytes += ctx->data_end - ctx->data;
	}
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
