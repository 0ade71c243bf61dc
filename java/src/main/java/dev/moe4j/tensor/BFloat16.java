package dev.moe4j.tensor;

/** bfloat16 conversions: the top 16 bits of an fp32, rounded to nearest even. */
public final class BFloat16 {
    private BFloat16() {}

    /** Rounds to nearest even; NaN stays NaN (quiet bit set), infinities stay infinite. */
    public static short fromFloat(float value) {
        int bits = Float.floatToRawIntBits(value);
        if ((bits & 0x7FFFFFFF) > 0x7F800000) return (short) ((bits >>> 16) | 0x0040);
        bits += 0x7FFF + ((bits >>> 16) & 1);
        return (short) (bits >>> 16);
    }

    public static float toFloat(short bits) {
        return Float.intBitsToFloat((bits & 0xFFFF) << 16);
    }
}
