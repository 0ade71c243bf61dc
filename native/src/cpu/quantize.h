#pragma once

#include "moe4j.h"

namespace moe4j::cpu {

// Arguments already validated: x/q [R, C] with contiguous rows, scales [ceil(R/block_rows), ceil(C/128)].
void quantize_fp8(moe4j_context *ctx, const moe4j_tensor &x, const moe4j_tensor &q, const moe4j_tensor &scales,
                  int64_t block_rows, bool ue8m0);

void dequantize_fp8(moe4j_context *ctx, const moe4j_tensor &q, const moe4j_tensor &scales, int64_t block_rows,
                    const moe4j_tensor &out);

}  // namespace moe4j::cpu
