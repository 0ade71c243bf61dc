package dev.moe4j.model;

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
}
