#pragma once

#include "moe4j.h"

namespace moe4j::cpu {

// dst = src converted element-wise; arguments already validated (same shape, rows contiguous).
void cast(moe4j_context *ctx, const moe4j_tensor &src, const moe4j_tensor &dst);

}  // namespace moe4j::cpu
