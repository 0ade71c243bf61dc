package dev.moe4j.kernels;

import dev.moe4j.bindings.moe4j_h;
import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.Workspace;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.util.Objects;

/**
 * RMSNorm fused with the residual add before it and the cast after it ({@code moe4j_rms_norm}), over rows of
 * [T, D]: {@code s = x + residual}, {@code y = s / sqrt(sum(s²) / D + eps) · weight}, in fp32. The sum of squares is
 * one fixed sequence of operations on every CPU path and on CUDA (16 lanes by fused multiply-adds, lane l taking
 * elements l, l + 16, ..., then added pairwise l + 8, + 4, + 2, + 1), and {@code 1 / sqrt} is taken in double from
 * the float mean and rounded to float, so a row's result depends on the row alone: batch invariance holds.
 *
 * <p>Rows may be strided (the first 512 dims of [T, 576] rows, say); every operand's innermost stride is 1. All
 * tensors live in the memory of ctx's device. Errors: {@link dev.moe4j.runtime.Moe4jException} naming the argument
 * (dtype, shape, overlap, eps); nothing is written then.
 */
public final class Norm {
    private Norm() {}

    /**
     * @param x F32 or BF16 [T, D]
     * @param residual null, or F32 [T, D] added to x before the norm
     * @param weight F32 [D], contiguous
     * @param eps added to the mean square; positive and finite
     * @param sumOut null, or F32 [T, D] receiving {@code x + residual} (x when residual is null); may be the very
     *     same tensor as x or residual (in place), must not overlap anything else
     * @param y F32 or BF16 [T, D], overlapping no other argument
     */
    public static void rms(Context ctx, Tensor x, Tensor residual, Tensor weight, float eps, Tensor sumOut, Tensor y) {
        Objects.requireNonNull(ctx, "ctx");
        Args.tensor(x, "x", 2, DType.F32, DType.BF16);
        if (residual != null) Args.tensor(residual, "residual", 2, DType.F32);
        Args.tensor(weight, "weight", 1, DType.F32);
        if (sumOut != null) Args.tensor(sumOut, "sumOut", 2, DType.F32);
        Args.tensor(y, "y", 2, DType.F32, DType.BF16);
        try (Workspace.Frame call = ctx.workspace().frame()) {
            MemorySegment xDesc = x.descriptor(call, "x");
            MemorySegment residualDesc = residual == null ? MemorySegment.NULL : residual.descriptor(call, "residual");
            MemorySegment weightDesc = weight.descriptor(call, "weight");
            MemorySegment sumOutDesc = sumOut == null ? MemorySegment.NULL : sumOut.descriptor(call, "sum_out");
            MemorySegment yDesc = y.descriptor(call, "y");
            ctx.call(
                    "moe4j_rms_norm",
                    ptr -> moe4j_h.moe4j_rms_norm(ptr, xDesc, residualDesc, weightDesc, eps, sumOutDesc, yDesc));
        }
    }
}
