package dev.moe4j.tensor;

import dev.moe4j.bindings.moe4j_h;
import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.Device;
import dev.moe4j.runtime.NativeLibrary;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.ref.Cleaner;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Memory on a context's device, from {@code moe4j_alloc}: {@code cudaMalloc}'d for a CUDA context (contents
 * undefined), zeroed 64-byte aligned host memory for a CPU context (from 8 MiB on in 2 MiB pages where the operating
 * system gives them). Tensors over it ({@link #tensor}) go to kernels on contexts of the same device and
 * to {@link dev.moe4j.kernels.Copy}; Java cannot read device memory directly.
 *
 * <p>{@link #close} frees the memory; tensors over it then fail in kernels with {@link IllegalStateException}
 * instead of touching freed memory. Close it before its context: memory whose context is closed first cannot be
 * freed any more ({@link #close} then throws, and the memory stays allocated until the process ends).
 *
 * <p>Memory that is never closed is freed by the garbage collector, on a cleaner thread, once neither this object nor
 * any tensor over it is reachable (a tensor keeps its memory alive). The cleaner frees it through its context only
 * while the context is open, excluding {@link Context#close} meanwhile; if the context was closed first the memory is
 * leaked instead, and {@link #collected} counts both outcomes. Closing explicitly frees the memory at a known time,
 * never twice.
 *
 * <p>Thread-safety: like the context it came from (one thread at a time); close it once no kernel uses it.
 */
public final class DeviceMemory implements AutoCloseable {
    private static final Cleaner CLEANER = Cleaner.create();
    private static final AtomicLong FREED = new AtomicLong(), FREED_BYTES = new AtomicLong();
    private static final AtomicLong LEAKED = new AtomicLong(), LEAKED_BYTES = new AtomicLong();

    /**
     * Memory the garbage collector found unclosed since the process started.
     *
     * @param freed allocations it freed through their context
     * @param freedBytes their bytes
     * @param leaked allocations it could not free because their context was closed first
     * @param leakedBytes their bytes
     */
    public record Collected(long freed, long freedBytes, long leaked, long leakedBytes) {}

    private final Context ctx;
    private final Arena lifetime = Arena.ofShared();
    private final MemorySegment segment;
    private final Free free;
    private final Cleaner.Cleanable cleanable;
    private boolean closed;

    /**
     * The cleanup: holds the context and the address, never the {@link DeviceMemory} (which would then stay
     * reachable). Holding the context keeps it from being collected, and so destroyed, before the memory is freed.
     * {@link Cleaner.Cleanable#clean} runs it at most once, whether {@link #close} or the collector asks first.
     */
    private static final class Free implements Runnable {
        final Context ctx;
        final long address, bytes;
        boolean byCollector = true, contextClosed;
        int status;

        Free(Context ctx, long address, long bytes) {
            this.ctx = ctx;
            this.address = address;
            this.bytes = bytes;
        }

        @Override
        public void run() {
            contextClosed =
                    !ctx.whileOpen(handle -> status = moe4j_h.moe4j_free(handle, MemorySegment.ofAddress(address)));
            if (!byCollector) return;
            (contextClosed ? LEAKED : FREED).incrementAndGet();
            (contextClosed ? LEAKED_BYTES : FREED_BYTES).addAndGet(bytes);
        }
    }

    private DeviceMemory(Context ctx, MemorySegment pointer, long bytes) {
        this.ctx = ctx;
        this.segment = pointer.reinterpret(bytes, lifetime, null);
        this.free = new Free(ctx, pointer.address(), bytes);
        // registered on the memory's scope, which every segment over this memory (every tensor, every view) holds
        this.cleanable = CLEANER.register(segment.scope(), free);
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
        return DeviceEmulation.hasDeviceMemory(ctx)
                ? Tensor.onDevice(segment, ctx.device(), dtype, shape)
                : Tensor.of(segment, dtype, shape);
    }

    public long byteSize() {
        return segment.byteSize();
    }

    public Device device() {
        return ctx.device();
    }

    /** What the garbage collector has freed or leaked of memory nobody closed (see the class doc). */
    public static Collected collected() {
        return new Collected(FREED.get(), FREED_BYTES.get(), LEAKED.get(), LEAKED_BYTES.get());
    }

    /**
     * Frees the memory; later calls do nothing.
     *
     * @throws IllegalStateException if the context was closed first (the memory cannot be freed any more)
     * @throws dev.moe4j.runtime.Moe4jException if the native free fails
     */
    @Override
    public void close() {
        if (closed) return;
        closed = true;
        lifetime.close();
        free.byCollector = false;
        cleanable.clean(); // runs the cleanup here, unless it ran already (it cannot have: this object is reachable)
        if (free.contextClosed)
            throw new IllegalStateException(
                    byteSize() + " bytes on " + ctx.device() + " were not freed: their context was closed first");
        NativeLibrary.check(free.status, "moe4j_free");
    }
}
