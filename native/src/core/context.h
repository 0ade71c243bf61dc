// The state behind an opaque moe4j_context.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "error.h"
#include "moe4j.h"
#include "thread_pool.h"
#include "variants.h"
#include "workspace.h"

namespace moe4j {
namespace cuda {
struct DeviceState;  // defined by the CUDA backend; absent from CPU-only builds
}

// The allocation fault a test arms on a context (moe4j_context_inject_fault, MOE4J_FAULT_ALLOCATION): the n-th
// allocation the context makes from then on fails, once. Atomic because moe4j_alloc may be called while another
// thread runs a kernel on the context (Java frees and allocates device buffers from cleaner and staging threads).
class AllocationFaults {
  public:
    // n >= 1 arms the n-th allocation from now; 0 disarms.
    void arm(int64_t n) { countdown_.store(n); }

    // Counts one allocation; true when it is the one that must fail.
    bool next_fails() {
        int64_t left = countdown_.load();
        while (left > 0)
            if (countdown_.compare_exchange_weak(left, left - 1)) return left == 1;
        return false;
    }

  private:
    std::atomic<int64_t> countdown_{0};
};
}  // namespace moe4j

struct moe4j_context {
    int32_t backend = MOE4J_BACKEND_CPU;
    int32_t device = 0;
    int32_t isa = MOE4J_ISA_SCALAR;
    int32_t flags = 0;
    std::unique_ptr<moe4j::ThreadPool> pool;
    moe4j::cuda::DeviceState *cuda = nullptr;
    // Which kernel variant each call ran (moe4j_context_kernel_variants).
    moe4j::VariantCounts variants;
    // The armed allocation fault (tests only; see moe4j_context_inject_fault).
    moe4j::AllocationFaults allocation_faults;
    // The temporaries of the current kernel call (CPU kernels and the argument lists they are given), kept from call
    // to call. A context runs one call at a time (its thread pool is not re-entrant), so one workspace serves them all.
    moe4j::Workspace workspace{allocation_faults};

    // The workspace as `floats` floats for each of the pool's threads (whole cache lines each): thread w's (the worker
    // index parallel_for gives) at .of(w), after `shared_floats` for the whole call at .shared. Taken before the
    // parallel run, with Workspace::take's failures.
    struct WorkerScratch {
        float *shared;
        float *base;
        size_t stride;
        float *of(int worker) const { return base + static_cast<size_t>(worker) * stride; }
    };
    WorkerScratch worker_scratch_for(size_t floats, const char *what, size_t shared_floats = 0) {
        const size_t stride = (floats + 15) / 16 * 16, lead = (shared_floats + 15) / 16 * 16;
        float *const all =
            workspace.take<float>(static_cast<int64_t>(lead + stride * static_cast<size_t>(pool->size())), what);
        return {all, all + lead, stride};
    }

    bool reproducible() const { return (flags & MOE4J_CONTEXT_REPRODUCIBLE) != 0; }
    bool simple_kernels() const { return (flags & MOE4J_CONTEXT_SIMPLE_KERNELS) != 0; }

    // The memory kernels of this context read and write: host memory or the context's CUDA device.
    int32_t memory_device() const { return backend == MOE4J_BACKEND_CUDA ? device : MOE4J_HOST_MEMORY; }
};

namespace moe4j {
// Checks ctx is non-null; the entry points that run no kernel (memory, queries) start with it.
moe4j_status check_context(const char *function, const moe4j_context *ctx);
// check_context for a kernel entry point, which also starts a call on the context's workspace (the previous call's
// temporaries may be reused from here on).
moe4j_status begin_kernel(const char *function, moe4j_context *ctx);
}  // namespace moe4j
