// SiLU(gate) * up on CUDA, one thread per element, the CPU's exp polynomial (core/exp_poly.h) bit for bit: fmaf where
// the CPU fuses, explicitly rounded intrinsics everywhere else (nvcc would otherwise contract them).
#include <cuda_runtime.h>

#include <string>

#include "../core/exp_poly.h"
#include "cuda_backend.h"
#include "cuda_state.h"
#include "device_views.cuh"
#include "fp8_device.cuh"

namespace moe4j::cuda {
namespace {

constexpr int kThreads = 256;

__device__ inline float exp_poly(float x) {
    x = x > kExpMin ? x : kExpMin;  // NaN -> kExpMin, as on the CPU
    x = x < kExpMax ? x : kExpMax;
    const float n = rintf(__fmul_rn(x, kLog2e));
    float r = fmaf(n, -kLn2High, x);
    r = fmaf(n, -kLn2Low, r);
    float p = kExpP0;
    p = fmaf(p, r, kExpP1);
    p = fmaf(p, r, kExpP2);
    p = fmaf(p, r, kExpP3);
    p = fmaf(p, r, kExpP4);
    p = fmaf(p, r, kExpP5);
    const float y = __fadd_rn(fmaf(p, __fmul_rn(r, r), r), 1.0f);
    return __fmul_rn(y, __uint_as_float(static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23));
}

__global__ void silu_mul_kernel(Rows gate, Rows up, Rows out) {
    const int64_t row = blockIdx.x, i = static_cast<int64_t>(blockIdx.y) * kThreads + threadIdx.x;
    if (i >= out.length) return;
    const float a = load_float(gate.row(row), i, gate.dtype);
    const float silu = __fdiv_rn(a, __fadd_rn(1.0f, exp_poly(-a)));
    store_float(out.row(row), i, out.dtype, __fmul_rn(silu, load_float(up.row(row), i, up.dtype)));
}

}  // namespace

moe4j_status silu_mul(const Call &call, const moe4j_tensor &gate, const moe4j_tensor &up, const moe4j_tensor &out) {
    const int64_t rows = out.shape[0], width = out.shape[1];
    const int64_t blocks = (width + kThreads - 1) / kThreads;
    if (blocks > 65535)  // CUDA's grid y limit
        return fail(MOE4J_ERROR_UNSUPPORTED, std::string(call.function()) + ": N = " + std::to_string(width) +
                                                 " exceeds the CUDA kernel's limit of 65535 x 256 columns");
    if (rows > 0 && width > 0) {
        const dim3 grid(static_cast<unsigned>(rows), static_cast<unsigned>(blocks));
        silu_mul_kernel<<<grid, kThreads, 0, stream(call)>>>(Rows::of(gate), Rows::of(up), Rows::of(out));
        if (moe4j_status s = launched(call)) return s;
    }
    count_variant(call, "simple", "");
    return MOE4J_OK;
}

}  // namespace moe4j::cuda
