/* xdp_fwd.bpf.c: the benchmark's own XDP programs: the trivial forwarder (the ceiling any XDP
 * load balancer is measured against), the packet generator run by BPF_PROG_TEST_RUN with
 * LIVE_FRAMES, and the sink that counts then drops what arrives. Benchmarks only. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
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

SEC("xdp")
int xdp_fwd(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	__builtin_memcpy(eth->h_dest, (const void *)fwd_dst_mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, (const void *)fwd_src_mac, ETH_ALEN);
	return bpf_redirect_map(&fwd_ports, 0, XDP_DROP);
}

/* ---- generator: every run rewrites the flow of the frame, then sends it out (XDP_TX) ---- */

/* Number of distinct flows (>= 1) and the first source address (host byte order). Flow i uses
 * source port 1024 + i % 16384 and source address gen_saddr_base + i / 16384. */
const volatile __u32 gen_flows = 16384;
const volatile __u32 gen_saddr_base = 0;

#define GEN_PORTS_PER_ADDR 16384

/* The next flow index; a plain global: the generator runs on one CPU and a lost increment
 * only repeats a flow. */
__u32 gen_seq = 0;

/* RFC 1624 incremental update of a 16-bit ones' complement checksum when a 32-bit word changes. */
static __always_inline __u16 csum_replace32(__u16 check, __be32 from, __be32 to)
{
	__u32 sum = (__u16)~check;

	sum += (__u16)~from + (__u16)~(from >> 16);
	sum += (__u16)to + (__u16)(to >> 16);
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

	/* The frame is ours (built by the benchmark without IP options): a short one is a bug. */
	if ((void *)(udp + 1) > data_end || ip->ihl != 5 || ip->protocol != IPPROTO_UDP)
		return XDP_ABORTED;

	__u32 flow = gen_seq++ % (gen_flows ? gen_flows : 1);
	__be32 old_saddr = ip->saddr;
	__be32 new_saddr = bpf_htonl(gen_saddr_base + flow / GEN_PORTS_PER_ADDR);
	__be32 old_ports = *(__be32 *)&udp->source;
	__be16 new_sport = bpf_htons(1024 + flow % GEN_PORTS_PER_ADDR);

	ip->saddr = new_saddr;
	ip->check = csum_replace32(ip->check, old_saddr, new_saddr);
	udp->source = new_sport;
	/* UDP checksum 0 means "none" (RFC 768) and stays 0; otherwise it covers the pseudo header. */
	if (udp->check) {
		__u16 check = csum_replace32(udp->check, old_saddr, new_saddr);

		check = csum_replace32(check, old_ports, *(__be32 *)&udp->source);
		udp->check = check ? check : 0xffff;
	}
	return XDP_TX;
}

/* ---- sink: count what arrives, then drop it ---- */

struct sink_counter {
	__u64 packets;
	__u64 bytes;
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
	__u32 slot = 0;
	struct sink_counter *counter = bpf_map_lookup_elem(&sink_counts, &slot);

	if (counter) {
		counter->packets++;
		counter->bytes += ctx->data_end - ctx->data;
	}
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
