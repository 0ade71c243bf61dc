package dev.moe4j.model;

import dev.moe4j.kernels.Cast;
import dev.moe4j.kernels.Fp8Gemm;
import dev.moe4j.kernels.Q8Gemm;
import dev.moe4j.kernels.Quantization;
import dev.moe4j.kernels.ScaleFormat;
import dev.moe4j.routing.Gate;
import dev.moe4j.routing.Routing;
import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.Workspace;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.QuantizedGroups;
import dev.moe4j.tensor.QuantizedTensor;
import dev.moe4j.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * One DeepSeek decoder layer: {@code h = x + MLA(RMSNorm(x))}, {@code y = h + FFN(RMSNorm(h))}, where FFN is the
 * layer's {@link MoeLayer} or, before {@code first_k_dense_replace}, its {@link DenseMlp}. The residual stream is
 * F32; normalized activations enter the projections as BF16, as in the bf16 reference model.
 *
 * <p>{@link #load} reads the layer from a {@link Checkpoint} by HF tensor names. FP8 weights ({@code weight} E4M3 +
 * {@code weight_scale_inv}) are used as stored; BF16 (or F32/F16) weights are quantized to FP8 128x128 blocks when
 * {@code quantize} is set and their input width is a multiple of 128, and kept BF16 otherwise. Routed experts are
 * always FP8 (the grouped expert kernel is FP8), quantized on load when the checkpoint holds them in BF16.
 *
 * <p>A loaded layer lives in host memory (FP8 weights in the checkpoint's map) and runs on a CPU context; {@link #to}
 * copies it to a device, where it runs on a context of that device with the residual stream and the cache there.
 *
 * <p>Not thread-safe: one thread drives a layer (its MoE part holds reusable tables).
 */
public final class DecoderLayer {
    private final int index;
    private final RmsNorm inputNorm, postNorm;
    private final MlaAttention attention;
    private final MoeBlock moe;
    private final DenseMlp mlp;

    public DecoderLayer(
            int index, RmsNorm inputNorm, MlaAttention attention, RmsNorm postNorm, MoeBlock moe, DenseMlp mlp) {
        if ((moe == null) == (mlp == null))
            throw new IllegalArgumentException("a layer has either an MoE part or a dense MLP, not both or neither");
        this.index = index;
        this.inputNorm = Objects.requireNonNull(inputNorm, "inputNorm");
        this.attention = Objects.requireNonNull(attention, "attention");
        this.postNorm = Objects.requireNonNull(postNorm, "postNorm");
        this.moe = moe;
        this.mlp = mlp;
    }

    public int index() {
        return index;
    }

    public MlaAttention attention() {
        return attention;
    }

    /** The MoE part, or null for a dense layer. */
    public MoeBlock moe() {
        return moe;
    }

    /** This layer with another MoE part (the same experts spread over devices, say). */
    public DecoderLayer withMoe(MoeBlock replacement) {
        if (moe == null) throw new IllegalStateException("layer " + index + " is dense");
        return new DecoderLayer(index, inputNorm, attention, postNorm, Objects.requireNonNull(replacement), null);
    }

    /**
     * This layer with its norms, attention, dense MLP and MoE part copied into store's device memory, for contexts of
     * that device. An MoE part that is not a {@link MoeLayer} (experts spread over devices by
     * {@link dev.moe4j.parallel.ExpertParallelMoe}) keeps its own placement and is taken as it is.
     */
    public DecoderLayer to(DeviceStore store) {
        return new DecoderLayer(
                index,
                inputNorm.to(store),
                attention.to(store),
                postNorm.to(store),
                moe instanceof MoeLayer local ? local.to(store) : moe,
                mlp == null ? null : mlp.to(store));
    }

    /** The dense MLP, or null for an MoE layer. */
    public DenseMlp mlp() {
        return mlp;
    }

    /**
     * Hints that ctx's next parallel call reads the layer's first weight ({@link dev.moe4j.kernels.Prefetch}): for the
     * caller to give before what precedes {@link #forward} (the previous layer's last small kernels, the embedding).
     */
    public void prefetch(Context ctx) {
        attention.prefetch(ctx);
    }

    /**
     * Runs one model step's new tokens through the layer (see {@link MlaAttention#forward}). The layer's output is
     * left as two terms, {@code sum + branch}, for the next layer's input norm (or the model's final one) to add as it
     * reads them: one pass over the rows where a separate add would take two. Bit for bit the same as adding first,
     * the add being one rounded fp32 addition either way.
     *
     * @param ctx a context of the device that holds the layer
     * @param step the cache's running step ({@link PagedLatentCache#inStep}); layer {@link #index} of the cache is used
     * @param x F32 or BF16 [step tokens, hidden], rows in step order, in the memory of ctx's device: with residual, the
     *     layer's input is {@code x + residual}
     * @param residual null, or F32 [step tokens, hidden]
     * @param routing receives the MoE routing (ignored by dense layers; may be null for them)
     * @param sum F32 [step tokens, hidden], contiguous: receives the input plus the attention's output (the residual
     *     stream before the FFN); may be residual itself, must not overlap x or branch otherwise
     * @param branch F32 [step tokens, hidden], contiguous: receives the FFN's output; may be x itself (read before it
     *     is written), must not overlap anything else
     */
    public void forward(
            Context ctx,
            PagedLatentCache cache,
            PagedLatentCache.Step step,
            Tensor x,
            Tensor residual,
            Routing routing,
            Tensor sum,
            Tensor branch) {
        if (x.rank() != 2) throw new IllegalArgumentException("x must be [T, hidden], got " + x);
        long t = x.shape(0), h = x.shape(1);
        checkStream(residual, "residual", t, h, true);
        checkStream(sum, "sum", t, h, false);
        checkStream(branch, "branch", t, h, false);
        if (sum == branch) throw new IllegalArgumentException("sum and branch must be different tensors");
        try (Workspace.Frame scratch = ctx.workspace().frame()) {
            Tensor normed = Tensor.scratch(scratch, DType.BF16, t, h);
            Tensor attended = Tensor.scratch(scratch, DType.F32, t, h);
            inputNorm.apply(ctx, x, residual, sum, normed); // sum = x + residual, normed = norm(sum)
            attention.forward(ctx, cache, index, step, normed, attended);
            if (moe != null) moe.gate().prefetch(ctx);
            else mlp.prefetch(ctx);
            postNorm.apply(ctx, attended, sum, sum, normed); // sum += attended, normed = norm(sum)
            if (moe != null) moe.forward(ctx, normed, routing, branch);
            else mlp.apply(ctx, normed, branch);
        }
    }

    private static void checkStream(Tensor t, String name, long tokens, long hidden, boolean optional) {
        if (t == null && optional) return;
        if (t == null
                || t.dtype() != DType.F32
                || t.rank() != 2
                || t.shape(0) != tokens
                || t.shape(1) != hidden
                || !t.isContiguous())
            throw new IllegalArgumentException(
                    name + " must be a contiguous F32 [" + tokens + ", " + hidden + "] like x, got " + t);
    }

    /**
     * Loads layer {@code layer} of a checkpoint.
     *
     * @param quantize quantize BF16 dense weights to FP8 on load (routed experts are quantized regardless)
     * @param q8Dense the attention projections that read the hidden state or the attention output (q or q_a, kv_a, o;
     *     not q_b, which reads the small q_lora rank, nor kv_b, which MLA absorbs in bf16), the dense MLPs and the MoE
     *     layers' shared experts as int8 with a scale per row ({@link Linear#q8}), quantized on load from whatever the
     *     checkpoint stores; the routed experts stay FP8
     * @param pack pack the FP8 weights that only the FP8 GEMMs read ({@link Fp8Gemm#packWeights}; copies): for a
     *     CPU context, on whose AVX-512 paths packed weights are faster at every batch size
     * @param arena owns every copied or quantized weight (FP8 weights used as stored stay in the checkpoint's
     *     mapping, which must outlive the layer)
     * @throws IllegalArgumentException naming the tensor when one is missing or has the wrong dtype or shape
     */
    public static DecoderLayer load(
            Checkpoint c, int layer, boolean quantize, boolean q8Dense, boolean pack, Context ctx, Arena arena) {
        ModelConfig cfg = c.config();
        if (layer < 0 || layer >= cfg.numHiddenLayers())
            throw new IllegalArgumentException(
                    "layer " + layer + " outside 0.." + (cfg.numHiddenLayers() - 1) + " of " + c.dir());
        Loader l = new Loader(c, quantize, q8Dense, pack, ctx, arena);
        String p = "model.layers." + layer + ".";
        MlaAttention.Config mc = cfg.mla();
        int h = cfg.hiddenSize(), heads = cfg.numAttentionHeads(), qHead = mc.qkNopeHeadDim() + mc.qkRopeHeadDim();
        float eps = (float) cfg.rmsNormEps();
        // the query projection that reads the hidden state and kv_a_proj, stacked into one weight where both are FP8 or
        // both int8
        Linear[] projections = l.stacked(
                p + (mc.qLoraRank() == 0 ? "self_attn.q_proj" : "self_attn.q_a_proj"),
                mc.qLoraRank() == 0 ? (long) heads * qHead : mc.qLoraRank(),
                p + "self_attn.kv_a_proj_with_mqa",
                mc.kvLoraRank() + mc.qkRopeHeadDim(),
                h);
        var weights = new MlaAttention.Weights(
                mc.qLoraRank() == 0 ? projections[0] : null,
                mc.qLoraRank() == 0 ? null : projections[0],
                mc.qLoraRank() == 0 ? null : l.norm(p + "self_attn.q_a_layernorm", mc.qLoraRank(), eps),
                mc.qLoraRank() == 0 ? null : l.linear(p + "self_attn.q_b_proj", heads * qHead, mc.qLoraRank()),
                projections[1],
                l.norm(p + "self_attn.kv_a_layernorm", mc.kvLoraRank(), eps),
                l.linear(
                        p + "self_attn.kv_b_proj",
                        heads * (mc.qkNopeHeadDim() + mc.vHeadDim()),
                        mc.kvLoraRank(),
                        false),
                l.dense(p + "self_attn.o_proj", h, heads * mc.vHeadDim()),
                projections[2]);
        MlaAttention attention = new MlaAttention(ctx, mc, weights, arena);
        RmsNorm inputNorm = l.norm(p + "input_layernorm", h, eps),
                postNorm = l.norm(p + "post_attention_layernorm", h, eps);
        if (!cfg.isMoeLayer(layer)) {
            DenseMlp mlp = l.denseMlp(p + "mlp", cfg.intermediateSize(), h, true);
            return new DecoderLayer(layer, inputNorm, attention, postNorm, null, mlp);
        }
        int experts = cfg.nRoutedExperts(), inter = cfg.moeIntermediateSize();
        Tensor gateWeight = l.bf16(l.checked(p + "mlp.gate.weight", experts, h));
        float[] bias = c.has(p + "mlp.gate.e_score_correction_bias")
                ? l.checked(p + "mlp.gate.e_score_correction_bias", experts).toFloatArray()
                : null;
        Gate gate = new Gate(cfg.gate(), Linear.bf16(gateWeight), bias);
        QuantizedGroups[] groups = {
            l.expertGroups(p + "mlp.experts.", "gate_proj", experts, inter, h),
            l.expertGroups(p + "mlp.experts.", "up_proj", experts, inter, h),
            l.expertGroups(p + "mlp.experts.", "down_proj", experts, h, inter)
        };
        // Int8, the shared experts run beside the routed ones as a dense MLP: every token's row meets them, so at 8
        // and more rows their FP8 GEMMs were bound by bf16 dot products (in the routed experts' fused call they cost
        // 0.6-0.9 ms a layer more than their bytes at batch 8). FP8, the MoE layer runs them in the routed experts'
        // call as expert-shaped column slices of down_proj, which therefore stays unpacked (row slices of packed
        // gate_proj and up_proj at multiples of 32 rows are packed weights too).
        DenseMlp shared = cfg.nSharedExperts() == 0
                ? null
                : l.denseMlp(p + "mlp.shared_experts", (long) cfg.nSharedExperts() * inter, h, false);
        MoeLayer moe = new MoeLayer(gate, groups[0], groups[1], groups[2], shared, 1);
        return new DecoderLayer(layer, inputNorm, attention, postNorm, moe, null);
    }

    /** Reads weights by name with shape and dtype checks. */
    private record Loader(Checkpoint c, boolean quantize, boolean q8Dense, boolean pack, Context ctx, Arena arena) {
        Tensor checked(String name, long... shape) {
            Tensor t = c.tensor(name);
            long[] s = t.shape();
            if (!Arrays.equals(s, shape))
                throw new IllegalArgumentException("tensor '" + name + "' in " + c.dir() + " is " + Arrays.toString(s)
                        + ", expected " + Arrays.toString(shape));
            return t;
        }

        Linear linear(String prefix, long out, long in) {
            return linear(prefix, out, in, true);
        }

        /** With packable false: for weights read otherwise than by the FP8 GEMMs (kv_b_proj, dequantized for MLA). */
        Linear linear(String prefix, long out, long in, boolean packable) {
            Tensor w = checked(prefix + ".weight", out, in);
            if (!becomesFp8(w)) return Linear.bf16(bf16(w));
            QuantizedTensor q = fp8Weight(prefix, w, arena);
            return Linear.fp8(packable ? packed(q) : q);
        }

        /**
         * A weight that every token's row reads (see {@link DecoderLayer#load}'s q8Dense): int8 where the loader makes
         * them so and the shape allows it ({@link Q8Gemm#quantizable}), else as {@link #linear}.
         */
        Linear dense(String prefix, long out, long in) {
            Tensor w = checked(prefix + ".weight", out, in);
            if (!q8Dense || !Q8Gemm.quantizable(w)) return linear(prefix, out, in);
            try (Arena temp = Arena.ofConfined()) {
                return Linear.q8(Q8Gemm.quantizeWeights(ctx, real(prefix, w, temp), arena));
            }
        }

        /**
         * A weight as F32 or BF16 for a quantization: as stored, FP8 dequantized (F32) or F16 widened into allocator.
         */
        private Tensor real(String prefix, Tensor w, Arena allocator) {
            if (w.dtype() != DType.E4M3) return floats(prefix + ".weight", w);
            return Quantization.dequantize(ctx, fp8(prefix, w), DType.F32, allocator);
        }

        /** Whether a linear weight [out, in] loads as FP8: stored so, or quantized (in a multiple of 128). */
        private boolean becomesFp8(Tensor w) {
            return w.dtype() == DType.E4M3 || quantize && w.shape(1) % QuantizedTensor.BLOCK == 0;
        }

        /**
         * Projections a [nA, k] and b [nB, k] of one input as one weight [nA + nB, k] and its two row slices: {a, b,
         * stacked}. Int8 where the loader makes dense weights so ({@link Linear#stackQ8}), else FP8 (a copy, packed when
         * the loader packs). Apart, {a, b, null}, where one would stay BF16 or b would not begin a scale block (nA not a
         * multiple of 128).
         */
        Linear[] stacked(String a, long nA, String b, long nB, long k) {
            long block = QuantizedTensor.BLOCK;
            Tensor wa = checked(a + ".weight", nA, k), wb = checked(b + ".weight", nB, k);
            if (q8Dense && Q8Gemm.quantizable(wa) && Q8Gemm.quantizable(wb)) {
                try (Arena temp = Arena.ofConfined()) {
                    Linear stacked = Linear.stackQ8(ctx, real(a, wa, temp), nA, real(b, wb, temp), nB, arena);
                    return new Linear[] {stacked.rows(0, nA), stacked.rows(nA, nB), stacked};
                }
            }
            if (!becomesFp8(wa) || !becomesFp8(wb) || nA % block != 0)
                return new Linear[] {linear(a, nA, k), linear(b, nB, k), null};
            try (Arena temp = Arena.ofConfined()) { // parts quantized here feed the stacked copy only
                Linear stacked = Linear.stack(ctx, fp8Weight(a, wa, temp), fp8Weight(b, wb, temp), pack, arena);
                return new Linear[] {stacked.rows(0, nA), stacked.rows(nA, nB), stacked};
            }
        }

        /** An [n, k] weight as stored in FP8 (in the checkpoint's map), or quantized into allocator. */
        private QuantizedTensor fp8Weight(String prefix, Tensor w, Arena allocator) {
            return w.dtype() == DType.E4M3
                    ? fp8(prefix, w)
                    : Quantization.perBlock(ctx, floats(prefix + ".weight", w), ScaleFormat.FP32, allocator);
        }

        /** q packed into the arena when the loader packs and its rows make whole panels; q otherwise. */
        QuantizedTensor packed(QuantizedTensor q) {
            return pack && Fp8Gemm.packable(q) ? Fp8Gemm.packWeights(ctx, q, arena) : q;
        }

        QuantizedTensor fp8(String prefix, Tensor w) {
            long out = w.shape(0), in = w.shape(1);
            if (in % QuantizedTensor.BLOCK != 0)
                throw new IllegalArgumentException("tensor '" + prefix + ".weight' is FP8 with " + in
                        + " input features, not a multiple of 128 (the FP8 GEMM's K blocks)");
            Tensor s = checked(prefix + ".weight_scale_inv", (out + 127) / 128, in / 128);
            if (s.dtype() != DType.F32)
                throw new IllegalArgumentException(
                        "tensor '" + prefix + ".weight_scale_inv' is " + s.dtype() + ", expected F32");
            return new QuantizedTensor(w, s, QuantizedTensor.BLOCK);
        }

        /** F32 or BF16 input for quantization (F16 widened). */
        Tensor floats(String name, Tensor w) {
            return switch (w.dtype()) {
                case F32, BF16 -> w;
                case F16 -> Tensor.fromFloats(arena, DType.F32, w.toFloatArray(), w.shape());
                default ->
                    throw new IllegalArgumentException(
                            "tensor '" + name + "' is " + w.dtype() + ", expected a float or FP8 weight");
            };
        }

        Tensor bf16(Tensor w) {
            if (w.dtype() == DType.BF16) return w;
            return Tensor.fromFloats(arena, DType.BF16, floats("weight", w).toFloatArray(), w.shape());
        }

        RmsNorm norm(String prefix, int dim, float eps) {
            return new RmsNorm(checked(prefix + ".weight", dim).toFloatArray(), eps);
        }

        /**
         * A dense layer's MLP or an MoE layer's shared experts: with int8 dense weights, gate and up stacked into one int8
         * weight and down int8 (the intermediate width padded to a multiple of 128 with zero gate and up rows and zero
         * down columns, which add SiLU(0)·0 = 0), run as two GEMMs ({@link DenseMlp#stacked}); else as {@link #mlp}
         * (packDown: see there).
         */
        DenseMlp denseMlp(String prefix, long inter, long h, boolean packDown) {
            Tensor gate = checked(prefix + ".gate_proj.weight", inter, h),
                    up = checked(prefix + ".up_proj.weight", inter, h),
                    down = checked(prefix + ".down_proj.weight", h, inter);
            long padded = (inter + 127) / 128 * 128;
            if (!q8Dense || !Q8Gemm.quantizable(gate)) return mlp(prefix, inter, h, packDown);
            try (Arena temp = Arena.ofConfined()) {
                Linear gateUp = Linear.stackQ8(
                        ctx,
                        real(prefix + ".gate_proj", gate, temp),
                        padded,
                        real(prefix + ".up_proj", up, temp),
                        padded,
                        arena);
                Tensor wide = widened(real(prefix + ".down_proj", down, temp), padded, temp);
                return DenseMlp.stacked(gateUp, Linear.q8(Q8Gemm.quantizeWeights(ctx, wide, arena)));
            }
        }

        /**
         * w (F32 or BF16 [n, k], contiguous) as F32 [n, padded] with zero columns past k, in allocator (w itself where
         * it is F32 and padded is k).
         */
        private Tensor widened(Tensor w, long padded, Arena allocator) {
            long n = w.shape(0), k = w.shape(1);
            Tensor f32 = w;
            if (w.dtype() != DType.F32) {
                f32 = Tensor.allocate(allocator, DType.F32, n, k);
                Cast.apply(ctx, w, f32);
            }
            if (padded == k) return f32;
            Tensor wide = Tensor.allocate(allocator, DType.F32, n, padded);
            for (long r = 0; r < n; r++)
                MemorySegment.copy(f32.segment(), 4 * r * k, wide.segment(), 4 * r * padded, 4 * k);
            return wide;
        }

        /** With packDown false, down_proj stays unpacked (its column slices are weights too). */
        DenseMlp mlp(String prefix, long inter, long h, boolean packDown) {
            long block = QuantizedTensor.BLOCK;
            if (quantize && inter % block != 0) return paddedMlp(prefix, inter, h, (inter + block - 1) / block * block);
            return new DenseMlp(
                    linear(prefix + ".gate_proj", inter, h),
                    linear(prefix + ".up_proj", inter, h),
                    linear(prefix + ".down_proj", h, inter, packDown));
        }

        /**
         * With load-time quantization, an MLP whose intermediate width is not a multiple of 128 (V2-Lite's 10944-wide
         * dense MLP: its down_proj cannot be FP8 in 128-column blocks) is widened to {@code padded} with zero gate and
         * up rows and zero down columns: the extra intermediate values are SiLU(0)·0 = 0 and add nothing, so the MLP is
         * the same function, now all FP8 and run as one fused call. Copies the weights (the widened ones).
         */
        private DenseMlp paddedMlp(String prefix, long inter, long h, long padded) {
            Linear gate = padRows(prefix + ".gate_proj", inter, h, padded);
            Linear up = padRows(prefix + ".up_proj", inter, h, padded);
            Tensor down = checked(prefix + ".down_proj.weight", h, inter);
            if (down.dtype() == DType.E4M3)
                throw new IllegalArgumentException("tensor '" + prefix + ".down_proj.weight' is FP8 with " + inter
                        + " input features, not a multiple of 128 (the FP8 GEMM's K blocks)");
            Linear downFp8;
            try (Arena temp = Arena.ofConfined()) { // the widened F32 copy only feeds the quantization
                Tensor wide = widened(floats(prefix + ".down_proj.weight", down), padded, temp);
                downFp8 = Linear.fp8(packed(Quantization.perBlock(ctx, wide, ScaleFormat.FP32, arena)));
            }
            return new DenseMlp(gate, up, downFp8);
        }

        /** An [n, k] weight as FP8 [padded, k] with zero rows past n (quantized first when stored in BF16). */
        private Linear padRows(String prefix, long n, long k, long padded) {
            Tensor w = checked(prefix + ".weight", n, k);
            QuantizedTensor q = fp8Weight(prefix, w, arena);
            Tensor data = Tensor.allocate(arena, DType.E4M3, padded, k); // zero: e4m3 code 0 is 0.0
            MemorySegment.copy(q.data().segment(), 0, data.segment(), 0, n * k);
            // the scales already cover ceil(n/128) = padded/128 row blocks
            return Linear.fp8(packed(new QuantizedTensor(data, q.scales(), QuantizedTensor.BLOCK)));
        }

        /**
         * Every expert's {@code proj} weight [n, k], one FP8 group per expert: FP8 experts are used where the
         * checkpoint stores them (in the memory map, whatever shard and offset each is at; no copy), other experts are
         * quantized into the arena one by one.
         */
        QuantizedGroups expertGroups(String prefix, String proj, int experts, long n, long k) {
            if (k % QuantizedTensor.BLOCK != 0)
                throw new IllegalArgumentException(prefix + "*." + proj + " has " + k
                        + " input features, not a multiple of 128 (the FP8 expert kernel's K blocks)");
            List<QuantizedTensor> groups = new ArrayList<>(experts);
            for (int e = 0; e < experts; e++) {
                String name = prefix + e + "." + proj;
                Tensor w = checked(name + ".weight", n, k);
                groups.add(packed(fp8Weight(name, w, arena)));
            }
            return QuantizedGroups.of(groups);
        }
    }
}
