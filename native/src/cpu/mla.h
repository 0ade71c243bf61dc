// MLA decode over a paged latent cache (FlashMLA semantics), one pass over each sequence's cache per kv head.
#pragma once

#include <cstdint>

#include "moe4j.h"
#include "row_codec.h"

namespace moe4j::cpu {

constexpr int64_t kMlaBlockTokens = 64;  // tokens per cache block (FlashMLA's page block size)
// Cache blocks per KV split in a reproducible context (512 tokens): fixed, so results do not depend on batching.
constexpr int64_t kMlaReproducibleSplitBlocks = 8;

// The FP8 latent cache's token record: 512 e4m3 latent dims, 4 fp32 scales (one per 128), 64 bf16 RoPE dims.
constexpr int64_t kMlaLatentDims = 512, kMlaRopeDims = 64, kMlaScaleGroup = 128;
constexpr int64_t kMlaFp8ScalesOffset = kMlaLatentDims;                                             // bytes
constexpr int64_t kMlaFp8RopeOffset = kMlaFp8ScalesOffset + 4 * (kMlaLatentDims / kMlaScaleGroup);  // bytes
constexpr int64_t kMlaFp8TokenBytes = kMlaFp8RopeOffset + 2 * kMlaRopeDims;                         // 656

// Widens one cache token to d fp32 values: bf16 copied, FP8 records dequantized (latent) and widened (RoPE).
void mla_load_token(const RowCodec &codec, const void *token, bool fp8, int64_t d, float *out);

// Writes one token's latent vector (576 bf16) into a bf16 or FP8 cache slot.
void mla_store_token(const RowCodec &codec, const uint16_t *kv, bool fp8, void *token);

struct MlaDecodeArgs {
    const moe4j_tensor *q, *kcache, *block_table, *seqlens, *out, *lse;
    float softmax_scale;
    bool causal;
    bool fp8_cache;  // kcache is the U8 [.., 656] FP8 layout
    int64_t batch, s_q, h_q, h_kv, d, dv;
    int64_t max_seqlen;  // the longest sequence (the CUDA kernel sizes its split of the cache by it)
};

void mla_decode(moe4j_context *ctx, const MlaDecodeArgs &args);

// Validated: kv [n, h_kv, 576] BF16, slots in [-1, slots of the cache), no slot twice.
void mla_cache_append(moe4j_context *ctx, const moe4j_tensor &kv, const moe4j_tensor &slot_mapping,
                      const moe4j_tensor &kcache);

}  // namespace moe4j::cpu
