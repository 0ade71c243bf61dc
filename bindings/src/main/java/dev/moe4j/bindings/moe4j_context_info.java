// Generated in jextract's layout from native/include/moe4j.h; regenerate with bindings/jextract.sh.
package dev.moe4j.bindings;

import java.lang.foreign.*;
import java.lang.invoke.*;
import java.util.function.*;

import static java.lang.foreign.ValueLayout.*;
import static java.lang.foreign.MemoryLayout.PathElement.*;

/**
 * {@snippet lang=c :
 * struct moe4j_context_info
 * }
 */
public class moe4j_context_info {

    moe4j_context_info() {
        // Should not be called directly
    }

    private static final GroupLayout $LAYOUT = MemoryLayout.structLayout(
        moe4j_h.C_INT.withName("backend"),
        moe4j_h.C_INT.withName("device"),
        moe4j_h.C_INT.withName("threads"),
        moe4j_h.C_INT.withName("isa"),
        moe4j_h.C_INT.withName("flags")
    ).withName("moe4j_context_info");

    /**
     * The layout of this struct
     */
    public static final GroupLayout layout() {
        return $LAYOUT;
    }

    private static final OfInt backend$LAYOUT = (OfInt)$LAYOUT.select(groupElement("backend"));

    /**
     * Layout for field:
     * {@snippet lang=c :
     * int32_t backend
     * }
     */
    public static final OfInt backend$layout() {
        return backend$LAYOUT;
    }

    private static final long backend$OFFSET = 0;

    /**
     * Offset for field:
     * {@snippet lang=c :
     * int32_t backend
     * }
     */
    public static final long backend$offset() {
        return backend$OFFSET;
    }

    /**
     * Getter for field:
     * {@snippet lang=c :
     * int32_t backend
     * }
     */
    public static int backend(MemorySegment struct) {
        return struct.get(backend$LAYOUT, backend$OFFSET);
    }

    /**
     * Setter for field:
     * {@snippet lang=c :
     * int32_t backend
     * }
     */
    public static void backend(MemorySegment struct, int fieldValue) {
        struct.set(backend$LAYOUT, backend$OFFSET, fieldValue);
    }

    private static final OfInt device$LAYOUT = (OfInt)$LAYOUT.select(groupElement("device"));

    /**
     * Layout for field:
     * {@snippet lang=c :
     * int32_t device
     * }
     */
    public static final OfInt device$layout() {
        return device$LAYOUT;
    }

    private static final long device$OFFSET = 4;

    /**
     * Offset for field:
     * {@snippet lang=c :
     * int32_t device
     * }
     */
    public static final long device$offset() {
        return device$OFFSET;
    }

    /**
     * Getter for field:
     * {@snippet lang=c :
     * int32_t device
     * }
     */
    public static int device(MemorySegment struct) {
        return struct.get(device$LAYOUT, device$OFFSET);
    }

    /**
     * Setter for field:
     * {@snippet lang=c :
     * int32_t device
     * }
     */
    public static void device(MemorySegment struct, int fieldValue) {
        struct.set(device$LAYOUT, device$OFFSET, fieldValue);
    }

    private static final OfInt threads$LAYOUT = (OfInt)$LAYOUT.select(groupElement("threads"));

    /**
     * Layout for field:
     * {@snippet lang=c :
     * int32_t threads
     * }
     */
    public static final OfInt threads$layout() {
        return threads$LAYOUT;
    }

    private static final long threads$OFFSET = 8;

    /**
     * Offset for field:
     * {@snippet lang=c :
     * int32_t threads
     * }
     */
    public static final long threads$offset() {
        return threads$OFFSET;
    }

    /**
     * Getter for field:
     * {@snippet lang=c :
     * int32_t threads
     * }
     */
    public static int threads(MemorySegment struct) {
        return struct.get(threads$LAYOUT, threads$OFFSET);
    }

    /**
     * Setter for field:
     * {@snippet lang=c :
     * int32_t threads
     * }
     */
    public static void threads(MemorySegment struct, int fieldValue) {
        struct.set(threads$LAYOUT, threads$OFFSET, fieldValue);
    }

    private static final OfInt isa$LAYOUT = (OfInt)$LAYOUT.select(groupElement("isa"));

    /**
     * Layout for field:
     * {@snippet lang=c :
     * int32_t isa
     * }
     */
    public static final OfInt isa$layout() {
        return isa$LAYOUT;
    }

    private static final long isa$OFFSET = 12;

    /**
     * Offset for field:
     * {@snippet lang=c :
     * int32_t isa
     * }
     */
    public static final long isa$offset() {
        return isa$OFFSET;
    }

    /**
     * Getter for field:
     * {@snippet lang=c :
     * int32_t isa
     * }
     */
    public static int isa(MemorySegment struct) {
        return struct.get(isa$LAYOUT, isa$OFFSET);
    }

    /**
     * Setter for field:
     * {@snippet lang=c :
     * int32_t isa
     * }
     */
    public static void isa(MemorySegment struct, int fieldValue) {
        struct.set(isa$LAYOUT, isa$OFFSET, fieldValue);
    }

    private static final OfInt flags$LAYOUT = (OfInt)$LAYOUT.select(groupElement("flags"));

    /**
     * Layout for field:
     * {@snippet lang=c :
     * int32_t flags
     * }
     */
    public static final OfInt flags$layout() {
        return flags$LAYOUT;
    }

    private static final long flags$OFFSET = 16;

    /**
     * Offset for field:
     * {@snippet lang=c :
     * int32_t flags
     * }
     */
    public static final long flags$offset() {
        return flags$OFFSET;
    }

    /**
     * Getter for field:
     * {@snippet lang=c :
     * int32_t flags
     * }
     */
    public static int flags(MemorySegment struct) {
        return struct.get(flags$LAYOUT, flags$OFFSET);
    }

    /**
     * Setter for field:
     * {@snippet lang=c :
     * int32_t flags
     * }
     */
    public static void flags(MemorySegment struct, int fieldValue) {
        struct.set(flags$LAYOUT, flags$OFFSET, fieldValue);
    }

    /**
     * Obtains a slice of {@code arrayParam} which selects the array element at {@code index}.
     * The returned segment has address {@code arrayParam.address() + index * layout().byteSize()}
     */
    public static MemorySegment asSlice(MemorySegment array, long index) {
        return array.asSlice(layout().byteSize() * index);
    }

    /**
     * The size (in bytes) of this struct
     */
    public static long sizeof() { return layout().byteSize(); }

    /**
     * Allocate a segment of size {@code layout().byteSize()} using {@code allocator}
     */
    public static MemorySegment allocate(SegmentAllocator allocator) {
        return allocator.allocate(layout());
    }

    /**
     * Allocate an array of size {@code elementCount} using {@code allocator}.
     * The returned segment has size {@code elementCount * layout().byteSize()}.
     */
    public static MemorySegment allocateArray(long elementCount, SegmentAllocator allocator) {
        return allocator.allocate(MemoryLayout.sequenceLayout(elementCount, layout()));
    }

    /**
     * Reinterprets {@code addr} using target {@code arena} and {@code cleanupAction} (if any).
     * The returned segment has size {@code layout().byteSize()}
     */
    public static MemorySegment reinterpret(MemorySegment addr, Arena arena, Consumer<MemorySegment> cleanup) {
        return reinterpret(addr, 1, arena, cleanup);
    }

    /**
     * Reinterprets {@code addr} using target {@code arena} and {@code cleanupAction} (if any).
     * The returned segment has size {@code elementCount * layout().byteSize()}
     */
    public static MemorySegment reinterpret(MemorySegment addr, long elementCount, Arena arena, Consumer<MemorySegment> cleanup) {
        return addr.reinterpret(layout().byteSize() * elementCount, arena, cleanup);
    }
}
