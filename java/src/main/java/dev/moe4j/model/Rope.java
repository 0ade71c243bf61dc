package dev.moe4j.model;

import dev.moe4j.kernels.RotaryEmbedding;
import dev.moe4j.runtime.Context;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.Tensor;
import java.lang.foreign.Arena;

/**
 * Rotary position embedding of DeepSeek MLA's RoPE dims, with optional YaRN context extension, computed as
 * DeepSeek-V3's reference ({@code precompute_freqs_cis}, {@code apply_rotary_emb}) computes it: float32 inverse
 * frequencies {@code theta^(-2i/dim)}, blended toward {@code freq / factor} over the YaRN correction range, and
 * dims rotated as interleaved pairs {@code (x[2i], x[2i+1])} by angle {@code position · freq[i]} (float32 product).
 *
 * <p>YaRN also sharpens attention: the softmax scale is multiplied by {@link #softmaxScaleFactor()} =
 * {@code mscale(factor, mscale_all_dim)²}, {@code mscale(s, m) = 0.1·m·ln(s) + 1} (1 for {@code s ≤ 1}), and the
 * rotation by {@code mscale(factor, mscale) / mscale(factor, mscale_all_dim)} (1 in every DeepSeek config, where the
 * two are equal, which makes this HF's {@code DeepseekV2YarnRotaryEmbedding} and V3's reference at once).
 *
 * <p>The frequencies are computed here; the rotation runs natively ({@link RotaryEmbedding}), with the frequency table
 * in host memory or, after {@link #to}, in a device's.
 *
 * <p>Immutable and thread-safe.
 */
public final class Rope {
    /**
     * HF's {@code rope_scaling} of type yarn.
     *
     * @param factor context extension factor (40 for V2 and V3)
     * @param originalMaxPositions the pre-extension context length (4096)
     * @param betaFast rotations where interpolation stops (32)
     * @param betaSlow rotations where interpolation is complete (1)
     * @param mscale attention temperature coefficient of the rotation (0.707 for V2, 1 for V3)
     * @param mscaleAllDim attention temperature coefficient of the softmax scale
     */
    public record Yarn(
            double factor,
            int originalMaxPositions,
            double betaFast,
            double betaSlow,
            double mscale,
            double mscaleAllDim) {
        public Yarn {
            if (!(factor > 0)) throw new IllegalArgumentException("yarn factor must be positive, got " + factor);
            if (originalMaxPositions <= 0)
                throw new IllegalArgumentException(
                        "yarn original_max_position_embeddings must be positive, got " + originalMaxPositions);
        }
    }

    private final int dim;
    private final float[] freqs;
    private final Tensor freqTensor; // F32 [dim / 2], the kernel's copy of freqs
    private final float rotationScale;
    private final double softmaxScaleFactor;

    private Rope(Rope host, Tensor freqTensor) {
        this.dim = host.dim;
        this.freqs = host.freqs;
        this.freqTensor = freqTensor;
        this.rotationScale = host.rotationScale;
        this.softmaxScaleFactor = host.softmaxScaleFactor;
    }

    /** This embedding with its frequency table in store's device memory, for contexts of that device. */
    public Rope to(DeviceStore store) {
        return new Rope(this, store.upload(freqTensor));
    }

    /**
     * @param dim rotated dims (even; 64 in DeepSeek MLA)
     * @param theta RoPE base ({@code rope_theta}, 10000)
     * @param yarn YaRN scaling, or null for plain RoPE
     */
    public Rope(int dim, double theta, Yarn yarn) {
        if (dim <= 0 || dim % 2 != 0) throw new IllegalArgumentException("dim must be positive and even, got " + dim);
        if (!(theta > 1)) throw new IllegalArgumentException("theta must be > 1, got " + theta);
        this.dim = dim;
        int half = dim / 2;
        freqs = new float[half];
        for (int i = 0; i < half; i++) freqs[i] = (float) (1.0 / Math.pow(theta, (float) (2 * i) / dim));
        if (yarn == null) {
            rotationScale = 1;
            softmaxScaleFactor = 1;
            freqTensor = Tensor.fromFloats(Arena.ofAuto(), DType.F32, freqs, half);
            return;
        }
        int low =
                Math.max((int) Math.floor(correctionDim(yarn.betaFast(), dim, theta, yarn.originalMaxPositions())), 0);
        int high = Math.min(
                (int) Math.ceil(correctionDim(yarn.betaSlow(), dim, theta, yarn.originalMaxPositions())), dim - 1);
        float span = low == high ? 0.001f : high - low;
        for (int i = 0; i < half; i++) {
            float ramp = Math.clamp((i - low) / span, 0f, 1f);
            float smooth = 1 - ramp;
            freqs[i] = freqs[i] / (float) yarn.factor() * (1 - smooth) + freqs[i] * smooth;
        }
        double all = mscale(yarn.factor(), yarn.mscaleAllDim());
        rotationScale = (float) (mscale(yarn.factor(), yarn.mscale()) / all);
        softmaxScaleFactor = all * all;
        freqTensor = Tensor.fromFloats(Arena.ofAuto(), DType.F32, freqs, half);
    }

    /** The dimension count whose rotation completes {@code rotations} turns over {@code positions}. */
    private static double correctionDim(double rotations, int dim, double theta, int positions) {
        return dim * Math.log(positions / (rotations * 2 * Math.PI)) / (2 * Math.log(theta));
    }

    private static double mscale(double factor, double m) {
        return factor <= 1 ? 1 : 0.1 * m * Math.log(factor) + 1;
    }

    public int dim() {
        return dim;
    }

    /** The inverse frequency of pair i, after YaRN blending. */
    public float frequency(int i) {
        return freqs[i];
    }

    /** What the attention softmax scale {@code head_dim^-0.5} is multiplied by. */
    public double softmaxScaleFactor() {
        return softmaxScaleFactor;
    }

    /** What cos and sin are multiplied by: YaRN's {@code mscale(factor, mscale) / mscale(factor, mscale_all_dim)}. */
    public float rotationScale() {
        return rotationScale;
    }

    /**
     * Rotates the pairs of each token's heads by the token's position ({@link RotaryEmbedding#apply}).
     *
     * @param x F32 or BF16 [T, H, dim], innermost stride 1, in the memory of ctx's device (as positions and out)
     * @param positions I32 [T], values ≥ 0
     * @param out F32 or BF16 [T, H, dim], innermost stride 1; may be x itself
     * @throws IllegalArgumentException if x's last extent is not dim
     * @throws dev.moe4j.runtime.Moe4jException if the native call rejects a shape, dtype, position or overlap
     */
    public void apply(Context ctx, Tensor x, Tensor positions, Tensor out) {
        if (x.rank() != 3 || x.shape(2) != dim)
            throw new IllegalArgumentException("x must be [T, H, " + dim + "], got " + x);
        RotaryEmbedding.apply(ctx, x, positions, freqTensor, rotationScale, out);
    }
}
