// Unquantized GEMM (F32 or BF16 inputs, fp32 accumulation).
#pragma once

#include "moe4j.h"

namespace moe4j::cpu {

// d = c + a·bᵀ; arguments validated: a [M, K], b [N, K] of one dtype, c null or F32 [M, N], d [M, N]; or all of
// rank 3 ([B, M, K], [B, N, K], [B, M, N]): B independent products.
void gemm_nt(moe4j_context *ctx, const moe4j_tensor &a, const moe4j_tensor &b, const moe4j_tensor *c,
             const moe4j_tensor &d);

}  // namespace moe4j::cpu
