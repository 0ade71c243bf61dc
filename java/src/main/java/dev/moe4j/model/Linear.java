package dev.moe4j.model;

import dev.moe4j.kernels.Cast;
import dev.moe4j.kernels.Fp8Gemm;
import dev.moe4j.kernels.Gemm;
import dev.moe4j.kernels.Prefetch;
import dev.moe4j.kernels.Q8Gemm;
import dev.moe4j.kernels.Quantization;
import dev.moe4j.kernels.ScaleFormat;
import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.Workspace;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.QuantizedTensor;
import dev.moe4j.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Objects;

/**
 * A bias-free linear layer {@code y = x·Wᵀ} with W [out, in] stored the way DeepSeek checkpoints store it: FP8 with
 * 128x128 block scales (V3's {@code weight} + {@code weight_scale_inv}) or BF16 (V2), or int8 with a scale per row
 * (quantized on load, {@link #q8}: the LM head's option, and the dense weights' with {@code Model.Options#q8Dense}).
 *
 * <p>FP8 weights take the DeepGEMM path: x is quantized per token (128-wide groups, fp32 scales) and multiplied
 * with {@link Fp8Gemm#nt}. BF16 weights take {@link Gemm#nt} on bf16 activations (F32 input is rounded to bf16
 * first, as the bf16 reference model would hold it). Int8 weights take {@link Q8Gemm#nt}. Products accumulate in
 * fp32.
 *
 * <p>The weight lives in host memory (the caller's arena or a checkpoint's map) or, after {@link #to}, in a device's
 * memory; {@link #apply} runs on a context of that device, its activations and scratch in the same memory.
 *
 * <p>Immutable; the weight memory belongs to the caller's arena (or {@link DeviceStore}). {@link #apply} is safe to
 * call from several threads at once with their own contexts and outputs.
 */
public final class Linear {
    private final Tensor bf16;
    private final QuantizedTensor fp8;
    private final Q8Gemm.Weights q8;
    // made on first use (two threads may each make one: equal, and either will do)
    private Prefetch prefetch;

    private Linear(Tensor bf16, QuantizedTensor fp8, Q8Gemm.Weights q8) {
        this.bf16 = bf16;
        this.fp8 = fp8;
        this.q8 = q8;
    }

    /** A BF16 weight [out, in]. */
    public static Linear bf16(Tensor weight) {
        Objects.requireNonNull(weight, "weight");
        if (weight.dtype() != DType.BF16 || weight.rank() != 2)
            throw new IllegalArgumentException("weight must be BF16 [out, in], got " + weight);
        return new Linear(weight, null, null);
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
        return new Linear(null, weight, null);
    }

    /** Int8 weights ({@link Q8Gemm#quantizeWeights}). */
    public static Linear q8(Q8Gemm.Weights weight) {
        Objects.requireNonNull(weight, "weight");
        return new Linear(null, null, weight);
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

    public boolean isBf16() {
        return bf16 != null;
    }

    public boolean isQ8() {
        return q8 != null;
    }

    /**
     * {@code out = x·Wᵀ}.
     *
     * @param x F32 or BF16 [T, in], rows contiguous, in the memory of ctx's device (as the weight)
     * @param out F32 or BF16 [T, out], rows contiguous (a column slice of a wider tensor is fine), in the same memory
     *     (int8 weights write F32, then round to a BF16 out in a second pass)
     */
    public void apply(Context ctx, Tensor x, Tensor out) {
        Objects.requireNonNull(x, "x");
        Objects.requireNonNull(out, "out");
        if (x.rank() != 2 || x.shape(1) != inFeatures())
            throw new IllegalArgumentException("x must be [T, " + inFeatures() + "], got " + x);
        try (Workspace.Frame scratch = ctx.workspace().frame()) {
            if (q8 != null && out.dtype() == DType.BF16) {
                Tensor sums = Tensor.scratch(scratch, DType.F32, out.shape());
                Q8Gemm.nt(ctx, x, q8, sums);
                Cast.apply(ctx, sums, out);
            } else if (q8 != null) {
                Q8Gemm.nt(ctx, x, q8, out);
            } else if (fp8 != null) {
                Fp8Gemm.nt(ctx, quantizeTokens(ctx, x, scratch), fp8, null, out);
            } else {
                Tensor xb = x;
                if (x.dtype() != DType.BF16) {
                    xb = Tensor.scratch(scratch, DType.BF16, x.shape());
                    Cast.apply(ctx, x, xb);
                }
                Gemm.nt(ctx, xb, bf16, null, out);
            }
        }
    }

    /**
     * Hints that ctx's next parallel call reads this weight ({@link Prefetch}): the caller's next {@link #apply} on
     * ctx, after small kernels only.
     */
    public void prefetch(Context ctx) {
        Prefetch p = prefetch;
        if (p == null) prefetch = p = new Prefetch(weight());
        p.on(ctx);
    }

    /** {@code x·Wᵀ} into a new F32 or BF16 [T, out] tensor in the frame's device memory. */
    public Tensor apply(Context ctx, Tensor x, DType dtype, Workspace.Frame frame) {
        return apply(ctx, x, null, dtype, frame);
    }

    /**
     * {@link #apply(Context, Tensor, DType, Workspace.Frame)} with x also given quantized per token ({@link
     * #quantizeTokens}; null: not quantized), which an FP8 weight takes instead of quantizing x again: projections
     * that read the same x quantize it once.
     */
    Tensor apply(Context ctx, Tensor x, QuantizedTensor xq, DType dtype, Workspace.Frame frame) {
        Tensor out = Tensor.scratch(frame, dtype, x.shape(0), outFeatures());
        if (xq != null && fp8 != null) Fp8Gemm.nt(ctx, xq, fp8, null, out);
        else apply(ctx, x, out);
        return out;
    }

    /**
     * x [T, K] (K a multiple of 128) quantized per token to FP8 with fp32 scales, in the frame's device memory: the
     * activations of an FP8 GEMM.
     */
    static QuantizedTensor quantizeTokens(Context ctx, Tensor x, Workspace.Frame frame) {
        long t = x.shape(0), k = x.shape(1);
        QuantizedTensor q = new QuantizedTensor(
                Tensor.scratch(frame, DType.E4M3, t, k),
                Tensor.scratch(frame, DType.F32, t, k / QuantizedTensor.BLOCK),
                1);
        Quantization.perToken(ctx, x, q.data(), q.scales(), ScaleFormat.FP32);
        return q;
    }

    /**
     * a [nA, k] and b [nB, k] (FP8 with 128x128 block scales, data and scales contiguous) stacked into one FP8 layer
     * [nA + nB, k] copied into arena, its data packed ({@link Fp8Gemm#packWeights}) where pack is set and the rows
     * make whole panels; its row slices from 0 and from nA ({@link #rows}) hold a and b.
     *
     * @throws IllegalArgumentException if a part is packed, nA is not a multiple of 128 (b's rows must begin a scale
     *     block) or the widths differ
     */
    static Linear stack(Context ctx, QuantizedTensor a, QuantizedTensor b, boolean pack, Arena arena) {
        long block = QuantizedTensor.BLOCK,
                nA = a.data().shape(0),
                nB = b.data().shape(0),
                k = a.data().shape(1);
        if (a.data().dtype() != DType.E4M3 || b.data().dtype() != DType.E4M3)
            throw new IllegalArgumentException(
                    "parts to stack must be unpacked E4M3, got " + a.data() + " and " + b.data());
        if (nA % block != 0)
            throw new IllegalArgumentException("the first part's " + nA + " rows are not a multiple of " + block);
        if (b.data().shape(1) != k)
            throw new IllegalArgumentException(
                    "parts of widths " + k + " and " + b.data().shape(1) + " do not stack");
        long n = nA + nB,
                aScales = 4 * a.scales().elementCount(),
                bScales = 4 * b.scales().elementCount();
        boolean packs = pack && n % Fp8Gemm.PANEL_ROWS == 0;
        Tensor scales =
                Tensor.allocate(arena, DType.F32, (nA + block - 1) / block + (nB + block - 1) / block, k / block);
        MemorySegment.copy(a.scales().segment(), 0, scales.segment(), 0, aScales);
        MemorySegment.copy(b.scales().segment(), 0, scales.segment(), aScales, bScales);
        try (Arena temp = Arena.ofConfined()) { // the unpacked codes, where packing copies them again
            Tensor data = Tensor.allocate(packs ? temp : arena, DType.E4M3, n, k);
            MemorySegment.copy(a.data().segment(), 0, data.segment(), 0, nA * k);
            MemorySegment.copy(b.data().segment(), 0, data.segment(), nA * k, nB * k);
            QuantizedTensor q = new QuantizedTensor(data, scales, QuantizedTensor.BLOCK);
            return fp8(packs ? Fp8Gemm.packWeights(ctx, q, arena) : q);
        }
    }

    /**
     * a [nA, k] and b [nB, k] (F32 or BF16, rows contiguous, host memory) quantized to int8 as one layer [aRows +
     * bRows, k] in arena ({@link Q8Gemm#quantizeWeights}: each row's scale its own, so the rows are those of a and b
     * quantized apart): a in the rows from 0, b in those from aRows ({@link #rows} slices them). Rows past a part's own
     * (aRows > nA, bRows > nB: room to pad a width to a multiple of 128) have scale 0 and compute 0.
     *
     * @throws IllegalArgumentException if nA, nB, aRows or bRows is not a multiple of {@link Q8Gemm#PANEL_ROWS}, a part
     *     is larger than its rows, k is not a positive multiple of 128, or the widths differ
     */
    static Linear stackQ8(Context ctx, Tensor a, long aRows, Tensor b, long bRows, Arena arena) {
        long nA = a.shape(0), nB = b.shape(0), k = a.shape(1);
        if (b.shape(1) != k)
            throw new IllegalArgumentException("parts of widths " + k + " and " + b.shape(1) + " do not stack");
        if (!Q8Gemm.quantizable(a) || !Q8Gemm.quantizable(b))
            throw new IllegalArgumentException("parts to stack as int8 must be [N, K] with N a multiple of "
                    + Q8Gemm.PANEL_ROWS + " and K of 128, got " + a + " and " + b);
        if (aRows < nA || bRows < nB || aRows % Q8Gemm.PANEL_ROWS != 0 || bRows % Q8Gemm.PANEL_ROWS != 0)
            throw new IllegalArgumentException("the parts' rows must be multiples of " + Q8Gemm.PANEL_ROWS
                    + " that hold them, got aRows " + aRows + " for " + a + ", bRows " + bRows + " for " + b);
        Q8Gemm.Weights q = new Q8Gemm.Weights(
                Tensor.allocate(arena, DType.Q8_P16, aRows + bRows, k),
                Tensor.allocate(arena, DType.F32, aRows + bRows)); // zeros: unused rows keep scale 0
        Q8Gemm.quantizeWeights(ctx, a, q.rows(0, nA));
        Q8Gemm.quantizeWeights(ctx, b, q.rows(aRows, nB));
        return q8(q);
    }

    /**
     * Output rows [start, start + count) of an FP8 layer ({@link QuantizedTensor#rows}: start a multiple of 128) or an
     * int8 one ({@link Q8Gemm.Weights#rows}: start and count multiples of 16), sharing its memory.
     */
    Linear rows(long start, long count) {
        if (fp8 != null) return new Linear(null, fp8.rows(start, count), null);
        if (q8 != null) return new Linear(null, null, q8.rows(start, count));
        throw new IllegalStateException("row slices are of FP8 or int8 layers, this one is BF16");
    }

    /**
     * Whether this layer is rows [start, start + outFeatures) of whole ({@link #rows}): the same format and the same
     * memory, scales included.
     */
    boolean isRowsOf(Linear whole, long start) {
        try {
            Linear slice = whole.rows(start, outFeatures());
            if (fp8 != null && slice.fp8 != null)
                return sameView(fp8.data(), slice.fp8.data()) && sameView(fp8.scales(), slice.fp8.scales());
            if (q8 != null && slice.q8 != null)
                return sameView(q8.codes(), slice.q8.codes()) && sameView(q8.scales(), slice.q8.scales());
            return false;
        } catch (IllegalArgumentException | IllegalStateException e) {
            return false; // no such slice
        }
    }

    private static boolean sameView(Tensor a, Tensor b) {
        return a.dtype() == b.dtype()
                && a.segment().address() == b.segment().address()
                && Arrays.equals(a.shape(), b.shape())
                && Arrays.equals(a.strides(), b.strides());
    }

    /** This layer with its weight (and scales) copied into store's device memory. */
    public Linear to(DeviceStore store) {
        return new Linear(
                bf16 == null ? null : store.upload(bf16),
                fp8 == null ? null : store.upload(fp8),
                q8 == null ? null : new Q8Gemm.Weights(store.upload(q8.codes()), store.upload(q8.scales())));
    }

    /** Whether the weight is in the memory that kernels on ctx take ({@link Tensor#isInMemoryOf}). */
    public boolean isInMemoryOf(Context ctx) {
        return weight().isInMemoryOf(ctx);
    }

    /** The weight in BF16 [out, in] (FP8 weights dequantized), allocated in arena; not for int8 weights. */
    public Tensor toBf16(Context ctx, Arena arena) {
        if (bf16 != null) return bf16;
        if (fp8 == null) throw new IllegalStateException("int8 weights are not dequantized");
        return Quantization.dequantize(ctx, fp8, DType.BF16, arena);
    }

    /** Bytes of the weight (and its scales): what one application reads. */
    public long weightBytes() {
        if (q8 != null) return q8.bytes();
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
        return bf16 != null ? bf16 : fp8 != null ? fp8.data() : q8.codes();
    }
}
