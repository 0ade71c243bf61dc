package dev.moe4j.kernels;

import dev.moe4j.bindings.moe4j_h;
import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.NativeLibrary;
import dev.moe4j.runtime.Workspace;
import dev.moe4j.tensor.Tensor;
import java.util.Objects;

/**
 * Copies between host and device memory ({@code moe4j_copy}, {@code moe4j_synchronize}): host to device, device to
 * host, device to device (another GPU too: peer access where the GPUs allow it, staged through host memory where
 * not). Both tensors contiguous, same dtype and shape, not overlapping. Returns when the copy is complete.
 */
public final class Copy {
    private Copy() {}

    public static void apply(Context ctx, Tensor src, Tensor dst) {
        Objects.requireNonNull(ctx, "ctx");
        Objects.requireNonNull(src, "src");
        Objects.requireNonNull(dst, "dst");
        try (Workspace.Frame call = ctx.workspace().frame()) {
            var s = src.descriptor(call, "src");
            var d = dst.descriptor(call, "dst");
            NativeLibrary.call("moe4j_copy", () -> moe4j_h.moe4j_copy(ctx.handle(), s, d));
        }
    }

    /** Waits for everything started on the context (kernels of this library already return complete). */
    public static void synchronize(Context ctx) {
        Objects.requireNonNull(ctx, "ctx");
        NativeLibrary.call("moe4j_synchronize", () -> moe4j_h.moe4j_synchronize(ctx.handle()));
    }
}
