package dev.moe4j.kernels;

import static dev.moe4j.kernels.CastTest.context;
import static dev.moe4j.kernels.CastTest.poisoned;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.Isa;
import dev.moe4j.runtime.Moe4jException;
import dev.moe4j.runtime.Status;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.Tensor;
import dev.moe4j.testing.TestSupport;
import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** The unquantized GEMM on every ISA path against a float64 product of the same (rounded) inputs. */
class GemmTest {
    static List<Arguments> cases() {
        List<Arguments> cases = new ArrayList<>();
        for (Isa isa : TestSupport.isaPaths())
            for (DType in : new DType[] {DType.F32, DType.BF16})
                for (DType out : new DType[] {DType.F32, DType.BF16}) cases.add(Arguments.of(isa, in, out));
        return cases;
    }

    @ParameterizedTest(name = "{0} {1} -> {2}")
    @MethodSource("cases")
    void matchesFloat64(Isa isa, DType in, DType out) {
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        int[][] shapes = {{1, 1, 1}, {1, 256, 7168}, {3, 5, 33}, {7, 65, 130}, {16, 8, 2048}};
        try (Arena arena = Arena.ofConfined();
                Context ctx = context(isa)) {
            for (int[] s : shapes) {
                int m = s[0], n = s[1], k = s[2];
                Tensor a = Tensor.fromFloats(arena, in, TestSupport.wideFloats(random, m * k), m, k);
                Tensor b = Tensor.fromFloats(arena, in, TestSupport.wideFloats(random, n * k), n, k);
                Tensor d = poisoned(arena, out, m, n);
                Gemm.nt(ctx, a, b, null, d);
                for (int r = 0; r < m; r++)
                    for (int c = 0; c < n; c++) {
                        double sum = 0, magnitude = 0;
                        for (int i = 0; i < k; i++) {
                            double p = (double) a.getFloat(r, i) * b.getFloat(c, i);
                            sum += p;
                            magnitude += Math.abs(p);
                        }
                        double tolerance = 1e-5 * magnitude + (out == DType.BF16 ? Math.abs(sum) * 0x1p-8 : 0);
                        double actual = d.getFloat(r, c);
                        if (!(Math.abs(actual - sum) <= tolerance))
                            throw new AssertionError(isa + " " + in + "->" + out + " [" + m + "," + n + "," + k
                                    + "] seed " + seed + ": d[" + r + "," + c + "] = " + actual + ", float64 " + sum);
                    }
            }
        }
    }

    @ParameterizedTest
    @MethodSource("dev.moe4j.kernels.CastTest#isaPaths")
    void addsCSeparatelyOrInPlace(Isa isa) {
        SplittableRandom random = TestSupport.random(TestSupport.freshSeed());
        int m = 3, n = 9, k = 40;
        try (Arena arena = Arena.ofConfined();
                Context ctx = context(isa)) {
            Tensor a = Tensor.fromFloats(arena, DType.BF16, TestSupport.wideFloats(random, m * k), m, k);
            Tensor b = Tensor.fromFloats(arena, DType.BF16, TestSupport.wideFloats(random, n * k), n, k);
            float[] cValues = TestSupport.wideFloats(random, m * n);
            Tensor c = Tensor.fromFloats(arena, DType.F32, cValues, m, n);
            Tensor d = poisoned(arena, DType.F32, m, n);
            Gemm.nt(ctx, a, b, c, d);
            Tensor plain = Gemm.nt(ctx, a, b, DType.F32, arena);
            Gemm.nt(ctx, a, b, c, c);
            for (int r = 0; r < m; r++)
                for (int col = 0; col < n; col++) {
                    float expected = plain.getFloat(r, col) + cValues[r * n + col];
                    assertEquals(expected, d.getFloat(r, col), 0f);
                    assertEquals(expected, c.getFloat(r, col), 0f);
                }
        }
    }

    /**
     * A row's result does not depend on the other rows of its call (batch invariance): each row of a 13-row product
     * equals, bit for bit, the same row computed alone, for short, long and ragged K and a ragged last column block.
     */
    @ParameterizedTest(name = "{0} {1} -> {2}")
    @MethodSource("cases")
    void aRowIsBitForBitTheRowAlone(Isa isa, DType in, DType out) {
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        int m = 13, n = 37;
        try (Arena arena = Arena.ofConfined();
                Context ctx = context(isa)) {
            for (int k : new int[] {128, 200, 512}) {
                Tensor a = Tensor.fromFloats(arena, in, TestSupport.wideFloats(random, m * k), m, k);
                Tensor b = Tensor.fromFloats(arena, in, TestSupport.wideFloats(random, n * k), n, k);
                Tensor d = poisoned(arena, out, m, n);
                Gemm.nt(ctx, a, b, null, d);
                for (int r = 0; r < m; r++) {
                    Tensor single = poisoned(arena, out, 1, n);
                    Gemm.nt(ctx, a.slice(0, r, 1), b, null, single);
                    for (int col = 0; col < n; col++)
                        assertEquals(
                                Float.floatToRawIntBits(single.getFloat(0, col)),
                                Float.floatToRawIntBits(d.getFloat(r, col)),
                                isa + " " + in + "->" + out + " k " + k + " [" + r + ", " + col + "], seed " + seed);
                }
            }
        }
    }

    /** A batch over per-head column ranges of token rows (MLA's absorption) equals one rank-2 call per head. */
    @ParameterizedTest(name = "{0} {1} -> {2}")
    @MethodSource("cases")
    void aBatchIsBitForBitTheCallsPerMatrix(Isa isa, DType in, DType out) {
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        int heads = 5, t = 7, k = 37, n = 19, headStride = k + 3;
        try (Arena arena = Arena.ofConfined();
                Context ctx = context(isa)) {
            Tensor rows = Tensor.fromFloats(
                    arena, in, TestSupport.wideFloats(random, t * heads * headStride), t, (long) heads * headStride);
            Tensor weights = Tensor.fromFloats(arena, in, TestSupport.wideFloats(random, heads * n * k), heads, n, k);
            Tensor base =
                    Tensor.fromFloats(arena, DType.F32, TestSupport.wideFloats(random, t * heads * n), t, heads * n);
            Tensor d = poisoned(arena, out, t, (long) heads * n);
            Tensor a = Tensor.of(
                    rows.segment(), in, new long[] {heads, t, k}, new long[] {headStride, (long) heads * headStride, 1
                    });
            Tensor c =
                    Tensor.of(base.segment(), DType.F32, new long[] {heads, t, n}, new long[] {n, (long) heads * n, 1});
            Gemm.nt(ctx, a, weights, c, Tensor.of(d.segment(), out, new long[] {heads, t, n}, new long[] {
                n, (long) heads * n, 1
            }));
            for (int h = 0; h < heads; h++) {
                Tensor single = poisoned(arena, out, t, n);
                Gemm.nt(
                        ctx,
                        rows.slice(1, (long) h * headStride, k),
                        weights.slice(0, h, 1).view(n, k),
                        base.slice(1, (long) h * n, n),
                        single);
                for (int r = 0; r < t; r++)
                    for (int col = 0; col < n; col++)
                        assertEquals(
                                Float.floatToRawIntBits(single.getFloat(r, col)),
                                Float.floatToRawIntBits(d.getFloat(r, (long) h * n + col)),
                                isa + " head " + h + " [" + r + ", " + col + "], seed " + seed);
            }
        }
    }

    @Test
    void rejectsABatchOfMismatchedMatrices() {
        try (Arena arena = Arena.ofConfined();
                Context ctx = Context.create()) {
            Tensor a = Tensor.allocate(arena, DType.BF16, 3, 2, 64), d = poisoned(arena, DType.F32, 3, 2, 5);
            Moe4jException batch = assertThrows(
                    Moe4jException.class, () -> Gemm.nt(ctx, a, Tensor.allocate(arena, DType.BF16, 4, 5, 64), null, d));
            assertTrue(
                    batch.nativeMessage().contains("argument 'b': shape [4, 5, 64] but expected [3, 5, 64]"),
                    batch.nativeMessage());
            IllegalArgumentException rank = assertThrows(
                    IllegalArgumentException.class,
                    () -> Gemm.nt(ctx, a, Tensor.allocate(arena, DType.BF16, 5, 64), null, d));
            assertTrue(rank.getMessage().startsWith("b must have rank 3"), rank.getMessage());
            assertThrows(
                    IllegalArgumentException.class,
                    () -> Gemm.nt(ctx, Tensor.allocate(arena, DType.BF16, 1, 1, 1, 64), a, null, d));
            assertEquals(-1, d.segment().get(java.lang.foreign.ValueLayout.JAVA_INT, 0), "d untouched");
        }
    }

    @Test
    void rejectsMixedDtypesAndMismatchedK() {
        try (Arena arena = Arena.ofConfined();
                Context ctx = Context.create()) {
            Tensor a = Tensor.allocate(arena, DType.BF16, 2, 64);
            Tensor d = poisoned(arena, DType.F32, 2, 3);
            Tensor f32 = Tensor.allocate(arena, DType.F32, 3, 64);
            IllegalArgumentException mixed =
                    assertThrows(IllegalArgumentException.class, () -> Gemm.nt(ctx, a, f32, null, d));
            assertTrue(mixed.getMessage().startsWith("b must be [BF16]"), mixed.getMessage());
            // The native side refuses it on its own too (for callers that bypass the Java checks).
            int status = dev.moe4j.bindings.moe4j_h.moe4j_gemm_nt(
                    ctx.handle(),
                    a.descriptor(arena, "a"),
                    f32.descriptor(arena, "b"),
                    java.lang.foreign.MemorySegment.NULL,
                    d.descriptor(arena, "d"));
            assertEquals(Status.INVALID_ARGUMENT.code(), status);
            String message = dev.moe4j.runtime.NativeLibrary.lastError();
            System.out.println("rejected: " + message);
            assertTrue(message.contains("argument 'b': dtype F32 (0) is not accepted; expected BF16"), message);
            Moe4jException k = assertThrows(
                    Moe4jException.class, () -> Gemm.nt(ctx, a, Tensor.allocate(arena, DType.BF16, 3, 65), null, d));
            System.out.println("rejected: " + k.getMessage());
            assertTrue(k.nativeMessage().contains("argument 'b': shape [3, 65] but expected [3, 64]"));
            assertEquals(-1, d.segment().get(java.lang.foreign.ValueLayout.JAVA_INT, 0), "d untouched");
        }
    }
}
