// The fused FP8 expert FFN on CUDA: the gate and up GEMMs into fp32 scratch, SiLU(gate) * up, per-token FP8
// quantization of the product, the down GEMM; the same steps as the CPU kernel. All intermediates, the checked layout
// and the weight-group tables live in the context's scratch (no allocation per call); the three GEMMs share one
// check of the layout.
#include <cuda_runtime.h>

#include <string>

#include "../core/views.h"
#include "cuda_backend.h"
#include "cuda_state.h"
#include "fp8_gemm.cuh"

namespace moe4j::cuda {
namespace {

__global__ void silu_mul_kernel(float *gate, const float *up, int64_t count) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < count) gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

}  // namespace

moe4j_status expert_ffn(const Call &call, const ExpertFfnCall &args) {
    const int64_t rows = args.x->shape[0], inter = args.intermediate, hidden = args.hidden, blocks = inter / 128;
    if (rows > 0x7FFFFFFF || ceil_div(inter, kGemmBlock) > 65535 || ceil_div(hidden, kGemmBlock) > 65535)
        return fail(MOE4J_ERROR_UNSUPPORTED, std::string(call.function()) +
                                                 ": more than 2^31 - 1 rows, or N past 65535 x 128 columns, exceed "
                                                 "the CUDA kernels' grid limits");
    const LayoutSpec spec{RowLayout::Contiguous, rows, args.groups, args.grouped_layout, args.alignment, nullptr, 0};
    // gate and up run the same kernel: tuned only where both weight sets allow it
    std::string gate_up_refusal = tuned_refusal(call, *args.x, "x", args.gate->weights, args.groups, "w_gate");
    if (gate_up_refusal.empty())
        gate_up_refusal = tuned_refusal(call, *args.x, "x", args.up->weights, args.groups, "w_up");

    Scratch scratch;
    LayoutParts parts;
    parts.add(scratch, spec);
    const size_t gate_table = args.groups > 1 ? scratch.add<GroupWeights>(args.groups) : 0;
    const size_t up_table = args.groups > 1 ? scratch.add<GroupWeights>(args.groups) : 0;
    const size_t down_table = args.groups > 1 ? scratch.add<GroupWeights>(args.groups) : 0;
    const size_t gate_part = scratch.add<float>(rows * inter), up_part = scratch.add<float>(rows * inter);
    const size_t h_part = scratch.add<uint8_t>(rows * inter), h_scales_part = scratch.add<float>(rows * blocks);
    if (moe4j_status s = scratch.reserve(call)) return s;

    const moe4j_tensor gate_t = dense_matrix(scratch.at<float>(gate_part), MOE4J_F32, rows, inter, call.ctx()->device);
    const moe4j_tensor up_t = dense_matrix(scratch.at<float>(up_part), MOE4J_F32, rows, inter, call.ctx()->device);
    const moe4j_tensor h_t = dense_matrix(scratch.at<uint8_t>(h_part), MOE4J_E4M3, rows, inter, call.ctx()->device);
    const moe4j_tensor h_scales_t =
        dense_matrix(scratch.at<float>(h_scales_part), MOE4J_F32, rows, blocks, call.ctx()->device);
    const std::string down_refusal = tuned_refusal(call, h_t, "h", args.down->weights, args.groups, "w_down");
    const bool gate_up_tuned = gate_up_refusal.empty(), down_tuned = down_refusal.empty();

    GemmOperands gate = gemm_operands(*args.x, *args.sfx, nullptr, gate_t, inter, hidden);
    GemmOperands up = gemm_operands(*args.x, *args.sfx, nullptr, up_t, inter, hidden);
    GemmOperands down = gemm_operands(h_t, h_scales_t, nullptr, *args.d, hidden, inter);
    if (moe4j_status s =
            upload_groups(call, args.gate->weights, args.gate->scales, args.groups, scratch, gate_table, &gate))
        return s;
    if (moe4j_status s = upload_groups(call, args.up->weights, args.up->scales, args.groups, scratch, up_table, &up))
        return s;
    if (moe4j_status s =
            upload_groups(call, args.down->weights, args.down->scales, args.groups, scratch, down_table, &down))
        return s;
    RowGroups row_groups{};
    if (moe4j_status s = prepare_rows(call, spec, scratch, parts, gate_up_tuned || down_tuned, &row_groups)) return s;

    // Padding rows of gate and up become 0, and SiLU(0) * 0 = 0; the down GEMM zeroes them in d.
    if (moe4j_status s = launch_fp8_gemm(call, gate, row_groups, gate_up_tuned)) return s;
    if (moe4j_status s = launch_fp8_gemm(call, up, row_groups, gate_up_tuned)) return s;
    const int64_t values = rows * inter;
    if (values > 0) {
        silu_mul_kernel<<<static_cast<unsigned>((values + 255) / 256), 256, 0, stream(call)>>>(
            scratch.at<float>(gate_part), scratch.at<float>(up_part), values);
        if (moe4j_status s = launched(call)) return s;
    }
    launch_quantize(stream(call), gate_t, h_t, h_scales_t, 1, false);
    if (moe4j_status s = launched(call)) return s;
    if (moe4j_status s = launch_fp8_gemm(call, down, row_groups, down_tuned)) return s;
    count_variant(call, gate_up_tuned ? "tuned" : "simple", gate_up_refusal, "gate_up");
    count_variant(call, down_tuned ? "tuned" : "simple", down_refusal, "down");
    return MOE4J_OK;
}

}  // namespace moe4j::cuda
