// What the CUDA backend keeps per context, and how CUDA errors become moe4j errors. For .cu files only.
#pragma once

#include <cuda_runtime.h>

#include <string>
#include <vector>

#include "../core/context.h"
#include "../core/error.h"
#include "moe4j.h"

namespace moe4j::cuda {

struct DeviceState {
    cudaStream_t stream = nullptr;
};

// MOE4J_OK, or MOE4J_ERROR_BACKEND with CUDA's message for `function` (the sticky error state is cleared).
inline moe4j_status check(const char *function, cudaError_t err) {
    if (err == cudaSuccess) return MOE4J_OK;
    cudaGetLastError();
    return fail(MOE4J_ERROR_BACKEND, std::string(function) + ": CUDA: " + cudaGetErrorString(err));
}

// After kernel launches: the launch error, if any; then waits for the stream, so that a fault surfaces from the call
// that caused it (every kernel entry point returns with its work complete).
inline moe4j_status finish(const char *function, moe4j_context *ctx) {
    if (moe4j_status s = check(function, cudaGetLastError())) return s;
    return check(function, cudaStreamSynchronize(ctx->cuda->stream));
}

// Device memory one call owns: freed when it goes out of scope.
class DeviceBuffer {
  public:
    DeviceBuffer() = default;
    DeviceBuffer(const DeviceBuffer &) = delete;
    DeviceBuffer &operator=(const DeviceBuffer &) = delete;
    ~DeviceBuffer() { cudaFree(data_); }

    moe4j_status allocate(const char *function, size_t bytes) { return check(function, cudaMalloc(&data_, bytes)); }

    // Allocates and fills with host values (nothing for an empty vector).
    template <typename T>
    moe4j_status upload(const char *function, const std::vector<T> &host) {
        if (host.empty()) return MOE4J_OK;
        if (moe4j_status s = allocate(function, host.size() * sizeof(T))) return s;
        return check(function, cudaMemcpy(data_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
    }

    template <typename T>
    T *as() const {
        return static_cast<T *>(data_);
    }
    void *data() const { return data_; }

  private:
    void *data_ = nullptr;
};

}  // namespace moe4j::cuda
