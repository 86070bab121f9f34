// btf.cc: struct layouts read from an object's BTF, so codecs can be checked against the compiler.
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include <cerrno>

#include "common.h"

namespace xdplb {

namespace {

// btfStructLayout(objectPath, structName) -> {size, members: [{name, offset, size, bitOffset, bitSize}]}
Napi::Value BtfStructLayout(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  LibbpfLogReset();
  std::string path = ArgString(info, 0, "object path");
  std::string name = ArgString(info, 1, "struct name");
  LibbpfLogReset();
  btf *b = btf__parse(path.c_str(), nullptr);
  if (!b) ThrowBpfError(env, "btf parse", path, errno, errno == ENOENT ? "no such file, or it has no .BTF" : "");
  struct Free {
    btf *b;
    ~Free() { btf__free(b); }
  } guard{b};
  int id = btf__find_by_name_kind(b, name.c_str(), BTF_KIND_STRUCT);
  if (id < 0) ThrowBpfError(env, "btf struct layout", "struct " + name + " in " + path, -id,
                            "the struct is not in the object's BTF (is it used by the program?)");
  const btf_type *t = btf__type_by_id(b, id);
  Napi::Object out = Napi::Object::New(env);
  out.Set("size", t->size);
  Napi::Array members = Napi::Array::New(env);
  const btf_member *m = btf_members(t);
  for (uint16_t i = 0; i < btf_vlen(t); i++, m++) {
    Napi::Object mo = Napi::Object::New(env);
    uint32_t bitOffset = btf_member_bit_offset(t, i);
    uint32_t bitSize = btf_member_bitfield_size(t, i);
    long long size = btf__resolve_size(b, m->type);
    mo.Set("name", btf__name_by_offset(b, m->name_off));
    mo.Set("offset", bitOffset / 8);
    mo.Set("size", static_cast<double>(size < 0 ? 0 : size));
    if (bitSize) mo.Set("bitSize", bitSize);
    members.Set(i, mo);
  }
  out.Set("members", members);
  return out;
}

}  // namespace

void RegisterBtf(Napi::Env env, Napi::Object exports) {
  exports.Set("btfStructLayout", Napi::Function::New(env, BtfStructLayout, "btfStructLayout"));
}

}  // namespace xdplb
