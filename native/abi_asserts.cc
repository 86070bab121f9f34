// abi_asserts.cc: the layout of every struct in bpf/lb_abi.h as clang laid it out for BPF (read from
// the BTF of bpf/lb.o by scripts/gen-abi.mjs into abi_layout.generated.h), checked against the host
// compiler's layout of the same header: the addon does not build when the two disagree.
#include <linux/types.h>

#include <cstddef>

#include "../bpf/lb_abi.h"

#define ABI_FIELD(type, field, off, sz)                                        \
  static_assert(offsetof(struct type, field) == (off), #type "." #field " offset"); \
  static_assert(sizeof(((struct type *)nullptr)->field) == (sz), #type "." #field " size")

#include "abi_layout.generated.h"
