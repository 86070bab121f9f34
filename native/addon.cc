// addon.cc: entry point of xdplb_native, the N-API bridge from Node to libbpf.
#include "common.h"

namespace xdplb {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  InstallLibbpfPrint();
  RegisterErrors(env, exports);
  RegisterObject(env, exports);
  RegisterMaps(env, exports);
  RegisterXdp(env, exports);
  RegisterInventory(env, exports);
  RegisterTestRun(env, exports);
  RegisterRingBuffer(env, exports);
  RegisterNetns(env, exports);
  RegisterBtf(env, exports);
  RegisterSocket(env, exports);
  RegisterMaglev(env, exports);
  RegisterSlots(env, exports);
  return exports;
}

}  // namespace xdplb

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return xdplb::Init(env, exports); }

NODE_API_MODULE(xdplb_native, InitAddon)
