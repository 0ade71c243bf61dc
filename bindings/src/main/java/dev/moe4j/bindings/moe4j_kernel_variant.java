// Generated in jextract's layout from native/include/moe4j.h; regenerate with bindings/jextract.sh.
package dev.moe4j.bindings;

import java.lang.foreign.*;
import java.lang.invoke.*;
import java.util.function.*;

import static java.lang.foreign.ValueLayout.*;
import static java.lang.foreign.MemoryLayout.PathElement.*;

/**
 * {@snippet lang=c :
 * struct moe4j_kernel_variant
 * }
 */
public class moe4j_kernel_variant {

    moe4j_kernel_variant() {
        // Should not be called directly
    }

    private static final GroupLayout $LAYOUT = MemoryLayout.structLayout(
        MemoryLayout.sequenceLayout(48, moe4j_h.C_CHAR).withName("kernel"),
        MemoryLayout.sequenceLayout(24, moe4j_h.C_CHAR).withName("variant"),
        MemoryLayout.sequenceLayout(96, moe4j_h.C_CHAR).withName("reason"),
        moe4j_h.C_LONG.withName("calls")
    ).withName("moe4j_kernel_variant");

    /**
     * The layout of this struct
     */
    public static final GroupLayout layout() {
        return $LAYOUT;
    }

    private static final SequenceLayout kernel$LAYOUT = (SequenceLayout)$LAYOUT.select(groupElement("kernel"));

    /**
     * Layout for field:
     * {@snippet lang=c :
     * char kernel[48]
     * }
     */
    public static final SequenceLayout kernel$layout() {
        return kernel$LAYOUT;
    }

    private static final long kernel$OFFSET = 0;

    /**
     * Offset for field:
     * {@snippet lang=c :
     * char kernel[48]
     * }
     */
    public static final long kernel$offset() {
        return kernel$OFFSET;
    }

    /**
     * Getter for field:
     * {@snippet lang=c :
     * char kernel[48]
     * }
     */
    public static MemorySegment kernel(MemorySegment struct) {
        return struct.asSlice(kernel$OFFSET, kernel$LAYOUT.byteSize());
    }

    /**
     * Setter for field:
     * {@snippet lang=c :
     * char kernel[48]
     * }
     */
    public static void kernel(MemorySegment struct, MemorySegment fieldValue) {
        MemorySegment.copy(fieldValue, 0L, struct, kernel$OFFSET, kernel$LAYOUT.byteSize());
    }

    private static long[] kernel$DIMS = { 48 };

    /**
     * Dimensions for array field:
     * {@snippet lang=c :
     * char kernel[48]
     * }
     */
    public static long[] kernel$dimensions() {
        return kernel$DIMS;
    }
    private static final VarHandle kernel$ELEM_HANDLE = kernel$LAYOUT.varHandle(sequenceElement());

    /**
     * Indexed getter for field:
     * {@snippet lang=c :
     * char kernel[48]
     * }
     */
    public static byte kernel(MemorySegment struct, long index0) {
        return (byte)kernel$ELEM_HANDLE.get(kernel(struct), 0L, index0);
    }

    /**
     * Indexed setter for field:
     * {@snippet lang=c :
     * char kernel[48]
     * }
     */
    public static void kernel(MemorySegment struct, long index0, byte fieldValue) {
        kernel$ELEM_HANDLE.set(kernel(struct), 0L, index0, fieldValue);
    }

    private static final SequenceLayout variant$LAYOUT = (SequenceLayout)$LAYOUT.select(groupElement("variant"));

    /**
     * Layout for field:
     * {@snippet lang=c :
     * char variant[24]
     * }
     */
    public static final SequenceLayout variant$layout() {
        return variant$LAYOUT;
    }

    private static final long variant$OFFSET = 48;

    /**
     * Offset for field:
     * {@snippet lang=c :
     * char variant[24]
     * }
     */
    public static final long variant$offset() {
        return variant$OFFSET;
    }

    /**
     * Getter for field:
     * {@snippet lang=c :
     * char variant[24]
     * }
     */
    public static MemorySegment variant(MemorySegment struct) {
        return struct.asSlice(variant$OFFSET, variant$LAYOUT.byteSize());
    }

    /**
     * Setter for field:
     * {@snippet lang=c :
     * char variant[24]
     * }
     */
    public static void variant(MemorySegment struct, MemorySegment fieldValue) {
        MemorySegment.copy(fieldValue, 0L, struct, variant$OFFSET, variant$LAYOUT.byteSize());
    }

    private static long[] variant$DIMS = { 24 };

    /**
     * Dimensions for array field:
     * {@snippet lang=c :
     * char variant[24]
     * }
     */
    public static long[] variant$dimensions() {
        return variant$DIMS;
    }
    private static final VarHandle variant$ELEM_HANDLE = variant$LAYOUT.varHandle(sequenceElement());

    /**
     * Indexed getter for field:
     * {@snippet lang=c :
     * char variant[24]
     * }
     */
    public static byte variant(MemorySegment struct, long index0) {
        return (byte)variant$ELEM_HANDLE.get(variant(struct), 0L, index0);
    }

    /**
     * Indexed setter for field:
     * {@snippet lang=c :
     * char variant[24]
     * }
     */
    public static void variant(MemorySegment struct, long index0, byte fieldValue) {
        variant$ELEM_HANDLE.set(variant(struct), 0L, index0, fieldValue);
    }

    private static final SequenceLayout reason$LAYOUT = (SequenceLayout)$LAYOUT.select(groupElement("reason"));

    /**
     * Layout for field:
     * {@snippet lang=c :
     * char reason[96]
     * }
     */
    public static final SequenceLayout reason$layout() {
        return reason$LAYOUT;
    }

    private static final long reason$OFFSET = 72;

    /**
     * Offset for field:
     * {@snippet lang=c :
     * char reason[96]
     * }
     */
    public static final long reason$offset() {
        return reason$OFFSET;
    }

    /**
     * Getter for field:
     * {@snippet lang=c :
     * char reason[96]
     * }
     */
    public static MemorySegment reason(MemorySegment struct) {
        return struct.asSlice(reason$OFFSET, reason$LAYOUT.byteSize());
    }

    /**
     * Setter for field:
     * {@snippet lang=c :
     * char reason[96]
     * }
     */
    public static void reason(MemorySegment struct, MemorySegment fieldValue) {
        MemorySegment.copy(fieldValue, 0L, struct, reason$OFFSET, reason$LAYOUT.byteSize());
    }

    private static long[] reason$DIMS = { 96 };

    /**
     * Dimensions for array field:
     * {@snippet lang=c :
     * char reason[96]
     * }
     */
    public static long[] reason$dimensions() {
        return reason$DIMS;
    }
    private static final VarHandle reason$ELEM_HANDLE = reason$LAYOUT.varHandle(sequenceElement());

    /**
     * Indexed getter for field:
     * {@snippet lang=c :
     * char reason[96]
     * }
     */
    public static byte reason(MemorySegment struct, long index0) {
        return (byte)reason$ELEM_HANDLE.get(reason(struct), 0L, index0);
    }

    /**
     * Indexed setter for field:
     * {@snippet lang=c :
     * char reason[96]
     * }
     */
    public static void reason(MemorySegment struct, long index0, byte fieldValue) {
        reason$ELEM_HANDLE.set(reason(struct), 0L, index0, fieldValue);
    }

    private static final OfLong calls$LAYOUT = (OfLong)$LAYOUT.select(groupElement("calls"));

    /**
     * Layout for field:
     * {@snippet lang=c :
     * int64_t calls
     * }
     */
    public static final OfLong calls$layout() {
        return calls$LAYOUT;
    }

    private static final long calls$OFFSET = 168;

    /**
     * Offset for field:
     * {@snippet lang=c :
     * int64_t calls
     * }
     */
    public static final long calls$offset() {
        return calls$OFFSET;
    }

    /**
     * Getter for field:
     * {@snippet lang=c :
     * int64_t calls
     * }
     */
    public static long calls(MemorySegment struct) {
        return struct.get(calls$LAYOUT, calls$OFFSET);
    }

    /**
     * Setter for field:
     * {@snippet lang=c :
     * int64_t calls
     * }
     */
    public static void calls(MemorySegment struct, long fieldValue) {
        struct.set(calls$LAYOUT, calls$OFFSET, fieldValue);
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
