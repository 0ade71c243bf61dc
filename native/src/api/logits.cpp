// Logits statistics for sampling: validation shared by all backends, then dispatch.
#include <string>

#include "../core/context.h"
#include "../core/error.h"
#include "../core/validate.h"
#include "../core/variants.h"
#include "../cpu/logits.h"
#if MOE4J_WITH_CUDA
#include "../cuda/cuda_backend.h"
#endif

using namespace moe4j;

extern "C" moe4j_status moe4j_logits_stats(moe4j_context *ctx, const moe4j_tensor *logits, moe4j_tensor *argmax,
                                           moe4j_tensor *sum_exp) {
    return guarded(__func__, [&](const char *fn) -> moe4j_status {
        if (moe4j_status s = begin_kernel(fn, ctx)) return s;
        const ArgCheck check(fn, ctx->memory_device());
        if (moe4j_status s = check.tensor(logits, {"logits", {MOE4J_F32}, 2, Layout::RowsDense})) return s;
        const int64_t rows = logits->shape[0], vocab = logits->shape[1];
        if (vocab < 1 || vocab > INT32_MAX)
            return check.invalid("argument 'logits': V = " + std::to_string(vocab) +
                                 " logits per row, outside [1, 2^31 - 1] (argmax is I32)");
        if (moe4j_status s = check.tensor(argmax, {"argmax", {MOE4J_I32}, 1, Layout::Strided})) return s;
        if (moe4j_status s = check.shape(*argmax, "argmax", {rows}, "[B]: one per row of 'logits'")) return s;
        if (moe4j_status s = check.tensor(sum_exp, {"sum_exp", {MOE4J_F32}, 1, Layout::Strided})) return s;
        if (moe4j_status s = check.shape(*sum_exp, "sum_exp", {rows}, "[B]: one per row of 'logits'")) return s;
        if (moe4j_status s = check.no_overlap(*argmax, "argmax", *logits, "logits")) return s;
        if (moe4j_status s = check.no_overlap(*sum_exp, "sum_exp", *logits, "logits")) return s;
        if (moe4j_status s = check.no_overlap(*sum_exp, "sum_exp", *argmax, "argmax")) return s;
#if MOE4J_WITH_CUDA
        if (ctx->backend == MOE4J_BACKEND_CUDA)
            return cuda::run(fn, ctx,
                             [&](const cuda::Call &on) { return cuda::logits_stats(on, *logits, *argmax, *sum_exp); });
#endif
        cpu::logits_stats(ctx, *logits, *argmax, *sum_exp);
        count_cpu(ctx, fn, CpuCode::EveryPath);
        return MOE4J_OK;
    });
}
