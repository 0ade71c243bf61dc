// Int8 GEMM entry points (the LM head's weight quantization and product): validation shared by all backends, then
// dispatch.
#include <string>

#include "../core/context.h"
#include "../core/error.h"
#include "../core/validate.h"
#include "../core/variants.h"
#include "../cpu/q8_gemm.h"
#if MOE4J_WITH_CUDA
#include "../cuda/cuda_backend.h"
#endif

using namespace moe4j;

namespace {

constexpr int64_t kBlock = 128;

// K of a [rows, K] operand: a positive multiple of 128.
moe4j_status check_width(const ArgCheck &check, const moe4j_tensor &t, const char *name) {
    const int64_t k = t.shape[1];
    if (k < kBlock || k % kBlock != 0)
        return check.invalid(check.argument(name) + ": K = " + std::to_string(k) +
                             " is not a positive multiple of 128 (the activation blocks)");
    return MOE4J_OK;
}

// A per-row scale vector [n]: F32, contiguous.
moe4j_status check_row_scales(const ArgCheck &check, const moe4j_tensor *t, const char *name, int64_t n) {
    if (moe4j_status s = check.tensor(t, {name, {MOE4J_F32}, 1, Layout::RowsDense})) return s;
    return check.shape(*t, name, {n}, "one scale per weight row");
}

}  // namespace

extern "C" moe4j_status moe4j_quantize_q8_weights(moe4j_context *ctx, const moe4j_tensor *w, moe4j_tensor *q,
                                                  moe4j_tensor *scales) {
    return guarded(__func__, [&](const char *fn) -> moe4j_status {
        if (moe4j_status s = check_context(fn, ctx)) return s;
        const ArgCheck check(fn, ctx->memory_device());
        if (moe4j_status s = check.tensor(w, {"w", {MOE4J_F32, MOE4J_BF16}, 2, Layout::RowsDense})) return s;
        if (moe4j_status s = check_width(check, *w, "w")) return s;
        const int64_t n = w->shape[0];
        if (n % 16 != 0)
            return check.invalid("argument 'w': N = " + std::to_string(n) +
                                 " is not a multiple of 16, the rows of a Q8_P16 panel");
        if (moe4j_status s = check.tensor(q, {"q", {MOE4J_Q8_P16}, 2, Layout::RowsDense})) return s;
        if (moe4j_status s = check.shape(*q, "q", {n, w->shape[1]}, "the shape of 'w'")) return s;
        if (moe4j_status s = check_row_scales(check, scales, "scales", n)) return s;
        if (moe4j_status s = check.no_overlap(*q, "q", *w, "w")) return s;
        if (moe4j_status s = check.no_overlap(*scales, "scales", *w, "w")) return s;
        if (moe4j_status s = check.no_overlap(*scales, "scales", *q, "q")) return s;
#if MOE4J_WITH_CUDA
        if (ctx->backend == MOE4J_BACKEND_CUDA)
            return cuda::run(fn, ctx,
                             [&](const cuda::Call &on) { return cuda::quantize_q8_weights(on, *w, *q, *scales); });
#endif
        cpu::quantize_q8_weights(ctx, *w, *q, *scales);
        count_cpu(ctx, fn, CpuCode::EveryPath, "portable");  // one loop for every path: it runs once, at load
        return MOE4J_OK;
    });
}

extern "C" moe4j_status moe4j_q8_gemm_nt(moe4j_context *ctx, const moe4j_tensor *a, const moe4j_tensor *b,
                                         const moe4j_tensor *sfb, moe4j_tensor *d) {
    return guarded(__func__, [&](const char *fn) -> moe4j_status {
        if (moe4j_status s = check_context(fn, ctx)) return s;
        const ArgCheck check(fn, ctx->memory_device());
        if (moe4j_status s = check.tensor(a, {"a", {MOE4J_F32, MOE4J_BF16}, 2, Layout::RowsDense})) return s;
        if (moe4j_status s = check_width(check, *a, "a")) return s;
        if (moe4j_status s = check.tensor(b, {"b", {MOE4J_Q8_P16}, 2, Layout::RowsDense})) return s;
        const int64_t m = a->shape[0], n = b->shape[0];
        if (moe4j_status s = check.shape(*b, "b", {n, a->shape[1]}, "[N, K] with the K of 'a'")) return s;
        if (moe4j_status s = check_row_scales(check, sfb, "sfb", n)) return s;
        if (moe4j_status s = check.tensor(d, {"d", {MOE4J_F32}, 2, Layout::RowsDense})) return s;
        if (moe4j_status s = check.shape(*d, "d", {m, n}, "[M, N]")) return s;
        if (moe4j_status s = check.no_overlap(*d, "d", *a, "a")) return s;
        if (moe4j_status s = check.no_overlap(*d, "d", *b, "b")) return s;
        if (moe4j_status s = check.no_overlap(*d, "d", *sfb, "sfb")) return s;
#if MOE4J_WITH_CUDA
        if (ctx->backend == MOE4J_BACKEND_CUDA)
            return cuda::run(fn, ctx, [&](const cuda::Call &on) { return cuda::q8_gemm(on, *a, *b, *sfb, *d); });
#endif
        cpu::q8_gemm(ctx, *a, *b, *sfb, *d);
        count_cpu(ctx, fn, CpuCode::NoAvx512F);
        return MOE4J_OK;
    });
}
