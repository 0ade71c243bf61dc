// FP8 quantization entry points: validation shared by all backends, then dispatch.
#include <string>

#include "../core/context.h"
#include "../core/error.h"
#include "../core/validate.h"
#include "../core/variants.h"
#include "../cpu/quantize.h"
#if MOE4J_WITH_CUDA
#include "../cuda/cuda_backend.h"
#endif

using namespace moe4j;

namespace {

constexpr int64_t kBlock = 128;

moe4j_status check_scale_format(const ArgCheck &check, int32_t scale_format) {
    if (scale_format == MOE4J_SCALE_FP32 || scale_format == MOE4J_SCALE_UE8M0) return MOE4J_OK;
    return check.invalid("argument 'scale_format': " + std::to_string(scale_format) +
                         " is neither MOE4J_SCALE_FP32 (0) nor MOE4J_SCALE_UE8M0 (1)");
}

// Shared by per-token (block_rows 1) and per-block (block_rows 128) quantization.
moe4j_status quantize(const char *fn, moe4j_context *ctx, const moe4j_tensor *x, const char *x_name, moe4j_tensor *q,
                      moe4j_tensor *scales, const char *scales_name, int64_t block_rows, int32_t scale_format) {
    if (moe4j_status s = begin_kernel(fn, ctx)) return s;
    const ArgCheck check(fn, ctx->memory_device());
    if (moe4j_status s = check_scale_format(check, scale_format)) return s;
    if (moe4j_status s = check.tensor(x, {x_name, {MOE4J_F32, MOE4J_BF16}, 2, Layout::RowsDense})) return s;
    if (moe4j_status s = check.tensor(q, {"q", {MOE4J_E4M3}, 2, Layout::RowsDense})) return s;
    if (moe4j_status s = check.tensor(scales, {scales_name, {MOE4J_F32}, 2, Layout::Strided})) return s;
    const int64_t rows = x->shape[0], cols = x->shape[1];
    const char *same_as_x = block_rows == 1 ? "the shape of 'x'" : "the shape of 'w'";
    if (moe4j_status s = check.shape(*q, "q", {rows, cols}, same_as_x)) return s;
    const char *why =
        block_rows == 1 ? "one scale per row and 128 columns, rounded up" : "one scale per 128x128 block, rounded up";
    if (moe4j_status s = check.shape(*scales, scales_name, {ceil_div(rows, block_rows), ceil_div(cols, kBlock)}, why))
        return s;
    if (moe4j_status s = check.no_overlap(*q, "q", *x, x_name)) return s;
    if (moe4j_status s = check.no_overlap(*scales, scales_name, *x, x_name)) return s;
    if (moe4j_status s = check.no_overlap(*scales, scales_name, *q, "q")) return s;
    const bool ue8m0 = scale_format == MOE4J_SCALE_UE8M0;
#if MOE4J_WITH_CUDA
    if (ctx->backend == MOE4J_BACKEND_CUDA)
        return cuda::run(fn, ctx,
                         [&](const cuda::Call &on) { return cuda::quantize(on, *x, *q, *scales, block_rows, ue8m0); });
#endif
    cpu::quantize_fp8(ctx, *x, *q, *scales, block_rows, ue8m0);
    count_cpu(ctx, fn, CpuCode::NoAvx512F);
    return MOE4J_OK;
}

}  // namespace

extern "C" moe4j_status moe4j_quantize_fp8_per_token(moe4j_context *ctx, const moe4j_tensor *x, moe4j_tensor *q,
                                                     moe4j_tensor *scales, int32_t scale_format) {
    return guarded(__func__,
                   [&](const char *fn) { return quantize(fn, ctx, x, "x", q, scales, "scales", 1, scale_format); });
}

extern "C" moe4j_status moe4j_quantize_fp8_per_block(moe4j_context *ctx, const moe4j_tensor *w, moe4j_tensor *q,
                                                     moe4j_tensor *scale_inv, int32_t scale_format) {
    return guarded(__func__, [&](const char *fn) {
        return quantize(fn, ctx, w, "w", q, scale_inv, "scale_inv", kBlock, scale_format);
    });
}

extern "C" moe4j_status moe4j_dequantize_fp8(moe4j_context *ctx, const moe4j_tensor *q, const moe4j_tensor *scales,
                                             int32_t block_rows, moe4j_tensor *out) {
    return guarded(__func__, [&](const char *fn) -> moe4j_status {
        if (moe4j_status s = begin_kernel(fn, ctx)) return s;
        const ArgCheck check(fn, ctx->memory_device());
        if (block_rows != 1 && block_rows != kBlock)
            return check.invalid("argument 'block_rows': " + std::to_string(block_rows) +
                                 " is neither 1 (per-token scales) nor 128 (block scales)");
        if (moe4j_status s = check.tensor(q, {"q", {MOE4J_E4M3}, 2, Layout::RowsDense})) return s;
        if (moe4j_status s = check.tensor(scales, {"scales", {MOE4J_F32}, 2, Layout::Strided})) return s;
        if (moe4j_status s = check.tensor(out, {"out", {MOE4J_F32, MOE4J_BF16}, 2, Layout::RowsDense})) return s;
        const int64_t rows = q->shape[0], cols = q->shape[1];
        if (moe4j_status s = check.shape(*scales, "scales", {ceil_div(rows, block_rows), ceil_div(cols, kBlock)},
                                         "blocks of block_rows x 128, rounded up"))
            return s;
        if (moe4j_status s = check.shape(*out, "out", {rows, cols}, "the shape of 'q'")) return s;
        if (moe4j_status s = check.no_overlap(*out, "out", *q, "q")) return s;
        if (moe4j_status s = check.no_overlap(*out, "out", *scales, "scales")) return s;
#if MOE4J_WITH_CUDA
        if (ctx->backend == MOE4J_BACKEND_CUDA)
            return cuda::run(fn, ctx,
                             [&](const cuda::Call &on) { return cuda::dequantize(on, *q, *scales, block_rows, *out); });
#endif
        cpu::dequantize_fp8(ctx, *q, *scales, block_rows, *out);
        count_cpu(ctx, fn, CpuCode::NoAvx512F);
        return MOE4J_OK;
    });
}
