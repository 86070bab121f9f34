// object.cc: open a BPF object file, apply options (map sizes, globals, pinned maps), load, hand out fds.
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <unordered_map>

#include "common.h"

namespace xdplb {

namespace {

// Loaded objects by handle number; JS keeps only the number (BpfObject owns closing it).
std::unordered_map<uint32_t, bpf_object *> g_objects;
uint32_t g_nextHandle = 1;

struct ObjectCloser {
  void operator()(bpf_object *obj) const { bpf_object__close(obj); }
};
using ObjectPtr = std::unique_ptr<bpf_object, ObjectCloser>;

std::string Quote(const std::string &s) { return "'" + s + "'"; }

std::string MapNames(bpf_object *obj) {
  std::string names;
  bpf_map *map;
  bpf_object__for_each_map(map, obj) {
    if (bpf_map__is_internal(map)) continue;
    names += (names.empty() ? "" : ", ") + std::string(bpf_map__name(map));
  }
  return names.empty() ? "(none)" : names;
}

std::string ProgramNames(bpf_object *obj) {
  std::string names;
  bpf_program *prog;
  bpf_object__for_each_program(prog, obj) {
    names += (names.empty() ? "" : ", ") + std::string(bpf_program__name(prog));
  }
  return names.empty() ? "(none)" : names;
}

bpf_map *FindMapOrThrow(Napi::Env env, bpf_object *obj, const std::string &op, const std::string &path,
                        const std::string &name) {
  bpf_map *map = bpf_object__find_map_by_name(obj, name.c_str());
  if (!map)
    ThrowBpfError(env, op, "map " + Quote(name) + " in " + path, ENOENT,
                  "no map of that name in the object; it has: " + MapNames(obj));
  return map;
}

bpf_object *GetObject(const Napi::CallbackInfo &info) {
  uint32_t handle = static_cast<uint32_t>(ArgInt(info, 0, "object handle"));
  auto it = g_objects.find(handle);
  if (it == g_objects.end()) throw Napi::Error::New(info.Env(), "BPF object handle is closed or invalid");
  return it->second;
}

// Finds a global variable through the object's BTF datasec and patches the initial value of the
// internal map that backs its section (.rodata for `const volatile`), before load.
void SetGlobal(Napi::Env env, bpf_object *obj, const std::string &path, const std::string &name,
               const uint8_t *bytes, size_t len) {
  const std::string what = "global " + Quote(name) + " in " + path;
  btf *objBtf = bpf_object__btf(obj);
  if (!objBtf) ThrowBpfError(env, "object set global", what, ENOENT, "the object has no BTF (compile with -g)");
  uint32_t count = btf__type_cnt(objBtf);
  for (uint32_t id = 1; id < count; id++) {
    const btf_type *t = btf__type_by_id(objBtf, id);
    if (!btf_is_datasec(t)) continue;
    std::string section = btf__name_by_offset(objBtf, t->name_off);
    const btf_var_secinfo *vs = btf_var_secinfos(t);
    for (uint16_t i = 0; i < btf_vlen(t); i++, vs++) {
      const btf_type *var = btf__type_by_id(objBtf, vs->type);
      if (name != btf__name_by_offset(objBtf, var->name_off)) continue;
      if (vs->size != len)
        ThrowBpfError(env, "object set global", what, EINVAL,
                      "the variable is " + std::to_string(vs->size) + " bytes, the value given is " +
                          std::to_string(len));
      bpf_map *map;
      bpf_object__for_each_map(map, obj) {
        if (!bpf_map__is_internal(map)) continue;
        std::string mapName = bpf_map__name(map);
        if (mapName.size() < section.size() ||
            mapName.compare(mapName.size() - section.size(), section.size(), section) != 0)
          continue;
        size_t size = 0;
        const void *current = bpf_map__initial_value(map, &size);
        if (!current || vs->offset + len > size)
          ThrowBpfError(env, "object set global", what, EINVAL, "section " + section + " has no room for it");
        std::vector<uint8_t> patched(static_cast<const uint8_t *>(current),
                                     static_cast<const uint8_t *>(current) + size);
        memcpy(patched.data() + vs->offset, bytes, len);
        int err = bpf_map__set_initial_value(map, patched.data(), size);
        if (err) ThrowBpfError(env, "object set global", what, -err);
        return;
      }
      ThrowBpfError(env, "object set global", what, ENOENT, "no internal map for section " + section);
    }
  }
  ThrowBpfError(env, "object set global", what, ENOENT,
                "no global of that name in the object's BTF (declare it `const volatile` and use it)");
}

Napi::Value ObjectLoad(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string path = ArgString(info, 0, "object path");
  Napi::Object opts = info.Length() > 1 && info[1].IsObject() ? info[1].As<Napi::Object>() : Napi::Object::New(env);
  LibbpfLogReset();

  struct stat st;
  if (stat(path.c_str(), &st) != 0)
    ThrowBpfError(env, "object open", path, errno, "no such object file (run `make -C bpf`?)");

  size_t logSize = static_cast<size_t>(OptInt(opts, "logSize", 4 << 20));
  std::vector<char> log(logSize, 0);
  bpf_object_open_opts openOpts;
  memset(&openOpts, 0, sizeof(openOpts));
  openOpts.sz = sizeof(openOpts);
  openOpts.kernel_log_buf = log.data();
  openOpts.kernel_log_size = log.size();
  openOpts.kernel_log_level = 0;  // libbpf retries with level 1 into our buffer on failure

  ObjectPtr obj(bpf_object__open_file(path.c_str(), &openOpts));
  if (!obj) ThrowBpfError(env, "object open", path, errno, "is it a BPF ELF object built by clang -target bpf?");

  auto entries = [&](const char *key) -> Napi::Object {
    if (!opts.Has(key) || !opts.Get(key).IsObject()) return Napi::Object::New(env);
    return opts.Get(key).As<Napi::Object>();
  };

  Napi::Object maxEntries = entries("maxEntries");
  Napi::Array keys = maxEntries.GetPropertyNames();
  for (uint32_t i = 0; i < keys.Length(); i++) {
    std::string name = keys.Get(i).As<Napi::String>().Utf8Value();
    bpf_map *map = FindMapOrThrow(env, obj.get(), "object set max_entries", path, name);
    int err = bpf_map__set_max_entries(map, maxEntries.Get(name).As<Napi::Number>().Uint32Value());
    if (err) ThrowBpfError(env, "object set max_entries", "map " + Quote(name) + " in " + path, -err);
  }

  // libbpf 1.1 crashes in bpf_map__set_max_entries on an inner-map template (it has no object), so
  // a template of the wanted size is created here and handed to the outer map instead.
  Napi::Object innerMax = entries("innerMaxEntries");
  struct FdList {
    std::vector<int> fds;
    ~FdList() {
      for (int fd : fds) close(fd);
    }
  } innerTemplates;
  keys = innerMax.GetPropertyNames();
  for (uint32_t i = 0; i < keys.Length(); i++) {
    std::string name = keys.Get(i).As<Napi::String>().Utf8Value();
    const std::string what = "map " + Quote(name) + " in " + path;
    bpf_map *outer = FindMapOrThrow(env, obj.get(), "object set inner max_entries", path, name);
    bpf_map *inner = bpf_map__inner_map(outer);
    if (!inner)
      ThrowBpfError(env, "object set inner max_entries", what, EINVAL,
                    "the map is not an ARRAY_OF_MAPS/HASH_OF_MAPS with an inner-map template");
    bpf_map_create_opts createOpts;
    memset(&createOpts, 0, sizeof(createOpts));
    createOpts.sz = sizeof(createOpts);
    createOpts.map_flags = bpf_map__map_flags(inner);
    int fd = bpf_map_create(bpf_map__type(inner), "inner_template", bpf_map__key_size(inner),
                            bpf_map__value_size(inner), innerMax.Get(name).As<Napi::Number>().Uint32Value(),
                            &createOpts);
    if (fd < 0) ThrowBpfError(env, "object set inner max_entries", what, errno);
    innerTemplates.fds.push_back(fd);
    int err = bpf_map__set_inner_map_fd(outer, fd);
    if (err) ThrowBpfError(env, "object set inner max_entries", what, -err);
  }

  Napi::Object globals = entries("globals");
  keys = globals.GetPropertyNames();
  for (uint32_t i = 0; i < keys.Length(); i++) {
    std::string name = keys.Get(i).As<Napi::String>().Utf8Value();
    Napi::Value v = globals.Get(name);
    if (!v.IsBuffer()) throw Napi::TypeError::New(env, "globals." + name + " must be a Buffer");
    auto buf = v.As<Napi::Buffer<uint8_t>>();
    SetGlobal(env, obj.get(), path, name, buf.Data(), buf.Length());
  }

  Napi::Object reuse = entries("reuseMaps");
  keys = reuse.GetPropertyNames();
  for (uint32_t i = 0; i < keys.Length(); i++) {
    std::string name = keys.Get(i).As<Napi::String>().Utf8Value();
    std::string pin = reuse.Get(name).As<Napi::String>().Utf8Value();
    bpf_map *map = FindMapOrThrow(env, obj.get(), "object reuse map", path, name);
    int fd = bpf_obj_get(pin.c_str());
    if (fd < 0)
      ThrowBpfError(env, "object reuse map", "map " + Quote(name) + " from " + pin, errno,
                    "nothing pinned at that path (is bpffs mounted?)");
    int err = bpf_map__reuse_fd(map, fd);
    close(fd);  // reuse_fd keeps its own duplicate
    if (err)
      ThrowBpfError(env, "object reuse map", "map " + Quote(name) + " from " + pin, -err,
                    "the pinned map's type/key/value/max_entries must match the object's definition");
  }

  int err = bpf_object__load(obj.get());
  if (err) {
    std::string verifierLog(log.data());
    std::string hint = verifierLog.empty() ? "" : "the verifier rejected a program: see verifierLog";
    ThrowBpfError(env, "object load", path, -err, hint, verifierLog);
  }

  uint32_t handle = g_nextHandle++;
  g_objects[handle] = obj.release();
  return Napi::Number::New(env, handle);
}

Napi::Value ObjectClose(const Napi::CallbackInfo &info) {
  uint32_t handle = static_cast<uint32_t>(ArgInt(info, 0, "object handle"));
  auto it = g_objects.find(handle);
  if (it != g_objects.end()) {
    bpf_object__close(it->second);
    g_objects.erase(it);
  }
  return info.Env().Undefined();
}

Napi::Value ObjectProgramNames(const Napi::CallbackInfo &info) {
  bpf_object *obj = GetObject(info);
  Napi::Array out = Napi::Array::New(info.Env());
  bpf_program *prog;
  uint32_t i = 0;
  bpf_object__for_each_program(prog, obj) out.Set(i++, bpf_program__name(prog));
  return out;
}

// Names of the object's maps; internal ones (.rodata, .bss, ...) only when asked.
Napi::Value ObjectMapNames(const Napi::CallbackInfo &info) {
  bpf_object *obj = GetObject(info);
  bool withInternal = info.Length() > 1 && info[1].ToBoolean();
  Napi::Array out = Napi::Array::New(info.Env());
  bpf_map *map;
  uint32_t i = 0;
  bpf_object__for_each_map(map, obj) {
    if (!withInternal && bpf_map__is_internal(map)) continue;
    out.Set(i++, bpf_map__name(map));
  }
  return out;
}

// Returns a duplicate of the program's fd: the caller owns it, closing the object leaves it valid.
Napi::Value ObjectProgramFd(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  bpf_object *obj = GetObject(info);
  std::string name = ArgString(info, 1, "program name");
  std::string path = bpf_object__name(obj);
  LibbpfLogReset();
  bpf_program *prog = bpf_object__find_program_by_name(obj, name.c_str());
  if (!prog)
    ThrowBpfError(env, "object program", Quote(name) + " in object " + Quote(path), ENOENT,
                  "no program of that name; it has: " + ProgramNames(obj));
  int fd = DupFd(bpf_program__fd(prog));
  if (fd < 0) ThrowBpfError(env, "object program", Quote(name), errno);
  return Napi::Number::New(env, fd);
}

// Returns a duplicate of the map's fd (caller owns it).
Napi::Value ObjectMapFd(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  bpf_object *obj = GetObject(info);
  std::string name = ArgString(info, 1, "map name");
  std::string objName = bpf_object__name(obj);
  LibbpfLogReset();
  bpf_map *map = bpf_object__find_map_by_name(obj, name.c_str());
  if (!map)
    ThrowBpfError(env, "object map", Quote(name) + " in object " + Quote(objName), ENOENT,
                  "no map of that name; it has: " + MapNames(obj));
  int fd = DupFd(bpf_map__fd(map));
  if (fd < 0) ThrowBpfError(env, "object map", Quote(name), errno);
  return Napi::Number::New(env, fd);
}

}  // namespace

void RegisterObject(Napi::Env env, Napi::Object exports) {
  exports.Set("objectLoad", Napi::Function::New(env, ObjectLoad, "objectLoad"));
  exports.Set("objectClose", Napi::Function::New(env, ObjectClose, "objectClose"));
  exports.Set("objectProgramNames", Napi::Function::New(env, ObjectProgramNames, "objectProgramNames"));
  exports.Set("objectMapNames", Napi::Function::New(env, ObjectMapNames, "objectMapNames"));
  exports.Set("objectProgramFd", Napi::Function::New(env, ObjectProgramFd, "objectProgramFd"));
  exports.Set("objectMapFd", Napi::Function::New(env, ObjectMapFd, "objectMapFd"));
}

}  // namespace xdplb
