package dev.moe4j.tensor;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.moe4j.testing.EdgeValues;
import dev.moe4j.testing.Reference;
import dev.moe4j.testing.TestSupport;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The Java-side codecs against the independent double-precision references (no native code). */
class NumericFormatsTest {
    @Test
    void e4m3DecodesAll256Codes() {
        for (int code = 0; code < 256; code++) {
            double expected = Reference.e4m3Value(code);
            float actual = Float8E4M3.toFloat((byte) code);
            if (Double.isNaN(expected)) assertTrue(Float.isNaN(actual), "code " + code);
            else assertEquals(expected, actual, 0.0, "code " + code);
        }
        assertEquals(448f, Float8E4M3.toFloat((byte) 0x7E));
        assertEquals(0x1p-9f, Float8E4M3.toFloat((byte) 0x01));
        assertEquals(0x1p-6f, Float8E4M3.toFloat((byte) 0x08));
    }

    @Test
    void e4m3EncodeRoundTripsEveryCode() {
        for (int code = 0; code < 256; code++) {
            if ((code & 0x7F) == 0x7F) continue;
            assertEquals((byte) code, Float8E4M3.fromFloat(Float8E4M3.toFloat((byte) code)), "code " + code);
        }
    }

    @Test
    void e4m3EncodeMatchesReferenceOnEdgeValues() {
        for (float x : EdgeValues.e4m3()) {
            assertEquals(
                    (byte) Reference.e4m3Encode(x),
                    Float8E4M3.fromFloat(x),
                    () -> "x = " + x + " (" + Float.toHexString(x) + ")");
        }
    }

    @Test
    void e4m3EncodeMatchesReferenceOnMillionsOfRandomValues() {
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        for (int i = 0; i < 3_000_000; i++) {
            float x = switch (i % 3) {
                case 0 -> Float.intBitsToFloat(random.nextInt());
                case 1 -> (float) random.nextDouble(-500, 500);
                default -> (float) (random.nextDouble(-1, 1) * Math.pow(2, random.nextInt(-12, 10)));
            };
            byte expected = (byte) Reference.e4m3Encode(x);
            byte actual = Float8E4M3.fromFloat(x);
            if (expected != actual)
                throw new AssertionError("seed " + seed + ": x = " + Float.toHexString(x) + " encodes to " + actual
                        + ", expected " + expected);
        }
    }

    @Test
    void e4m3SaturatesAndEncodesNaN() {
        assertEquals((byte) 0x7E, Float8E4M3.fromFloat(Float.POSITIVE_INFINITY));
        assertEquals((byte) 0xFE, Float8E4M3.fromFloat(Float.NEGATIVE_INFINITY));
        assertEquals((byte) 0x7E, Float8E4M3.fromFloat(1e30f));
        assertEquals((byte) 0x7E, Float8E4M3.fromFloat(464f));
        assertEquals((byte) 0x7F, Float8E4M3.fromFloat(Float.NaN));
        assertEquals((byte) 0x7F, Float8E4M3.fromFloat(Float.intBitsToFloat(0xFFC00001)));
        assertEquals((byte) 0x80, Float8E4M3.fromFloat(-0.0f));
        assertEquals((byte) 0x00, Float8E4M3.fromFloat(0x1p-11f), "below half the min subnormal rounds to 0");
        assertEquals((byte) 0x00, Float8E4M3.fromFloat(0x1p-10f), "exactly half the min subnormal ties to even 0");
        assertEquals((byte) 0x02, Float8E4M3.fromFloat(3 * 0x1p-10f), "1.5 subnormal steps ties to even 2");
    }

    @Test
    void bf16MatchesReference() {
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        for (int i = 0; i < 2_000_000; i++) {
            float x = Float.intBitsToFloat(i % 2 == 0 ? random.nextInt() : (random.nextInt() & 0xFFFF0000) | 0x8000);
            short expected = Reference.bf16Encode(x);
            short actual = BFloat16.fromFloat(x);
            if (expected != actual)
                throw new AssertionError("seed " + seed + ": x = " + Float.toHexString(x) + " gives " + actual
                        + ", expected " + expected);
        }
        assertEquals(1.0f, BFloat16.toFloat(BFloat16.fromFloat(1.0f)));
        assertEquals(Float.POSITIVE_INFINITY, BFloat16.toFloat(BFloat16.fromFloat(Float.POSITIVE_INFINITY)));
    }
}
