package dev.moe4j.kernels;

import static dev.moe4j.kernels.CastTest.context;
import static dev.moe4j.kernels.CastTest.poisoned;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.Isa;
import dev.moe4j.runtime.Moe4jException;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.Tensor;
import dev.moe4j.testing.TestSupport;
import java.lang.foreign.Arena;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * moe4j_logits_stats on every ISA path: the argmax against a plain scan, the sum of exponentials within 1e-12 of
 * Σ StrictMath.exp(x - max) before its rounding to float, and bit for bit against the contract's 64 lanes and
 * exponential written as Java double operations; invalid rows, row views and argument errors.
 */
class LogitsTest {
    /** The contract's exp(x) for x <= 0, one Java operation per native one. */
    static double exp(double x) {
        if (!(x >= -708)) return 0;
        double k = Math.rint(x * 1.4426950408889634);
        double r = Math.fma(-k, 0.6931471803691238, x);
        r = Math.fma(-k, 1.9082149292705877e-10, r);
        double p = 1.0 / 6227020800.0;
        for (double f : new double[] {479001600, 39916800, 3628800, 362880, 40320, 5040, 720, 120, 24, 6, 2})
            p = Math.fma(p, r, 1 / f);
        p = Math.fma(p, r, 1);
        p = Math.fma(p, r, 1);
        return p * Double.longBitsToDouble(((long) k + 1023) << 52);
    }

    /** The contract's S for one row: 64 lanes in order, then pairwise. */
    static float sumExp(float[] x, float max) {
        double[] lanes = new double[64];
        for (int i = 0; i < x.length; i++) lanes[i % 64] += exp((double) x[i] - max);
        for (int s = 32; s >= 1; s /= 2) for (int l = 0; l < s; l++) lanes[l] += lanes[l + s];
        return (float) lanes[0];
    }

    /** x as an F32 [rows, V] tensor. */
    static Tensor tensorOf(Arena arena, float[][] x) {
        Tensor t = Tensor.allocate(arena, DType.F32, x.length, x[0].length);
        for (int b = 0; b < x.length; b++) for (int i = 0; i < x[b].length; i++) t.setFloat(x[b][i], b, i);
        return t;
    }

    /** The first index of the row's largest logit. */
    static int firstArgmax(float[] row) {
        int best = 0;
        for (int i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
        return best;
    }

    @ParameterizedTest
    @MethodSource("dev.moe4j.kernels.CastTest#isaPaths")
    void matchesTheContractBitForBit(Isa isa) {
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        int[] vocabs = {1, 5, 63, 64, 65, 129, 1000, 4099, 102400};
        try (Arena arena = Arena.ofConfined();
                Context ctx = context(isa)) {
            for (int v : vocabs) {
                int rows = 3;
                float[][] x = new float[rows][v];
                for (int b = 0; b < rows; b++)
                    for (int i = 0; i < v; i++)
                        x[b][i] = switch (random.nextInt(20)) {
                            case 0 -> Float.NEGATIVE_INFINITY;
                            case 1 -> (float) (random.nextGaussian() * 1000); // far below the max: exp is 0
                            default -> (float) (random.nextGaussian() * (b + 1) * 3);
                        };
                // a tie for the maximum: the first index wins
                if (v > 10) x[1][v - 1] = x[1][v / 2] = 500f;
                Tensor argmax = poisoned(arena, DType.I32, rows);
                Tensor sumExp = poisoned(arena, DType.F32, rows);
                Logits.stats(ctx, tensorOf(arena, x), argmax, sumExp);
                for (int b = 0; b < rows; b++) {
                    String where = isa + " V=" + v + " row " + b + " seed " + seed;
                    int best = firstArgmax(x[b]);
                    float max = x[b][best];
                    if (max == Float.NEGATIVE_INFINITY) {
                        assertEquals(0, argmax.getInt(b), where);
                        assertEquals(0f, sumExp.getFloat(b), where);
                        continue;
                    }
                    assertEquals(best, argmax.getInt(b), where);
                    double exact = 0;
                    for (float value : x[b]) exact += StrictMath.exp((double) value - max);
                    float got = sumExp.getFloat(b);
                    assertEquals(exact, got, Math.ulp((float) exact), where);
                    assertEquals(Float.floatToRawIntBits(sumExp(x[b], max)), Float.floatToRawIntBits(got), where);
                }
            }
        }
    }

    @ParameterizedTest
    @MethodSource("dev.moe4j.kernels.CastTest#isaPaths")
    void invalidRowsNameTheirFirstBadLogit(Isa isa) {
        try (Arena arena = Arena.ofConfined();
                Context ctx = context(isa)) {
            int v = 300;
            Tensor logits = Tensor.allocate(arena, DType.F32, 4, v);
            logits.setFloat(Float.NaN, 0, 170);
            logits.setFloat(Float.POSITIVE_INFINITY, 0, 250);
            logits.setFloat(Float.POSITIVE_INFINITY, 1, 7);
            logits.setFloat(Float.NaN, 1, 299);
            for (int i = 0; i < v; i++) logits.setFloat(Float.NEGATIVE_INFINITY, 2, i);
            logits.setFloat(Float.NaN, 3, 299); // in the tail of every vector path
            Tensor argmax = poisoned(arena, DType.I32, 4);
            Tensor sumExp = poisoned(arena, DType.F32, 4);
            Logits.stats(ctx, logits, argmax, sumExp);
            int[] bad = {170, 7, 0, 299};
            for (int b = 0; b < 4; b++) assertEquals(bad[b], argmax.getInt(b), isa + " row " + b);
            assertTrue(Float.isNaN(sumExp.getFloat(0)) && Float.isNaN(sumExp.getFloat(1)));
            assertEquals(0f, sumExp.getFloat(2));
            assertTrue(Float.isNaN(sumExp.getFloat(3)));
        }
    }

    /**
     * Rows fewer than the context's threads are cut into 2, 4 or 8 parts (by element ranges for the maximum, by lane
     * groups for the sum): the same bits as the contract, NaN, +Infinity and all -Infinity rows included, wherever in
     * the row the bad logit or the maximum lies.
     */
    @ParameterizedTest
    @MethodSource("dev.moe4j.kernels.CastTest#isaPaths")
    void rowsSplitOverThreadsKeepTheContractsBits(Isa isa) {
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        int[] vocabs = {65536 + 17, 102400, 131072 + 5, 262144 + 3};
        for (int threads : new int[] {2, 4, 8}) {
            try (Arena arena = Arena.ofConfined();
                    Context ctx =
                            Context.create(Context.Options.cpu().withMaxIsa(isa).withThreads(threads))) {
                for (int v : vocabs) {
                    int rows = 1 + random.nextInt(2);
                    float[][] x = new float[rows][v];
                    for (int b = 0; b < rows; b++)
                        for (int i = 0; i < v; i++) x[b][i] = (float) (random.nextGaussian() * 4);
                    // the maximum, twice, in a late part: the first of them wins
                    int late = v - 2 - random.nextInt(v / 4);
                    x[0][late] = x[0][v - 1] = 90f;
                    Tensor argmax = poisoned(arena, DType.I32, rows);
                    Tensor sumExp = poisoned(arena, DType.F32, rows);
                    Logits.stats(ctx, tensorOf(arena, x), argmax, sumExp);
                    for (int b = 0; b < rows; b++) {
                        String where = isa + " threads=" + threads + " V=" + v + " row " + b + " seed " + seed;
                        int best = firstArgmax(x[b]);
                        assertEquals(best, argmax.getInt(b), where);
                        assertEquals(
                                Float.floatToRawIntBits(sumExp(x[b], x[b][best])),
                                Float.floatToRawIntBits(sumExp.getFloat(b)),
                                where);
                    }
                    // invalid logits in the last part and the first, and a row of -Infinity alone
                    Tensor bad = Tensor.allocate(arena, DType.F32, 3, v);
                    for (int i = 0; i < v; i++) {
                        bad.setFloat(x[0][i], 0, i);
                        bad.setFloat(x[0][i], 1, i);
                        bad.setFloat(Float.NEGATIVE_INFINITY, 2, i);
                    }
                    bad.setFloat(Float.NaN, 0, v - 2);
                    bad.setFloat(Float.POSITIVE_INFINITY, 1, v - 3);
                    bad.setFloat(Float.NaN, 1, 5);
                    for (int b = 0; b < 3; b++) {
                        Tensor one = bad.slice(0, b, 1);
                        Logits.stats(ctx, one, argmax.slice(0, 0, 1), sumExp.slice(0, 0, 1));
                        String where = isa + " threads=" + threads + " V=" + v + " bad row " + b;
                        assertEquals(new int[] {v - 2, 5, 0}[b], argmax.getInt(0), where);
                        if (b < 2) assertTrue(Float.isNaN(sumExp.getFloat(0)), where);
                        else assertEquals(0f, sumExp.getFloat(0), where);
                    }
                }
            }
        }
    }

    @Test
    void rowsMayBeViewsIntoWiderRows() {
        try (Arena arena = Arena.ofConfined();
                Context ctx = Context.create(Context.Options.cpu())) {
            Tensor wide = Tensor.allocate(arena, DType.F32, 2, 100);
            for (int b = 0; b < 2; b++)
                for (int i = 0; i < 100; i++) wide.setFloat(i < 90 ? i * 0.01f * (b + 1) : 1000f, b, i);
            Tensor argmax = Tensor.allocate(arena, DType.I32, 2);
            Tensor sumExp = Tensor.allocate(arena, DType.F32, 2);
            Logits.stats(ctx, wide.slice(1, 0, 90), argmax, sumExp);
            for (int b = 0; b < 2; b++) {
                float[] row = new float[90];
                for (int i = 0; i < 90; i++) row[i] = wide.getFloat(b, i);
                assertEquals(89, argmax.getInt(b));
                assertEquals(sumExp(row, row[89]), sumExp.getFloat(b));
            }
        }
    }

    @Test
    void badArgumentsAreNamed() {
        try (Arena arena = Arena.ofConfined();
                Context ctx = Context.create(Context.Options.cpu())) {
            Tensor logits = Tensor.allocate(arena, DType.F32, 3, 16);
            Tensor argmax = Tensor.allocate(arena, DType.I32, 3);
            Tensor sumExp = Tensor.allocate(arena, DType.F32, 3);
            Moe4jException e =
                    assertThrows(Moe4jException.class, () -> Logits.stats(ctx, logits, argmax.slice(0, 0, 2), sumExp));
            assertTrue(e.getMessage().contains("argument 'argmax'"), e.getMessage());
            e = assertThrows(Moe4jException.class, () -> Logits.stats(ctx, logits, argmax, sumExp.slice(0, 1, 2)));
            assertTrue(e.getMessage().contains("argument 'sum_exp'"), e.getMessage());
            e = assertThrows(Moe4jException.class, () -> Logits.stats(ctx, logits.slice(1, 0, 0), argmax, sumExp));
            assertTrue(e.getMessage().contains("argument 'logits'"), e.getMessage());
            Tensor inside = Tensor.of(logits.segment().asSlice(8), DType.F32, 3);
            e = assertThrows(Moe4jException.class, () -> Logits.stats(ctx, logits, argmax, inside));
            assertTrue(e.getMessage().contains("'sum_exp' overlaps 'logits'"), e.getMessage());
            IllegalArgumentException wrongType = assertThrows(
                    IllegalArgumentException.class,
                    () -> Logits.stats(ctx, logits, Tensor.allocate(arena, DType.F32, 3), sumExp));
            assertTrue(wrongType.getMessage().startsWith("argmax must be [I32]"), wrongType.getMessage());
            // nothing was written by the rejected calls
            assertEquals(0, argmax.segment().getAtIndex(ValueLayout.JAVA_INT, 0));
        }
    }
}
