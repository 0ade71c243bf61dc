// The gated MLP's activation, SiLU(gate) * up.
#pragma once

#include "moe4j.h"

namespace moe4j::cpu {

// Arguments validated (moe4j_silu_mul): gate, up and out [T, N] F32 or BF16; out may be gate or up itself.
void silu_mul(moe4j_context *ctx, const moe4j_tensor &gate, const moe4j_tensor &up, const moe4j_tensor &out);

}  // namespace moe4j::cpu
