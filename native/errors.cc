// errors.cc: BpfError construction, errno names and hints, and libbpf log capture.
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <deque>

#include "common.h"

namespace xdplb {

namespace {

// The JS class used for errors (set by src/bpf/native.ts to BpfError); plain Error until then.
struct AddonData {
  Napi::FunctionReference errorClass;
};

std::deque<std::string> g_libbpfLines;
std::string g_partialLine;
constexpr size_t kMaxLines = 64;

int LibbpfPrint(enum libbpf_print_level level, const char *fmt, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  char buf[2048];
  int n = vsnprintf(buf, sizeof(buf), fmt, args);
  if (n < 0) return n;
  g_partialLine += buf;
  size_t pos;
  while ((pos = g_partialLine.find('\n')) != std::string::npos) {
    std::string line = g_partialLine.substr(0, pos);
    g_partialLine.erase(0, pos + 1);
    if (line.empty()) continue;
    g_libbpfLines.push_back(line);
    if (g_libbpfLines.size() > kMaxLines) g_libbpfLines.pop_front();
  }
  return n;
}

const char *LibbpfErrnoName(int err) {
  switch (err) {
    case 4000: return "LIBBPF_ERRNO__LIBELF";
    case 4001: return "LIBBPF_ERRNO__FORMAT";
    case 4002: return "LIBBPF_ERRNO__KVERSION";
    case 4003: return "LIBBPF_ERRNO__ENDIAN";
    case 4004: return "LIBBPF_ERRNO__INTERNAL";
    case 4005: return "LIBBPF_ERRNO__RELOC";
    case 4006: return "LIBBPF_ERRNO__LOAD";
    case 4007: return "LIBBPF_ERRNO__VERIFY";
    case 4008: return "LIBBPF_ERRNO__PROG2BIG";
    case 4009: return "LIBBPF_ERRNO__KVER";
    case 4010: return "LIBBPF_ERRNO__PROGTYPE";
    case 4011: return "LIBBPF_ERRNO__WRNGPID";
    case 4012: return "LIBBPF_ERRNO__INVSEQ";
    case 4013: return "LIBBPF_ERRNO__NLPARSE";
    default: return nullptr;
  }
}

// ENOTSUPP (524) is kernel-internal but leaks out of bpf(2); glibc has no name for it.
constexpr int kKernelENOTSUPP = 524;

std::string ErrnoCode(int err) {
  if (const char *lib = LibbpfErrnoName(err)) return lib;
  if (err == kKernelENOTSUPP) return "ENOTSUPP";
  const char *name = strerrorname_np(err);
  return name ? name : "E" + std::to_string(err);
}

std::string ErrnoText(int err) {
  if (err == kKernelENOTSUPP) return "Operation not supported by this kernel or map/program type";
  char buf[256];
  if (libbpf_strerror(err, buf, sizeof(buf)) == 0) return buf;
  return strerror(err);
}

// The last lines of a verifier log usually say why it refused the program.
std::string LastLines(const std::string &text, size_t n) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    if (end > start) lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  std::string out;
  size_t from = lines.size() > n ? lines.size() - n : 0;
  for (size_t i = from; i < lines.size(); i++) out += "\n  " + lines[i];
  return out;
}

Napi::Value SetErrorClass(const Napi::CallbackInfo &info) {
  if (!info[0].IsFunction()) throw Napi::TypeError::New(info.Env(), "setErrorClass: expected a constructor");
  auto *data = info.Env().GetInstanceData<AddonData>();
  data->errorClass = Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

}  // namespace

std::string DefaultHint(int err) {
  switch (err) {
    case EPERM:
      return "are you root (CAP_BPF/CAP_SYS_ADMIN) and is RLIMIT_MEMLOCK high enough?";
    case EACCES:
      return "permission denied by the kernel (root? or the verifier refused an access)";
    case ENOMEM:
      return "out of memory or RLIMIT_MEMLOCK too low";
    case E2BIG:
      return "a size or count is larger than the kernel allows";
    case ENOSPC:
      return "the map is full or a buffer was too small";
    default:
      return "";
  }
}

[[noreturn]] void ThrowBpfError(Napi::Env env, const std::string &op, const std::string &object, int err,
                                const std::string &hint, const std::string &verifierLog) {
  if (err < 0) err = -err;
  std::string code = ErrnoCode(err);
  std::string finalHint = hint.empty() ? DefaultHint(err) : hint;
  std::string message = op;
  if (!object.empty()) message += " " + object;
  message += ": " + code + " (" + ErrnoText(err) + ")";
  if (!finalHint.empty()) message += "; hint: " + finalHint;
  if (!verifierLog.empty()) message += "\nverifier log (last lines):" + LastLines(verifierLog, 6);
  std::string tail = LibbpfLogTail(6);
  if (!tail.empty()) message += "\nlibbpf:" + tail;
  LibbpfLogReset();  // what libbpf said belongs to this error only

  Napi::Object props = Napi::Object::New(env);
  props.Set("message", message);
  props.Set("op", op);
  props.Set("errno", err);
  props.Set("code", code);
  if (!finalHint.empty()) props.Set("hint", finalHint);
  if (!verifierLog.empty()) props.Set("verifierLog", verifierLog);

  auto *data = env.GetInstanceData<AddonData>();
  Napi::Value errorValue;
  if (data && !data->errorClass.IsEmpty()) {
    errorValue = data->errorClass.New({props});
  } else {
    Napi::Error plain = Napi::Error::New(env, message);
    Napi::Object obj = plain.Value();
    for (const char *key : {"op", "errno", "code", "hint", "verifierLog"})
      if (props.Has(key)) obj.Set(key, props.Get(key));
    errorValue = obj;
  }
  throw Napi::Error(env, errorValue);
}

void InstallLibbpfPrint() { libbpf_set_print(LibbpfPrint); }

void LibbpfLogReset() {
  g_libbpfLines.clear();
  g_partialLine.clear();
}

std::string LibbpfLogTail(size_t maxLines) {
  std::string out;
  size_t from = g_libbpfLines.size() > maxLines ? g_libbpfLines.size() - maxLines : 0;
  for (size_t i = from; i < g_libbpfLines.size(); i++) out += "\n  " + g_libbpfLines[i];
  return out;
}

int DupFd(int fd) { return fcntl(fd, F_DUPFD_CLOEXEC, 3); }

int64_t ArgInt(const Napi::CallbackInfo &info, size_t i, const char *what) {
  if (info.Length() <= i || !info[i].IsNumber())
    throw Napi::TypeError::New(info.Env(), std::string("expected a number for ") + what);
  return info[i].As<Napi::Number>().Int64Value();
}

int64_t OptInt(const Napi::Object &obj, const char *key, int64_t dflt) {
  if (!obj.Has(key)) return dflt;
  Napi::Value v = obj.Get(key);
  if (v.IsUndefined() || v.IsNull()) return dflt;
  if (!v.IsNumber()) throw Napi::TypeError::New(obj.Env(), std::string("expected a number for option ") + key);
  return v.As<Napi::Number>().Int64Value();
}

std::string ArgString(const Napi::CallbackInfo &info, size_t i, const char *what) {
  if (info.Length() <= i || !info[i].IsString())
    throw Napi::TypeError::New(info.Env(), std::string("expected a string for ") + what);
  return info[i].As<Napi::String>().Utf8Value();
}

std::string OptString(const Napi::CallbackInfo &info, size_t i, const std::string &dflt) {
  if (info.Length() <= i || !info[i].IsString()) return dflt;
  return info[i].As<Napi::String>().Utf8Value();
}

Napi::Buffer<uint8_t> ArgBuffer(const Napi::CallbackInfo &info, size_t i, const char *what) {
  if (info.Length() <= i || !info[i].IsBuffer())
    throw Napi::TypeError::New(info.Env(), std::string("expected a Buffer for ") + what);
  return info[i].As<Napi::Buffer<uint8_t>>();
}

void RegisterErrors(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new AddonData());
  exports.Set("setErrorClass", Napi::Function::New(env, SetErrorClass, "setErrorClass"));
}

}  // namespace xdplb
