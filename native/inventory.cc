// inventory.cc: every BPF program, map and link on the host with its info; run-time stats switch.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include "common.h"

namespace xdplb {

namespace {

// bpf_prog_info.load_time is CLOCK_BOOTTIME ns; the epoch offset turns it into wall-clock ms.
double BootNsToEpochMs(uint64_t bootNs) {
  timespec real, boot;
  clock_gettime(CLOCK_REALTIME, &real);
  clock_gettime(CLOCK_BOOTTIME, &boot);
  double offsetNs = (real.tv_sec - boot.tv_sec) * 1e9 + (real.tv_nsec - boot.tv_nsec);
  return (offsetNs + static_cast<double>(bootNs)) / 1e6;
}

// Returns 0 or a negative errno; fills `out`.
int ProgInfoObject(Napi::Env env, int fd, Napi::Object &out) {
  bpf_prog_info pi;
  memset(&pi, 0, sizeof(pi));
  uint32_t len = sizeof(pi);
  int err = bpf_obj_get_info_by_fd(fd, &pi, &len);
  if (err) return err;
  std::vector<uint32_t> mapIds(pi.nr_map_ids);
  if (pi.nr_map_ids > 0) {
    uint32_t nr = pi.nr_map_ids;
    memset(&pi, 0, sizeof(pi));
    pi.nr_map_ids = nr;
    pi.map_ids = reinterpret_cast<uint64_t>(mapIds.data());
    len = sizeof(pi);
    err = bpf_obj_get_info_by_fd(fd, &pi, &len);
    if (err) return err;
    mapIds.resize(std::min<uint32_t>(nr, pi.nr_map_ids));
  }
  out = Napi::Object::New(env);
  out.Set("id", pi.id);
  out.Set("name", pi.name);
  out.Set("type", pi.type);
  const char *typeName = libbpf_bpf_prog_type_str(static_cast<bpf_prog_type>(pi.type));
  out.Set("typeName", typeName ? typeName : "unknown");
  char tag[2 * BPF_TAG_SIZE + 1];
  for (int i = 0; i < BPF_TAG_SIZE; i++) snprintf(tag + 2 * i, 3, "%02x", pi.tag[i]);
  out.Set("tag", tag);
  out.Set("loadTime", BootNsToEpochMs(pi.load_time));
  out.Set("jitedSize", pi.jited_prog_len);
  out.Set("xlatedSize", pi.xlated_prog_len);
  Napi::Array ids = Napi::Array::New(env, mapIds.size());
  for (size_t i = 0; i < mapIds.size(); i++) ids.Set(static_cast<uint32_t>(i), mapIds[i]);
  out.Set("mapIds", ids);
  out.Set("runCount", static_cast<double>(pi.run_cnt));
  out.Set("runTimeNs", static_cast<double>(pi.run_time_ns));
  out.Set("btfId", pi.btf_id);
  out.Set("uid", pi.created_by_uid);
  return 0;
}

Napi::Value ProgInfo(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  LibbpfLogReset();
  int fd = static_cast<int>(ArgInt(info, 0, "program fd"));
  Napi::Object out;
  int err = ProgInfoObject(env, fd, out);
  if (err) ThrowBpfError(env, "program info", "'" + OptString(info, 1, "?") + "'", -err);
  return out;
}

// Walks ids with get_next_id; objects that vanish between the id and the fd are skipped.
template <typename Fill>
Napi::Value ListById(Napi::Env env, const char *op, int (*next)(uint32_t, uint32_t *), int (*getFd)(uint32_t),
                     Fill fill) {
  Napi::Array out = Napi::Array::New(env);
  uint32_t id = 0, n = 0;
  for (;;) {
    int err = next(id, &id);
    if (err == -ENOENT) break;
    if (err) ThrowBpfError(env, op, "", -err);
    int fd = getFd(id);
    if (fd < 0) {
      if (errno == ENOENT) continue;
      ThrowBpfError(env, op, "id " + std::to_string(id), errno);
    }
    Napi::Object item;
    err = fill(fd, item);
    close(fd);
    if (err == -ENOENT) continue;
    if (err) ThrowBpfError(env, op, "id " + std::to_string(id), -err);
    out.Set(n++, item);
  }
  return out;
}

Napi::Value ListPrograms(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  LibbpfLogReset();
  return ListById(env, "list programs", bpf_prog_get_next_id, bpf_prog_get_fd_by_id,
                  [&](int fd, Napi::Object &o) { return ProgInfoObject(env, fd, o); });
}

Napi::Value ListMaps(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  LibbpfLogReset();
  return ListById(env, "list maps", bpf_map_get_next_id, bpf_map_get_fd_by_id, [&](int fd, Napi::Object &o) {
    bpf_map_info mi;
    memset(&mi, 0, sizeof(mi));
    uint32_t len = sizeof(mi);
    int err = bpf_obj_get_info_by_fd(fd, &mi, &len);
    if (err) return err;
    o = MapInfoObject(env, mi);
    return 0;
  });
}

Napi::Value ListLinks(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  LibbpfLogReset();
  return ListById(env, "list links", bpf_link_get_next_id, bpf_link_get_fd_by_id, [&](int fd, Napi::Object &o) {
    bpf_link_info li;
    memset(&li, 0, sizeof(li));
    uint32_t len = sizeof(li);
    int err = bpf_obj_get_info_by_fd(fd, &li, &len);
    if (err) return err;
    o = Napi::Object::New(env);
    o.Set("id", li.id);
    o.Set("type", li.type);
    o.Set("progId", li.prog_id);
    o.Set("ifindex", li.type == BPF_LINK_TYPE_XDP ? li.xdp.ifindex : 0);
    return 0;
  });
}

// BPF_ENABLE_STATS(BPF_STATS_RUN_TIME): run_cnt/run_time_ns are counted while the fd is open.
Napi::Value EnableStats(const Napi::CallbackInfo &info) {
  int fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
  if (fd < 0) ThrowBpfError(info.Env(), "enable run stats", "", -fd, "needs root and kernel >= 5.8");
  return Napi::Number::New(info.Env(), fd);
}

}  // namespace

void RegisterInventory(Napi::Env env, Napi::Object exports) {
  exports.Set("progInfo", Napi::Function::New(env, ProgInfo, "progInfo"));
  exports.Set("listPrograms", Napi::Function::New(env, ListPrograms, "listPrograms"));
  exports.Set("listMaps", Napi::Function::New(env, ListMaps, "listMaps"));
  exports.Set("listLinks", Napi::Function::New(env, ListLinks, "listLinks"));
  exports.Set("enableStats", Napi::Function::New(env, EnableStats, "enableStats"));
}

}  // namespace xdplb
