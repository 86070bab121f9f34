/* verifier_reject.bpf.c: reads the packet without a bounds check, so the verifier must refuse it. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_unchecked(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data;

	return data[100];
}

char LICENSE[] SEC("license") = "GPL";
