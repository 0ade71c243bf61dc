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
 * not). Both tensors contiguous, same dtype and shape, not overlapping.
 *
 * <p>On a CUDA context a copy is ordered after the context's earlier calls. A copy to host memory returns when the
 * data is there (and throws an error that earlier calls on the context left on the device); a copy from host memory
 * has read the source when it returns; a copy between GPUs is enqueued like a kernel, so another context may read
 * its destination only after {@link #synchronize} on this one. On the CPU every copy is complete when it returns.
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

    /**
     * Waits until every call made on the context so far has finished on its device, so that other contexts and
     * threads may use what they wrote; returns at once on the CPU.
     *
     * @throws dev.moe4j.runtime.Moe4jException for an error that earlier calls on the context left on the device
     *     (an out-of-range entry of a device index table, named with its call and argument; a CUDA fault)
     */
    public static void synchronize(Context ctx) {
        Objects.requireNonNull(ctx, "ctx");
        NativeLibrary.call("moe4j_synchronize", () -> moe4j_h.moe4j_synchronize(ctx.handle()));
    }
}
