// Generated in jextract's layout from native/include/moe4j.h; regenerate with bindings/jextract.sh.
package dev.moe4j.bindings;

import java.lang.foreign.*;
import java.lang.invoke.*;
import java.util.function.*;

import static java.lang.foreign.ValueLayout.*;
import static java.lang.foreign.MemoryLayout.PathElement.*;

/**
 * {@snippet lang=c :
 * struct moe4j_fp8_weight_groups
 * }
 */
public class moe4j_fp8_weight_groups {

    moe4j_fp8_weight_groups() {
        // Should not be called directly
    }

    private static final GroupLayout $LAYOUT = MemoryLayout.structLayout(
        moe4j_h.C_LONG.withName("count"),
        moe4j_h.C_POINTER.withName("weights"),
        moe4j_h.C_POINTER.withName("scales")
    ).withName("moe4j_fp8_weight_groups");

    /**
     * The layout of this struct
     */
    public static final GroupLayout layout() {
        return $LAYOUT;
    }

    private static final OfLong count$LAYOUT = (OfLong)$LAYOUT.select(groupElement("count"));

    /**
     * Layout for field:
     * {@snippet lang=c :
     * int64_t count
     * }
     */
    public static final OfLong count$layout() {
        return count$LAYOUT;
    }

    private static final long count$OFFSET = 0;

    /**
     * Offset for field:
     * {@snippet lang=c :
     * int64_t count
     * }
     */
    public static final long count$offset() {
        return count$OFFSET;
    }

    /**
     * Getter for field:
     * {@snippet lang=c :
     * int64_t count
     * }
     */
    public static long count(MemorySegment struct) {
        return struct.get(count$LAYOUT, count$OFFSET);
    }

    /**
     * Setter for field:
     * {@snippet lang=c :
     * int64_t count
     * }
     */
    public static void count(MemorySegment struct, long fieldValue) {
        struct.set(count$LAYOUT, count$OFFSET, fieldValue);
    }

    private static final AddressLayout weights$LAYOUT = (AddressLayout)$LAYOUT.select(groupElement("weights"));

    /**
     * Layout for field:
     * {@snippet lang=c :
     * const moe4j_tensor *weights
     * }
     */
    public static final AddressLayout weights$layout() {
        return weights$LAYOUT;
    }

    private static final long weights$OFFSET = 8;

    /**
     * Offset for field:
     * {@snippet lang=c :
     * const moe4j_tensor *weights
     * }
     */
    public static final long weights$offset() {
        return weights$OFFSET;
    }

    /**
     * Getter for field:
     * {@snippet lang=c :
     * const moe4j_tensor *weights
     * }
     */
    public static MemorySegment weights(MemorySegment struct) {
        return struct.get(weights$LAYOUT, weights$OFFSET);
    }

    /**
     * Setter for field:
     * {@snippet lang=c :
     * const moe4j_tensor *weights
     * }
     */
    public static void weights(MemorySegment struct, MemorySegment fieldValue) {
        struct.set(weights$LAYOUT, weights$OFFSET, fieldValue);
    }

    private static final AddressLayout scales$LAYOUT = (AddressLayout)$LAYOUT.select(groupElement("scales"));

    /**
     * Layout for field:
     * {@snippet lang=c :
     * const moe4j_tensor *scales
     * }
     */
    public static final AddressLayout scales$layout() {
        return scales$LAYOUT;
    }

    private static final long scales$OFFSET = 16;

    /**
     * Offset for field:
     * {@snippet lang=c :
     * const moe4j_tensor *scales
     * }
     */
    public static final long scales$offset() {
        return scales$OFFSET;
    }

    /**
     * Getter for field:
     * {@snippet lang=c :
     * const moe4j_tensor *scales
     * }
     */
    public static MemorySegment scales(MemorySegment struct) {
        return struct.get(scales$LAYOUT, scales$OFFSET);
    }

    /**
     * Setter for field:
     * {@snippet lang=c :
     * const moe4j_tensor *scales
     * }
     */
    public static void scales(MemorySegment struct, MemorySegment fieldValue) {
        struct.set(scales$LAYOUT, scales$OFFSET, fieldValue);
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
