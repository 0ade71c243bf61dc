package dev.moe4j.kernels;

import dev.moe4j.bindings.moe4j_h;
import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.Workspace;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.util.Objects;

/**
 * Rotary position embedding of interleaved pairs ({@code moe4j_rope}), DeepSeek's {@code apply_rotary_emb} with the
 * frequencies computed by the caller ({@link dev.moe4j.model.Rope} blends them for YaRN). For token t, head h and pair
 * i, with {@code a = (float) positions[t] * freqs[i]}, {@code c = (float) Math.cos(a) * rotationScale} and
 * {@code s = (float) Math.sin(a) * rotationScale}: {@code out[t,h,2i] = x[t,h,2i]·c - x[t,h,2i+1]·s} and
 * {@code out[t,h,2i+1] = x[t,h,2i]·s + x[t,h,2i+1]·c}, each product and sum rounded to float on its own, exactly as
 * those Java expressions evaluate (cos and sin are double-precision library functions on both sides, so the floats
 * agree except where the two libraries' doubles straddle a float rounding boundary).
 *
 * <p>All tensors live in the memory of ctx's device; innermost strides are 1. Errors:
 * {@link dev.moe4j.runtime.Moe4jException} naming the argument (dtype, shape, a negative position, overlap);
 * nothing is written then.
 */
public final class RotaryEmbedding {
    private RotaryEmbedding() {}

    /**
     * @param x F32 or BF16 [T, H, R], R even
     * @param positions I32 [T], values ≥ 0
     * @param freqs F32 [R/2], the inverse frequency of each pair
     * @param rotationScale multiplies cos and sin (YaRN's mscale ratio; 1 in DeepSeek configs)
     * @param out F32 or BF16 [T, H, R]; may be the very same tensor as x (in place), must not overlap anything else
     */
    public static void apply(Context ctx, Tensor x, Tensor positions, Tensor freqs, float rotationScale, Tensor out) {
        Objects.requireNonNull(ctx, "ctx");
        Args.tensor(x, "x", 3, DType.F32, DType.BF16);
        Args.tensor(positions, "positions", 1, DType.I32);
        Args.tensor(freqs, "freqs", 1, DType.F32);
        Args.tensor(out, "out", 3, DType.F32, DType.BF16);
        try (Workspace.Frame call = ctx.workspace().frame()) {
            MemorySegment xDesc = x.descriptor(call, "x");
            MemorySegment positionsDesc = positions.descriptor(call, "positions");
            MemorySegment freqsDesc = freqs.descriptor(call, "freqs");
            MemorySegment outDesc = out.descriptor(call, "out");
            ctx.call(
                    "moe4j_rope",
                    ptr -> moe4j_h.moe4j_rope(ptr, xDesc, positionsDesc, freqsDesc, rotationScale, outDesc));
        }
    }
}
