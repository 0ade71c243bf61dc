// RMSNorm entry point: validation shared by all backends, then dispatch.
#include <cmath>
#include <string>

#include "../core/context.h"
#include "../core/error.h"
#include "../core/validate.h"
#include "../core/variants.h"
#include "../cpu/norm.h"
#if MOE4J_WITH_CUDA
#include "../cuda/cuda_backend.h"
#endif

using namespace moe4j;

extern "C" moe4j_status moe4j_rms_norm(moe4j_context *ctx, const moe4j_tensor *x, const moe4j_tensor *residual,
                                       const moe4j_tensor *weight, float eps, moe4j_tensor *sum_out, moe4j_tensor *y) {
    return guarded(__func__, [&](const char *fn) -> moe4j_status {
        if (moe4j_status s = begin_kernel(fn, ctx)) return s;
        const ArgCheck check(fn, ctx->memory_device());
        if (moe4j_status s = check.tensor(x, {"x", {MOE4J_F32, MOE4J_BF16}, 2, Layout::RowsDense})) return s;
        const int64_t tokens = x->shape[0], dim = x->shape[1];
        if (dim <= 0) return check.invalid("argument 'x': D = " + std::to_string(dim) + " must be positive");
        if (moe4j_status s = check.tensor(weight, {"weight", {MOE4J_F32}, 1, Layout::RowsDense})) return s;
        if (moe4j_status s = check.shape(*weight, "weight", {dim}, "[D] with the D of 'x'")) return s;
        if (!(eps > 0.0f) || !std::isfinite(eps))
            return check.invalid("argument 'eps': " + std::to_string(eps) + " is not a positive finite number");
        if (residual != nullptr) {
            if (moe4j_status s = check.tensor(residual, {"residual", {MOE4J_F32}, 2, Layout::RowsDense})) return s;
            if (moe4j_status s = check.shape(*residual, "residual", {tokens, dim}, "[T, D] like 'x'")) return s;
        }
        if (sum_out != nullptr) {
            if (moe4j_status s = check.tensor(sum_out, {"sum_out", {MOE4J_F32}, 2, Layout::RowsDense})) return s;
            if (moe4j_status s = check.shape(*sum_out, "sum_out", {tokens, dim}, "[T, D] like 'x'")) return s;
            if (!same_view(*sum_out, *x))
                if (moe4j_status s = check.no_overlap(*sum_out, "sum_out", *x, "x")) return s;
            if (residual != nullptr && !same_view(*sum_out, *residual))
                if (moe4j_status s = check.no_overlap(*sum_out, "sum_out", *residual, "residual")) return s;
            if (moe4j_status s = check.no_overlap(*sum_out, "sum_out", *weight, "weight")) return s;
        }
        if (moe4j_status s = check.tensor(y, {"y", {MOE4J_F32, MOE4J_BF16}, 2, Layout::RowsDense})) return s;
        if (moe4j_status s = check.shape(*y, "y", {tokens, dim}, "[T, D] like 'x'")) return s;
        if (moe4j_status s = check.no_overlap(*y, "y", *x, "x")) return s;
        if (residual != nullptr)
            if (moe4j_status s = check.no_overlap(*y, "y", *residual, "residual")) return s;
        if (moe4j_status s = check.no_overlap(*y, "y", *weight, "weight")) return s;
        if (sum_out != nullptr)
            if (moe4j_status s = check.no_overlap(*y, "y", *sum_out, "sum_out")) return s;
#if MOE4J_WITH_CUDA
        if (ctx->backend == MOE4J_BACKEND_CUDA)
            return cuda::run(fn, ctx, [&](const cuda::Call &on) {
                return cuda::rms_norm(on, *x, residual, *weight, eps, sum_out, *y);
            });
#endif
        cpu::rms_norm(ctx, *x, residual, *weight, eps, sum_out, *y);
        count_cpu(ctx, fn, CpuCode::EveryPath);
        return MOE4J_OK;
    });
}
