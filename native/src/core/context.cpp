#include "context.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <string>
#include <thread>

#include "cpu_features.h"
#include "error.h"
#if MOE4J_WITH_CUDA
#include "../cuda/cuda_backend.h"
#endif

namespace moe4j {

constexpr int32_t kAbiVersion = 10;
constexpr int32_t kMaxThreads = 1024;

moe4j_status check_context(const char *function, const moe4j_context *ctx) {
    if (ctx == nullptr) return fail(MOE4J_ERROR_INVALID_ARGUMENT, std::string(function) + ": argument 'ctx' is null");
    return MOE4J_OK;
}

moe4j_status begin_kernel(const char *function, moe4j_context *ctx) {
    if (moe4j_status s = check_context(function, ctx)) return s;
    ctx->workspace.begin_call();
    return MOE4J_OK;
}

namespace {

int hardware_threads() {
    const unsigned n = std::thread::hardware_concurrency();
    return n == 0 ? 1 : static_cast<int>(n);
}

int cuda_devices() {
#if MOE4J_WITH_CUDA
    return cuda::device_count();
#else
    return 0;
#endif
}

moe4j_status validate_options(const char *fn, const moe4j_context_options &o) {
    const std::string prefix = std::string(fn) + ": argument 'options': ";
    if (o.backend != MOE4J_BACKEND_CPU && o.backend != MOE4J_BACKEND_CUDA)
        return fail(MOE4J_ERROR_INVALID_ARGUMENT, prefix + "unknown backend " + std::to_string(o.backend));
    if (o.threads < 0 || o.threads > kMaxThreads)
        return fail(MOE4J_ERROR_INVALID_ARGUMENT, prefix + "threads " + std::to_string(o.threads) + " is outside [0, " +
                                                      std::to_string(kMaxThreads) + "]");
    if (o.max_isa != MOE4J_ISA_BEST && (o.max_isa < MOE4J_ISA_SCALAR || o.max_isa > MOE4J_ISA_AVX512_BF16))
        return fail(MOE4J_ERROR_INVALID_ARGUMENT,
                    prefix + "max_isa " + std::to_string(o.max_isa) + " is not a moe4j_isa");
    if ((o.flags & ~(MOE4J_CONTEXT_REPRODUCIBLE | MOE4J_CONTEXT_SIMPLE_KERNELS)) != 0)
        return fail(MOE4J_ERROR_INVALID_ARGUMENT,
                    prefix + "flags " + std::to_string(o.flags) + " hold bits that are not moe4j_context_flags");
    if (o.backend == MOE4J_BACKEND_CPU && (o.flags & MOE4J_CONTEXT_SIMPLE_KERNELS) != 0)
        return fail(MOE4J_ERROR_INVALID_ARGUMENT,
                    prefix +
                        "MOE4J_CONTEXT_SIMPLE_KERNELS is for CUDA contexts; the CPU's plain path is max_isa = "
                        "MOE4J_ISA_SCALAR");
    if (o.backend == MOE4J_BACKEND_CPU && o.device != 0)
        return fail(MOE4J_ERROR_INVALID_ARGUMENT, prefix + "device " + std::to_string(o.device) +
                                                      " given for the CPU backend, which has only device 0");
    if (o.backend == MOE4J_BACKEND_CUDA) {
#if MOE4J_WITH_CUDA
        const int count = cuda::device_count();
        if (o.device < 0 || o.device >= count)
            return fail(MOE4J_ERROR_INVALID_ARGUMENT, prefix + "CUDA device " + std::to_string(o.device) +
                                                          " does not exist; " + std::to_string(count) + " found");
#else
        return fail(MOE4J_ERROR_UNSUPPORTED,
                    prefix + "the CUDA backend is not in this library; load libmoe4j_cuda instead of libmoe4j");
#endif
    }
    return MOE4J_OK;
}

}  // namespace
}  // namespace moe4j

using namespace moe4j;

extern "C" moe4j_status moe4j_query_capabilities(moe4j_capabilities *out) {
    return guarded(__func__, [&](const char *fn) -> moe4j_status {
        if (out == nullptr) return fail(MOE4J_ERROR_INVALID_ARGUMENT, std::string(fn) + ": argument 'out' is null");
        int isa = MOE4J_ISA_SCALAR;
        if (moe4j_status s = available_cpu_isa(fn, &isa)) return s;
        moe4j_capabilities caps{};
        caps.abi_version = kAbiVersion;
        caps.version_major = MOE4J_VERSION_MAJOR;
        caps.version_minor = MOE4J_VERSION_MINOR;
        caps.version_patch = MOE4J_VERSION_PATCH;
        caps.cpu_isa = isa;
        caps.cpu_threads = hardware_threads();
        caps.cuda_compiled = MOE4J_WITH_CUDA;
        caps.cuda_device_count = cuda_devices();
        *out = caps;
        return MOE4J_OK;
    });
}

extern "C" moe4j_status moe4j_context_create(const moe4j_context_options *options, moe4j_context **out) {
    return guarded(__func__, [&](const char *fn) -> moe4j_status {
        if (options == nullptr)
            return fail(MOE4J_ERROR_INVALID_ARGUMENT, std::string(fn) + ": argument 'options' is null");
        if (out == nullptr) return fail(MOE4J_ERROR_INVALID_ARGUMENT, std::string(fn) + ": argument 'out' is null");
        if (moe4j_status s = validate_options(fn, *options)) return s;
        int isa = MOE4J_ISA_SCALAR;
        if (moe4j_status s = available_cpu_isa(fn, &isa)) return s;
        if (options->max_isa != MOE4J_ISA_BEST && options->max_isa < isa) isa = options->max_isa;

        auto ctx = std::make_unique<moe4j_context>();
        ctx->backend = options->backend;
        ctx->device = options->device;
        ctx->isa = isa;
        ctx->flags = options->flags;
        ctx->pool = std::make_unique<ThreadPool>(options->threads == 0 ? hardware_threads() : options->threads);
#if MOE4J_WITH_CUDA
        if (ctx->backend == MOE4J_BACKEND_CUDA) {
            if (moe4j_status s = cuda::attach(fn, ctx.get())) return s;
        }
#endif
        *out = ctx.release();
        return MOE4J_OK;
    });
}

extern "C" moe4j_status moe4j_context_destroy(moe4j_context *ctx) {
    return guarded(__func__, [&](const char *) -> moe4j_status {
#if MOE4J_WITH_CUDA
        if (ctx != nullptr && ctx->backend == MOE4J_BACKEND_CUDA) cuda::detach(ctx);
#endif
        delete ctx;
        return MOE4J_OK;
    });
}

extern "C" moe4j_status moe4j_context_query(const moe4j_context *ctx, moe4j_context_info *out) {
    return guarded(__func__, [&](const char *fn) -> moe4j_status {
        if (moe4j_status s = check_context(fn, ctx)) return s;
        if (out == nullptr) return fail(MOE4J_ERROR_INVALID_ARGUMENT, std::string(fn) + ": argument 'out' is null");
        *out = moe4j_context_info{ctx->backend, ctx->device, ctx->pool->size(), ctx->isa, ctx->flags};
        return MOE4J_OK;
    });
}

namespace {

// Copies s into a fixed char array, truncated to fit, always NUL-terminated.
template <size_t N>
void copy_name(char (&to)[N], const std::string &s) {
    const size_t n = std::min(N - 1, s.size());
    std::memcpy(to, s.data(), n);
    to[n] = '\0';
}

}  // namespace

extern "C" moe4j_status moe4j_context_kernel_variants(const moe4j_context *ctx, moe4j_kernel_variant *out,
                                                      int32_t capacity, int32_t *count) {
    return guarded(__func__, [&](const char *fn) -> moe4j_status {
        if (moe4j_status s = check_context(fn, ctx)) return s;
        const std::string prefix = std::string(fn) + ": argument ";
        if (count == nullptr) return fail(MOE4J_ERROR_INVALID_ARGUMENT, prefix + "'count' is null");
        if (capacity < 0)
            return fail(MOE4J_ERROR_INVALID_ARGUMENT,
                        prefix + "'capacity': " + std::to_string(capacity) + " is negative");
        const auto &entries = ctx->variants.entries();
        const auto needed = static_cast<int32_t>(entries.size());
        if (out == nullptr && capacity == 0) {
            *count = needed;
            return MOE4J_OK;
        }
        if (out == nullptr)
            return fail(MOE4J_ERROR_INVALID_ARGUMENT, prefix + "'out' is null with capacity " +
                                                          std::to_string(capacity) +
                                                          " (pass null and 0 to ask for the number of entries)");
        if (capacity < needed)
            return fail(MOE4J_ERROR_INVALID_ARGUMENT, prefix + "'capacity': " + std::to_string(capacity) +
                                                          " entries, but the context has " + std::to_string(needed));
        for (int32_t i = 0; i < needed; ++i) {
            moe4j_kernel_variant v{};
            copy_name(v.kernel, entries[i].kernel);
            copy_name(v.variant, entries[i].variant);
            copy_name(v.reason, entries[i].reason);
            v.calls = entries[i].calls;
            out[i] = v;
        }
        *count = needed;
        return MOE4J_OK;
    });
}

extern "C" moe4j_status moe4j_context_reset_kernel_variants(moe4j_context *ctx) {
    return guarded(__func__, [&](const char *fn) -> moe4j_status {
        if (moe4j_status s = check_context(fn, ctx)) return s;
        ctx->variants.reset();
        return MOE4J_OK;
    });
}

extern "C" moe4j_status moe4j_context_inject_fault(moe4j_context *ctx, int32_t fault, int64_t n) {
    return guarded(__func__, [&](const char *fn) -> moe4j_status {
        if (moe4j_status s = check_context(fn, ctx)) return s;
        const std::string prefix = std::string(fn) + ": argument ";
        const std::string n_is = prefix + "'n': " + std::to_string(n);
        switch (fault) {
            case MOE4J_FAULT_NONE:
                if (n != 0) return fail(MOE4J_ERROR_INVALID_ARGUMENT, n_is + " must be 0 with MOE4J_FAULT_NONE");
                ctx->allocation_faults.arm(0);
                ctx->pool->inject_fault(TaskFault::None, -1);
                return MOE4J_OK;
            case MOE4J_FAULT_ALLOCATION:
                if (n < 1)
                    return fail(MOE4J_ERROR_INVALID_ARGUMENT, n_is + " is not positive (1 fails the next allocation)");
                ctx->allocation_faults.arm(n);
                ctx->pool->inject_fault(TaskFault::None, -1);
                return MOE4J_OK;
            case MOE4J_FAULT_TASK_OUT_OF_MEMORY:
            case MOE4J_FAULT_TASK_EXCEPTION:
                if (n < 0) return fail(MOE4J_ERROR_INVALID_ARGUMENT, n_is + " is negative (tasks count from 0)");
                if (ctx->backend != MOE4J_BACKEND_CPU)
                    return fail(MOE4J_ERROR_UNSUPPORTED,
                                prefix +
                                    "'fault': task faults need a CPU context; a CUDA context's kernels run no "
                                    "host tasks");
                ctx->allocation_faults.arm(0);
                ctx->pool->inject_fault(
                    fault == MOE4J_FAULT_TASK_OUT_OF_MEMORY ? TaskFault::OutOfMemory : TaskFault::Exception, n);
                return MOE4J_OK;
            default:
                return fail(MOE4J_ERROR_INVALID_ARGUMENT,
                            prefix + "'fault': " + std::to_string(fault) + " is not a moe4j_fault");
        }
    });
}

// The Java bindings hard-code these layouts (BindingsTest checks the same numbers on the Java side).
static_assert(sizeof(moe4j_tensor) == 96 && offsetof(moe4j_tensor, shape) == 32 &&
                  offsetof(moe4j_tensor, strides) == 64,
              "moe4j_tensor layout changed: regenerate the bindings");
static_assert(sizeof(moe4j_context_options) == 20 && sizeof(moe4j_context_info) == 20 &&
                  sizeof(moe4j_capabilities) == 32,
              "struct layout changed: regenerate the bindings");
static_assert(sizeof(moe4j_fp8_weight_groups) == 24 && offsetof(moe4j_fp8_weight_groups, weights) == 8 &&
                  offsetof(moe4j_fp8_weight_groups, scales) == 16,
              "moe4j_fp8_weight_groups layout changed: regenerate the bindings");
static_assert(sizeof(moe4j_kernel_variant) == 176 && offsetof(moe4j_kernel_variant, variant) == 48 &&
                  offsetof(moe4j_kernel_variant, reason) == 72 && offsetof(moe4j_kernel_variant, calls) == 168,
              "moe4j_kernel_variant layout changed: regenerate the bindings");
