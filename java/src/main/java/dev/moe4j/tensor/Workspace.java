package dev.moe4j.tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * Grow-only scratch memory that one owner reuses from call to call, so that a steady stream of same-sized steps
 * allocates (and page-faults and zeroes) nothing. Each slot holds one buffer; a request larger than the slot's buffer
 * replaces it with one 25% larger than asked. Buffers live in automatic arenas: the garbage collector frees them once
 * the owner and every tensor over them are unreachable, and any thread may access them. Contents are whatever the
 * previous use left. Not thread-safe: one owner at a time requests buffers.
 */
public final class Workspace {
    private final MemorySegment[] slots;

    /** A workspace of {@code slots} independent buffers. */
    public Workspace(int slots) {
        this.slots = new MemorySegment[slots];
    }

    /** A contiguous tensor over slot's buffer, valid until the slot is next requested. */
    public Tensor tensor(int slot, DType dtype, long... shape) {
        long bytes = dtype.byteSize();
        for (long extent : shape) bytes = Math.multiplyExact(bytes, extent);
        MemorySegment buffer = slots[slot];
        if (buffer == null || buffer.byteSize() < bytes) {
            buffer = Arena.ofAuto().allocate(Math.max(64, bytes + bytes / 4), Tensor.ALIGNMENT);
            slots[slot] = buffer;
        }
        return Tensor.of(buffer.asSlice(0, bytes), dtype, shape);
    }
}
