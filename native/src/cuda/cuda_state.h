// What the CUDA backend keeps per context, and how CUDA errors become moe4j errors. For .cu files only.
#pragma once

#include <cuda_runtime.h>

#include <string>
#include <vector>

#include "../core/context.h"
#include "../core/error.h"
#include "moe4j.h"

namespace moe4j::cuda {

// MOE4J_OK, or MOE4J_ERROR_BACKEND with CUDA's message for `function` (the sticky error state is cleared).
inline moe4j_status check(const char *function, cudaError_t err) {
    if (err == cudaSuccess) return MOE4J_OK;
    cudaGetLastError();
    return fail(MOE4J_ERROR_BACKEND, std::string(function) + ": CUDA: " + cudaGetErrorString(err));
}

// Device memory one call owns: freed when it goes out of scope.
class DeviceBuffer {
  public:
    DeviceBuffer() = default;
    DeviceBuffer(const DeviceBuffer &) = delete;
    DeviceBuffer &operator=(const DeviceBuffer &) = delete;
    ~DeviceBuffer() { cudaFree(data_); }

    moe4j_status allocate(const char *function, size_t bytes) {
        if (moe4j_status s = check(function, cudaMalloc(&data_, bytes))) return s;
        size_ = bytes;
        return MOE4J_OK;
    }

    // Allocates and fills with host values (nothing for an empty vector), in stream order: the context's stream is
    // non-blocking, so a plain cudaMemcpy would not be ordered before the kernels that read the values.
    template <typename T>
    moe4j_status upload(const char *function, cudaStream_t stream, const std::vector<T> &host) {
        if (host.empty()) return MOE4J_OK;
        if (moe4j_status s = allocate(function, host.size() * sizeof(T))) return s;
        return check(function,
                     cudaMemcpyAsync(data_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice, stream));
    }

    // Keeps the memory when it holds at least `bytes`, else replaces it (contents are not kept).
    moe4j_status reserve(const char *function, size_t bytes) {
        if (bytes <= size_) return MOE4J_OK;
        cudaFree(data_);
        data_ = nullptr;
        size_ = 0;
        return allocate(function, bytes);
    }

    template <typename T>
    T *as() const {
        return static_cast<T *>(data_);
    }
    void *data() const { return data_; }

  private:
    void *data_ = nullptr;
    size_t size_ = 0;
};

struct DeviceState {
    cudaStream_t stream = nullptr;
    int compute_capability = 0;  // major * 10 + minor: 90 for Hopper
    int multiprocessors = 0;
    int max_shared_per_block = 0;  // bytes a kernel may opt into
    // Scratch memory one kernel call at a time uses (split-KV partial results), grown on demand and kept, so that a
    // decode step does not allocate (cudaFree synchronizes the whole device).
    DeviceBuffer workspace;
};

// After kernel launches: the launch error, if any; then waits for the stream, so that a fault surfaces from the call
// that caused it (every kernel entry point returns with its work complete).
inline moe4j_status finish(const char *function, moe4j_context *ctx) {
    if (moe4j_status s = check(function, cudaGetLastError())) return s;
    return check(function, cudaStreamSynchronize(ctx->cuda->stream));
}

}  // namespace moe4j::cuda
