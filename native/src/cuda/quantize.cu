// FP8 quantization (per token and per 128x128 block), dequantization and casts on CUDA: the simple versions, one
// thread per element of a 128-wide column group, bit-identical to the CPU codecs.
#include <cuda_runtime.h>

#include "../core/context.h"
#include "cuda_backend.h"
#include "cuda_state.h"
#include "device_views.cuh"
#include "fp8_device.cuh"

namespace moe4j::cuda {
namespace {

constexpr int kGroup = 128;

// One CUDA block per (row block, 128-column group): row blocks on x (up to 2^31 - 1), groups on y; thread t owns
// column group * 128 + t.
__global__ void quantize_kernel(Rows x, Rows q, Scales scales, int64_t block_rows, bool ue8m0) {
    const int64_t col = static_cast<int64_t>(blockIdx.y) * kGroup + threadIdx.x;
    const int64_t r0 = static_cast<int64_t>(blockIdx.x) * block_rows;
    const int64_t r1 = r0 + block_rows < x.rows ? r0 + block_rows : x.rows;
    const bool live = col < x.length;
    float amax = 0.0f;
    if (live)
        for (int64_t r = r0; r < r1; ++r) amax = nan_max(amax, fabsf(load_float(x.row(r), col, x.dtype)));
    amax = block_max<kGroup>(amax);
    const float scale = fp8_scale(amax, ue8m0), mul = 1.0f / scale;
    if (threadIdx.x == 0) scales.at(blockIdx.x, blockIdx.y) = scale;
    if (!live) return;
    for (int64_t r = r0; r < r1; ++r)
        reinterpret_cast<uint8_t *>(q.row(r))[col] = e4m3_encode(load_float(x.row(r), col, x.dtype) * mul);
}

__global__ void dequantize_kernel(Rows q, Scales scales, int64_t block_rows, Rows out) {
    const int64_t col = static_cast<int64_t>(blockIdx.y) * kGroup + threadIdx.x;
    const int64_t r = blockIdx.x;
    if (col >= q.length) return;
    const float v =
        e4m3_decode(reinterpret_cast<const uint8_t *>(q.row(r))[col]) * scales.at(r / block_rows, col / kGroup);
    store_float(out.row(r), col, out.dtype, v);
}

__device__ float load_any(const char *row, int64_t i, int32_t dtype) {
    if (dtype == MOE4J_E4M3) return e4m3_decode(reinterpret_cast<const uint8_t *>(row)[i]);
    return load_float(row, i, dtype);
}

__global__ void cast_kernel(Rows src, Rows dst) {
    const int64_t col = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
    const int64_t r = blockIdx.x;
    if (col >= src.length) return;
    const float v = load_any(src.row(r), col, src.dtype);
    if (dst.dtype == MOE4J_E4M3)
        reinterpret_cast<uint8_t *>(dst.row(r))[col] = e4m3_encode(v);
    else
        store_float(dst.row(r), col, dst.dtype, v);
}

unsigned groups_of(int64_t n) { return static_cast<unsigned>((n + kGroup - 1) / kGroup); }

}  // namespace

void launch_quantize(cudaStream_t stream, const moe4j_tensor &x, const moe4j_tensor &q, const moe4j_tensor &scales,
                     int64_t block_rows, bool ue8m0) {
    const Rows xv = Rows::of(x);
    if (xv.rows == 0 || xv.length == 0) return;
    const dim3 grid(static_cast<unsigned>((xv.rows + block_rows - 1) / block_rows), groups_of(xv.length));
    quantize_kernel<<<grid, kGroup, 0, stream>>>(xv, Rows::of(q), Scales::of(scales), block_rows, ue8m0);
}

moe4j_status quantize(const Call &call, const moe4j_tensor &x, const moe4j_tensor &q, const moe4j_tensor &scales,
                      int64_t block_rows, bool ue8m0) {
    launch_quantize(stream(call), x, q, scales, block_rows, ue8m0);
    if (moe4j_status s = launched(call)) return s;
    count_variant(call, "simple", "");
    return MOE4J_OK;
}

moe4j_status dequantize(const Call &call, const moe4j_tensor &q, const moe4j_tensor &scales, int64_t block_rows,
                        const moe4j_tensor &out) {
    const Rows qv = Rows::of(q);
    if (qv.rows > 0 && qv.length > 0) {
        const dim3 grid(static_cast<unsigned>(qv.rows), groups_of(qv.length));
        dequantize_kernel<<<grid, kGroup, 0, stream(call)>>>(qv, Scales::of(scales), block_rows, Rows::of(out));
        if (moe4j_status s = launched(call)) return s;
    }
    count_variant(call, "simple", "");
    return MOE4J_OK;
}

moe4j_status cast(const Call &call, const moe4j_tensor &src, const moe4j_tensor &dst) {
    const Rows s = Rows::of(src);
    if (s.rows > 0 && s.length > 0) {
        const dim3 grid(static_cast<unsigned>(s.rows), groups_of(s.length));
        cast_kernel<<<grid, kGroup, 0, stream(call)>>>(s, Rows::of(dst));
        if (moe4j_status st = launched(call)) return st;
    }
    count_variant(call, "simple", "");
    return MOE4J_OK;
}

}  // namespace moe4j::cuda
