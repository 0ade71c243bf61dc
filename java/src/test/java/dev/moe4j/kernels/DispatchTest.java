package dev.moe4j.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
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
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** moe4j_gather_rows and moe4j_combine_rows on every ISA path, bit for bit against plain Java loops. */
class DispatchTest {
    static List<Isa> isaPaths() {
        return TestSupport.isaPaths();
    }

    static Context context(Isa isa) {
        return Context.create(Context.Options.cpu().withMaxIsa(isa));
    }

    static byte[] bytes(Tensor t) {
        return t.segment().toArray(ValueLayout.JAVA_BYTE);
    }

    @ParameterizedTest
    @MethodSource("isaPaths")
    void gathersRowsAndZerosPaddingRows(Isa isa) {
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        try (Arena arena = Arena.ofConfined();
                Context ctx = context(isa)) {
            int tokens = 37, rows = 91, cols = 7 * 128;
            for (DType dtype : new DType[] {DType.E4M3, DType.F32, DType.BF16}) {
                Tensor src = Tensor.allocate(arena, dtype, tokens, cols);
                byte[] values = new byte[Math.toIntExact(src.segment().byteSize())];
                random.nextBytes(values);
                src.segment().copyFrom(java.lang.foreign.MemorySegment.ofArray(values));
                Tensor index = Tensor.allocate(arena, DType.I32, rows);
                for (int r = 0; r < rows; r++) index.setInt(r % 7 == 6 ? -1 : random.nextInt(tokens), r);
                Tensor dst = Tensor.allocate(arena, dtype, rows, cols);
                dst.segment().fill((byte) 0x55);
                Dispatch.gather(ctx, src, index, dst);
                long rowBytes = cols * dtype.byteSize();
                byte[] expected = new byte[Math.toIntExact(rows * rowBytes)];
                for (int r = 0; r < rows; r++) {
                    int id = index.getInt(r);
                    if (id >= 0)
                        System.arraycopy(
                                values,
                                Math.toIntExact(id * rowBytes),
                                expected,
                                Math.toIntExact(r * rowBytes),
                                Math.toIntExact(rowBytes));
                }
                assertArrayEquals(expected, bytes(dst), dtype + " " + isa + ", seed " + seed);
            }
        }
    }

    @ParameterizedTest
    @MethodSource("isaPaths")
    void combinesInRankOrderWithFusedMultiplyAdds(Isa isa) {
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        try (Arena arena = Arena.ofConfined();
                Context ctx = context(isa)) {
            int tokens = 29, k = 6, rows = 120, hidden = 300;
            for (DType dtype : new DType[] {DType.BF16, DType.F32})
                for (boolean withBase : new boolean[] {false, true}) {
                    Tensor y = Tensor.allocate(arena, dtype, rows, hidden);
                    float[] v = new float[rows * hidden];
                    for (int i = 0; i < v.length; i++) v[i] = (float) random.nextGaussian();
                    y.copyFrom(v);
                    Tensor index = Tensor.allocate(arena, DType.I32, tokens, k),
                            weights = Tensor.allocate(arena, DType.F32, tokens, k);
                    for (int t = 0; t < tokens; t++)
                        for (int j = 0; j < k; j++) {
                            index.setInt(random.nextInt(5) == 0 ? -1 : random.nextInt(rows), t, j);
                            weights.setFloat((float) random.nextDouble(), t, j);
                        }
                    Tensor base = withBase ? Tensor.allocate(arena, DType.F32, tokens, hidden) : null;
                    if (base != null) {
                        float[] b = new float[tokens * hidden];
                        for (int i = 0; i < b.length; i++) b[i] = (float) random.nextGaussian();
                        base.copyFrom(b);
                    }
                    Tensor out = Tensor.allocate(arena, DType.F32, tokens, hidden);
                    out.segment().fill((byte) 0xFF);
                    Dispatch.combine(ctx, y, index, weights, base, out);
                    Tensor expected = Tensor.allocate(arena, DType.F32, tokens, hidden);
                    for (int t = 0; t < tokens; t++)
                        for (int c = 0; c < hidden; c++) {
                            float acc = base == null ? 0 : base.getFloat(t, c);
                            for (int j = 0; j < k; j++) {
                                int id = index.getInt(t, j);
                                if (id >= 0) acc = Math.fma(weights.getFloat(t, j), y.getFloat(id, c), acc);
                            }
                            expected.setFloat(acc, t, c);
                        }
                    assertArrayEquals(
                            bytes(expected), bytes(out), dtype + " base " + withBase + " " + isa + ", seed " + seed);
                }
        }
    }

    @Test
    void rejectsBadArgumentsAndWritesNothing() {
        try (Arena arena = Arena.ofConfined();
                Context ctx = Context.create()) {
            Tensor src = Tensor.allocate(arena, DType.F32, 4, 8), dst = Tensor.allocate(arena, DType.F32, 3, 8);
            dst.segment().fill((byte) 0x11);
            Tensor index = Tensor.allocate(arena, DType.I32, 3);
            index.setInt(4, 1);
            var e = assertThrows(Moe4jException.class, () -> Dispatch.gather(ctx, src, index, dst));
            assertTrue(e.getMessage().contains("entry 1 is 4, outside [-1, 4)"), e.getMessage());
            for (byte b : bytes(dst)) assertTrue(b == 0x11, "a rejected gather wrote");
            e = assertThrows(
                    Moe4jException.class,
                    () -> Dispatch.gather(
                            ctx, src, Tensor.allocate(arena, DType.I32, 3), Tensor.allocate(arena, DType.BF16, 3, 8)));
            assertTrue(e.getMessage().contains("'dst': dtype BF16"), e.getMessage());

            Tensor rows = Tensor.allocate(arena, DType.BF16, 5, 8), idx = Tensor.allocate(arena, DType.I32, 2, 3);
            Tensor weights = Tensor.allocate(arena, DType.F32, 2, 3), out = Tensor.allocate(arena, DType.F32, 2, 8);
            idx.setInt(-2, 1, 2);
            e = assertThrows(Moe4jException.class, () -> Dispatch.combine(ctx, rows, idx, weights, null, out));
            assertTrue(e.getMessage().contains("entry 1, 2 is -2"), e.getMessage());
            idx.setInt(0, 1, 2);
            e = assertThrows(
                    Moe4jException.class,
                    () -> Dispatch.combine(ctx, rows, idx, Tensor.allocate(arena, DType.F32, 2, 2), null, out));
            assertTrue(e.getMessage().contains("'weights'"), e.getMessage());
            e = assertThrows(Moe4jException.class, () -> Dispatch.combine(ctx, rows, idx, weights, out, out));
            assertTrue(e.getMessage().contains("overlap"), e.getMessage());
        }
    }
}
