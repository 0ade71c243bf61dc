package dev.moe4j.model;

import dev.moe4j.kernels.Cast;
import dev.moe4j.kernels.Fp8Gemm;
import dev.moe4j.kernels.Gemm;
import dev.moe4j.kernels.Quantization;
import dev.moe4j.kernels.ScaleFormat;
import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.Workspace;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.QuantizedTensor;
import dev.moe4j.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.SegmentAllocator;
import java.util.Objects;

/**
 * A bias-free linear layer {@code y = x·Wᵀ} with W [out, in] stored the way DeepSeek checkpoints store it: FP8 with
 * 128x128 block scales (V3's {@code weight} + {@code weight_scale_inv}) or BF16 (V2).
 *
 * <p>FP8 weights take the DeepGEMM path: x is quantized per token (128-wide groups, fp32 scales) and multiplied
 * with {@link Fp8Gemm#nt}. BF16 weights take {@link Gemm#nt} on bf16 activations (F32 input is rounded to bf16
 * first, as the bf16 reference model would hold it). Either way products accumulate in fp32.
 *
 * <p>Immutable; the weight memory belongs to the caller's arena. {@link #apply} is safe to call from several threads
 * at once with their own outputs.
 */
public final class Linear {
    private final Tensor bf16;
    private final QuantizedTensor fp8;

    private Linear(Tensor bf16, QuantizedTensor fp8) {
        this.bf16 = bf16;
        this.fp8 = fp8;
    }

    /** A BF16 weight [out, in]. */
    public static Linear bf16(Tensor weight) {
        Objects.requireNonNull(weight, "weight");
        if (weight.dtype() != DType.BF16 || weight.rank() != 2)
            throw new IllegalArgumentException("weight must be BF16 [out, in], got " + weight);
        return new Linear(weight, null);
    }

    /**
     * An FP8 weight: E4M3 [out, in] with F32 block scales [ceil(out/128), in/128]; {@code in} a multiple of 128.
     */
    public static Linear fp8(QuantizedTensor weight) {
        Objects.requireNonNull(weight, "weight");
        if (weight.data().rank() != 2 || weight.blockRows() != QuantizedTensor.BLOCK)
            throw new IllegalArgumentException("weight must be E4M3 [out, in] with 128x128 block scales, got "
                    + weight.data() + " with " + weight.blockRows() + "-row scale blocks");
        if (weight.data().shape(1) % QuantizedTensor.BLOCK != 0)
            throw new IllegalArgumentException(
                    "an FP8 weight's input features must be a multiple of 128, got " + weight.data());
        return new Linear(null, weight);
    }

    public long inFeatures() {
        return weight().shape(1);
    }

    public long outFeatures() {
        return weight().shape(0);
    }

    public boolean isFp8() {
        return fp8 != null;
    }

    /**
     * {@code out = x·Wᵀ}.
     *
     * @param x F32 or BF16 [T, in], rows contiguous
     * @param out F32 or BF16 [T, out], rows contiguous (a column slice of a wider tensor is fine)
     */
    public void apply(Context ctx, Tensor x, Tensor out) {
        Objects.requireNonNull(x, "x");
        if (x.rank() != 2 || x.shape(1) != inFeatures())
            throw new IllegalArgumentException("x must be [T, " + inFeatures() + "], got " + x);
        try (Workspace.Frame scratch = ctx.workspace().frame()) {
            if (fp8 != null) {
                Fp8Gemm.nt(ctx, Quantization.perToken(ctx, x, ScaleFormat.FP32, scratch), fp8, null, out);
            } else {
                Tensor xb = x;
                if (x.dtype() != DType.BF16) {
                    xb = Tensor.allocate(scratch, DType.BF16, x.shape());
                    Cast.apply(ctx, x, xb);
                }
                Gemm.nt(ctx, xb, bf16, null, out);
            }
        }
    }

    /** {@code x·Wᵀ} into a new F32 or BF16 [T, out] tensor allocated in arena. */
    public Tensor apply(Context ctx, Tensor x, DType dtype, SegmentAllocator arena) {
        Tensor out = Tensor.allocate(arena, dtype, x.shape(0), outFeatures());
        apply(ctx, x, out);
        return out;
    }

    /** The weight in BF16 [out, in] (FP8 weights dequantized), allocated in arena. */
    public Tensor toBf16(Context ctx, Arena arena) {
        if (bf16 != null) return bf16;
        return Quantization.dequantize(ctx, fp8, DType.BF16, arena);
    }

    /** Bytes of the weight (and its scales): what one application reads. */
    public long weightBytes() {
        return fp8 != null ? bytes(fp8.data()) + bytes(fp8.scales()) : bytes(bf16);
    }

    private static long bytes(Tensor t) {
        return t.elementCount() * t.dtype().byteSize();
    }

    /** The FP8 weight, or null for a BF16 one. */
    QuantizedTensor fp8Weight() {
        return fp8;
    }

    private Tensor weight() {
        return bf16 != null ? bf16 : fp8.data();
    }
}
