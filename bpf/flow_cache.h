/* flow_cache.h: the flow cache (flows: LB_FLOW_WAYS-way sets), used only in moved Maglev slots:
 * hash, lookup, NRU replacement. */
#ifndef XDPLB_FLOW_CACHE_H
#define XDPLB_FLOW_CACHE_H

/* Included once by lb.bpf.c, after struct packet and the load-time knobs (hash_seed,
 * flow_sets_mask) it reads. */

static __always_inline __u32 flow_check(__u32 hash, __u32 backend_id, __u32 epoch)
{
	return hash ^ (__u32)(backend_id * LB_FLOW_CHECK_MUL) ^ epoch;
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

/* The IPv6 key as five 64-bit words; pad is always 0. */
static __always_inline int same_flow6(const struct lb_flow_key6 *a, const struct lb_flow_key6 *b)
{
	const __u64 *x = (const __u64 *)a, *y = (const __u64 *)b;

	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3] && x[4] == y[4];
}

/* The flows6 set of a flows6 hash (bpf/hash6.h flow_cache_hash6). */
static __always_inline struct lb_flow_set6 *flow_set6(__u32 hash)
{
	__u32 index = hash & flow_sets_mask6;

	return bpf_map_lookup_elem(&flows6, &index);
}

/* flow_cache_find##SFX and flow_cache_remember##SFX over one family's key, set and entry types
 * (IPv4: no suffix, flows; IPv6: 6, flows6): one policy, written once. */
#define FLOW_CACHE_FUNCS(SFX, KEY, SET, ENTRY)								\
/* The entry remembering the flow in `set` during the transition `epoch`, NULL when none (or a	\
 * torn or stale entry); marks the entry referenced (a write only the first time after each	\
 * eviction sweep of its set). */									\
static __always_inline struct ENTRY *flow_cache_find##SFX(struct SET *set, const struct KEY *key,	\
							  __u32 hash, __u32 epoch)			\
{													\
	_Pragma("unroll")										\
	for (int w = 0; w < LB_FLOW_WAYS; w++) {							\
		struct ENTRY *e = &set->way[w];								\
													\
		if (!same_flow##SFX(&e->key, key))							\
			continue;									\
		if (e->backend_id == 0 || e->epoch != epoch || e->check != flow_check(hash, e->backend_id, epoch)) \
			return NULL;									\
		if (!e->referenced)									\
			e->referenced = 1;								\
		return e;										\
	}												\
	return NULL;											\
}													\
													\
/* Remembers the flow's backend (unreferenced): in the way holding the flow, else the first empty	\
 * way, else the first unreferenced way from way (hash >> 30) on, else (all referenced) way		\
 * (hash >> 30) after clearing every way's mark: not-recently-used, decided by the set's		\
 * contents alone (test/refmodel.ts mirrors it). */							\
static __always_inline void flow_cache_remember##SFX(struct SET *set, const struct KEY *key,		\
						     __u32 hash, __u32 backend_id, __u32 epoch)		\
{													\
	struct ENTRY *e;										\
	int victim = -1;										\
													\
	_Pragma("unroll")										\
	for (int w = 0; w < LB_FLOW_WAYS; w++) {							\
		if (victim < 0 && same_flow##SFX(&set->way[w].key, key))				\
			victim = w;									\
	}												\
	_Pragma("unroll")										\
	for (int w = 0; w < LB_FLOW_WAYS; w++) {							\
		if (victim < 0 && set->way[w].backend_id == 0)						\
			victim = w;									\
	}												\
	if (victim < 0) {										\
		__u32 start = hash >> (32 - LB_FLOW_WAYS_BITS);						\
													\
		_Pragma("unroll")									\
		for (int i = 0; i < LB_FLOW_WAYS; i++) {						\
			__u32 w = (start + i) & (LB_FLOW_WAYS - 1);					\
													\
			if (victim < 0 && !set->way[w].referenced)					\
				victim = w;								\
		}											\
		if (victim < 0) {									\
			_Pragma("unroll")								\
			for (int w = 0; w < LB_FLOW_WAYS; w++)						\
				set->way[w].referenced = 0;						\
			victim = start;									\
		}											\
	}												\
	e = &set->way[victim & (LB_FLOW_WAYS - 1)];							\
	e->key = *key;											\
	e->backend_id = backend_id;									\
	e->epoch = epoch;										\
	e->check = flow_check(hash, backend_id, epoch);							\
	e->referenced = 0;										\
}

FLOW_CACHE_FUNCS(, lb_flow_key, lb_flow_set, lb_flow_entry)
FLOW_CACHE_FUNCS(6, lb_flow_key6, lb_flow_set6, lb_flow_entry6)

#endif /* XDPLB_FLOW_CACHE_H */
