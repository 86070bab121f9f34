// ringbuf.cc: a BPF ring buffer consumer driven by the event loop (uv_poll on the ring's epoll fd).
// Never blocks the JS thread: when the epoll fd is readable, ring_buffer__consume drains what is there
// and calls the JS callback once per record with a copy of its bytes.
#include <bpf/libbpf.h>
#include <uv.h>

#include <cerrno>

#include "common.h"

namespace xdplb {

namespace {

class RingBufferConsumer : public Napi::ObjectWrap<RingBufferConsumer> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "RingBufferConsumer",
                       {InstanceMethod("close", &RingBufferConsumer::Close),
                        InstanceMethod("consume", &RingBufferConsumer::Consume),
                        InstanceMethod("ref", &RingBufferConsumer::RefLoop),
                        InstanceMethod("unref", &RingBufferConsumer::UnrefLoop)});
  }

  // new RingBufferConsumer(mapFd, onRecord, mapName)
  explicit RingBufferConsumer(const Napi::CallbackInfo &info) : Napi::ObjectWrap<RingBufferConsumer>(info) {
    Napi::Env env = info.Env();
    int mapFd = static_cast<int>(ArgInt(info, 0, "ring buffer map fd"));
    if (!info[1].IsFunction()) throw Napi::TypeError::New(env, "RingBuffer: onRecord must be a function");
    name_ = OptString(info, 2, "?");
    LibbpfLogReset();
    rb_ = ring_buffer__new(mapFd, &RingBufferConsumer::OnSample, this, nullptr);
    if (!rb_)
      ThrowBpfError(env, "ring buffer open", "map '" + name_ + "'", errno,
                    errno == EINVAL ? "the map must be of type BPF_MAP_TYPE_RINGBUF" : "");
    callback_ = Napi::Persistent(info[1].As<Napi::Function>());
    asyncContext_ = new Napi::AsyncContext(env, "xdplb.RingBuffer");
    poll_ = new uv_poll_t;
    poll_->data = this;
    uv_loop_t *loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    int rc = uv_poll_init(loop, poll_, ring_buffer__epoll_fd(rb_));
    if (rc == 0) rc = uv_poll_start(poll_, UV_READABLE, &RingBufferConsumer::OnPoll);
    if (rc != 0) {
      delete poll_;
      poll_ = nullptr;
      ring_buffer__free(rb_);
      rb_ = nullptr;
      ThrowBpfError(env, "ring buffer poll", "map '" + name_ + "'", -rc);
    }
    Ref();  // stay alive while the poll handle points at us
  }

  ~RingBufferConsumer() override {
    if (rb_ && !consuming_) ring_buffer__free(rb_);
    delete asyncContext_;
  }

 private:
  static int OnSample(void *ctx, void *data, size_t size) {
    auto *self = static_cast<RingBufferConsumer *>(ctx);
    if (self->closed_ || !self->pendingError_.IsEmpty()) return -ECANCELED;
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    auto record = Napi::Buffer<uint8_t>::Copy(env, static_cast<uint8_t *>(data), size);
    self->delivered_++;
    try {
      self->callback_.MakeCallback(self->Value(), {record}, *self->asyncContext_);
    } catch (const Napi::Error &e) {
      // Stop this round; the exception becomes an uncaught exception after consume returns.
      self->pendingError_ = Napi::Reference<Napi::Value>::New(e.Value(), 1);
      return -ECANCELED;
    }
    return 0;
  }

  static void OnPoll(uv_poll_t *handle, int status, int /*events*/) {
    auto *self = static_cast<RingBufferConsumer *>(handle->data);
    if (!self || self->closed_) return;
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    self->Drain();
    self->RaisePending();
    (void)status;
  }

  // Consumes what is in the ring now; returns the number of records delivered.
  int64_t Drain() {
    if (!rb_) return 0;
    int64_t before = delivered_;
    consuming_ = true;
    ring_buffer__consume(rb_);
    consuming_ = false;
    if (closed_) FreeRing();  // close() was called from inside the callback
    return delivered_ - before;
  }

  void RaisePending() {
    if (pendingError_.IsEmpty()) return;
    Napi::Value err = pendingError_.Value();
    pendingError_.Reset();
    napi_fatal_exception(Env(), err);
  }

  void FreeRing() {
    if (rb_) {
      ring_buffer__free(rb_);
      rb_ = nullptr;
    }
  }

  Napi::Value Consume(const Napi::CallbackInfo &info) {
    int64_t n = Drain();
    if (!pendingError_.IsEmpty()) {
      Napi::Value err = pendingError_.Value();
      pendingError_.Reset();
      throw Napi::Error(info.Env(), err);
    }
    return Napi::Number::New(info.Env(), static_cast<double>(n));
  }

  // Whether the open poll keeps the event loop (and so the process) alive, like a socket's ref/unref.
  Napi::Value RefLoop(const Napi::CallbackInfo &info) {
    if (poll_) uv_ref(reinterpret_cast<uv_handle_t *>(poll_));
    return info.Env().Undefined();
  }

  Napi::Value UnrefLoop(const Napi::CallbackInfo &info) {
    if (poll_) uv_unref(reinterpret_cast<uv_handle_t *>(poll_));
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo &info) {
    if (closed_) return info.Env().Undefined();
    closed_ = true;
    if (poll_) {
      uv_poll_stop(poll_);  // removes the epoll fd from libuv's set before the ring frees it
      uv_close(reinterpret_cast<uv_handle_t *>(poll_), [](uv_handle_t *h) { delete reinterpret_cast<uv_poll_t *>(h); });
      poll_ = nullptr;
    }
    if (!consuming_) FreeRing();
    callback_.Reset();
    Unref();
    return info.Env().Undefined();
  }

  ring_buffer *rb_ = nullptr;
  uv_poll_t *poll_ = nullptr;
  Napi::FunctionReference callback_;
  Napi::AsyncContext *asyncContext_ = nullptr;
  Napi::Reference<Napi::Value> pendingError_;
  std::string name_;
  int64_t delivered_ = 0;
  bool consuming_ = false;
  bool closed_ = false;
};

}  // namespace

void RegisterRingBuffer(Napi::Env env, Napi::Object exports) {
  exports.Set("RingBufferConsumer", RingBufferConsumer::Init(env));
}

}  // namespace xdplb
