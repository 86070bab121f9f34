// xdp.cc: XDP attach through bpf_link (create/update/detach/info), attachment query, interface names.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common.h"

namespace xdplb {

namespace {

std::string IfLabel(const Napi::CallbackInfo &info, size_t i, uint32_t ifindex) {
  std::string name = OptString(info, i, "");
  return "interface " + (name.empty() ? "#" + std::to_string(ifindex) : "'" + name + "'");
}

// xdpLinkCreate(progFd, ifindex, mode 'native'|'generic', ifname) -> link fd
Napi::Value XdpLinkCreate(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  LibbpfLogReset();
  int progFd = static_cast<int>(ArgInt(info, 0, "program fd"));
  uint32_t ifindex = static_cast<uint32_t>(ArgInt(info, 1, "ifindex"));
  std::string mode = ArgString(info, 2, "mode");
  std::string what = IfLabel(info, 3, ifindex);
  bpf_link_create_opts opts;
  memset(&opts, 0, sizeof(opts));
  opts.sz = sizeof(opts);
  if (mode == "native") opts.flags = XDP_FLAGS_DRV_MODE;
  else if (mode == "generic") opts.flags = XDP_FLAGS_SKB_MODE;
  else throw Napi::TypeError::New(env, "XDP mode must be 'native' or 'generic', got '" + mode + "'");
  LibbpfLogReset();
  int fd = bpf_link_create(progFd, static_cast<int>(ifindex), BPF_XDP, &opts);
  if (fd < 0) {
    int err = -fd;
    std::string hint;
    if (err == EBUSY || err == EEXIST) hint = "an XDP program is already attached to this interface (detach it first)";
    else if (err == ENODEV) hint = "no such interface in this network namespace";
    else if (err == EOPNOTSUPP) hint = "the driver lacks native XDP; try mode 'generic'";
    else if (err == EINVAL) hint = "the program must be of type XDP; the interface MTU must fit XDP";
    ThrowBpfError(env, "xdp attach (" + mode + ")", what, err, hint);
  }
  return Napi::Number::New(env, fd);
}

Napi::Value LinkUpdate(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  LibbpfLogReset();
  int linkFd = static_cast<int>(ArgInt(info, 0, "link fd"));
  int progFd = static_cast<int>(ArgInt(info, 1, "program fd"));
  LibbpfLogReset();
  int err = bpf_link_update(linkFd, progFd, nullptr);
  if (err)
    ThrowBpfError(env, "link update", OptString(info, 2, "link"), -err,
                  err == -ENOLINK ? "the link was detached" : "the new program must have the same type");
  return env.Undefined();
}

Napi::Value LinkDetach(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  LibbpfLogReset();
  int linkFd = static_cast<int>(ArgInt(info, 0, "link fd"));
  int err = bpf_link_detach(linkFd);
  if (err && err != -ENOLINK) ThrowBpfError(env, "link detach", OptString(info, 1, "link"), -err);
  return env.Undefined();
}

// linkInfo(fd) -> {id, type, progId, ifindex}
Napi::Value LinkInfo(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  LibbpfLogReset();
  int fd = static_cast<int>(ArgInt(info, 0, "link fd"));
  bpf_link_info li;
  memset(&li, 0, sizeof(li));
  uint32_t len = sizeof(li);
  int err = bpf_obj_get_info_by_fd(fd, &li, &len);
  if (err) ThrowBpfError(env, "link info", OptString(info, 1, "link"), -err);
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", li.id);
  o.Set("type", li.type);
  o.Set("progId", li.prog_id);
  o.Set("ifindex", li.type == BPF_LINK_TYPE_XDP ? li.xdp.ifindex : 0);
  return o;
}

// xdpQuery(ifindex) -> {mode, progId, drvProgId, skbProgId, hwProgId}; mode is XDP_ATTACHED_*.
Napi::Value XdpQuery(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  LibbpfLogReset();
  uint32_t ifindex = static_cast<uint32_t>(ArgInt(info, 0, "ifindex"));
  bpf_xdp_query_opts opts;
  memset(&opts, 0, sizeof(opts));
  opts.sz = sizeof(opts);
  LibbpfLogReset();
  int err = bpf_xdp_query(static_cast<int>(ifindex), 0, &opts);
  if (err) ThrowBpfError(env, "xdp query", IfLabel(info, 1, ifindex), -err);
  Napi::Object o = Napi::Object::New(env);
  o.Set("mode", opts.attach_mode);
  o.Set("progId", opts.prog_id);
  o.Set("drvProgId", opts.drv_prog_id);
  o.Set("skbProgId", opts.skb_prog_id);
  o.Set("hwProgId", opts.hw_prog_id);
  return o;
}

Napi::Value IfNameToIndex(const Napi::CallbackInfo &info) {
  std::string name = ArgString(info, 0, "interface name");
  unsigned idx = if_nametoindex(name.c_str());
  if (idx == 0)
    ThrowBpfError(info.Env(), "interface lookup", "'" + name + "'", errno == 0 ? ENODEV : errno,
                  "no such interface in this network namespace");
  return Napi::Number::New(info.Env(), idx);
}

Napi::Value IfIndexToName(const Napi::CallbackInfo &info) {
  uint32_t idx = static_cast<uint32_t>(ArgInt(info, 0, "ifindex"));
  char buf[IF_NAMESIZE];
  if (!if_indextoname(idx, buf))
    ThrowBpfError(info.Env(), "interface lookup", "#" + std::to_string(idx), errno,
                  "no interface with that index in this network namespace");
  return Napi::String::New(info.Env(), buf);
}

// ifHwAddr(name) -> Buffer of 6 bytes: the interface's MAC (SIOCGIFHWADDR) in the calling
// thread's network namespace.
Napi::Value IfHwAddr(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string name = ArgString(info, 0, "interface name");
  struct ifreq req;
  memset(&req, 0, sizeof(req));
  if (name.size() >= sizeof(req.ifr_name))
    ThrowBpfError(env, "interface lookup", "'" + name + "'", ENAMETOOLONG, "interface name too long");
  memcpy(req.ifr_name, name.c_str(), name.size());
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowBpfError(env, "interface lookup", "'" + name + "'", errno);
  int rc = ioctl(fd, SIOCGIFHWADDR, &req);
  int err = errno;
  close(fd);
  if (rc < 0) ThrowBpfError(env, "interface lookup", "'" + name + "'", err, "cannot read the interface's MAC address");
  return Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<const uint8_t *>(req.ifr_hwaddr.sa_data), 6);
}

Napi::Value ListInterfaces(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  LibbpfLogReset();
  struct if_nameindex *list = if_nameindex();
  if (!list) ThrowBpfError(env, "list interfaces", "", errno);
  Napi::Array out = Napi::Array::New(env);
  uint32_t n = 0;
  for (struct if_nameindex *p = list; p->if_index != 0; p++) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("index", p->if_index);
    o.Set("name", p->if_name);
    out.Set(n++, o);
  }
  if_freenameindex(list);
  return out;
}

}  // namespace

void RegisterXdp(Napi::Env env, Napi::Object exports) {
  exports.Set("xdpLinkCreate", Napi::Function::New(env, XdpLinkCreate, "xdpLinkCreate"));
  exports.Set("linkUpdate", Napi::Function::New(env, LinkUpdate, "linkUpdate"));
  exports.Set("linkDetach", Napi::Function::New(env, LinkDetach, "linkDetach"));
  exports.Set("linkInfo", Napi::Function::New(env, LinkInfo, "linkInfo"));
  exports.Set("xdpQuery", Napi::Function::New(env, XdpQuery, "xdpQuery"));
  exports.Set("ifNameToIndex", Napi::Function::New(env, IfNameToIndex, "ifNameToIndex"));
  exports.Set("ifIndexToName", Napi::Function::New(env, IfIndexToName, "ifIndexToName"));
  exports.Set("ifHwAddr", Napi::Function::New(env, IfHwAddr, "ifHwAddr"));
  exports.Set("listInterfaces", Napi::Function::New(env, ListInterfaces, "listInterfaces"));
}

}  // namespace xdplb
