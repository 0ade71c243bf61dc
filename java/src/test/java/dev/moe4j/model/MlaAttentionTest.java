package dev.moe4j.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.moe4j.kernels.Copy;
import dev.moe4j.kernels.Fp8Gemm;
import dev.moe4j.kernels.Q8Gemm;
import dev.moe4j.kernels.Quantization;
import dev.moe4j.kernels.ScaleFormat;
import dev.moe4j.runtime.Context;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.QuantizedTensor;
import dev.moe4j.tensor.Tensor;
import dev.moe4j.testing.Reference;
import dev.moe4j.testing.TestSupport;
import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The absorbed MLA block against the naive formulation: every head's keys and values decompressed from the latent
 * (k = [c·W_UK[h]ᵀ, k_pe], v = c·W_UV[h]ᵀ), ordinary causal attention, all in float64 on the same weights.
 */
class MlaAttentionTest {
    static final int HIDDEN = 256, HEADS = 16, NOPE = 128, ROPE = 64, V = 128, LATENT = 512;
    static final Rope.Yarn V3_YARN = new Rope.Yarn(40, 4096, 32, 1, 1, 1);

    /** The weights as floats (what the module's weights hold, after rounding) and as the module takes them. */
    record Model(
            MlaAttention.Config config,
            MlaAttention.Weights weights,
            List<float[]> dense,
            float[] qNorm,
            float[] kvNorm) {}

    static Model model(Context ctx, Arena arena, SplittableRandom random, int qLora, boolean fp8) {
        var config = new MlaAttention.Config(HIDDEN, HEADS, qLora, LATENT, NOPE, ROPE, V, 1e-6f, 10000, V3_YARN);
        int qOut = HEADS * (NOPE + ROPE);
        int[][] shapes = qLora == 0
                ? new int[][] {
                    {qOut, HIDDEN}, {LATENT + ROPE, HIDDEN}, {HEADS * (NOPE + V), LATENT}, {HIDDEN, HEADS * V}
                }
                : new int[][] {
                    {qLora, HIDDEN},
                    {qOut, qLora},
                    {LATENT + ROPE, HIDDEN},
                    {HEADS * (NOPE + V), LATENT},
                    {HIDDEN, HEADS * V}
                };
        List<Linear> linears = new ArrayList<>();
        List<float[]> dense = new ArrayList<>();
        for (int[] shape : shapes) {
            float[] w = new float[shape[0] * shape[1]];
            for (int i = 0; i < w.length; i++) w[i] = (float) (random.nextGaussian() / Math.sqrt(shape[1]));
            Tensor wf = Tensor.fromFloats(arena, DType.F32, w, shape[0], shape[1]);
            if (fp8) {
                QuantizedTensor q = Quantization.perBlock(ctx, wf, ScaleFormat.FP32, arena);
                linears.add(Linear.fp8(q));
                dense.add(Quantization.dequantize(ctx, q, DType.F32, arena).toFloatArray());
            } else {
                Tensor wb = Tensor.fromFloats(arena, DType.BF16, w, shape[0], shape[1]);
                linears.add(Linear.bf16(wb));
                dense.add(wb.toFloatArray());
            }
        }
        float[] qNorm = qLora == 0 ? null : norm(random, qLora), kvNorm = norm(random, LATENT);
        int i = 0;
        MlaAttention.Weights weights = qLora == 0
                ? new MlaAttention.Weights(
                        linears.get(i++),
                        null,
                        null,
                        null,
                        linears.get(i++),
                        new RmsNorm(kvNorm, 1e-6f),
                        linears.get(i++),
                        linears.get(i))
                : new MlaAttention.Weights(
                        null,
                        linears.get(i++),
                        new RmsNorm(qNorm, 1e-6f),
                        linears.get(i++),
                        linears.get(i++),
                        new RmsNorm(kvNorm, 1e-6f),
                        linears.get(i++),
                        linears.get(i));
        return new Model(config, weights, dense, qNorm, kvNorm);
    }

    static float[] norm(SplittableRandom random, int n) {
        float[] w = new float[n];
        for (int i = 0; i < n; i++) w[i] = (float) (1 + 0.2 * random.nextGaussian());
        return w;
    }

    /**
     * Naive MLA in float64, one token at a time, keeping per-head K and V of every sequence. With FP8 weights it
     * quantizes each linear layer's input per token as the FP8 GEMM path does (128-wide groups), so the comparison
     * measures the attention formulation rather than FP8 activation error.
     */
    static final class Naive {
        final Model m;
        final int qLora;
        final boolean fp8;
        final double[] freqs = new double[ROPE / 2];
        final double scale;
        final List<List<double[][]>> keys = new ArrayList<>(), values = new ArrayList<>();

        Naive(Model m, boolean fp8) {
            this.m = m;
            this.fp8 = fp8;
            qLora = m.config().qLoraRank();
            // YaRN per DeepSeek-V3's precompute_freqs_cis, in float64
            double low = Math.max(Math.floor(correction(32)), 0), high = Math.min(Math.ceil(correction(1)), ROPE - 1);
            for (int i = 0; i < ROPE / 2; i++) {
                double f = Math.pow(10000, -2.0 * i / ROPE);
                double smooth = 1 - Math.clamp((i - low) / (high - low), 0, 1);
                freqs[i] = f / 40 * (1 - smooth) + f * smooth;
            }
            double mscale = 0.1 * Math.log(40) + 1;
            scale = mscale * mscale / Math.sqrt(NOPE + ROPE);
        }

        static double correction(double rotations) {
            return ROPE * Math.log(4096 / (rotations * 2 * Math.PI)) / (2 * Math.log(10000));
        }

        int newSequence() {
            keys.add(new ArrayList<>());
            values.add(new ArrayList<>());
            return keys.size() - 1;
        }

        double[] token(int sequence, float[] x) {
            int w = 0;
            double[] q;
            if (qLora == 0) {
                q = linear(m.dense().get(w++), Reference.toDouble(x), HEADS * (NOPE + ROPE));
            } else {
                double[] qa = linear(m.dense().get(w++), Reference.toDouble(x), qLora);
                rmsNorm(qa, 0, qLora, m.qNorm());
                q = linear(m.dense().get(w++), qa, HEADS * (NOPE + ROPE));
            }
            double[] kv = linear(m.dense().get(w++), Reference.toDouble(x), LATENT + ROPE);
            float[] wkvB = m.dense().get(w++), wo = m.dense().get(w);
            int position = keys.get(sequence).size();
            rmsNorm(kv, 0, LATENT, m.kvNorm());
            rotate(kv, LATENT, position);
            double[][] k = new double[HEADS][NOPE + ROPE], v = new double[HEADS][V];
            for (int h = 0; h < HEADS; h++) {
                for (int d = 0; d < NOPE + V; d++) {
                    double s = 0;
                    for (int c = 0; c < LATENT; c++) s += wkvB[(h * (NOPE + V) + d) * LATENT + c] * kv[c];
                    if (d < NOPE) k[h][d] = s;
                    else v[h][d - NOPE] = s;
                }
                System.arraycopy(kv, LATENT, k[h], NOPE, ROPE);
                rotate(q, h * (NOPE + ROPE) + NOPE, position);
            }
            keys.get(sequence).add(k);
            values.get(sequence).add(v);

            double[] o = new double[HEADS * V];
            List<double[][]> ks = keys.get(sequence), vs = values.get(sequence);
            for (int h = 0; h < HEADS; h++) {
                double[] s = new double[ks.size()];
                double max = Double.NEGATIVE_INFINITY, sum = 0;
                for (int t = 0; t < ks.size(); t++) {
                    for (int d = 0; d < NOPE + ROPE; d++) s[t] += q[h * (NOPE + ROPE) + d] * ks.get(t)[h][d];
                    s[t] *= scale;
                    max = Math.max(max, s[t]);
                }
                for (int t = 0; t < s.length; t++) sum += s[t] = Math.exp(s[t] - max);
                for (int t = 0; t < s.length; t++)
                    for (int d = 0; d < V; d++) o[h * V + d] += s[t] / sum * vs.get(t)[h][d];
            }
            return linear(wo, o, HIDDEN);
        }

        void rotate(double[] x, int offset, int position) {
            for (int i = 0; i < ROPE / 2; i++) {
                double a = position * freqs[i], re = x[offset + 2 * i], im = x[offset + 2 * i + 1];
                x[offset + 2 * i] = re * Math.cos(a) - im * Math.sin(a);
                x[offset + 2 * i + 1] = re * Math.sin(a) + im * Math.cos(a);
            }
        }

        static void rmsNorm(double[] x, int offset, int n, float[] weight) {
            double ss = 0;
            for (int i = 0; i < n; i++) ss += x[offset + i] * x[offset + i];
            double inv = 1 / Math.sqrt(ss / n + 1e-6);
            for (int i = 0; i < n; i++) x[offset + i] *= inv * weight[i];
        }

        /** A linear layer: the input quantized per 128-group first when the weights are FP8. */
        double[] linear(float[] w, double[] x, int rows) {
            if (!fp8) return matvec(w, x, rows);
            double[] q = Reference.fp8RoundTrip(x);
            return matvec(w, q, rows);
        }

        static double[] matvec(float[] w, double[] x, int rows) {
            double[] y = new double[rows];
            for (int r = 0; r < rows; r++) {
                double s = 0;
                for (int c = 0; c < x.length; c++) s += w[r * x.length + c] * x[c];
                y[r] = s;
            }
            return y;
        }
    }

    static float[] hidden(SplittableRandom random, int tokens) {
        float[] x = new float[tokens * HIDDEN];
        for (int i = 0; i < x.length; i++) x[i] = (float) random.nextGaussian();
        return x;
    }

    /**
     * Prefill of a long prompt (several attention chunks, several cache blocks) and a short one, decode steps on both,
     * then a second prefill chunk continuing the first sequence; every output row against the naive model. Prompt
     * chunks take the MHA-style path with the bf16 cache (in a reproducible context all of them; otherwise the 37-token
     * chunk after 302 tokens stays absorbed, being cheaper so), the absorbed path with the FP8 cache; decode tokens
     * always the absorbed one.
     */
    @ParameterizedTest(name = "q_lora_rank={0} fp8={1} fp8Cache={2} reproducible={3}")
    @CsvSource({
        "0, false, false, true",
        "0, false, false, false",
        "96, false, false, true",
        "0, true, false, false",
        "128, true, true, true"
    })
    void absorbedAndMhaEqualNaive(int qLora, boolean fp8, boolean fp8Cache, boolean reproducible) {
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        try (Arena arena = Arena.ofConfined();
                Context ctx = Context.create(Context.Options.cpu().withReproducible(reproducible))) {
            Model m = model(ctx, arena, random, qLora, fp8);
            MlaAttention mla = new MlaAttention(ctx, m.config(), m.weights(), arena);
            Naive naive = new Naive(m, fp8);
            PagedLatentCache cache = new PagedLatentCache(arena, 1, 12, 1, fp8Cache);
            int a = cache.newSequence(), b = cache.newSequence();
            naive.newSequence();
            naive.newSequence();
            List<Double> got = new ArrayList<>(), want = new ArrayList<>();

            // steps of (sequences, new tokens each): prompts, decode tokens, and both mixed in one step
            record Step(int[] seqs, int[] counts) {}
            List<Step> steps = List.of(
                    new Step(new int[] {a}, new int[] {300}),
                    new Step(new int[] {b}, new int[] {5}),
                    new Step(new int[] {a, b}, new int[] {1, 1}),
                    new Step(new int[] {a, b}, new int[] {1, 1}),
                    new Step(new int[] {b, a}, new int[] {7, 1}),
                    new Step(new int[] {a}, new int[] {37}),
                    new Step(new int[] {a, b}, new int[] {1, 1}));
            for (Step step : steps) {
                int tokens = java.util.Arrays.stream(step.counts()).sum();
                int[] seqOfRow = new int[tokens];
                for (int i = 0, row = 0; i < step.seqs().length; i++)
                    for (int j = 0; j < step.counts()[i]; j++) seqOfRow[row++] = step.seqs()[i];
                float[] x = hidden(random, tokens);
                Tensor xt = Tensor.fromFloats(arena, DType.BF16, x, tokens, HIDDEN);
                Tensor out = Tensor.allocate(arena, DType.F32, tokens, HIDDEN);
                mla.step(ctx, cache, 0, step.seqs(), step.counts(), xt, out);
                float[] xr = xt.toFloatArray(), o = out.toFloatArray();
                for (int i = 0; i < tokens; i++) {
                    float[] row = java.util.Arrays.copyOfRange(xr, i * HIDDEN, (i + 1) * HIDDEN);
                    double[] ref = naive.token(seqOfRow[i], row);
                    for (int d = 0; d < HIDDEN; d++) {
                        want.add(ref[d]);
                        got.add((double) o[i * HIDDEN + d]);
                    }
                }
            }
            assertEquals(300 + 37 + 4, cache.length(a));
            assertEquals(5 + 3 + 7, cache.length(b));
            double[] g = got.stream().mapToDouble(Double::doubleValue).toArray();
            double[] w = want.stream().mapToDouble(Double::doubleValue).toArray();
            double diff = Reference.calcDiff(g, w);
            // bf16: only bf16 roundings of q, the latent rows and the attention output remain (~1e-5 measured);
            // FP8 weights: rare FP8 rounding flips of activations (~2e-4); FP8 cache: e4m3 latent (~1.3e-3)
            double limit = fp8Cache ? 3e-3 : fp8 ? 5e-4 : 5e-5;
            System.out.printf(
                    "MLA vs naive (q_lora %d, fp8 %s, fp8 cache %s, reproducible %s): calc_diff %.3g%n",
                    qLora, fp8, fp8Cache, reproducible, diff);
            assertTrue(diff < limit, "calc_diff " + diff + " >= " + limit + ", seed " + seed);
        }
    }

    /**
     * The query projection and wkvA stacked into one FP8 or int8 weight (as {@code DecoderLayer.load} stacks them): the
     * same bits as the two apart, for a prompt and decode steps, with q_lora or without, FP8 packed or not, int8; a
     * stacked weight whose row slices the two are not is refused.
     */
    @ParameterizedTest(name = "q_lora_rank={0} format={1}")
    @CsvSource({"0, fp8", "0, packed", "128, fp8", "0, int8", "128, int8"})
    void stackedProjectionsGiveTheSameBitsAsTheTwoApart(int qLora, String format) {
        boolean packed = format.equals("packed"), int8 = format.equals("int8");
        SplittableRandom random = TestSupport.random(TestSupport.freshSeed());
        try (Arena arena = Arena.ofConfined();
                Context ctx = Context.create(Context.Options.cpu().withReproducible(true))) {
            Model m = model(ctx, arena, random, qLora, true);
            MlaAttention.Weights w = m.weights();
            if (packed) // the two apart packed as well: packed weights sum in another order on the AVX-512 paths
            w = new MlaAttention.Weights(
                    packedCopy(ctx, w.wq(), arena),
                    packedCopy(ctx, w.wqA(), arena),
                    w.qNorm(),
                    w.wqB(),
                    packedCopy(ctx, w.wkvA(), arena),
                    w.kvNorm(),
                    w.wkvB(),
                    w.wo());
            MlaAttention.Weights stored = m.weights();
            long qRows = stored.firstQuery().outFeatures();
            Tensor realQ = Quantization.dequantize(ctx, stored.firstQuery().fp8Weight(), DType.F32, arena),
                    realKvA = Quantization.dequantize(ctx, stored.wkvA().fp8Weight(), DType.F32, arena);
            if (int8)
                w = new MlaAttention.Weights(
                        qLora == 0 ? Linear.q8(Q8Gemm.quantizeWeights(ctx, realQ, arena)) : null,
                        qLora == 0 ? null : Linear.q8(Q8Gemm.quantizeWeights(ctx, realQ, arena)),
                        w.qNorm(),
                        w.wqB(),
                        Linear.q8(Q8Gemm.quantizeWeights(ctx, realKvA, arena)),
                        w.kvNorm(),
                        w.wkvB(),
                        w.wo());
            Linear stacked = int8
                    ? Linear.stackQ8(ctx, realQ, realQ.shape(0), realKvA, realKvA.shape(0), arena)
                    : Linear.stack(
                            ctx, stored.firstQuery().fp8Weight(), stored.wkvA().fp8Weight(), packed, arena);
            Linear q = stacked.rows(0, qRows);
            var together = new MlaAttention.Weights(
                    qLora == 0 ? q : null,
                    qLora == 0 ? null : q,
                    w.qNorm(),
                    w.wqB(),
                    stacked.rows(qRows, LATENT + ROPE),
                    w.kvNorm(),
                    w.wkvB(),
                    w.wo(),
                    stacked);
            Tensor[] outs = new Tensor[2];
            int k = 0;
            for (MlaAttention.Weights weights : List.of(w, together)) {
                MlaAttention mla = new MlaAttention(ctx, m.config(), weights, arena);
                PagedLatentCache cache = new PagedLatentCache(arena, 1, 4, 1, false);
                int seq = cache.newSequence();
                SplittableRandom inputs = TestSupport.random(7);
                Tensor out = Tensor.allocate(arena, DType.F32, 43, HIDDEN);
                int done = 0;
                for (int n : new int[] {40, 1, 1, 1}) {
                    Tensor x = Tensor.fromFloats(arena, DType.BF16, hidden(inputs, n), n, HIDDEN);
                    mla.step(ctx, cache, 0, new int[] {seq}, new int[] {n}, x, out.slice(0, done, n));
                    done += n;
                }
                outs[k++] = out;
            }
            assertArrayEquals(outs[0].toFloatArray(), outs[1].toFloatArray());

            var notSlices = new MlaAttention.Weights(
                    w.wq(), w.wqA(), w.qNorm(), w.wqB(), w.wkvA(), w.kvNorm(), w.wkvB(), w.wo(), stacked);
            var e = assertThrows(
                    IllegalArgumentException.class, () -> new MlaAttention(ctx, m.config(), notSlices, arena));
            assertTrue(e.getMessage().contains("wqKvA"), e.getMessage());
        }
    }

    private static Linear packedCopy(Context ctx, Linear l, Arena arena) {
        return l == null ? null : Linear.fp8(Fp8Gemm.packWeights(ctx, l.fp8Weight(), arena));
    }

    /**
     * In a reproducible context a prompt's outputs are bit for bit the same in one step as cut into chunks of two or
     * more tokens beside other sequences' decode tokens (MHA-style chunks over the decompressed context), and a decode
     * token's output does not depend on its batch.
     */
    @Test
    void promptOutputsDoNotDependOnChunkingInAReproducibleContext() {
        SplittableRandom random = TestSupport.random(TestSupport.freshSeed());
        try (Arena arena = Arena.ofConfined();
                Context ctx = Context.create(Context.Options.cpu().withReproducible(true))) {
            Model m = model(ctx, arena, random, 0, true);
            MlaAttention mla = new MlaAttention(ctx, m.config(), m.weights(), arena);
            PagedLatentCache cache = new PagedLatentCache(arena, 1, 24, 1, false);
            int whole = cache.newSequence(), chunked = cache.newSequence(), other = cache.newSequence();
            int tokens = 600, decode = 3;
            Tensor x = Tensor.fromFloats(arena, DType.BF16, hidden(random, tokens + decode), tokens + decode, HIDDEN);
            mla.step(
                    ctx,
                    cache,
                    0,
                    new int[] {other},
                    new int[] {70},
                    Tensor.fromFloats(arena, DType.BF16, hidden(random, 70), 70, HIDDEN),
                    Tensor.allocate(arena, DType.F32, 70, HIDDEN));

            Tensor alone = Tensor.allocate(arena, DType.F32, tokens + decode, HIDDEN);
            mla.step(
                    ctx,
                    cache,
                    0,
                    new int[] {whole},
                    new int[] {tokens},
                    x.slice(0, 0, tokens),
                    alone.slice(0, 0, tokens));
            for (int d = 0; d < decode; d++)
                mla.step(
                        ctx,
                        cache,
                        0,
                        new int[] {whole},
                        new int[] {1},
                        x.slice(0, tokens + d, 1),
                        alone.slice(0, tokens + d, 1));

            // the same rows in chunks of 2, 517 and 81, each step beside a decode token of another sequence
            Tensor together = Tensor.allocate(arena, DType.F32, tokens + decode, HIDDEN);
            Tensor otherX = Tensor.fromFloats(arena, DType.BF16, hidden(random, 1), 1, HIDDEN);
            int start = 0;
            for (int n : new int[] {2, 517, 81, 1, 1, 1}) {
                Tensor stepX = Tensor.allocate(arena, DType.BF16, n + 1, HIDDEN);
                Tensor stepOut = Tensor.allocate(arena, DType.F32, n + 1, HIDDEN);
                Copy.apply(ctx, otherX, stepX.slice(0, 0, 1));
                Copy.apply(ctx, x.slice(0, start, n), stepX.slice(0, 1, n));
                mla.step(ctx, cache, 0, new int[] {other, chunked}, new int[] {1, n}, stepX, stepOut);
                Copy.apply(ctx, stepOut.slice(0, 1, n), together.slice(0, start, n));
                start += n;
            }
            assertArrayEquals(alone.toFloatArray(), together.toFloatArray());
        }
    }

    /** YaRN numbers for V3's config worked out by hand (dim 64, theta 1e4, factor 40, original 4096, betas 32/1). */
    @Test
    void yarnMatchesHandComputedV3Values() {
        Rope rope = new Rope(64, 10000, V3_YARN);
        // correction dims: 64·ln(4096 / (32·2π)) / (2·ln 1e4) = 10.47 -> low 10; 64·ln(4096 / 2π) / (2·ln 1e4) = 22.51
        // -> high 23. Pairs up to 10 keep their frequency, pairs from 23 are divided by 40, between them a ramp.
        assertEquals(1.0f, rope.frequency(0));
        assertEquals((float) Math.pow(10000, -20 / 64.0), rope.frequency(10), 1e-7);
        assertEquals((float) (Math.pow(10000, -62 / 64.0) / 40), rope.frequency(31), 1e-10);
        double f16 = Math.pow(10000, -32 / 64.0), ramp = 6 / 13.0;
        assertEquals(f16 / 40 * ramp + f16 * (1 - ramp), rope.frequency(16), 1e-8);
        // softmax: mscale = 0.1·ln 40 + 1 = 1.368888; squared 1.873854
        assertEquals(1.873854, rope.softmaxScaleFactor(), 1e-6);
        // position 0 is the identity; position 1 rotates pair 0 by one radian
        try (Arena arena = Arena.ofConfined();
                Context ctx = Context.create()) {
            Tensor x = Tensor.fromFloats(arena, DType.F32, new float[] {1, 0, 3, 4, 1, 0, 3, 4}, 2, 1, 4);
            Tensor positions = Tensor.allocate(arena, DType.I32, 2);
            positions.setInt(1, 1);
            new Rope(4, 10000, null).apply(ctx, x, positions, x);
            assertEquals(1f, x.getFloat(0, 0, 0));
            assertEquals(4f, x.getFloat(0, 0, 3));
            assertEquals(Math.cos(1), x.getFloat(1, 0, 0), 1e-7);
            assertEquals(Math.sin(1), x.getFloat(1, 0, 1), 1e-7);
        }
    }

    @Test
    void badWeightsAndInputsAreRejectedAndAFullCacheIsLeftAsItWas() {
        SplittableRandom random = TestSupport.random(TestSupport.freshSeed());
        try (Arena arena = Arena.ofConfined();
                Context ctx = Context.create()) {
            Model m = model(ctx, arena, random, 0, false);
            MlaAttention.Weights w = m.weights();
            var noWo = new MlaAttention.Weights(w.wq(), null, null, null, w.wkvA(), w.kvNorm(), w.wkvB(), null);
            assertTrue(
                    assertThrows(IllegalArgumentException.class, () -> new MlaAttention(ctx, m.config(), noWo, arena))
                            .getMessage()
                            .contains("weight wo is missing"));
            var swapped = new MlaAttention.Weights(w.wkvA(), null, null, null, w.wq(), w.kvNorm(), w.wkvB(), w.wo());
            assertTrue(assertThrows(
                            IllegalArgumentException.class, () -> new MlaAttention(ctx, m.config(), swapped, arena))
                    .getMessage()
                    .contains("weight wq must be [3072, 256], got [576, 256]"));
            assertThrows(
                    IllegalArgumentException.class,
                    () -> new MlaAttention.Config(HIDDEN, HEADS, 0, 256, NOPE, ROPE, V, 1e-6f, 10000, null));

            MlaAttention mla = new MlaAttention(ctx, m.config(), w, arena);
            PagedLatentCache cache = new PagedLatentCache(arena, 1, 2, 1, false);
            int a = cache.newSequence(), b = cache.newSequence();
            Tensor x = Tensor.fromFloats(arena, DType.BF16, hidden(random, 100), 100, HIDDEN);
            Tensor out = Tensor.allocate(arena, DType.F32, 100, HIDDEN);
            mla.step(ctx, cache, 0, new int[] {a}, new int[] {100}, x, out);
            Tensor more = x.slice(0, 0, 30);
            var full = assertThrows(
                    IllegalStateException.class,
                    () -> mla.step(ctx, cache, 0, new int[] {a}, new int[] {30}, more, out.slice(0, 0, 30)));
            assertTrue(full.getMessage().contains("cache full"), full.getMessage());
            assertEquals(100, cache.length(a));
            assertEquals(0, cache.freeBlocks());

            Tensor two = x.slice(0, 0, 2), twoOut = out.slice(0, 0, 2);
            assertThrows(
                    IllegalArgumentException.class,
                    () -> mla.step(ctx, cache, 0, new int[] {a, a}, new int[] {1, 1}, two, twoOut));
            assertThrows(
                    IllegalStateException.class,
                    () -> mla.step(ctx, cache, 0, new int[] {a, b}, new int[] {1, 1}, two, twoOut));
            assertEquals(100, cache.length(a));
            assertEquals(0, cache.length(b));
            var wrongWidth = Tensor.allocate(arena, DType.BF16, 2, HIDDEN + 1);
            assertTrue(assertThrows(
                            IllegalArgumentException.class,
                            () -> mla.step(ctx, cache, 0, new int[] {a, b}, new int[] {1, 1}, wrongWidth, twoOut))
                    .getMessage()
                    .contains("x must be [T, 256]"));
        }
    }
}
