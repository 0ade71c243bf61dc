package dev.moe4j.kernels;

import dev.moe4j.bindings.moe4j_h;
import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.Workspace;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.util.Objects;

/**
 * Unquantized GEMM {@code d = c + a·bᵀ} with fp32 accumulation ({@code moe4j_gemm_nt}), for the router gate
 * and bf16 projections. {@code a} [M, K] and {@code b} [N, K] are both F32 or both BF16, rows contiguous, any
 * K ≥ 1; bf16 products are exact in fp32. Batched: every operand of rank 3 ({@code a} [B, M, K], {@code b} [B, N, K],
 * {@code c} and {@code d} [B, M, N], any strides but the innermost), B products in one call (MLA's per-head
 * absorption), each bit for bit what a rank-2 call on its matrices gives. Errors as in {@link Fp8Gemm}.
 */
public final class Gemm {
    private Gemm() {}

    /**
     * @param a F32 or BF16 [M, K], or [B, M, K] for a batch
     * @param b [N, K] (or [B, N, K]) of a's dtype
     * @param c null, or F32 [M, N] (or [B, M, N]) to add; may be {@code d} itself for in-place accumulation
     * @param d F32 or BF16 [M, N] (or [B, M, N]), rows contiguous
     */
    public static void nt(Context ctx, Tensor a, Tensor b, Tensor c, Tensor d) {
        Objects.requireNonNull(ctx, "ctx");
        Objects.requireNonNull(a, "a");
        int rank = a.rank();
        if (rank != 2 && rank != 3) throw new IllegalArgumentException("a must have rank 2 or 3, got " + a);
        Args.tensor(a, "a", rank, DType.F32, DType.BF16);
        Args.tensor(b, "b", rank, a.dtype());
        if (c != null) Args.tensor(c, "c", rank, DType.F32);
        Args.output(d, rank);
        try (Workspace.Frame call = ctx.workspace().frame()) {
            MemorySegment cd = c == null ? MemorySegment.NULL : c.descriptor(call, "c");
            MemorySegment aDesc = a.descriptor(call, "a");
            MemorySegment bDesc = b.descriptor(call, "b");
            MemorySegment dDesc = d.descriptor(call, "d");
            ctx.call("moe4j_gemm_nt", ptr -> moe4j_h.moe4j_gemm_nt(ptr, aDesc, bDesc, cd, dDesc));
        }
    }

    /** {@code a·bᵀ} into a new row-major [M, N] tensor of dtype (F32 or BF16) allocated in arena. */
    public static Tensor nt(Context ctx, Tensor a, Tensor b, DType dtype, SegmentAllocator arena) {
        Objects.requireNonNull(a, "a");
        Objects.requireNonNull(b, "b");
        Tensor d = Tensor.allocate(arena, dtype, a.shape(0), b.shape(0));
        nt(ctx, a, b, null, d);
        return d;
    }
}
