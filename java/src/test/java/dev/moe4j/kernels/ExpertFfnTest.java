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
import dev.moe4j.runtime.TestFaults;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.QuantizedGroups;
import dev.moe4j.tensor.QuantizedTensor;
import dev.moe4j.tensor.Tensor;
import dev.moe4j.testing.Reference;
import dev.moe4j.testing.TestSupport;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The fused expert FFN against a float64 FFN on the dequantized inputs. The kernel re-quantizes the
 * intermediate to FP8, as DeepSeek's inference does, so it is judged with DeepGEMM's calc_diff and an
 * elementwise bound of that FP8 rounding.
 */
class ExpertFfnTest {
    static final int HIDDEN = 256, INTER = 384, ALIGNMENT = 8;

    @ParameterizedTest
    @MethodSource("dev.moe4j.kernels.CastTest#isaPaths")
    void matchesAFloat64Ffn(Isa isa) {
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        int[] counts = {5, 0, 30}; // 30 rows: the packed-panel kernel on the AVX-512 paths (default context)
        try (Arena arena = Arena.ofConfined();
                Context ctx = context(isa)) {
            QuantizedTensor gate = weights(ctx, arena, random, counts.length, INTER, HIDDEN);
            QuantizedTensor up = weights(ctx, arena, random, counts.length, INTER, HIDDEN);
            QuantizedTensor down = weights(ctx, arena, random, counts.length, HIDDEN, INTER);
            int rows = 0;
            for (int c : counts) rows += (c + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT;
            Tensor layout = Tensor.allocate(arena, DType.I32, rows);
            int row = 0;
            for (int g = 0; g < counts.length; g++) {
                int padded = (counts[g] + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT;
                for (int i = 0; i < padded; i++) layout.setInt(i < counts[g] ? g : -1, row + i);
                row += padded;
            }
            float[] xValues = Fp8GemmTest.gaussianRows(random, rows, HIDDEN);
            QuantizedTensor x = Quantization.perToken(
                    ctx, Tensor.fromFloats(arena, DType.F32, xValues, rows, HIDDEN), ScaleFormat.FP32, arena);
            Tensor d = poisoned(arena, DType.F32, rows, HIDDEN);
            ExpertFfn.contiguous(
                    ctx,
                    x,
                    QuantizedGroups.of(gate),
                    QuantizedGroups.of(up),
                    QuantizedGroups.of(down),
                    layout,
                    ALIGNMENT,
                    d);
            // The same experts as separate allocations, in another order and spacing, give the same bits.
            Tensor scattered = poisoned(arena, DType.F32, rows, HIDDEN);
            ExpertFfn.contiguous(
                    ctx,
                    x,
                    separate(arena, gate),
                    separate(arena, up),
                    separate(arena, down),
                    layout,
                    ALIGNMENT,
                    scattered);
            assertEquals(-1L, d.segment().mismatch(scattered.segment()), "separate experts differ from the stack");

            checkAgainstFloat64(isa + " seed " + seed, x, gate, up, down, layout, d, rows, INTER);
        }
    }

    /**
     * Decode shapes: experts with 0 to 9 rows each (alignment 1) and an intermediate of ten 128-column tiles, whose
     * gate/up columns are split over the threads, each tile finished (SiLU, FP8) by whichever thread ends it last. In a
     * reproducible context every row's output has the same bits with 1, 2 or 3 threads and when its expert runs that
     * row alone, and it matches the float64 FFN.
     */
    @ParameterizedTest
    @MethodSource("dev.moe4j.kernels.CastTest#isaPaths")
    void fewRowExpertsGiveTheSameBitsAtAnyThreadCountAndBatch(Isa isa) {
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        int inter = 1280;
        int[] counts = {1, 9, 0, 4, 2};
        Context.Options options = Context.Options.cpu().withMaxIsa(isa).withReproducible(true);
        try (Arena arena = Arena.ofConfined();
                Context one = Context.create(options.withThreads(1));
                Context two = Context.create(options.withThreads(2));
                Context three = Context.create(options.withThreads(3))) {
            QuantizedTensor gateStack = weights(one, arena, random, counts.length, inter, HIDDEN);
            QuantizedTensor upStack = weights(one, arena, random, counts.length, inter, HIDDEN);
            QuantizedTensor downStack = weights(one, arena, random, counts.length, HIDDEN, inter);
            QuantizedGroups gate = QuantizedGroups.of(gateStack),
                    up = QuantizedGroups.of(upStack),
                    down = QuantizedGroups.of(downStack);
            Tensor layout = contiguousLayout(arena, counts);
            int rows = Math.toIntExact(layout.shape(0));
            QuantizedTensor x = gaussianTokens(one, arena, random, rows);
            Tensor d = poisoned(arena, DType.F32, rows, HIDDEN);
            ExpertFfn.contiguous(one, x, gate, up, down, layout, 1, d);
            String where = isa + " seed " + seed;
            checkAgainstFloat64(where, x, gateStack, upStack, downStack, layout, d, rows, inter);
            for (Context ctx : new Context[] {two, three}) {
                Tensor other = poisoned(arena, DType.F32, rows, HIDDEN);
                ExpertFfn.contiguous(ctx, x, gate, up, down, layout, 1, other);
                assertEquals(-1L, d.segment().mismatch(other.segment()), where + ": " + ctx.threads() + " threads");
            }
            for (int r = 0; r < rows; r++) {
                QuantizedTensor alone =
                        new QuantizedTensor(x.data().slice(0, r, 1), x.scales().slice(0, r, 1), 1);
                Tensor oneLayout = Tensor.allocate(arena, DType.I32, 1);
                oneLayout.setInt(layout.getInt(r), 0);
                Tensor single = poisoned(arena, DType.F32, 1, HIDDEN);
                ExpertFfn.contiguous(two, alone, gate, up, down, oneLayout, 1, single);
                long bytes = 4L * HIDDEN;
                assertEquals(
                        -1L,
                        d.segment().asSlice(r * bytes, bytes).mismatch(single.segment()),
                        where + ": row " + r + " alone");
            }
        }
    }

    /** The grouped layout of counts[g] rows of group g, groups in order: I32 [sum of counts]. */
    static Tensor contiguousLayout(Arena arena, int[] counts) {
        int rows = 0;
        for (int c : counts) rows += c;
        Tensor layout = Tensor.allocate(arena, DType.I32, rows);
        for (int g = 0, row = 0; g < counts.length; g++) for (int i = 0; i < counts[g]; i++) layout.setInt(g, row++);
        return layout;
    }

    /**
     * Packed experts ({@link Fp8Gemm#packWeights}): groups of 1 to 30 rows (the code kernel up to 12 rows, K blocks
     * widened once for all tiles above) match the float64 FFN, and every row has the same bits alone, with 1 or 3 threads, in a context
     * that is reproducible or not.
     */
    @ParameterizedTest
    @MethodSource("dev.moe4j.kernels.CastTest#isaPaths")
    void packedExpertsGiveEachRowOneResult(Isa isa) {
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        int inter = 384;
        int[] counts = {1, 9, 0, 4, 30};
        try (Arena arena = Arena.ofConfined();
                Context ctx = context(isa)) {
            QuantizedTensor gateStack = weights(ctx, arena, random, counts.length, inter, HIDDEN);
            QuantizedTensor upStack = weights(ctx, arena, random, counts.length, inter, HIDDEN);
            QuantizedTensor downStack = weights(ctx, arena, random, counts.length, HIDDEN, inter);
            QuantizedGroups gate = QuantizedGroups.of(Fp8Gemm.packWeights(ctx, gateStack, arena)),
                    up = QuantizedGroups.of(Fp8Gemm.packWeights(ctx, upStack, arena)),
                    down = QuantizedGroups.of(Fp8Gemm.packWeights(ctx, downStack, arena));
            Tensor layout = contiguousLayout(arena, counts);
            int rows = Math.toIntExact(layout.shape(0));
            QuantizedTensor x = gaussianTokens(ctx, arena, random, rows);
            Tensor d = poisoned(arena, DType.F32, rows, HIDDEN);
            ExpertFfn.contiguous(ctx, x, gate, up, down, layout, 1, d);
            String where = isa + " packed seed " + seed;
            checkAgainstFloat64(where, x, gateStack, upStack, downStack, layout, d, rows, inter);
            for (boolean reproducible : new boolean[] {false, true}) {
                for (int threads : new int[] {1, 3}) {
                    try (Context other = Context.create(Context.Options.cpu()
                            .withMaxIsa(isa)
                            .withThreads(threads)
                            .withReproducible(reproducible))) {
                        Tensor again = poisoned(arena, DType.F32, rows, HIDDEN);
                        ExpertFfn.contiguous(other, x, gate, up, down, layout, 1, again);
                        assertEquals(-1L, d.segment().mismatch(again.segment()), where + ", " + threads + " threads");
                        for (int r = 0; r < rows; r += 7) {
                            QuantizedTensor alone = new QuantizedTensor(
                                    x.data().slice(0, r, 1), x.scales().slice(0, r, 1), 1);
                            Tensor oneLayout = Tensor.allocate(arena, DType.I32, 1);
                            oneLayout.setInt(layout.getInt(r), 0);
                            Tensor single = poisoned(arena, DType.F32, 1, HIDDEN);
                            ExpertFfn.contiguous(other, alone, gate, up, down, oneLayout, 1, single);
                            long bytes = 4L * HIDDEN;
                            assertEquals(
                                    -1L,
                                    d.segment().asSlice(r * bytes, bytes).mismatch(single.segment()),
                                    where + ": row " + r + " alone" + (reproducible ? ", reproducible" : ""));
                        }
                    }
                }
            }
        }
    }

    static void checkAgainstFloat64(
            String where,
            QuantizedTensor x,
            QuantizedTensor gate,
            QuantizedTensor up,
            QuantizedTensor down,
            Tensor layout,
            Tensor d,
            int rows,
            int inter) {
        double[] got = new double[rows * HIDDEN], want = new double[rows * HIDDEN];
        for (int r = 0; r < rows; r++) {
            int g = layout.getInt(r);
            if (g < 0) {
                for (int c = 0; c < HIDDEN; c++) assertEquals(0f, d.getFloat(r, c), "padding row " + r);
                continue;
            }
            double[] h = new double[inter];
            for (int i = 0; i < inter; i++) {
                double gv = 0, uv = 0;
                for (int k = 0; k < HIDDEN; k++) {
                    double xv = value(x, r, k);
                    gv += xv * value(gate, g, i, k);
                    uv += xv * value(up, g, i, k);
                }
                h[i] = gv / (1 + Math.exp(-gv)) * uv;
            }
            for (int c = 0; c < HIDDEN; c++) {
                double sum = 0, magnitude = 0;
                for (int i = 0; i < inter; i++) {
                    double p = h[i] * value(down, g, c, i);
                    sum += p;
                    magnitude += Math.abs(p);
                }
                double actual = d.getFloat(r, c);
                // FP8 rounding of h: at most 2^-4 relative per element, plus subnormal steps (tiny here).
                if (!(Math.abs(actual - sum) <= 0x1p-4 * magnitude + 1e-6))
                    throw new AssertionError(where + ": d[" + r + "," + c + "] = " + actual + ", float64 " + sum);
                got[r * HIDDEN + c] = actual;
                want[r * HIDDEN + c] = sum;
            }
        }
        double diff = Reference.calcDiff(got, want);
        assertTrue(diff < 1e-3, where + ": calc_diff " + diff);
    }

    @Test
    void rejectsIntermediateSizesThatAreNotBlocks() {
        try (Arena arena = Arena.ofConfined();
                Context ctx = Context.create()) {
            SplittableRandom random = TestSupport.random(2);
            QuantizedTensor x =
                    Quantization.perToken(ctx, Tensor.allocate(arena, DType.F32, 8, HIDDEN), ScaleFormat.FP32, arena);
            QuantizedTensor gate = weights(ctx, arena, random, 1, 200, HIDDEN);
            QuantizedTensor down = weights(ctx, arena, random, 1, HIDDEN, 256);
            Tensor layout = Tensor.allocate(arena, DType.I32, 8);
            Tensor d = poisoned(arena, DType.F32, 8, HIDDEN);
            QuantizedGroups gates = QuantizedGroups.of(gate), downs = QuantizedGroups.of(down);
            Moe4jException e = assertThrows(
                    Moe4jException.class,
                    () -> ExpertFfn.contiguous(ctx, x, gates, gates, downs, layout, ALIGNMENT, d));
            System.out.println("rejected: " + e.getMessage());
            assertTrue(e.nativeMessage().contains("argument 'w_gate': intermediate size 200 is not a multiple of 128"));
        }
    }

    /**
     * The context's expert-FFN scratch cannot grow (an injected allocation failure), then an allocation fails inside a
     * worker task: each call fails with OUT_OF_MEMORY naming what it allocated, the first before writing anything, and
     * the next call gives the bits of a context that never failed.
     */
    @Test
    void outOfMemoryFailsOneCallAndTheNextGivesTheSameBits() {
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        Context.Options options = Context.Options.cpu().withThreads(3).withReproducible(true);
        try (Arena arena = Arena.ofConfined();
                Context failing = Context.create(options);
                Context clean = Context.create(options)) {
            int groups = 3, rows = 3 * ALIGNMENT;
            QuantizedGroups gate = QuantizedGroups.of(weights(clean, arena, random, groups, INTER, HIDDEN));
            QuantizedGroups up = QuantizedGroups.of(weights(clean, arena, random, groups, INTER, HIDDEN));
            QuantizedGroups down = QuantizedGroups.of(weights(clean, arena, random, groups, HIDDEN, INTER));
            Tensor layout = Tensor.allocate(arena, DType.I32, rows);
            for (int r = 0; r < rows; r++) layout.setInt(r / ALIGNMENT, r);
            QuantizedTensor x = gaussianTokens(clean, arena, random, rows);
            Tensor want = poisoned(arena, DType.F32, rows, HIDDEN);
            ExpertFfn.contiguous(clean, x, gate, up, down, layout, ALIGNMENT, want);

            Tensor d = poisoned(arena, DType.F32, rows, HIDDEN), untouched = poisoned(arena, DType.F32, rows, HIDDEN);
            TestFaults.failAllocation(failing, 1);
            Moe4jException scratch = assertThrows(
                    Moe4jException.class, () -> ExpertFfn.contiguous(failing, x, gate, up, down, layout, ALIGNMENT, d));
            assertEquals(Status.OUT_OF_MEMORY, scratch.status());
            // the call's first take from the context's workspace, which holds nothing yet
            assertTrue(
                    scratch.nativeMessage().contains("host scratch for the call's weight groups (injected fault)"),
                    scratch.nativeMessage());
            assertEquals(-1L, d.segment().mismatch(untouched.segment()), "nothing written before the scratch grew");

            TestFaults.failTask(failing, 2);
            Moe4jException task = assertThrows(
                    Moe4jException.class, () -> ExpertFfn.contiguous(failing, x, gate, up, down, layout, ALIGNMENT, d));
            assertEquals(Status.OUT_OF_MEMORY, task.status());
            assertTrue(task.nativeMessage().contains("task 2"), task.nativeMessage());

            ExpertFfn.contiguous(failing, x, gate, up, down, layout, ALIGNMENT, d);
            assertEquals(-1L, d.segment().mismatch(want.segment()), "seed " + seed + ": the call after the failures");
        }
    }

    static double value(QuantizedTensor q, long row, long col) {
        return (double) q.data().getFloat(row, col) * q.scales().getFloat(row / q.blockRows(), col / 128);
    }

    static double value(QuantizedTensor q, long g, long row, long col) {
        return (double) q.data().getFloat(g, row, col) * q.scales().getFloat(g, row / 128, col / 128);
    }

    /**
     * The matrices of a stack copied into separate allocations, the last group first, with spacers of different sizes
     * between them: groups that share no base address, spacing or order.
     */
    static QuantizedGroups separate(Arena arena, QuantizedTensor stack) {
        int groups = Math.toIntExact(stack.data().shape(0));
        QuantizedTensor[] copies = new QuantizedTensor[groups];
        for (int g = groups - 1; g >= 0; g--) {
            QuantizedTensor from = stack.group(g);
            arena.allocate(64L * (g + 1)); // spacer
            Tensor data = Tensor.allocate(arena, DType.E4M3, from.data().shape());
            Tensor scales = Tensor.allocate(arena, DType.F32, from.scales().shape());
            MemorySegment.copy(
                    from.data().segment(), 0, data.segment(), 0, data.segment().byteSize());
            MemorySegment.copy(
                    from.scales().segment(),
                    0,
                    scales.segment(),
                    0,
                    scales.segment().byteSize());
            copies[g] = new QuantizedTensor(data, scales, QuantizedTensor.BLOCK);
        }
        return QuantizedGroups.of(List.of(copies));
    }

    /** [rows, HIDDEN] Gaussian activations, quantized per token. */
    static QuantizedTensor gaussianTokens(Context ctx, Arena arena, SplittableRandom random, int rows) {
        Tensor x = Tensor.fromFloats(arena, DType.F32, Fp8GemmTest.gaussianRows(random, rows, HIDDEN), rows, HIDDEN);
        return Quantization.perToken(ctx, x, ScaleFormat.FP32, arena);
    }

    /** G stacked [n, k] weights, each block-quantized on its own. */
    static QuantizedTensor weights(Context ctx, Arena arena, SplittableRandom random, int groups, int n, int k) {
        int nb = (n + 127) / 128, kb = k / 128;
        Tensor data = Tensor.allocate(arena, DType.E4M3, groups, n, k);
        Tensor scales = Tensor.allocate(arena, DType.F32, groups, nb, kb);
        for (int g = 0; g < groups; g++) {
            float[] w = new float[n * k];
            for (int i = 0; i < w.length; i++) w[i] = (float) (random.nextGaussian() * 0.05);
            Tensor q = Tensor.of(data.segment().asSlice((long) g * n * k, (long) n * k), DType.E4M3, n, k);
            Tensor s = Tensor.of(scales.segment().asSlice(4L * g * nb * kb, 4L * nb * kb), DType.F32, nb, kb);
            Quantization.perBlock(ctx, Tensor.fromFloats(arena, DType.F32, w, n, k), q, s, ScaleFormat.FP32);
        }
        return new QuantizedTensor(data, scales, 128);
    }
}
