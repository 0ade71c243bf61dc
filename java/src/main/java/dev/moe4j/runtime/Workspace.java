package dev.moe4j.runtime;

import dev.moe4j.bindings.moe4j_h;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;

/**
 * A context's scratch memory: grow-only, reused from call to call, so that a steady stream of same-sized steps
 * allocates (and page-faults and zeroes) nothing. Every context has one ({@link Context#workspace}).
 *
 * <p>Memory is handed out in {@linkplain Frame frames}: {@code try (var f = ctx.workspace().frame()) {...}} takes
 * memory by bumping a pointer and gives all of it back when the frame closes. Frames nest (a kernel wrapper's frame
 * inside a layer's) and must close in the reverse order they opened, which try-with-resources guarantees. A frame
 * has two regions: host memory ({@link Frame#allocate}, for descriptors and index tables Java writes) and memory of
 * the context's device ({@link Frame#device}; the same host region for a CPU context). When a region runs out, the
 * frame takes a further chunk; when the outermost frame closes, the chunks become one large enough for the whole
 * step, so after the first step of a size nothing is allocated.
 *
 * <p>Contents are whatever the previous use left (not zeroed). Memory from a frame must not be used after the frame
 * closes. Thread-safety: like the context, one thread at a time, enforced: a frame holds the context for the thread
 * that opened it until it closes, so a frame or kernel call of another thread meanwhile throws
 * {@link IllegalStateException} (see {@link Context}).
 *
 * <p>Growth can fail: past the {@linkplain #limit limit} set on it, or when the memory itself cannot be had. Then the
 * request throws {@link Moe4jException} with {@link Status#OUT_OF_MEMORY} naming the context, the region and the sizes;
 * memory taken earlier in the frame stays valid, and the workspace is usable once the frame is closed (a smaller step
 * runs normally).
 */
public final class Workspace {
    private static final long MIN_CHUNK = 1 << 16;
    private static final long ALIGNMENT = 64;

    private final Context ctx;
    private final Region host = new Region(false);
    private final Region device;
    private int depth;
    private long limit = Long.MAX_VALUE;

    Workspace(Context ctx) {
        this.ctx = ctx;
        this.device = ctx.device().isCpu() ? host : new Region(true);
    }

    /**
     * Opens a frame; close it to give back everything taken from it.
     *
     * @throws IllegalStateException if another thread is using the context (see {@link Context})
     */
    public Frame frame() {
        ctx.acquire("to open a workspace frame");
        depth++;
        return new Frame(host.used, device.used);
    }

    /**
     * Caps the workspace: each region (host memory; the device's, for a CUDA context) holds at most {@code bytes}
     * from now on, and a frame request that would need more throws {@link Moe4jException} with {@link
     * Status#OUT_OF_MEMORY}. Memory held already is kept even when it is more. For bounding a context's scratch on a
     * machine short of memory, and for testing how callers handle a workspace that cannot grow.
     *
     * @param bytes the cap, positive; {@link Long#MAX_VALUE} for none (the default)
     */
    public void limit(long bytes) {
        if (bytes <= 0) throw new IllegalArgumentException("bytes must be positive, got " + bytes);
        limit = bytes;
    }

    /** The cap set by {@link #limit(long)}; {@link Long#MAX_VALUE} when none. */
    public long limit() {
        return limit;
    }

    /** Bytes the workspace holds now, host and device. */
    public long capacity() {
        return host.capacity() + (device == host ? 0 : device.capacity());
    }

    void release() {
        host.free();
        if (device != host) device.free();
    }

    /** Scratch memory taken between opening and closing; a {@link SegmentAllocator} of host memory. */
    public final class Frame implements SegmentAllocator, AutoCloseable {
        private final long hostMark, deviceMark;
        private boolean closed;

        private Frame(long hostMark, long deviceMark) {
            this.hostMark = hostMark;
            this.deviceMark = deviceMark;
        }

        /** Zeroed host memory, 64-byte aligned or more: for descriptors (as an allocator of native structs). */
        @Override
        public MemorySegment allocate(long byteSize, long byteAlignment) {
            return host(byteSize, byteAlignment).fill((byte) 0);
        }

        /** Host memory (Java can read and write it), aligned to at least 64 bytes; not zeroed. */
        public MemorySegment host(long byteSize, long byteAlignment) {
            check();
            return host.take(byteSize, Math.max(ALIGNMENT, byteAlignment));
        }

        /**
         * Memory of the context's device, 64-byte aligned, not zeroed: host memory for a CPU context, device memory
         * (readable only by kernels) for a CUDA one.
         */
        public MemorySegment device(long byteSize) {
            check();
            return device.take(byteSize, ALIGNMENT);
        }

        /** The context whose workspace this is. */
        public Context context() {
            return ctx;
        }

        private void check() {
            if (closed) throw new IllegalStateException("the workspace frame is closed");
        }

        @Override
        public void close() {
            if (closed) return;
            closed = true;
            try {
                host.used = hostMark;
                device.used = deviceMark;
                if (--depth == 0) {
                    host.settle();
                    if (device != host) device.settle();
                }
            } finally {
                ctx.release();
            }
        }
    }

    /**
     * One kind of memory as chunks: the first holds steady-state steps; more are added within a step that outgrows
     * it and merged into one when the outermost frame closes. {@code used} counts bytes over all chunks in order.
     */
    private final class Region {
        private final boolean onDevice;
        private final List<MemorySegment> chunks = new ArrayList<>();
        private final List<Arena> arenas = new ArrayList<>();
        private long used, highWater;

        Region(boolean onDevice) {
            this.onDevice = onDevice;
        }

        MemorySegment take(long bytes, long alignment) {
            if (bytes < 0) throw new IllegalArgumentException("bytes must be >= 0, got " + bytes);
            long inUse = used;
            if (used == 0 && !chunks.isEmpty() && chunks.getFirst().byteSize() < bytes + alignment)
                free(); // nothing handed out: the chunks make way for one that holds the request
            long start = 0;
            for (MemorySegment chunk : chunks) {
                long end = start + chunk.byteSize();
                if (used < end) {
                    long offset = align(chunk.address() + (used - start), alignment) - chunk.address();
                    if (offset + bytes <= chunk.byteSize()) {
                        used = start + offset + bytes;
                        highWater = Math.max(highWater, used);
                        return chunk.asSlice(offset, bytes);
                    }
                    used = end; // the rest of this chunk is too small: skip to the next
                }
                start = end;
            }
            long capacity = capacity(), need = bytes + alignment;
            long size = Math.max(MIN_CHUNK, Math.max(need, capacity));
            if (size > limit - capacity) {
                size = limit - capacity; // what the limit leaves
                if (size < need) {
                    used = inUse; // as it was: smaller requests of the frame still fit where they did
                    throw outOfMemory("cannot take " + bytes + " bytes: the region holds " + capacity + " bytes, "
                            + inUse + " of them in use, and its limit is " + limit);
                }
            }
            MemorySegment chunk = allocateChunk(size);
            long offset = align(chunk.address(), alignment) - chunk.address();
            used = start + offset + bytes;
            highWater = Math.max(highWater, used);
            return chunk.asSlice(offset, bytes);
        }

        long capacity() {
            long sum = 0;
            for (MemorySegment chunk : chunks) sum += chunk.byteSize();
            return sum;
        }

        /**
         * Between steps: several chunks become one that holds the largest step seen (within the limit). If that one
         * cannot be had, the region stays empty and the next request allocates what it needs.
         */
        void settle() {
            if (chunks.size() <= 1) return;
            long size = Math.min(highWater + highWater / 4, Math.max(highWater, limit));
            free();
            try {
                allocateChunk(size);
            } catch (Moe4jException e) {
                // nothing held: the next take allocates (and reports a failure then, to the caller that needs memory)
            }
        }

        private Moe4jException outOfMemory(String what) {
            return new Moe4jException(
                    Status.OUT_OF_MEMORY.code(),
                    "workspace",
                    "the " + (onDevice ? "device" : "host") + " workspace of " + ctx + " " + what);
        }

        /** Host chunks are freed by the garbage collector; device chunks when the region is freed. */
        private MemorySegment allocateChunk(long size) {
            MemorySegment chunk;
            if (onDevice) {
                Arena arena = Arena.ofShared();
                MemorySegment out = arena.allocate(ValueLayout.ADDRESS);
                try {
                    NativeLibrary.call("moe4j_alloc", () -> moe4j_h.moe4j_alloc(ctx.handle(), size, out));
                } catch (Moe4jException e) {
                    arena.close();
                    throw e;
                }
                MemorySegment pointer = out.get(ValueLayout.ADDRESS, 0);
                MemorySegment handle = ctx.handle();
                chunk = pointer.reinterpret(size, arena, p -> moe4j_h.moe4j_free(handle, p));
                arenas.add(arena);
            } else {
                try {
                    chunk = Arena.ofAuto().allocate(size, ALIGNMENT);
                } catch (OutOfMemoryError e) { // malloc failed: native memory, not the Java heap
                    throw outOfMemory("cannot grow by " + size + " bytes: " + e.getMessage());
                }
            }
            chunks.add(chunk);
            return chunk;
        }

        void free() {
            for (Arena a : arenas) a.close();
            arenas.clear();
            chunks.clear();
            used = 0;
        }
    }

    private static long align(long address, long alignment) {
        return (address + alignment - 1) / alignment * alignment;
    }
}
