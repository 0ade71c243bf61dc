// Typed access to validated descriptors: kernels receive views, never raw descriptors to re-check.
#pragma once

#include <cstdint>

#include "moe4j.h"
#include "validate.h"

namespace moe4j {

// A tensor seen as rows of its innermost dimension: leading dimensions flattened, any strides.
struct RowView {
    char *base;
    int32_t dtype;
    int32_t leading_rank;  // rank - 1
    int64_t shape[MOE4J_MAX_RANK];
    int64_t byte_strides[MOE4J_MAX_RANK];
    int64_t rows;
    int64_t length;  // elements per row

    explicit RowView(const moe4j_tensor &t)
        : base(static_cast<char *>(t.data)), dtype(t.dtype), leading_rank(t.rank - 1) {
        bool empty = false;
        for (int i = 0; i < t.rank; ++i) empty |= t.shape[i] == 0;
        rows = empty ? 0 : 1;
        for (int i = 0; i < t.rank; ++i) {
            shape[i] = t.shape[i];
            // Only the dimensions that step (extent > 1) of a non-empty tensor address memory, and their strides lie
            // within its checked extent; any other stride may be up to INT64_MAX and need not fit times the element
            // size. The element count fits in int64 (checked), so rows does.
            byte_strides[i] = !empty && t.shape[i] > 1 ? t.strides[i] * dtype_size(t.dtype) : 0;
            if (!empty && i < leading_rank) rows *= t.shape[i];
        }
        length = t.shape[t.rank - 1];
    }

    template <typename T>
    T *row(int64_t r) const {
        if (leading_rank == 1) return reinterpret_cast<T *>(base + r * byte_strides[0]);
        int64_t offset = 0;
        for (int i = leading_rank - 1; i >= 0; --i) {
            offset += (r % shape[i]) * byte_strides[i];
            r /= shape[i];
        }
        return reinterpret_cast<T *>(base + offset);
    }
};

// A rank-2 F32 tensor with arbitrary strides (scale tensors).
struct ScaleView {
    float *data;
    int64_t stride0, stride1;
    explicit ScaleView(const moe4j_tensor &t)
        : data(static_cast<float *>(t.data)), stride0(t.strides[0]), stride1(t.strides[1]) {}
    float &at(int64_t i, int64_t j) const { return data[i * stride0 + j * stride1]; }
};

// A descriptor of a dense row-major [rows, cols] matrix at data (kernel scratch buffers).
inline moe4j_tensor dense_matrix(void *data, int32_t dtype, int64_t rows, int64_t cols, int32_t device) {
    moe4j_tensor t{};
    t.data = data;
    t.size_bytes = rows * cols * dtype_size(dtype);
    t.dtype = dtype;
    t.rank = 2;
    t.device = device;
    t.shape[0] = rows;
    t.shape[1] = cols;
    t.strides[0] = cols;
    t.strides[1] = 1;
    return t;
}

}  // namespace moe4j
