// Int8 GEMM entry points (the LM head's weight quantization and product): validation shared by all backends, then
// dispatch.
#include <string>

#include "../core/context.h"
#include "../core/error.h"
#include "../core/validate.h"
#include "../core/variants.h"
#include "../cpu/q8_gemm.h"
#include "gemm_args.h"
#if MOE4J_WITH_CUDA
#include "../cuda/cuda_backend.h"
#endif

using namespace moe4j;

namespace {

// A per-row scale vector [n]: F32, contiguous.
moe4j_status check_row_scales(const ArgCheck &check, const moe4j_tensor *t, const char *name, int64_t n) {
    if (moe4j_status s = check.tensor(t, {name, {MOE4J_F32}, 1, Layout::RowsDense})) return s;
    return check.shape(*t, name, {n}, "one scale per weight row");
}

}  // namespace

extern "C" moe4j_status moe4j_quantize_q8_weights(moe4j_context *ctx, const moe4j_tensor *w, moe4j_tensor *q,
                                                  moe4j_tensor *scales) {
    return guarded(__func__, [&](const char *fn) -> moe4j_status {
        if (moe4j_status s = begin_kernel(fn, ctx)) return s;
        const ArgCheck check(fn, ctx->memory_device());
        if (moe4j_status s = check.tensor(w, {"w", {MOE4J_F32, MOE4J_BF16}, 2, Layout::RowsDense})) return s;
        int64_t k = 0;
        if (moe4j_status s = check_k(check, *w, "w", &k)) return s;
        const int64_t n = w->shape[0];
        if (n % 16 != 0)
            return check.invalid("argument 'w': N = " + std::to_string(n) +
                                 " is not a multiple of 16, the rows of a Q8_P16 panel");
        if (moe4j_status s = check.tensor(q, {"q", {MOE4J_Q8_P16}, 2, Layout::RowsDense})) return s;
        if (moe4j_status s = check.shape(*q, "q", {n, k}, "the shape of 'w'")) return s;
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
        if (moe4j_status s = begin_kernel(fn, ctx)) return s;
        const ArgCheck check(fn, ctx->memory_device());
        if (moe4j_status s = check.tensor(a, {"a", {MOE4J_F32, MOE4J_BF16}, 2, Layout::RowsDense})) return s;
        int64_t k = 0;
        if (moe4j_status s = check_k(check, *a, "a", &k)) return s;
        if (moe4j_status s = check.tensor(b, {"b", {MOE4J_Q8_P16}, 2, Layout::RowsDense})) return s;
        const int64_t m = a->shape[0], n = b->shape[0];
        if (moe4j_status s = check.shape(*b, "b", {n, k}, "[N, K] with the K of 'a'")) return s;
        if (moe4j_status s = check_row_scales(check, sfb, "sfb", n)) return s;
        if (moe4j_status s = check.tensor(d, {"d", {MOE4J_F32}, 2, Layout::RowsDense})) return s;
        if (moe4j_status s = check.shape(*d, "d", {m, n}, "[M, N]")) return s;
        if (moe4j_status s = check_output(check, *d, {{a, "a"}, {b, "b"}, {sfb, "sfb"}})) return s;
#if MOE4J_WITH_CUDA
        if (ctx->backend == MOE4J_BACKEND_CUDA)
            return cuda::run(fn, ctx, [&](const cuda::Call &on) { return cuda::q8_gemm(on, *a, *b, *sfb, *d); });
#endif
        cpu::q8_gemm(ctx, *a, *b, *sfb, *d);
        count_cpu(ctx, fn, CpuCode::NoAvx512F);
        return MOE4J_OK;
    });
}
