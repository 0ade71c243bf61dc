package dev.moe4j.kernels;

import static dev.moe4j.kernels.CastTest.context;
import static dev.moe4j.kernels.CastTest.poisoned;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.Isa;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.QuantizedTensor;
import dev.moe4j.tensor.Tensor;
import dev.moe4j.testing.Reference;
import dev.moe4j.testing.TestSupport;
import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * FP8 per-token and per-block quantization on every ISA path: bit-exact against a Java reference of
 * DeepGEMM's recipe, and within FP8's rounding error of the unquantized input.
 */
class QuantizationTest {
    record Shape(int rows, int cols) {}

    static final Shape[] SHAPES = {
        new Shape(1, 128),
        new Shape(3, 200),
        new Shape(130, 7168),
        new Shape(17, 1),
        new Shape(64, 384),
        new Shape(257, 300)
    };

    static List<Arguments> cases() {
        List<Arguments> cases = new ArrayList<>();
        for (Isa isa : TestSupport.isaPaths())
            for (DType dtype : new DType[] {DType.F32, DType.BF16})
                for (ScaleFormat format : ScaleFormat.values()) cases.add(Arguments.of(isa, dtype, format));
        return cases;
    }

    @ParameterizedTest(name = "{0} {1} {2}")
    @MethodSource("cases")
    void perTokenIsBitExactAndCloseToTheInput(Isa isa, DType dtype, ScaleFormat format) {
        for (Shape shape : SHAPES) check(isa, dtype, format, shape, 1, false);
    }

    @ParameterizedTest(name = "{0} {1} {2}")
    @MethodSource("cases")
    void perBlockIsBitExactAndCloseToTheInput(Isa isa, DType dtype, ScaleFormat format) {
        for (Shape shape : SHAPES) check(isa, dtype, format, shape, 128, false);
    }

    @ParameterizedTest(name = "{0} {1} {2}")
    @MethodSource("cases")
    void writesColumnMajorScales(Isa isa, DType dtype, ScaleFormat format) {
        check(isa, dtype, format, new Shape(70, 640), 1, true);
        check(isa, dtype, format, new Shape(300, 260), 128, true);
    }

    @ParameterizedTest
    @MethodSource("dev.moe4j.kernels.CastTest#isaPaths")
    void nanPoisonsOnlyItsOwnBlockAndZerosUseTheClamp(Isa isa) {
        try (Arena arena = Arena.ofConfined();
                Context ctx = context(isa)) {
            float[] values = TestSupport.wideFloats(TestSupport.random(1), 2 * 256);
            values[5] = Float.NaN; // row 0, block 0
            for (int i = 256 + 128; i < 512; i++) values[i] = 0f; // row 1, block 1
            Tensor x = Tensor.fromFloats(arena, DType.F32, values, 2, 256);
            QuantizedTensor q =
                    new QuantizedTensor(poisoned(arena, DType.E4M3, 2, 256), poisoned(arena, DType.F32, 2, 2), 1);
            Quantization.perToken(ctx, x, q.data(), q.scales(), ScaleFormat.FP32);
            assertTrue(Float.isNaN(q.scales().getFloat(0, 0)));
            for (int c = 0; c < 128; c++) assertEquals((byte) 0x7F, q.data().getByte(0, c), "NaN block code " + c);
            assertTrue(Float.isFinite(q.scales().getFloat(0, 1)));
            assertTrue(Float.isFinite(q.scales().getFloat(1, 0)));
            assertEquals(1e-4f / 448f, q.scales().getFloat(1, 1));
            for (int c = 128; c < 256; c++) assertEquals((byte) 0, q.data().getByte(1, c));
        }
    }

    private static void check(
            Isa isa, DType dtype, ScaleFormat format, Shape shape, int blockRows, boolean columnMajorScales) {
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        String where = isa + " " + dtype + " " + format + " " + shape + " blockRows " + blockRows + " seed " + seed;
        int rows = shape.rows(), cols = shape.cols();
        int scaleRows = (rows + blockRows - 1) / blockRows, scaleCols = (cols + 127) / 128;
        try (Arena arena = Arena.ofConfined();
                Context ctx = context(isa)) {
            Tensor x = Tensor.fromFloats(arena, dtype, TestSupport.wideFloats(random, rows * cols), rows, cols);
            float[] input = x.toFloatArray(); // what the kernel sees, after bf16 rounding
            Tensor q = poisoned(arena, DType.E4M3, rows, cols);
            Tensor scales = columnMajorScales
                    ? Tensor.of(
                            poisoned(arena, DType.F32, (long) scaleRows * scaleCols)
                                    .segment(),
                            DType.F32,
                            new long[] {scaleRows, scaleCols},
                            new long[] {1, scaleRows})
                    : poisoned(arena, DType.F32, scaleRows, scaleCols);
            if (blockRows == 1) Quantization.perToken(ctx, x, q, scales, format);
            else Quantization.perBlock(ctx, x, q, scales, format);

            float[] expectedScales = new float[scaleRows * scaleCols];
            byte[] expectedCodes =
                    referenceQuantize(input, rows, cols, blockRows, format == ScaleFormat.UE8M0, expectedScales);
            for (int rb = 0; rb < scaleRows; rb++)
                for (int cb = 0; cb < scaleCols; cb++)
                    assertEquals(
                            expectedScales[rb * scaleCols + cb],
                            scales.getFloat(rb, cb),
                            0.0f,
                            where + " scale " + rb + "," + cb);
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < cols; c++)
                    if (expectedCodes[r * cols + c] != q.getByte(r, c))
                        throw new AssertionError(where + ": code at " + r + "," + c + " is " + q.getByte(r, c)
                                + ", expected " + expectedCodes[r * cols + c]);

            QuantizedTensor quantized = new QuantizedTensor(q, scales, blockRows);
            checkDequantized(ctx, arena, quantized, input, rows, cols, where);
        }
    }

    /** Dequantization is q * s exactly (fp32 product), and within FP8 rounding of the original input. */
    private static void checkDequantized(
            Context ctx, Arena arena, QuantizedTensor q, float[] input, int rows, int cols, String where) {
        Tensor f32 = poisoned(arena, DType.F32, rows, cols);
        Quantization.dequantize(ctx, q, f32);
        Tensor bf16 = poisoned(arena, DType.BF16, rows, cols);
        Quantization.dequantize(ctx, q, bf16);
        double[] x = new double[input.length], y = new double[input.length];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                int i = r * cols + c;
                float scale = q.scales().getFloat(r / q.blockRows(), c / 128);
                float expected = (float) Reference.e4m3Value(q.data().getByte(r, c)) * scale;
                assertEquals(expected, f32.getFloat(r, c), 0.0f, where + " dequantized f32 at " + r + "," + c);
                assertEquals(
                        dev.moe4j.tensor.BFloat16.toFloat(Reference.bf16Encode(expected)),
                        bf16.getFloat(r, c),
                        0.0f,
                        where + " dequantized bf16 at " + r + "," + c);
                // Round to nearest: half a step of 3 mantissa bits (relative) or half the subnormal step (absolute),
                // plus the fp32 roundings of 1/scale, x * (1/scale) and q * scale, each within 2^-24 of |x|. In the
                // subnormal range half a step can be ten times smaller than |x|, so a tie there lands past the
                // half step by more than a relative slack on the bound would allow (seen: seed 28548009734655).
                double bound = Math.max(Math.abs(input[i]) * 0x1p-4, scale * 0x1p-10) + Math.abs(input[i]) * 0x1p-21;
                if (Math.abs(input[i] - expected) > bound)
                    throw new AssertionError(
                            where + ": " + input[i] + " came back as " + expected + " (bound " + bound + ")");
                x[i] = input[i];
                y[i] = expected;
            }
        }
        // calc_diff is a statistic: over a handful of elements one unlucky rounding dominates it (the elementwise
        // bound above is the check there), so it is judged on samples large enough to average.
        if (input.length >= 4096) {
            double diff = Reference.calcDiff(x, y);
            assertTrue(diff < 1e-3, where + ": calc_diff " + diff);
        }
    }

    /** DeepGEMM's recipe written directly from its definition, in the fp32 arithmetic it specifies. */
    static byte[] referenceQuantize(float[] x, int rows, int cols, int blockRows, boolean ue8m0, float[] scalesOut) {
        int scaleCols = (cols + 127) / 128;
        byte[] codes = new byte[rows * cols];
        for (int rb = 0; rb * blockRows < rows; rb++) {
            for (int cb = 0; cb < scaleCols; cb++) {
                int r0 = rb * blockRows,
                        r1 = Math.min(rows, r0 + blockRows),
                        c0 = cb * 128,
                        c1 = Math.min(cols, c0 + 128);
                float amax = 0f;
                for (int r = r0; r < r1; r++)
                    for (int c = c0; c < c1; c++)
                        amax = Float.isNaN(amax) ? amax : Math.max(amax, Math.abs(x[r * cols + c]));
                float scale = Reference.fp8Scale(amax, ue8m0);
                float mul = 1f / scale;
                for (int r = r0; r < r1; r++)
                    for (int c = c0; c < c1; c++)
                        codes[r * cols + c] = (byte) Reference.e4m3Encode(x[r * cols + c] * mul);
                scalesOut[rb * scaleCols + cb] = scale;
            }
        }
        return codes;
    }
}
