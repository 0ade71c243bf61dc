package dev.moe4j.model;

import dev.moe4j.tensor.BFloat16;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * RMSNorm as DeepSeek's models apply it: {@code y = x / sqrt(mean(x²) + eps) · weight}, in fp32.
 *
 * <p>Immutable and thread-safe; the weight array is copied.
 */
public final class RmsNorm {
    private final float[] weight;
    private final float eps;

    /**
     * @param weight the per-dim gain ({@code *_norm.weight}); its length is the normalized width
     * @param eps added to the mean square ({@code rms_norm_eps}, 1e-6 in DeepSeek configs)
     */
    public RmsNorm(float[] weight, float eps) {
        if (weight.length == 0) throw new IllegalArgumentException("weight must not be empty");
        if (!(eps > 0)) throw new IllegalArgumentException("eps must be positive, got " + eps);
        this.weight = weight.clone();
        this.eps = eps;
    }

    public int dim() {
        return weight.length;
    }

    /** Normalizes {@code x[offset .. offset + dim)} in place. */
    public void apply(float[] x, int offset) {
        float sum = 0;
        for (int i = 0; i < weight.length; i++) sum += x[offset + i] * x[offset + i];
        float inv = (float) (1 / Math.sqrt(sum / weight.length + eps));
        for (int i = 0; i < weight.length; i++) x[offset + i] = x[offset + i] * inv * weight[i];
    }

    /**
     * Normalizes each row of x into out.
     *
     * @param x F32 [T, dim], contiguous
     * @param out BF16 or F32 [T, dim], contiguous
     */
    public void apply(Tensor x, Tensor out) {
        if (x.dtype() != DType.F32 || x.rank() != 2 || x.shape(1) != weight.length || !x.isContiguous())
            throw new IllegalArgumentException("x must be a contiguous F32 [T, " + weight.length + "], got " + x);
        if (out.rank() != 2
                || out.shape(0) != x.shape(0)
                || out.shape(1) != weight.length
                || !out.isContiguous()
                || (out.dtype() != DType.BF16 && out.dtype() != DType.F32))
            throw new IllegalArgumentException(
                    "out must be a contiguous BF16 or F32 [" + x.shape(0) + ", " + weight.length + "], got " + out);
        int t = Math.toIntExact(x.shape(0)), h = weight.length;
        float[] row = new float[h];
        MemorySegment src = x.segment(), dst = out.segment();
        boolean bf16 = out.dtype() == DType.BF16;
        for (int i = 0; i < t; i++) {
            MemorySegment.copy(src, ValueLayout.JAVA_FLOAT, (long) i * h * 4, row, 0, h);
            apply(row, 0);
            if (bf16) {
                for (int d = 0; d < h; d++)
                    dst.setAtIndex(ValueLayout.JAVA_SHORT, (long) i * h + d, BFloat16.fromFloat(row[d]));
            } else {
                MemorySegment.copy(row, 0, dst, ValueLayout.JAVA_FLOAT, (long) i * h * 4, h);
            }
        }
    }
}
