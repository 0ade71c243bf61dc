// Rotary position embedding of interleaved pairs.
#pragma once

#include "moe4j.h"

namespace moe4j::cpu {

// Arguments validated (moe4j_rope): x and out [T, H, R] F32 or BF16 (out may be x itself), positions I32 [T] in
// host memory with values >= 0, freqs F32 [R/2].
void rope(moe4j_context *ctx, const moe4j_tensor &x, const moe4j_tensor &positions, const moe4j_tensor &freqs,
          float rotation_scale, const moe4j_tensor &out);

}  // namespace moe4j::cpu
