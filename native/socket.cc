// socket.cc: a TCP socket carrying a firewall mark (SO_MARK), for health probes that policy
// routing must send a particular way (DSR checks: the VIP through one backend). Node cannot set
// SO_MARK itself; it adopts the returned fd with `new net.Socket({fd})` and connects it.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "common.h"

namespace xdplb {

namespace {

// socketWithMark(mark, family = 4) -> fd of a new non-blocking TCP socket (IPv4, or IPv6 for
// family 6) with SO_MARK = mark.
Napi::Value SocketWithMark(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int64_t mark = ArgInt(info, 0, "mark");
  if (mark < 1 || mark > 0xffffffffLL) ThrowBpfError(env, "socket", "SO_MARK", EINVAL, "mark must be in 1..2^32-1");
  int64_t family = info.Length() > 1 && !info[1].IsUndefined() ? ArgInt(info, 1, "family") : 4;
  if (family != 4 && family != 6) ThrowBpfError(env, "socket", "family", EINVAL, "family must be 4 or 6");
  int fd = socket(family == 6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowBpfError(env, "socket", family == 6 ? "AF_INET6/SOCK_STREAM" : "AF_INET/SOCK_STREAM", errno);
  uint32_t value = static_cast<uint32_t>(mark);
  if (setsockopt(fd, SOL_SOCKET, SO_MARK, &value, sizeof(value)) != 0) {
    int err = errno;
    close(fd);
    ThrowBpfError(env, "socket", "SO_MARK", err, "setting a mark needs CAP_NET_ADMIN");
  }
  return Napi::Number::New(env, fd);
}

}  // namespace

void RegisterSocket(Napi::Env env, Napi::Object exports) {
  exports.Set("socketWithMark", Napi::Function::New(env, SocketWithMark, "socketWithMark"));
}

}  // namespace xdplb
