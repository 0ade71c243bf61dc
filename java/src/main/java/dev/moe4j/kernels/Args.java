package dev.moe4j.kernels;

import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.QuantizedTensor;
import dev.moe4j.tensor.Tensor;
import java.util.Arrays;
import java.util.Objects;

/**
 * Java-side argument checks of the kernel wrappers: null, rank, dtype and scale kind, with the argument named.
 * Shape relations between arguments are checked once, natively, before any memory is touched.
 */
final class Args {
    private Args() {}

    static Tensor tensor(Tensor t, String name, int rank, DType... dtypes) {
        Objects.requireNonNull(t, name);
        if (t.rank() != rank) throw new IllegalArgumentException(name + " must have rank " + rank + ", got " + t);
        for (DType dtype : dtypes) if (t.dtype() == dtype) return t;
        throw new IllegalArgumentException(name + " must be " + Arrays.toString(dtypes) + ", got " + t);
    }

    /** Per-token (blockRows 1) or 128x128-block (blockRows 128) FP8 data of the given rank. */
    static QuantizedTensor quantized(QuantizedTensor q, String name, int rank, int blockRows) {
        Objects.requireNonNull(q, name);
        if (q.blockRows() != blockRows)
            throw new IllegalArgumentException(
                    name + " must carry " + (blockRows == 1 ? "per-token (1x128)" : "128x128 block")
                            + " scales, got blockRows " + q.blockRows());
        if (q.data().rank() != rank)
            throw new IllegalArgumentException(name + " must have rank " + rank + ", got " + q.data());
        return q;
    }

    static Tensor output(Tensor d, int rank) {
        return tensor(d, "d", rank, DType.F32, DType.BF16);
    }
}
