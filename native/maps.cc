// maps.cc: map create/info/CRUD/iterate/batch, pinning, fds from ids, and type-name tables.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unordered_map>

#include "common.h"

namespace xdplb {

namespace {

std::string Label(const Napi::CallbackInfo &info, size_t i, const char *kind) {
  return std::string(kind) + " '" + OptString(info, i, "?") + "'";
}

void CheckLen(Napi::Env env, const char *op, const std::string &what, const char *part, size_t got, size_t want) {
  if (got != want)
    ThrowBpfError(env, op, what, EINVAL,
                  std::string(part) + " is " + std::to_string(got) + " bytes, the map expects " + std::to_string(want));
}

// mapCreate(type, name, keySize, valueSize, maxEntries, flags, innerMapFd) -> fd
Napi::Value MapCreate(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  LibbpfLogReset();
  auto type = static_cast<bpf_map_type>(ArgInt(info, 0, "map type"));
  std::string name = ArgString(info, 1, "map name");
  bpf_map_create_opts opts;
  memset(&opts, 0, sizeof(opts));
  opts.sz = sizeof(opts);
  opts.map_flags = static_cast<uint32_t>(ArgInt(info, 5, "flags"));
  int64_t inner = ArgInt(info, 6, "inner map fd");
  if (inner >= 0) opts.inner_map_fd = static_cast<uint32_t>(inner);
  LibbpfLogReset();
  int fd = bpf_map_create(type, name.c_str(), static_cast<uint32_t>(ArgInt(info, 2, "key size")),
                          static_cast<uint32_t>(ArgInt(info, 3, "value size")),
                          static_cast<uint32_t>(ArgInt(info, 4, "max entries")), &opts);
  if (fd < 0) {
    int err = errno;
    std::string hint = err == EINVAL ? "check type, sizes, flags, name ([A-Za-z0-9_.], <16 chars) and inner map"
                                     : DefaultHint(err);
    ThrowBpfError(env, "map create", "'" + name + "'", err, hint);
  }
  return Napi::Number::New(env, fd);
}


Napi::Value MapInfo(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  LibbpfLogReset();
  int fd = static_cast<int>(ArgInt(info, 0, "map fd"));
  bpf_map_info mi;
  memset(&mi, 0, sizeof(mi));
  uint32_t len = sizeof(mi);
  int err = bpf_obj_get_info_by_fd(fd, &mi, &len);
  if (err) ThrowBpfError(env, "map info", Label(info, 1, "map"), -err);
  return MapInfoObject(env, mi);
}

// mapLookup(fd, key, keySize, valueLen, name) -> Buffer | null (null when the key is absent)
Napi::Value MapLookup(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  LibbpfLogReset();
  int fd = static_cast<int>(ArgInt(info, 0, "map fd"));
  auto key = ArgBuffer(info, 1, "key");
  size_t keySize = static_cast<size_t>(ArgInt(info, 2, "key size"));
  size_t valueLen = static_cast<size_t>(ArgInt(info, 3, "value length"));
  std::string what = Label(info, 4, "map");
  CheckLen(env, "map lookup", what, "key", key.Length(), keySize);
  auto value = Napi::Buffer<uint8_t>::New(env, valueLen);
  int err = bpf_map_lookup_elem(fd, key.Data(), value.Data());
  if (err == -ENOENT) return env.Null();
  if (err) ThrowBpfError(env, "map lookup", what, -err);
  return value;
}

// mapUpdate(fd, key, keySize, value, valueLen, flags, name)
Napi::Value MapUpdate(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  LibbpfLogReset();
  int fd = static_cast<int>(ArgInt(info, 0, "map fd"));
  auto key = ArgBuffer(info, 1, "key");
  size_t keySize = static_cast<size_t>(ArgInt(info, 2, "key size"));
  auto value = ArgBuffer(info, 3, "value");
  size_t valueLen = static_cast<size_t>(ArgInt(info, 4, "value length"));
  uint64_t flags = static_cast<uint64_t>(ArgInt(info, 5, "flags"));
  std::string what = Label(info, 6, "map");
  CheckLen(env, "map update", what, "key", key.Length(), keySize);
  CheckLen(env, "map update", what, "value", value.Length(), valueLen);
  int err = bpf_map_update_elem(fd, key.Data(), value.Data(), flags);
  if (err) {
    std::string hint;
    if (err == -EEXIST) hint = "the key exists and flag 'noexist' was given";
    else if (err == -ENOENT) hint = "the key does not exist and flag 'exist' was given";
    else if (err == -E2BIG) hint = "the map is full (max_entries reached) or the index is out of range";
    else if (err == -EBADF || err == -EINVAL) hint = "for a map-in-map the value must be an fd of a compatible inner map";
    ThrowBpfError(env, "map update", what, -err, hint);
  }
  return env.Undefined();
}

// mapDelete(fd, key, keySize, name) -> true when deleted, false when absent
Napi::Value MapDelete(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  LibbpfLogReset();
  int fd = static_cast<int>(ArgInt(info, 0, "map fd"));
  auto key = ArgBuffer(info, 1, "key");
  size_t keySize = static_cast<size_t>(ArgInt(info, 2, "key size"));
  std::string what = Label(info, 3, "map");
  CheckLen(env, "map delete", what, "key", key.Length(), keySize);
  int err = bpf_map_delete_elem(fd, key.Data());
  if (err == -ENOENT) return Napi::Boolean::New(env, false);
  if (err)
    ThrowBpfError(env, "map delete", what, -err, err == -EINVAL ? "array maps cannot delete entries" : "");
  return Napi::Boolean::New(env, true);
}

// mapNextKey(fd, key | null, keySize, name) -> Buffer | null at the end
Napi::Value MapNextKey(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  LibbpfLogReset();
  int fd = static_cast<int>(ArgInt(info, 0, "map fd"));
  size_t keySize = static_cast<size_t>(ArgInt(info, 2, "key size"));
  std::string what = Label(info, 3, "map");
  const void *cur = nullptr;
  if (info[1].IsBuffer()) {
    auto key = info[1].As<Napi::Buffer<uint8_t>>();
    CheckLen(env, "map next key", what, "key", key.Length(), keySize);
    cur = key.Data();
  }
  auto next = Napi::Buffer<uint8_t>::New(env, keySize);
  int err = bpf_map_get_next_key(fd, cur, next.Data());
  if (err == -ENOENT) return env.Null();
  if (err) ThrowBpfError(env, "map next key", what, -err);
  return next;
}

// mapLookupBatch(fd, keySize, valueLen, maxEntries, name) -> {keys, values, count}
Napi::Value MapLookupBatch(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  LibbpfLogReset();
  int fd = static_cast<int>(ArgInt(info, 0, "map fd"));
  size_t keySize = static_cast<size_t>(ArgInt(info, 1, "key size"));
  size_t valueLen = static_cast<size_t>(ArgInt(info, 2, "value length"));
  size_t capacity = std::max<size_t>(1, static_cast<size_t>(ArgInt(info, 3, "max entries")));
  std::string what = Label(info, 4, "map");
  std::vector<uint8_t> keys(capacity * keySize), values(capacity * valueLen);
  // The batch token is opaque (a bucket index for hashes); give it room for any key.
  std::vector<uint8_t> inBatch(std::max<size_t>(keySize, 8)), outBatch(inBatch.size());
  bpf_map_batch_opts opts;
  memset(&opts, 0, sizeof(opts));
  opts.sz = sizeof(opts);
  size_t total = 0;
  bool first = true;
  while (total < capacity) {
    uint32_t count = static_cast<uint32_t>(capacity - total);
    int err = bpf_map_lookup_batch(fd, first ? nullptr : inBatch.data(), outBatch.data(),
                                   keys.data() + total * keySize, values.data() + total * valueLen, &count, &opts);
    if (err && err != -ENOENT) ThrowBpfError(env, "map lookup batch", what, -err);
    total += count;
    if (err == -ENOENT) break;
    std::swap(inBatch, outBatch);
    first = false;
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("keys", Napi::Buffer<uint8_t>::Copy(env, keys.data(), total * keySize));
  out.Set("values", Napi::Buffer<uint8_t>::Copy(env, values.data(), total * valueLen));
  out.Set("count", static_cast<double>(total));
  return out;
}

// mapUpdateBatch(fd, keys, values, count, flags, name)
Napi::Value MapUpdateBatch(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  LibbpfLogReset();
  int fd = static_cast<int>(ArgInt(info, 0, "map fd"));
  auto keys = ArgBuffer(info, 1, "keys");
  auto values = ArgBuffer(info, 2, "values");
  uint32_t count = static_cast<uint32_t>(ArgInt(info, 3, "count"));
  uint64_t flags = static_cast<uint64_t>(ArgInt(info, 4, "flags"));
  std::string what = Label(info, 5, "map");
  bpf_map_batch_opts opts;
  memset(&opts, 0, sizeof(opts));
  opts.sz = sizeof(opts);
  opts.elem_flags = flags;
  uint32_t done = count;
  int err = bpf_map_update_batch(fd, keys.Data(), values.Data(), &done, &opts);
  if (err)
    ThrowBpfError(env, "map update batch", what, -err,
                  std::to_string(done) + " of " + std::to_string(count) + " entries were written before the error");
  return env.Undefined();
}

// The data of a BPF_F_MMAPABLE array mapped into the process for one call (the mapping holds a
// reference on the map while it lasts; it is gone again when the call returns, so no JS object
// can outlive it).
class MapMapping {
 public:
  MapMapping(Napi::Env env, int fd, size_t bytes, bool write, const std::string &what) : bytes_(bytes) {
    addr_ = mmap(nullptr, bytes, write ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
    if (addr_ == MAP_FAILED)
      ThrowBpfError(env, write ? "map mmap write" : "map mmap read", what, errno,
                    errno == EINVAL ? "the map is not a BPF_F_MMAPABLE array, or the length exceeds its data" : DefaultHint(errno));
  }
  ~MapMapping() { munmap(addr_, bytes_); }
  uint32_t *words() const { return static_cast<uint32_t *>(addr_); }
 private:
  void *addr_;
  size_t bytes_;
};

// mapStoreWords(fd, bytes, offsets Uint32Array, values Uint32Array, name): maps the first `bytes`
// of an mmapable array and stores values[i] at u32 offset offsets[i], in index order, each as one
// aligned 32-bit store (a reader of that word sees the old or the new value, never a mix).
Napi::Value MapStoreWords(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = static_cast<int>(ArgInt(info, 0, "map fd"));
  size_t bytes = static_cast<size_t>(ArgInt(info, 1, "bytes"));
  if (!info[2].IsTypedArray() || !info[3].IsTypedArray()) throw Napi::TypeError::New(env, "offsets and values must be Uint32Arrays");
  auto offsets = info[2].As<Napi::Uint32Array>();
  auto values = info[3].As<Napi::Uint32Array>();
  std::string what = Label(info, 4, "map");
  size_t n = offsets.ElementLength();
  if (values.ElementLength() != n) ThrowBpfError(env, "map mmap write", what, EINVAL, "as many offsets as values");
  for (size_t i = 0; i < n; i++)
    if (static_cast<size_t>(offsets[i]) * 4 + 4 > bytes) ThrowBpfError(env, "map mmap write", what, EINVAL, "offset " + std::to_string(offsets[i]) + " beyond the mapped words");
  if (n == 0) return env.Undefined();
  MapMapping m(env, fd, bytes, true, what);
  uint32_t *w = m.words();
  for (size_t i = 0; i < n; i++) __atomic_store_n(&w[offsets[i]], values[i], __ATOMIC_RELEASE);
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  return env.Undefined();
}

// mapReadWords(fd, bytes, name) -> Buffer: a copy of the first `bytes` of an mmapable array.
Napi::Value MapReadWords(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = static_cast<int>(ArgInt(info, 0, "map fd"));
  size_t bytes = static_cast<size_t>(ArgInt(info, 1, "bytes"));
  std::string what = Label(info, 2, "map");
  MapMapping m(env, fd, bytes, false, what);
  auto out = Napi::Buffer<uint8_t>::New(env, bytes);
  const uint32_t *src = m.words();
  uint32_t *dst = reinterpret_cast<uint32_t *>(out.Data());
  for (size_t i = 0; i < bytes / 4; i++) dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
  return out;
}

// Kept mappings (mapMmap / mapMmapStore / mapMmapRead / mapMunmap): the data of a
// BPF_F_MMAPABLE array mapped once and used by many calls. JS holds only a handle number,
// never the address, so no JS object can reach the memory after mapMunmap; a handle that was
// unmapped (or never made) throws EBADF. The mapping holds its own reference on the map (the
// map and its id live at least as long as it), so the fd may be closed after mapMmap.
struct KeptMapping {
  uint32_t *words;
  size_t bytes;
};
std::unordered_map<uint32_t, KeptMapping> &KeptMappings() {
  static std::unordered_map<uint32_t, KeptMapping> kept;
  return kept;
}
uint32_t nextMappingHandle = 1;

const KeptMapping &FindMapping(Napi::Env env, const Napi::CallbackInfo &info, const char *op) {
  uint32_t handle = static_cast<uint32_t>(ArgInt(info, 0, "mapping handle"));
  auto it = KeptMappings().find(handle);
  if (it == KeptMappings().end()) ThrowBpfError(env, op, "mapping " + std::to_string(handle), EBADF, "no such mapping (unmapped already)");
  return it->second;
}

// mapMmap(fd, bytes, name) -> handle: maps the first `bytes` of an mmapable array, read-write,
// its pages populated.
Napi::Value MapMmap(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = static_cast<int>(ArgInt(info, 0, "map fd"));
  size_t bytes = static_cast<size_t>(ArgInt(info, 1, "bytes"));
  std::string what = Label(info, 2, "map");
  if (bytes == 0) ThrowBpfError(env, "map mmap", what, EINVAL, "nothing to map (0 bytes)");
  // MAP_POPULATE: every page mapped now, in one pass, not by a fault on a change's first stores.
  void *addr = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
  if (addr == MAP_FAILED)
    ThrowBpfError(env, "map mmap", what, errno,
                  errno == EINVAL ? "the map is not a BPF_F_MMAPABLE array, or the length exceeds its data" : DefaultHint(errno));
  uint32_t handle = nextMappingHandle++;
  if (nextMappingHandle == 0) nextMappingHandle = 1;
  KeptMappings()[handle] = KeptMapping{static_cast<uint32_t *>(addr), bytes};
  return Napi::Number::New(env, handle);
}

// mapMmapStore(handle, offsets Uint32Array, values Uint32Array): as mapStoreWords, through a
// kept mapping (every offset checked before the first store: all or nothing).
Napi::Value MapMmapStore(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  const KeptMapping &m = FindMapping(env, info, "map mmap write");
  if (!info[1].IsTypedArray() || !info[2].IsTypedArray()) throw Napi::TypeError::New(env, "offsets and values must be Uint32Arrays");
  auto offsets = info[1].As<Napi::Uint32Array>();
  auto values = info[2].As<Napi::Uint32Array>();
  size_t n = offsets.ElementLength();
  std::string what = "mapping " + std::to_string(static_cast<uint32_t>(ArgInt(info, 0, "mapping handle")));
  if (values.ElementLength() != n) ThrowBpfError(env, "map mmap write", what, EINVAL, "as many offsets as values");
  for (size_t i = 0; i < n; i++)
    if (static_cast<size_t>(offsets[i]) * 4 + 4 > m.bytes) ThrowBpfError(env, "map mmap write", what, EINVAL, "offset " + std::to_string(offsets[i]) + " beyond the mapped words");
  uint32_t *w = m.words;
  for (size_t i = 0; i < n; i++) __atomic_store_n(&w[offsets[i]], values[i], __ATOMIC_RELEASE);
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  return env.Undefined();
}

// mapMmapStoreSlots(idsHandle, marksHandle (0: none), indices Uint32Array, words Uint32Array,
// idStride, markStride, movedBit): writes Maglev slots in place through kept mappings of a
// table's ids array and marks array (src/dataplane/maglev-tables.ts writeMaglevSlotsFlat has
// the layout and why the order): slot indices[k] takes words[4k..4k+3] = {backend, prev, epoch,
// seen | flags << 8}. Three steps, each store a release store: 1. the marks {prev, epoch, seen}
// of the slots that are moved after the write (prev != 0); 2. every slot's id (backend, with
// movedBit when moved); 3. the marks of the slots that are not moved. Every offset is checked
// before the first store (all or nothing). False (nothing stored) when a slot is moved and
// there is no marks mapping.
Napi::Value MapMmapStoreSlots(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  const KeptMapping &ids = FindMapping(env, info, "map mmap write");
  uint32_t marksHandle = static_cast<uint32_t>(ArgInt(info, 1, "marks mapping handle"));
  const KeptMapping *marks = nullptr;
  if (marksHandle != 0) {
    auto it = KeptMappings().find(marksHandle);
    if (it == KeptMappings().end()) ThrowBpfError(env, "map mmap write", "mapping " + std::to_string(marksHandle), EBADF, "no such mapping (unmapped already)");
    marks = &it->second;
  }
  if (!info[2].IsTypedArray() || !info[3].IsTypedArray()) throw Napi::TypeError::New(env, "indices and words must be Uint32Arrays");
  auto indices = info[2].As<Napi::Uint32Array>();
  auto words = info[3].As<Napi::Uint32Array>();
  size_t idStride = static_cast<size_t>(ArgInt(info, 4, "id stride"));
  size_t markStride = static_cast<size_t>(ArgInt(info, 5, "mark stride"));
  uint32_t movedBit = static_cast<uint32_t>(ArgInt(info, 6, "moved bit"));
  size_t n = indices.ElementLength();
  std::string what = "mapping " + std::to_string(static_cast<uint32_t>(ArgInt(info, 0, "mapping handle")));
  if (words.ElementLength() < n * 4) ThrowBpfError(env, "map mmap write", what, EINVAL, "4 words per slot index");
  const uint32_t *idx = indices.Data();
  const uint32_t *w = words.Data();
  size_t moved = 0;
  for (size_t k = 0; k < n; k++) {
    if (static_cast<size_t>(idx[k]) * idStride * 4 + 4 > ids.bytes)
      ThrowBpfError(env, "map mmap write", what, EINVAL, "slot " + std::to_string(idx[k]) + " beyond the mapped table");
    if (marks && static_cast<size_t>(idx[k]) * markStride * 4 + 12 > marks->bytes)
      ThrowBpfError(env, "map mmap write", what, EINVAL, "slot " + std::to_string(idx[k]) + " beyond the mapped marks");
    if (w[k * 4 + 1] != 0) moved++;
  }
  if (moved && !marks) return Napi::Boolean::New(env, false);
  auto markStep = [&](bool movedSlots) {
    if (!marks) return;
    for (size_t k = 0; k < n; k++) {
      const uint32_t *s = w + k * 4;
      if ((s[1] != 0) != movedSlots) continue;
      uint32_t *m = marks->words + static_cast<size_t>(idx[k]) * markStride;
      __atomic_store_n(&m[0], s[1], __ATOMIC_RELEASE);
      __atomic_store_n(&m[1], s[2], __ATOMIC_RELEASE);
      __atomic_store_n(&m[2], s[3] & 0xffff, __ATOMIC_RELEASE);
    }
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
  };
  markStep(true);
  for (size_t k = 0; k < n; k++) {
    const uint32_t *s = w + k * 4;
    __atomic_store_n(&ids.words[static_cast<size_t>(idx[k]) * idStride], s[1] != 0 ? (s[0] | movedBit) : s[0], __ATOMIC_RELEASE);
  }
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  markStep(false);
  return Napi::Boolean::New(env, true);
}

// mapMmapRead(handle) -> Buffer: a copy of the mapped words.
Napi::Value MapMmapRead(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  const KeptMapping &m = FindMapping(env, info, "map mmap read");
  auto out = Napi::Buffer<uint8_t>::New(env, m.bytes);
  uint32_t *dst = reinterpret_cast<uint32_t *>(out.Data());
  for (size_t i = 0; i < m.bytes / 4; i++) dst[i] = __atomic_load_n(&m.words[i], __ATOMIC_RELAXED);
  return out;
}

// mapMunmap(handle) -> bool: unmaps a kept mapping (false when there was none).
Napi::Value MapMunmap(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  uint32_t handle = static_cast<uint32_t>(ArgInt(info, 0, "mapping handle"));
  auto it = KeptMappings().find(handle);
  if (it == KeptMappings().end()) return Napi::Boolean::New(env, false);
  munmap(it->second.words, it->second.bytes);
  KeptMappings().erase(it);
  return Napi::Boolean::New(env, true);
}

// objPin(fd, path, what)
Napi::Value ObjPin(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  LibbpfLogReset();
  int fd = static_cast<int>(ArgInt(info, 0, "fd"));
  std::string path = ArgString(info, 1, "pin path");
  LibbpfLogReset();
  int err = bpf_obj_pin(fd, path.c_str());
  if (err) {
    std::string hint;
    if (err == -EEXIST) hint = "something is already pinned at that path";
    else if (err == -ENOENT) hint = "the parent directory does not exist under bpffs";
    else if (err == -EPERM || err == -EINVAL) hint = "the path must be on a mounted bpffs (/sys/fs/bpf; run scripts/setup.sh)";
    ThrowBpfError(env, OptString(info, 2, "object") + " pin", path, -err, hint);
  }
  return env.Undefined();
}

// objGet(path, what) -> fd
Napi::Value ObjGet(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  LibbpfLogReset();
  std::string path = ArgString(info, 0, "pin path");
  LibbpfLogReset();
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) {
    int err = errno;
    ThrowBpfError(env, OptString(info, 1, "object") + " open pinned", path, err,
                  err == ENOENT ? "nothing is pinned at that path (is bpffs mounted at /sys/fs/bpf?)" : "");
  }
  return Napi::Number::New(env, fd);
}

Napi::Value FdFromId(const Napi::CallbackInfo &info, const char *kind, int (*get)(uint32_t)) {
  Napi::Env env = info.Env();
  LibbpfLogReset();
  uint32_t id = static_cast<uint32_t>(ArgInt(info, 0, "id"));
  int fd = get(id);
  if (fd < 0) {
    int err = errno;
    ThrowBpfError(env, std::string(kind) + " from id", std::to_string(id), err,
                  err == ENOENT ? std::string("no ") + kind + " with that id (it may have been unloaded)" : "");
  }
  return Napi::Number::New(env, fd);
}

Napi::Value ProgFdFromId(const Napi::CallbackInfo &info) { return FdFromId(info, "program", bpf_prog_get_fd_by_id); }
Napi::Value MapFdFromId(const Napi::CallbackInfo &info) { return FdFromId(info, "map", bpf_map_get_fd_by_id); }
Napi::Value LinkFdFromId(const Napi::CallbackInfo &info) { return FdFromId(info, "link", bpf_link_get_fd_by_id); }

Napi::Value CloseFd(const Napi::CallbackInfo &info) {
  int fd = static_cast<int>(ArgInt(info, 0, "fd"));
  if (fd >= 0) close(fd);
  return info.Env().Undefined();
}

Napi::Value PossibleCpus(const Napi::CallbackInfo &info) {
  int n = libbpf_num_possible_cpus();
  if (n < 0) ThrowBpfError(info.Env(), "possible cpus", "", -n);
  return Napi::Number::New(info.Env(), n);
}

// Type names indexed by number, as libbpf spells them ("hash", "array_of_maps", "xdp", ...).
Napi::Value MapTypeNames(const Napi::CallbackInfo &info) {
  Napi::Array out = Napi::Array::New(info.Env());
  for (uint32_t t = 0; t < 256; t++) {
    const char *s = libbpf_bpf_map_type_str(static_cast<bpf_map_type>(t));
    if (!s) break;
    out.Set(t, s);
  }
  return out;
}

Napi::Value ProgTypeNames(const Napi::CallbackInfo &info) {
  Napi::Array out = Napi::Array::New(info.Env());
  for (uint32_t t = 0; t < 256; t++) {
    const char *s = libbpf_bpf_prog_type_str(static_cast<bpf_prog_type>(t));
    if (!s) break;
    out.Set(t, s);
  }
  return out;
}

}  // namespace

Napi::Object MapInfoObject(Napi::Env env, const bpf_map_info &mi) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", mi.id);
  o.Set("name", mi.name);
  o.Set("type", mi.type);
  const char *typeName = libbpf_bpf_map_type_str(static_cast<bpf_map_type>(mi.type));
  o.Set("typeName", typeName ? typeName : "unknown");
  o.Set("keySize", mi.key_size);
  o.Set("valueSize", mi.value_size);
  o.Set("maxEntries", mi.max_entries);
  o.Set("flags", mi.map_flags);
  return o;
}

void RegisterMaps(Napi::Env env, Napi::Object exports) {
  exports.Set("mapCreate", Napi::Function::New(env, MapCreate, "mapCreate"));
  exports.Set("mapInfo", Napi::Function::New(env, MapInfo, "mapInfo"));
  exports.Set("mapLookup", Napi::Function::New(env, MapLookup, "mapLookup"));
  exports.Set("mapUpdate", Napi::Function::New(env, MapUpdate, "mapUpdate"));
  exports.Set("mapDelete", Napi::Function::New(env, MapDelete, "mapDelete"));
  exports.Set("mapNextKey", Napi::Function::New(env, MapNextKey, "mapNextKey"));
  exports.Set("mapLookupBatch", Napi::Function::New(env, MapLookupBatch, "mapLookupBatch"));
  exports.Set("mapUpdateBatch", Napi::Function::New(env, MapUpdateBatch, "mapUpdateBatch"));
  exports.Set("mapMmapStoreSlots", Napi::Function::New(env, MapMmapStoreSlots, "mapMmapStoreSlots"));
  exports.Set("mapStoreWords", Napi::Function::New(env, MapStoreWords, "mapStoreWords"));
  exports.Set("mapReadWords", Napi::Function::New(env, MapReadWords, "mapReadWords"));
  exports.Set("mapMmap", Napi::Function::New(env, MapMmap, "mapMmap"));
  exports.Set("mapMmapStore", Napi::Function::New(env, MapMmapStore, "mapMmapStore"));
  exports.Set("mapMmapRead", Napi::Function::New(env, MapMmapRead, "mapMmapRead"));
  exports.Set("mapMunmap", Napi::Function::New(env, MapMunmap, "mapMunmap"));
  exports.Set("objPin", Napi::Function::New(env, ObjPin, "objPin"));
  exports.Set("objGet", Napi::Function::New(env, ObjGet, "objGet"));
  exports.Set("progFdFromId", Napi::Function::New(env, ProgFdFromId, "progFdFromId"));
  exports.Set("mapFdFromId", Napi::Function::New(env, MapFdFromId, "mapFdFromId"));
  exports.Set("linkFdFromId", Napi::Function::New(env, LinkFdFromId, "linkFdFromId"));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd, "closeFd"));
  exports.Set("possibleCpus", Napi::Function::New(env, PossibleCpus, "possibleCpus"));
  exports.Set("mapTypeNames", Napi::Function::New(env, MapTypeNames, "mapTypeNames"));
  exports.Set("progTypeNames", Napi::Function::New(env, ProgTypeNames, "progTypeNames"));
}

}  // namespace xdplb
