// SiLU·mul entry point: validation shared by all backends, then dispatch.
#include "../cpu/activation.h"
#include "../core/context.h"
#include "../core/error.h"
#include "../core/validate.h"
#include "../core/variants.h"
#if MOE4J_WITH_CUDA
#include "../cuda/cuda_backend.h"
#endif

using namespace moe4j;

extern "C" moe4j_status moe4j_silu_mul(moe4j_context *ctx, const moe4j_tensor *gate, const moe4j_tensor *up,
                                       moe4j_tensor *out) {
    return guarded(__func__, [&](const char *fn) -> moe4j_status {
        if (moe4j_status s = begin_kernel(fn, ctx)) return s;
        const ArgCheck check(fn, ctx->memory_device());
        if (moe4j_status s = check.tensor(gate, {"gate", {MOE4J_F32, MOE4J_BF16}, 2, Layout::RowsDense})) return s;
        const int64_t tokens = gate->shape[0], width = gate->shape[1];
        if (moe4j_status s = check.tensor(up, {"up", {MOE4J_F32, MOE4J_BF16}, 2, Layout::RowsDense})) return s;
        if (moe4j_status s = check.shape(*up, "up", {tokens, width}, "[T, N] like 'gate'")) return s;
        if (moe4j_status s = check.tensor(out, {"out", {MOE4J_F32, MOE4J_BF16}, 2, Layout::RowsDense})) return s;
        if (moe4j_status s = check.shape(*out, "out", {tokens, width}, "[T, N] like 'gate'")) return s;
        if (!same_view(*out, *gate))
            if (moe4j_status s = check.no_overlap(*out, "out", *gate, "gate")) return s;
        if (!same_view(*out, *up))
            if (moe4j_status s = check.no_overlap(*out, "out", *up, "up")) return s;
#if MOE4J_WITH_CUDA
        if (ctx->backend == MOE4J_BACKEND_CUDA)
            return cuda::run(fn, ctx, [&](const cuda::Call &on) { return cuda::silu_mul(on, *gate, *up, *out); });
#endif
        cpu::silu_mul(ctx, *gate, *up, *out);
        count_cpu(ctx, fn, CpuCode::EveryPath);
        return MOE4J_OK;
    });
}
