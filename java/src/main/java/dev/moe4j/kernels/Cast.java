package dev.moe4j.kernels;

import dev.moe4j.bindings.moe4j_h;
import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.Workspace;
import dev.moe4j.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.util.Objects;

/**
 * Element-wise conversion between F32, BF16 and E4M3 ({@code moe4j_cast}): round to nearest even; E4M3
 * saturates to +-448 (infinities too) and encodes NaN as 0x7F. Source and destination have the same shape
 * (rank 1 to 4, rows contiguous) and must not overlap. Errors as in {@link Quantization}.
 */
public final class Cast {
    private Cast() {}

    public static void apply(Context ctx, Tensor src, Tensor dst) {
        Objects.requireNonNull(ctx, "ctx");
        Objects.requireNonNull(src, "src");
        Objects.requireNonNull(dst, "dst");
        try (Workspace.Frame call = ctx.workspace().frame()) {
            MemorySegment srcDesc = src.descriptor(call, "src");
            MemorySegment dstDesc = dst.descriptor(call, "dst");
            ctx.call("moe4j_cast", ptr -> moe4j_h.moe4j_cast(ptr, srcDesc, dstDesc));
        }
    }
}
