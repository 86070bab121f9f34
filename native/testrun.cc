// testrun.cc: BPF_PROG_TEST_RUN for XDP programs: one run, many fresh runs pinned to a CPU, live frames.
#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <sched.h>
#include <signal.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <map>
#include <thread>
#include <time.h>

#include "common.h"

namespace xdplb {

namespace {

std::string ProgLabel(const Napi::CallbackInfo &info, size_t i) { return "program '" + OptString(info, i, "?") + "'"; }

std::string TestRunHint(int err) {
  switch (err) {
    case EINVAL: return "data must be >= 14 bytes; ingress ifindex must exist in the calling thread's netns";
    case ENODEV: return "ingress ifindex not found in the calling thread's network namespace";
    case ENOSPC: return "the output did not fit dataOutSize";
    case 524 /* ENOTSUPP */: case EOPNOTSUPP: return "program type does not support test run with these options";
    default: return DefaultHint(err);
  }
}

// XDP test-run context: only ingress_ifindex and rx_queue_index are meaningful to set; data_end
// must equal the input length.
xdp_md MakeCtx(uint32_t dataLen, uint32_t ingressIfindex) {
  xdp_md ctx;
  memset(&ctx, 0, sizeof(ctx));
  ctx.data_end = dataLen;
  ctx.ingress_ifindex = ingressIfindex;
  ctx.rx_queue_index = 0;
  return ctx;
}

// Holds asynchronous signals for the life of the object (they are delivered to another thread of
// the process meanwhile): a signal for this thread would stop the kernel's test-run loop with EINTR.
class SignalsHeld {
 public:
  SignalsHeld() {
    sigset_t all;
    sigfillset(&all);
    for (int sync : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP}) sigdelset(&all, sync);
    held_ = pthread_sigmask(SIG_BLOCK, &all, &saved_) == 0;
  }
  ~SignalsHeld() {
    if (held_) pthread_sigmask(SIG_SETMASK, &saved_, nullptr);
  }

 private:
  sigset_t saved_;
  bool held_ = false;
};

// Runs fn on a fresh thread and waits for it. The kernel's test-run loop stops with EINTR whenever
// signal_pending() is true for the calling task, which includes TIF_NOTIFY_SIGNAL (task work queued
// to the thread, e.g. by io_uring); Node 24's event-loop thread gets such work often enough to fail
// a LIVE_FRAMES run at random, and blocking signals does not clear it. A thread that has never
// submitted anything has no such work.
void RunOffLoop(const std::function<void()> &fn) {
  std::thread worker([&] {
    SignalsHeld signals;
    fn();
  });
  worker.join();
}

// Pins the calling thread to one CPU (no-op for cpu < 0); returns 0 or an errno.
int PinThisThread(int cpu) {
  if (cpu < 0) return 0;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  return sched_setaffinity(0, sizeof(one), &one) == 0 ? 0 : errno;
}

// testRun(progFd, data, {repeat, dataOutSize, ingressIfindex, flags, batchSize, cpu}, name)
//   -> {retval, data, durationNs}
Napi::Value TestRun(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  LibbpfLogReset();
  int fd = static_cast<int>(ArgInt(info, 0, "program fd"));
  auto data = ArgBuffer(info, 1, "data");
  Napi::Object opts = info.Length() > 2 && info[2].IsObject() ? info[2].As<Napi::Object>() : Napi::Object::New(env);
  uint32_t flags = static_cast<uint32_t>(OptInt(opts, "flags", 0));
  bool live = flags & BPF_F_TEST_XDP_LIVE_FRAMES;
  size_t outSize = static_cast<size_t>(OptInt(opts, "dataOutSize", static_cast<int64_t>(data.Length()) + 256));
  uint32_t ingress = static_cast<uint32_t>(OptInt(opts, "ingressIfindex", 0));
  std::vector<uint8_t> out(live ? 0 : outSize);
  xdp_md ctx = MakeCtx(static_cast<uint32_t>(data.Length()), ingress);

  bpf_test_run_opts o;
  memset(&o, 0, sizeof(o));
  o.sz = sizeof(o);
  o.data_in = data.Data();
  o.data_size_in = static_cast<uint32_t>(data.Length());
  if (!live) {
    o.data_out = out.data();
    o.data_size_out = static_cast<uint32_t>(out.size());
  }
  if (ingress) {
    o.ctx_in = &ctx;
    o.ctx_size_in = sizeof(ctx);
  }
  o.repeat = static_cast<int>(OptInt(opts, "repeat", 1));
  o.flags = flags;
  o.batch_size = static_cast<uint32_t>(OptInt(opts, "batchSize", 0));
  o.cpu = static_cast<uint32_t>(OptInt(opts, "cpu", 0));
  int err = 0;
  RunOffLoop([&] { err = bpf_prog_test_run_opts(fd, &o); });
  if (err) ThrowBpfError(env, "test run", ProgLabel(info, 3), -err, TestRunHint(-err));
  Napi::Object res = Napi::Object::New(env);
  res.Set("retval", o.retval);
  size_t got = live ? 0 : std::min<size_t>(o.data_size_out, out.size());
  res.Set("data", Napi::Buffer<uint8_t>::Copy(env, out.data(), got));
  res.Set("durationNs", o.duration);
  return res;
}

// testRunMany(progFd, data, count, ingressIfindex, pinCpu, name) -> {durations: Float64Array, retvals}
// Each call uses repeat=1 so every run starts from the original packet (repeat=N would rerun the
// program on its own rewritten output).
Napi::Value TestRunMany(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  LibbpfLogReset();
  int fd = static_cast<int>(ArgInt(info, 0, "program fd"));
  auto data = ArgBuffer(info, 1, "data");
  int64_t count = ArgInt(info, 2, "count");
  uint32_t ingress = static_cast<uint32_t>(ArgInt(info, 3, "ingress ifindex"));
  int pinCpu = static_cast<int>(ArgInt(info, 4, "pin cpu"));
  if (count < 0) throw Napi::RangeError::New(env, "testRunMany: count must be >= 0");
  std::vector<double> durations(static_cast<size_t>(count));
  std::map<uint32_t, double> histogram;
  xdp_md ctx = MakeCtx(static_cast<uint32_t>(data.Length()), ingress);
  int err = 0, pinErr = 0;
  RunOffLoop([&] {
    pinErr = PinThisThread(pinCpu);
    for (int64_t i = 0; i < count && !pinErr; i++) {
      bpf_test_run_opts o;
      memset(&o, 0, sizeof(o));
      o.sz = sizeof(o);
      o.data_in = data.Data();
      o.data_size_in = static_cast<uint32_t>(data.Length());
      if (ingress) {
        o.ctx_in = &ctx;
        o.ctx_size_in = sizeof(ctx);
      }
      o.repeat = 1;
      err = bpf_prog_test_run_opts(fd, &o);
      if (err) return;
      durations[static_cast<size_t>(i)] = o.duration;
      histogram[o.retval] += 1;
    }
  });
  if (pinErr) ThrowBpfError(env, "pin cpu", std::to_string(pinCpu), pinErr, "is that CPU online?");
  if (err) ThrowBpfError(env, "test run many", ProgLabel(info, 5), -err, TestRunHint(-err));
  auto arr = Napi::Float64Array::New(env, durations.size());
  if (!durations.empty()) memcpy(arr.Data(), durations.data(), durations.size() * sizeof(double));
  Napi::Object retvals = Napi::Object::New(env);
  for (auto &kv : histogram) retvals.Set(std::to_string(kv.first), kv.second);
  Napi::Object res = Napi::Object::New(env);
  res.Set("durations", arr);
  res.Set("retvals", retvals);
  return res;
}

// testRunLive(progFd, frame, count, batchSize, ingressIfindex, pinCpu, name)
//   -> {retval, durationNs (kernel average per frame), wallNs}
Napi::Value TestRunLive(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  LibbpfLogReset();
  int fd = static_cast<int>(ArgInt(info, 0, "program fd"));
  auto frame = ArgBuffer(info, 1, "frame");
  int64_t count = ArgInt(info, 2, "count");
  uint32_t batch = static_cast<uint32_t>(ArgInt(info, 3, "batch size"));
  uint32_t ingress = static_cast<uint32_t>(ArgInt(info, 4, "ingress ifindex"));
  int pinCpu = static_cast<int>(ArgInt(info, 5, "pin cpu"));
  xdp_md ctx = MakeCtx(static_cast<uint32_t>(frame.Length()), ingress);
  bpf_test_run_opts o;
  memset(&o, 0, sizeof(o));
  o.sz = sizeof(o);
  o.data_in = frame.Data();
  o.data_size_in = static_cast<uint32_t>(frame.Length());
  if (ingress) {
    o.ctx_in = &ctx;
    o.ctx_size_in = sizeof(ctx);
  }
  o.repeat = static_cast<int>(count);
  o.flags = BPF_F_TEST_XDP_LIVE_FRAMES;
  o.batch_size = batch;
  timespec t0, t1;
  int err = 0, pinErr = 0;
  // On a thread of its own: see RunOffLoop.
  RunOffLoop([&] {
    pinErr = PinThisThread(pinCpu);
    if (pinErr) return;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    err = bpf_prog_test_run_opts(fd, &o);
    clock_gettime(CLOCK_MONOTONIC, &t1);
  });
  if (pinErr) ThrowBpfError(env, "pin cpu", std::to_string(pinCpu), pinErr, "is that CPU online?");
  if (err) ThrowBpfError(env, "test run live", ProgLabel(info, 6), -err, TestRunHint(-err));
  Napi::Object res = Napi::Object::New(env);
  res.Set("retval", o.retval);
  res.Set("durationNs", o.duration);
  res.Set("wallNs", (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec));
  return res;
}

}  // namespace

void RegisterTestRun(Napi::Env env, Napi::Object exports) {
  exports.Set("testRun", Napi::Function::New(env, TestRun, "testRun"));
  exports.Set("testRunMany", Napi::Function::New(env, TestRunMany, "testRunMany"));
  exports.Set("testRunLive", Napi::Function::New(env, TestRunLive, "testRunLive"));
}

}  // namespace xdplb
