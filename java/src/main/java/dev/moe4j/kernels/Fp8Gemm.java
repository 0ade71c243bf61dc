package dev.moe4j.kernels;

import dev.moe4j.bindings.moe4j_h;
import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.Workspace;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.QuantizedGroups;
import dev.moe4j.tensor.QuantizedTensor;
import dev.moe4j.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.lang.ref.Reference;
import java.util.Objects;

/**
 * FP8 GEMMs with DeepGEMM's semantics and layouts, so code written against DeepGEMM's tensors works unchanged.
 *
 * <p>All three compute {@code D = C + A·Bᵀ} block by block: for each 128-wide K block {@code kb}, the fp32 sum
 * of {@code A[m, k]·B[n, k]} times {@code sfa[m, kb]·sfb[n/128, kb]}, accumulated in fp32. A is quantized per
 * token ({@code blockRows} 1), B per 128x128 block ({@code blockRows} 128), K a positive multiple of 128, M and N
 * arbitrary; D is F32 or BF16 (rounded to nearest even once, at the end).
 *
 * <p>Ranks, dtypes and scale kinds are checked here ({@link IllegalArgumentException}, nulls
 * {@link NullPointerException}); shapes, strides, buffer sizes, overlaps and index ranges natively, before anything
 * is touched ({@link dev.moe4j.runtime.Moe4jException} naming the argument). A rejected call leaves D as it was.
 * Tensors over closed arenas throw {@link IllegalStateException}. Runs on the context's
 * threads; see {@link Context} for thread-safety.
 */
public final class Fp8Gemm {
    private Fp8Gemm() {}

    /**
     * {@code d = c + a·bᵀ} (DeepGEMM {@code fp8_gemm_nt}).
     *
     * @param a activations: E4M3 [M, K] with per-token scales [M, K/128]
     * @param b weights: E4M3 [N, K] with block scales [ceil(N/128), K/128]
     * @param c null, or F32 [M, N] to add; may be {@code d} itself for in-place accumulation
     * @param d F32 or BF16 [M, N], rows contiguous
     */
    public static void nt(Context ctx, QuantizedTensor a, QuantizedTensor b, Tensor c, Tensor d) {
        Objects.requireNonNull(ctx, "ctx");
        Args.quantized(a, "a", 2, 1);
        Args.quantized(b, "b", 2, QuantizedTensor.BLOCK);
        if (c != null) Args.tensor(c, "c", 2, DType.F32);
        Args.output(d, 2);
        try (Workspace.Frame call = ctx.workspace().frame()) {
            MemorySegment cd = c == null ? MemorySegment.NULL : c.descriptor(call, "c");
            MemorySegment aDesc = a.data().descriptor(call, "a");
            MemorySegment sfaDesc = a.scales().descriptor(call, "sfa");
            MemorySegment bDesc = b.data().descriptor(call, "b");
            MemorySegment sfbDesc = b.scales().descriptor(call, "sfb");
            MemorySegment dDesc = d.descriptor(call, "d");
            ctx.call(
                    "moe4j_fp8_gemm_nt",
                    ptr -> moe4j_h.moe4j_fp8_gemm_nt(ptr, aDesc, sfaDesc, bDesc, sfbDesc, cd, dDesc));
        }
    }

    /** Rows per panel of packed weights ({@link DType#E4M3_P32}): N must be a multiple of it. */
    public static final int PANEL_ROWS = 32;

    /**
     * Whether w can be packed ({@link #packWeights}): E4M3 weights with 128x128 block scales whose N is a multiple of
     * {@link #PANEL_ROWS}.
     */
    public static boolean packable(QuantizedTensor w) {
        Tensor data = w.data();
        return data.dtype() == DType.E4M3
                && w.blockRows() == QuantizedTensor.BLOCK
                && data.shape(data.rank() - 2) % PANEL_ROWS == 0;
    }

    /**
     * Weights packed for the CPU kernels ({@code moe4j_pack_fp8_weights}): the same values and scales, the data as
     * {@link DType#E4M3_P32} panels of 32 rows in a new allocation from arena. Every FP8 GEMM and the expert FFN take
     * packed weights wherever they take weights, on CPU contexts; with them each output row comes from one sequence
     * of operations whatever the batch (on the AVX-512 paths, {@link dev.moe4j.runtime.Isa#hasPackedKernels}, a sum
     * along K in order, by single elements or by bf16 pairs, faster at every row count; on the other paths the bits of
     * the unpacked weights, but slower: those kernels unpack a block at a time, 6x the time of unpacked weights for
     * an expert FFN of one row per expert on AVX2, so pack only where {@code hasPackedKernels}). CUDA contexts refuse
     * packed weights.
     *
     * @param w E4M3 [N, K] or a stack [G, N, K] with 128x128 block scales, rows contiguous, N a multiple of 32
     * @return the packed weights, with a copy of w's scales in arena: nothing of w is read afterwards (w may be a
     *     checkpoint's mapped tensor whose pages are given back once loaded)
     * @throws dev.moe4j.runtime.Moe4jException if the native side refuses (a CUDA context, N not a multiple of 32,
     *     K not a multiple of 128)
     */
    public static QuantizedTensor packWeights(Context ctx, QuantizedTensor w, SegmentAllocator arena) {
        Objects.requireNonNull(ctx, "ctx");
        Objects.requireNonNull(w, "w");
        Objects.requireNonNull(arena, "arena");
        if (w.blockRows() != QuantizedTensor.BLOCK || w.data().dtype() != DType.E4M3)
            throw new IllegalArgumentException("w must be E4M3 weights with 128x128 block scales, got " + w.data());
        Tensor data = w.data();
        long[] shape = data.shape();
        Tensor packed = Tensor.allocate(arena, DType.E4M3_P32, shape);
        int groups = data.rank() == 3 ? Math.toIntExact(shape[0]) : 1;
        for (int g = 0; g < groups; g++) {
            Tensor from = data.rank() == 3 ? data.slice(0, g, 1).view(shape[1], shape[2]) : data;
            Tensor to = data.rank() == 3 ? packed.slice(0, g, 1).view(shape[1], shape[2]) : packed;
            try (Workspace.Frame call = ctx.workspace().frame()) {
                MemorySegment wDesc = from.descriptor(call, "w");
                MemorySegment packedDesc = to.descriptor(call, "packed");
                ctx.call("moe4j_pack_fp8_weights", ptr -> moe4j_h.moe4j_pack_fp8_weights(ptr, wDesc, packedDesc));
            }
        }
        Tensor scales = w.scales();
        Tensor ownScales = Tensor.allocate(arena, scales.dtype(), scales.shape());
        ownScales.copyFrom(scales.toFloatArray());
        return new QuantizedTensor(packed, ownScales, QuantizedTensor.BLOCK);
    }

    /** {@code a·bᵀ} into a new row-major [M, N] tensor of dtype (F32 or BF16) allocated in arena. */
    public static Tensor nt(Context ctx, QuantizedTensor a, QuantizedTensor b, DType dtype, SegmentAllocator arena) {
        Objects.requireNonNull(a, "a");
        Objects.requireNonNull(b, "b");
        Tensor d = Tensor.allocate(arena, dtype, a.data().shape(0), b.data().shape(0));
        nt(ctx, a, b, null, d);
        return d;
    }

    /**
     * Grouped GEMM over the contiguous layout (DeepGEMM {@code m_grouped_fp8_gemm_nt_contiguous}): the rows of all
     * groups stacked in {@code a}, each group's rows contiguous and padded to a multiple of {@code alignment}.
     *
     * @param a E4M3 [S, K] with per-token scales [S, K/128]
     * @param b G weight groups, each E4M3 [N, K] with block scales [ceil(N/128), K/128], anywhere in memory
     * @param groupedLayout I32 [S]: each row's group in [0, G), or -1 for a padding row
     * @param alignment rows per block (DeepGEMM uses 128); S is a multiple of it and every block holds one group
     * @param d F32 or BF16 [S, N]: row r is {@code a[r]·b[groupedLayout[r]]ᵀ}; padding rows are set to zero
     */
    public static void groupedContiguous(
            Context ctx, QuantizedTensor a, QuantizedGroups b, Tensor groupedLayout, int alignment, Tensor d) {
        Objects.requireNonNull(ctx, "ctx");
        Args.quantized(a, "a", 2, 1);
        Objects.requireNonNull(b, "b");
        Args.tensor(groupedLayout, "groupedLayout", 1, DType.I32);
        Args.output(d, 2);
        try (Workspace.Frame call = ctx.workspace().frame()) {
            MemorySegment aDesc = a.data().descriptor(call, "a");
            MemorySegment sfaDesc = a.scales().descriptor(call, "sfa");
            MemorySegment bDesc = b.descriptor(call, "b");
            MemorySegment groupedLayoutDesc = groupedLayout.descriptor(call, "grouped_layout");
            MemorySegment dDesc = d.descriptor(call, "d");
            ctx.call(
                    "moe4j_grouped_fp8_gemm_contiguous",
                    ptr -> moe4j_h.moe4j_grouped_fp8_gemm_contiguous(
                            ptr, aDesc, sfaDesc, bDesc, groupedLayoutDesc, alignment, dDesc));
        } finally {
            Reference.reachabilityFence(b); // its descriptor arrays live as long as it does
        }
    }

    /**
     * Grouped GEMM over the masked layout (DeepGEMM {@code m_grouped_fp8_gemm_nt_masked}).
     *
     * @param a E4M3 [G, M_max, K] with per-token scales [G, M_max, K/128]
     * @param b G weight groups (the G of {@code a}), each E4M3 [N, K] with block scales [ceil(N/128), K/128]
     * @param maskedM I32 [G]: rows of each group to compute, in [0, M_max]
     * @param d F32 or BF16 [G, M_max, N]: rows at or past {@code maskedM[g]} are neither read nor written
     */
    public static void groupedMasked(Context ctx, QuantizedTensor a, QuantizedGroups b, Tensor maskedM, Tensor d) {
        Objects.requireNonNull(ctx, "ctx");
        Args.quantized(a, "a", 3, 1);
        Objects.requireNonNull(b, "b");
        Args.tensor(maskedM, "maskedM", 1, DType.I32);
        Args.output(d, 3);
        try (Workspace.Frame call = ctx.workspace().frame()) {
            MemorySegment aDesc = a.data().descriptor(call, "a");
            MemorySegment sfaDesc = a.scales().descriptor(call, "sfa");
            MemorySegment bDesc = b.descriptor(call, "b");
            MemorySegment maskedMDesc = maskedM.descriptor(call, "masked_m");
            MemorySegment dDesc = d.descriptor(call, "d");
            ctx.call(
                    "moe4j_grouped_fp8_gemm_masked",
                    ptr -> moe4j_h.moe4j_grouped_fp8_gemm_masked(ptr, aDesc, sfaDesc, bDesc, maskedMDesc, dDesc));
        } finally {
            Reference.reachabilityFence(b);
        }
    }
}
