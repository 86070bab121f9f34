/* parse.h: bounds-checked header parsing through a cursor over [pos, end). */
#ifndef XDPLB_PARSE_H
#define XDPLB_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>

#define PARSE_ERROR -1

/* <linux/icmp.h> pulls in glibc's <sys/socket.h>, which does not build for -target bpf:
 * the few ICMP definitions the program needs are spelled out here (RFC 792). */
#define ICMP_ECHOREPLY 0
#define ICMP_DEST_UNREACH 3
#define ICMP_ECHO 8
#define ICMP_TIME_EXCEEDED 11

struct icmphdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be32 rest;        /* echo id/sequence, unused, or next-hop MTU */
};

/* The cursor: pos is the next unparsed byte, end is the frame's data_end. */
struct cursor {
	void *pos;
	void *end;
};

/* Ethernet: on success *eth points at the header, the cursor is left just after it (14 bytes
 * on, at the VLAN tag for tagged frames), and the EtherType is returned in HOST byte order.
 * Returns PARSE_ERROR (cursor unmoved) when the frame is shorter than 14 bytes. */
static __always_inline int parse_ethhdr(struct cursor *c, struct ethhdr **eth)
{
	struct ethhdr *hdr = c->pos;

	if ((void *)(hdr + 1) > c->end)
		return PARSE_ERROR;
	c->pos = hdr + 1;
	*eth = hdr;
	return bpf_ntohs(hdr->h_proto);
}

/* IPv4: accepts version 4 only, IHL 5..15 (options are skipped, not parsed) and a total length that fits
 * header..frame end (shorter is fine: Ethernet padding follows). On success *ip points at the
 * header, *payload_len = tot_len - IHL*4 (host order), the cursor is left at the L4 header
 * (ip + IHL*4) and ip->protocol is returned. Returns PARSE_ERROR (cursor unmoved) when the
 * header is truncated, the version is not 4, IHL < 5, or tot_len < IHL*4 or beyond the frame. */
static __always_inline int parse_iphdr(struct cursor *c, struct iphdr **ip, __u32 *payload_len)
{
	struct iphdr *hdr = c->pos;
	__u32 hdr_len, tot_len, version_ihl;

	if ((void *)(hdr + 1) > c->end)
		return PARSE_ERROR;
	version_ihl = *(__u8 *)hdr;
	if ((version_ihl >> 4) != 4)
		return PARSE_ERROR;
	hdr_len = (version_ihl & 0x0f) * 4;
	if (hdr_len < sizeof(*hdr))
		return PARSE_ERROR;
	if (c->pos + hdr_len > c->end)
		return PARSE_ERROR;
	tot_len = bpf_ntohs(hdr->tot_len);
	if (tot_len < hdr_len || tot_len > (__u32)(c->end - c->pos))
		return PARSE_ERROR;
	c->pos += hdr_len;
	*ip = hdr;
	*payload_len = tot_len - hdr_len;
	return hdr->protocol;
}

/* Checks that `size` bytes at the cursor lie inside both the IP payload and the frame. The
 * size is a constant at every call site so the verifier learns the packet range. */
static __always_inline int l4_fits(struct cursor *c, __u32 size, __u32 payload_len)
{
	return size <= payload_len && c->pos + size <= c->end;
}

/* L4 (TCP, UDP, ICMP): checks the fixed header (20, 8, 8 bytes) lies inside both the IP
 * payload (payload_len, from tot_len) and the frame; on success *l4 points at it, the cursor
 * is left just after the fixed header and proto is returned. Other protocols: *l4 = NULL,
 * proto returned, cursor unmoved. Returns PARSE_ERROR (cursor unmoved) when truncated. */
static __always_inline int parse_l4(struct cursor *c, int proto, __u32 payload_len, void **l4)
{
	void *hdr = c->pos;

	*l4 = NULL;
	switch (proto) {
	case IPPROTO_TCP:
		if (!l4_fits(c, sizeof(struct tcphdr), payload_len))
			return PARSE_ERROR;
		c->pos += sizeof(struct tcphdr);
		break;
	case IPPROTO_UDP:
		if (!l4_fits(c, sizeof(struct udphdr), payload_len))
			return PARSE_ERROR;
		c->pos += sizeof(struct udphdr);
		break;
	case IPPROTO_ICMP:
		if (!l4_fits(c, sizeof(struct icmphdr), payload_len))
			return PARSE_ERROR;
		c->pos += sizeof(struct icmphdr);
		break;
	default:
		return proto;
	}
	*l4 = hdr;
	return proto;
}

#endif
