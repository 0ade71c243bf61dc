package dev.moe4j.tensor;

import dev.moe4j.bindings.moe4j_h;
import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.Device;
import dev.moe4j.runtime.NativeLibrary;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Objects;

/**
 * Memory on a context's device, from {@code moe4j_alloc}: {@code cudaMalloc}'d for a CUDA context, 64-byte aligned
 * host memory for a CPU context. Tensors over it ({@link #tensor}) go to kernels on contexts of the same device and
 * to {@link dev.moe4j.kernels.Copy}; Java cannot read device memory directly.
 *
 * <p>{@link #close} frees the memory; tensors over it then fail in kernels with {@link IllegalStateException}
 * instead of touching freed memory. Thread-safety: like the context it came from (one thread at a time); close it
 * once no kernel uses it.
 */
public final class DeviceMemory implements AutoCloseable {
    private final Context ctx;
    private final MemorySegment pointer;
    private final Arena lifetime = Arena.ofShared();
    private final MemorySegment segment;
    private boolean closed;

    private DeviceMemory(Context ctx, MemorySegment pointer, long bytes) {
        this.ctx = ctx;
        this.pointer = pointer;
        this.segment = pointer.reinterpret(bytes, lifetime, null);
    }

    /**
     * @throws dev.moe4j.runtime.Moe4jException if the device is out of memory
     */
    public static DeviceMemory allocate(Context ctx, long bytes) {
        Objects.requireNonNull(ctx, "ctx");
        if (bytes <= 0) throw new IllegalArgumentException("bytes must be positive, got " + bytes);
        try (Arena call = Arena.ofConfined()) {
            MemorySegment out = call.allocate(ValueLayout.ADDRESS);
            NativeLibrary.call("moe4j_alloc", () -> moe4j_h.moe4j_alloc(ctx.handle(), bytes, out));
            return new DeviceMemory(ctx, out.get(ValueLayout.ADDRESS, 0), bytes);
        }
    }

    /** A contiguous tensor of dtype and shape at the start of this memory. */
    public Tensor tensor(DType dtype, long... shape) {
        if (closed) throw new IllegalStateException("device memory is closed");
        Device device = ctx.device();
        return device.isCpu() ? Tensor.of(segment, dtype, shape) : Tensor.onDevice(segment, device, dtype, shape);
    }

    public long byteSize() {
        return segment.byteSize();
    }

    public Device device() {
        return ctx.device();
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        lifetime.close();
        NativeLibrary.call("moe4j_free", () -> moe4j_h.moe4j_free(ctx.handle(), pointer));
    }
}
