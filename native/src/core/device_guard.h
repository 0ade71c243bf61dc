// Making a context's device current for the span of one call, and the previous device current again after it: the
// CUDA runtime's current device is per host thread, and a thread may serve contexts of several GPUs one after
// another. Written over an abstract device API so that the logic is tested without a GPU (native/test): Api is any
// type with
//   using Error = ...;                      // cudaError_t for CUDA
//   static constexpr Error kSuccess = ...;
//   Error get_device(int *device);
//   Error set_device(int device);
#pragma once

#include <utility>

namespace moe4j {

// Makes `device` current on construction (unless it already is) and the previous device current again by restore()
// or, failing an explicit restore(), on destruction. error() is the first failure of construction: when it is set,
// nothing ran on the device, nothing changed, and nothing will be restored.
template <typename Api>
class ScopedDevice {
  public:
    using Error = typename Api::Error;

    ScopedDevice(Api &api, int device) : api_(api) {
        error_ = api_.get_device(&previous_);
        if (error_ != Api::kSuccess || previous_ == device) return;
        error_ = api_.set_device(device);
        switched_ = error_ == Api::kSuccess;
    }

    ScopedDevice(const ScopedDevice &) = delete;
    ScopedDevice &operator=(const ScopedDevice &) = delete;

    ~ScopedDevice() { restore(); }

    Error error() const { return error_; }

    // Makes the previous device current again (once; later calls return kSuccess) and returns the outcome, so that a
    // caller can report a failure that a destructor would have to drop.
    Error restore() {
        if (!switched_) return Api::kSuccess;
        switched_ = false;
        return api_.set_device(previous_);
    }

  private:
    Api &api_;
    int previous_ = 0;
    bool switched_ = false;
    Error error_ = Api::kSuccess;
};

// Runs body() with `device` current and restores the previous device. Returns to_status(error) for a device API
// failure (making the device current, or restoring the previous one after a successful body), otherwise body()'s
// status: the body's own failure is never replaced by a restore failure, and a body that fails still restores.
// Status is any type whose value-initialized state means success (moe4j_status: MOE4J_OK == 0).
template <typename Api, typename Body, typename ToStatus>
auto on_device(Api &api, int device, Body &&body, ToStatus &&to_status) -> decltype(body()) {
    using Status = decltype(body());
    ScopedDevice<Api> guard(api, device);
    if (guard.error() != Api::kSuccess) return to_status(guard.error());
    const Status status = std::forward<Body>(body)();
    const typename Api::Error restored = guard.restore();
    if (status == Status{} && restored != Api::kSuccess) return to_status(restored);
    return status;
}

}  // namespace moe4j
