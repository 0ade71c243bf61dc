package dev.moe4j.kernels;

import dev.moe4j.bindings.moe4j_h;
import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.NativeLibrary;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.Tensor;
import java.lang.foreign.Arena;
import java.util.Objects;

/**
 * Multi-head latent attention decode over a paged latent cache, with FlashMLA's {@code flash_mla_with_kvcache}
 * semantics ({@code moe4j_mla_decode}).
 *
 * <p>Sequence {@code i} has {@code cacheSeqlens[i]} tokens; token {@code t} lives in cache block
 * {@code blockTable[i, t / 64]}, slot {@code t % 64}. Query head {@code h} attends with kv head
 * {@code h / (h_q / h_kv)}; V is the first {@code Dv} dimensions of K. Scores are {@code softmaxScale · q·k}; with
 * {@code causal}, query {@code j} of a sequence of length {@code L} sees tokens up to {@code L - s_q + j}. A query
 * that sees no token gets {@code out = 0} and {@code lse = +inf}. Cache slots past a sequence's length are never
 * read, so they may hold anything.
 *
 * <p>Ranks and dtypes are checked here, shapes, block ids and lengths natively before anything is read
 * ({@link dev.moe4j.runtime.Moe4jException} naming the argument; out and lse untouched).
 */
public final class MlaDecode {
    /** FlashMLA's default softmax scale for 576-dim queries: 576^-0.5. */
    public static final float DEFAULT_SCALE = (float) (1 / Math.sqrt(576));

    private MlaDecode() {}

    /**
     * @param q BF16 [b, s_q, h_q, D]
     * @param kcache BF16 [num_blocks, 64, h_kv, D]
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
        Args.tensor(kcache, "kcache", 4, DType.BF16);
        Args.tensor(blockTable, "blockTable", 2, DType.I32);
        Args.tensor(cacheSeqlens, "cacheSeqlens", 1, DType.I32);
        Args.tensor(out, "out", 4, DType.BF16, DType.F32);
        Args.tensor(lse, "lse", 3, DType.F32);
        try (Arena call = Arena.ofConfined()) {
            NativeLibrary.check(
                    moe4j_h.moe4j_mla_decode(
                            ctx.handle(),
                            q.descriptor(call, "q"),
                            kcache.descriptor(call, "kcache"),
                            blockTable.descriptor(call, "block_table"),
                            cacheSeqlens.descriptor(call, "cache_seqlens"),
                            softmaxScale,
                            causal ? 1 : 0,
                            out.descriptor(call, "out"),
                            lse.descriptor(call, "lse")),
                    "moe4j_mla_decode");
        }
    }
}
