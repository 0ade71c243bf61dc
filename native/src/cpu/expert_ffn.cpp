#include "expert_ffn.h"

#include <cmath>
#include <vector>

#include "../core/context.h"
#include "../core/views.h"
#include "quantize.h"

namespace moe4j::cpu {

void expert_ffn(moe4j_context *ctx, ExpertFfnArgs &args) {
    const int64_t rows = args.x->shape[0], inter = args.intermediate, blocks = inter / 128;
    std::vector<float> gate(static_cast<size_t>(rows * inter)), up(static_cast<size_t>(rows * inter));
    std::vector<uint8_t> h(static_cast<size_t>(rows * inter));
    std::vector<float> h_scales(static_cast<size_t>(rows * blocks));
    const moe4j_tensor gate_t = dense_matrix(gate.data(), MOE4J_F32, rows, inter, MOE4J_HOST_MEMORY);
    const moe4j_tensor up_t = dense_matrix(up.data(), MOE4J_F32, rows, inter, MOE4J_HOST_MEMORY);
    const moe4j_tensor h_t = dense_matrix(h.data(), MOE4J_E4M3, rows, inter, MOE4J_HOST_MEMORY);
    const moe4j_tensor h_scales_t = dense_matrix(h_scales.data(), MOE4J_F32, rows, blocks, MOE4J_HOST_MEMORY);

    args.gate.d = &gate_t;
    args.up.d = &up_t;
    fp8_gemm(ctx, args.gate);  // padding rows of gate and up are zeroed, so h is 0 there
    fp8_gemm(ctx, args.up);

    // h = SiLU(gate) * up, in fp32, into the gate buffer; only real rows (padding rows of gate are zero already,
    // and SiLU(0) * 0 = 0), since the exponentials dominate when experts get few tokens each.
    std::vector<int64_t> live;
    for (const GemmGroup &group : args.gate.groups) live.insert(live.end(), group.rows.begin(), group.rows.end());
    parallel_for(*ctx->pool, static_cast<int64_t>(live.size()), grain_for(inter * 16), [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
            float *g = gate.data() + live[static_cast<size_t>(i)] * inter;
            const float *u = up.data() + live[static_cast<size_t>(i)] * inter;
            for (int64_t j = 0; j < inter; ++j) g[j] = g[j] / (1.0f + std::exp(-g[j])) * u[j];
        }
    });
    quantize_fp8(ctx, gate_t, h_t, h_scales_t, 1, false);

    args.down.a = &h_t;
    args.down.sfa = &h_scales_t;
    fp8_gemm(ctx, args.down);
}

}  // namespace moe4j::cpu
