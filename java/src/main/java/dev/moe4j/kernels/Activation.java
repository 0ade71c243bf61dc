package dev.moe4j.kernels;

import dev.moe4j.bindings.moe4j_h;
import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.Workspace;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.util.Objects;

/**
 * The gated MLP's activation ({@code moe4j_silu_mul}): {@code out = silu(gate) · up}, {@code silu(a) = a / (1 +
 * exp(-a))} in fp32. exp is one fixed polynomial (Cephes expf, within 2 ulp; its argument clamped to [-87, 88], which
 * changes silu only where |silu| &lt; 1e-35), evaluated with the same operations on every CPU path and on CUDA, so
 * results are the same bits everywhere.
 *
 * <p>All tensors live in the memory of ctx's device; innermost strides are 1. Errors:
 * {@link dev.moe4j.runtime.Moe4jException} naming the argument (dtype, shape, overlap); nothing is written then.
 */
public final class Activation {
    private Activation() {}

    /**
     * @param gate F32 or BF16 [T, N]
     * @param up F32 or BF16 [T, N]
     * @param out F32 or BF16 [T, N]; may be the very same tensor as gate or up (in place), must not overlap anything
     *     else
     */
    public static void siluMul(Context ctx, Tensor gate, Tensor up, Tensor out) {
        Objects.requireNonNull(ctx, "ctx");
        Args.tensor(gate, "gate", 2, DType.F32, DType.BF16);
        Args.tensor(up, "up", 2, DType.F32, DType.BF16);
        Args.tensor(out, "out", 2, DType.F32, DType.BF16);
        try (Workspace.Frame call = ctx.workspace().frame()) {
            MemorySegment gateDesc = gate.descriptor(call, "gate");
            MemorySegment upDesc = up.descriptor(call, "up");
            MemorySegment outDesc = out.descriptor(call, "out");
            ctx.call("moe4j_silu_mul", ptr -> moe4j_h.moe4j_silu_mul(ptr, gateDesc, upDesc, outDesc));
        }
    }
}
