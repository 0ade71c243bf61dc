// moe4j_fp8_expert_ffn_contiguous: validation shared by all backends, then dispatch.
#include <string>

#include "../core/context.h"
#include "../core/error.h"
#include "../core/validate.h"
#include "../core/variants.h"
#include "../cpu/expert_ffn.h"
#include "gemm_args.h"
#if MOE4J_WITH_CUDA
#include "../cuda/cuda_backend.h"
#endif

using namespace moe4j;

extern "C" moe4j_status moe4j_fp8_expert_ffn_contiguous(moe4j_context *ctx, const moe4j_tensor *x,
                                                        const moe4j_tensor *sfx, const moe4j_fp8_weight_groups *w_gate,
                                                        const moe4j_fp8_weight_groups *w_up,
                                                        const moe4j_fp8_weight_groups *w_down,
                                                        const moe4j_tensor *grouped_layout, int32_t alignment,
                                                        moe4j_tensor *d) {
    return guarded(__func__, [&](const char *fn) -> moe4j_status {
        if (moe4j_status s = begin_kernel(fn, ctx)) return s;
        const ArgCheck check(fn, ctx->memory_device());
        int64_t hidden = 0, groups = 0, inter = 0, up_groups = 0, up_inter = 0, down_groups = 0, down_n = 0;
        if (moe4j_status s = check.tensor(x, {"x", {MOE4J_E4M3}, 2, Layout::RowsDense})) return s;
        if (moe4j_status s = check_k(check, *x, "x", &hidden)) return s;
        const int64_t rows = x->shape[0];
        if (moe4j_status s = check.tensor(sfx, {"sfx", {MOE4J_F32}, 2, Layout::Strided})) return s;
        if (moe4j_status s = check.shape(*sfx, "sfx", {rows, hidden / kScaleBlock}, "[S, H/128]")) return s;
        if (moe4j_status s = check_weight_groups(check, w_gate, "w_gate", hidden, -1, -1, "", &groups, &inter))
            return s;
        if (inter % kScaleBlock != 0)
            return check.invalid("argument 'w_gate': intermediate size " + std::to_string(inter) +
                                 " is not a multiple of 128 (the down projection's K)");
        if (moe4j_status s = check_weight_groups(check, w_up, "w_up", hidden, groups, inter, "[I, H] as 'w_gate'",
                                                 &up_groups, &up_inter))
            return s;
        for (int64_t g = 0; g < groups; ++g)  // both validated: same count
            if (w_up->weights[g].dtype != w_gate->weights[g].dtype)
                return check.group(g).invalid(check.group(g).argument("w_up") + ": dtype " +
                                              dtype_name(w_up->weights[g].dtype) + " differs from 'w_gate' (" +
                                              dtype_name(w_gate->weights[g].dtype) +
                                              "): gate and up weights are both packed or both not");
        if (moe4j_status s =
                check_weight_groups(check, w_down, "w_down", inter, groups, hidden,
                                    "[H, I] with the H of 'x' and the I of 'w_gate'", &down_groups, &down_n))
            return s;
        if (moe4j_status s = check.tensor(grouped_layout, {"grouped_layout", {MOE4J_I32}, 1, Layout::Strided}))
            return s;
        if (moe4j_status s = check.shape(*grouped_layout, "grouped_layout", {rows}, "one group id per row of 'x'"))
            return s;
        if (moe4j_status s = check.tensor(d, {"d", {MOE4J_F32, MOE4J_BF16}, 2, Layout::RowsDense})) return s;
        if (moe4j_status s = check.shape(*d, "d", {rows, hidden}, "[S, H]")) return s;
        if (moe4j_status s = check_output(check, *d, {{x, "x"}, {sfx, "sfx"}, {grouped_layout, "grouped_layout"}}))
            return s;
        if (moe4j_status s = check_output_groups(check, *d, *w_gate, "w_gate")) return s;
        if (moe4j_status s = check_output_groups(check, *d, *w_up, "w_up")) return s;
        if (moe4j_status s = check_output_groups(check, *d, *w_down, "w_down")) return s;

        if (moe4j_status s = check_alignment(check, rows, alignment, "grouped_layout")) return s;
#if MOE4J_WITH_CUDA
        if (ctx->backend == MOE4J_BACKEND_CUDA) {
            const cuda::ExpertFfnCall call{x,      sfx,   w_gate,         w_up,      w_down, groups,
                                           hidden, inter, grouped_layout, alignment, d};
            return cuda::run(fn, ctx, [&](const cuda::Call &on) { return cuda::expert_ffn(on, call); });
        }
#endif
        cpu::ExpertFfnArgs args{x, inter, {}, {}, {}};
        args.gate = {x, sfx, nullptr, nullptr, inter, hidden, weight_groups(ctx, *w_gate), {}};
        if (moe4j_status s = read_contiguous_layout(ctx, check, *grouped_layout, alignment, &args.gate)) return s;
        args.up = {x, sfx, nullptr, nullptr, inter, hidden, weight_groups(ctx, *w_up), args.gate.zero_rows};
        args.down = {nullptr, nullptr, nullptr, d, hidden, inter, weight_groups(ctx, *w_down), args.gate.zero_rows};
        for (int64_t g = 0; g < groups; ++g) {
            args.up.groups[g].rows = args.gate.groups[g].rows;
            args.down.groups[g].rows = args.gate.groups[g].rows;
        }
        const cpu::ExpertFfnKernels kernels = cpu::expert_ffn(ctx, args);
        count_cpu(ctx, fn, CpuCode::EveryPath, kernels.gate_up, "gate_up");
        count_cpu(ctx, fn, CpuCode::EveryPath, kernels.down, "down");
        return MOE4J_OK;
    });
}
