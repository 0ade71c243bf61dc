package dev.moe4j.model;

import dev.moe4j.kernels.Norm;
import dev.moe4j.runtime.Context;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.Tensor;
import java.lang.foreign.Arena;

/**
 * RMSNorm as DeepSeek's models apply it: {@code y = x / sqrt(mean(x²) + eps) · weight}, in fp32, run natively
 * ({@link Norm#rms}: a row's result depends on the row alone).
 *
 * <p>Immutable and thread-safe; the weight is copied into host memory that lives as long as the norm is reachable, or
 * into a device's memory by {@link #to}.
 */
public final class RmsNorm {
    private final Tensor weight;
    private final float eps;

    /**
     * @param weight the per-dim gain ({@code *_norm.weight}); its length is the normalized width
     * @param eps added to the mean square ({@code rms_norm_eps}, 1e-6 in DeepSeek configs)
     */
    public RmsNorm(float[] weight, float eps) {
        if (weight.length == 0) throw new IllegalArgumentException("weight must not be empty");
        if (!(eps > 0) || Float.isInfinite(eps))
            throw new IllegalArgumentException("eps must be positive and finite, got " + eps);
        this.weight = Tensor.fromFloats(Arena.ofAuto(), DType.F32, weight, weight.length);
        this.eps = eps;
    }

    private RmsNorm(Tensor weight, float eps) {
        this.weight = weight;
        this.eps = eps;
    }

    /** This norm with its weight in store's device memory, for contexts of that device. */
    public RmsNorm to(DeviceStore store) {
        return new RmsNorm(store.upload(weight), eps);
    }

    public int dim() {
        return Math.toIntExact(weight.shape(0));
    }

    /**
     * Normalizes each row of x into y.
     *
     * @param x F32 or BF16 [T, dim], rows may be strided (innermost stride 1)
     * @param y BF16 or F32 [T, dim], innermost stride 1, overlapping x nowhere
     * @throws IllegalArgumentException if a width is not dim
     * @throws dev.moe4j.runtime.Moe4jException if the native call rejects a shape, dtype or overlap
     */
    public void apply(Context ctx, Tensor x, Tensor y) {
        checkWidth(x, "x");
        checkWidth(y, "y");
        Norm.rms(ctx, x, null, weight, eps, null, y);
    }

    /**
     * The residual add and the norm in one pass: {@code sum = x + residual}, {@code y = norm(sum)}.
     *
     * @param x F32 or BF16 [T, dim]
     * @param residual null, or F32 [T, dim]
     * @param sum null, or F32 [T, dim] receiving {@code x + residual} (x when residual is null); may be x or residual
     *     itself
     * @param y BF16 or F32 [T, dim], overlapping no other argument
     * @throws IllegalArgumentException if a width is not dim
     * @throws dev.moe4j.runtime.Moe4jException if the native call rejects a shape, dtype or overlap
     */
    public void apply(Context ctx, Tensor x, Tensor residual, Tensor sum, Tensor y) {
        checkWidth(x, "x");
        checkWidth(y, "y");
        Norm.rms(ctx, x, residual, weight, eps, sum, y);
    }

    private void checkWidth(Tensor t, String name) {
        if (t.rank() != 2 || t.shape(1) != weight.shape(0))
            throw new IllegalArgumentException(name + " must be [T, " + weight.shape(0) + "], got " + t);
    }
}
