package dev.moe4j.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.moe4j.kernels.Gemm;
import dev.moe4j.kernels.Q8Gemm;
import dev.moe4j.kernels.Quantization;
import dev.moe4j.kernels.ScaleFormat;
import dev.moe4j.routing.Gate;
import dev.moe4j.routing.GateConfig;
import dev.moe4j.routing.GateTest;
import dev.moe4j.routing.Routing;
import dev.moe4j.routing.Scoring;
import dev.moe4j.runtime.Context;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.QuantizedGroups;
import dev.moe4j.tensor.QuantizedTensor;
import dev.moe4j.tensor.Tensor;
import dev.moe4j.testing.Reference;
import dev.moe4j.testing.TestSupport;
import java.lang.foreign.Arena;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The MoE layer against a float64 dense reference: every expert's FFN applied to every token with the dequantized
 * weights, weighted by the reference gate's choice (zero for experts not chosen), plus the shared experts. The
 * reference quantizes the FP8 experts' input per token as the layer does, so what remains is the FFN's own FP8
 * rounding of its intermediate (DeepGEMM's calc_diff bound, 1e-3). Int8 shared experts are compared with their
 * float weights before quantization: their weights' and activations' int8 rounding is part of what the bound covers.
 */
class MoeLayerTest {
    static final int H = 256, I = 256, E = 16;

    /**
     * Weights as floats [groups · rows, cols] and as an FP8 block-quantized tensor of that shape; {@link #groups} is
     * what the layer runs.
     */
    record Fp8(QuantizedTensor q, int count, float[] dense) {
        QuantizedGroups groups() {
            return TestSupport.split(q, count);
        }
    }

    static Fp8 fp8(Context ctx, Arena arena, SplittableRandom random, int groups, int rows, int cols) {
        float[] w = new float[groups * rows * cols];
        for (int i = 0; i < w.length; i++) w[i] = (float) (random.nextGaussian() / Math.sqrt(cols));
        Tensor f = Tensor.fromFloats(arena, DType.F32, w, (long) groups * rows, cols);
        QuantizedTensor q = Quantization.perBlock(ctx, f, ScaleFormat.FP32, arena);
        float[] dense = Quantization.dequantize(ctx, q, DType.F32, arena).toFloatArray();
        return new Fp8(q, groups, dense);
    }

    static double[] ffn(float[] g, float[] u, float[] d, int expert, int inter, double[] x) {
        double[] h = new double[inter];
        for (int r = 0; r < inter; r++) {
            double a = 0, b = 0;
            for (int c = 0; c < H; c++) {
                a += g[(expert * inter + r) * H + c] * x[c];
                b += u[(expert * inter + r) * H + c] * x[c];
            }
            h[r] = a / (1 + Math.exp(-a)) * b;
        }
        double[] y = new double[H];
        for (int r = 0; r < H; r++) for (int c = 0; c < inter; c++) y[r] += d[(expert * H + r) * inter + c] * h[c];
        return y;
    }

    @ParameterizedTest(name = "{0} alignment={1} shared={2} tokens={3}")
    @CsvSource({
        "SIGMOID, 1, fp8, 40",
        "SIGMOID, 128, fp8, 40",
        "SOFTMAX, 1, bf16, 40",
        "SIGMOID, 1, int8, 40",
        "SOFTMAX, 1, none, 1",
        "SIGMOID, 1, fp8, 300"
    })
    void matchesDenseFloat64Reference(Scoring scoring, int alignment, String shared, int tokens) {
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        try (Arena arena = Arena.ofConfined();
                Context ctx = Context.create()) {
            GateConfig gc = scoring == Scoring.SIGMOID
                    ? new GateConfig(E, 4, 4, 2, Scoring.SIGMOID, true, 2.5)
                    : new GateConfig(E, 6, 1, 1, Scoring.SOFTMAX, false, 1.0);
            float[] gw = new float[E * H];
            for (int i = 0; i < gw.length; i++) gw[i] = (float) (random.nextGaussian() * 0.1);
            Tensor gateWeight = Tensor.fromFloats(arena, DType.BF16, gw, E, H);
            float[] bias = null;
            if (scoring == Scoring.SIGMOID) {
                bias = new float[E];
                for (int i = 0; i < E; i++) bias[i] = (float) (random.nextGaussian() * 0.05);
            }
            Fp8 g = fp8(ctx, arena, random, E, I, H), u = fp8(ctx, arena, random, E, I, H);
            Fp8 d = fp8(ctx, arena, random, E, H, I);
            int sharedI = 2 * I;
            DenseMlp mlp = null;
            float[][] sharedDense = null;
            if (shared.equals("fp8")) {
                Fp8 sg = fp8(ctx, arena, random, 1, sharedI, H), su = fp8(ctx, arena, random, 1, sharedI, H);
                Fp8 sd = fp8(ctx, arena, random, 1, H, sharedI);
                mlp = new DenseMlp(Linear.fp8(sg.q()), Linear.fp8(su.q()), Linear.fp8(sd.q()));
                sharedDense = new float[][] {sg.dense(), su.dense(), sd.dense()};
            } else if (shared.equals("bf16")) {
                sharedI = 3 * I / 2 + 8; // not a multiple of 128: only the bf16 path takes it
                sharedDense = new float[3][];
                Linear[] l = new Linear[3];
                int[][] shapes = {{sharedI, H}, {sharedI, H}, {H, sharedI}};
                for (int m = 0; m < 3; m++) {
                    float[] w = new float[shapes[m][0] * shapes[m][1]];
                    for (int i = 0; i < w.length; i++) w[i] = (float) (random.nextGaussian() / Math.sqrt(shapes[m][1]));
                    Tensor wb = Tensor.fromFloats(arena, DType.BF16, w, shapes[m][0], shapes[m][1]);
                    l[m] = Linear.bf16(wb);
                    sharedDense[m] = wb.toFloatArray();
                }
                mlp = new DenseMlp(l[0], l[1], l[2]);
            } else if (shared.equals("int8")) {
                // as the CPU's int8 dense weights hold them (Model.Options#q8Dense): gate and up stacked into one
                // weight, run beside the routed experts' call
                sharedDense = new float[3][];
                int[][] shapes = {{sharedI, H}, {sharedI, H}, {H, sharedI}};
                for (int m = 0; m < 3; m++) {
                    sharedDense[m] = new float[shapes[m][0] * shapes[m][1]];
                    for (int i = 0; i < sharedDense[m].length; i++)
                        sharedDense[m][i] = (float) (random.nextGaussian() / Math.sqrt(shapes[m][1]));
                }
                float[] gateUp = Arrays.copyOf(sharedDense[0], 2 * sharedI * H);
                System.arraycopy(sharedDense[1], 0, gateUp, sharedI * H, sharedI * H);
                mlp = DenseMlp.stacked(
                        Linear.q8(Q8Gemm.quantizeWeights(
                                ctx, Tensor.fromFloats(arena, DType.F32, gateUp, 2 * sharedI, H), arena)),
                        Linear.q8(Q8Gemm.quantizeWeights(
                                ctx, Tensor.fromFloats(arena, DType.F32, sharedDense[2], H, sharedI), arena)));
            }
            MoeLayer layer = new MoeLayer(
                    new Gate(gc, Linear.bf16(gateWeight), bias), g.groups(), u.groups(), d.groups(), mlp, alignment);

            float[] xs = new float[tokens * H];
            for (int i = 0; i < xs.length; i++) xs[i] = (float) random.nextGaussian();
            Tensor x = Tensor.fromFloats(arena, DType.BF16, xs, tokens, H);
            Tensor out = Tensor.allocate(arena, DType.F32, tokens, H);
            out.segment().fill((byte) 0xFF); // NaN: must be overwritten
            Routing routing = new Routing(gc.topK(), 512);
            layer.forward(ctx, x, routing, out);

            float[] logits = Gemm.nt(ctx, x, gateWeight, DType.F32, arena).toFloatArray();
            float[] xr = x.toFloatArray(), got = out.toFloatArray();
            double[] want = new double[tokens * H];
            for (int t = 0; t < tokens; t++) {
                double[] xt = new double[H];
                for (int c = 0; c < H; c++) xt[c] = xr[t * H + c];
                double[] xq = Reference.fp8RoundTrip(xt);
                int[] chosen = new int[gc.topK()];
                for (int j = 0; j < gc.topK(); j++) chosen[j] = routing.expert(t, j);
                GateTest.Expected e = GateTest.reference(gc, Arrays.copyOfRange(logits, t * E, (t + 1) * E), bias)
                        .inOrderOf(chosen);
                if (e.nearTie()) {
                    // float32 decides which expert makes the top K (GateTest checks the gate, exact ties apart): the
                    // experts and weights the layer chose are the reference's here, their FFNs still in float64
                    double[] weights = new double[gc.topK()];
                    for (int j = 0; j < gc.topK(); j++) weights[j] = routing.weight(t, j);
                    e = new GateTest.Expected(chosen, weights, true, new boolean[gc.topK()]);
                }
                for (int j = 0; j < gc.topK(); j++) {
                    assertEquals(e.experts()[j], routing.expert(t, j), "token " + t + " seed " + seed);
                    double[] y = ffn(g.dense(), u.dense(), d.dense(), e.experts()[j], I, xq);
                    for (int c = 0; c < H; c++) want[t * H + c] += e.weights()[j] * y[c];
                }
                if (sharedDense != null) {
                    double[] y = ffn(
                            sharedDense[0], sharedDense[1], sharedDense[2], 0, sharedI, shared.equals("fp8") ? xq : xt);
                    for (int c = 0; c < H; c++) want[t * H + c] += y[c];
                }
            }
            double diff = Reference.calcDiff(Reference.toDouble(got), want);
            assertTrue(diff < 1e-3, "calc_diff " + diff + " seed " + seed);
        }
    }

    /** Assignments dropped by the capacity mode contribute nothing; the rest are combined as before. */
    @org.junit.jupiter.api.Test
    void droppedAssignmentsAreSkipped() {
        SplittableRandom random = TestSupport.random(TestSupport.freshSeed());
        try (Arena arena = Arena.ofConfined();
                Context ctx = Context.create()) {
            GateConfig gc = new GateConfig(E, 4, 1, 1, Scoring.SOFTMAX, true, 1.0);
            float[] gw = new float[E * H];
            for (int i = 0; i < gw.length; i++) gw[i] = (float) (random.nextGaussian() * 0.1);
            Gate gate = new Gate(gc, Linear.bf16(Tensor.fromFloats(arena, DType.BF16, gw, E, H)), null);
            Fp8 g = fp8(ctx, arena, random, E, I, H), u = fp8(ctx, arena, random, E, I, H);
            Fp8 d = fp8(ctx, arena, random, E, H, I);
            MoeLayer layer = new MoeLayer(gate, g.groups(), u.groups(), d.groups(), null, 1);
            int tokens = 24;
            float[] xs = new float[tokens * H];
            for (int i = 0; i < xs.length; i++) xs[i] = (float) random.nextGaussian();
            Tensor x = Tensor.fromFloats(arena, DType.BF16, xs, tokens, H);
            Routing routing = new Routing(4, tokens);
            gate.route(ctx, x, routing);
            // experts 0..7 on device 0, 8..15 on device 1; half the balanced share each: many drops
            int[] device = new int[E];
            for (int e = 0; e < E; e++) device[e] = e / 8;
            var result = new dev.moe4j.routing.Capacity(device, 2, 0.5, 0).apply(routing, new long[tokens]);
            assertTrue(result.dropped() >= tokens * 4 / 2, "dropped " + result.dropped());
            Tensor out = Tensor.allocate(arena, DType.F32, tokens, H);
            layer.forwardRouted(ctx, x, routing, out);

            float[] xr = x.toFloatArray(), got = out.toFloatArray();
            double[] want = new double[tokens * H];
            for (int t = 0; t < tokens; t++) {
                double[] xt = new double[H];
                for (int c = 0; c < H; c++) xt[c] = xr[t * H + c];
                double[] xq = Reference.fp8RoundTrip(xt);
                for (int j = 0; j < 4; j++) {
                    int e = routing.expert(t, j);
                    if (e < 0) continue;
                    double[] y = ffn(g.dense(), u.dense(), d.dense(), e, I, xq);
                    for (int c = 0; c < H; c++) want[t * H + c] += routing.weight(t, j) * y[c];
                }
            }
            double[] gotD = new double[got.length];
            for (int i = 0; i < got.length; i++) gotD[i] = got[i];
            assertTrue(Reference.calcDiff(gotD, want) < 1e-3);
        }
    }

    @org.junit.jupiter.api.Test
    void badShapesAreRejected() {
        SplittableRandom random = TestSupport.random(TestSupport.freshSeed());
        try (Arena arena = Arena.ofConfined();
                Context ctx = Context.create()) {
            GateConfig gc = new GateConfig(E, 4, 1, 1, Scoring.SOFTMAX, false, 1);
            Gate gate = new Gate(gc, Linear.bf16(Tensor.allocate(arena, DType.BF16, E, H)), null);
            Fp8 g = fp8(ctx, arena, random, E, I, H), d = fp8(ctx, arena, random, E, H, I);
            Fp8 wide = fp8(ctx, arena, random, E, H, 2 * I);
            var wrongDown = assertThrows(
                    IllegalArgumentException.class,
                    () -> new MoeLayer(gate, g.groups(), g.groups(), wide.groups(), null, 1));
            assertTrue(
                    wrongDown.getMessage().contains("expertDown must hold 16 experts [256, 256]"),
                    wrongDown.getMessage());
            Fp8 small = fp8(ctx, arena, random, 8, I, H);
            assertThrows(
                    IllegalArgumentException.class,
                    () -> new MoeLayer(gate, small.groups(), g.groups(), d.groups(), null, 1));
            assertThrows(
                    IllegalArgumentException.class,
                    () -> new MoeLayer(gate, g.groups(), g.groups(), d.groups(), null, 0));
            MoeLayer layer = new MoeLayer(gate, g.groups(), g.groups(), d.groups(), null, 1);
            Tensor x = Tensor.allocate(arena, DType.BF16, 2, H);
            assertThrows(
                    IllegalArgumentException.class,
                    () -> layer.forward(ctx, x, new Routing(4, 2), Tensor.allocate(arena, DType.BF16, 2, H)));
            assertThrows(
                    IllegalArgumentException.class,
                    () -> layer.forward(ctx, x, new Routing(4, 1), Tensor.allocate(arena, DType.F32, 2, H)));
        }
    }
}
