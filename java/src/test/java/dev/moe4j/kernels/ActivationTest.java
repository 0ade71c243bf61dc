package dev.moe4j.kernels;

import static dev.moe4j.kernels.CastTest.context;
import static dev.moe4j.kernels.CastTest.poisoned;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.Isa;
import dev.moe4j.runtime.Moe4jException;
import dev.moe4j.tensor.BFloat16;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.Tensor;
import dev.moe4j.testing.TestSupport;
import java.lang.foreign.Arena;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * moe4j_silu_mul on every ISA path, bit for bit against the contract's exp polynomial written as Java float
 * operations, and within a few ulp of SiLU computed in double.
 */
class ActivationTest {
    /** The contract's exp (core/exp_poly.h), one Java operation per native one. */
    static float exp(float x) {
        x = x > -87f ? x : -87f;
        x = x < 88f ? x : 88f;
        float n = (float) Math.rint(x * 1.44269504088896341f);
        float r = Math.fma(n, -0.693359375f, x);
        r = Math.fma(n, 2.12194440e-4f, r);
        float p = 1.9875691500e-4f;
        for (float c :
                new float[] {1.3981999507e-3f, 8.3334519073e-3f, 4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f})
            p = Math.fma(p, r, c);
        float y = Math.fma(p, r * r, r) + 1f;
        return y * Float.intBitsToFloat(((int) n + 127) << 23);
    }

    static float siluMul(float gate, float up) {
        return gate / (1f + exp(-gate)) * up;
    }

    static float rounded(float v, DType dtype) {
        return dtype == DType.BF16 ? BFloat16.toFloat(BFloat16.fromFloat(v)) : v;
    }

    @ParameterizedTest
    @MethodSource("dev.moe4j.kernels.CastTest#isaPaths")
    void matchesTheReferenceBitForBit(Isa isa) {
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        int[][] shapes = {{1, 1}, {3, 7}, {2, 8}, {5, 17}, {4, 100}, {3, 1408}};
        DType[] types = {DType.F32, DType.BF16};
        try (Arena arena = Arena.ofConfined();
                Context ctx = context(isa)) {
            for (int[] s : shapes)
                for (DType gType : types)
                    for (DType uType : types)
                        for (DType oType : types) {
                            int t = s[0], n = s[1];
                            float[] g = TestSupport.wideFloats(random, t * n);
                            for (int i = 0; i < g.length; i += 11) g[i] = (float) random.nextDouble(-120, 120);
                            if (g.length > 3) g[3] = Float.NaN;
                            // gate as a strided view: every row padded by 3 elements
                            Tensor gate =
                                    Tensor.allocate(arena, gType, t, n + 3).slice(1, 0, n);
                            for (int i = 0; i < g.length; i++) gate.setFloat(g[i], i / n, i % n);
                            Tensor up = Tensor.fromFloats(arena, uType, TestSupport.wideFloats(random, t * n), t, n);
                            Tensor out = poisoned(arena, oType, t, n);
                            Activation.siluMul(ctx, gate, up, out);
                            for (int r = 0; r < t; r++)
                                for (int c = 0; c < n; c++) {
                                    float a = gate.getFloat(r, c), u = up.getFloat(r, c);
                                    float expected = rounded(siluMul(a, u), oType);
                                    String where = isa + " " + gType + "," + uType + "->" + oType + " [" + t + ", " + n
                                            + "] at " + r + "," + c + " gate " + a + ", seed " + seed;
                                    assertEquals(
                                            Float.floatToRawIntBits(expected),
                                            Float.floatToRawIntBits(out.getFloat(r, c)),
                                            where);
                                }
                        }
        }
    }

    @Test
    void theExpPolynomialIsWithinTwoUlpAndSiluCloseToDouble() {
        SplittableRandom random = TestSupport.random(TestSupport.freshSeed());
        for (int i = 0; i < 200_000; i++) {
            float x = (float) random.nextDouble(-87, 88);
            double exact = Math.exp(x);
            assertTrue(Math.abs(exp(x) - exact) <= 2 * Math.ulp((float) exact), "exp(" + x + ") = " + exp(x));
            double silu = x / (1 + Math.exp(-x));
            assertTrue(Math.abs(siluMul(x, 1f) - silu) <= 4 * Math.ulp((float) silu) + 1e-35, "silu(" + x + ")");
        }
        assertEquals(0f, siluMul(-200f, 1f), 1e-35f);
        assertEquals(200f, siluMul(200f, 1f));
    }

    @ParameterizedTest
    @MethodSource("dev.moe4j.kernels.CastTest#isaPaths")
    void runsInPlaceOverGateOrUp(Isa isa) {
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        int t = 3, n = 77;
        try (Arena arena = Arena.ofConfined();
                Context ctx = context(isa)) {
            for (boolean overGate : new boolean[] {true, false}) {
                float[] g = TestSupport.wideFloats(random, t * n), u = TestSupport.wideFloats(random, t * n);
                Tensor gate = Tensor.fromFloats(arena, DType.F32, g, t, n);
                Tensor up = Tensor.fromFloats(arena, DType.F32, u, t, n);
                Activation.siluMul(ctx, gate, up, overGate ? gate : up);
                Tensor out = overGate ? gate : up;
                for (int i = 0; i < g.length; i++)
                    assertEquals(
                            Float.floatToRawIntBits(siluMul(g[i], u[i])),
                            Float.floatToRawIntBits(out.getFloat(i / n, i % n)),
                            isa + " over gate " + overGate + ", seed " + seed);
            }
        }
    }

    /**
     * gate and up as the two halves of one stacked [T, 2N] buffer (the dense MLP's gate/up GEMM output): their address
     * ranges interleave without sharing an element, so the result may go into the gate half in place; an output
     * straddling the halves, or the gate rows shifted by one, shares elements and is refused.
     */
    @Test
    void interleavedHalvesOfOneBufferAreNotAnOverlap() {
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        int t = 5, n = 48;
        try (Arena arena = Arena.ofConfined();
                Context ctx = Context.create()) {
            Tensor stacked = Tensor.fromFloats(arena, DType.F32, TestSupport.wideFloats(random, t * 2 * n), t, 2 * n);
            Tensor gate = stacked.slice(1, 0, n), up = stacked.slice(1, n, n);
            Tensor expected = poisoned(arena, DType.F32, t, n);
            Activation.siluMul(ctx, gate, up, expected);
            Tensor bf16 = Tensor.allocate(arena, DType.BF16, t, 2 * n);
            Tensor bf16Expected = poisoned(arena, DType.BF16, t, n);
            Cast.apply(ctx, stacked, bf16);
            Activation.siluMul(ctx, bf16.slice(1, 0, n), bf16.slice(1, n, n), bf16Expected);

            Activation.siluMul(ctx, gate, up, gate);
            Activation.siluMul(ctx, bf16.slice(1, 0, n), bf16.slice(1, n, n), bf16.slice(1, 0, n));
            for (int r = 0; r < t; r++)
                for (int c = 0; c < n; c++) {
                    assertEquals(
                            Float.floatToRawIntBits(expected.getFloat(r, c)),
                            Float.floatToRawIntBits(gate.getFloat(r, c)),
                            "in place at " + r + "," + c + ", seed " + seed);
                    assertEquals(
                            Float.floatToRawIntBits(bf16Expected.getFloat(r, c)),
                            Float.floatToRawIntBits(bf16.getFloat(r, c)),
                            "bf16 in place at " + r + "," + c + ", seed " + seed);
                }
            float[] before = stacked.toFloatArray();
            var e = assertThrows(
                    Moe4jException.class, () -> Activation.siluMul(ctx, gate, up, stacked.slice(1, n / 2, n)));
            assertTrue(e.getMessage().contains("output 'out' overlaps 'gate'"), e.getMessage());
            e = assertThrows(
                    Moe4jException.class,
                    () -> Activation.siluMul(
                            ctx, gate.slice(0, 1, t - 1), up.slice(0, 0, t - 1), gate.slice(0, 0, t - 1)));
            assertTrue(e.getMessage().contains("output 'out' overlaps 'gate'"), e.getMessage());
            assertEquals(Arrays.toString(before), Arrays.toString(stacked.toFloatArray()), "written");
        }
    }

    @Test
    void rejectsBadArgumentsAndWritesNothing() {
        try (Arena arena = Arena.ofConfined();
                Context ctx = Context.create()) {
            Tensor gate = Tensor.allocate(arena, DType.F32, 4, 8), up = Tensor.allocate(arena, DType.BF16, 4, 8);
            Tensor out = poisoned(arena, DType.F32, 4, 8);
            var e = assertThrows(
                    Moe4jException.class,
                    () -> Activation.siluMul(ctx, gate, Tensor.allocate(arena, DType.BF16, 4, 9), out));
            assertTrue(e.getMessage().contains("argument 'up': shape [4, 9] but expected [4, 8]"), e.getMessage());
            e = assertThrows(Moe4jException.class, () -> Activation.siluMul(ctx, gate, up, gate.slice(0, 1, 3)));
            assertTrue(e.getMessage().contains("argument 'out': shape [3, 8]"), e.getMessage());
            Tensor overlapping = Tensor.of(gate.segment().asSlice(4), DType.F32, new long[] {3, 8}, new long[] {8, 1});
            e = assertThrows(
                    Moe4jException.class,
                    () -> Activation.siluMul(ctx, gate.slice(0, 0, 3), up.slice(0, 0, 3), overlapping));
            assertTrue(e.getMessage().contains("output 'out' overlaps 'gate'"), e.getMessage());
            var dtype = assertThrows(
                    IllegalArgumentException.class,
                    () -> Activation.siluMul(ctx, Tensor.allocate(arena, DType.I32, 4, 8), up, out));
            assertTrue(dtype.getMessage().startsWith("gate must be [F32, BF16]"), dtype.getMessage());
            for (byte b : out.segment().toArray(ValueLayout.JAVA_BYTE)) assertEquals((byte) 0xFF, b, "out written");
        }
    }
}
