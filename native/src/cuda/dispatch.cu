// Expert-parallel dispatch (gather) and combine on CUDA: the CPU kernels' arithmetic, one thread block per row. The
// kernels check the index: an entry outside [-1, rows) is flagged and treated as -1 (zeros, nothing added).
#include <cuda_runtime.h>

#include "cuda_backend.h"
#include "cuda_state.h"
#include "device_views.cuh"
#include "fp8_device.cuh"

namespace moe4j::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void gather_kernel(Rows src, const int32_t *index, int64_t index_stride, Rows dst, int64_t row_bytes,
                              FaultSink faults) {
    const int64_t r = blockIdx.x;
    int32_t id = index[r * index_stride];
    if (id < -1 || id >= src.rows) {
        if (threadIdx.x == 0) report(faults, Fault::GatherIndex, r, id, src.rows);
        id = -1;
    }
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
                               bool has_base, Rows out, int64_t k, FaultSink faults) {
    const int64_t t = blockIdx.x;
    const float *start = has_base ? reinterpret_cast<const float *>(base.row(t)) : nullptr;
    float *result = reinterpret_cast<float *>(out.row(t));
    for (int64_t c = threadIdx.x; c < out.length; c += kThreads) {
        float acc = start != nullptr ? start[c] : 0.0f;
        for (int64_t j = 0; j < k; ++j) {
            const int32_t id = index[t * index_stride0 + j * index_stride1];
            if (id >= rows.rows || id < -1) {
                if (c == threadIdx.x && threadIdx.x == 0) report(faults, Fault::CombineIndex, t, j, id, rows.rows);
                continue;
            }
            if (id >= 0)
                acc = fmaf(weights[t * weight_stride0 + j * weight_stride1], load_float(rows.row(id), c, rows.dtype),
                           acc);
        }
        result[c] = acc;
    }
}

}  // namespace

moe4j_status gather_rows(const Call &call, const moe4j_tensor &src, const moe4j_tensor &index,
                         const moe4j_tensor &dst) {
    const int64_t rows = dst.shape[0], row_bytes = dst.shape[1] * dtype_size(dst.dtype);
    if (rows > 0) {  // rows of zero bytes still check their index entries
        gather_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream(call)>>>(
            Rows::of(src), static_cast<const int32_t *>(index.data), index.strides[0], Rows::of(dst), row_bytes,
            fault_sink(call));
        if (moe4j_status s = launched(call)) return s;
    }
    count_variant(call, "simple", "");
    return MOE4J_OK;
}

moe4j_status combine_rows(const Call &call, const moe4j_tensor &rows, const moe4j_tensor &index,
                          const moe4j_tensor &weights, const moe4j_tensor *base, const moe4j_tensor &out) {
    const int64_t tokens = out.shape[0];
    if (tokens > 0 && out.shape[1] > 0) {
        combine_kernel<<<static_cast<unsigned>(tokens), kThreads, 0, stream(call)>>>(
            Rows::of(rows), static_cast<const int32_t *>(index.data), index.strides[0], index.strides[1],
            static_cast<const float *>(weights.data), weights.strides[0], weights.strides[1],
            base != nullptr ? Rows::of(*base) : Rows{}, base != nullptr, Rows::of(out), index.shape[1],
            fault_sink(call));
        if (moe4j_status s = launched(call)) return s;
    }
    count_variant(call, "simple", "");
    return MOE4J_OK;
}

}  // namespace moe4j::cuda
