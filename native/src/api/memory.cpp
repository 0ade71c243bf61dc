// Entry points for device memory: allocation, copies, synchronization. CPU contexts use host memory.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <sys/mman.h>

#include "../core/context.h"
#include "../core/error.h"
#include "../core/validate.h"
#if MOE4J_WITH_CUDA
#include "../cuda/cuda_backend.h"
#endif

using namespace moe4j;

namespace {

constexpr int64_t kHostAlignment = 64;

// Host allocations this large (model weights) are aligned to and padded to 2 MiB and asked for transparent huge pages.
// Streaming a weight matrix through 4 KiB pages misses the TLB every 4 KiB, and in a VM each miss walks two levels of
// page tables; on the development VM a model decodes faster from 2 MiB pages (bench/RESULTS.md). The padding costs at
// most a quarter of such a block.
constexpr int64_t kHugePage = int64_t{2} << 20;
constexpr int64_t kHugePageThreshold = 4 * kHugePage;

// Zeroes [p, p + size) on up to `threads` threads, a 2 MiB page at a time. This is the memory's first touch, which
// faults its pages in; on a VM whose host takes back the guest's free memory, faulting in huge pages runs at a few
// GB/s per thread. Threads that cannot be started leave their share to the others.
void zero_in_parallel(char *p, size_t size, int threads) {
    const size_t pages = (size + kHugePage - 1) / kHugePage;
    std::atomic<size_t> next{0};
    const auto zero_pages = [&] {
        for (size_t page = next++; page < pages; page = next++) {
            const size_t begin = page * kHugePage;
            std::memset(p + begin, 0, std::min(size - begin, static_cast<size_t>(kHugePage)));
        }
    };
    std::vector<std::thread> helpers;
    try {
        helpers.reserve(static_cast<size_t>(std::max(threads - 1, 0)));  // no reallocation with threads running
        for (int t = 1; t < threads; ++t) helpers.emplace_back(zero_pages);
    } catch (const std::exception &) {
        // no room for the list, or no thread to be had: the threads started so far and this one do the rest
    }
    zero_pages();
    for (std::thread &h : helpers) h.join();
}

// Zeroed host memory of at least `bytes` bytes, or null.
void *allocate_host(int64_t bytes, int threads) {
    const bool huge = bytes >= kHugePageThreshold;
    const int64_t alignment = huge ? kHugePage : kHostAlignment;
    // Rounded up to whole alignment units (aligned_alloc's rule); a size within one unit of INT64_MAX cannot be.
    if (bytes > INT64_MAX - (alignment - 1)) return nullptr;
    const size_t size = static_cast<size_t>((bytes + alignment - 1) / alignment * alignment);
    void *p = std::aligned_alloc(static_cast<size_t>(alignment), size);
    if (p == nullptr) return nullptr;
    // Advice only: where the kernel has no huge pages to give (or none at all), the memory works as it is.
    if (huge) madvise(p, size, MADV_HUGEPAGE);
    zero_in_parallel(static_cast<char *>(p), size, huge ? threads : 1);
    return p;
}

// A copy operand: a valid descriptor of any dtype and rank, row-major contiguous, in host memory or on a CUDA device
// a CPU context may reach (host only) or a CUDA context may reach (host or any GPU).
moe4j_status check_operand(const char *fn, const moe4j_context *ctx, const moe4j_tensor *t, const char *name) {
    const ArgCheck plain(fn, MOE4J_HOST_MEMORY);
    if (t == nullptr) return plain.invalid(std::string("argument '") + name + "' is null");
    if (t->device < MOE4J_HOST_MEMORY)
        return plain.invalid(std::string("argument '") + name + "': device " + std::to_string(t->device) +
                             " is neither host memory (-1) nor a CUDA ordinal");
    if (t->device != MOE4J_HOST_MEMORY && ctx->backend != MOE4J_BACKEND_CUDA)
        return plain.unsupported(std::string("argument '") + name + "' lives on CUDA device " +
                                 std::to_string(t->device) + ", which only a CUDA context can reach");
    if (t->rank < 1 || t->rank > MOE4J_MAX_RANK)
        return plain.invalid(std::string("argument '") + name + "': rank " + std::to_string(t->rank) +
                             " is outside 1.." + std::to_string(MOE4J_MAX_RANK));
    const ArgCheck check(fn, t->device);
    if (moe4j_status s = check.tensor(
            t, {name,
                {MOE4J_F32, MOE4J_BF16, MOE4J_F16, MOE4J_E4M3, MOE4J_I32, MOE4J_I64, MOE4J_U8, MOE4J_Q8_P16},
                t->rank,
                Layout::Strided}))
        return s;
    // An empty tensor has no element to be out of place (and a zero extent makes the running stride 0).
    for (int i = 0; i < t->rank; ++i)
        if (t->shape[i] == 0) return MOE4J_OK;
    int64_t stride = 1;
    for (int i = t->rank - 1; i >= 0; --i) {
        if (t->shape[i] > 1 && t->strides[i] != stride)
            return check.invalid(std::string("argument '") + name + "': not contiguous (dimension " +
                                 std::to_string(i) + " has stride " + std::to_string(t->strides[i]) + ", expected " +
                                 std::to_string(stride) + ")");
        stride *= t->shape[i];
    }
    return MOE4J_OK;
}

int64_t element_count(const moe4j_tensor &t) {
    int64_t n = 1;
    for (int i = 0; i < t.rank; ++i) n *= t.shape[i];
    return n;
}

}  // namespace

extern "C" moe4j_status moe4j_alloc(moe4j_context *ctx, int64_t bytes, void **out) {
    return guarded(__func__, [&](const char *fn) -> moe4j_status {
        if (moe4j_status s = check_context(fn, ctx)) return s;
        const ArgCheck check(fn, ctx->memory_device());
        if (out == nullptr) return check.invalid("argument 'out' is null");
        if (bytes <= 0) return check.invalid("argument 'bytes': " + std::to_string(bytes) + " is not positive");
        // *out is written only on success: a failed call leaves the caller's pointer as it was.
        void *p = nullptr;
        if (ctx->allocation_faults.next_fails())
            return fail(MOE4J_ERROR_OUT_OF_MEMORY,
                        std::string(fn) + ": cannot allocate " + std::to_string(bytes) + " bytes of " +
                            (ctx->backend == MOE4J_BACKEND_CUDA ? "device" : "host") + " memory (injected fault)");
#if MOE4J_WITH_CUDA
        if (ctx->backend == MOE4J_BACKEND_CUDA) {
            const moe4j_status s = cuda::run(fn, ctx, [&](const cuda::Call &on) { return cuda::alloc(on, bytes, &p); });
            if (s == MOE4J_OK) *out = p;
            return s;
        }
#endif
        p = allocate_host(bytes, ctx->pool ? ctx->pool->size() : 1);
        if (p == nullptr)
            return fail(MOE4J_ERROR_OUT_OF_MEMORY,
                        std::string(fn) + ": cannot allocate " + std::to_string(bytes) + " bytes of host memory");
        *out = p;
        return MOE4J_OK;
    });
}

extern "C" moe4j_status moe4j_free(moe4j_context *ctx, void *ptr) {
    return guarded(__func__, [&](const char *fn) -> moe4j_status {
        if (moe4j_status s = check_context(fn, ctx)) return s;
        if (ptr == nullptr) return MOE4J_OK;
#if MOE4J_WITH_CUDA
        if (ctx->backend == MOE4J_BACKEND_CUDA)
            return cuda::run_keeping_earlier_errors(fn, ctx, [&](const cuda::Call &on) { return cuda::free(on, ptr); });
#endif
        std::free(ptr);
        return MOE4J_OK;
    });
}

extern "C" moe4j_status moe4j_copy(moe4j_context *ctx, const moe4j_tensor *src, moe4j_tensor *dst) {
    return guarded(__func__, [&](const char *fn) -> moe4j_status {
        if (moe4j_status s = check_context(fn, ctx)) return s;
        if (moe4j_status s = check_operand(fn, ctx, src, "src")) return s;
        if (moe4j_status s = check_operand(fn, ctx, dst, "dst")) return s;
        const ArgCheck check(fn, dst->device);
        if (src->dtype != dst->dtype)
            return check.invalid(std::string("arguments 'src' and 'dst' differ in dtype: ") + dtype_name(src->dtype) +
                                 " and " + dtype_name(dst->dtype));
        if (moe4j_status s = check.same_shape(*dst, "dst", *src, "src")) return s;
        if (src->device == dst->device)
            if (moe4j_status s = check.no_overlap(*dst, "dst", *src, "src")) return s;
        const int64_t bytes = element_count(*src) * dtype_size(src->dtype);
        if (bytes == 0) return MOE4J_OK;
#if MOE4J_WITH_CUDA
        if (ctx->backend == MOE4J_BACKEND_CUDA)
            return cuda::run(fn, ctx, [&](const cuda::Call &on) {
                return cuda::copy(on, dst->data, dst->device, src->data, src->device, bytes);
            });
#endif
        std::memcpy(dst->data, src->data, static_cast<size_t>(bytes));
        return MOE4J_OK;
    });
}

extern "C" moe4j_status moe4j_synchronize(moe4j_context *ctx) {
    return guarded(__func__, [&](const char *fn) -> moe4j_status {
        if (moe4j_status s = check_context(fn, ctx)) return s;
#if MOE4J_WITH_CUDA
        if (ctx->backend == MOE4J_BACKEND_CUDA)
            return cuda::run(fn, ctx, [&](const cuda::Call &on) { return cuda::synchronize(on); });
#endif
        return MOE4J_OK;
    });
}

extern "C" moe4j_status moe4j_prefetch(moe4j_context *ctx, const moe4j_tensor *t) {
    return guarded(__func__, [&](const char *fn) -> moe4j_status {
        if (moe4j_status s = check_context(fn, ctx)) return s;
        const ArgCheck check(fn, ctx->memory_device());
        if (t == nullptr) return check.invalid("argument 't' is null");
        if (t->rank < 1 || t->rank > MOE4J_MAX_RANK)
            return check.invalid("argument 't': rank " + std::to_string(t->rank) + " is outside 1.." +
                                 std::to_string(MOE4J_MAX_RANK));
        if (moe4j_status s = check.tensor(t, {"t",
                                              {MOE4J_F32, MOE4J_BF16, MOE4J_F16, MOE4J_E4M3, MOE4J_I32, MOE4J_I64,
                                               MOE4J_U8, MOE4J_E4M3_P32, MOE4J_Q8_P16},
                                              t->rank,
                                              Layout::Strided}))
            return s;
        if (ctx->backend == MOE4J_BACKEND_CPU && ctx->pool) ctx->pool->prefetch(t->data, extent_bytes(*t));
        return MOE4J_OK;
    });
}
