// RoPE on CUDA, one thread block per (token, head) row and one thread per pair, the CPU's arithmetic: cos and sin in
// double rounded to float, every product and sum an explicitly rounded intrinsic (nvcc would otherwise contract
// them into fused multiply-adds). CUDA's double cos and sin are within 2 ulp, so the float tables match the CPU's
// except where a double result lies within that of a float rounding boundary.
#include <cuda_runtime.h>

#include "cuda_backend.h"
#include "cuda_state.h"
#include "device_views.cuh"
#include "fp8_device.cuh"

namespace moe4j::cuda {
namespace {

constexpr int kThreads = 64;

// A negative position is flagged (by the token's first head) and rotated as it is: it addresses no memory.
__global__ void rope_kernel(Rows x, const int32_t *positions, int64_t position_stride, const float *freqs,
                            int64_t freq_stride, float rotation_scale, Rows out, int64_t heads, FaultSink faults) {
    const int64_t row = blockIdx.x, pairs = x.length / 2;
    const int32_t p = positions[(row / heads) * position_stride];
    if (p < 0 && row % heads == 0 && threadIdx.x == 0) report(faults, Fault::PositionNegative, row / heads, p);
    const auto position = static_cast<float>(p);
    const char *xs = x.row(row);
    char *ys = out.row(row);
    for (int64_t i = threadIdx.x; i < pairs; i += kThreads) {
        const float angle = __fmul_rn(position, freqs[i * freq_stride]);
        const float c = __fmul_rn(static_cast<float>(cos(static_cast<double>(angle))), rotation_scale);
        const float s = __fmul_rn(static_cast<float>(sin(static_cast<double>(angle))), rotation_scale);
        const float re = load_float(xs, 2 * i, x.dtype), im = load_float(xs, 2 * i + 1, x.dtype);
        store_float(ys, 2 * i, out.dtype, __fsub_rn(__fmul_rn(re, c), __fmul_rn(im, s)));
        store_float(ys, 2 * i + 1, out.dtype, __fadd_rn(__fmul_rn(re, s), __fmul_rn(im, c)));
    }
}

}  // namespace

moe4j_status rope(const Call &call, const moe4j_tensor &x, const moe4j_tensor &positions, const moe4j_tensor &freqs,
                  float rotation_scale, const moe4j_tensor &out) {
    const int64_t rows = x.shape[0] * x.shape[1];
    if (rows > 0) {  // rows of zero pairs still check their positions
        rope_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream(call)>>>(
            Rows::of(x), static_cast<const int32_t *>(positions.data), positions.strides[0],
            static_cast<const float *>(freqs.data), freqs.strides[0], rotation_scale, Rows::of(out), x.shape[1],
            fault_sink(call));
        if (moe4j_status s = launched(call)) return s;
    }
    count_variant(call, "simple", "");
    return MOE4J_OK;
}

}  // namespace moe4j::cuda
