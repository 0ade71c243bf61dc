// Logits statistics for sampling on CUDA: one block of 64 threads per row, thread l the CPU's lane l (elements l,
// l + 64, ... in order), the lanes added pairwise in shared memory as the CPU adds them, and the exponential of
// core/exp_double.h with fma where the CPU fuses and explicitly rounded intrinsics elsewhere: the same bits.
#include <cuda_runtime.h>

#include <cstdint>

#include "../core/exp_double.h"
#include "cuda_backend.h"
#include "cuda_state.h"
#include "device_views.cuh"

namespace moe4j::cuda {
namespace {

__device__ inline double exp_nonpositive(double x) {
    if (!(x >= kExpdMin)) return 0.0;
    const double k = rint(__dmul_rn(x, kExpdLog2e));
    double r = fma(-k, kExpdLn2High, x);
    r = fma(-k, kExpdLn2Low, r);
    double p = kExpd13;
    p = fma(p, r, kExpd12);
    p = fma(p, r, kExpd11);
    p = fma(p, r, kExpd10);
    p = fma(p, r, kExpd9);
    p = fma(p, r, kExpd8);
    p = fma(p, r, kExpd7);
    p = fma(p, r, kExpd6);
    p = fma(p, r, kExpd5);
    p = fma(p, r, kExpd4);
    p = fma(p, r, kExpd3);
    p = fma(p, r, kExpd2);
    p = fma(p, r, 1.0);
    p = fma(p, r, 1.0);
    return __dmul_rn(p, __longlong_as_double((static_cast<long long>(k) + 1023) << 52));
}

__global__ void logits_stats_kernel(Rows logits, int32_t *argmax, int64_t argmax_stride, float *sum_exp,
                                    int64_t sum_stride) {
    __shared__ float max_of[kSumLanes];
    __shared__ int64_t index_of[kSumLanes];
    __shared__ double lanes[kSumLanes];
    const int64_t b = blockIdx.x, n = logits.length;
    const int l = threadIdx.x;
    const float *x = reinterpret_cast<const float *>(logits.row(b));
    // The lane's first NaN or +Infinity, and its largest value with its first index.
    int64_t bad = n, best = n;
    float max = -INFINITY;
    for (int64_t i = l; i < n; i += kSumLanes) {
        const float v = x[i];
        if ((isnan(v) || v == INFINITY) && bad == n) bad = i;
        if (best == n || v > max) {
            max = v;
            best = i;
        }
    }
    index_of[l] = bad;
    __syncthreads();
    for (int s = kSumLanes / 2; s >= 1; s /= 2) {
        if (l < s && index_of[l + s] < index_of[l]) index_of[l] = index_of[l + s];
        __syncthreads();
    }
    const int64_t first_bad = index_of[0];
    __syncthreads();
    if (first_bad < n) {
        if (l == 0) {
            argmax[b * argmax_stride] = static_cast<int32_t>(first_bad);
            sum_exp[b * sum_stride] = NAN;
        }
        return;
    }
    max_of[l] = max;
    index_of[l] = best;
    __syncthreads();
    for (int s = kSumLanes / 2; s >= 1; s /= 2) {
        if (l < s) {
            const float other = max_of[l + s];
            const int64_t other_index = index_of[l + s];
            if (other > max_of[l] || (other == max_of[l] && other_index < index_of[l])) {
                max_of[l] = other;
                index_of[l] = other_index;
            }
        }
        __syncthreads();
    }
    const float m = max_of[0];
    if (m == -INFINITY) {
        if (l == 0) {
            argmax[b * argmax_stride] = 0;
            sum_exp[b * sum_stride] = 0.0f;
        }
        return;
    }
    double sum = 0.0;
    for (int64_t i = l; i < n; i += kSumLanes)
        sum = __dadd_rn(sum, exp_nonpositive(__dsub_rn(static_cast<double>(x[i]), static_cast<double>(m))));
    lanes[l] = sum;
    __syncthreads();
    for (int s = kSumLanes / 2; s >= 1; s /= 2) {
        if (l < s) lanes[l] = __dadd_rn(lanes[l], lanes[l + s]);
        __syncthreads();
    }
    if (l == 0) {
        argmax[b * argmax_stride] = static_cast<int32_t>(index_of[0]);
        sum_exp[b * sum_stride] = __double2float_rn(lanes[0]);
    }
}

}  // namespace

moe4j_status logits_stats(const Call &call, const moe4j_tensor &logits, const moe4j_tensor &argmax,
                          const moe4j_tensor &sum_exp) {
    const int64_t rows = logits.shape[0];
    if (rows > 0) {
        logits_stats_kernel<<<static_cast<unsigned>(rows), kSumLanes, 0, stream(call)>>>(
            Rows::of(logits), static_cast<int32_t *>(argmax.data), argmax.strides[0],
            static_cast<float *>(sum_exp.data), sum_exp.strides[0]);
        if (moe4j_status s = launched(call)) return s;
    }
    count_variant(call, "simple", "");
    return MOE4J_OK;
}

}  // namespace moe4j::cuda
