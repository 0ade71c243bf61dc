// Expert-parallel dispatch (gather) and combine on CUDA: the CPU kernels' arithmetic, one thread block per row.
#include <cuda_runtime.h>

#include "cuda_backend.h"
#include "cuda_state.h"
#include "device_views.cuh"
#include "fp8_device.cuh"

namespace moe4j::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void gather_kernel(Rows src, const int32_t *index, int64_t index_stride, Rows dst, int64_t row_bytes) {
    const int64_t r = blockIdx.x;
    const int32_t id = index[r * index_stride];
    char *to = dst.row(r);
    const char *from = id >= 0 ? src.row(id) : nullptr;
    const bool words = row_bytes % 4 == 0 && reinterpret_cast<uintptr_t>(to) % 4 == 0 &&
                       (from == nullptr || reinterpret_cast<uintptr_t>(from) % 4 == 0);
    if (words) {
        for (int64_t i = threadIdx.x; i < row_bytes / 4; i += kThreads)
            reinterpret_cast<uint32_t *>(to)[i] = from != nullptr ? reinterpret_cast<const uint32_t *>(from)[i] : 0u;
        return;
    }
    for (int64_t i = threadIdx.x; i < row_bytes; i += kThreads) to[i] = from != nullptr ? from[i] : 0;
}

__global__ void combine_kernel(Rows rows, const int32_t *index, int64_t index_stride0, int64_t index_stride1,
                               const float *weights, int64_t weight_stride0, int64_t weight_stride1, Rows base,
                               bool has_base, Rows out, int64_t k) {
    const int64_t t = blockIdx.x;
    const float *start = has_base ? reinterpret_cast<const float *>(base.row(t)) : nullptr;
    float *result = reinterpret_cast<float *>(out.row(t));
    for (int64_t c = threadIdx.x; c < out.length; c += kThreads) {
        float acc = start != nullptr ? start[c] : 0.0f;
        for (int64_t j = 0; j < k; ++j) {
            const int32_t id = index[t * index_stride0 + j * index_stride1];
            if (id >= 0)
                acc = fmaf(weights[t * weight_stride0 + j * weight_stride1], load_float(rows.row(id), c, rows.dtype),
                           acc);
        }
        result[c] = acc;
    }
}

}  // namespace

moe4j_status gather_rows(const char *fn, moe4j_context *ctx, const moe4j_tensor &src, const moe4j_tensor &index,
                         const moe4j_tensor &dst) {
    const int64_t rows = dst.shape[0], row_bytes = dst.shape[1] * dtype_size(dst.dtype);
    if (rows == 0 || row_bytes == 0) return MOE4J_OK;
    gather_kernel<<<static_cast<unsigned>(rows), kThreads, 0, ctx->cuda->stream>>>(
        Rows::of(src), static_cast<const int32_t *>(index.data), index.strides[0], Rows::of(dst), row_bytes);
    return finish(fn, ctx);
}

moe4j_status combine_rows(const char *fn, moe4j_context *ctx, const moe4j_tensor &rows, const moe4j_tensor &index,
                          const moe4j_tensor &weights, const moe4j_tensor *base, const moe4j_tensor &out) {
    const int64_t tokens = out.shape[0];
    if (tokens == 0 || out.shape[1] == 0) return MOE4J_OK;
    combine_kernel<<<static_cast<unsigned>(tokens), kThreads, 0, ctx->cuda->stream>>>(
        Rows::of(rows), static_cast<const int32_t *>(index.data), index.strides[0], index.strides[1],
        static_cast<const float *>(weights.data), weights.strides[0], weights.strides[1],
        base != nullptr ? Rows::of(*base) : Rows{}, base != nullptr, Rows::of(out), index.shape[1]);
    return finish(fn, ctx);
}

}  // namespace moe4j::cuda
