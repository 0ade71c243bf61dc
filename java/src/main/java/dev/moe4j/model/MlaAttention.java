package dev.moe4j.model;

import dev.moe4j.kernels.Cast;
import dev.moe4j.kernels.Copy;
import dev.moe4j.kernels.Dispatch;
import dev.moe4j.kernels.Gemm;
import dev.moe4j.kernels.Mla;
import dev.moe4j.kernels.Prefetch;
import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.Workspace;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.QuantizedTensor;
import dev.moe4j.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.Objects;

/**
 * DeepSeek's multi-head latent attention block (V2, V2-Lite, V3). Each token stores one 576-dim latent row in a
 * {@link PagedLatentCache} (the kv-normalized 512-dim latent and 64 rotated RoPE dims). Decode tokens are attended the
 * absorbed way, keys and values never decompressed per head: each query head folds wkv_b's key part into its query,
 * attends over the latent rows with {@link Mla#decode}, and applies wkv_b's value part to the 512-dim result before
 * wo. Prompt chunks may instead be attended MHA-style, the context's keys and values decompressed per head (see
 * {@link #forward} for which way a token takes).
 *
 * <p>Per token, as DeepSeek-V3's reference ({@code MLA.forward}) computes it:
 *
 * <ol>
 *   <li>{@code q = wq(x)}, or {@code wq_b(q_norm(wq_a(x)))} when {@code q_lora_rank > 0}; per head
 *       {@code [q_nope (qk_nope), q_pe (qk_rope)]}, q_pe rotated ({@link Rope});
 *   <li>{@code [c (kv_lora), k_pe (qk_rope)] = wkv_a(x)}; {@code c = kv_norm(c)}, k_pe rotated; {@code [c, k_pe]}
 *       appended to the cache;
 *   <li>per head h: {@code q_abs = [q_nope · W_UK[h], q_pe]} where W_UK[h] is rows {@code h·(nope+v) ..} of wkv_b;
 *       scores {@code = softmax_scale · q_abs · [c, k_pe]} over the sequence's tokens (causal),
 *       {@code softmax_scale = (qk_nope + qk_rope)^-0.5 · yarn mscale²};
 *   <li>{@code o[h] = (Σ p · c) · W_UV[h]ᵀ}; {@code y = wo(concat_h o[h])}.
 * </ol>
 *
 * <p>{@link #forward} runs one model step: any mix of prompt chunks and single decode tokens of several sequences,
 * the projections as one GEMM each over all the step's tokens, the attention per prompt chunk (in causal query
 * chunks) and for all single-token sequences together.
 *
 * <p>The block is built from host weights ({@link #MlaAttention}) and runs on a CPU context, or is copied to a device
 * ({@link #to}) and runs on a context of that device, with the cache and the activations in that device's memory; the
 * only host data a step reads is the step's token counts (which sequences are prompt chunks).
 *
 * <p>Thread-safety: the weights are immutable, but each call mutates the cache it is given; use one thread per
 * cache. Per-call scratch comes from the context's {@link dev.moe4j.runtime.Workspace}.
 */
public final class MlaAttention {
    /**
     * The MLA dims of a DeepSeek config. The kernels fix {@code kv_lora_rank = 512} and {@code qk_rope_head_dim = 64}
     * (every DeepSeek MLA model has them).
     *
     * @param hidden model width ({@code hidden_size})
     * @param heads query heads ({@code num_attention_heads})
     * @param qLoraRank 0 when queries come straight from wq (V2-Lite), else the q latent width (1536 in V3)
     * @param kvLoraRank latent width of the cache (512)
     * @param qkNopeHeadDim per-head query/key dims without position (128)
     * @param qkRopeHeadDim per-head rotated dims (64)
     * @param vHeadDim per-head value dims (128)
     * @param rmsNormEps eps of q_norm and kv_norm
     * @param ropeTheta RoPE base
     * @param yarn YaRN scaling, or null
     */
    public record Config(
            int hidden,
            int heads,
            int qLoraRank,
            int kvLoraRank,
            int qkNopeHeadDim,
            int qkRopeHeadDim,
            int vHeadDim,
            float rmsNormEps,
            double ropeTheta,
            Rope.Yarn yarn) {
        public Config {
            if (kvLoraRank != 512 || qkRopeHeadDim != 64)
                throw new IllegalArgumentException("kv_lora_rank must be 512 and qk_rope_head_dim 64 (the latent cache"
                        + " layout), got " + kvLoraRank + " and " + qkRopeHeadDim);
            if (hidden <= 0 || heads <= 0 || qLoraRank < 0 || qkNopeHeadDim <= 0 || vHeadDim <= 0)
                throw new IllegalArgumentException("MLA dims must be positive (q_lora_rank may be 0): " + this);
        }

        int qHeadDim() {
            return qkNopeHeadDim + qkRopeHeadDim;
        }
    }

    /**
     * The block's weights, named as in HF checkpoints ({@code self_attn.q_proj}, {@code q_a_proj},
     * {@code q_a_layernorm}, {@code q_b_proj}, {@code kv_a_proj_with_mqa}, {@code kv_a_layernorm},
     * {@code kv_b_proj}, {@code o_proj}). Linear weights are [out, in].
     *
     * @param wq [heads·(nope+rope), hidden] when q_lora_rank = 0, else null
     * @param wqA [q_lora, hidden] when q_lora_rank > 0, else null
     * @param qNorm q_lora wide when q_lora_rank > 0, else null
     * @param wqB [heads·(nope+rope), q_lora] when q_lora_rank > 0, else null
     * @param wkvA [kv_lora + rope, hidden]
     * @param kvNorm kv_lora wide
     * @param wkvB [heads·(nope+v), kv_lora]
     * @param wo [hidden, heads·v]
     * @param wqKvA null, or the projections of the hidden state (wq, or wqA with q_lora, then wkvA) stacked into one FP8
     *     or int8 weight [q rows + kv_lora + rope, hidden], of which those two are the row slices ({@code
     *     DecoderLayer.load} stacks them where both are FP8 or both int8): one GEMM then computes both, streaming one
     *     matrix instead of two
     */
    public record Weights(
            Linear wq,
            Linear wqA,
            RmsNorm qNorm,
            Linear wqB,
            Linear wkvA,
            RmsNorm kvNorm,
            Linear wkvB,
            Linear wo,
            Linear wqKvA) {
        /** The weights with the two projections of the hidden state apart. */
        public Weights(
                Linear wq, Linear wqA, RmsNorm qNorm, Linear wqB, Linear wkvA, RmsNorm kvNorm, Linear wkvB, Linear wo) {
            this(wq, wqA, qNorm, wqB, wkvA, kvNorm, wkvB, wo, null);
        }

        /** wq, or wqA with q_lora: the query projection that reads the hidden state. */
        Linear firstQuery() {
            return wq != null ? wq : wqA;
        }
    }

    private static final int LATENT = PagedLatentCache.DIMS, BLOCK = PagedLatentCache.BLOCK_TOKENS;
    /**
     * Query rows (tokens · heads) per attention call of a prompt chunk, bounding the kernel's scratch (in a
     * reproducible context the kernel keeps partial results of every 512-token split of the cache per row).
     */
    private static final int PREFILL_CHUNK_ROWS = 1024;

    private final Config config;
    private final Weights weights;
    private final Rope rope;
    private final float softmaxScale;
    private final Tensor wUkT; // BF16 [heads·512, nope]: head h's W_UK transposed
    private final Prefetch wUkTHint;
    private final Tensor wkvB; // BF16 [heads·(nope+v), 512]; head h's W_UV is rows h·(nope+v)+nope ..
    private final Tensor zeros; // BF16 [v]: what MHA-style queries hold against each key's V part

    /**
     * @param ctx a CPU context, for the load-time dequantization of wkv_b
     * @param weights in host memory
     * @param arena owns the BF16 copies of wkv_b this block attends with (FP8 wkv_b is dequantized once, as V3's
     *     reference does for the absorbed path)
     * @throws IllegalArgumentException if a weight is missing, not in host memory, or its shape does not match the
     *     config
     */
    public MlaAttention(Context ctx, Config config, Weights weights, Arena arena) {
        this.config = Objects.requireNonNull(config, "config");
        this.weights = Objects.requireNonNull(weights, "weights");
        int h = config.heads(), qDim = h * config.qHeadDim();
        if (config.qLoraRank() == 0) {
            check(weights.wq(), "wq", qDim, config.hidden());
        } else {
            check(weights.wqA(), "wqA", config.qLoraRank(), config.hidden());
            check(weights.qNorm(), "qNorm", config.qLoraRank());
            check(weights.wqB(), "wqB", qDim, config.qLoraRank());
        }
        check(weights.wkvA(), "wkvA", LATENT, config.hidden());
        check(weights.kvNorm(), "kvNorm", config.kvLoraRank());
        check(weights.wkvB(), "wkvB", (long) h * (config.qkNopeHeadDim() + config.vHeadDim()), config.kvLoraRank());
        check(weights.wo(), "wo", config.hidden(), (long) h * config.vHeadDim());
        if (weights.wqKvA() != null) checkStacked(weights);
        rope = new Rope(config.qkRopeHeadDim(), config.ropeTheta(), config.yarn());
        softmaxScale = (float) (rope.softmaxScaleFactor() / Math.sqrt(config.qHeadDim()));
        wkvB = weights.wkvB().toBf16(ctx, arena);
        wUkT = transposeKeyParts(wkvB, arena);
        wUkTHint = new Prefetch(wUkT);
        zeros = Tensor.allocate(arena, DType.BF16, config.vHeadDim());
    }

    private MlaAttention(MlaAttention host, DeviceStore store) {
        Weights w = host.weights;
        config = host.config;
        rope = host.rope.to(store);
        softmaxScale = host.softmaxScale;
        wkvB = store.upload(host.wkvB);
        wUkT = store.upload(host.wUkT);
        wUkTHint = new Prefetch(wUkT);
        zeros = store.upload(host.zeros);
        // wkv_b itself only feeds the two BF16 parts above: the device block keeps their copy in its place. A stacked
        // weight is copied once, the two projections becoming its row slices there too.
        Linear stacked = w.wqKvA() == null ? null : w.wqKvA().to(store);
        long qRows = w.firstQuery().outFeatures();
        Linear first = stacked != null ? stacked.rows(0, qRows) : w.firstQuery().to(store);
        weights = new Weights(
                w.wq() == null ? null : first,
                w.wqA() == null ? null : first,
                w.qNorm() == null ? null : w.qNorm().to(store),
                w.wqB() == null ? null : w.wqB().to(store),
                stacked != null ? stacked.rows(qRows, LATENT) : w.wkvA().to(store),
                w.kvNorm().to(store),
                Linear.bf16(wkvB),
                w.wo().to(store),
                stacked);
    }

    /** Checks that w.wqKvA() stacks the first query projection and wkvA: both its row slices, in that order. */
    private void checkStacked(Weights w) {
        Linear first = w.firstQuery(), stacked = w.wqKvA();
        long qRows = first.outFeatures();
        check(stacked, "wqKvA", qRows + LATENT, config.hidden());
        if (!first.isRowsOf(stacked, 0) || !w.wkvA().isRowsOf(stacked, qRows))
            throw new IllegalArgumentException(
                    "wqKvA must be an FP8 or int8 weight whose rows 0.." + (qRows - 1) + " are "
                            + (w.wq() != null ? "wq" : "wqA") + " and rows " + qRows + ".." + (qRows + LATENT - 1)
                            + " wkvA (the same memory)");
    }

    /**
     * This block with its weights (the projections as stored, the norms, the BF16 parts of wkv_b the absorbed attention
     * multiplies with, RoPE's frequencies, the zero row MHA-style queries take) copied into store's device memory, for
     * contexts of that device.
     */
    public MlaAttention to(DeviceStore store) {
        return new MlaAttention(this, store);
    }

    public Config config() {
        return config;
    }

    /** The projections and norms as this block holds them (on its device after {@link #to}). */
    public Weights weights() {
        return weights;
    }

    /**
     * Bytes of the weights one step reads: the query and kv projections, both norms, the BF16 W_UK and W_UV parts of
     * wkv_b the absorbed attention multiplies with (not the stored wkv_b), and wo.
     */
    public long weightBytes() {
        Weights w = weights;
        long q = config.qLoraRank() == 0
                ? w.wq().weightBytes()
                : w.wqA().weightBytes() + 4L * w.qNorm().dim() + w.wqB().weightBytes();
        long absorbed = 2L * config.heads() * config.kvLoraRank() * (config.qkNopeHeadDim() + config.vHeadDim());
        return q + w.wkvA().weightBytes() + 4L * w.kvNorm().dim() + absorbed + w.wo().weightBytes();
    }

    /** The scale applied to q·k before the softmax: {@code (qk_nope + qk_rope)^-0.5} times YaRN's correction. */
    public float softmaxScale() {
        return softmaxScale;
    }

    /**
     * Hints that ctx's next parallel call reads this block's first projection ({@link Prefetch}): for the caller to
     * give before the small kernels that precede {@link #forward} (the input norm).
     */
    public void prefetch(Context ctx) {
        (weights.wqKvA() != null ? weights.wqKvA() : weights.firstQuery()).prefetch(ctx);
    }

    /**
     * Runs one model step's new tokens through the block: projects them, writes their latent rows into layer
     * {@code layer}'s cache at the step's slots, and attends causally, each token over its sequence up to itself.
     * A sequence's tokens in the step may be a whole prompt, a chunk of one, or one decode token; sequences with one
     * token are attended together in one kernel call, the absorbed way. A sequence with several new tokens may instead
     * be attended MHA-style: its whole context's latent rows decompressed into per-head keys and values (one GEMM per
     * context token instead of the absorbed query and output GEMMs per new token), each head attending with
     * {@code v + nope + rope} dims per key instead of the absorbed 1088. Both compute the same attention and differ by
     * rounding only. With the FP8 cache every token is attended the absorbed way; with the bf16 cache a
     * {@linkplain Context#reproducible reproducible} context takes MHA for every sequence with two or more new tokens
     * (the choice depends on that count alone, so a token's output is the same whatever else is in the step and
     * however its prompt is cut into chunks of two or more tokens), and another context takes whichever of the two is
     * cheaper for the chunk's length and the context before it (MHA decompresses the whole context again for each
     * chunk, so short chunks after long contexts stay absorbed).
     *
     * @param ctx a context of the device that holds this block's weights and the cache
     * @param step the cache's running step (see {@link PagedLatentCache#inStep})
     * @param x F32 or BF16 [step tokens, hidden], rows in step order, in the memory of ctx's device
     * @param out F32 or BF16 [step tokens, hidden], rows contiguous, in the memory of ctx's device
     */
    public void forward(
            Context ctx, PagedLatentCache cache, int layer, PagedLatentCache.Step step, Tensor x, Tensor out) {
        int t = checkIo(x, out);
        if (t != step.tokens())
            throw new IllegalArgumentException("x has " + t + " rows for a step of " + step.tokens() + " tokens");
        try (Workspace.Frame scratch = ctx.workspace().frame()) {
            Projected p = project(ctx, x, step.positions(), scratch);
            wUkTHint.on(ctx); // read by the absorption, after the cache write, norms and RoPE
            cache.write(ctx, layer, step, p.kv());
            Tensor o = Tensor.scratch(scratch, DType.BF16, t, (long) config.heads() * config.vHeadDim());
            Tensor chunkLengths = prefillLengths(step.counts(), step.starts(), scratch);
            Tensor cacheTensor = cache.tensor(layer);
            int[] counts = step.counts();
            for (int i = 0, row = 0, chunkIndex = 0, context = 0; i < counts.length; ) {
                if (counts[i] == 1) {
                    int run = 1; // consecutive one-token sequences: one decode call
                    while (i + run < counts.length && counts[i + run] == 1) run++;
                    Absorbed a = absorb(
                            ctx, p.q().slice(0, row, run), step.positions().slice(0, row, run), scratch);
                    Mla.decode(
                            ctx,
                            asBatch(a.q(), 1),
                            cacheTensor,
                            step.blockTable().slice(0, i, run),
                            step.lengths().slice(0, i, run),
                            softmaxScale,
                            false,
                            asBatch(a.attended(), 1),
                            asBatch(a.lse(), 2));
                    unabsorb(ctx, a.attended(), o.slice(0, row, run));
                    i += run;
                    row += run;
                    continue;
                }
                int n = counts[i], length = step.starts()[i] + n, chunks = (n + prefillChunk() - 1) / prefillChunk();
                Tensor q = p.q().slice(0, row, n), positions = step.positions().slice(0, row, n);
                Tensor lengths = chunkLengths.slice(0, chunkIndex, chunks);
                if (attendsWhole(ctx, cache, n, step.starts()[i]))
                    attendWhole(
                            ctx,
                            cacheTensor,
                            step.contextSlots().slice(0, context, length),
                            q,
                            positions,
                            lengths,
                            o.slice(0, row, n));
                else
                    attendAbsorbed(
                            ctx,
                            cacheTensor,
                            step.blockTable().slice(0, i, 1),
                            q,
                            positions,
                            lengths,
                            o.slice(0, row, n),
                            scratch);
                chunkIndex += chunks;
                context += length;
                i++;
                row += n;
            }
            weights.wo().apply(ctx, o, out);
        }
    }

    /**
     * Whether n new tokens of a sequence after {@code prefix} cached ones are attended MHA-style (see {@link #forward}).
     * Without reproducibility, by estimated time: multiply-adds of each way at the rates measured on an AVX-512 CPU
     * (2 cores, V2-Lite's dims, 512- to 2048-token prompts): the absorbed attention kernel at 59 GFLOP/s, the MHA one
     * at 42 (its queries' zeros against V counted as work), the per-head absorption GEMMs at 67 and the decompression
     * GEMM (one large product) at 107. MHA wins whenever the chunk starts its sequence, and after a long context
     * from about 160 new tokens on.
     */
    private boolean attendsWhole(Context ctx, PagedLatentCache cache, int n, int prefix) {
        if (cache.fp8() || n < 2) return false;
        if (ctx.reproducible()) return true;
        int h = config.heads(), latent = config.kvLoraRank(), v = config.vHeadDim();
        double pairs = n * (prefix + (n + 1) / 2.0) * h,
                projection = (double) h * latent * (config.qkNopeHeadDim() + v);
        double absorbed = pairs * (LATENT + latent) / 59 + n * projection / 67;
        double whole = pairs * (v + config.qHeadDim() + v) / 42 + (prefix + n) * projection / 107;
        return whole < absorbed;
    }

    /** Query tokens per attention call of a prompt chunk. */
    private int prefillChunk() {
        return Math.max(1, PREFILL_CHUNK_ROWS / config.heads());
    }

    /**
     * The cache length each causal query chunk of the step's prompt chunks attends up to (the position after its last
     * token), in order, as I32 [chunks] in the frame's device memory (one copy); null when the step is all decode
     * tokens.
     */
    private Tensor prefillLengths(int[] counts, int[] starts, Workspace.Frame frame) {
        int chunk = prefillChunk(), chunks = 0;
        for (int n : counts) if (n > 1) chunks += (n + chunk - 1) / chunk;
        if (chunks == 0) return null;
        Tensor lengths = Tensor.hostScratch(frame, DType.I32, chunks);
        for (int i = 0, c = 0; i < counts.length; i++) {
            if (counts[i] == 1) continue;
            for (int c0 = 0; c0 < counts[i]; c0 += chunk)
                lengths.setInt(starts[i] + Math.min(c0 + chunk, counts[i]), c++);
        }
        return Copy.toDevice(frame, lengths);
    }

    /** A view of t (dim 0 of extent 1) with dim 0 and {@code tokens} swapped: one query per token as a batch. */
    private static Tensor asBatch(Tensor t, int tokens) {
        long[] shape = t.shape(), strides = t.strides();
        long extent = shape[tokens], stride = strides[tokens];
        shape[tokens] = shape[0];
        strides[tokens] = strides[0];
        shape[0] = extent;
        strides[0] = stride;
        return t.asStrided(0, shape, strides);
    }

    /**
     * A prompt chunk's tokens attended the absorbed way, in causal query chunks over the latent cache.
     *
     * @param q BF16 [n, heads·(nope+rope)], the chunk's projected queries
     * @param lengths I32 [query chunks]: the cache length each query chunk attends up to
     * @param o BF16 [n, heads·v]: the attention's per-head outputs
     */
    private void attendAbsorbed(
            Context ctx,
            Tensor cacheTensor,
            Tensor blockTable,
            Tensor q,
            Tensor positions,
            Tensor lengths,
            Tensor o,
            Workspace.Frame scratch) {
        Absorbed a = absorb(ctx, q, positions, scratch);
        attendCausal(ctx, a.q(), cacheTensor, blockTable, lengths, a.attended(), a.lse());
        unabsorb(ctx, a.attended(), o);
    }

    /**
     * One sequence's n queries attended causally in query chunks of {@link #prefillChunk} tokens, each over the cache
     * up to its last token ({@link Mla#decode} with causal masking).
     *
     * @param query BF16 [1, n, heads, D]
     * @param blockTable I32 [1, blocks] of the sequence in cacheTensor
     * @param lengths I32 [query chunks]: the cache length each query chunk attends up to
     * @param out [1, n, heads, Dv]
     * @param lse F32 [1, heads, n]
     */
    private void attendCausal(
            Context ctx, Tensor query, Tensor cacheTensor, Tensor blockTable, Tensor lengths, Tensor out, Tensor lse) {
        int n = Math.toIntExact(query.shape(1)), chunk = prefillChunk();
        for (int c0 = 0, c = 0; c0 < n; c0 += chunk, c++) {
            int m = Math.min(chunk, n - c0);
            Mla.decode(
                    ctx,
                    query.slice(1, c0, m),
                    cacheTensor,
                    blockTable,
                    lengths.slice(0, c, 1),
                    softmaxScale,
                    true,
                    out.slice(1, c0, m),
                    lse.slice(2, c0, m));
        }
    }

    /**
     * A prompt chunk's tokens attended MHA-style over their sequence's whole context: the context's latent rows are
     * gathered from the cache and decompressed per head into keys {@code [v_h, k_nope_h, k_pe]} (V first, as the
     * attention kernel takes it), the queries become {@code [0, q_nope_h, q_pe]}, and each head attends in causal
     * query chunks; the kernel's output is then each head's value, what wo takes. Scratch holds the keys of the whole
     * context ({@code heads·(v+nope+rope)} bf16 per token) until the call returns.
     *
     * @param contextSlots I32 [context tokens]: the cache slot of every token of the sequence, new ones included
     * @param q BF16 [n, heads·(nope+rope)], the chunk's projected queries
     * @param lengths I32 [query chunks]: the context length each query chunk attends up to
     * @param o BF16 [n, heads·v]: the attention's per-head outputs
     */
    private void attendWhole(
            Context ctx,
            Tensor cacheTensor,
            Tensor contextSlots,
            Tensor q,
            Tensor positions,
            Tensor lengths,
            Tensor o) {
        int n = Math.toIntExact(q.shape(0)), length = Math.toIntExact(contextSlots.shape(0));
        int h = config.heads(), nope = config.qkNopeHeadDim(), v = config.vHeadDim(), ropeDim = config.qkRopeHeadDim();
        int latent = config.kvLoraRank(), qHead = config.qHeadDim(), dim = v + nope + ropeDim;
        int blocks = PagedLatentCache.blocksFor(length);
        try (Workspace.Frame f = ctx.workspace().frame()) {
            Tensor latentRows = Tensor.scratch(f, DType.BF16, length, LATENT);
            Dispatch.gather(
                    ctx, cacheTensor.view((long) cacheTensor.shape(0) * BLOCK, LATENT), contextSlots, latentRows);

            // keys as a cache of the context's blocks, one kv head per query head
            Tensor keys = Tensor.scratch(f, DType.BF16, blocks, BLOCK, h, dim);
            Tensor keyRows = keys.view((long) blocks * BLOCK, (long) h * dim).slice(0, 0, length);
            Tensor c = latentRows.asStrided(0, new long[] {h, length, latent}, new long[] {0, LATENT, 1});
            Gemm.nt(ctx, c, wUv(), null, byHead(keyRows, h, dim, 0, v));
            Gemm.nt(ctx, c, wUk(), null, byHead(keyRows, h, dim, v, nope));
            // every head's keys end in the token's rotated k_pe: one copy, broadcast over the heads
            Cast.apply(
                    ctx,
                    latentRows.asStrided(latent, new long[] {length, h, ropeDim}, new long[] {LATENT, 0, 1}),
                    keys.asStrided(v + nope, new long[] {length, h, ropeDim}, new long[] {(long) h * dim, dim, 1}));

            // queries: zeros against V, q_nope, rotated q_pe
            Tensor query = Tensor.scratch(f, DType.BF16, 1, n, h, dim);
            Tensor queryHeads = query.view(n, h, dim);
            Cast.apply(ctx, zeros.asStrided(0, new long[] {n, h, v}, new long[] {0, 0, 1}), queryHeads.slice(2, 0, v));
            Cast.apply(ctx, q.view(n, h, qHead).slice(2, 0, nope), queryHeads.slice(2, v, nope));
            rope.apply(
                    ctx,
                    q.view(n, h, qHead).slice(2, nope, ropeDim),
                    positions,
                    queryHeads.slice(2, v + nope, ropeDim));

            Tensor table = Tensor.hostScratch(f, DType.I32, 1, blocks);
            for (int b = 0; b < blocks; b++) table.setInt(b, 0, b);
            Tensor blockTable = Copy.toDevice(f, table);
            attendCausal(
                    ctx, query, keys, blockTable, lengths, o.view(1, n, h, v), Tensor.scratch(f, DType.F32, 1, h, n));
        }
    }

    /**
     * Runs new tokens of several sequences as a step of their own on layer {@code layer} of the cache
     * ({@link #forward} inside {@link PagedLatentCache#inStep}; on failure nothing changes), for a cache this block
     * alone drives.
     *
     * @param counts new tokens per sequence; x holds them in order
     */
    public void step(
            Context ctx, PagedLatentCache cache, int layer, int[] sequences, int[] counts, Tensor x, Tensor out) {
        int t = checkIo(x, out);
        if (Arrays.stream(counts).sum() != t)
            throw new IllegalArgumentException("x has " + t + " rows but counts add up to "
                    + Arrays.stream(counts).sum());
        try (Workspace.Frame call = ctx.workspace().frame()) {
            cache.inStep(call, sequences, counts, step -> {
                forward(ctx, cache, layer, step, x, out);
                return null;
            });
        }
    }

    /**
     * The projected queries BF16 [T, heads·(nope+rope)] (q_pe not yet rotated) and latent cache rows BF16 [T, 1, 576].
     */
    private record Projected(Tensor q, Tensor kv) {}

    private Projected project(Context ctx, Tensor x, Tensor position, Workspace.Frame scratch) {
        int t = Math.toIntExact(x.shape(0)), latent = config.kvLoraRank(), ropeDim = config.qkRopeHeadDim();
        // the query and kv projections read the same x: quantized once where both weights are FP8, and multiplied
        // with once where they are stacked
        Linear first = weights.firstQuery();
        long qRows = first.outFeatures();
        QuantizedTensor xq = first.isFp8() && weights.wkvA().isFp8() ? Linear.quantizeTokens(ctx, x, scratch) : null;
        Tensor both = weights.wqKvA() == null ? null : weights.wqKvA().apply(ctx, x, xq, DType.F32, scratch);
        Tensor q;
        if (config.qLoraRank() == 0) {
            if (both == null) {
                q = weights.wq().apply(ctx, x, xq, DType.BF16, scratch);
            } else {
                // the same bits as the GEMM's own BF16 output: both round the fp32 sums to nearest even
                q = Tensor.scratch(scratch, DType.BF16, t, qRows);
                Cast.apply(ctx, both.slice(1, 0, qRows), q);
            }
        } else {
            Tensor qa = both != null ? both.slice(1, 0, qRows) : weights.wqA().apply(ctx, x, xq, DType.F32, scratch);
            Tensor normed = Tensor.scratch(scratch, DType.F32, t, config.qLoraRank());
            weights.qNorm().apply(ctx, qa, normed);
            q = weights.wqB().apply(ctx, normed, DType.BF16, scratch);
        }

        // kv rows: normalized latent, rotated k_pe
        Tensor kv = both != null
                ? both.slice(1, qRows, LATENT)
                : weights.wkvA().apply(ctx, x, xq, DType.F32, scratch); // [T, 576]
        Tensor kvRows = Tensor.scratch(scratch, DType.BF16, t, 1, LATENT);
        weights.kvNorm()
                .apply(ctx, kv.slice(1, 0, latent), kvRows.view(t, LATENT).slice(1, 0, latent));
        Tensor kPe = kv.asStrided(latent, new long[] {t, 1, ropeDim}, new long[] {kv.strides()[0], ropeDim, 1});
        rope.apply(ctx, kPe, position, kvRows.slice(2, latent, ropeDim));
        return new Projected(q, kvRows);
    }

    /**
     * Absorbed queries BF16 [1, n, heads, 576] of n token rows, and room for their attention: attended BF16
     * [1, n, heads, 512] and lse F32 [1, heads, n].
     */
    private record Absorbed(Tensor q, Tensor attended, Tensor lse) {}

    /** q_nope · W_UK[h] for all heads in one call, then the rotated q_pe; q BF16 [n, heads·(nope+rope)]. */
    private Absorbed absorb(Context ctx, Tensor q, Tensor positions, Workspace.Frame scratch) {
        int n = Math.toIntExact(q.shape(0)), h = config.heads(), nope = config.qkNopeHeadDim();
        int qHead = config.qHeadDim(), latent = config.kvLoraRank(), ropeDim = config.qkRopeHeadDim();
        Tensor qAbs = Tensor.scratch(scratch, DType.BF16, 1, n, h, LATENT);
        Gemm.nt(
                ctx,
                byHead(q, h, qHead, 0, nope),
                wUkT.view(h, latent, nope),
                null,
                byHead(qAbs.view(n, (long) h * LATENT), h, LATENT, 0, latent));
        rope.apply(
                ctx,
                q.view(n, h, qHead).slice(2, nope, ropeDim),
                positions,
                qAbs.view(n, h, LATENT).slice(2, latent, ropeDim));
        return new Absorbed(
                qAbs,
                Tensor.scratch(scratch, DType.BF16, 1, n, h, latent),
                Tensor.scratch(scratch, DType.F32, 1, h, n));
    }

    /** o rows {@code [n, heads·v] = attended[:, h] · W_UV[h]ᵀ} for every head; attended BF16 [1, n, heads, 512]. */
    private void unabsorb(Context ctx, Tensor attended, Tensor o) {
        int n = Math.toIntExact(attended.shape(1)), h = config.heads(), v = config.vHeadDim();
        int latent = config.kvLoraRank();
        Gemm.nt(
                ctx,
                byHead(attended.view(n, (long) h * latent), h, latent, 0, latent),
                wUv(),
                null,
                byHead(o, h, v, 0, v));
    }

    /** W_UK of every head, [heads, nope, 512]: rows h·(nope+v) .. of wkv_b. */
    private Tensor wUk() {
        int h = config.heads(), nope = config.qkNopeHeadDim(), v = config.vHeadDim();
        long row = wkvB.strides()[0];
        return wkvB.asStrided(0, new long[] {h, nope, config.kvLoraRank()}, new long[] {(nope + v) * row, row, 1});
    }

    /** W_UV of every head, [heads, v, 512]: rows h·(nope+v)+nope .. of wkv_b. */
    private Tensor wUv() {
        int h = config.heads(), nope = config.qkNopeHeadDim(), v = config.vHeadDim();
        long row = wkvB.strides()[0];
        return wkvB.asStrided(
                nope * row, new long[] {h, v, config.kvLoraRank()}, new long[] {(nope + v) * row, row, 1});
    }

    /**
     * Columns {@code offset .. offset + width} of each head's {@code headStride}-wide part of token rows [T, ·] (rows
     * of any stride, innermost stride 1), as [heads, T, width]: one batch entry per head for {@link Gemm#nt}.
     */
    private static Tensor byHead(Tensor rows, int heads, long headStride, long offset, long width) {
        return rows.asStrided(
                offset, new long[] {heads, rows.shape(0), width}, new long[] {headStride, rows.strides()[0], 1});
    }

    private int checkIo(Tensor x, Tensor out) {
        Objects.requireNonNull(x, "x");
        Objects.requireNonNull(out, "out");
        if (x.rank() != 2 || x.shape(1) != config.hidden())
            throw new IllegalArgumentException("x must be [T, " + config.hidden() + "], got " + x);
        if (out.rank() != 2 || out.shape(0) != x.shape(0) || out.shape(1) != config.hidden())
            throw new IllegalArgumentException(
                    "out must be [" + x.shape(0) + ", " + config.hidden() + "] like x, got " + out);
        if (x.shape(0) == 0) throw new IllegalArgumentException("x has no tokens");
        return Math.toIntExact(x.shape(0));
    }

    /** Head h's key part of wkv_b (rows h·(nope+v) .. + nope, [nope, 512]) transposed to [512, nope], on the host. */
    private Tensor transposeKeyParts(Tensor wkvB, Arena arena) {
        if (!wkvB.isHostMemory())
            throw new IllegalArgumentException("wkvB must be in host memory (build the block on the host, then copy it"
                    + " with to(DeviceStore)), got " + wkvB);
        int h = config.heads(), nope = config.qkNopeHeadDim(), v = config.vHeadDim(), latent = config.kvLoraRank();
        Tensor t = Tensor.allocate(arena, DType.BF16, (long) h * latent, nope);
        MemorySegment src = wkvB.segment(), dst = t.segment();
        long srcRow = wkvB.strides()[0];
        for (int head = 0; head < h; head++) {
            for (int d = 0; d < nope; d++) {
                long from = ((long) head * (nope + v) + d) * srcRow;
                for (int c = 0; c < latent; c++) {
                    short bits = src.getAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, from + c);
                    dst.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, ((long) head * latent + c) * nope + d, bits);
                }
            }
        }
        return t;
    }

    private static void check(Linear w, String name, long out, long in) {
        if (w == null) throw new IllegalArgumentException("weight " + name + " is missing");
        if (w.outFeatures() != out || w.inFeatures() != in)
            throw new IllegalArgumentException("weight " + name + " must be [" + out + ", " + in + "], got ["
                    + w.outFeatures() + ", " + w.inFeatures() + "]");
    }

    private static void check(RmsNorm norm, String name, int dim) {
        if (norm == null) throw new IllegalArgumentException("norm " + name + " is missing");
        if (norm.dim() != dim)
            throw new IllegalArgumentException("norm " + name + " must have " + dim + " dims, got " + norm.dim());
    }
}
