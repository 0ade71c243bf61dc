// RMSNorm on CUDA, one warp per row, bit for bit the CPU's arithmetic: lanes 0..15 accumulate the squares of
// elements l, l + 16, ... by fused multiply-adds, the shuffles add them pairwise as the CPU does (l + 8, + 4, + 2,
// + 1), and every other operation is an explicitly rounded intrinsic so that nvcc cannot contract it.
#include <cuda_runtime.h>

#include "cuda_backend.h"
#include "cuda_state.h"
#include "device_views.cuh"
#include "fp8_device.cuh"

namespace moe4j::cuda {
namespace {

constexpr int kWarp = 32, kLanes = 16;

__global__ void rms_norm_kernel(Rows x, Rows residual, bool has_residual, const float *weight, float eps, Rows sum_out,
                                bool has_sum, Rows y) {
    const int64_t t = blockIdx.x, d = x.length;
    const char *xs = x.row(t);
    const float *r = has_residual ? reinterpret_cast<const float *>(residual.row(t)) : nullptr;
    const int lane = threadIdx.x;
    float acc = 0.0f;
    if (lane < kLanes)
        for (int64_t i = lane; i < d; i += kLanes) {
            const float v = r != nullptr ? __fadd_rn(load_float(xs, i, x.dtype), r[i]) : load_float(xs, i, x.dtype);
            acc = fmaf(v, v, acc);
        }
    for (int width = kLanes / 2; width >= 1; width /= 2)
        acc = __fadd_rn(acc, __shfl_down_sync(0xFFFFFFFFu, acc, width));
    // Every read of x and residual above happens before any write below (sum_out may be either of them).
    const float squares = __shfl_sync(0xFFFFFFFFu, acc, 0);
    const float mean = __fadd_rn(__fdiv_rn(squares, static_cast<float>(d)), eps);
    const auto inv = static_cast<float>(1.0 / sqrt(static_cast<double>(mean)));
    float *s = has_sum ? reinterpret_cast<float *>(sum_out.row(t)) : nullptr;
    char *ys = y.row(t);
    for (int64_t i = lane; i < d; i += kWarp) {
        const float v = r != nullptr ? __fadd_rn(load_float(xs, i, x.dtype), r[i]) : load_float(xs, i, x.dtype);
        if (s != nullptr) s[i] = v;
        store_float(ys, i, y.dtype, __fmul_rn(__fmul_rn(v, inv), weight[i]));
    }
}

}  // namespace

moe4j_status rms_norm(const Call &call, const moe4j_tensor &x, const moe4j_tensor *residual, const moe4j_tensor &weight,
                      float eps, const moe4j_tensor *sum_out, const moe4j_tensor &y) {
    const int64_t rows = x.shape[0];
    if (rows > 0) {
        rms_norm_kernel<<<static_cast<unsigned>(rows), kWarp, 0, stream(call)>>>(
            Rows::of(x), residual != nullptr ? Rows::of(*residual) : Rows{}, residual != nullptr,
            static_cast<const float *>(weight.data), eps, sum_out != nullptr ? Rows::of(*sum_out) : Rows{},
            sum_out != nullptr, Rows::of(y));
        if (moe4j_status s = launched(call)) return s;
    }
    count_variant(call, "simple", "");
    return MOE4J_OK;
}

}  // namespace moe4j::cuda
