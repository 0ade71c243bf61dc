#include "expert_ffn.h"

#include <algorithm>

#include "../core/context.h"
#include "../core/views.h"
#include "quantize.h"

namespace moe4j::cpu {

namespace {

int64_t round_up16(int64_t n) { return (n + 15) / 16 * 16; }

// The unfused form, for calls fp8_gate_up_silu declines (groups on the packed-panel kernel): gate and up GEMMs into
// f32 buffers, SiLU(gate) * up over the real rows, then quantize_fp8 into h. Buffers come from `gate_up`, which holds
// 2 * rows * inter floats.
const char *gate_up_unfused(moe4j_context *ctx, ExpertFfnArgs &args, float *gate_up, const moe4j_tensor &h_t,
                            const moe4j_tensor &h_scales_t) {
    const int64_t rows = args.x->shape[0], inter = args.intermediate;
    float *gate = gate_up, *up = gate_up + rows * inter;
    const moe4j_tensor gate_t = dense_matrix(gate, MOE4J_F32, rows, inter, MOE4J_HOST_MEMORY);
    const moe4j_tensor up_t = dense_matrix(up, MOE4J_F32, rows, inter, MOE4J_HOST_MEMORY);
    args.gate.d = &gate_t;
    args.up.d = &up_t;
    const char *kernel = fp8_gemm(ctx, args.gate);  // padding rows of gate and up are zeroed, so h is 0 there
    fp8_gemm(ctx, args.up);
    for (const GemmGroup &group : args.gate.groups) {
        parallel_for(*ctx->pool, static_cast<int64_t>(group.rows.size()), grain_for(inter * 16),
                     [&](int64_t begin, int64_t end) {
                         for (int64_t i = begin; i < end; ++i) {
                             float *g = gate + group.rows[static_cast<size_t>(i)] * inter;
                             const float *u = up + group.rows[static_cast<size_t>(i)] * inter;
                             for (int64_t j = 0; j < inter; ++j) g[j] = silu_times(g[j], u[j]);
                         }
                     });
    }
    quantize_fp8(ctx, gate_t, h_t, h_scales_t, 1, false);
    return kernel;
}

}  // namespace

ExpertFfnKernels expert_ffn(moe4j_context *ctx, ExpertFfnArgs &args) {
    const int64_t rows = args.x->shape[0], inter = args.intermediate, blocks = inter / 128;
    // Scratch from the context, reused across calls: h [rows, inter] e4m3, its scales [rows, inter / 128], then
    // `work` floats: the fused pass's per-worker tiles, or the unfused form's f32 gate and up.
    const int64_t h_floats = round_up16((rows * inter + 3) / 4), scale_floats = round_up16(rows * blocks);
    uint8_t *h = nullptr;
    float *h_scales = nullptr, *work = nullptr;
    const auto reserve = [&](int64_t work_floats) {
        const size_t needed = static_cast<size_t>(h_floats + scale_floats + work_floats);
        float *scratch = ctx->host_scratch_for(needed, "the expert FFN's intermediate activations");
        h = reinterpret_cast<uint8_t *>(scratch);
        h_scales = scratch + h_floats;
        work = h_scales + scale_floats;
    };
    reserve(fp8_gate_up_scratch_floats(ctx, args.gate));
    const bool fused = fp8_gate_up_silu(ctx, args.gate, args.up, h, h_scales, work);
    if (!fused) reserve(2 * rows * inter);
    const moe4j_tensor h_t = dense_matrix(h, MOE4J_E4M3, rows, inter, MOE4J_HOST_MEMORY);
    const moe4j_tensor h_scales_t = dense_matrix(h_scales, MOE4J_F32, rows, blocks, MOE4J_HOST_MEMORY);
    const char *gate_up = "fused gate/up pass, row kernel";
    if (!fused) gate_up = gate_up_unfused(ctx, args, work, h_t, h_scales_t);

    // Rows outside every group (contiguous-layout padding) are never read: the down GEMM zeroes their outputs.
    args.down.a = &h_t;
    args.down.sfa = &h_scales_t;
    return {gate_up, fp8_gemm(ctx, args.down)};
}

}  // namespace moe4j::cpu
