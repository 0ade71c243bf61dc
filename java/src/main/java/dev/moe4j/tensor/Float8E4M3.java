package dev.moe4j.tensor;

/**
 * OCP FP8 E4M3 ("fn") conversions: 1 sign, 4 exponent bits (bias 7), 3 mantissa bits; max finite 448,
 * min normal 2^-6, min subnormal 2^-9, no infinities, NaN = 0x7F and 0xFF.
 */
public final class Float8E4M3 {
    public static final float MAX = 448.0f;
    public static final float MIN_NORMAL = 0x1p-6f;
    public static final float MIN_SUBNORMAL = 0x1p-9f;
    /** The NaN code {@link #fromFloat(float)} produces. */
    public static final byte NAN = 0x7F;

    private Float8E4M3() {}

    /** Rounds to nearest even and saturates to +-448 (infinities too); NaN becomes 0x7F. */
    public static byte fromFloat(float value) {
        int bits = Float.floatToRawIntBits(value);
        int sign = (bits >>> 24) & 0x80;
        float a = Math.abs(value);
        if (Float.isNaN(a)) return NAN;
        if (a > MAX) a = MAX;
        if (a < MIN_NORMAL) return (byte) (sign | (int) Math.rint(a * 512.0f));
        int u = Float.floatToRawIntBits(a);
        u += 0x7FFFF + ((u >>> 20) & 1);
        return (byte) (sign | ((u >>> 20) - (120 << 3)));
    }

    public static float toFloat(byte code) {
        int c = code & 0xFF;
        int exponent = (c >>> 3) & 0x0F, mantissa = c & 0x07;
        float magnitude;
        if (exponent == 0x0F && mantissa == 0x07) magnitude = Float.NaN;
        else if (exponent == 0) magnitude = mantissa * MIN_SUBNORMAL;
        else magnitude = Float.intBitsToFloat(((exponent + 120) << 23) | (mantissa << 20));
        return (c & 0x80) != 0 ? -magnitude : magnitude;
    }
}
