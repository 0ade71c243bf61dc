// Descriptor views for kernels: built on the host from validated descriptors, passed to kernels by value.
#pragma once

#include <cstdint>

#include "../core/validate.h"
#include "moe4j.h"

namespace moe4j::cuda {

// A tensor as rows of its innermost dimension (leading dimensions flattened, any strides), like core RowView.
struct Rows {
    char *base;
    int32_t dtype;
    int32_t leading;  // rank - 1
    int64_t shape[MOE4J_MAX_RANK];
    int64_t byte_strides[MOE4J_MAX_RANK];
    int64_t rows, length, inner_stride;  // inner_stride: elements between neighbours in a row

    static Rows of(const moe4j_tensor &t) {
        Rows v{};
        v.base = static_cast<char *>(t.data);
        v.dtype = t.dtype;
        v.leading = t.rank - 1;
        v.rows = 1;
        for (int i = 0; i < t.rank; ++i) {
            v.shape[i] = t.shape[i];
            v.byte_strides[i] = t.strides[i] * dtype_size(t.dtype);
            if (i < v.leading) v.rows *= t.shape[i];
        }
        v.length = t.shape[t.rank - 1];
        v.inner_stride = t.strides[t.rank - 1];
        return v;
    }

    __host__ __device__ char *row(int64_t r) const {
        int64_t offset = 0;
        for (int i = leading - 1; i >= 0; --i) {
            offset += (r % shape[i]) * byte_strides[i];
            r /= shape[i];
        }
        return base + offset;
    }
};

// A rank-2 F32 tensor with arbitrary strides (scales).
struct Scales {
    float *data;
    int64_t stride0, stride1;
    static Scales of(const moe4j_tensor &t) { return {static_cast<float *>(t.data), t.strides[0], t.strides[1]}; }
    __device__ float &at(int64_t i, int64_t j) const { return data[i * stride0 + j * stride1]; }
};

}  // namespace moe4j::cuda
