// Expert-parallel dispatch and combine on the CPU: gathering token rows by an index, and the weighted sum of expert
// output rows per token in a fixed order.
#pragma once

#include "moe4j.h"

namespace moe4j::cpu {

// Validated: index (host memory) values in [-1, src rows).
void gather_rows(moe4j_context *ctx, const moe4j_tensor &src, const moe4j_tensor &index, const moe4j_tensor &dst);

// Validated: index (host memory) values in [-1, rows); base may be null.
void combine_rows(moe4j_context *ctx, const moe4j_tensor &rows, const moe4j_tensor &index, const moe4j_tensor &weights,
                  const moe4j_tensor *base, const moe4j_tensor &out);

}  // namespace moe4j::cpu
