package dev.moe4j.kernels;

import static dev.moe4j.kernels.CastTest.context;
import static dev.moe4j.kernels.CastTest.poisoned;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.Isa;
import dev.moe4j.runtime.Moe4jException;
import dev.moe4j.runtime.Status;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.QuantizedGroups;
import dev.moe4j.tensor.QuantizedTensor;
import dev.moe4j.tensor.Tensor;
import dev.moe4j.testing.Reference;
import dev.moe4j.testing.TestSupport;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * FP8 GEMMs on every ISA path against float64 references: to fp32 rounding of the product of the dequantized
 * inputs (on fresh random inputs), and within calc_diff 1e-3 of the product of the unquantized inputs (DeepGEMM's
 * criterion, on fixed inputs).
 */
class Fp8GemmTest {
    record Shape(int m, int n, int k) {}

    /** The inputs of the calc_diff criterion: any seed passes it but a rare few (see the test). */
    static final long CALC_DIFF_SEED = 20260129L;

    static final Shape[] SHAPES = {
        new Shape(1, 1, 128),
        new Shape(1, 300, 256),
        new Shape(3, 130, 384),
        new Shape(16, 256, 128),
        new Shape(37, 200, 256)
    };

    static List<Arguments> cases() {
        List<Arguments> cases = new ArrayList<>();
        for (Isa isa : TestSupport.isaPaths())
            for (DType out : new DType[] {DType.F32, DType.BF16}) cases.add(Arguments.of(isa, out));
        return cases;
    }

    /** Unquantized operands, their FP8 forms, and the float64 references. */
    record Problem(float[] a, float[] w, QuantizedTensor qa, QuantizedTensor qw, int m, int n, int k) {
        /** The product of the dequantized inputs, in float64, and the sum of |terms| bounding its rounding error. */
        double[] exact(int row, int col) {
            double sum = 0, magnitude = 0;
            for (int kk = 0; kk < k; kk++) {
                double x = (double) qa.data().getFloat(row, kk) * qa.scales().getFloat(row, kk / 128);
                double y = (double) qw.data().getFloat(col, kk) * qw.scales().getFloat(col / 128, kk / 128);
                sum += x * y;
                magnitude += Math.abs(x * y);
            }
            return new double[] {sum, magnitude};
        }

        double unquantized(int row, int col) {
            double sum = 0;
            for (int kk = 0; kk < k; kk++) sum += (double) a[row * k + kk] * w[col * k + kk];
            return sum;
        }
    }

    static Problem problem(Context ctx, Arena arena, SplittableRandom random, int m, int n, int k) {
        // Activations vary per token (per-token scales absorb that); weights share one magnitude, as trained
        // weights within a 128x128 block do (a 100x spread inside a block would push rows into subnormals).
        float[] a = gaussianRows(random, m, k), w = new float[n * k];
        for (int i = 0; i < w.length; i++) w[i] = (float) (random.nextGaussian() * 0.05);
        QuantizedTensor qa =
                Quantization.perToken(ctx, Tensor.fromFloats(arena, DType.F32, a, m, k), ScaleFormat.FP32, arena);
        QuantizedTensor qw =
                Quantization.perBlock(ctx, Tensor.fromFloats(arena, DType.F32, w, n, k), ScaleFormat.FP32, arena);
        return new Problem(a, w, qa, qw, m, n, k);
    }

    /** Gaussian values with a magnitude per row spread over two decades, as activations and weights have. */
    static float[] gaussianRows(SplittableRandom random, int rows, int cols) {
        float[] v = new float[rows * cols];
        for (int r = 0; r < rows; r++) {
            double scale = Math.pow(10, random.nextDouble(-1, 1));
            for (int c = 0; c < cols; c++) v[r * cols + c] = (float) (random.nextGaussian() * scale);
        }
        return v;
    }

    /** Checks output rows (of a problem) against the float64 product of the dequantized inputs, elementwise. */
    static void check(Problem p, Tensor d, int dRowOffset, String where) {
        for (int r = 0; r < p.m(); r++) {
            for (int c = 0; c < p.n(); c++) {
                double[] exact = p.exact(r, c);
                double actual = d.rank() == 2 ? d.getFloat(dRowOffset + r, c) : d.getFloat(dRowOffset, r, c);
                double tolerance = 1e-5 * exact[1] + (d.dtype() == DType.BF16 ? Math.abs(exact[0]) * 0x1p-8 : 0);
                if (!(Math.abs(actual - exact[0]) <= tolerance))
                    throw new AssertionError(where + ": d[" + r + "," + c + "] = " + actual
                            + ", float64 of the dequantized inputs " + exact[0] + " (tolerance " + tolerance + ")");
            }
        }
    }

    /**
     * DeepGEMM's criterion, calc_diff against the product of the unquantized inputs below 1e-3, on fixed inputs. It is
     * a statistic of the FP8 rounding of both operands (about 6e-4 on average), not of the kernel, which check() holds
     * to fp32 rounding: over a few thousand outputs dominated by the largest of a few rows, one draw in some thousands
     * passes 1e-3 (60,000 draws of 16 x 256 x 128: mean 6.8e-4, sd 5e-5, 2 at or above 1e-3), so fresh inputs would
     * fail a run now and then without any fault.
     */
    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("cases")
    void ntMeetsDeepGemmsCalcDiffOnTheUnquantizedProduct(Isa isa, DType out) {
        SplittableRandom random = TestSupport.random(CALC_DIFF_SEED);
        try (Arena arena = Arena.ofConfined();
                Context ctx = context(isa)) {
            for (Shape s : SHAPES) {
                Problem p = problem(ctx, arena, random, s.m(), s.n(), s.k());
                if ((long) s.m() * s.n() < 2048) continue;
                Tensor d = poisoned(arena, out, s.m(), s.n());
                Fp8Gemm.nt(ctx, p.qa(), p.qw(), null, d);
                double[] got = new double[s.m() * s.n()], full = new double[got.length];
                for (int r = 0; r < s.m(); r++) {
                    for (int c = 0; c < s.n(); c++) {
                        got[r * s.n() + c] = d.getFloat(r, c);
                        full[r * s.n() + c] = p.unquantized(r, c);
                    }
                }
                double diff = Reference.calcDiff(got, full);
                assertTrue(
                        diff < 1e-3, isa + " " + out + " " + s + ": calc_diff against the unquantized product " + diff);
            }
        }
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("cases")
    void ntMatchesTheFloat64References(Isa isa, DType out) {
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        try (Arena arena = Arena.ofConfined();
                Context ctx = context(isa)) {
            for (Shape s : SHAPES) {
                Problem p = problem(ctx, arena, random, s.m(), s.n(), s.k());
                Tensor d = poisoned(arena, out, s.m(), s.n());
                Fp8Gemm.nt(ctx, p.qa(), p.qw(), null, d);
                check(p, d, 0, isa + " " + out + " " + s + " seed " + seed);
            }
        }
    }

    /**
     * A NaN weight code (0x7F, 0xFF) makes its column NaN in every row, and leaves every other column's bits as they
     * are without it, on each kernel of each path: few rows (codes widened in registers, column pairs), rows past a
     * tile or long rows (the 16-column block kernel), and many rows (40, in this context that is not reproducible: the
     * packed-panel kernel on the AVX-512 paths, whose last 32-column panel here holds 9 columns; elsewhere weights
     * widened through memory, at K = 128 and K = 1024, whose widened rows are padded).
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("dev.moe4j.kernels.CastTest#isaPaths")
    void nanWeightCodesGiveNanColumnsOnEveryKernel(Isa isa) {
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        int n = 41; // three 16-column blocks, the last of 9: an odd column count
        int[] nanColumns = {3, 18, 33, 40};
        try (Arena arena = Arena.ofConfined();
                Context ctx = context(isa)) {
            for (int k : new int[] {128, 1024}) {
                for (int m : new int[] {1, 3, 6, 12, 40}) {
                    String where = isa + " m=" + m + " k=" + k + " seed " + seed;
                    Problem p = problem(ctx, arena, random, m, n, k);
                    Tensor clean = poisoned(arena, DType.F32, m, n), d = poisoned(arena, DType.F32, m, n);
                    Fp8Gemm.nt(ctx, p.qa(), p.qw(), null, clean);
                    MemorySegment codes = p.qw().data().segment();
                    for (int i = 0; i < nanColumns.length; i++) {
                        int col = nanColumns[i], kk = (i * 389 + 77) % k;
                        codes.set(ValueLayout.JAVA_BYTE, (long) col * k + kk, (byte) (i % 2 == 0 ? 0x7F : 0xFF));
                    }
                    Fp8Gemm.nt(ctx, p.qa(), p.qw(), null, d);
                    for (int r = 0; r < m; r++) {
                        for (int c = 0; c < n; c++) {
                            final int col = c;
                            boolean nan = java.util.Arrays.stream(nanColumns).anyMatch(x -> x == col);
                            float got = d.getFloat(r, c);
                            if (nan) {
                                assertTrue(Float.isNaN(got), where + ": d[" + r + "," + c + "] = " + got);
                            } else {
                                assertEquals(
                                        Float.floatToRawIntBits(clean.getFloat(r, c)),
                                        Float.floatToRawIntBits(got),
                                        where + ": d[" + r + "," + c + "]");
                            }
                        }
                    }
                }
            }
        }
    }

    /**
     * Packed weights ({@link Fp8Gemm#packWeights}): every row count (1 to 80: the code kernel with 4, 2 and 1 panels at
     * a time and a last task of 3 panels, in one tile or several, and above its row limit, 12 or 64 rows, the panels' K
     * blocks widened once for all tiles) matches the float64 product, and each
     * row has the same bits in any batch, with 1 or 3 threads, reproducible or not. On the paths without packed kernels
     * the bits are those of the unpacked weights. A NaN code makes its column NaN and leaves the others' bits alone.
     */
    @ParameterizedTest
    @MethodSource("dev.moe4j.kernels.CastTest#isaPaths")
    void packedWeightsGiveEachRowOneResultAtAnyBatchSize(Isa isa) {
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        int n = 224, k = 256; // seven panels of 32 rows
        try (Arena arena = Arena.ofConfined();
                Context ctx = context(isa)) {
            Problem p = problem(ctx, arena, random, 80, n, k);
            QuantizedTensor packed = Fp8Gemm.packWeights(ctx, p.qw(), arena);
            assertEquals(DType.E4M3_P32, packed.data().dtype());
            Tensor all = Fp8Gemm.nt(ctx, p.qa(), packed, DType.F32, arena);
            check(p, all, 0, isa + " packed seed " + seed);
            if (!isa.hasPackedKernels()) {
                Tensor unpacked = Fp8Gemm.nt(ctx, p.qa(), p.qw(), DType.F32, arena);
                assertEquals(-1L, all.segment().mismatch(unpacked.segment()), isa + ": packed differs from unpacked");
            }
            for (boolean reproducible : new boolean[] {false, true}) {
                for (int threads : new int[] {1, 3}) {
                    try (Context other = Context.create(Context.Options.cpu()
                            .withMaxIsa(isa)
                            .withThreads(threads)
                            .withReproducible(reproducible))) {
                        for (int[] range : new int[][] {{0, 1}, {7, 2}, {9, 3}, {20, 5}, {3, 12}, {25, 13}, {30, 40}}) {
                            QuantizedTensor part = new QuantizedTensor(
                                    p.qa().data().slice(0, range[0], range[1]),
                                    p.qa().scales().slice(0, range[0], range[1]),
                                    1);
                            Tensor d = Fp8Gemm.nt(other, part, packed, DType.F32, arena);
                            for (int r = 0; r < range[1]; r++)
                                for (int c = 0; c < n; c++)
                                    assertEquals(
                                            Float.floatToRawIntBits(all.getFloat(range[0] + r, c)),
                                            Float.floatToRawIntBits(d.getFloat(r, c)),
                                            isa + " threads " + threads + (reproducible ? " reproducible" : "")
                                                    + " row " + (range[0] + r) + " col " + c + " seed " + seed);
                        }
                    }
                }
            }
            // The packed weights own their scales: with the source's scales zeroed, the product is unchanged.
            assertNotEquals(
                    p.qw().scales().segment().address(),
                    packed.scales().segment().address());
            float[] scales = p.qw().scales().toFloatArray();
            p.qw().scales().copyFrom(new float[scales.length]);
            assertEquals(
                    -1L,
                    all.segment()
                            .mismatch(Fp8Gemm.nt(ctx, p.qa(), packed, DType.F32, arena)
                                    .segment()),
                    isa + ": packed weights read their source's scales");
            p.qw().scales().copyFrom(scales);
            // A NaN code in weight row 70 (panel 2): column 70 NaN, every other column as before, at 1 row (the code
            // kernel, redone on widened blocks), 40 and 80 rows.
            MemorySegment codes = p.qw().data().segment();
            codes.set(ValueLayout.JAVA_BYTE, 70L * k + 131, (byte) 0x7F);
            QuantizedTensor withNan = Fp8Gemm.packWeights(ctx, p.qw(), arena);
            for (int m : new int[] {1, 40, 80}) {
                QuantizedTensor part = new QuantizedTensor(
                        p.qa().data().slice(0, 0, m), p.qa().scales().slice(0, 0, m), 1);
                Tensor d = Fp8Gemm.nt(ctx, part, withNan, DType.F32, arena);
                for (int r = 0; r < m; r++)
                    for (int c = 0; c < n; c++) {
                        float got = d.getFloat(r, c);
                        if (c == 70) {
                            assertTrue(Float.isNaN(got), isa + " m=" + m + ": d[" + r + ",70] = " + got);
                        } else {
                            assertEquals(
                                    Float.floatToRawIntBits(all.getFloat(r, c)),
                                    Float.floatToRawIntBits(got),
                                    isa + " m=" + m + ": d[" + r + "," + c + "] seed " + seed);
                        }
                    }
            }
        }
    }

    /**
     * In a reproducible context a row's result is bit-for-bit the same whether it is multiplied alone, in a batch of
     * 4, 12 or 24 (the kernels that widen weights in registers, tile by tile or a block at a time, and through memory),
     * or in a batch of 100 (where the default context may take the packed-panel kernel).
     */
    @ParameterizedTest
    @MethodSource("dev.moe4j.kernels.CastTest#isaPaths")
    void reproducibleContextsGiveEachRowTheSameBitsAtAnyBatchSize(Isa isa) {
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        try (Arena arena = Arena.ofConfined();
                Context ctx =
                        Context.create(Context.Options.cpu().withMaxIsa(isa).withReproducible(true))) {
            Problem p = problem(ctx, arena, random, 100, 256, 512);
            Tensor all = Fp8Gemm.nt(ctx, p.qa(), p.qw(), DType.F32, arena);
            for (int[] range : new int[][] {{0, 1}, {37, 1}, {60, 4}, {96, 4}, {40, 12}, {70, 24}}) {
                QuantizedTensor part = new QuantizedTensor(
                        p.qa().data().slice(0, range[0], range[1]),
                        p.qa().scales().slice(0, range[0], range[1]),
                        1);
                Tensor d = Fp8Gemm.nt(ctx, part, p.qw(), DType.F32, arena);
                for (int r = 0; r < range[1]; r++)
                    for (int c = 0; c < 256; c++)
                        assertEquals(
                                Float.floatToRawIntBits(all.getFloat(range[0] + r, c)),
                                Float.floatToRawIntBits(d.getFloat(r, c)),
                                isa + " row " + (range[0] + r) + " col " + c + " seed " + seed);
            }
        }
    }

    /**
     * Decode shapes: 1 to 9 rows against many weight columns (tiles of up to 8 rows widening the weights in registers,
     * N split over the threads). The 9-row product matches the float64 one, and in a reproducible context its first m
     * rows, for every m, have the same bits as m rows alone with 1, 2 or 3 threads.
     */
    @ParameterizedTest
    @MethodSource("dev.moe4j.kernels.CastTest#isaPaths")
    void fewRowsGiveTheSameBitsAtAnyRowAndThreadCount(Isa isa) {
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        int n = 1040, k = 512; // 65 blocks of 16 weight rows, the last 128-row scale block partial
        Context.Options options = Context.Options.cpu().withMaxIsa(isa).withReproducible(true);
        try (Arena arena = Arena.ofConfined();
                Context one = Context.create(options.withThreads(1));
                Context two = Context.create(options.withThreads(2));
                Context three = Context.create(options.withThreads(3))) {
            Problem p = problem(one, arena, random, 9, n, k);
            Tensor all = Fp8Gemm.nt(one, p.qa(), p.qw(), DType.F32, arena);
            check(p, all, 0, isa + " 9 rows seed " + seed);
            for (int m = 1; m <= 9; m++) {
                QuantizedTensor part = new QuantizedTensor(
                        p.qa().data().slice(0, 0, m), p.qa().scales().slice(0, 0, m), 1);
                for (Context ctx : new Context[] {one, two, three}) {
                    Tensor d = Fp8Gemm.nt(ctx, part, p.qw(), DType.F32, arena);
                    for (int r = 0; r < m; r++)
                        for (int c = 0; c < n; c++)
                            assertEquals(
                                    Float.floatToRawIntBits(all.getFloat(r, c)),
                                    Float.floatToRawIntBits(d.getFloat(r, c)),
                                    isa + " " + m + " rows, " + ctx.threads() + " threads: row " + r + " col " + c
                                            + " seed " + seed);
                }
            }
        }
    }

    @ParameterizedTest
    @MethodSource("dev.moe4j.kernels.CastTest#isaPaths")
    void addsCSeparatelyOrInPlaceAndReadsColumnMajorScales(Isa isa) {
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        int m = 5, n = 140, k = 256;
        try (Arena arena = Arena.ofConfined();
                Context ctx = context(isa)) {
            Problem p = problem(ctx, arena, random, m, n, k);
            float[] cValues = gaussianRows(random, m, n);
            Tensor c = Tensor.fromFloats(arena, DType.F32, cValues, m, n);
            Tensor d = poisoned(arena, DType.F32, m, n);
            Fp8Gemm.nt(ctx, p.qa(), p.qw(), c, d);
            Tensor inPlace = Tensor.fromFloats(arena, DType.F32, cValues, m, n);
            Fp8Gemm.nt(ctx, p.qa(), p.qw(), inPlace, inPlace);
            // DeepGEMM's activation scales are column-major (M-major): same values, other strides.
            Tensor columnMajor = Tensor.of(
                    arena.allocate(4L * m * (k / 128), 64), DType.F32, new long[] {m, k / 128}, new long[] {1, m});
            for (int r = 0; r < m; r++)
                for (int kb = 0; kb < k / 128; kb++)
                    columnMajor.setFloat(p.qa().scales().getFloat(r, kb), r, kb);
            Tensor dColumn = poisoned(arena, DType.F32, m, n);
            Fp8Gemm.nt(ctx, new QuantizedTensor(p.qa().data(), columnMajor, 1), p.qw(), null, dColumn);
            Tensor plain = Fp8Gemm.nt(ctx, p.qa(), p.qw(), DType.F32, arena);
            for (int r = 0; r < m; r++) {
                for (int col = 0; col < n; col++) {
                    float expected = plain.getFloat(r, col) + cValues[r * n + col];
                    assertEquals(expected, d.getFloat(r, col), 0f, isa + " c added at " + r + "," + col);
                    assertEquals(expected, inPlace.getFloat(r, col), 0f, isa + " in place at " + r + "," + col);
                    assertEquals(plain.getFloat(r, col), dColumn.getFloat(r, col), 0f, isa + " column-major sfa");
                }
            }
        }
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("cases")
    void groupedContiguousComputesEachGroupAndZeroesPadding(Isa isa, DType out) {
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        int[] counts = {3, 0, 130, 1};
        int groups = counts.length, n = 130, k = 256, alignment = 128;
        try (Arena arena = Arena.ofConfined();
                Context ctx = context(isa)) {
            List<Problem> problems = new ArrayList<>();
            for (int count : counts) problems.add(problem(ctx, arena, random, count, n, k));
            QuantizedGroups b = stackWeights(arena, problems, n, k);
            int rows = 0;
            for (int count : counts) rows += (count + alignment - 1) / alignment * alignment;
            Tensor a = Tensor.allocate(arena, DType.E4M3, rows, k);
            Tensor sfa = Tensor.allocate(arena, DType.F32, rows, k / 128);
            Tensor layout = Tensor.allocate(arena, DType.I32, rows);
            for (int r = 0; r < rows; r++) layout.setInt(-1, r);
            int[] offsets = new int[groups];
            int row = 0;
            for (int g = 0; g < groups; g++) {
                offsets[g] = row;
                Problem p = problems.get(g);
                for (int i = 0; i < counts[g]; i++) {
                    MemorySegment.copy(p.qa().data().segment(), (long) i * k, a.segment(), (long) (row + i) * k, k);
                    for (int kb = 0; kb < k / 128; kb++)
                        sfa.setFloat(p.qa().scales().getFloat(i, kb), row + i, kb);
                    layout.setInt(g, row + i);
                }
                // Padding rows hold garbage activations, NaN included: they must not leak anywhere.
                for (int i = counts[g]; i < (counts[g] + alignment - 1) / alignment * alignment; i++)
                    a.segment().asSlice((long) (row + i) * k, k).fill((byte) 0x7F);
                row += (counts[g] + alignment - 1) / alignment * alignment;
            }
            Tensor d = poisoned(arena, out, rows, n);
            Fp8Gemm.groupedContiguous(ctx, new QuantizedTensor(a, sfa, 1), b, layout, alignment, d);
            for (int g = 0; g < groups; g++)
                check(problems.get(g), d, offsets[g], isa + " " + out + " group " + g + " seed " + seed);
            for (int r = 0; r < rows; r++)
                if (layout.getInt(r) == -1)
                    for (int c = 0; c < n; c++) assertEquals(0f, d.getFloat(r, c), "padding row " + r + " is zero");
            // The same weights as separate allocations (each problem's own tensors) give the same bits.
            Tensor scattered = poisoned(arena, out, rows, n);
            Fp8Gemm.groupedContiguous(
                    ctx, new QuantizedTensor(a, sfa, 1), separateWeights(problems), layout, alignment, scattered);
            assertEquals(-1L, d.segment().mismatch(scattered.segment()), "separate groups differ from the stack");
        }
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("cases")
    void groupedMaskedLeavesRowsPastTheMaskUntouched(Isa isa, DType out) {
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        int[] counts = {2, 0, 5};
        int groups = counts.length, mMax = 5, n = 200, k = 128;
        try (Arena arena = Arena.ofConfined();
                Context ctx = context(isa)) {
            List<Problem> problems = new ArrayList<>();
            for (int count : counts) problems.add(problem(ctx, arena, random, count, n, k));
            QuantizedGroups b = stackWeights(arena, problems, n, k);
            Tensor a = Tensor.allocate(arena, DType.E4M3, groups, mMax, k);
            a.segment().fill((byte) 0x7F); // rows past the mask are NaN: never read
            Tensor sfa = Tensor.allocate(arena, DType.F32, groups, mMax, k / 128);
            Tensor maskedM = Tensor.allocate(arena, DType.I32, groups);
            for (int g = 0; g < groups; g++) {
                maskedM.setInt(counts[g], g);
                Problem p = problems.get(g);
                MemorySegment.copy(p.qa().data().segment(), 0, a.segment(), (long) g * mMax * k, (long) counts[g] * k);
                for (int i = 0; i < counts[g]; i++) sfa.setFloat(p.qa().scales().getFloat(i, 0), g, i, 0);
            }
            Tensor d = poisoned(arena, out, groups, mMax, n);
            Fp8Gemm.groupedMasked(ctx, new QuantizedTensor(a, sfa, 1), b, maskedM, d);
            for (int g = 0; g < groups; g++) {
                check(problems.get(g), d, g, isa + " " + out + " group " + g + " seed " + seed);
                long rowBytes = (long) n * out.byteSize();
                for (int i = counts[g]; i < mMax; i++) {
                    MemorySegment row = d.segment().asSlice(((long) g * mMax + i) * rowBytes, rowBytes);
                    for (long byteIndex = 0; byteIndex < rowBytes; byteIndex++)
                        assertEquals(
                                (byte) 0xFF,
                                row.get(ValueLayout.JAVA_BYTE, byteIndex),
                                "row " + g + "," + i + " was written");
                }
            }
            Tensor scattered = poisoned(arena, out, groups, mMax, n);
            Fp8Gemm.groupedMasked(ctx, new QuantizedTensor(a, sfa, 1), separateWeights(problems), maskedM, scattered);
            assertEquals(-1L, d.segment().mismatch(scattered.segment()), "separate groups differ from the stack");
        }
    }

    /** Each problem's weights where they are: separate, unrelated allocations. */
    static QuantizedGroups separateWeights(List<Problem> problems) {
        return QuantizedGroups.of(problems.stream().map(Problem::qw).toList());
    }

    /** The groups' weights copied into one [G, N, K] tensor with [G, ceil(N/128), K/128] scales, as its views. */
    static QuantizedGroups stackWeights(Arena arena, List<Problem> problems, int n, int k) {
        int groups = problems.size(), nb = (n + 127) / 128;
        Tensor b = Tensor.allocate(arena, DType.E4M3, groups, n, k);
        Tensor sfb = Tensor.allocate(arena, DType.F32, groups, nb, k / 128);
        for (int g = 0; g < groups; g++) {
            QuantizedTensor w = problems.get(g).qw();
            MemorySegment.copy(w.data().segment(), 0, b.segment(), (long) g * n * k, (long) n * k);
            MemorySegment.copy(w.scales().segment(), 0, sfb.segment(), 4L * g * nb * (k / 128), 4L * nb * (k / 128));
        }
        return QuantizedGroups.of(new QuantizedTensor(b, sfb, 128));
    }

    @Test
    void rejectsBadShapesGroupsAndOverlaps() {
        try (Arena arena = Arena.ofConfined();
                Context ctx = Context.create()) {
            SplittableRandom random = TestSupport.random(1);
            Problem p = problem(ctx, arena, random, 4, 256, 256);
            Tensor d = poisoned(arena, DType.F32, 4, 256);

            Tensor a200 = Tensor.allocate(arena, DType.E4M3, 4, 200);
            Tensor s200 = Tensor.allocate(arena, DType.F32, 4, 2);
            rejected(
                    () -> Fp8Gemm.nt(ctx, new QuantizedTensor(a200, s200, 1), p.qw(), null, d),
                    d,
                    "argument 'a': K = 200 is not a positive multiple of 128");
            Tensor badSfb = Tensor.allocate(arena, DType.F32, 1, 2);
            rejected(
                    () -> Fp8Gemm.nt(ctx, p.qa(), new QuantizedTensor(p.qw().data(), badSfb, 128), null, d),
                    d,
                    "argument 'sfb': shape [1, 2] but expected [2, 2]");
            Tensor overlapping = Tensor.of(p.qa().data().segment().reinterpret(4L * 4 * 256), DType.F32, 4, 256);
            rejected(() -> Fp8Gemm.nt(ctx, p.qa(), p.qw(), null, overlapping), null, "output 'd' overlaps 'a'");

            QuantizedGroups b = stackWeights(arena, List.of(p, p), 256, 256);
            Tensor a = Tensor.allocate(arena, DType.E4M3, 8, 256);
            QuantizedTensor qa = new QuantizedTensor(a, Tensor.allocate(arena, DType.F32, 8, 2), 1);
            Tensor layout = Tensor.allocate(arena, DType.I32, 8);
            Tensor d8 = poisoned(arena, DType.F32, 8, 256);
            layout.setInt(2, 3);
            rejected(
                    () -> Fp8Gemm.groupedContiguous(ctx, qa, b, layout, 4, d8),
                    d8,
                    "argument 'grouped_layout': row 3 has group 2, outside [-1, 2)");
            layout.setInt(1, 3);
            rejected(
                    () -> Fp8Gemm.groupedContiguous(ctx, qa, b, layout, 4, d8),
                    d8,
                    "rows 0..3 form one alignment block but hold groups 0 and 1 (row 3)");
            rejected(
                    () -> Fp8Gemm.groupedContiguous(ctx, qa, b, layout, 3, d8),
                    d8,
                    "8 rows are not a multiple of the alignment 3");

            Tensor a3 = Tensor.allocate(arena, DType.E4M3, 2, 3, 256);
            QuantizedTensor qa3 = new QuantizedTensor(a3, Tensor.allocate(arena, DType.F32, 2, 3, 2), 1);
            Tensor maskedM = Tensor.allocate(arena, DType.I32, 2);
            maskedM.setInt(4, 1);
            Tensor d3 = poisoned(arena, DType.F32, 2, 3, 256);
            rejected(
                    () -> Fp8Gemm.groupedMasked(ctx, qa3, b, maskedM, d3),
                    d3,
                    "argument 'masked_m': group 1 has 4 rows, outside [0, 3]");
            IllegalArgumentException scales =
                    assertThrows(IllegalArgumentException.class, () -> Fp8Gemm.nt(ctx, p.qw(), p.qw(), null, d));
            assertTrue(scales.getMessage().startsWith("a must carry per-token (1x128) scales"), scales.getMessage());
            IllegalArgumentException rank = assertThrows(
                    IllegalArgumentException.class, () -> Fp8Gemm.groupedMasked(ctx, p.qa(), b, maskedM, d3));
            assertTrue(rank.getMessage().startsWith("a must have rank 3"), rank.getMessage());
            IllegalArgumentException dtype = assertThrows(
                    IllegalArgumentException.class,
                    () -> Fp8Gemm.nt(ctx, p.qa(), p.qw(), null, Tensor.allocate(arena, DType.I32, 4, 256)));
            assertTrue(dtype.getMessage().startsWith("d must be [F32, BF16]"), dtype.getMessage());
        }
    }

    /** Expects an INVALID_ARGUMENT naming the problem, with d (when given) still fully poisoned. */
    private static void rejected(Runnable call, Tensor d, String fragment) {
        Moe4jException e = assertThrows(Moe4jException.class, call::run);
        System.out.println("rejected: " + e.getMessage());
        assertEquals(Status.INVALID_ARGUMENT, e.status());
        assertTrue(e.nativeMessage().contains(fragment), e.nativeMessage());
        if (d != null)
            for (long i = 0; i < d.segment().byteSize(); i++)
                assertEquals((byte) 0xFF, d.segment().get(ValueLayout.JAVA_BYTE, i), "d was written");
    }
}
