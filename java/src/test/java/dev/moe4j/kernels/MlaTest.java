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
 * MLA decode against a float64 attention on the same bf16 inputs, on a slice of FlashMLA's test grid, with
 * permuted block tables, variable lengths, causal masks, zero-length sequences and NaN in every unused cache slot.
 */
class MlaTest {
    static final int D = 576, DV = 512, BLOCK = 64;

    record Case(int b, int sQ, int sK, int hQ, int hKv, boolean varlen, boolean causal) {}

    static List<Arguments> cases() {
        List<Arguments> cases = new ArrayList<>();
        Case[] grid = {
            new Case(1, 1, 20, 16, 1, false, false), new Case(2, 2, 140, 16, 1, true, true),
            new Case(2, 4, 140, 1, 1, false, true), new Case(6, 1, 20, 16, 2, true, false),
            new Case(1, 2, 4096, 16, 1, false, true), new Case(2, 1, 140, 64, 2, true, false)
        };
        for (Isa isa : TestSupport.isaPaths()) for (Case c : grid) cases.add(Arguments.of(isa, c));
        return cases;
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
            p.check(c, scale, out, lse, isa + " " + c + " seed " + seed);
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
            int next = 0;
            for (int i = 0; i < c.b(); i++) {
                seqlens.setInt(lengths[i], i);
                for (int blk = 0; blk * BLOCK < lengths[i]; blk++) {
                    int id = ids.get(next++);
                    table.setInt(id, i, blk);
                    for (int slot = 0; slot < BLOCK && blk * BLOCK + slot < lengths[i]; slot++)
                        for (int h = 0; h < c.hKv(); h++)
                            for (int d = 0; d < D; d++) kcache.setFloat((float) random.nextGaussian(), id, slot, h, d);
                }
            }
            return new Problem(q, kcache, table, seqlens, lengths);
        }

        /** Float64 attention over this problem's bf16 cache: out [b][s_q][h_q][DV] and lse [b][h_q][s_q], flattened. */
        double[][] reference(Case c, float scale) {
            int perKv = c.hQ() / c.hKv();
            double[] out = new double[c.b() * c.sQ() * c.hQ() * DV], lse = new double[c.b() * c.hQ() * c.sQ()];
            for (int i = 0; i < c.b(); i++) {
                int len = lengths[i];
                for (int j = 0; j < c.sQ(); j++) {
                    int visible = c.causal() ? Math.max(0, Math.min(len, len - c.sQ() + j + 1)) : len;
                    for (int h = 0; h < c.hQ(); h++) {
                        int g = h / perKv;
                        double[] scores = new double[visible];
                        double max = Double.NEGATIVE_INFINITY;
                        for (int t = 0; t < visible; t++) {
                            int id = blockTable.getInt(i, t / BLOCK);
                            double s = 0;
                            for (int d = 0; d < D; d++)
                                s += (double) q.getFloat(i, j, h, d) * kcache.getFloat(id, t % BLOCK, g, d);
                            scores[t] = s * scale;
                            max = Math.max(max, scores[t]);
                        }
                        double sum = 0;
                        for (int t = 0; t < visible; t++) sum += Math.exp(scores[t] - max);
                        lse[(i * c.hQ() + h) * c.sQ() + j] =
                                visible == 0 ? Double.POSITIVE_INFINITY : max + Math.log(sum);
                        int base = ((i * c.sQ() + j) * c.hQ() + h) * DV;
                        for (int t = 0; t < visible; t++) {
                            int id = blockTable.getInt(i, t / BLOCK);
                            double w = Math.exp(scores[t] - max) / sum;
                            for (int dv = 0; dv < DV; dv++) out[base + dv] += w * kcache.getFloat(id, t % BLOCK, g, dv);
                        }
                    }
                }
            }
            return new double[][] {out, lse};
        }

        void check(Case c, float scale, Tensor out, Tensor lse, String where) {
            double[][] expected = reference(c, scale);
            for (int i = 0; i < c.b(); i++)
                for (int h = 0; h < c.hQ(); h++)
                    for (int j = 0; j < c.sQ(); j++) {
                        double e = expected[1][(i * c.hQ() + h) * c.sQ() + j];
                        float actual = lse.getFloat(i, h, j);
                        if (Double.isInfinite(e)) assertEquals(Float.POSITIVE_INFINITY, actual, where + " empty lse");
                        else if (!(Math.abs(actual - e) <= 1e-5 * Math.max(1, Math.abs(e))))
                            throw new AssertionError(
                                    where + ": lse[" + i + "," + h + "," + j + "] = " + actual + ", expected " + e);
                    }
            for (int i = 0; i < c.b(); i++)
                for (int j = 0; j < c.sQ(); j++)
                    for (int h = 0; h < c.hQ(); h++)
                        for (int dv = 0; dv < DV; dv++) {
                            double e = expected[0][((i * c.sQ() + j) * c.hQ() + h) * DV + dv];
                            float actual = out.getFloat(i, j, h, dv);
                            // FlashMLA's test: bf16 output within 8e-4 absolute plus 2/128 relative.
                            if (!(Math.abs(actual - e) <= 8e-4 + 2.0 / 128 * Math.abs(e)))
                                throw new AssertionError(where + ": out[" + i + "," + j + "," + h + "," + dv + "] = "
                                        + actual + ", expected " + e);
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
            double[][] expected = p.reference(c, Mla.DEFAULT_SCALE); // from the unquantized bf16 cache
            double[] got = new double[expected[0].length];
            for (int i = 0; i < got.length; i++) got[i] = out.segment().getAtIndex(ValueLayout.JAVA_FLOAT, i);
            double diff = dev.moe4j.testing.Reference.calcDiff(got, expected[0]);
            assertTrue(diff < 1e-3, isa + " seed " + seed + ": calc_diff of the FP8-cache output " + diff);
            for (int i = 0; i < expected[1].length; i++) {
                double e = expected[1][i];
                float actual = lse.segment().getAtIndex(ValueLayout.JAVA_FLOAT, i);
                if (Double.isInfinite(e)) assertEquals(Float.POSITIVE_INFINITY, actual);
                else assertEquals(e, actual, 0.05 * Math.max(1, Math.abs(e)), isa + " seed " + seed + " lse " + i);
            }
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
