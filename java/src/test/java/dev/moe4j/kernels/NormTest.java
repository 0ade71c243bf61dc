package dev.moe4j.kernels;

import static dev.moe4j.kernels.CastTest.context;
import static dev.moe4j.kernels.CastTest.poisoned;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
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

/** moe4j_rms_norm on every ISA path, bit for bit against a plain Java loop summing in the documented lane order. */
class NormTest {
    static final float EPS = 1e-6f;

    /** y of one row (and s, the sum, into sum): the contract's arithmetic, one Java operation per native one. */
    static float[] reference(float[] x, float[] residual, float[] w, float[] sum) {
        int d = x.length;
        float[] lanes = new float[16];
        for (int i = 0; i < d; i++) {
            sum[i] = residual == null ? x[i] : x[i] + residual[i];
            lanes[i % 16] = Math.fma(sum[i], sum[i], lanes[i % 16]);
        }
        for (int width = 8; width >= 1; width /= 2) for (int l = 0; l < width; l++) lanes[l] += lanes[l + width];
        float inv = (float) (1.0 / Math.sqrt(lanes[0] / d + EPS));
        float[] y = new float[d];
        for (int i = 0; i < d; i++) y[i] = sum[i] * inv * w[i];
        return y;
    }

    /** A [t, d] view of the first d columns of [t, d + pad] rows filled with values (in the dtype's rounding). */
    static Tensor rows(Arena arena, DType dtype, float[] values, int t, int d, int pad) {
        Tensor wide = Tensor.allocate(arena, dtype, t, d + pad);
        wide.segment().fill((byte) 0x7F);
        Tensor view = wide.slice(1, 0, d);
        for (int r = 0; r < t; r++) for (int c = 0; c < d; c++) view.setFloat(values[r * d + c], r, c);
        return view;
    }

    static float[] row(Tensor t, int r) {
        float[] out = new float[Math.toIntExact(t.shape(1))];
        for (int c = 0; c < out.length; c++) out[c] = t.getFloat(r, c);
        return out;
    }

    static int[] bits(float[] v) {
        int[] b = new int[v.length];
        for (int i = 0; i < v.length; i++) b[i] = Float.floatToRawIntBits(v[i]);
        return b;
    }

    /** float values rounded as a store into dtype would round them. */
    static float[] rounded(float[] v, DType dtype) {
        float[] out = v.clone();
        if (dtype == DType.BF16)
            for (int i = 0; i < out.length; i++)
                out[i] = dev.moe4j.tensor.BFloat16.toFloat(dev.moe4j.tensor.BFloat16.fromFloat(out[i]));
        return out;
    }

    @ParameterizedTest
    @MethodSource("dev.moe4j.kernels.CastTest#isaPaths")
    void matchesTheReferenceBitForBit(Isa isa) {
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        int[][] shapes = {{1, 1, 0}, {3, 15, 1}, {5, 16, 0}, {4, 17, 3}, {2, 100, 0}, {6, 512, 64}, {2, 7168, 0}};
        try (Arena arena = Arena.ofConfined();
                Context ctx = context(isa)) {
            for (int[] s : shapes)
                for (DType xType : new DType[] {DType.F32, DType.BF16})
                    for (DType yType : new DType[] {DType.F32, DType.BF16})
                        for (int variant = 0; variant < 3; variant++) { // plain, + residual, + residual and sum
                            int t = s[0], d = s[1], pad = s[2];
                            String where = isa + " " + xType + "->" + yType + " [" + t + ", " + d + "] variant "
                                    + variant + ", seed " + seed;
                            Tensor x = rows(arena, xType, TestSupport.wideFloats(random, t * d), t, d, pad);
                            Tensor residual = variant == 0
                                    ? null
                                    : rows(arena, DType.F32, TestSupport.wideFloats(random, t * d), t, d, pad);
                            Tensor sum = variant == 2 ? poisoned(arena, DType.F32, t, d) : null;
                            float[] w = TestSupport.wideFloats(random, d);
                            Tensor weight = Tensor.fromFloats(arena, DType.F32, w, d);
                            Tensor y = rows(arena, yType, new float[t * d], t, d, pad);
                            y.segment().fill((byte) 0xFF);
                            Norm.rms(ctx, x, residual, weight, EPS, sum, y);
                            for (int r = 0; r < t; r++) {
                                float[] expectedSum = new float[d];
                                float[] expected = reference(
                                        row(x, r), residual == null ? null : row(residual, r), w, expectedSum);
                                assertArrayEquals(bits(rounded(expected, yType)), bits(row(y, r)), where + " row " + r);
                                if (sum != null) assertArrayEquals(bits(expectedSum), bits(row(sum, r)), where);
                            }
                        }
        }
    }

    @ParameterizedTest
    @MethodSource("dev.moe4j.kernels.CastTest#isaPaths")
    void writesTheSumInPlaceOverEitherInput(Isa isa) {
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        int t = 3, d = 300;
        try (Arena arena = Arena.ofConfined();
                Context ctx = context(isa)) {
            float[] w = TestSupport.wideFloats(random, d);
            Tensor weight = Tensor.fromFloats(arena, DType.F32, w, d);
            for (boolean overX : new boolean[] {true, false}) {
                float[] xs = TestSupport.wideFloats(random, t * d), rs = TestSupport.wideFloats(random, t * d);
                Tensor x = Tensor.fromFloats(arena, DType.F32, xs, t, d);
                Tensor residual = Tensor.fromFloats(arena, DType.F32, rs, t, d);
                Tensor y = poisoned(arena, DType.BF16, t, d);
                Norm.rms(ctx, x, residual, weight, EPS, overX ? x : residual, y);
                for (int r = 0; r < t; r++) {
                    float[] sum = new float[d];
                    float[] expected = reference(
                            java.util.Arrays.copyOfRange(xs, r * d, r * d + d),
                            java.util.Arrays.copyOfRange(rs, r * d, r * d + d),
                            w,
                            sum);
                    assertArrayEquals(bits(sum), bits(row(overX ? x : residual, r)), "sum, seed " + seed);
                    assertArrayEquals(bits(rounded(expected, DType.BF16)), bits(row(y, r)), "y, seed " + seed);
                }
            }
        }
    }

    @Test
    void aRowIsTheSameAloneAsInABatchOnEveryPath() {
        SplittableRandom random = TestSupport.random(TestSupport.freshSeed());
        int t = 33, d = 7168;
        try (Arena arena = Arena.ofConfined()) {
            Tensor x = Tensor.fromFloats(arena, DType.F32, TestSupport.wideFloats(random, t * d), t, d);
            Tensor weight = Tensor.fromFloats(arena, DType.F32, TestSupport.wideFloats(random, d), d);
            byte[] first = null;
            for (Isa isa : TestSupport.isaPaths())
                try (Context ctx = context(isa)) {
                    Tensor all = poisoned(arena, DType.F32, t, d), one = poisoned(arena, DType.F32, 1, d);
                    Norm.rms(ctx, x, null, weight, EPS, null, all);
                    Norm.rms(ctx, x.slice(0, 20, 1), null, weight, EPS, null, one);
                    byte[] row =
                            all.slice(0, 20, 1).segment().asSlice(0, d * 4L).toArray(ValueLayout.JAVA_BYTE);
                    assertArrayEquals(row, one.segment().toArray(ValueLayout.JAVA_BYTE), isa.toString());
                    if (first == null) first = all.segment().toArray(ValueLayout.JAVA_BYTE);
                    else assertArrayEquals(first, all.segment().toArray(ValueLayout.JAVA_BYTE), isa + " vs scalar");
                }
        }
    }

    @Test
    void rejectsBadArgumentsAndWritesNothing() {
        try (Arena arena = Arena.ofConfined();
                Context ctx = Context.create()) {
            Tensor x = Tensor.allocate(arena, DType.F32, 4, 8), weight = Tensor.allocate(arena, DType.F32, 8);
            Tensor y = poisoned(arena, DType.BF16, 4, 8), sum = poisoned(arena, DType.F32, 4, 8);
            var e = assertThrows(
                    Moe4jException.class,
                    () -> Norm.rms(ctx, x, null, Tensor.allocate(arena, DType.F32, 7), EPS, null, y));
            assertTrue(e.getMessage().contains("argument 'weight': shape [7] but expected [8]"), e.getMessage());
            e = assertThrows(Moe4jException.class, () -> Norm.rms(ctx, x, null, weight, 0f, sum, y));
            assertTrue(e.getMessage().contains("argument 'eps'"), e.getMessage());
            e = assertThrows(
                    Moe4jException.class,
                    () -> Norm.rms(ctx, x, Tensor.allocate(arena, DType.F32, 3, 8), weight, EPS, sum, y));
            assertTrue(
                    e.getMessage().contains("argument 'residual': shape [3, 8] but expected [4, 8]"), e.getMessage());
            e = assertThrows(Moe4jException.class, () -> Norm.rms(ctx, x, null, weight, EPS, sum, sum));
            assertTrue(e.getMessage().contains("output 'y' overlaps 'sum_out'"), e.getMessage());
            e = assertThrows(Moe4jException.class, () -> Norm.rms(ctx, x, null, weight, EPS, null, x.slice(0, 0, 4)));
            assertTrue(e.getMessage().contains("output 'y' overlaps 'x'"), e.getMessage());
            Tensor bf16Sum = Tensor.allocate(arena, DType.BF16, 4, 8);
            var dtype =
                    assertThrows(IllegalArgumentException.class, () -> Norm.rms(ctx, x, null, weight, EPS, bf16Sum, y));
            assertTrue(dtype.getMessage().startsWith("sumOut must be [F32]"), dtype.getMessage());
            for (byte b : y.segment().toArray(ValueLayout.JAVA_BYTE)) assertEquals((byte) 0xFF, b, "y written");
            for (byte b : sum.segment().toArray(ValueLayout.JAVA_BYTE)) assertEquals((byte) 0xFF, b, "sum written");
        }
    }
}
