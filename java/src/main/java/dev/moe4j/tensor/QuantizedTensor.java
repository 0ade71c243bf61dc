package dev.moe4j.tensor;

/**
 * An FP8 tensor with its block scales: {@code value[.., r, c] = data[.., r, c] * scales[.., r / blockRows, c / 128]}.
 * Rank 2 for one matrix, rank 3 for a stack of matrices (one per expert, say) with a leading group dimension
 * ({@link QuantizedGroups#of(QuantizedTensor)} passes a stack to the grouped kernels).
 *
 * @param data E4M3 [.., R, C], or for weights (128x128 block scales) E4M3_P32 packed panels
 * @param scales F32 [.., ceil(R / blockRows), ceil(C / 128)], any strides
 * @param blockRows 1 for per-token activation scales, 128 for 128x128 weight block scales
 */
public record QuantizedTensor(Tensor data, Tensor scales, int blockRows) {
    public static final int BLOCK = 128;

    public QuantizedTensor {
        if (data == null || scales == null) throw new IllegalArgumentException("data and scales must not be null");
        if (data.dtype() != DType.E4M3 && !(data.dtype() == DType.E4M3_P32 && blockRows == BLOCK))
            throw new IllegalArgumentException("data is " + data.dtype() + ", expected E4M3 (or E4M3_P32 for weights)");
        if (scales.dtype() != DType.F32)
            throw new IllegalArgumentException("scales are " + scales.dtype() + ", expected F32");
        if (blockRows != 1 && blockRows != BLOCK)
            throw new IllegalArgumentException("blockRows " + blockRows + " is neither 1 nor " + BLOCK);
        if (data.rank() != scales.rank() || data.rank() < 2 || data.rank() > 3)
            throw new IllegalArgumentException(
                    "data " + data + " and scales " + scales + " must both have rank 2 or 3");
    }

    /**
     * Rows [start, start + count) of a rank-2 weight with 128x128 block scales, sharing its memory: the slice's scales
     * are those of the row blocks it touches.
     *
     * @throws IllegalArgumentException if this is not a rank-2 weight, start is not a multiple of 128 (the slice's
     *     rows must begin a scale block) or the rows fall outside
     */
    public QuantizedTensor rows(long start, long count) {
        if (data.rank() != 2 || blockRows != BLOCK)
            throw new IllegalArgumentException("rows needs a rank-2 weight with 128x128 block scales, got " + data);
        if (start % BLOCK != 0)
            throw new IllegalArgumentException("rows start " + start + " is not a multiple of " + BLOCK);
        return new QuantizedTensor(
                data.slice(0, start, count), scales.slice(0, start / BLOCK, (count + BLOCK - 1) / BLOCK), BLOCK);
    }

    /**
     * Matrix g of a rank-3 stack as a rank-2 tensor sharing its memory.
     *
     * @throws IllegalArgumentException if this is not rank 3, g is out of range, or data or scales are not
     *     contiguous
     */
    public QuantizedTensor group(int g) {
        if (data.rank() != 3) throw new IllegalArgumentException("group needs a rank-3 stack, got " + data);
        return new QuantizedTensor(
                data.slice(0, g, 1).view(data.shape(1), data.shape(2)),
                scales.slice(0, g, 1).view(scales.shape(1), scales.shape(2)),
                blockRows);
    }
}
