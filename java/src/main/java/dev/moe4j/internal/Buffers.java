package dev.moe4j.internal;

import dev.moe4j.runtime.Context;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.DeviceMemory;
import dev.moe4j.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Objects;

/**
 * Grow-only buffers that one owner keeps across calls, in host memory or in one device's memory: for scratch that
 * outlives a call or crosses threads (an expert-parallel layer gathers rows into a device's buffer on one thread and
 * the device's worker reads it on another), where a context's {@link dev.moe4j.runtime.Workspace} frames do not fit.
 * Each slot holds one buffer; a request larger than the slot's buffer replaces it with one 25% larger than asked.
 * Contents are whatever the previous use left.
 *
 * <p>Host buffers are freed by the garbage collector once the owner and every tensor over them are unreachable;
 * device buffers by {@link #close}. Not thread-safe: one owner at a time requests buffers.
 */
public final class Buffers implements AutoCloseable {
    private final Context device; // null: host memory
    private final MemorySegment[] host;
    private final DeviceMemory[] onDevice;

    /** {@code slots} buffers in host memory. */
    public Buffers(int slots) {
        this.device = null;
        this.host = new MemorySegment[slots];
        this.onDevice = null;
    }

    /** {@code slots} buffers in the memory of ctx's device (host memory for a CPU context). */
    public Buffers(Context ctx, int slots) {
        Objects.requireNonNull(ctx, "ctx");
        boolean cpu = ctx.device().isCpu();
        this.device = cpu ? null : ctx;
        this.host = cpu ? new MemorySegment[slots] : null;
        this.onDevice = cpu ? null : new DeviceMemory[slots];
    }

    /** A contiguous tensor over slot's buffer, valid until the slot is next requested or the buffers close. */
    public Tensor tensor(int slot, DType dtype, long... shape) {
        long bytes = dtype.byteSize();
        for (long extent : shape) bytes = Math.multiplyExact(bytes, extent);
        long size = Math.max(64, bytes + bytes / 4);
        if (device == null) {
            MemorySegment buffer = host[slot];
            if (buffer == null || buffer.byteSize() < bytes)
                host[slot] = buffer = Arena.ofAuto().allocate(size, 64);
            return Tensor.of(buffer.asSlice(0, bytes), dtype, shape);
        }
        DeviceMemory buffer = onDevice[slot];
        if (buffer == null || buffer.byteSize() < bytes) {
            if (buffer != null) buffer.close();
            onDevice[slot] = buffer = DeviceMemory.allocate(device, size);
        }
        return buffer.tensor(dtype, shape);
    }

    /** Frees device buffers (host ones go with the garbage collector). */
    @Override
    public void close() {
        if (onDevice == null) return;
        for (int s = 0; s < onDevice.length; s++) {
            if (onDevice[s] != null) onDevice[s].close();
            onDevice[s] = null;
        }
    }
}
