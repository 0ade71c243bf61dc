#include "expert_ffn.h"

#include "../core/context.h"
#include "../core/views.h"

namespace moe4j::cpu {

namespace {

int64_t round_up16(int64_t n) { return (n + 15) / 16 * 16; }

}  // namespace

ExpertFfnKernels expert_ffn(moe4j_context *ctx, ExpertFfnArgs &args) {
    const int64_t rows = args.x->shape[0], inter = args.intermediate, blocks = inter / 128;
    // Scratch from the context, reused across calls: h [rows, inter] e4m3, its scales [rows, inter / 128], then the
    // fused pass's per-worker tiles.
    const int64_t h_floats = round_up16((rows * inter + 3) / 4), scale_floats = round_up16(rows * blocks);
    const int64_t work_floats = fp8_gate_up_scratch_floats(ctx, args.gate);
    float *scratch = ctx->host_scratch_for(static_cast<size_t>(h_floats + scale_floats + work_floats),
                                           "the expert FFN's intermediate activations");
    uint8_t *h = reinterpret_cast<uint8_t *>(scratch);
    float *h_scales = scratch + h_floats;
    const char *gate_up = fp8_gate_up_silu(ctx, args.gate, args.up, h, h_scales, h_scales + scale_floats);
    const moe4j_tensor h_t = dense_matrix(h, MOE4J_E4M3, rows, inter, MOE4J_HOST_MEMORY);
    const moe4j_tensor h_scales_t = dense_matrix(h_scales, MOE4J_F32, rows, blocks, MOE4J_HOST_MEMORY);

    // Rows outside every group (contiguous-layout padding) are never read: the down GEMM zeroes their outputs.
    args.down.a = &h_t;
    args.down.sfa = &h_scales_t;
    return {gate_up, fp8_gemm(ctx, args.down)};
}

}  // namespace moe4j::cpu
