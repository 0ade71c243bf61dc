// The fused FP8 expert FFN on CUDA, simple version: the gate and up GEMMs into fp32 device scratch, SiLU(gate) * up,
// per-token FP8 quantization of the product, the down GEMM; the same steps as the CPU kernel.
#include <cuda_runtime.h>

#include "../core/views.h"
#include "cuda_backend.h"
#include "cuda_state.h"

namespace moe4j::cuda {
namespace {

__global__ void silu_mul_kernel(float *gate, const float *up, int64_t count) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < count) gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

}  // namespace

moe4j_status expert_ffn(const char *fn, moe4j_context *ctx, cpu::ExpertFfnArgs &args) {
    const int64_t rows = args.x->shape[0], inter = args.intermediate, blocks = inter / 128;
    if (rows == 0) return MOE4J_OK;
    DeviceBuffer gate, up, h, h_scales;
    const size_t values = static_cast<size_t>(rows * inter);
    if (moe4j_status s = gate.allocate(fn, values * 4)) return s;
    if (moe4j_status s = up.allocate(fn, values * 4)) return s;
    if (moe4j_status s = h.allocate(fn, values)) return s;
    if (moe4j_status s = h_scales.allocate(fn, static_cast<size_t>(rows * blocks) * 4)) return s;
    const moe4j_tensor gate_t = dense_matrix(gate.data(), MOE4J_F32, rows, inter, ctx->device);
    const moe4j_tensor up_t = dense_matrix(up.data(), MOE4J_F32, rows, inter, ctx->device);
    const moe4j_tensor h_t = dense_matrix(h.data(), MOE4J_E4M3, rows, inter, ctx->device);
    const moe4j_tensor h_scales_t = dense_matrix(h_scales.data(), MOE4J_F32, rows, blocks, ctx->device);

    args.gate.d = &gate_t;
    args.up.d = &up_t;
    if (moe4j_status s = fp8_gemm(fn, ctx, args.gate)) return s;  // padding rows become 0, and SiLU(0) * 0 = 0
    if (moe4j_status s = fp8_gemm(fn, ctx, args.up)) return s;
    const int64_t count = rows * inter;
    silu_mul_kernel<<<static_cast<unsigned>((count + 255) / 256), 256, 0, ctx->cuda->stream>>>(
        gate.as<float>(), up.as<const float>(), count);
    if (moe4j_status s = finish(fn, ctx)) return s;
    if (moe4j_status s = quantize(fn, ctx, gate_t, h_t, h_scales_t, 1, false)) return s;
    args.down.a = &h_t;
    args.down.sfa = &h_scales_t;
    return fp8_gemm(fn, ctx, args.down);
}

}  // namespace moe4j::cuda
