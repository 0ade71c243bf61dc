// The int8 GEMM and its weight quantization on CUDA: the CPU kernels' quantization (the same float operations, rounded
// explicitly) and sums (exact int32 dot products by dp4a on the stored bytes made signed again, then one fused
// multiply-add per 128-wide block in order and one product): the same bits. The simple versions: one thread per
// output, one block per quantized row segment.
#include <cuda_runtime.h>

#include <string>

#include "cuda_backend.h"
#include "cuda_state.h"
#include "device_views.cuh"
#include "fp8_device.cuh"

namespace moe4j::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int64_t kBlock = 128;

// The code of v in a segment of largest magnitude amax, as the CPU's quantize_q8 computes it.
__device__ int q8_code(float v, float amax) {
    if (!isfinite(amax) || amax == 0.0f) return 0;
    const float q = rintf(__fmul_rn(v, __fdiv_rn(127.0f, amax)));
    return static_cast<int>(fminf(fmaxf(q, -127.0f), 127.0f));
}

__device__ float q8_scale(float amax) {
    return !isfinite(amax) ? __int_as_float(0x7FC00000) : amax == 0.0f ? 0.0f : __fdiv_rn(amax, 127.0f);
}

// One CUDA block per weight row n (up to 2^31 - 1): the row's scale and its codes + 128 in the Q8_P16 layout.
__global__ void quantize_weights_kernel(Rows w, uint8_t *q, float *scales) {
    const int64_t n = blockIdx.x, k = w.length;
    const void *row = w.row(n);
    float amax = 0.0f;
    for (int64_t i = threadIdx.x; i < k; i += kThreads) amax = nan_max(amax, fabsf(load_float(row, i, w.dtype)));
    amax = block_max<kThreads>(amax);
    uint8_t *panel = q + (n / 16) * 16 * k + (n % 16) * 4;
    for (int64_t i = threadIdx.x; i < k; i += kThreads)
        panel[(i / 4) * 64 + i % 4] = static_cast<uint8_t>(q8_code(load_float(row, i, w.dtype), amax) + 128);
    if (threadIdx.x == 0) scales[n] = q8_scale(amax);
}

// One CUDA block per (row m on x, 128-wide block b on y): codes into xq [M, K], scales into sa [M, K/128].
__global__ void quantize_activations_kernel(Rows a, int8_t *xq, float *sa) {
    const int64_t m = blockIdx.x, b = blockIdx.y, k = b * kBlock + threadIdx.x, blocks = a.length / kBlock;
    const float v = load_float(a.row(m), k, a.dtype);
    const float amax = block_max<kThreads>(fabsf(v));
    xq[m * a.length + k] = static_cast<int8_t>(q8_code(v, amax));
    if (threadIdx.x == 0) sa[m * blocks + b] = q8_scale(amax);
}

// One thread per output (m on y, n on x).
__global__ void q8_gemm_kernel(const int8_t *xq, const float *sa, const uint8_t *q, const float *sfb, Rows d,
                               int64_t n_total, int64_t k) {
    const int64_t n = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x, m = blockIdx.y;
    if (n >= n_total) return;
    const int64_t blocks = k / kBlock;
    const uint8_t *panel = q + (n / 16) * 16 * k + (n % 16) * 4;
    const int8_t *x = xq + m * k;
    float acc = 0.0f;
    for (int64_t b = 0; b < blocks; ++b) {
        int sum = 0;
        for (int64_t g = b * (kBlock / 4); g < (b + 1) * (kBlock / 4); ++g) {
            // byte loads: the ABI does not ask b for more than byte alignment
            const uint8_t *c = panel + g * 64;
            const unsigned stored = c[0] | c[1] << 8 | c[2] << 16 | static_cast<unsigned>(c[3]) << 24;
            const int codes = static_cast<int>(stored ^ 0x80808080u);
            sum = __dp4a(codes, *reinterpret_cast<const int *>(x + g * 4), sum);
        }
        acc = __fmaf_rn(__int2float_rn(sum), sa[m * blocks + b], acc);
    }
    reinterpret_cast<float *>(d.row(m))[n] = __fmul_rn(acc, sfb[n]);
}

}  // namespace

moe4j_status quantize_q8_weights(const Call &call, const moe4j_tensor &w, const moe4j_tensor &q,
                                 const moe4j_tensor &scales) {
    const int64_t rows = w.shape[0];
    if (rows > 0x7FFFFFFF)
        return fail(MOE4J_ERROR_UNSUPPORTED,
                    std::string(call.function()) + ": more than 2^31 - 1 rows exceed the CUDA kernel's grid");
    if (rows > 0) {
        quantize_weights_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream(call)>>>(
            Rows::of(w), static_cast<uint8_t *>(q.data), static_cast<float *>(scales.data));
        if (moe4j_status s = launched(call)) return s;
    }
    count_variant(call, "simple", "");
    return MOE4J_OK;
}

moe4j_status q8_gemm(const Call &call, const moe4j_tensor &a, const moe4j_tensor &b, const moe4j_tensor &sfb,
                     const moe4j_tensor &d) {
    const int64_t m = a.shape[0], k = a.shape[1], n = b.shape[0], blocks = k / kBlock;
    if (m > 65535 || blocks > 65535 || ceil_div(n, kThreads) > 0x7FFFFFFF)
        return fail(MOE4J_ERROR_UNSUPPORTED, std::string(call.function()) +
                                                 ": more than 65535 rows or K past 65535 x 128 exceed the CUDA "
                                                 "kernels' grid limits");
    if (m == 0 || n == 0) {
        count_variant(call, "simple", "");
        return MOE4J_OK;
    }
    Scratch scratch;
    const size_t codes_part = scratch.add<int8_t>(m * k), scales_part = scratch.add<float>(m * blocks);
    if (moe4j_status s = scratch.reserve(call)) return s;
    int8_t *xq = scratch.at<int8_t>(codes_part);
    float *sa = scratch.at<float>(scales_part);
    quantize_activations_kernel<<<dim3(static_cast<unsigned>(m), static_cast<unsigned>(blocks)), kThreads, 0,
                                  stream(call)>>>(Rows::of(a), xq, sa);
    if (moe4j_status s = launched(call)) return s;
    q8_gemm_kernel<<<dim3(static_cast<unsigned>(ceil_div(n, kThreads)), static_cast<unsigned>(m)), kThreads, 0,
                     stream(call)>>>(xq, sa, static_cast<const uint8_t *>(b.data), static_cast<const float *>(sfb.data),
                                     Rows::of(d), n, k);
    if (moe4j_status s = launched(call)) return s;
    count_variant(call, "simple", "");
    return MOE4J_OK;
}

}  // namespace moe4j::cuda
