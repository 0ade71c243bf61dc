// The state behind an opaque moe4j_context.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "error.h"
#include "line_vector.h"
#include "moe4j.h"
#include "thread_pool.h"
#include "variants.h"

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
    // Host scratch that CPU kernels reuse from call to call (the expert FFN's intermediate activations and its
    // threads' tiles, the int8 GEMM's quantized activations, rows staged as floats): grown when a call needs more,
    // never shrunk, freed with the context: no call allocates once its sizes have been seen. A context runs one call
    // at a time (its thread pool is not re-entrant), so one buffer serves every kernel.
    moe4j::LineVector<float> host_scratch;  // on a cache line: kernels lay out rows of 64-byte multiples in it
    // Which kernel variant each call ran (moe4j_context_kernel_variants).
    moe4j::VariantCounts variants;
    // The armed allocation fault (tests only; see moe4j_context_inject_fault).
    moe4j::AllocationFaults allocation_faults;

    // host_scratch with room for at least `floats` floats, grown if needed. When it cannot grow (or an injected fault
    // says so) throws moe4j::OutOfMemory naming `what` and the size, and host_scratch stays as it was.
    float *host_scratch_for(size_t floats, const char *what) {
        if (host_scratch.size() >= floats) return host_scratch.data();
        const std::string wanted = std::to_string(floats * sizeof(float)) + " bytes of host scratch for " + what;
        if (allocation_faults.next_fails()) throw moe4j::OutOfMemory("cannot allocate " + wanted + " (injected fault)");
        try {
            host_scratch.resize(floats);
        } catch (const std::bad_alloc &) {
            throw moe4j::OutOfMemory("cannot allocate " + wanted);
        } catch (const std::length_error &) {
            throw moe4j::OutOfMemory("cannot allocate " + wanted + ": more than a vector holds");
        }
        return host_scratch.data();
    }

    // host_scratch as `floats` floats for each of the pool's threads (whole cache lines each): thread w's (the worker
    // index parallel_for gives) at .of(w), after `shared_floats` for the whole call at .shared. Taken before the
    // parallel run, like host_scratch_for, whose failures it has.
    struct WorkerScratch {
        float *shared;
        float *base;
        size_t stride;
        float *of(int worker) const { return base + static_cast<size_t>(worker) * stride; }
    };
    WorkerScratch worker_scratch_for(size_t floats, const char *what, size_t shared_floats = 0) {
        const size_t stride = (floats + 15) / 16 * 16, lead = (shared_floats + 15) / 16 * 16;
        float *const all = host_scratch_for(lead + stride * static_cast<size_t>(pool->size()), what);
        return {all, all + lead, stride};
    }

    bool reproducible() const { return (flags & MOE4J_CONTEXT_REPRODUCIBLE) != 0; }
    bool simple_kernels() const { return (flags & MOE4J_CONTEXT_SIMPLE_KERNELS) != 0; }

    // The memory kernels of this context read and write: host memory or the context's CUDA device.
    int32_t memory_device() const { return backend == MOE4J_BACKEND_CUDA ? device : MOE4J_HOST_MEMORY; }
};

namespace moe4j {
// Checks ctx is non-null; every kernel entry point starts with it.
moe4j_status check_context(const char *function, const moe4j_context *ctx);
}  // namespace moe4j
