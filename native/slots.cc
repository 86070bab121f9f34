// slots.cc: the pass over a Maglev table's slots that every table change makes
// (src/balancer/transitions.ts transitionSlots) in C++. The same rules, slot for slot:
// src/balancer/transitions.test.ts runs its cases and random change sequences through both and
// compares them. It runs ~4-6x faster than the JIT's code in the daemon, where the loop over 65537
// slots of four words was the largest single step of an API change.
#include <cstdint>
#include <cstring>
#include <string>

#include "common.h"

namespace xdplb {
namespace {

constexpr size_t kSlotWords = 4;   // backend_id, prev_id, epoch, seen | flags << 8 (SLOT_WORDS)
constexpr uint32_t kSeen = 1;

template <typename T>
T *Typed(const Napi::CallbackInfo &info, size_t index, napi_typedarray_type type, const char *what, size_t *length) {
  Napi::Env env = info.Env();
  if (!info[index].IsTypedArray() || info[index].As<Napi::TypedArray>().TypedArrayType() != type)
    throw Napi::TypeError::New(env, std::string("transitionPass: ") + what + " has the wrong array type");
  auto a = info[index].As<Napi::TypedArrayOf<T>>();
  *length = a.ElementLength();
  return a.Data();
}

// transitionPass(old Uint32Array, ids Uint32Array, isKnown Uint8Array, epoch, young, out
// Uint32Array, changed Uint32Array) -> [changedCount, markedCount]: transitionSlots' loop for an
// old table of the same size (transitions.ts has the rules). `out` (not `old`) receives a copy of
// `old` with the slots that differ rewritten; `changed` their indexes; `young` is the YOUNG bit
// of the seen word (LB_SLOT_F_YOUNG << 8).
Napi::Value TransitionPass(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 7) throw Napi::TypeError::New(env, "transitionPass: 7 arguments expected");
  size_t oldLen, count, knownLen, outLen, changedLen;
  const uint32_t *old = Typed<uint32_t>(info, 0, napi_uint32_array, "old", &oldLen);
  const uint32_t *ids = Typed<uint32_t>(info, 1, napi_uint32_array, "ids", &count);
  const uint8_t *isKnown = Typed<uint8_t>(info, 2, napi_uint8_array, "isKnown", &knownLen);
  uint32_t epoch = info[3].As<Napi::Number>().Uint32Value();
  uint32_t young = info[4].As<Napi::Number>().Uint32Value();
  uint32_t *out = Typed<uint32_t>(info, 5, napi_uint32_array, "out", &outLen);
  uint32_t *changed = Typed<uint32_t>(info, 6, napi_uint32_array, "changed", &changedLen);
  if (oldLen != count * kSlotWords || outLen != oldLen || changedLen < count)
    throw Napi::RangeError::New(env, "transitionPass: old and out need 4 words per id, changed one entry per id");
  if (out == old) throw Napi::RangeError::New(env, "transitionPass: out must not be old");
  std::memcpy(out, old, oldLen * sizeof(uint32_t));
  auto known = [&](uint32_t id) { return id < knownLen && isKnown[id] != 0; };
  uint32_t n = 0, marked = 0;
  for (size_t i = 0, at = 0; i < count; i++, at += kSlotWords) {
    const uint32_t cur = ids[i], oldCur = old[at], oldPrev = old[at + 1], oldEpoch = old[at + 2], oldSeen = old[at + 3];
    if (cur == oldCur && (oldPrev | oldEpoch | oldSeen) == 0) continue;
    uint32_t prev = 0, ep = 0, seen = 0;
    if (oldPrev != 0) {
      prev = known(oldPrev) ? oldPrev : cur;
      ep = oldEpoch;
      seen = cur != oldCur ? (kSeen | young) : ((oldSeen & young) | kSeen);
    } else if (cur != oldCur && oldCur != 0 && known(oldCur)) {
      prev = oldCur;
      ep = epoch;
      seen = kSeen | young;
    }
    if (prev != 0) marked++;
    if (cur != oldCur || prev != oldPrev || ep != oldEpoch || seen != oldSeen) {
      out[at] = cur;
      out[at + 1] = prev;
      out[at + 2] = ep;
      out[at + 3] = seen;
      changed[n++] = static_cast<uint32_t>(i);
    }
  }
  auto result = Napi::Array::New(env, 2);
  result.Set(0u, Napi::Number::New(env, n));
  result.Set(1u, Napi::Number::New(env, marked));
  return result;
}

}  // namespace

void RegisterSlots(Napi::Env env, Napi::Object exports) {
  exports.Set("transitionPass", Napi::Function::New(env, TransitionPass, "transitionPass"));
}

}  // namespace xdplb
