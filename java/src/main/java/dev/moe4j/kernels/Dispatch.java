package dev.moe4j.kernels;

import dev.moe4j.bindings.moe4j_h;
import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.Workspace;
import dev.moe4j.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.util.Objects;

/**
 * Expert-parallel dispatch and combine on one device's memory, DeepEP's two halves: {@link #gather} collects the
 * token rows a device needs, {@link #combine} adds the expert outputs back per token. All tensors live in the
 * memory of ctx's device. Errors: {@link dev.moe4j.runtime.Moe4jException} naming the argument (an index value out of
 * range, a shape or dtype mismatch, overlapping output); nothing is written then.
 */
public final class Dispatch {
    private Dispatch() {}

    /**
     * {@code dst[r] = src[index[r]]}, or zeros where {@code index[r] == -1}; bytes are copied, so FP8 codes and
     * their scales are gathered by two calls with one index.
     *
     * @param src [T, C], any dtype, rows contiguous
     * @param index I32 [R], values in [-1, T)
     * @param dst [R, C], src's dtype, rows contiguous
     */
    public static void gather(Context ctx, Tensor src, Tensor index, Tensor dst) {
        Objects.requireNonNull(ctx, "ctx");
        Objects.requireNonNull(src, "src");
        Objects.requireNonNull(index, "index");
        Objects.requireNonNull(dst, "dst");
        try (Workspace.Frame call = ctx.workspace().frame()) {
            MemorySegment srcDesc = src.descriptor(call, "src");
            MemorySegment indexDesc = index.descriptor(call, "index");
            MemorySegment dstDesc = dst.descriptor(call, "dst");
            ctx.call("moe4j_gather_rows", ptr -> moe4j_h.moe4j_gather_rows(ptr, srcDesc, indexDesc, dstDesc));
        }
    }

    /**
     * {@code out[t] = base[t] + Σ_j weights[t, j] · rows[index[t, j]]}, j in order, one fused multiply-add per term
     * in fp32; index -1 adds nothing. The fixed order makes the sums independent of where the rows were computed.
     *
     * @param rows BF16 or F32 [R, H], rows contiguous
     * @param index I32 [T, k], values in [-1, R)
     * @param weights F32 [T, k]
     * @param base F32 [T, H], or null for zeros
     * @param out F32 [T, H], rows contiguous, overlapping no input
     */
    public static void combine(Context ctx, Tensor rows, Tensor index, Tensor weights, Tensor base, Tensor out) {
        Objects.requireNonNull(ctx, "ctx");
        Objects.requireNonNull(rows, "rows");
        Objects.requireNonNull(index, "index");
        Objects.requireNonNull(weights, "weights");
        Objects.requireNonNull(out, "out");
        try (Workspace.Frame call = ctx.workspace().frame()) {
            MemorySegment rowsDesc = rows.descriptor(call, "rows");
            MemorySegment indexDesc = index.descriptor(call, "index");
            MemorySegment weightsDesc = weights.descriptor(call, "weights");
            MemorySegment baseDesc = base == null ? MemorySegment.NULL : base.descriptor(call, "base");
            MemorySegment outDesc = out.descriptor(call, "out");
            ctx.call(
                    "moe4j_combine_rows",
                    ptr -> moe4j_h.moe4j_combine_rows(ptr, rowsDesc, indexDesc, weightsDesc, baseDesc, outDesc));
        }
    }
}
