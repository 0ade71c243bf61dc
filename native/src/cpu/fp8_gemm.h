// FP8 GEMM with DeepGEMM's 1x128 (activation) and 128x128 (weight) block scaling: plain, grouped
// contiguous and grouped masked layouts all reduce to a list of groups of rows sharing one weight matrix.
#pragma once

#include <cstdint>
#include <vector>

#include "moe4j.h"

namespace moe4j::cpu {

// Rows of A (and the same rows of D) multiplied by one weight matrix B [N, K].
struct GemmGroup {
    const uint8_t *b;  // e4m3, row n at b + n * ldb
    int64_t ldb;
    const float *sfb;  // sfb(nb, kb) = sfb[nb * sfb_stride0 + kb * sfb_stride1]
    int64_t sfb_stride0, sfb_stride1;
    std::vector<int64_t> rows;  // row indices over the flattened leading dimensions of a, sfa, c and d
};

// Validated operands. a and d are viewed as rows (leading dimensions flattened); sfa is viewed the same way
// with its last dimension over K blocks.
struct Fp8GemmArgs {
    const moe4j_tensor *a, *sfa, *c, *d;  // c may be null
    int64_t n, k;
    std::vector<GemmGroup> groups;
    std::vector<int64_t> zero_rows;  // rows of d to set to zero (contiguous-layout padding)
};

void fp8_gemm(moe4j_context *ctx, const Fp8GemmArgs &args);

}  // namespace moe4j::cpu
