// MLA decode over a paged latent cache (FlashMLA semantics), one pass over each sequence's cache per kv head.
#pragma once

#include <cstdint>

#include "moe4j.h"

namespace moe4j::cpu {

constexpr int64_t kMlaBlockTokens = 64;  // tokens per cache block (FlashMLA's page block size)

struct MlaDecodeArgs {
    const moe4j_tensor *q, *kcache, *block_table, *seqlens, *out, *lse;
    float softmax_scale;
    bool causal;
    int64_t batch, s_q, h_q, h_kv, d, dv;
};

void mla_decode(moe4j_context *ctx, const MlaDecodeArgs &args);

}  // namespace moe4j::cpu
