package dev.moe4j.kernels;

import dev.moe4j.bindings.moe4j_h;
import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.Workspace;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.QuantizedTensor;
import dev.moe4j.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.util.Objects;

/**
 * FP8 quantization with DeepGEMM's scaling recipes.
 *
 * <ul>
 *   <li>Per token (activations): one scale per row and 128 consecutive columns.
 *   <li>Per block (weights): one scale per 128x128 block, stored as HF checkpoints' {@code weight_scale_inv}.
 * </ul>
 *
 * For each block: {@code amax = max(max|x|, 1e-4)}, {@code s = amax / 448} (rounded up to a power of two for
 * {@link ScaleFormat#UE8M0}), {@code q = e4m3(x * (1/s))} rounded to nearest even; dequantization is
 * {@code q * s}. Edge blocks may be partial. A block holding NaN gets a NaN scale and NaN codes.
 *
 * <p>Ranks and dtypes are checked here ({@link IllegalArgumentException}, nulls {@link NullPointerException});
 * shapes, strides, buffer sizes and overlaps natively, where a violation throws
 * {@link dev.moe4j.runtime.Moe4jException} naming the argument and nothing is written. Tensors whose arena is
 * closed throw {@link IllegalStateException}. Runs on the context's threads; see {@link Context} for
 * thread-safety.
 */
public final class Quantization {
    private Quantization() {}

    /**
     * Per-token quantization into caller-provided tensors.
     *
     * @param x F32 or BF16 [M, K], rows contiguous
     * @param q E4M3 [M, K], rows contiguous
     * @param scales F32 [M, ceil(K/128)], any strides (DeepGEMM's column-major layout included)
     */
    public static void perToken(Context ctx, Tensor x, Tensor q, Tensor scales, ScaleFormat format) {
        requireNonNull(ctx, format);
        Args.tensor(x, "x", 2, DType.F32, DType.BF16);
        Args.tensor(q, "q", 2, DType.E4M3);
        Args.tensor(scales, "scales", 2, DType.F32);
        try (Workspace.Frame call = ctx.workspace().frame()) {
            MemorySegment xDesc = x.descriptor(call, "x");
            MemorySegment qDesc = q.descriptor(call, "q");
            MemorySegment scalesDesc = scales.descriptor(call, "scales");
            ctx.call(
                    "moe4j_quantize_fp8_per_token",
                    ptr -> moe4j_h.moe4j_quantize_fp8_per_token(ptr, xDesc, qDesc, scalesDesc, format.code()));
        }
    }

    /** Per-token quantization into new row-major tensors allocated in arena. */
    public static QuantizedTensor perToken(Context ctx, Tensor x, ScaleFormat format, SegmentAllocator arena) {
        QuantizedTensor out = allocate(x, 1, arena);
        perToken(ctx, x, out.data(), out.scales(), format);
        return out;
    }

    /**
     * 128x128 block quantization into caller-provided tensors.
     *
     * @param w F32 or BF16 [N, K], rows contiguous
     * @param q E4M3 [N, K], rows contiguous
     * @param scaleInv F32 [ceil(N/128), ceil(K/128)], any strides
     */
    public static void perBlock(Context ctx, Tensor w, Tensor q, Tensor scaleInv, ScaleFormat format) {
        requireNonNull(ctx, format);
        Args.tensor(w, "w", 2, DType.F32, DType.BF16);
        Args.tensor(q, "q", 2, DType.E4M3);
        Args.tensor(scaleInv, "scaleInv", 2, DType.F32);
        try (Workspace.Frame call = ctx.workspace().frame()) {
            MemorySegment wDesc = w.descriptor(call, "w");
            MemorySegment qDesc = q.descriptor(call, "q");
            MemorySegment scaleInvDesc = scaleInv.descriptor(call, "scale_inv");
            ctx.call(
                    "moe4j_quantize_fp8_per_block",
                    ptr -> moe4j_h.moe4j_quantize_fp8_per_block(ptr, wDesc, qDesc, scaleInvDesc, format.code()));
        }
    }

    /** 128x128 block quantization into new row-major tensors allocated in arena. */
    public static QuantizedTensor perBlock(Context ctx, Tensor w, ScaleFormat format, SegmentAllocator arena) {
        QuantizedTensor out = allocate(w, QuantizedTensor.BLOCK, arena);
        perBlock(ctx, w, out.data(), out.scales(), format);
        return out;
    }

    /**
     * {@code out = q.data * q.scales} per block.
     *
     * @param out F32 or BF16 with q.data's shape, rows contiguous
     */
    public static void dequantize(Context ctx, QuantizedTensor q, Tensor out) {
        Objects.requireNonNull(ctx, "ctx");
        Objects.requireNonNull(q, "q");
        Args.tensor(out, "out", 2, DType.F32, DType.BF16);
        try (Workspace.Frame call = ctx.workspace().frame()) {
            MemorySegment qDesc = q.data().descriptor(call, "q");
            MemorySegment scalesDesc = q.scales().descriptor(call, "scales");
            MemorySegment outDesc = out.descriptor(call, "out");
            ctx.call(
                    "moe4j_dequantize_fp8",
                    ptr -> moe4j_h.moe4j_dequantize_fp8(ptr, qDesc, scalesDesc, q.blockRows(), outDesc));
        }
    }

    /** Dequantizes into a new row-major tensor of dtype (F32 or BF16) allocated in arena. */
    public static Tensor dequantize(Context ctx, QuantizedTensor q, DType dtype, SegmentAllocator arena) {
        Tensor out = Tensor.allocate(arena, dtype, q.data().shape());
        dequantize(ctx, q, out);
        return out;
    }

    private static QuantizedTensor allocate(Tensor x, int blockRows, SegmentAllocator arena) {
        Objects.requireNonNull(x, "x");
        Objects.requireNonNull(arena, "arena");
        if (x.rank() != 2) throw new IllegalArgumentException("expected a rank-2 tensor, got " + x);
        long rows = x.shape(0), cols = x.shape(1);
        Tensor q = Tensor.allocate(arena, DType.E4M3, rows, cols);
        Tensor scales =
                Tensor.allocate(arena, DType.F32, ceilDiv(rows, blockRows), ceilDiv(cols, QuantizedTensor.BLOCK));
        return new QuantizedTensor(q, scales, blockRows);
    }

    private static long ceilDiv(long a, long b) {
        return (a + b - 1) / b;
    }

    private static void requireNonNull(Context ctx, ScaleFormat format) {
        Objects.requireNonNull(ctx, "ctx");
        Objects.requireNonNull(format, "format");
    }
}
