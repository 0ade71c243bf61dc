// What the CUDA backend keeps per context, how CUDA errors become moe4j errors, and the per-context device scratch.
// For .cu files only.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "../core/context.h"
#include "../core/error.h"
#include "cuda_backend.h"
#include "device_checks.cuh"
#include "moe4j.h"

namespace moe4j::cuda {

// MOE4J_OK, or MOE4J_ERROR_BACKEND with CUDA's message for `function` (the error state is cleared where it is not
// sticky).
inline moe4j_status check(const char *function, cudaError_t err) {
    if (err == cudaSuccess) return MOE4J_OK;
    cudaGetLastError();
    return fail(MOE4J_ERROR_BACKEND, std::string(function) + ": CUDA: " + cudaGetErrorString(err));
}

// The CUDA runtime as ScopedDevice's device API (core/device_guard.h).
struct CudaDevices {
    using Error = cudaError_t;
    static constexpr Error kSuccess = cudaSuccess;
    Error get_device(int *device) { return cudaGetDevice(device); }
    Error set_device(int device) { return cudaSetDevice(device); }
};

struct DeviceState {
    cudaStream_t stream = nullptr;  // non-blocking: never waits for the legacy default stream
    // Recorded after each call's work; `pending` while no check has seen it complete (see check_earlier).
    cudaEvent_t done = nullptr;
    bool pending = false;
    int compute_capability = 0;  // major * 10 + minor: 90 for Hopper
    int multiprocessors = 0;
    int max_shared_per_block = 0;  // bytes a kernel may opt into
    bool memory_pools = false;     // cudaMallocAsync / cudaFreeAsync available (scratch grows without a host wait)
    int gemm_binary_version = -1;  // the wgmma GEMM kernel's binaryVersion on this device, looked up on first use

    // Grow-only scratch for task tables and intermediates, reused by every call in stream order (see Scratch).
    void *scratch = nullptr;
    size_t scratch_bytes = 0;

    // The device-side argument checks' record (device memory) and its page-locked host mirror, which a call whose
    // kernels check arguments refreshes by an asynchronous copy after them (fault_used set by fault_sink()).
    DeviceFault *fault = nullptr;
    DeviceFault *fault_host = nullptr;
    bool fault_used = false;
};

inline DeviceState &state(const Call &call) { return *call.ctx()->cuda; }
inline cudaStream_t stream(const Call &call) { return call.ctx()->cuda->stream; }

// The record for this call's kernels' argument checks; the call's fault record is then copied back after them.
inline FaultSink fault_sink(const Call &call) {
    DeviceState &s = state(call);
    s.fault_used = true;
    return {s.fault, static_cast<uint64_t>(reinterpret_cast<uintptr_t>(call.function()))};
}

// Waits for all work of the context (this call's too), then reports what earlier calls left behind (check_earlier).
moe4j_status wait_and_report(const Call &call);

// The launch error of the kernels just launched, if any.
inline moe4j_status launched(const Call &call) { return check(call.function(), cudaGetLastError()); }

// Per-token (block_rows 1) or per-block (128) FP8 quantization, enqueued on `stream` (quantize.cu; the expert FFN
// quantizes its intermediate with it).
void launch_quantize(cudaStream_t stream, const moe4j_tensor &x, const moe4j_tensor &q, const moe4j_tensor &scales,
                     int64_t block_rows, bool ue8m0);

// Counts one call of the entry point (or of its `stage`) as `variant`, for `reason`.
inline void count_variant(const Call &call, const char *variant, std::string_view reason, const char *stage = nullptr) {
    call.ctx()->variants.count(kernel_name(call.function(), stage), variant, reason);
}

// One call's share of the context's scratch: parts added first (offsets 256-byte aligned), then reserve() makes the
// scratch at least that large and the parts are addressed with at(). The scratch only grows. Growing replaces the
// buffer: the old one is released in stream order (cudaFreeAsync, so kernels of earlier calls that still use it keep
// it until they finish) and the new one allocated in stream order (cudaMallocAsync); on a device without memory pools
// the stream is synchronized first and cudaFree/cudaMalloc used instead. Either way no host wait happens unless the
// scratch grows on such a device, and growth is rare (the first calls of each larger shape). Parts are reused by the
// next call in stream order, so a part's contents do not outlive the call.
class Scratch {
  public:
    template <typename T>
    size_t add(int64_t count) {
        const size_t offset = bytes_;
        bytes_ += (static_cast<size_t>(count) * sizeof(T) + 255) / 256 * 256;
        return offset;
    }

    moe4j_status reserve(const Call &call);

    template <typename T>
    T *at(size_t offset) const {
        return reinterpret_cast<T *>(base_ + offset);
    }

  private:
    size_t bytes_ = 0;
    char *base_ = nullptr;
};

}  // namespace moe4j::cuda
