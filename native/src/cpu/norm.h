// RMSNorm fused with the residual add before it and the cast after it.
#pragma once

#include "moe4j.h"

namespace moe4j::cpu {

// Arguments validated (moe4j_rms_norm): x [T, D] F32 or BF16, residual null or F32 [T, D], weight F32 [D]
// contiguous, sum_out null or F32 [T, D] (may be x or residual itself), y [T, D] F32 or BF16.
void rms_norm(moe4j_context *ctx, const moe4j_tensor &x, const moe4j_tensor *residual, const moe4j_tensor &weight,
              float eps, const moe4j_tensor *sum_out, const moe4j_tensor &y);

}  // namespace moe4j::cpu
