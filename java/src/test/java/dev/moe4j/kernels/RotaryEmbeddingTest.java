package dev.moe4j.kernels;

import static dev.moe4j.kernels.CastTest.context;
import static dev.moe4j.kernels.CastTest.poisoned;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.moe4j.model.Rope;
import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.Isa;
import dev.moe4j.runtime.Moe4jException;
import dev.moe4j.tensor.BFloat16;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.Tensor;
import dev.moe4j.testing.TestSupport;
import java.lang.foreign.Arena;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** moe4j_rope on every ISA path, bit for bit against the Java float expressions of the contract. */
class RotaryEmbeddingTest {
    static final Rope.Yarn V3_YARN = new Rope.Yarn(40, 4096, 32, 1, 1, 1);

    /** [t, h, r] as a view into wider rows: head stride r + 2, token stride h·(r + 2) + 5 (both padded). */
    static Tensor strided(Arena arena, DType dtype, int t, int h, int r) {
        long headStride = r + 2, tokenStride = h * headStride + 5;
        Tensor buffer = Tensor.allocate(arena, dtype, t * tokenStride);
        buffer.segment().fill((byte) 0xFF);
        return Tensor.of(buffer.segment(), dtype, new long[] {t, h, r}, new long[] {tokenStride, headStride, 1});
    }

    static float rounded(float v, DType dtype) {
        return dtype == DType.BF16 ? BFloat16.toFloat(BFloat16.fromFloat(v)) : v;
    }

    @ParameterizedTest
    @MethodSource("dev.moe4j.kernels.CastTest#isaPaths")
    void matchesJavaFloatArithmeticBitForBit(Isa isa) {
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        int[][] shapes = {{1, 1, 2}, {7, 3, 64}, {5, 16, 64}, {3, 2, 18}, {4, 5, 30}};
        try (Arena arena = Arena.ofConfined();
                Context ctx = context(isa)) {
            for (int[] s : shapes)
                for (DType in : new DType[] {DType.F32, DType.BF16})
                    for (DType out : new DType[] {DType.F32, DType.BF16}) {
                        int t = s[0], h = s[1], r = s[2];
                        float[] freqs = new float[r / 2];
                        Rope yarn = new Rope(64, 10000, V3_YARN);
                        for (int i = 0; i < freqs.length; i++)
                            freqs[i] = r == 64 ? yarn.frequency(i) : (float) random.nextDouble(1e-4, 1);
                        float scale = r == 64 ? 1f : (float) random.nextDouble(0.5, 1.5);
                        Tensor x = strided(arena, in, t, h, r);
                        float[] values = TestSupport.wideFloats(random, t * h * r);
                        for (int i = 0; i < values.length; i++) x.setFloat(values[i], i / (h * r), i / r % h, i % r);
                        Tensor positions = Tensor.allocate(arena, DType.I32, t);
                        for (int i = 0; i < t; i++) positions.setInt(i == 0 ? 0 : random.nextInt(163840), i);
                        Tensor y = strided(arena, out, t, h, r);
                        RotaryEmbedding.apply(
                                ctx, x, positions, Tensor.fromFloats(arena, DType.F32, freqs, r / 2), scale, y);
                        for (int tok = 0; tok < t; tok++)
                            for (int head = 0; head < h; head++)
                                for (int i = 0; i < r / 2; i++) {
                                    float angle = positions.getInt(tok) * freqs[i];
                                    float cos = (float) Math.cos(angle) * scale, sin = (float) Math.sin(angle) * scale;
                                    float re = x.getFloat(tok, head, 2 * i), im = x.getFloat(tok, head, 2 * i + 1);
                                    String where = isa + " " + in + "->" + out + " " + java.util.Arrays.toString(s)
                                            + " token " + tok + " head " + head + " pair " + i + ", seed " + seed;
                                    assertEquals(
                                            Float.floatToRawIntBits(rounded(re * cos - im * sin, out)),
                                            Float.floatToRawIntBits(y.getFloat(tok, head, 2 * i)),
                                            where);
                                    assertEquals(
                                            Float.floatToRawIntBits(rounded(re * sin + im * cos, out)),
                                            Float.floatToRawIntBits(y.getFloat(tok, head, 2 * i + 1)),
                                            where);
                                }
                    }
        }
    }

    @ParameterizedTest
    @MethodSource("dev.moe4j.kernels.CastTest#isaPaths")
    void rotatesInPlace(Isa isa) {
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        int t = 6, h = 4, r = 64;
        Rope rope = new Rope(r, 10000, V3_YARN);
        try (Arena arena = Arena.ofConfined();
                Context ctx = context(isa)) {
            for (DType dtype : new DType[] {DType.F32, DType.BF16}) {
                float[] values = TestSupport.wideFloats(random, t * h * r);
                Tensor x = Tensor.fromFloats(arena, dtype, values, t, h, r);
                Tensor copy = Tensor.fromFloats(arena, dtype, values, t, h, r);
                Tensor positions = Tensor.allocate(arena, DType.I32, t);
                for (int i = 0; i < t; i++) positions.setInt(random.nextInt(100000), i);
                Tensor separate = poisoned(arena, dtype, t, h, r);
                rope.apply(ctx, copy, positions, separate);
                rope.apply(ctx, x, positions, x);
                assertTrue(
                        java.util.Arrays.equals(
                                separate.segment().toArray(ValueLayout.JAVA_BYTE),
                                x.segment().toArray(ValueLayout.JAVA_BYTE)),
                        dtype + " " + isa + ", seed " + seed);
            }
        }
    }

    @Test
    void rejectsBadArgumentsAndWritesNothing() {
        try (Arena arena = Arena.ofConfined();
                Context ctx = Context.create()) {
            Tensor x = Tensor.allocate(arena, DType.F32, 3, 2, 8), freqs = Tensor.allocate(arena, DType.F32, 4);
            Tensor out = poisoned(arena, DType.BF16, 3, 2, 8), positions = Tensor.allocate(arena, DType.I32, 3);
            positions.setInt(-1, 2);
            var e = assertThrows(Moe4jException.class, () -> RotaryEmbedding.apply(ctx, x, positions, freqs, 1f, out));
            assertTrue(e.getMessage().contains("argument 'positions': entry 2 is -1, must be >= 0"), e.getMessage());
            positions.setInt(0, 2);
            e = assertThrows(
                    Moe4jException.class,
                    () -> RotaryEmbedding.apply(ctx, x, positions, Tensor.allocate(arena, DType.F32, 3), 1f, out));
            assertTrue(e.getMessage().contains("argument 'freqs': shape [3] but expected [4]"), e.getMessage());
            e = assertThrows(
                    Moe4jException.class,
                    () -> RotaryEmbedding.apply(
                            ctx, x.slice(2, 0, 7), positions, Tensor.allocate(arena, DType.F32, 3), 1f, out));
            assertTrue(e.getMessage().contains("argument 'x': R = 7 is odd"), e.getMessage());
            e = assertThrows(
                    Moe4jException.class,
                    () -> RotaryEmbedding.apply(ctx, x, positions, freqs, 1f, poisoned(arena, DType.F32, 3, 2, 4)));
            assertTrue(
                    e.getMessage().contains("argument 'out': shape [3, 2, 4] but expected [3, 2, 8]"), e.getMessage());
            Tensor overX = Tensor.of(x.segment(), DType.BF16, new long[] {3, 2, 8}, new long[] {16, 8, 1});
            e = assertThrows(Moe4jException.class, () -> RotaryEmbedding.apply(ctx, x, positions, freqs, 1f, overX));
            assertTrue(e.getMessage().contains("output 'out' overlaps 'x'"), e.getMessage());
            var dtype = assertThrows(
                    IllegalArgumentException.class,
                    () -> RotaryEmbedding.apply(ctx, x, Tensor.allocate(arena, DType.F32, 3), freqs, 1f, out));
            assertTrue(dtype.getMessage().startsWith("positions must be [I32]"), dtype.getMessage());
            for (byte b : out.segment().toArray(ValueLayout.JAVA_BYTE)) assertEquals((byte) 0xFF, b, "out written");
        }
    }
}
