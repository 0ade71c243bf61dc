// The state behind an opaque moe4j_context.
#pragma once

#include <memory>
#include <vector>

#include "moe4j.h"
#include "thread_pool.h"
#include "variants.h"

namespace moe4j {
namespace cuda {
struct DeviceState;  // defined by the CUDA backend; absent from CPU-only builds
}
}  // namespace moe4j

struct moe4j_context {
    int32_t backend = MOE4J_BACKEND_CPU;
    int32_t device = 0;
    int32_t isa = MOE4J_ISA_SCALAR;
    int32_t flags = 0;
    std::unique_ptr<moe4j::ThreadPool> pool;
    moe4j::cuda::DeviceState *cuda = nullptr;
    // Host scratch that CPU kernels reuse from call to call (the expert FFN's intermediate activations and its
    // threads' tiles): grown when a call needs more, never shrunk, freed with the context. A context runs one call
    // at a time (its thread pool is not re-entrant), so one buffer serves every kernel.
    std::vector<float> host_scratch;
    // Which kernel variant each call ran (moe4j_context_kernel_variants).
    moe4j::VariantCounts variants;

    bool reproducible() const { return (flags & MOE4J_CONTEXT_REPRODUCIBLE) != 0; }
    bool simple_kernels() const { return (flags & MOE4J_CONTEXT_SIMPLE_KERNELS) != 0; }

    // The memory kernels of this context read and write: host memory or the context's CUDA device.
    int32_t memory_device() const { return backend == MOE4J_BACKEND_CUDA ? device : MOE4J_HOST_MEMORY; }
};

namespace moe4j {
// Checks ctx is non-null; every kernel entry point starts with it.
moe4j_status check_context(const char *function, const moe4j_context *ctx);
}  // namespace moe4j
