// MLA entry points (decode over the paged latent cache, appending tokens to it): validation shared by all
// backends, then dispatch. Block ids, slots and sequence lengths are checked on the host for a CPU context and by the
// kernels for a CUDA one (the tables stay on the GPU).
#include <algorithm>
#include <cmath>
#include <string>

#include "../core/context.h"
#include "../core/error.h"
#include "../core/validate.h"
#include "../core/variants.h"
#include "../cpu/mla.h"
#if MOE4J_WITH_CUDA
#include "../cuda/cuda_backend.h"
#endif

using namespace moe4j;

namespace {

// kcache: BF16 [num_blocks, 64, h_kv, d] or the FP8 layout U8 [num_blocks, 64, h_kv, 656] (then d must be 576).
// Sets fp8. The FP8 records hold fp32 scales, so they must sit on 4-byte boundaries.
moe4j_status check_cache(const ArgCheck &check, const moe4j_tensor *kcache, int64_t d, bool *fp8) {
    if (moe4j_status s = check.tensor(kcache, {"kcache", {MOE4J_BF16, MOE4J_U8}, 4, Layout::RowsDense})) return s;
    *fp8 = kcache->dtype == MOE4J_U8;
    const int64_t num_blocks = kcache->shape[0], h_kv = kcache->shape[2];
    if (!*fp8)
        return check.shape(*kcache, "kcache", {num_blocks, cpu::kMlaBlockTokens, h_kv, d}, "[num_blocks, 64, h_kv, D]");
    if (d != cpu::kMlaLatentDims + cpu::kMlaRopeDims)
        return check.invalid("argument 'kcache': the FP8 cache holds 576-dim tokens (512 latent + 64 RoPE), not " +
                             std::to_string(d));
    if (moe4j_status s =
            check.shape(*kcache, "kcache", {num_blocks, cpu::kMlaBlockTokens, h_kv, cpu::kMlaFp8TokenBytes},
                        "FP8 cache: [num_blocks, 64, h_kv, 656] bytes"))
        return s;
    const bool aligned = reinterpret_cast<uintptr_t>(kcache->data) % 4 == 0 && kcache->strides[0] % 4 == 0 &&
                         kcache->strides[1] % 4 == 0 && kcache->strides[2] % 4 == 0;
    if (!aligned) return check.invalid("argument 'kcache': FP8 cache records must start on 4-byte boundaries");
    return MOE4J_OK;
}

}  // namespace

extern "C" moe4j_status moe4j_mla_decode(moe4j_context *ctx, const moe4j_tensor *q, const moe4j_tensor *kcache,
                                         const moe4j_tensor *block_table, const moe4j_tensor *cache_seqlens,
                                         float softmax_scale, int32_t causal, moe4j_tensor *out, moe4j_tensor *lse) {
    return guarded(__func__, [&](const char *fn) -> moe4j_status {
        if (moe4j_status s = begin_kernel(fn, ctx)) return s;
        const ArgCheck check(fn, ctx->memory_device());
        if (moe4j_status s = check.tensor(q, {"q", {MOE4J_BF16}, 4, Layout::RowsDense})) return s;
        const int64_t batch = q->shape[0], s_q = q->shape[1], h_q = q->shape[2], d = q->shape[3];
        bool fp8 = false;
        if (moe4j_status s = check_cache(check, kcache, d, &fp8)) return s;
        const int64_t num_blocks = kcache->shape[0], h_kv = kcache->shape[2];
        if (h_kv <= 0 || h_q % h_kv != 0)
            return check.invalid("argument 'q': " + std::to_string(h_q) + " query heads do not divide into " +
                                 std::to_string(h_kv) + " kv heads");
        if (moe4j_status s = check.tensor(block_table, {"block_table", {MOE4J_I32}, 2, Layout::Strided})) return s;
        const int64_t max_blocks = block_table->shape[1];
        if (moe4j_status s = check.shape(*block_table, "block_table", {batch, max_blocks}, "[b, max_blocks]")) return s;
        if (moe4j_status s = check.tensor(cache_seqlens, {"cache_seqlens", {MOE4J_I32}, 1, Layout::Strided})) return s;
        if (moe4j_status s = check.shape(*cache_seqlens, "cache_seqlens", {batch}, "one length per sequence")) return s;
        if (moe4j_status s = check.tensor(out, {"out", {MOE4J_BF16, MOE4J_F32}, 4, Layout::RowsDense})) return s;
        const int64_t dv = out->shape[3];
        const int64_t max_dv = fp8 ? cpu::kMlaLatentDims : d;
        if (dv < 1 || dv > max_dv)
            return check.invalid("argument 'out': value dimension " + std::to_string(dv) + " is outside [1, " +
                                 std::to_string(max_dv) + "] (V is the first Dv dims of K" +
                                 (fp8 ? ", of the FP8 latent part)" : ")"));
        if (moe4j_status s = check.shape(*out, "out", {batch, s_q, h_q, dv}, "[b, s_q, h_q, Dv]")) return s;
        if (moe4j_status s = check.tensor(lse, {"lse", {MOE4J_F32}, 3, Layout::Strided})) return s;
        if (moe4j_status s = check.shape(*lse, "lse", {batch, h_q, s_q}, "[b, h_q, s_q]")) return s;
        if (!std::isfinite(softmax_scale))
            return check.invalid("argument 'softmax_scale': " + std::to_string(softmax_scale) + " is not finite");
        for (const auto &[t, name] : {std::pair<const moe4j_tensor *, const char *>{q, "q"},
                                      {kcache, "kcache"},
                                      {block_table, "block_table"},
                                      {cache_seqlens, "cache_seqlens"},
                                      {lse, "lse"}})
            if (moe4j_status s = check.no_overlap(*out, "out", *t, name)) return s;
        for (const auto &[t, name] : {std::pair<const moe4j_tensor *, const char *>{q, "q"},
                                      {kcache, "kcache"},
                                      {block_table, "block_table"},
                                      {cache_seqlens, "cache_seqlens"}})
            if (moe4j_status s = check.no_overlap(*lse, "lse", *t, name)) return s;
        // No query row (b, s_q or h_q is 0): out and lse are empty and nothing is read. The kernels divide the work by
        // these counts, so they do not run at all.
        if (batch == 0 || s_q == 0 || h_q == 0) return MOE4J_OK;

#if MOE4J_WITH_CUDA
        if (ctx->backend == MOE4J_BACKEND_CUDA) {
            const cpu::MlaDecodeArgs args{q,           kcache, block_table, cache_seqlens, out, lse,  softmax_scale,
                                          causal != 0, fp8,    batch,       s_q,           h_q, h_kv, d,
                                          dv,          -1};
            return cuda::run(fn, ctx, [&](const cuda::Call &on) { return cuda::mla_decode(on, args); });
        }
#endif
        // Every block a sequence reaches must exist: the kernel trusts the table after this.
        const auto *lengths = static_cast<const int32_t *>(cache_seqlens->data);
        const auto *table = static_cast<const int32_t *>(block_table->data);
        int64_t max_seqlen = 0;
        for (int64_t i = 0; i < batch; ++i) {
            const int64_t len = lengths[i * cache_seqlens->strides[0]];
            max_seqlen = std::max(max_seqlen, len);
            if (len < 0)
                return check.invalid("argument 'cache_seqlens': sequence " + std::to_string(i) + " has length " +
                                     std::to_string(len));
            const int64_t blocks = (len + cpu::kMlaBlockTokens - 1) / cpu::kMlaBlockTokens;
            if (blocks > max_blocks)
                return check.invalid("argument 'cache_seqlens': sequence " + std::to_string(i) + " has " +
                                     std::to_string(len) + " tokens, more than its " + std::to_string(max_blocks) +
                                     " block-table entries hold (" + std::to_string(max_blocks * cpu::kMlaBlockTokens) +
                                     ")");
            for (int64_t b = 0; b < blocks; ++b) {
                const int32_t id = table[i * block_table->strides[0] + b * block_table->strides[1]];
                if (id < 0 || id >= num_blocks)
                    return check.invalid("argument 'block_table': sequence " + std::to_string(i) + ", entry " +
                                         std::to_string(b) + " is block " + std::to_string(id) + ", outside [0, " +
                                         std::to_string(num_blocks) + ")");
            }
        }
        const cpu::MlaDecodeArgs args{q,           kcache,    block_table, cache_seqlens, out, lse,  softmax_scale,
                                      causal != 0, fp8,       batch,       s_q,           h_q, h_kv, d,
                                      dv,          max_seqlen};
        cpu::mla_decode(ctx, args);
        count_cpu(ctx, fn, CpuCode::EveryPath, ctx->reproducible() ? "splits at fixed 512-token positions" : nullptr);
        return MOE4J_OK;
    });
}

extern "C" moe4j_status moe4j_mla_cache_append(moe4j_context *ctx, const moe4j_tensor *kv,
                                               const moe4j_tensor *slot_mapping, moe4j_tensor *kcache) {
    return guarded(__func__, [&](const char *fn) -> moe4j_status {
        if (moe4j_status s = begin_kernel(fn, ctx)) return s;
        const ArgCheck check(fn, ctx->memory_device());
        if (moe4j_status s = check.tensor(kv, {"kv", {MOE4J_BF16}, 3, Layout::RowsDense})) return s;
        const int64_t tokens = kv->shape[0], h_kv = kv->shape[1], d = cpu::kMlaLatentDims + cpu::kMlaRopeDims;
        if (moe4j_status s = check.shape(*kv, "kv", {tokens, h_kv, d}, "[n, h_kv, 576]: 512 latent + 64 RoPE dims"))
            return s;
        if (moe4j_status s = check.tensor(slot_mapping, {"slot_mapping", {MOE4J_I32}, 1, Layout::Strided})) return s;
        if (moe4j_status s = check.shape(*slot_mapping, "slot_mapping", {tokens}, "one slot per token")) return s;
        bool fp8 = false;
        if (moe4j_status s = check_cache(check, kcache, d, &fp8)) return s;
        if (kcache->shape[2] != h_kv)
            return check.invalid("argument 'kcache': " + std::to_string(kcache->shape[2]) + " kv heads, 'kv' has " +
                                 std::to_string(h_kv));
        if (moe4j_status s = check.no_overlap(*kcache, "kcache", *kv, "kv")) return s;
        if (moe4j_status s = check.no_overlap(*kcache, "kcache", *slot_mapping, "slot_mapping")) return s;
#if MOE4J_WITH_CUDA
        if (ctx->backend == MOE4J_BACKEND_CUDA)
            return cuda::run(
                fn, ctx, [&](const cuda::Call &on) { return cuda::mla_cache_append(on, *kv, *slot_mapping, *kcache); });
#endif
        const int64_t slots = kcache->shape[0] * cpu::kMlaBlockTokens;
        int32_t *const used = ctx->workspace.take<int32_t>(tokens, "the slots in use");
        int64_t count = 0;
        for (int64_t i = 0; i < tokens; ++i) {
            const int32_t slot = static_cast<const int32_t *>(slot_mapping->data)[i * slot_mapping->strides[0]];
            if (slot < -1 || slot >= slots)
                return check.invalid("argument 'slot_mapping': token " + std::to_string(i) + " maps to slot " +
                                     std::to_string(slot) + ", outside [-1, " + std::to_string(slots) + ")");
            if (slot >= 0) used[count++] = slot;
        }
        std::sort(used, used + count);
        const int32_t *twice = std::adjacent_find(used, used + count);
        if (twice != used + count)
            return check.invalid("argument 'slot_mapping': slot " + std::to_string(*twice) + " is given to two tokens");
        cpu::mla_cache_append(ctx, *kv, *slot_mapping, *kcache);
        count_cpu(ctx, fn, CpuCode::NoAvx512F);
        return MOE4J_OK;
    });
}
