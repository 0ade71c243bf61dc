package dev.moe4j.kernels;

import dev.moe4j.bindings.moe4j_h;
import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.Workspace;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.util.Objects;

/**
 * What sampling needs of each row of logits ({@code moe4j_logits_stats}), in one native pass per row instead of Java
 * loops over the vocabulary: the first index of the largest logit and {@code S = Σ_i exp(logit_i − max)}, so that
 * {@code log_softmax(logit) = logit − max − log S}.
 *
 * <p>For row b: a row holding NaN or +Infinity gets {@code argmax[b]} = the index of the first such logit and
 * {@code sumExp[b]} = NaN; a row of −Infinity only gets 0 and 0; otherwise {@code argmax[b]} is the first index of the
 * maximum m and {@code sumExp[b]} is S, summed in double and rounded to float. S is one fixed sequence of operations
 * on every CPU path and on CUDA (64 lanes, lane l adding the terms of elements l, l + 64, ... in order, then the lanes
 * pairwise; exp by range reduction and its Taylor series to the 13th power with fused multiply-adds, 0 below −708):
 * the same bits everywhere, and the same as {@code dev.moe4j.engine.Sampler}'s own computation. A row's result
 * depends on nothing but the row.
 *
 * <p>All tensors live in the memory of ctx's device. Errors: {@link dev.moe4j.runtime.Moe4jException} naming the
 * argument (dtype, shape, overlap); nothing is written then. Not thread-safe beyond what {@link Context} allows.
 */
public final class Logits {
    private Logits() {}

    /**
     * @param logits F32 [B, V], V ≥ 1, innermost stride 1 (rows may be a view into wider rows)
     * @param argmax I32 [B], written
     * @param sumExp F32 [B], written
     */
    public static void stats(Context ctx, Tensor logits, Tensor argmax, Tensor sumExp) {
        Objects.requireNonNull(ctx, "ctx");
        Args.tensor(logits, "logits", 2, DType.F32);
        Args.tensor(argmax, "argmax", 1, DType.I32);
        Args.tensor(sumExp, "sumExp", 1, DType.F32);
        try (Workspace.Frame call = ctx.workspace().frame()) {
            MemorySegment logitsDesc = logits.descriptor(call, "logits");
            MemorySegment argmaxDesc = argmax.descriptor(call, "argmax");
            MemorySegment sumExpDesc = sumExp.descriptor(call, "sumExp");
            ctx.call("moe4j_logits_stats", ptr -> moe4j_h.moe4j_logits_stats(ptr, logitsDesc, argmaxDesc, sumExpDesc));
        }
    }
}
