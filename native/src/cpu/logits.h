// Per-row statistics of logits for sampling: validity, the first argmax, and the sum of exp(logit - max).
#pragma once

#include "moe4j.h"

namespace moe4j::cpu {

// Arguments validated (moe4j_logits_stats): logits F32 [B, V], argmax I32 [B], sum_exp F32 [B].
void logits_stats(moe4j_context *ctx, const moe4j_tensor &logits, const moe4j_tensor &argmax,
                  const moe4j_tensor &sum_exp);

}  // namespace moe4j::cpu
