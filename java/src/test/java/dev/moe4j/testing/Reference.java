package dev.moe4j.testing;

import java.util.Arrays;

/**
 * Independent references for the numeric formats, written from their definitions in double precision
 * and sharing no code with the library: e4m3 by nearest-value search over the code table, bf16 by
 * comparing the two neighbouring representable values.
 */
public final class Reference {
    private Reference() {}

    /** The non-negative finite e4m3 values, indexed by code 0x00..0x7E, from the format's definition. */
    public static final double[] E4M3_VALUES = new double[0x7F];

    static {
        for (int code = 0; code < 0x7F; code++) {
            int exponent = code >> 3, mantissa = code & 7;
            E4M3_VALUES[code] =
                    exponent == 0 ? mantissa * Math.pow(2, -9) : (1 + mantissa / 8.0) * Math.pow(2, exponent - 7);
        }
    }

    /** e4m3 value of a code: NaN for 0x7F/0xFF. */
    public static double e4m3Value(int code) {
        int c = code & 0xFF;
        if ((c & 0x7F) == 0x7F) return Double.NaN;
        double v = E4M3_VALUES[c & 0x7F];
        return (c & 0x80) != 0 ? -v : v;
    }

    /** Nearest e4m3 code, ties to the even code, saturating to +-448, NaN -> 0x7F. */
    public static int e4m3Encode(double x) {
        if (Double.isNaN(x)) return 0x7F;
        int sign = (Double.doubleToRawLongBits(x) < 0) ? 0x80 : 0;
        double a = Math.abs(x);
        if (a >= 448) return sign | 0x7E;
        int i = Arrays.binarySearch(E4M3_VALUES, a);
        if (i >= 0) return sign | i;
        int above = -i - 1, below = above - 1;
        double dBelow = a - E4M3_VALUES[below], dAbove = E4M3_VALUES[above] - a;
        int code = dBelow < dAbove ? below : dAbove < dBelow ? above : ((below & 1) == 0 ? below : above);
        return sign | code;
    }

    /** Nearest bf16 bit pattern, ties to even; NaN as a quiet NaN with the input's top bits. */
    public static short bf16Encode(float x) {
        int bits = Float.floatToRawIntBits(x);
        if (Float.isNaN(x)) return (short) ((bits >>> 16) | 0x40);
        int low = bits & 0xFFFF0000;
        if (low == bits) return (short) (bits >>> 16);
        double below = Float.intBitsToFloat(low);
        // Past the largest finite bf16, IEEE rounding treats 2^128 as the next value (it becomes infinity).
        double above =
                (low & 0x7FFFFFFF) == 0x7F7F0000 ? Math.copySign(0x1p128, x) : Float.intBitsToFloat(low + 0x10000);
        double dBelow = Math.abs(x - below), dAbove = Math.abs(above - x);
        int chosen = dBelow < dAbove
                ? low
                : dAbove < dBelow ? low + 0x10000 : (((low >>> 16) & 1) == 0 ? low : low + 0x10000);
        return (short) (chosen >>> 16);
    }

    /** DeepGEMM's fp32 scale: max(amax, 1e-4) / 448, rounded up to a power of two for UE8M0; NaN stays NaN. */
    public static float fp8Scale(float amax, boolean ue8m0) {
        float s = (amax < 1e-4f ? 1e-4f : amax) / 448f;
        if (!ue8m0 || !Float.isFinite(s)) return s;
        double p = Math.pow(2, Math.ceil(Math.log(s) / Math.log(2)));
        // log2 in double can land a hair off an exact power of two: settle the boundary exactly.
        if (p / 2 >= s) p /= 2;
        if (p < s) p *= 2;
        return (float) p;
    }

    /** The values widened to double, for {@link #calcDiff}. */
    public static double[] toDouble(float[] values) {
        double[] d = new double[values.length];
        for (int i = 0; i < values.length; i++) d[i] = values[i];
        return d;
    }

    /**
     * 1 - 2 sum(xy) / sum(x^2 + y^2) in double: DeepGEMM's calc_diff. Two all-zero vectors have none (0 / 0): that is
     * an error of the test, not a NaN that every comparison with a bound would fail without saying why.
     */
    public static double calcDiff(double[] x, double[] y) {
        if (x.length != y.length)
            throw new IllegalArgumentException("calc_diff of " + x.length + " against " + y.length + " values");
        double xy = 0, xx = 0, yy = 0;
        for (int i = 0; i < x.length; i++) {
            xy += x[i] * y[i];
            xx += x[i] * x[i];
            yy += y[i] * y[i];
        }
        if (xx + yy == 0) throw new IllegalArgumentException("calc_diff of two all-zero vectors is undefined");
        return 1 - 2 * xy / (xx + yy);
    }

    /**
     * x quantized per token as the FP8 GEMM path quantizes activations (128-wide groups, fp32 scales from the float
     * values) and dequantized again: what an FP8 kernel actually multiplies. x.length is a multiple of 128.
     */
    public static double[] fp8RoundTrip(double[] x) {
        double[] q = new double[x.length];
        for (int g = 0; g < x.length; g += 128) {
            float amax = 0;
            for (int i = g; i < g + 128; i++) amax = Math.max(amax, Math.abs((float) x[i]));
            float scale = fp8Scale(amax, false);
            for (int i = g; i < g + 128; i++) q[i] = e4m3Value(e4m3Encode((float) x[i] / scale)) * scale;
        }
        return q;
    }
}
