#include "expert_ffn.h"

#include "../core/context.h"
#include "../core/views.h"

namespace moe4j::cpu {

ExpertFfnKernels expert_ffn(moe4j_context *ctx, ExpertFfnArgs &args) {
    const int64_t rows = args.x->shape[0], inter = args.intermediate, blocks = inter / 128;
    // The intermediate h [rows, inter] e4m3 and its scales [rows, inter / 128], in the context's workspace.
    uint8_t *h = ctx->workspace.take<uint8_t>(rows * inter, "the expert FFN's intermediate activations");
    float *h_scales = ctx->workspace.take<float>(rows * blocks, "the expert FFN's intermediate scales");
    const char *gate_up = fp8_gate_up_silu(ctx, args.gate, args.up, h, h_scales);
    const moe4j_tensor h_t = dense_matrix(h, MOE4J_E4M3, rows, inter, MOE4J_HOST_MEMORY);
    const moe4j_tensor h_scales_t = dense_matrix(h_scales, MOE4J_F32, rows, blocks, MOE4J_HOST_MEMORY);

    // Rows outside every group (contiguous-layout padding) are never read: the down GEMM zeroes their outputs.
    args.down.a = &h_t;
    args.down.sfa = &h_scales_t;
    return {gate_up, fp8_gemm(ctx, args.down)};
}

}  // namespace moe4j::cpu
