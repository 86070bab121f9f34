// common.h: shared helpers of the xdplb_native addon (errors, libbpf log capture, argument parsing).
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

struct bpf_map_info;  // <linux/bpf.h>

namespace xdplb {

// Throws a JS error (BpfError when registered) with {op, errno, code, hint?, verifierLog?}.
// `err` is a positive errno (or a LIBBPF_ERRNO__* value). The message names the operation and the
// object, the errno name and strerror, the hint, and the last relevant lines libbpf printed.
[[noreturn]] void ThrowBpfError(Napi::Env env, const std::string &op, const std::string &object, int err,
                                const std::string &hint = "", const std::string &verifierLog = "");

// The default hint for an errno when the call site has nothing more specific.
std::string DefaultHint(int err);

// libbpf's print callback writes into a small line buffer; each operation resets it first so that
// an error carries only what libbpf said about that operation.
void InstallLibbpfPrint();
void LibbpfLogReset();
std::string LibbpfLogTail(size_t maxLines);

// F_DUPFD_CLOEXEC: handles taken out of an object own their own descriptor.
int DupFd(int fd);

// Argument helpers: throw TypeError naming the argument when it has the wrong type.
int64_t ArgInt(const Napi::CallbackInfo &info, size_t i, const char *what);
int64_t OptInt(const Napi::Object &obj, const char *key, int64_t dflt);
std::string ArgString(const Napi::CallbackInfo &info, size_t i, const char *what);
std::string OptString(const Napi::CallbackInfo &info, size_t i, const std::string &dflt);
Napi::Buffer<uint8_t> ArgBuffer(const Napi::CallbackInfo &info, size_t i, const char *what);

// The JS object for a map's info (listMaps and map info share it).
Napi::Object MapInfoObject(Napi::Env env, const ::bpf_map_info &mi);

// Per-module registration (each *.cc adds its functions to exports).
void RegisterErrors(Napi::Env env, Napi::Object exports);
void RegisterObject(Napi::Env env, Napi::Object exports);
void RegisterMaps(Napi::Env env, Napi::Object exports);
void RegisterXdp(Napi::Env env, Napi::Object exports);
void RegisterInventory(Napi::Env env, Napi::Object exports);
void RegisterTestRun(Napi::Env env, Napi::Object exports);
void RegisterRingBuffer(Napi::Env env, Napi::Object exports);
void RegisterNetns(Napi::Env env, Napi::Object exports);
void RegisterSocket(Napi::Env env, Napi::Object exports);
void RegisterBtf(Napi::Env env, Napi::Object exports);
void RegisterMaglev(Napi::Env env, Napi::Object exports);
void RegisterSlots(Napi::Env env, Napi::Object exports);

}  // namespace xdplb
