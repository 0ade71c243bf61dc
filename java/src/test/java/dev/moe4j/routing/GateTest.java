package dev.moe4j.routing;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.moe4j.kernels.Gemm;
import dev.moe4j.model.Linear;
import dev.moe4j.runtime.Context;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.Tensor;
import dev.moe4j.testing.Reference;
import dev.moe4j.testing.TestSupport;
import java.lang.foreign.Arena;
import java.util.Arrays;
import java.util.Comparator;
import java.util.SplittableRandom;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/**
 * The gate's selection against an independent float64 reference written from DeepSeek's description (sorting
 * instead of insertion, groups masked by sorting group scores). Logits come from the same native GEMM on both sides
 * so that only the selection logic is compared.
 */
public class GateTest {
    static final int HIDDEN = 256, TOKENS = 64;

    /**
     * @param nearTie whether a kept group or a chosen expert beats the first left out, not tied exactly, by less than
     *     float32 can tell apart (relative 1e-6): the gate, computing in float32, may then choose the other one
     * @param closeToNext per rank: whether its expert beats the next rank's, not tied exactly, by less than float32 can
     *     tell apart, so the gate may list the two the other way round
     */
    public record Expected(int[] experts, double[] weights, boolean nearTie, boolean[] closeToNext) {
        /** This selection with each pair of close-call neighbours listed as in {@code got} where got swaps them. */
        public Expected inOrderOf(int[] got) {
            int[] e = experts.clone();
            double[] w = weights.clone();
            for (int j = 0; j + 1 < e.length; j++) {
                if (closeToNext[j] && got[j] == e[j + 1] && got[j + 1] == e[j]) {
                    e[j] = got[j];
                    e[j + 1] = got[j + 1];
                    double wj = w[j];
                    w[j] = w[j + 1];
                    w[j + 1] = wj;
                }
            }
            return new Expected(e, w, nearTie, closeToNext);
        }
    }

    /** Whether kept beats left, not tied exactly, by less than float32 can tell apart. */
    private static boolean closeCall(double kept, double left) {
        return kept != left && kept - left < 1e-6 * Math.max(1, Math.abs(kept));
    }

    /** DeepSeek's gate in float64; ties to the lower index via a stable sort. */
    public static Expected reference(GateConfig c, float[] logits, float[] bias) {
        int e = c.experts();
        double[] scores = new double[e];
        if (c.scoring() == Scoring.SOFTMAX) {
            double max = Arrays.stream(Reference.toDouble(logits)).max().orElseThrow(), sum = 0;
            for (int i = 0; i < e; i++) sum += scores[i] = Math.exp(logits[i] - max);
            for (int i = 0; i < e; i++) scores[i] /= sum;
        } else {
            for (int i = 0; i < e; i++) scores[i] = 1 / (1 + Math.exp(-logits[i]));
        }
        double[] sel = new double[e];
        for (int i = 0; i < e; i++) sel[i] = scores[i] + (bias == null ? 0 : bias[i]);
        boolean nearTie = false;
        if (c.groups() > 1) {
            int size = c.groupSize();
            double[] groupScore = new double[c.groups()];
            for (int g = 0; g < c.groups(); g++) {
                double[] members = Arrays.copyOfRange(sel, g * size, (g + 1) * size);
                Arrays.sort(members);
                groupScore[g] = bias != null ? members[size - 1] + members[size - 2] : members[size - 1];
            }
            Integer[] order = sortedDescending(groupScore);
            boolean[] kept = new boolean[c.groups()];
            for (int j = 0; j < c.topkGroups(); j++) kept[order[j]] = true;
            if (c.topkGroups() < c.groups())
                nearTie = closeCall(groupScore[order[c.topkGroups() - 1]], groupScore[order[c.topkGroups()]]);
            for (int i = 0; i < e; i++) if (!kept[i / size]) sel[i] = Double.NEGATIVE_INFINITY;
        }
        Integer[] order = sortedDescending(sel);
        if (c.topK() < e && sel[order[c.topK()]] != Double.NEGATIVE_INFINITY)
            nearTie |= closeCall(sel[order[c.topK() - 1]], sel[order[c.topK()]]);
        boolean[] closeToNext = new boolean[c.topK()];
        for (int j = 0; j + 1 < c.topK(); j++) // exact ties excepted: the lower index first is the gate's rule
        closeToNext[j] = closeCall(sel[order[j]], sel[order[j + 1]]);
        int[] experts = new int[c.topK()];
        double[] weights = new double[c.topK()];
        double sum = 0;
        for (int j = 0; j < c.topK(); j++) {
            experts[j] = order[j];
            sum += scores[order[j]];
        }
        for (int j = 0; j < c.topK(); j++) {
            double w = scores[experts[j]];
            if (c.scoring() == Scoring.SIGMOID || c.normTopkProb()) w /= sum;
            weights[j] = w * c.routedScalingFactor();
        }
        return new Expected(experts, weights, nearTie, closeToNext);
    }

    static Integer[] sortedDescending(double[] v) {
        Integer[] order = IntStream.range(0, v.length).boxed().toArray(Integer[]::new);
        Arrays.sort(order, Comparator.comparingDouble((Integer i) -> -v[i])); // stable: equal values keep index order
        return order;
    }

    /**
     * Routes TOKENS random tokens and compares every choice and weight. With {@code duplicates}, experts come in
     * pairs with identical weight rows (and biases), so scores tie exactly and the tie rule decides.
     */
    static void check(GateConfig c, boolean withBias, boolean duplicates) {
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        try (Arena arena = Arena.ofConfined();
                Context ctx = Context.create()) {
            float[] w = new float[c.experts() * HIDDEN];
            for (int i = 0; i < w.length; i++) w[i] = (float) (random.nextGaussian() * 0.05);
            float[] bias = null;
            if (withBias) {
                bias = new float[c.experts()];
                for (int i = 0; i < bias.length; i++) bias[i] = (float) (random.nextGaussian() * 0.05);
            }
            if (duplicates)
                for (int ex = 1; ex < c.experts(); ex += 2) {
                    System.arraycopy(w, (ex - 1) * HIDDEN, w, ex * HIDDEN, HIDDEN);
                    if (bias != null) bias[ex] = bias[ex - 1];
                }
            Tensor weight = Tensor.fromFloats(arena, DType.BF16, w, c.experts(), HIDDEN);
            float[] xs = new float[TOKENS * HIDDEN];
            for (int i = 0; i < xs.length; i++) xs[i] = (float) random.nextGaussian();
            Tensor x = Tensor.fromFloats(arena, DType.BF16, xs, TOKENS, HIDDEN);

            Gate gate = new Gate(c, Linear.bf16(weight), bias);
            Routing routing = new Routing(c.topK(), TOKENS);
            gate.route(ctx, x, routing);
            assertEquals(TOKENS, routing.tokens());

            float[] logits = Gemm.nt(ctx, x, weight, DType.F32, arena).toFloatArray();
            for (int t = 0; t < TOKENS; t++) {
                Expected reference =
                        reference(c, Arrays.copyOfRange(logits, t * c.experts(), (t + 1) * c.experts()), bias);
                // float32 decides a near tie; exact ones (duplicates) are the tie rule's, and checked
                if (reference.nearTie()) continue;
                int[] got = new int[c.topK()];
                for (int j = 0; j < c.topK(); j++) got[j] = routing.expert(t, j);
                Expected e = reference.inOrderOf(got);
                for (int j = 0; j < c.topK(); j++) {
                    assertEquals(
                            e.weights()[j],
                            routing.weight(t, j),
                            1e-6 * Math.max(1, e.weights()[j]),
                            "token " + t + " rank " + j + " seed " + seed);
                }
                assertArrayEquals(e.experts(), got, "token " + t + " seed " + seed + " " + c);
            }
        }
    }

    @Test
    void v2LiteSoftmaxWithoutGroups() {
        check(new GateConfig(64, 6, 1, 1, Scoring.SOFTMAX, false, 1.0), false, false);
    }

    @Test
    void v2SoftmaxGroupLimitedByGroupMax() {
        check(new GateConfig(160, 6, 8, 3, Scoring.SOFTMAX, false, 16.0), false, false);
    }

    @Test
    void v3SigmoidWithBiasTopTwoSumGroupsRenormalizedAndScaled() {
        check(new GateConfig(256, 8, 8, 4, Scoring.SIGMOID, true, 2.5), true, false);
    }

    @Test
    void softmaxWithNormTopkProb() {
        check(new GateConfig(64, 6, 4, 2, Scoring.SOFTMAX, true, 1.0), false, false);
    }

    @Test
    void exactTiesGoToTheLowerIndexForExpertsAndGroups() {
        check(new GateConfig(256, 8, 8, 4, Scoring.SIGMOID, true, 2.5), true, true);
        check(new GateConfig(64, 6, 8, 3, Scoring.SOFTMAX, false, 1.0), false, true);
        check(new GateConfig(64, 5, 1, 1, Scoring.SOFTMAX, false, 1.0), false, true);
    }

    @Test
    void biasShiftsSelectionButNotWeights() {
        try (Arena arena = Arena.ofConfined();
                Context ctx = Context.create()) {
            // two experts, logits equal for every token: the bias alone decides, the weights stay the raw scores
            Tensor weight = Tensor.fromFloats(arena, DType.BF16, new float[2 * HIDDEN], 2, HIDDEN);
            Tensor x = Tensor.fromFloats(arena, DType.BF16, new float[HIDDEN], 1, HIDDEN);
            GateConfig c = new GateConfig(2, 1, 1, 1, Scoring.SIGMOID, false, 1.0);
            Routing r = new Routing(1, 1);
            new Gate(c, Linear.bf16(weight), new float[] {0, 0.25f}).route(ctx, x, r);
            assertEquals(1, r.expert(0, 0));
            assertEquals(0.5f, r.affinity(0, 0)); // sigmoid(0), not 0.75
            assertEquals(1.0f, r.weight(0, 0)); // renormalized over one expert
        }
    }

    @Test
    void adjustBiasMovesTowardTheMeanAndLoadIsCounted() {
        try (Arena arena = Arena.ofConfined();
                Context ctx = Context.create()) {
            Tensor weight = Tensor.fromFloats(arena, DType.BF16, new float[4 * HIDDEN], 4, HIDDEN);
            Gate gate = new Gate(
                    new GateConfig(4, 1, 1, 1, Scoring.SIGMOID, false, 1.0), Linear.bf16(weight), new float[4]);
            gate.adjustBias(new long[] {10, 2, 4, 4}, 0.001f); // mean 5
            assertArrayEquals(new float[] {-0.001f, 0.001f, 0.001f, 0.001f}, gate.bias());
            assertThrows(IllegalArgumentException.class, () -> gate.adjustBias(new long[3], 0.001f));

            // all tokens tie: expert 0 wins every time, until the bias moves them elsewhere
            Tensor x = Tensor.fromFloats(arena, DType.BF16, new float[3 * HIDDEN], 3, HIDDEN);
            Routing r = new Routing(1, 8);
            ExpertLoad load = new ExpertLoad(4, 2);
            gate.route(ctx, x, r);
            load.record(r);
            assertArrayEquals(new long[] {0, 3, 0, 0}, load.lastStep()); // 1 is the first of the raised experts
            gate.route(ctx, x, r);
            load.record(r);
            gate.route(ctx, x, r);
            load.record(r);
            assertArrayEquals(new long[] {0, 6, 0, 0}, load.window()); // the window holds the last two steps
            assertEquals(3, load.recordedSteps());
            assertEquals(3.0, ExpertLoad.maxVio(load.window()), 1e-12); // 6 / 1.5 - 1
            assertEquals(0.0, ExpertLoad.maxVio(new long[4]));
        }
    }

    @Test
    void badArgumentsAreRejected() {
        assertThrows(IllegalArgumentException.class, () -> new GateConfig(256, 8, 7, 4, Scoring.SIGMOID, true, 2.5));
        assertThrows(IllegalArgumentException.class, () -> new GateConfig(256, 8, 8, 9, Scoring.SIGMOID, true, 2.5));
        var tooMany = assertThrows(
                IllegalArgumentException.class, () -> new GateConfig(16, 9, 4, 2, Scoring.SOFTMAX, false, 1));
        assertTrue(tooMany.getMessage().contains("the experts of 2 groups"), tooMany.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Scoring.parse("relu"));
        try (Arena arena = Arena.ofConfined();
                Context ctx = Context.create()) {
            Tensor weight = Tensor.fromFloats(arena, DType.BF16, new float[4 * HIDDEN], 4, HIDDEN);
            GateConfig c = new GateConfig(4, 2, 1, 1, Scoring.SOFTMAX, false, 1);
            assertThrows(IllegalArgumentException.class, () -> new Gate(c, Linear.bf16(weight), new float[3]));
            Gate gate = new Gate(c, Linear.bf16(weight), null);
            Tensor x = Tensor.allocate(arena, DType.F32, 3, HIDDEN);
            assertThrows(IllegalArgumentException.class, () -> gate.route(ctx, x, new Routing(2, 2)));
            assertThrows(IllegalArgumentException.class, () -> gate.route(ctx, x, new Routing(3, 8)));
            x.setFloat(Float.NaN, 1, 7);
            var nan = assertThrows(IllegalArgumentException.class, () -> gate.route(ctx, x, new Routing(2, 8)));
            assertTrue(nan.getMessage().contains("token 1"), nan.getMessage());
            assertThrows(IllegalStateException.class, () -> gate.adjustBias(new long[4], 0.1f));
        }
    }
}
