package dev.moe4j.kernels;

import dev.moe4j.bindings.moe4j_h;
import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.Workspace;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.util.Objects;

/**
 * Multi-head latent attention over a paged latent cache: decode with FlashMLA's {@code flash_mla_with_kvcache}
 * semantics ({@code moe4j_mla_decode}) and appending new tokens to the cache ({@code moe4j_mla_cache_append}).
 *
 * <p>The cache is BF16 {@code [num_blocks, 64, h_kv, 576]}, or the FP8 cache: U8 {@code [num_blocks, 64, h_kv, 656]}
 * holding per token 512 e4m3 latent dims, 4 fp32 scales (one per 128 of them) and 64 bf16 RoPE dims, about 57% of
 * the bf16 cache, dequantized on the fly by decode.
 *
 * <p>Sequence {@code i} has {@code cacheSeqlens[i]} tokens; token {@code t} lives in cache block
 * {@code blockTable[i, t / 64]}, slot {@code t % 64}. Query head {@code h} attends with kv head
 * {@code h / (h_q / h_kv)}; V is the first {@code Dv} dimensions of K. Scores are {@code softmaxScale · q·k}; with
 * {@code causal}, query {@code j} of a sequence of length {@code L} sees tokens up to {@code L - s_q + j}. A query
 * that sees no token gets {@code out = 0} and {@code lse = +inf}. Cache slots past a sequence's length are never
 * read, so they may hold anything.
 *
 * <p>Scores, the softmax and the accumulation of P·V are fp32 on every path. The probabilities multiplying V are fp32
 * too, except on the AVX512_BF16 path with a bf16 cache, which computes P·V on bf16 dot products as FlashMLA does: each
 * probability rounded to bf16 (relative error ≤ 2⁻⁹, so an output moves by at most 2⁻⁹ · Σₜ pₜ·|vₜ|; the softmax's
 * denominator and lse stay those of the fp32 probabilities).
 *
 * <p>Ranks and dtypes are checked here, shapes, block ids and lengths natively before anything is read
 * ({@link dev.moe4j.runtime.Moe4jException} naming the argument; out and lse untouched).
 */
public final class Mla {
    /** FlashMLA's default softmax scale for 576-dim queries: 576^-0.5. */
    public static final float DEFAULT_SCALE = (float) (1 / Math.sqrt(576));

    private Mla() {}

    /**
     * @param q BF16 [b, s_q, h_q, D]
     * @param kcache BF16 [num_blocks, 64, h_kv, D], or the FP8 cache U8 [num_blocks, 64, h_kv, 656] (D = 576)
     * @param blockTable I32 [b, max_blocks]
     * @param cacheSeqlens I32 [b]
     * @param out BF16 or F32 [b, s_q, h_q, Dv], Dv ≤ D
     * @param lse F32 [b, h_q, s_q]: natural log of each query's softmax denominator
     */
    public static void decode(
            Context ctx,
            Tensor q,
            Tensor kcache,
            Tensor blockTable,
            Tensor cacheSeqlens,
            float softmaxScale,
            boolean causal,
            Tensor out,
            Tensor lse) {
        Objects.requireNonNull(ctx, "ctx");
        Args.tensor(q, "q", 4, DType.BF16);
        Args.tensor(kcache, "kcache", 4, DType.BF16, DType.U8);
        Args.tensor(blockTable, "blockTable", 2, DType.I32);
        Args.tensor(cacheSeqlens, "cacheSeqlens", 1, DType.I32);
        Args.tensor(out, "out", 4, DType.BF16, DType.F32);
        Args.tensor(lse, "lse", 3, DType.F32);
        try (Workspace.Frame call = ctx.workspace().frame()) {
            MemorySegment qDesc = q.descriptor(call, "q");
            MemorySegment kcacheDesc = kcache.descriptor(call, "kcache");
            MemorySegment blockTableDesc = blockTable.descriptor(call, "block_table");
            MemorySegment cacheSeqlensDesc = cacheSeqlens.descriptor(call, "cache_seqlens");
            MemorySegment outDesc = out.descriptor(call, "out");
            MemorySegment lseDesc = lse.descriptor(call, "lse");
            ctx.call(
                    "moe4j_mla_decode",
                    ptr -> moe4j_h.moe4j_mla_decode(
                            ptr,
                            qDesc,
                            kcacheDesc,
                            blockTableDesc,
                            cacheSeqlensDesc,
                            softmaxScale,
                            causal ? 1 : 0,
                            outDesc,
                            lseDesc));
        }
    }

    /** Bytes of one token in the FP8 cache: 512 e4m3 + 4 fp32 scales + 64 bf16. */
    public static final int FP8_TOKEN_BYTES = 656;

    /**
     * Writes new tokens into the cache.
     *
     * @param kv BF16 [n, h_kv, 576]: each token's 512 normalized latent dims, then its 64 RoPE dims
     * @param slotMapping I32 [n]: the cache slot of each token ({@code block * 64 + offset}), -1 to skip it; no
     *     slot twice
     * @param kcache BF16 [num_blocks, 64, h_kv, 576] (copied) or U8 [num_blocks, 64, h_kv, 656] (each 128 latent
     *     dims quantized with {@code scale = max(amax, 1e-4) / 448}, RoPE dims kept)
     */
    public static void appendToCache(Context ctx, Tensor kv, Tensor slotMapping, Tensor kcache) {
        Objects.requireNonNull(ctx, "ctx");
        Args.tensor(kv, "kv", 3, DType.BF16);
        Args.tensor(slotMapping, "slotMapping", 1, DType.I32);
        Args.tensor(kcache, "kcache", 4, DType.BF16, DType.U8);
        try (Workspace.Frame call = ctx.workspace().frame()) {
            MemorySegment kvDesc = kv.descriptor(call, "kv");
            MemorySegment slotMappingDesc = slotMapping.descriptor(call, "slot_mapping");
            MemorySegment kcacheDesc = kcache.descriptor(call, "kcache");
            ctx.call(
                    "moe4j_mla_cache_append",
                    ptr -> moe4j_h.moe4j_mla_cache_append(ptr, kvDesc, slotMappingDesc, kcacheDesc));
        }
    }
}
