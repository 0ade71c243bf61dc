package dev.moe4j.kernels;

import dev.moe4j.bindings.moe4j_h;
import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.Workspace;
import dev.moe4j.tensor.Tensor;
import java.lang.foreign.SegmentAllocator;
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
 *
 * <p>{@link #toDevice} and {@link #toHost} are the deliberate crossings of code that runs on any context (the model
 * classes): a table Java wrote goes to the device's memory, a small result Java must read (router logits) comes back;
 * where the memory is already the right one (every tensor of a CPU context) they return the tensor itself and copy
 * nothing.
 */
public final class Copy {
    private Copy() {}

    /**
     * Copies src into dst.
     *
     * @throws dev.moe4j.runtime.Moe4jException naming the argument if the dtypes or shapes differ, a tensor is not
     *     contiguous, or a tensor lives on a GPU a CPU context cannot reach
     */
    public static void apply(Context ctx, Tensor src, Tensor dst) {
        Objects.requireNonNull(ctx, "ctx");
        Objects.requireNonNull(src, "src");
        Objects.requireNonNull(dst, "dst");
        try (Workspace.Frame call = ctx.workspace().frame()) {
            // the frame's host memory, not the frame as the allocator: a copy takes host tensors on any context, so
            // it is exempt from the emulated-device check that descriptors from a frame get (see DeviceEmulation)
            SegmentAllocator descriptors = call::allocate;
            var s = src.descriptor(descriptors, "src");
            var d = dst.descriptor(descriptors, "dst");
            ctx.call("moe4j_copy", ptr -> moe4j_h.moe4j_copy(ptr, s, d));
        }
    }

    /**
     * t in the memory that kernels on the frame's context take ({@link Tensor#isInMemoryOf}): t itself when it is
     * there already, else a copy in the frame's device memory, valid until the frame closes.
     *
     * @param t contiguous when a copy is needed
     */
    public static Tensor toDevice(Workspace.Frame frame, Tensor t) {
        Context ctx = frame.context();
        if (t.isInMemoryOf(ctx)) return t;
        Tensor copy = Tensor.scratch(frame, t.dtype(), t.shape());
        apply(ctx, t, copy);
        return copy;
    }

    /**
     * t in host memory, for Java to read: t itself when it is there already, else a copy in the frame's host memory,
     * valid until the frame closes.
     *
     * @param t contiguous when a copy is needed, on the frame's context's device or in host memory
     */
    public static Tensor toHost(Workspace.Frame frame, Tensor t) {
        if (t.isHostMemory()) return t;
        Tensor copy = Tensor.hostScratch(frame, t.dtype(), t.shape());
        apply(frame.context(), t, copy);
        return copy;
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
        ctx.call("moe4j_synchronize", ptr -> moe4j_h.moe4j_synchronize(ptr));
    }
}
