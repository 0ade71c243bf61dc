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
 * The int8 GEMM of the LM head ({@code moe4j_q8_gemm_nt}, {@code moe4j_quantize_q8_weights}): weights quantized to
 * int8 once, one scale per row; activations quantized to int8 per row and 128-wide block inside each call; exact int32
 * dot products per block (AVX-512 VNNI {@code vpdpbusd}, twice the products per instruction of the bf16 dot product
 * the FP8 GEMM widens its codes to, and no widening).
 *
 * <p>Quantization of a vector v (a weight row, or one 128-wide block of an activation row): {@code amax = max|v|},
 * codes {@code rint(v * (127 / amax))} in [-127, 127], scale {@code amax / 127}, float operations; all zeros give codes
 * 0 and scale 0, a NaN or infinity codes 0 and scale NaN. Then {@code d[m, n] = sw[n] * Σ_b sa[m, b] * I(m, n, b)},
 * the integer block sums I exact and the block terms added in order by fused multiply-adds into an fp32 accumulator:
 * the same bits on every CPU path and on CUDA, and a row's result depends on nothing but the row. Relative to a
 * float product of the unquantized weights the error is about 2^-8 of the typical output (per-row weight scales are
 * finer than FP8's 3-bit mantissa: {@code moe4j_bench q8} prints both).
 *
 * <p>All tensors live in the memory of ctx's device. Errors: {@link dev.moe4j.runtime.Moe4jException} naming the
 * argument; nothing is written then. Not thread-safe beyond what {@link Context} allows.
 */
public final class Q8Gemm {
    private Q8Gemm() {}

    /** Rows per panel of {@link DType#Q8_P16} weights: N must be a multiple of it. */
    public static final int PANEL_ROWS = 16;

    /**
     * Int8 weights as {@link #quantizeWeights} writes them.
     *
     * @param codes Q8_P16 [N, K], N a multiple of 16, K a multiple of 128
     * @param scales F32 [N], contiguous: row n's values are {@code (code - 128) * scales[n]}
     */
    public record Weights(Tensor codes, Tensor scales) {
        public Weights {
            Args.tensor(codes, "codes", 2, DType.Q8_P16);
            Args.tensor(scales, "scales", 1, DType.F32);
            if (scales.shape(0) != codes.shape(0))
                throw new IllegalArgumentException(
                        "scales " + scales + " must have one entry per row of codes " + codes);
        }

        public long rows() {
            return codes.shape(0);
        }

        public long width() {
            return codes.shape(1);
        }

        /**
         * Rows [start, start + count) as weights of their own, sharing this memory (the panels of 16 rows lie one after
         * another, so whole panels are a slice of codes).
         *
         * @throws IllegalArgumentException if start or count is not a multiple of {@link #PANEL_ROWS}, count is not
         *     positive, or the rows are out of range
         */
        public Weights rows(long start, long count) {
            if (start % PANEL_ROWS != 0 || count % PANEL_ROWS != 0 || count <= 0)
                throw new IllegalArgumentException("int8 weight rows must start at and count a positive multiple of "
                        + PANEL_ROWS + ", got start " + start + ", count " + count);
            if (start < 0 || start + count > rows())
                throw new IllegalArgumentException(
                        "rows [" + start + ", " + (start + count) + ") out of range for " + codes);
            return new Weights(codes.slice(0, start, count), scales.slice(0, start, count));
        }

        /** Bytes a product reads: codes and scales. */
        public long bytes() {
            return codes.elementCount() + 4 * scales.elementCount();
        }
    }

    /** Whether a [N, K] weight can be quantized: N a multiple of 16, K a positive multiple of 128. */
    public static boolean quantizable(Tensor w) {
        return w.rank() == 2 && w.shape(0) % PANEL_ROWS == 0 && w.shape(1) > 0 && w.shape(1) % 128 == 0;
    }

    /**
     * w quantized to int8 with one scale per row, into new host tensors from allocator.
     *
     * @param w F32 or BF16 [N, K] in host memory, rows contiguous, N a multiple of 16, K a positive multiple of 128
     */
    public static Weights quantizeWeights(Context ctx, Tensor w, SegmentAllocator allocator) {
        Objects.requireNonNull(w, "w");
        Objects.requireNonNull(allocator, "allocator");
        if (!quantizable(w))
            throw new IllegalArgumentException(
                    "w must be [N, K] with N a multiple of 16 and K a positive multiple of 128, got " + w);
        Weights q = new Weights(
                Tensor.allocate(allocator, DType.Q8_P16, w.shape(0), w.shape(1)),
                Tensor.allocate(allocator, DType.F32, w.shape(0)));
        quantizeWeights(ctx, w, q);
        return q;
    }

    /**
     * w quantized to int8 with one scale per row into out, all in the memory of ctx's device.
     *
     * @param w F32 or BF16 [N, K], rows contiguous, N a multiple of 16, K a positive multiple of 128
     * @param out weights of w's shape, overlapping neither w nor each other
     */
    public static void quantizeWeights(Context ctx, Tensor w, Weights out) {
        Objects.requireNonNull(ctx, "ctx");
        Args.tensor(w, "w", 2, DType.F32, DType.BF16);
        Objects.requireNonNull(out, "out");
        try (Workspace.Frame call = ctx.workspace().frame()) {
            MemorySegment wDesc = w.descriptor(call, "w");
            MemorySegment qDesc = out.codes().descriptor(call, "q");
            MemorySegment scalesDesc = out.scales().descriptor(call, "scales");
            ctx.call(
                    "moe4j_quantize_q8_weights",
                    ptr -> moe4j_h.moe4j_quantize_q8_weights(ptr, wDesc, qDesc, scalesDesc));
        }
    }

    /**
     * {@code d = a·bᵀ} as the class doc says.
     *
     * @param a F32 or BF16 [M, K], rows contiguous (a view of wider rows is fine)
     * @param d F32 [M, N], rows contiguous, overlapping none of the inputs
     */
    public static void nt(Context ctx, Tensor a, Weights b, Tensor d) {
        Objects.requireNonNull(ctx, "ctx");
        Args.tensor(a, "a", 2, DType.F32, DType.BF16);
        Objects.requireNonNull(b, "b");
        Args.tensor(d, "d", 2, DType.F32);
        try (Workspace.Frame call = ctx.workspace().frame()) {
            MemorySegment aDesc = a.descriptor(call, "a");
            MemorySegment bDesc = b.codes().descriptor(call, "b");
            MemorySegment sfbDesc = b.scales().descriptor(call, "sfb");
            MemorySegment dDesc = d.descriptor(call, "d");
            ctx.call("moe4j_q8_gemm_nt", ptr -> moe4j_h.moe4j_q8_gemm_nt(ptr, aDesc, bDesc, sfbDesc, dDesc));
        }
    }
}
