// RoPE entry point: validation shared by all backends, then dispatch. Position values are checked on the host for a
// CPU context and by the kernel for a CUDA one.
#include <cmath>
#include <string>

#include "../core/context.h"
#include "../core/error.h"
#include "../core/validate.h"
#include "../core/variants.h"
#include "../cpu/rope.h"
#if MOE4J_WITH_CUDA
#include "../cuda/cuda_backend.h"
#endif

using namespace moe4j;

extern "C" moe4j_status moe4j_rope(moe4j_context *ctx, const moe4j_tensor *x, const moe4j_tensor *positions,
                                   const moe4j_tensor *freqs, float rotation_scale, moe4j_tensor *out) {
    return guarded(__func__, [&](const char *fn) -> moe4j_status {
        if (moe4j_status s = begin_kernel(fn, ctx)) return s;
        const ArgCheck check(fn, ctx->memory_device());
        if (moe4j_status s = check.tensor(x, {"x", {MOE4J_F32, MOE4J_BF16}, 3, Layout::RowsDense})) return s;
        const int64_t tokens = x->shape[0], heads = x->shape[1], dims = x->shape[2];
        if (dims % 2 != 0)
            return check.invalid("argument 'x': R = " + std::to_string(dims) + " is odd (dims rotate in pairs)");
        if (moe4j_status s = check.tensor(positions, {"positions", {MOE4J_I32}, 1, Layout::Strided})) return s;
        if (moe4j_status s = check.shape(*positions, "positions", {tokens}, "one position per token of 'x'")) return s;
        if (moe4j_status s = check.tensor(freqs, {"freqs", {MOE4J_F32}, 1, Layout::Strided})) return s;
        if (moe4j_status s = check.shape(*freqs, "freqs", {dims / 2}, "[R/2]: one frequency per pair of 'x'")) return s;
        if (!std::isfinite(rotation_scale))
            return check.invalid("argument 'rotation_scale': " + std::to_string(rotation_scale) + " is not finite");
        if (moe4j_status s = check.tensor(out, {"out", {MOE4J_F32, MOE4J_BF16}, 3, Layout::RowsDense})) return s;
        if (moe4j_status s = check.shape(*out, "out", {tokens, heads, dims}, "[T, H, R] like 'x'")) return s;
        if (!same_view(*out, *x))
            if (moe4j_status s = check.no_overlap(*out, "out", *x, "x")) return s;
        if (moe4j_status s = check.no_overlap(*out, "out", *positions, "positions")) return s;
        if (moe4j_status s = check.no_overlap(*out, "out", *freqs, "freqs")) return s;
#if MOE4J_WITH_CUDA
        if (ctx->backend == MOE4J_BACKEND_CUDA)
            return cuda::run(fn, ctx, [&](const cuda::Call &on) {
                return cuda::rope(on, *x, *positions, *freqs, rotation_scale, *out);
            });
#endif
        const auto *values = static_cast<const int32_t *>(positions->data);
        for (int64_t t = 0; t < tokens; ++t)
            if (values[t * positions->strides[0]] < 0)
                return check.invalid("argument 'positions': entry " + std::to_string(t) + " is " +
                                     std::to_string(values[t * positions->strides[0]]) + ", must be >= 0");
        cpu::rope(ctx, *x, *positions, *freqs, rotation_scale, *out);
        count_cpu(ctx, fn, CpuCode::EveryPath);
        return MOE4J_OK;
    });
}
