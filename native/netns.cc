// netns.cc: move the calling (JS main) thread into a named network namespace and back.
// Only the calling thread moves: libuv worker threads (fs, dns, crypto pools) stay where they were.
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>

#include "common.h"

namespace xdplb {

namespace {

// netnsEnter(name) -> fd of the namespace the thread was in (pass it to netnsRestore)
Napi::Value NetnsEnter(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  LibbpfLogReset();
  std::string name = ArgString(info, 0, "netns name");
  if (name.empty() || name.find('/') != std::string::npos)
    ThrowBpfError(env, "netns enter", "'" + name + "'", EINVAL, "give a name from `ip netns list`");
  int saved = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (saved < 0) ThrowBpfError(env, "netns enter", "(save current)", errno);
  std::string path = "/var/run/netns/" + name;
  int target = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    int err = errno;
    close(saved);
    ThrowBpfError(env, "netns enter", path, err, err == ENOENT ? "no such namespace (ip netns add it first)" : "");
  }
  int rc = setns(target, CLONE_NEWNET);
  int err = errno;
  close(target);
  if (rc != 0) {
    close(saved);
    ThrowBpfError(env, "netns enter", path, err, "setns needs CAP_SYS_ADMIN");
  }
  return Napi::Number::New(env, saved);
}

// netnsRestore(savedFd): back to the saved namespace; closes the fd.
Napi::Value NetnsRestore(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  LibbpfLogReset();
  int saved = static_cast<int>(ArgInt(info, 0, "saved netns fd"));
  int rc = setns(saved, CLONE_NEWNET);
  int err = errno;
  close(saved);
  if (rc != 0) ThrowBpfError(env, "netns restore", "", err);
  return env.Undefined();
}

}  // namespace

void RegisterNetns(Napi::Env env, Napi::Object exports) {
  exports.Set("netnsEnter", Napi::Function::New(env, NetnsEnter, "netnsEnter"));
  exports.Set("netnsRestore", Napi::Function::New(env, NetnsRestore, "netnsRestore"));
}

}  // namespace xdplb
