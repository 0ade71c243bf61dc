package dev.moe4j.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.Isa;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.Tensor;
import dev.moe4j.testing.EdgeValues;
import dev.moe4j.testing.Reference;
import dev.moe4j.testing.TestSupport;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** The native codecs (moe4j_cast) on every ISA path against the independent double-precision references. */
class CastTest {
    static java.util.List<Isa> isaPaths() {
        return TestSupport.isaPaths();
    }

    @ParameterizedTest
    @MethodSource("isaPaths")
    void decodesAll256E4m3Codes(Isa isa) {
        try (Arena arena = Arena.ofConfined();
                Context ctx = context(isa)) {
            Tensor codes = Tensor.allocate(arena, DType.E4M3, 256);
            for (int c = 0; c < 256; c++) codes.segment().set(ValueLayout.JAVA_BYTE, c, (byte) c);
            for (DType out : new DType[] {DType.F32, DType.BF16}) {
                Tensor values = poisoned(arena, out, 256);
                Cast.apply(ctx, codes, values);
                for (int c = 0; c < 256; c++) {
                    double expected = Reference.e4m3Value(c);
                    float actual = values.getFloat(c);
                    if (Double.isNaN(expected)) assertTrue(Float.isNaN(actual), isa + " " + out + " code " + c);
                    else assertEquals(expected, actual, 0.0, isa + " " + out + " code " + c);
                }
            }
        }
    }

    @ParameterizedTest
    @MethodSource("isaPaths")
    void encodesEdgeValuesLikeTheReference(Isa isa) {
        float[] x = EdgeValues.e4m3();
        checkF32ToE4m3(isa, x, "edge values");
    }

    @ParameterizedTest
    @MethodSource("isaPaths")
    void encodesMillionsOfRandomValuesLikeTheReference(Isa isa) {
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        float[] x = new float[2_000_003];
        for (int i = 0; i < x.length; i++) {
            x[i] = switch (i % 4) {
                case 0 -> Float.intBitsToFloat(random.nextInt());
                case 1 -> (float) random.nextDouble(-500, 500);
                case 2 -> (float) random.nextDouble(-0x1p-5, 0x1p-5);
                default -> (float) (random.nextDouble(-1, 1) * Math.pow(2, random.nextInt(-12, 10)));
            };
        }
        checkF32ToE4m3(isa, x, "seed " + seed);
    }

    @ParameterizedTest
    @MethodSource("isaPaths")
    void convertsBf16BothWaysAndToE4m3(Isa isa) {
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        int n = 1_000_003;
        try (Arena arena = Arena.ofConfined();
                Context ctx = context(isa)) {
            Tensor f32 = Tensor.allocate(arena, DType.F32, n);
            for (int i = 0; i < n; i++) {
                int bits = i % 2 == 0 ? random.nextInt() : (random.nextInt() & 0xFFFF0000) | 0x8000; // ties included
                f32.segment().setAtIndex(ValueLayout.JAVA_INT, i, bits);
            }
            Tensor bf16 = poisoned(arena, DType.BF16, n);
            Cast.apply(ctx, f32, bf16);
            for (int i = 0; i < n; i++) {
                float x = f32.segment().getAtIndex(ValueLayout.JAVA_FLOAT, i);
                short actual = bf16.segment().getAtIndex(ValueLayout.JAVA_SHORT, i);
                if (actual != Reference.bf16Encode(x))
                    throw new AssertionError(
                            isa + " seed " + seed + ": f32->bf16 of " + Float.toHexString(x) + " gave " + actual);
            }
            Tensor back = poisoned(arena, DType.F32, n);
            Cast.apply(ctx, bf16, back);
            Tensor e4m3 = poisoned(arena, DType.E4M3, n);
            Cast.apply(ctx, bf16, e4m3);
            for (int i = 0; i < n; i++) {
                short h = bf16.segment().getAtIndex(ValueLayout.JAVA_SHORT, i);
                float widened = Float.intBitsToFloat((h & 0xFFFF) << 16);
                int wb = back.segment().getAtIndex(ValueLayout.JAVA_INT, i);
                if (wb != Float.floatToRawIntBits(widened))
                    throw new AssertionError(
                            isa + " seed " + seed + ": bf16->f32 of " + h + " gave " + Integer.toHexString(wb));
                byte code = e4m3.segment().get(ValueLayout.JAVA_BYTE, i);
                if (code != (byte) Reference.e4m3Encode(widened))
                    throw new AssertionError(isa + " seed " + seed + ": bf16->e4m3 of " + widened + " gave " + code);
            }
        }
    }

    @ParameterizedTest
    @MethodSource("isaPaths")
    void handlesStridedRowsAndRank4(Isa isa) {
        long seed = TestSupport.freshSeed();
        float[] values = TestSupport.wideFloats(TestSupport.random(seed), 2 * 3 * 5 * 37);
        try (Arena arena = Arena.ofConfined();
                Context ctx = context(isa)) {
            // Rows of 37 elements with a gap of 11 between them, inside a rank-4 view.
            MemorySegment backing = arena.allocate(4L * 2 * 3 * 5 * 48, 64);
            Tensor src =
                    Tensor.of(backing, DType.F32, new long[] {2, 3, 5, 37}, new long[] {3 * 5 * 48, 5 * 48, 48, 1});
            src.copyFrom(values);
            Tensor dst = poisoned(arena, DType.E4M3, 2, 3, 5, 37);
            Cast.apply(ctx, src, dst);
            byte[] actual = dst.segment().toArray(ValueLayout.JAVA_BYTE);
            for (int i = 0; i < values.length; i++)
                assertEquals((byte) Reference.e4m3Encode(values[i]), actual[i], "seed " + seed + " element " + i);
        }
    }

    private static void checkF32ToE4m3(Isa isa, float[] x, String what) {
        try (Arena arena = Arena.ofConfined();
                Context ctx = context(isa)) {
            Tensor src = Tensor.allocate(arena, DType.F32, x.length);
            MemorySegment.copy(x, 0, src.segment(), ValueLayout.JAVA_FLOAT, 0, x.length);
            Tensor dst = poisoned(arena, DType.E4M3, x.length);
            Cast.apply(ctx, src, dst);
            for (int i = 0; i < x.length; i++) {
                byte actual = dst.segment().get(ValueLayout.JAVA_BYTE, i);
                byte expected = (byte) Reference.e4m3Encode(x[i]);
                if (actual != expected)
                    throw new AssertionError(isa + " " + what + ": " + Float.toHexString(x[i]) + " encodes to "
                            + Integer.toHexString(actual & 0xFF) + ", expected "
                            + Integer.toHexString(expected & 0xFF));
            }
        }
    }

    static Context context(Isa isa) {
        return Context.create(Context.Options.cpu().withMaxIsa(isa));
    }

    /** A tensor filled with a recognisable pattern, so any element the kernel fails to write is caught. */
    static Tensor poisoned(Arena arena, DType dtype, long... shape) {
        Tensor t = Tensor.allocate(arena, dtype, shape);
        t.segment().fill((byte) (dtype == DType.E4M3 ? 0x7F : 0xFF)); // NaN in every float format
        return t;
    }
}
