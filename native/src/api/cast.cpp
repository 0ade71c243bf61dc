// moe4j_cast: validation shared by all backends, then dispatch.
#include "../cpu/cast.h"
#include "../core/context.h"
#include "../core/error.h"
#include "../core/validate.h"
#include "../core/variants.h"
#if MOE4J_WITH_CUDA
#include "../cuda/cuda_backend.h"
#endif

using namespace moe4j;

extern "C" moe4j_status moe4j_cast(moe4j_context *ctx, const moe4j_tensor *src, moe4j_tensor *dst) {
    return guarded(__func__, [&](const char *fn) -> moe4j_status {
        if (moe4j_status s = begin_kernel(fn, ctx)) return s;
        const ArgCheck check(fn, ctx->memory_device());
        if (src == nullptr) return check.invalid("argument 'src' is null");
        if (src->rank < 1 || src->rank > MOE4J_MAX_RANK)
            return check.invalid("argument 'src': rank " + std::to_string(src->rank) + " is outside [1, 4]");
        const int32_t rank = src->rank;
        if (moe4j_status s = check.tensor(src, {"src", {MOE4J_F32, MOE4J_BF16, MOE4J_E4M3}, rank, Layout::RowsDense}))
            return s;
        if (moe4j_status s = check.tensor(dst, {"dst", {MOE4J_F32, MOE4J_BF16, MOE4J_E4M3}, rank, Layout::RowsDense}))
            return s;
        if (moe4j_status s = check.same_shape(*src, "src", *dst, "dst")) return s;
        if (moe4j_status s = check.no_overlap(*dst, "dst", *src, "src")) return s;
#if MOE4J_WITH_CUDA
        if (ctx->backend == MOE4J_BACKEND_CUDA)
            return cuda::run(fn, ctx, [&](const cuda::Call &on) { return cuda::cast(on, *src, *dst); });
#endif
        cpu::cast(ctx, *src, *dst);
        count_cpu(ctx, fn, CpuCode::NoAvx512F);
        return MOE4J_OK;
    });
}
