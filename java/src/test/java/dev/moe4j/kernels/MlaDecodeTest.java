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
class MlaDecodeTest {
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
            float scale = MlaDecode.DEFAULT_SCALE;
            MlaDecode.decode(ctx, p.q, p.kcache, p.blockTable, p.seqlens, scale, c.causal(), out, lse);
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

        void check(Case c, float scale, Tensor out, Tensor lse, String where) {
            int perKv = c.hQ() / c.hKv();
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
                        double expectedLse = visible == 0 ? Double.POSITIVE_INFINITY : max + Math.log(sum);
                        float actualLse = lse.getFloat(i, h, j);
                        if (visible == 0) assertEquals(Float.POSITIVE_INFINITY, actualLse, where + " empty lse");
                        else if (!(Math.abs(actualLse - expectedLse) <= 1e-5 * Math.max(1, Math.abs(expectedLse))))
                            throw new AssertionError(where + ": lse[" + i + "," + h + "," + j + "] = " + actualLse
                                    + ", expected " + expectedLse);
                        for (int dv = 0; dv < DV; dv++) {
                            double expected = 0;
                            for (int t = 0; t < visible; t++) {
                                int id = blockTable.getInt(i, t / BLOCK);
                                expected += Math.exp(scores[t] - max) / sum * kcache.getFloat(id, t % BLOCK, g, dv);
                            }
                            float actual = out.getFloat(i, j, h, dv);
                            // FlashMLA's test: bf16 output within 8e-4 absolute plus 2/128 relative.
                            if (!(Math.abs(actual - expected) <= 8e-4 + 2.0 / 128 * Math.abs(expected)))
                                throw new AssertionError(where + ": out[" + i + "," + j + "," + h + "," + dv + "] = "
                                        + actual + ", expected " + expected);
                        }
                    }
                }
            }
        }
    }

    static void fill(Tensor t, SplittableRandom random) {
        float[] v = new float[Math.toIntExact(t.elementCount())];
        for (int i = 0; i < v.length; i++) v[i] = (float) random.nextGaussian();
        t.copyFrom(v);
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
                    () -> MlaDecode.decode(ctx, p.q, p.kcache, p.blockTable, p.seqlens, 0.04f, false, out, lse),
                    out,
                    "argument 'block_table': sequence 1, entry 1 is block 99, outside [0, 7)");
            p.seqlens.setInt(200, 0);
            rejected(
                    () -> MlaDecode.decode(ctx, p.q, p.kcache, p.blockTable, p.seqlens, 0.04f, false, out, lse),
                    out,
                    "sequence 0 has 200 tokens, more than its 2 block-table entries hold (128)");
            Tensor q3 = Tensor.allocate(arena, DType.BF16, 2, 1, 3, D);
            Tensor kv2 = Tensor.allocate(arena, DType.BF16, 7, BLOCK, 2, D);
            rejected(
                    () -> MlaDecode.decode(
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
                    () -> MlaDecode.decode(ctx, q575, p.kcache, p.blockTable, p.seqlens, 0.04f, false, out, lse),
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
