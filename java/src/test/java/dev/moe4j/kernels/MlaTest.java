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
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * MLA decode against a float64 attention on the same bf16 inputs over FlashMLA's test grid, with permuted block
 * tables, variable lengths, causal masks, zero-length sequences and NaN in every unused cache slot.
 *
 * <p>FlashMLA's grid (b, s_q, s_k, h_q, h_kv, varlen, causal) has 1,152 points, and at its far corner one reference
 * costs ~10^11 float64 operations, so the test covers it pairwise: every pair of values of any two parameters
 * (the ISA path counted as one more parameter) meets in at least one case, and large cases check a random sample of
 * query rows against the reference plus every row for being written and finite.
 */
class MlaTest {
    static final int D = 576, DV = 512, BLOCK = 64;
    /** Query rows (sequence, query, head) compared with the float64 reference per case; the rest are sampled. */
    static final int CHECKED_ROWS = 160;

    record Case(int b, int sQ, int sK, int hQ, int hKv, boolean varlen, boolean causal) {
        long cost() {
            return (long) b * sQ * sK * hQ * hKv;
        }
    }

    static List<Arguments> cases() {
        List<Isa> isas = TestSupport.isaPaths();
        Object[][] values = {
            isas.toArray(),
            {1, 2, 6, 64},
            {1, 2, 4},
            {20, 140, 4096},
            {1, 16, 64, 128},
            {1, 2},
            {false, true},
            {false, true}
        };
        List<Object[]> all = new ArrayList<>();
        product(values, 0, new Object[values.length], all);
        all.removeIf(v -> (int) v[4] % (int) v[5] != 0); // query heads must divide into kv heads
        List<Arguments> cases = new ArrayList<>();
        for (Object[] v : pairwiseCover(values, all)) {
            var c = new Case(
                    (int) v[1], (int) v[2], (int) v[3], (int) v[4], (int) v[5], (boolean) v[6], (boolean) v[7]);
            cases.add(Arguments.of(v[0], c));
        }
        // the benchmark's shape, in full, on the best path
        cases.add(Arguments.of(isas.getLast(), new Case(64, 1, 4096, 128, 1, false, false)));
        return cases;
    }

    static void product(Object[][] values, int at, Object[] current, List<Object[]> out) {
        if (at == values.length) {
            out.add(current.clone());
            return;
        }
        for (Object v : values[at]) {
            current[at] = v;
            product(values, at + 1, current, out);
        }
    }

    /**
     * A greedy pairwise covering set: repeatedly the point covering the most still-uncovered value pairs, the
     * cheapest of those (kernel work, so the expensive corners are visited only where a pair demands it).
     */
    static List<Object[]> pairwiseCover(Object[][] values, List<Object[]> all) {
        java.util.Set<String> uncovered = new java.util.HashSet<>();
        for (Object[] point : all) uncovered.addAll(pairs(point));
        List<Object[]> chosen = new ArrayList<>();
        while (!uncovered.isEmpty()) {
            Object[] best = null;
            long bestGain = -1, bestCost = Long.MAX_VALUE;
            for (Object[] point : all) {
                long gain = pairs(point).stream().filter(uncovered::contains).count();
                long cost = (long) (int) point[1] * (int) point[2] * (int) point[3] * (int) point[4] * (int) point[5];
                if (gain > bestGain || (gain == bestGain && cost < bestCost)) {
                    best = point;
                    bestGain = gain;
                    bestCost = cost;
                }
            }
            pairs(best).forEach(uncovered::remove);
            chosen.add(best);
        }
        return chosen;
    }

    static List<String> pairs(Object[] point) {
        List<String> p = new ArrayList<>();
        for (int i = 0; i < point.length; i++)
            for (int j = i + 1; j < point.length; j++) p.add(i + "=" + point[i] + "," + j + "=" + point[j]);
        return p;
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("cases")
    void matchesFloat64Attention(Isa isa, Case c) {
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        try (Arena arena = Arena.ofConfined();
                Context ctx = context(isa)) {
            int[] lengths = new int[c.b()];
            for (int i = 0; i < c.b(); i++)
                lengths[i] = c.varlen() ? Math.max(1, (int) (c.sK() * random.nextDouble(0.5, 1.5))) : c.sK();
            if (c.varlen() && c.b() > 2) lengths[1] = 0; // one empty sequence
            Problem p = Problem.random(arena, random, c, lengths);
            Tensor out = poisoned(arena, DType.BF16, c.b(), c.sQ(), c.hQ(), DV);
            Tensor lse = poisoned(arena, DType.F32, c.b(), c.hQ(), c.sQ());
            float scale = Mla.DEFAULT_SCALE;
            Mla.decode(ctx, p.q, p.kcache, p.blockTable, p.seqlens, scale, c.causal(), out, lse);
            // the AVX512_BF16 path multiplies a bf16 cache's V with probabilities rounded to bf16, as FlashMLA does
            double pRounding = isa == Isa.AVX512_BF16 ? 0x1p-9 : 0;
            p.check(c, scale, out, lse, pRounding, random, isa + " " + c + " seed " + seed);
        }
    }

    /**
     * Reproducible contexts: a sequence's rows come out with the same bits decoded alone (the kernel then spreads its
     * query heads over several tasks to keep threads busy) or beside other sequences, with 1 or 2 threads.
     */
    @ParameterizedTest
    @MethodSource("dev.moe4j.kernels.CastTest#isaPaths")
    void reproducibleDecodeIsTheSameAloneInABatchAndAtAnyThreadCount(Isa isa) {
        SplittableRandom random = TestSupport.random(TestSupport.freshSeed());
        Case c = new Case(3, 1, 300, 16, 1, false, true);
        try (Arena arena = Arena.ofConfined()) {
            Problem p = Problem.random(arena, random, c, new int[] {300, 700, 90});
            float[][] results = new float[3][];
            int[] threads = {2, 1, 2};
            for (int run = 0; run < 3; run++) {
                int b = run == 2 ? 3 : 1; // runs 0 and 1: sequence 0 alone
                try (Context ctx = Context.create(Context.Options.cpu()
                        .withMaxIsa(isa)
                        .withThreads(threads[run])
                        .withReproducible(true))) {
                    Tensor out = poisoned(arena, DType.F32, b, 1, c.hQ(), DV);
                    Tensor lse = poisoned(arena, DType.F32, b, c.hQ(), 1);
                    Mla.decode(
                            ctx,
                            p.q.slice(0, 0, b),
                            p.kcache,
                            p.blockTable.slice(0, 0, b),
                            p.seqlens.slice(0, 0, b),
                            Mla.DEFAULT_SCALE,
                            true,
                            out,
                            lse);
                    results[run] = out.slice(0, 0, 1).toFloatArray();
                }
            }
            assertArrayEquals(results[0], results[1], isa + ": alone with 2 threads vs 1 thread");
            assertArrayEquals(results[0], results[2], isa + ": alone vs in a batch of 3");
        }
    }

    /** Inputs: q, a cache with blocks handed out in shuffled order, and NaN in every slot no sequence owns. */
    record Problem(Tensor q, Tensor kcache, Tensor blockTable, Tensor seqlens, int[] lengths) {
        static Problem random(Arena arena, SplittableRandom random, Case c, int[] lengths) {
            int maxBlocks = 0, total = 0;
            for (int len : lengths) {
                maxBlocks = Math.max(maxBlocks, (len + BLOCK - 1) / BLOCK);
                total += (len + BLOCK - 1) / BLOCK;
            }
            int numBlocks = total + 3; // a few blocks nobody uses
            Tensor q = Tensor.allocate(arena, DType.BF16, c.b(), c.sQ(), c.hQ(), D);
            fill(q, random);
            Tensor kcache = Tensor.allocate(arena, DType.BF16, numBlocks, BLOCK, c.hKv(), D);
            kcache.segment().fill((byte) 0xFF); // bf16 0xFFFF is NaN: any slot read by mistake poisons the result
            List<Integer> ids = new ArrayList<>();
            for (int i = 0; i < numBlocks; i++) ids.add(i);
            Collections.shuffle(ids, new java.util.Random(random.nextLong()));
            Tensor table = Tensor.allocate(arena, DType.I32, c.b(), Math.max(1, maxBlocks));
            Tensor seqlens = Tensor.allocate(arena, DType.I32, c.b());
            MemorySegment cache = kcache.segment();
            int next = 0;
            for (int i = 0; i < c.b(); i++) {
                seqlens.setInt(lengths[i], i);
                for (int blk = 0; blk * BLOCK < lengths[i]; blk++) {
                    int id = ids.get(next++);
                    table.setInt(id, i, blk);
                    int slots = Math.min(BLOCK, lengths[i] - blk * BLOCK);
                    long first = (long) id * BLOCK * c.hKv() * D;
                    for (long e = 0; e < (long) slots * c.hKv() * D; e++)
                        cache.setAtIndex(ValueLayout.JAVA_SHORT, first + e, randomBf16(random));
                }
            }
            return new Problem(q, kcache, table, seqlens, lengths);
        }

        /** A near-Gaussian bf16 (Irwin-Hall sum of four uniforms, unit variance): cheap for caches of 10^8 values. */
        static short randomBf16(SplittableRandom random) {
            double sum = random.nextDouble() + random.nextDouble() + random.nextDouble() + random.nextDouble();
            return dev.moe4j.tensor.BFloat16.fromFloat((float) ((sum - 2) * Math.sqrt(3)));
        }

        float cache(int id, int slot, int kvHead, int d, int hKv) {
            long index = (((long) id * BLOCK + slot) * hKv + kvHead) * D + d;
            return dev.moe4j.tensor.BFloat16.toFloat(kcache.segment().getAtIndex(ValueLayout.JAVA_SHORT, index));
        }

        /** Float64 attention of one query row: out [DV] followed by lse. */
        double[] reference(Case c, float scale, int i, int j, int h) {
            int len = lengths[i], g = h / (c.hQ() / c.hKv());
            int visible = c.causal() ? Math.max(0, Math.min(len, len - c.sQ() + j + 1)) : len;
            double[] qRow = new double[D];
            for (int d = 0; d < D; d++) qRow[d] = q.getFloat(i, j, h, d);
            double[] scores = new double[visible];
            double max = Double.NEGATIVE_INFINITY;
            for (int t = 0; t < visible; t++) {
                int id = blockTable.getInt(i, t / BLOCK);
                double s = 0;
                for (int d = 0; d < D; d++) s += qRow[d] * cache(id, t % BLOCK, g, d, c.hKv());
                scores[t] = s * scale;
                max = Math.max(max, scores[t]);
            }
            double sum = 0;
            for (int t = 0; t < visible; t++) sum += Math.exp(scores[t] - max);
            double[] result = new double[2 * DV + 1];
            result[DV] = visible == 0 ? Double.POSITIVE_INFINITY : max + Math.log(sum);
            for (int t = 0; t < visible; t++) {
                int id = blockTable.getInt(i, t / BLOCK);
                double w = Math.exp(scores[t] - max) / sum;
                for (int dv = 0; dv < DV; dv++) {
                    double v = cache(id, t % BLOCK, g, dv, c.hKv());
                    result[dv] += w * v;
                    result[DV + 1 + dv] += w * Math.abs(v);
                }
            }
            return result;
        }

        /**
         * Every row must be written and finite (zero for a query that sees nothing); up to {@link #CHECKED_ROWS}
         * random rows, and all rows of small cases, must match the float64 reference.
         */
        void check(
                Case c, float scale, Tensor out, Tensor lse, double pRounding, SplittableRandom random, String where) {
            int rows = c.b() * c.sQ() * c.hQ();
            for (int r = 0; r < rows; r++) {
                int i = r / (c.sQ() * c.hQ()), j = r / c.hQ() % c.sQ(), h = r % c.hQ();
                for (int dv = 0; dv < DV; dv++) {
                    float v = out.getFloat(i, j, h, dv);
                    if (!Float.isFinite(v))
                        throw new AssertionError(where + ": out[" + i + "," + j + "," + h + "," + dv + "] = " + v);
                }
                if (Float.isNaN(lse.getFloat(i, h, j))) throw new AssertionError(where + ": lse NaN at " + r);
            }
            boolean sample = rows > CHECKED_ROWS;
            for (int n = 0; n < Math.min(rows, CHECKED_ROWS); n++) {
                int r = sample ? random.nextInt(rows) : n;
                checkRow(c, scale, out, lse, pRounding, r / (c.sQ() * c.hQ()), r / c.hQ() % c.sQ(), r % c.hQ(), where);
            }
            if (c.varlen() && c.b() > 2) // the empty sequence: every row
            for (int j = 0; j < c.sQ(); j++)
                    for (int h = 0; h < c.hQ(); h++) checkRow(c, scale, out, lse, pRounding, 1, j, h, where);
        }

        /**
         * pRounding: the relative error of the probabilities the path multiplies V with (0 for fp32; 2^-9 where they
         * are rounded to bf16 as FlashMLA rounds them), which moves an output by at most pRounding · Σ p_t |v_t|.
         */
        void checkRow(
                Case c, float scale, Tensor out, Tensor lse, double pRounding, int i, int j, int h, String where) {
            double[] e = reference(c, scale, i, j, h);
            float actualLse = lse.getFloat(i, h, j);
            if (Double.isInfinite(e[DV])) assertEquals(Float.POSITIVE_INFINITY, actualLse, where + " empty lse");
            else if (!(Math.abs(actualLse - e[DV]) <= 1e-5 * Math.max(1, Math.abs(e[DV]))))
                throw new AssertionError(
                        where + ": lse[" + i + "," + h + "," + j + "] = " + actualLse + ", expected " + e[DV]);
            for (int dv = 0; dv < DV; dv++) {
                float actual = out.getFloat(i, j, h, dv);
                // FlashMLA's test: bf16 output within 8e-4 absolute plus 2/128 relative.
                if (!(Math.abs(actual - e[dv]) <= 8e-4 + 2.0 / 128 * Math.abs(e[dv]) + pRounding * e[DV + 1 + dv]))
                    throw new AssertionError(where + ": out[" + i + "," + j + "," + h + "," + dv + "] = " + actual
                            + ", expected " + e[dv]);
            }
        }

        /** The same cache in the FP8 layout, written by the append kernel; unused slots hold 0xFF (NaN codes and scales). */
        Tensor fp8Cache(Context ctx, Arena arena, Case c) {
            Tensor fp8 = Tensor.allocate(arena, DType.U8, kcache.shape(0), BLOCK, c.hKv(), Mla.FP8_TOKEN_BYTES);
            fp8.segment().fill((byte) 0xFF);
            int tokens = 0;
            for (int len : lengths) tokens += len;
            Tensor kv = Tensor.allocate(arena, DType.BF16, Math.max(tokens, 1), c.hKv(), D);
            Tensor slots = Tensor.allocate(arena, DType.I32, Math.max(tokens, 1));
            slots.setInt(-1, 0);
            int n = 0;
            for (int i = 0; i < c.b(); i++)
                for (int t = 0; t < lengths[i]; t++, n++) {
                    int id = blockTable.getInt(i, t / BLOCK);
                    slots.setInt(id * BLOCK + t % BLOCK, n);
                    for (int h = 0; h < c.hKv(); h++)
                        MemorySegment.copy(
                                kcache.segment(),
                                2L * (((long) id * BLOCK + t % BLOCK) * c.hKv() + h) * D,
                                kv.segment(),
                                2L * ((long) n * c.hKv() + h) * D,
                                2L * D);
                }
            Mla.appendToCache(ctx, kv, slots, fp8);
            return fp8;
        }
    }

    static void fill(Tensor t, SplittableRandom random) {
        float[] v = new float[Math.toIntExact(t.elementCount())];
        for (int i = 0; i < v.length; i++) v[i] = (float) random.nextGaussian();
        t.copyFrom(v);
    }

    @ParameterizedTest
    @MethodSource("dev.moe4j.kernels.CastTest#isaPaths")
    void decodeOverTheFp8CacheStaysWithinCalcDiff(Isa isa) {
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        Case c = new Case(3, 2, 140, 16, 1, true, true);
        try (Arena arena = Arena.ofConfined();
                Context ctx = context(isa)) {
            Problem p = Problem.random(arena, random, c, new int[] {140, 0, 77});
            Tensor fp8 = p.fp8Cache(ctx, arena, c);
            Tensor out = poisoned(arena, DType.F32, c.b(), c.sQ(), c.hQ(), DV);
            Tensor lse = poisoned(arena, DType.F32, c.b(), c.hQ(), c.sQ());
            Mla.decode(ctx, p.q, fp8, p.blockTable, p.seqlens, Mla.DEFAULT_SCALE, c.causal(), out, lse);
            // every row against the float64 reference on the unquantized bf16 cache
            List<Double> got = new ArrayList<>(), want = new ArrayList<>();
            for (int i = 0; i < c.b(); i++)
                for (int j = 0; j < c.sQ(); j++)
                    for (int h = 0; h < c.hQ(); h++) {
                        double[] e = p.reference(c, Mla.DEFAULT_SCALE, i, j, h);
                        for (int dv = 0; dv < DV; dv++) {
                            want.add(e[dv]);
                            got.add((double) out.getFloat(i, j, h, dv));
                        }
                        float actual = lse.getFloat(i, h, j);
                        if (Double.isInfinite(e[DV])) assertEquals(Float.POSITIVE_INFINITY, actual);
                        else assertEquals(e[DV], actual, 0.05 * Math.max(1, Math.abs(e[DV])), isa + " seed " + seed);
                    }
            double diff = dev.moe4j.testing.Reference.calcDiff(
                    got.stream().mapToDouble(Double::doubleValue).toArray(),
                    want.stream().mapToDouble(Double::doubleValue).toArray());
            assertTrue(diff < 1e-3, isa + " seed " + seed + ": calc_diff of the FP8-cache output " + diff);
        }
    }

    @ParameterizedTest
    @MethodSource("dev.moe4j.kernels.CastTest#isaPaths")
    void appendCopiesBf16AndQuantizesFp8ByTheRecipe(Isa isa) {
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        int[] slots = {0, 65, -1, 130, 7};
        int heads = 2;
        try (Arena arena = Arena.ofConfined();
                Context ctx = context(isa)) {
            Tensor kv = Tensor.fromFloats(
                    arena,
                    DType.BF16,
                    TestSupport.wideFloats(random, slots.length * heads * D),
                    slots.length,
                    heads,
                    D);
            Tensor slotMapping = Tensor.allocate(arena, DType.I32, slots.length);
            for (int i = 0; i < slots.length; i++) slotMapping.setInt(slots[i], i);
            Tensor bf16 = poisoned(arena, DType.BF16, 3, BLOCK, heads, D);
            Tensor fp8 = Tensor.allocate(arena, DType.U8, 3, BLOCK, heads, Mla.FP8_TOKEN_BYTES);
            fp8.segment().fill((byte) 0xFF);
            Mla.appendToCache(ctx, kv, slotMapping, bf16);
            Mla.appendToCache(ctx, kv, slotMapping, fp8);
            for (int i = 0; i < slots.length; i++) {
                if (slots[i] < 0) continue;
                int block = slots[i] / BLOCK, slot = slots[i] % BLOCK;
                for (int h = 0; h < heads; h++) {
                    long src = 2L * ((long) i * heads + h) * D;
                    long bf16At = 2L * (((long) block * BLOCK + slot) * heads + h) * D;
                    assertEquals(
                            -1L,
                            MemorySegment.mismatch(
                                    kv.segment(), src, src + 2L * D, bf16.segment(), bf16At, bf16At + 2L * D),
                            "bf16 token " + i + " head " + h + " copied exactly");
                    long rec = (((long) block * BLOCK + slot) * heads + h) * Mla.FP8_TOKEN_BYTES;
                    for (int g = 0; g < 4; g++) {
                        float amax = 0;
                        for (int d = 0; d < 128; d++) amax = Math.max(amax, Math.abs(kv.getFloat(i, h, g * 128 + d)));
                        float scale = dev.moe4j.testing.Reference.fp8Scale(amax, false);
                        assertEquals(
                                scale,
                                fp8.segment().get(ValueLayout.JAVA_FLOAT_UNALIGNED, rec + 512 + 4 * g),
                                0f,
                                "scale " + g);
                        for (int d = 0; d < 128; d++) {
                            byte expected = (byte) dev.moe4j.testing.Reference.e4m3Encode(
                                    kv.getFloat(i, h, g * 128 + d) * (1f / scale));
                            assertEquals(
                                    expected,
                                    fp8.segment().get(ValueLayout.JAVA_BYTE, rec + g * 128 + d),
                                    isa + " seed " + seed + " code " + (g * 128 + d));
                        }
                    }
                    assertEquals(
                            -1L,
                            MemorySegment.mismatch(
                                    kv.segment(), src + 1024, src + 1152, fp8.segment(), rec + 528, rec + 656),
                            "RoPE dims kept in bf16");
                }
            }
            for (long b = 2L * heads * D; b < 4L * heads * D; b++) // slot 1 was never written
            assertEquals((byte) 0xFF, bf16.segment().get(ValueLayout.JAVA_BYTE, b));
        }
    }

    @Test
    void appendRejectsBadSlotsAndHeads() {
        try (Arena arena = Arena.ofConfined();
                Context ctx = Context.create()) {
            Tensor kv = Tensor.allocate(arena, DType.BF16, 2, 1, D);
            Tensor slots = Tensor.allocate(arena, DType.I32, 2);
            Tensor cache = poisoned(arena, DType.BF16, 2, BLOCK, 1, D);
            slots.setInt(128, 1);
            rejected(
                    () -> Mla.appendToCache(ctx, kv, slots, cache),
                    cache,
                    "argument 'slot_mapping': token 1 maps to slot 128, outside [-1, 128)");
            slots.setInt(0, 1);
            rejected(() -> Mla.appendToCache(ctx, kv, slots, cache), cache, "slot 0 is given to two tokens");
            Tensor cache2 = poisoned(arena, DType.BF16, 2, BLOCK, 2, D);
            slots.setInt(5, 1);
            rejected(
                    () -> Mla.appendToCache(ctx, kv, slots, cache2),
                    cache2,
                    "argument 'kcache': 2 kv heads, 'kv' has 1");
            Tensor wrongFp8 = poisoned(arena, DType.U8, 2, BLOCK, 1, 600);
            rejected(
                    () -> Mla.appendToCache(ctx, kv, slots, wrongFp8),
                    wrongFp8,
                    "argument 'kcache': shape [2, 64, 1, 600] but expected [2, 64, 1, 656]");
        }
    }

    @Test
    void rejectsBadTablesLengthsAndHeads() {
        try (Arena arena = Arena.ofConfined();
                Context ctx = Context.create()) {
            Case c = new Case(2, 1, 100, 16, 1, false, false);
            Problem p = Problem.random(arena, TestSupport.random(5), c, new int[] {100, 100});
            Tensor out = poisoned(arena, DType.BF16, 2, 1, 16, DV);
            Tensor lse = poisoned(arena, DType.F32, 2, 16, 1);
            p.blockTable.setInt(99, 1, 1);
            rejected(
                    () -> Mla.decode(ctx, p.q, p.kcache, p.blockTable, p.seqlens, 0.04f, false, out, lse),
                    out,
                    "argument 'block_table': sequence 1, entry 1 is block 99, outside [0, 7)");
            p.seqlens.setInt(200, 0);
            rejected(
                    () -> Mla.decode(ctx, p.q, p.kcache, p.blockTable, p.seqlens, 0.04f, false, out, lse),
                    out,
                    "sequence 0 has 200 tokens, more than its 2 block-table entries hold (128)");
            Tensor q3 = Tensor.allocate(arena, DType.BF16, 2, 1, 3, D);
            Tensor kv2 = Tensor.allocate(arena, DType.BF16, 7, BLOCK, 2, D);
            rejected(
                    () -> Mla.decode(
                            ctx,
                            q3,
                            kv2,
                            p.blockTable,
                            p.seqlens,
                            0.04f,
                            false,
                            poisoned(arena, DType.BF16, 2, 1, 3, DV),
                            poisoned(arena, DType.F32, 2, 3, 1)),
                    null,
                    "3 query heads do not divide into 2 kv heads");
            Tensor q575 = Tensor.allocate(arena, DType.BF16, 2, 1, 16, 575);
            rejected(
                    () -> Mla.decode(ctx, q575, p.kcache, p.blockTable, p.seqlens, 0.04f, false, out, lse),
                    out,
                    "argument 'kcache': shape [7, 64, 1, 576] but expected [7, 64, 1, 575]");
        }
    }

    private static void rejected(Runnable call, Tensor out, String fragment) {
        Moe4jException e = assertThrows(Moe4jException.class, call::run);
        System.out.println("rejected: " + e.getMessage());
        assertTrue(e.nativeMessage().contains(fragment), e.nativeMessage());
        if (out != null) {
            MemorySegment s = out.segment();
            for (long i = 0; i < s.byteSize(); i++)
                assertEquals((byte) 0xFF, s.get(ValueLayout.JAVA_BYTE, i), "out was written");
        }
    }
}
