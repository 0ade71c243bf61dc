package dev.moe4j.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.moe4j.kernels.Gemm;
import dev.moe4j.kernels.Norm;
import dev.moe4j.model.Checkpoint;
import dev.moe4j.model.ModelConfig;
import dev.moe4j.model.Safetensors;
import dev.moe4j.routing.GateTest;
import dev.moe4j.runtime.Context;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.Tensor;
import dev.moe4j.testing.Reference;
import dev.moe4j.testing.TestSupport;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * make-model writes a small V3-structured checkpoint; run-layer runs each part of it; the MoE part is checked against
 * a float64 reference computed straight from the checkpoint's tensors (FP8 codes times scale_inv blocks), and the
 * whole layer against the composition of its parts.
 */
class RunLayerTest {
    static final int H = 256, T = 20, EXPERTS = 16, INTER = 128, K = 4;

    @TempDir
    Path dir;

    static String[] args(String... a) {
        return a;
    }

    @Test
    void runLayerPartsMatchTheCheckpointAndEachOther() {
        long seed = TestSupport.freshSeed();
        Path model = dir.resolve("model");
        ModelConfig config = MakeModel.preset(
                "--preset",
                "v3",
                "--layers",
                "2",
                "--experts",
                "" + EXPERTS,
                "--hidden",
                "" + H,
                "--moe-inter",
                "" + INTER,
                "--inter",
                "384",
                "--heads",
                "4",
                "--top-k",
                "" + K,
                "--first-dense",
                "1");
        MakeModel.write(config, model, seed);

        SplittableRandom random = TestSupport.random(seed);
        try (Arena arena = Arena.ofConfined();
                Context ctx = Context.create();
                Checkpoint c = Checkpoint.open(model)) {
            float[] xs = new float[T * H];
            for (int i = 0; i < xs.length; i++) xs[i] = (float) random.nextGaussian();
            Tensor x = Tensor.fromFloats(arena, DType.F32, xs, T, H);
            Path input = dir.resolve("in.safetensors");
            Safetensors.write(input, Map.of("hidden_states", x), null);

            // --- the MoE part of layer 1 against float64 from the raw checkpoint tensors
            float[] moe = run(model, 1, "moe", input, "moe.safetensors", arena);
            try (Safetensors out = Safetensors.open(dir.resolve("moe.safetensors"))) {
                assertArrayEquals(new long[] {T, K}, out.tensor("topk_idx").shape());
                String p = "model.layers.1.mlp.";
                Tensor gateW = c.tensor(p + "gate.weight");
                float[] bias = c.tensor(p + "gate.e_score_correction_bias").toFloatArray();
                Tensor xb = Tensor.fromFloats(arena, DType.BF16, xs, T, H);
                float[] logits = Gemm.nt(ctx, xb, gateW, DType.F32, arena).toFloatArray();
                double[] want = new double[T * H];
                for (int t = 0; t < T; t++) {
                    var e = GateTest.reference(
                            config.gate(), Arrays.copyOfRange(logits, t * EXPERTS, (t + 1) * EXPERTS), bias);
                    double[] xt = new double[H];
                    for (int d = 0; d < H; d++) xt[d] = xs[t * H + d];
                    xt = Reference.fp8RoundTrip(xt); // the experts' input, quantized per token as the layer does
                    for (int j = 0; j < K; j++) {
                        assertEquals(
                                e.experts()[j], out.tensor("topk_idx").getInt(t, j), "token " + t + " seed " + seed);
                        assertEquals(
                                e.weights()[j], out.tensor("topk_weight").getFloat(t, j), 1e-6 * e.weights()[j] + 1e-7);
                        add(want, t, 1.0 * e.weights()[j], ffn(c, p + "experts." + e.experts()[j] + ".", xt));
                    }
                    add(want, t, 1.0, ffn(c, p + "shared_experts.", xt));
                }
                double diff = Reference.calcDiff(Reference.toDouble(moe), want);
                assertTrue(diff < 1e-3, "MoE part calc_diff " + diff + " seed " + seed);
            }

            // --- the whole layer against attention and MoE parts composed around norms and residuals, each part fed
            // exactly what the layer feeds it: the layer's own RMSNorm kernel (fp32, rounded to bf16), so that neither
            // routing nor an FP8 code of the experts' input can flip (a norm summed in another order did, by one bf16
            // step here and there: calc_diff 8e-6 on seed 70692721142700)
            float eps = (float) config.rmsNormEps();
            Tensor normed1 = Tensor.allocate(arena, DType.BF16, T, H);
            Norm.rms(ctx, x, null, normWeight(c, "input_layernorm", arena), eps, null, normed1);
            Path in1 = dir.resolve("normed1.safetensors");
            Safetensors.write(in1, Map.of("hidden_states", normed1), null);
            float[] attn = run(model, 1, "attention", in1, "attn.safetensors", arena);
            // h = x + attention, normed2 = norm(h): the layer's fused residual add and norm
            Tensor hs = Tensor.allocate(arena, DType.F32, T, H), normed2 = Tensor.allocate(arena, DType.BF16, T, H);
            Norm.rms(
                    ctx,
                    Tensor.fromFloats(arena, DType.F32, attn, T, H),
                    x,
                    normWeight(c, "post_attention_layernorm", arena),
                    eps,
                    hs,
                    normed2);
            float[] h = hs.toFloatArray();
            Path in2 = dir.resolve("normed2.safetensors");
            Safetensors.write(in2, Map.of("hidden_states", normed2), null);
            float[] ffn = run(model, 1, "moe", in2, "ffn.safetensors", arena);
            double[] composed = new double[T * H];
            for (int i = 0; i < composed.length; i++) composed[i] = h[i] + ffn[i];
            float[] layer = run(model, 1, "layer", input, "layer.safetensors", arena);
            double diff = Reference.calcDiff(Reference.toDouble(layer), composed);
            assertTrue(diff < 1e-6, "layer vs composed parts calc_diff " + diff + " seed " + seed);

            // --- the dense layer 0 runs too, without routing outputs
            run(model, 0, "layer", input, "dense.safetensors", arena);
            try (Safetensors out = Safetensors.open(dir.resolve("dense.safetensors"))) {
                assertFalse(out.names().contains("topk_idx"));
            }
        }
        var badPart = assertThrows(
                IllegalArgumentException.class,
                () -> RunLayer.run(args(
                        "--model",
                        model.toString(),
                        "--layer",
                        "1",
                        "--part",
                        "mlp",
                        "--input",
                        "x",
                        "--output",
                        "y")));
        assertTrue(badPart.getMessage().contains("--part must be"), badPart.getMessage());
        var badLayer = assertThrows(
                IllegalArgumentException.class,
                () -> RunLayer.run(args(
                        "--model",
                        model.toString(),
                        "--layer",
                        "7",
                        "--part",
                        "moe",
                        "--input",
                        dir.resolve("in.safetensors").toString(),
                        "--output",
                        "y")));
        assertTrue(badLayer.getMessage().contains("layer 7 outside 0..1"), badLayer.getMessage());
    }

    /** A BF16 checkpoint runs as stored (experts quantized on load) and, with --quantize, fully in FP8. */
    @Test
    void bf16CheckpointsRunAsStoredOrQuantizedOnLoad() {
        Path model = dir.resolve("bf16");
        MakeModel.write(
                MakeModel.preset(
                        "--preset",
                        "v2-lite",
                        "--layers",
                        "2",
                        "--experts",
                        "8",
                        "--hidden",
                        "256",
                        "--moe-inter",
                        "128",
                        "--inter",
                        "320",
                        "--heads",
                        "2",
                        "--top-k",
                        "2",
                        "--bf16"),
                model,
                3);
        try (Arena arena = Arena.ofConfined();
                Checkpoint c = Checkpoint.open(model)) {
            assertEquals(
                    DType.BF16,
                    c.tensor("model.layers.1.self_attn.q_proj.weight").dtype());
            assertFalse(c.has("model.layers.1.self_attn.q_proj.weight_scale_inv"));
            float[] xs = new float[T * H];
            SplittableRandom random = new SplittableRandom(9);
            for (int i = 0; i < xs.length; i++) xs[i] = (float) random.nextGaussian();
            Path input = dir.resolve("in.safetensors");
            Safetensors.write(input, Map.of("hidden_states", Tensor.fromFloats(arena, DType.F32, xs, T, H)), null);
            for (int layer = 0; layer < 2; layer++) {
                float[] asStored = run(model, layer, "layer", input, "bf16.safetensors", arena);
                assertEquals(
                        0,
                        RunLayer.run(args(
                                "--model",
                                model.toString(),
                                "--layer",
                                "" + layer,
                                "--part",
                                "layer",
                                "--input",
                                input.toString(),
                                "--output",
                                dir.resolve("q.safetensors").toString(),
                                "--quantize")));
                float[] quantized;
                try (Safetensors out = Safetensors.open(dir.resolve("q.safetensors"))) {
                    quantized = out.tensor("hidden_states").toFloatArray();
                }
                double diff = Reference.calcDiff(Reference.toDouble(quantized), Reference.toDouble(asStored));
                // the same layer, FP8 instead of BF16 projections: close but not equal
                assertTrue(diff > 0 && diff < 1e-2, "layer " + layer + " FP8 vs BF16 calc_diff " + diff);
            }
        }
    }

    float[] run(Path model, int layer, String part, Path input, String output, Arena arena) {
        assertEquals(
                0,
                RunLayer.run(args(
                        "--model",
                        model.toString(),
                        "--layer",
                        "" + layer,
                        "--part",
                        part,
                        "--input",
                        input.toString(),
                        "--output",
                        dir.resolve(output).toString())));
        try (Safetensors out = Safetensors.open(dir.resolve(output))) {
            Tensor hs = out.tensor("hidden_states");
            assertArrayEquals(new long[] {T, H}, hs.shape());
            float[] v = hs.toFloatArray();
            for (float f : v) assertTrue(Float.isFinite(f), part + " output not finite");
            return v;
        }
    }

    /** An MLP from the checkpoint in float64: FP8 codes times their 128x128 block's scale_inv. */
    static double[] ffn(Checkpoint c, String prefix, double[] x) {
        double[][] g = weight(c, prefix + "gate_proj"),
                u = weight(c, prefix + "up_proj"),
                d = weight(c, prefix + "down_proj");
        double[] hdn = new double[g.length];
        for (int r = 0; r < g.length; r++) {
            double a = 0, b = 0;
            for (int i = 0; i < x.length; i++) {
                a += g[r][i] * x[i];
                b += u[r][i] * x[i];
            }
            hdn[r] = a / (1 + Math.exp(-a)) * b;
        }
        double[] y = new double[d.length];
        for (int r = 0; r < d.length; r++) for (int i = 0; i < hdn.length; i++) y[r] += d[r][i] * hdn[i];
        return y;
    }

    static double[][] weight(Checkpoint c, String prefix) {
        Tensor w = c.tensor(prefix + ".weight"), s = c.tensor(prefix + ".weight_scale_inv");
        int rows = (int) w.shape(0), cols = (int) w.shape(1);
        double[][] m = new double[rows][cols];
        for (int r = 0; r < rows; r++)
            for (int i = 0; i < cols; i++)
                m[r][i] = Reference.e4m3Value(w.getByte(r, i)) * s.getFloat(r / 128, i / 128);
        return m;
    }

    /** Layer 1's norm weight as the model holds it: F32 (the checkpoint's BF16 values, exactly). */
    static Tensor normWeight(Checkpoint c, String norm, Arena arena) {
        float[] w = c.tensor("model.layers.1." + norm + ".weight").toFloatArray();
        return Tensor.fromFloats(arena, DType.F32, w, w.length);
    }

    static void add(double[] acc, int t, double w, double[] y) {
        for (int d = 0; d < H; d++) acc[t * H + d] += w * y[d];
    }
}
