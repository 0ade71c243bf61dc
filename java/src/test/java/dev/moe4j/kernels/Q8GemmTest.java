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
 * moe4j_quantize_q8_weights and moe4j_q8_gemm_nt on every ISA path, bit for bit against the contract written as Java
 * float and int operations (quantization, exact integer block sums, one fused multiply-add per block, one product),
 * and, on Gaussian values, within 1.5% (relative RMS) of a float64 product of the unquantized values (about 1%
 * expected: steps of amax/127 with amax near 3.5 sigma over a 2048-wide row, 2.7 sigma over a 128-wide block, each
 * adding step/sqrt(12) of noise; FP8's 3-bit mantissa adds about twice that); rows independent of the batch,
 * non-finite values, row views and argument errors.
 */
class Q8GemmTest {
    /** A vector quantized as the contract says: codes into q[from ..], the scale returned. */
    static float quantize(float[] v, int from, int n, int[] q) {
        float amax = 0;
        boolean finite = true;
        for (int i = 0; i < n; i++) {
            finite &= Float.isFinite(v[from + i]);
            amax = Math.max(amax, Math.abs(v[from + i]));
        }
        if (!finite || amax == 0) {
            for (int i = 0; i < n; i++) q[from + i] = 0;
            return finite ? 0 : Float.NaN;
        }
        float inv = 127f / amax;
        for (int i = 0; i < n; i++) q[from + i] = (int) Math.max(-127, Math.min(127, Math.rint(v[from + i] * inv)));
        return amax / 127f;
    }

    /** The contract's d[m, n] from unquantized rows x (one activation row) and w (one weight row). */
    static float expected(float[] x, float[] w) {
        int k = x.length;
        int[] xq = new int[k], wq = new int[k];
        float sw = quantize(w, 0, k, wq);
        float acc = 0;
        for (int b = 0; b < k / 128; b++) {
            float sa = quantize(x, b * 128, 128, xq);
            int sum = 0;
            for (int i = b * 128; i < (b + 1) * 128; i++) sum += xq[i] * wq[i];
            acc = Math.fma((float) sum, sa, acc);
        }
        return acc * sw;
    }

    static long codeOffset(long n, long k, long width) {
        return (n / 16) * 16 * width + (k / 4) * 64 + (n % 16) * 4 + k % 4;
    }

    /** Gaussian values, one in 50 of them (with outliers) 20 sigma wide. */
    static float[][] gaussian(SplittableRandom random, int rows, int cols, double sigma, boolean outliers) {
        float[][] v = new float[rows][cols];
        for (float[] row : v)
            for (int i = 0; i < cols; i++)
                row[i] = (float) (random.nextGaussian() * sigma * (outliers && random.nextInt(50) == 0 ? 20 : 1));
        return v;
    }

    static float[][] gaussian(SplittableRandom random, int rows, int cols, double sigma) {
        return gaussian(random, rows, cols, sigma, true);
    }

    /** values rounded to dtype's precision in place (as the tensor holds them), returned as a tensor. */
    static Tensor tensor(Arena arena, DType dtype, float[][] values) {
        Tensor t = Tensor.allocate(arena, dtype, values.length, values[0].length);
        for (int r = 0; r < values.length; r++)
            for (int c = 0; c < values[r].length; c++) {
                t.setFloat(values[r][c], r, c);
                values[r][c] = t.getFloat(r, c);
            }
        return t;
    }

    @ParameterizedTest
    @MethodSource("dev.moe4j.kernels.CastTest#isaPaths")
    void quantizesWeightsAsTheContractSays(Isa isa) {
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        int n = 48, k = 256;
        float[][] w = gaussian(random, n, k, 0.05);
        w[5] = new float[k]; // all zeros
        w[17][100] = Float.NaN;
        w[30][3] = Float.NEGATIVE_INFINITY;
        try (Arena arena = Arena.ofConfined();
                Context ctx = context(isa)) {
            for (DType dtype : new DType[] {DType.F32, DType.BF16}) {
                Q8Gemm.Weights q = Q8Gemm.quantizeWeights(ctx, tensor(arena, dtype, w), arena);
                int[] codes = new int[k];
                for (int r = 0; r < n; r++) {
                    float scale = quantize(w[r], 0, k, codes);
                    String where = isa + " " + dtype + " row " + r + " seed " + seed;
                    assertEquals(
                            Float.floatToRawIntBits(scale),
                            Float.floatToRawIntBits(q.scales().getFloat(r)),
                            where);
                    for (int i = 0; i < k; i++) {
                        int stored =
                                Byte.toUnsignedInt(q.codes().segment().get(ValueLayout.JAVA_BYTE, codeOffset(r, i, k)));
                        assertEquals(codes[i] + 128, stored, where + " element " + i);
                    }
                }
                assertTrue(Float.isNaN(q.scales().getFloat(17))
                        && Float.isNaN(q.scales().getFloat(30)));
                assertEquals(0f, q.scales().getFloat(5));
            }
        }
    }

    @ParameterizedTest
    @MethodSource("dev.moe4j.kernels.CastTest#isaPaths")
    void matchesTheContractBitForBit(Isa isa) {
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        try (Arena arena = Arena.ofConfined();
                Context ctx = context(isa)) {
            // N of 3 and 5 panels (the vector paths' tails), rows 1 to 17 (every tile height and a second group)
            for (int[] shape : new int[][] {{1, 48, 128}, {3, 80, 384}, {8, 48, 256}, {9, 80, 128}, {17, 48, 256}}) {
                int m = shape[0], n = shape[1], k = shape[2];
                float[][] w = gaussian(random, n, k, 0.05);
                for (DType dtype : new DType[] {DType.F32, DType.BF16}) {
                    float[][] x = gaussian(random, m, k, 2);
                    Tensor a = tensor(arena, dtype, x);
                    Q8Gemm.Weights q = Q8Gemm.quantizeWeights(ctx, tensor(arena, DType.BF16, w), arena);
                    Tensor d = poisoned(arena, DType.F32, m, n);
                    Q8Gemm.nt(ctx, a, q, d);
                    for (int r = 0; r < m; r++)
                        for (int c = 0; c < n; c++)
                            assertEquals(
                                    Float.floatToRawIntBits(expected(x[r], w[c])),
                                    Float.floatToRawIntBits(d.getFloat(r, c)),
                                    isa + " " + dtype + " " + m + "x" + n + "x" + k + " (" + r + ", " + c + ") seed "
                                            + seed);
                }
            }
        }
    }

    @Test
    void isCloseToTheFloat64Product() {
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        int m = 4, n = 256, k = 2048;
        float[][] w = gaussian(random, n, k, 0.05, false), x = gaussian(random, m, k, 1, false);
        try (Arena arena = Arena.ofConfined();
                Context ctx = Context.create(Context.Options.cpu())) {
            Tensor d = Tensor.allocate(arena, DType.F32, m, n);
            Q8Gemm.nt(
                    ctx,
                    tensor(arena, DType.F32, x),
                    Q8Gemm.quantizeWeights(ctx, tensor(arena, DType.F32, w), arena),
                    d);
            double diff = 0, norm = 0;
            for (int r = 0; r < m; r++)
                for (int c = 0; c < n; c++) {
                    double exact = 0;
                    for (int i = 0; i < k; i++) exact += (double) x[r][i] * w[c][i];
                    diff += (d.getFloat(r, c) - exact) * (d.getFloat(r, c) - exact);
                    norm += exact * exact;
                }
            double error = Math.sqrt(diff / norm);
            assertTrue(error < 1.5e-2, "relative RMS error " + error + ", seed " + seed);
        }
    }

    @Test
    void aRowGetsTheSameBitsInAnyBatch() {
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        int m = 13, n = 64, k = 256;
        try (Arena arena = Arena.ofConfined();
                Context ctx = Context.create(Context.Options.cpu())) {
            Q8Gemm.Weights q =
                    Q8Gemm.quantizeWeights(ctx, tensor(arena, DType.F32, gaussian(random, n, k, 0.05)), arena);
            Tensor a = tensor(arena, DType.F32, gaussian(random, m, k, 1));
            Tensor all = Tensor.allocate(arena, DType.F32, m, n), one = Tensor.allocate(arena, DType.F32, 1, n);
            Q8Gemm.nt(ctx, a, q, all);
            for (int r = 0; r < m; r++) {
                Q8Gemm.nt(ctx, a.slice(0, r, 1), q, one);
                for (int c = 0; c < n; c++) assertEquals(all.getFloat(r, c), one.getFloat(0, c), "row " + r);
            }
        }
    }

    @ParameterizedTest
    @MethodSource("dev.moe4j.kernels.CastTest#isaPaths")
    void nonFiniteActivationsMakeTheirRowNaN(Isa isa) {
        try (Arena arena = Arena.ofConfined();
                Context ctx = context(isa)) {
            int n = 32, k = 256;
            float[][] w = gaussian(TestSupport.random(7), n, k, 0.05);
            w[9][0] = Float.NaN;
            Q8Gemm.Weights q = Q8Gemm.quantizeWeights(ctx, tensor(arena, DType.F32, w), arena);
            float[][] x = gaussian(TestSupport.random(8), 3, k, 1);
            x[1][200] = Float.POSITIVE_INFINITY;
            Tensor d = poisoned(arena, DType.F32, 3, n);
            Q8Gemm.nt(ctx, tensor(arena, DType.F32, x), q, d);
            for (int c = 0; c < n; c++) {
                assertTrue(Float.isNaN(d.getFloat(1, c)), isa + " column " + c);
                assertEquals(c == 9, Float.isNaN(d.getFloat(0, c)), isa + " column " + c);
            }
        }
    }

    @Test
    void activationsMayBeViewsIntoWiderRows() {
        try (Arena arena = Arena.ofConfined();
                Context ctx = Context.create(Context.Options.cpu())) {
            SplittableRandom random = TestSupport.random(9);
            float[][] w = gaussian(random, 16, 128, 0.05);
            float[][] wide = gaussian(random, 2, 200, 1);
            Q8Gemm.Weights q = Q8Gemm.quantizeWeights(ctx, tensor(arena, DType.F32, w), arena);
            Tensor d = Tensor.allocate(arena, DType.F32, 2, 16);
            Q8Gemm.nt(ctx, tensor(arena, DType.F32, wide).slice(1, 0, 128), q, d);
            for (int r = 0; r < 2; r++)
                for (int c = 0; c < 16; c++)
                    assertEquals(expected(java.util.Arrays.copyOf(wide[r], 128), w[c]), d.getFloat(r, c));
        }
    }

    /**
     * Row slices of int8 weights are weights: quantized into (two matrices stacked, as the model stacks its projections)
     * they hold what each quantized apart holds, and a product with a slice gives the same bits as those columns of the
     * product with the whole.
     */
    @Test
    void rowSlicesAreWeightsOfTheirOwn() {
        SplittableRandom random = TestSupport.random(11);
        int k = 256;
        try (Arena arena = Arena.ofConfined();
                Context ctx = Context.create(Context.Options.cpu())) {
            Tensor a = tensor(arena, DType.F32, gaussian(random, 48, k, 0.05)),
                    b = tensor(arena, DType.F32, gaussian(random, 16, k, 0.05));
            Q8Gemm.Weights whole = new Q8Gemm.Weights(
                    Tensor.allocate(arena, DType.Q8_P16, 64, k), Tensor.allocate(arena, DType.F32, 64));
            Q8Gemm.quantizeWeights(ctx, a, whole.rows(0, 48));
            Q8Gemm.quantizeWeights(ctx, b, whole.rows(48, 16));
            Q8Gemm.Weights apart = Q8Gemm.quantizeWeights(ctx, b, arena);
            assertEquals(
                    -1,
                    apart.codes().segment().mismatch(whole.rows(48, 16).codes().segment()));
            assertEquals(
                    -1,
                    apart.scales()
                            .segment()
                            .mismatch(whole.rows(48, 16).scales().segment()));

            Tensor x = tensor(arena, DType.F32, gaussian(random, 3, k, 1));
            Tensor all = Tensor.allocate(arena, DType.F32, 3, 64), part = Tensor.allocate(arena, DType.F32, 3, 16);
            Q8Gemm.nt(ctx, x, whole, all);
            Q8Gemm.nt(ctx, x, whole.rows(32, 16), part);
            for (int r = 0; r < 3; r++)
                for (int c = 0; c < 16; c++) assertEquals(all.getFloat(r, 32 + c), part.getFloat(r, c), "row " + r);

            var e = assertThrows(IllegalArgumentException.class, () -> whole.rows(8, 16));
            assertTrue(e.getMessage().contains("multiple of 16"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> whole.rows(48, 32));
            assertTrue(e.getMessage().contains("out of range"), e.getMessage());
        }
    }

    @Test
    void badArgumentsAreNamed() {
        try (Arena arena = Arena.ofConfined();
                Context ctx = Context.create(Context.Options.cpu())) {
            Q8Gemm.Weights q = Q8Gemm.quantizeWeights(ctx, Tensor.allocate(arena, DType.F32, 32, 256), arena);
            Tensor a = Tensor.allocate(arena, DType.F32, 2, 256);
            Tensor d = Tensor.allocate(arena, DType.F32, 2, 32);
            Moe4jException e = assertThrows(
                    Moe4jException.class, () -> Q8Gemm.nt(ctx, Tensor.allocate(arena, DType.F32, 2, 384), q, d));
            assertTrue(e.getMessage().contains("argument 'b'"), e.getMessage()); // b's K differs from a's
            e = assertThrows(Moe4jException.class, () -> Q8Gemm.nt(ctx, a, q, d.slice(1, 0, 16)));
            assertTrue(e.getMessage().contains("argument 'd'"), e.getMessage());
            Tensor inside = Tensor.of(a.segment().asSlice(64), DType.F32, 2, 32);
            e = assertThrows(Moe4jException.class, () -> Q8Gemm.nt(ctx, a, q, inside));
            assertTrue(e.getMessage().contains("'d' overlaps 'a'"), e.getMessage());
            Q8Gemm.Weights odd = new Q8Gemm.Weights(
                    Tensor.allocate(arena, DType.Q8_P16, 24, 256), Tensor.allocate(arena, DType.F32, 24));
            e = assertThrows(
                    Moe4jException.class, () -> Q8Gemm.nt(ctx, a, odd, Tensor.allocate(arena, DType.F32, 2, 24)));
            assertTrue(e.getMessage().contains("multiple of 16"), e.getMessage());
            Tensor narrow = Tensor.allocate(arena, DType.F32, 2, 100);
            Q8Gemm.Weights w100 = new Q8Gemm.Weights(
                    Tensor.allocate(arena, DType.Q8_P16, 32, 100), Tensor.allocate(arena, DType.F32, 32));
            e = assertThrows(Moe4jException.class, () -> Q8Gemm.nt(ctx, narrow, w100, d));
            assertTrue(e.getMessage().contains("argument 'a': K = 100"), e.getMessage());
            assertThrows(
                    IllegalArgumentException.class,
                    () -> Q8Gemm.nt(ctx, a, q, Tensor.allocate(arena, DType.BF16, 2, 32)));
            assertThrows(
                    IllegalArgumentException.class,
                    () -> new Q8Gemm.Weights(q.codes(), Tensor.allocate(arena, DType.F32, 31)));
            IllegalArgumentException shape = assertThrows(
                    IllegalArgumentException.class,
                    () -> Q8Gemm.quantizeWeights(ctx, Tensor.allocate(arena, DType.F32, 40, 256), arena));
            assertTrue(shape.getMessage().contains("multiple of 16"), shape.getMessage());
            // nothing was written by the rejected calls
            assertEquals(0f, d.getFloat(0, 0));
        }
    }
}
