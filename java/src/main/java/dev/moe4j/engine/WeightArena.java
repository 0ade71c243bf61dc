package dev.moe4j.engine;

import dev.moe4j.runtime.Context;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.DeviceMemory;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * A model's own host memory (weights converted or packed on load, the CPU's KV cache), counting the bytes allocated
 * in it. The memory comes from {@code moe4j_alloc} on a CPU context in blocks of at least {@link #SLAB_BYTES}, which
 * it backs with 2 MiB pages where the operating system gives them: decode streams these weights, and through 4 KiB
 * pages it misses the TLB every 4 KiB (on a VM, a two-level page walk each time); on the development VM the same
 * model decodes faster with them (bench/RESULTS.md). A Java arena cannot give such pages, as it zeroes memory on
 * allocation, touching every 4 KiB page before any advice ({@code moe4j_alloc} zeroes it too, on the context's
 * threads). Allocations smaller than a quarter of a slab are cut from shared slabs one after another (an expert's 3 MB
 * matrices alone would each start a huge page, and leave most of their last one empty); larger ones get a block of
 * their own. Every segment is zeroed, as {@link Arena#allocate} promises, and tied to this arena's scope.
 *
 * <p>Not thread-safe: the loading thread allocates, then the model only reads. Close it before the context.
 */
final class WeightArena implements Arena {
    static final long SLAB_BYTES = 64L << 20;
    private static final long MAX_ALIGNMENT = 4096; // moe4j_alloc's blocks are at least page aligned at this size

    private final Context host;
    private final Arena scope = Arena.ofShared();
    private final List<DeviceMemory> blocks = new ArrayList<>();
    private MemorySegment slab = MemorySegment.NULL;
    private long slabUsed;
    private long allocated;

    /** host: a CPU context, open for as long as this arena. */
    WeightArena(Context host) {
        if (!host.device().isCpu()) throw new IllegalArgumentException("host must be a CPU context, got " + host);
        this.host = host;
    }

    /** Bytes allocated so far (as asked for, without the rest of a slab). */
    long allocated() {
        return allocated;
    }

    @Override
    public MemorySegment allocate(long byteSize, long byteAlignment) {
        if (!scope.scope().isAlive()) throw new IllegalStateException("the model's weight arena is closed");
        if (byteSize < 0) throw new IllegalArgumentException("byteSize must not be negative, got " + byteSize);
        if (byteAlignment <= 0 || Long.bitCount(byteAlignment) != 1)
            throw new IllegalArgumentException("byteAlignment must be a power of two, got " + byteAlignment);
        MemorySegment s;
        if (byteAlignment > MAX_ALIGNMENT) {
            s = scope.allocate(byteSize, byteAlignment);
        } else if (byteSize >= SLAB_BYTES / 4) {
            s = block(byteSize);
        } else {
            long offset = (slabUsed + byteAlignment - 1) & -byteAlignment;
            if (offset + byteSize > slab.byteSize()) {
                slab = block(SLAB_BYTES);
                offset = 0;
            }
            slabUsed = offset + byteSize;
            s = slab.asSlice(offset, byteSize);
        }
        allocated += byteSize;
        return s;
    }

    private MemorySegment block(long bytes) {
        DeviceMemory block = DeviceMemory.allocate(host, bytes);
        blocks.add(block);
        return block.tensor(DType.U8, block.byteSize()).segment().reinterpret(bytes, scope, null);
    }

    @Override
    public MemorySegment.Scope scope() {
        return scope.scope();
    }

    /** Frees every block; segments from this arena are then inaccessible. */
    @Override
    public void close() {
        scope.close();
        for (DeviceMemory block : blocks) block.close();
        blocks.clear();
    }
}
