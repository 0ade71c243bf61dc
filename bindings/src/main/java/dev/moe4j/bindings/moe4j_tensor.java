// Generated in jextract's layout from native/include/moe4j.h; regenerate with bindings/jextract.sh.
package dev.moe4j.bindings;

import java.lang.foreign.*;
import java.lang.invoke.*;
import java.util.function.*;

import static java.lang.foreign.ValueLayout.*;
import static java.lang.foreign.MemoryLayout.PathElement.*;

/**
 * {@snippet lang=c :
 * struct moe4j_tensor
 * }
 */
public class moe4j_tensor {

    moe4j_tensor() {
        // Should not be called directly
    }

    private static final GroupLayout $LAYOUT = MemoryLayout.structLayout(
        moe4j_h.C_POINTER.withName("data"),
        moe4j_h.C_LONG.withName("size_bytes"),
        moe4j_h.C_INT.withName("dtype"),
        moe4j_h.C_INT.withName("rank"),
        moe4j_h.C_INT.withName("device"),
        moe4j_h.C_INT.withName("reserved"),
        MemoryLayout.sequenceLayout(4, moe4j_h.C_LONG).withName("shape"),
        MemoryLayout.sequenceLayout(4, moe4j_h.C_LONG).withName("strides")
    ).withName("moe4j_tensor");

    /**
     * The layout of this struct
     */
    public static final GroupLayout layout() {
        return $LAYOUT;
    }

    private static final AddressLayout data$LAYOUT = (AddressLayout)$LAYOUT.select(groupElement("data"));

    /**
     * Layout for field:
     * {@snippet lang=c :
     * void * data
     * }
     */
    public static final AddressLayout data$layout() {
        return data$LAYOUT;
    }

    private static final long data$OFFSET = 0;

    /**
     * Offset for field:
     * {@snippet lang=c :
     * void * data
     * }
     */
    public static final long data$offset() {
        return data$OFFSET;
    }

    /**
     * Getter for field:
     * {@snippet lang=c :
     * void * data
     * }
     */
    public static MemorySegment data(MemorySegment struct) {
        return struct.get(data$LAYOUT, data$OFFSET);
    }

    /**
     * Setter for field:
     * {@snippet lang=c :
     * void * data
     * }
     */
    public static void data(MemorySegment struct, MemorySegment fieldValue) {
        struct.set(data$LAYOUT, data$OFFSET, fieldValue);
    }

    private static final OfLong size_bytes$LAYOUT = (OfLong)$LAYOUT.select(groupElement("size_bytes"));

    /**
     * Layout for field:
     * {@snippet lang=c :
     * int64_t size_bytes
     * }
     */
    public static final OfLong size_bytes$layout() {
        return size_bytes$LAYOUT;
    }

    private static final long size_bytes$OFFSET = 8;

    /**
     * Offset for field:
     * {@snippet lang=c :
     * int64_t size_bytes
     * }
     */
    public static final long size_bytes$offset() {
        return size_bytes$OFFSET;
    }

    /**
     * Getter for field:
     * {@snippet lang=c :
     * int64_t size_bytes
     * }
     */
    public static long size_bytes(MemorySegment struct) {
        return struct.get(size_bytes$LAYOUT, size_bytes$OFFSET);
    }

    /**
     * Setter for field:
     * {@snippet lang=c :
     * int64_t size_bytes
     * }
     */
    public static void size_bytes(MemorySegment struct, long fieldValue) {
        struct.set(size_bytes$LAYOUT, size_bytes$OFFSET, fieldValue);
    }

    private static final OfInt dtype$LAYOUT = (OfInt)$LAYOUT.select(groupElement("dtype"));

    /**
     * Layout for field:
     * {@snippet lang=c :
     * int32_t dtype
     * }
     */
    public static final OfInt dtype$layout() {
        return dtype$LAYOUT;
    }

    private static final long dtype$OFFSET = 16;

    /**
     * Offset for field:
     * {@snippet lang=c :
     * int32_t dtype
     * }
     */
    public static final long dtype$offset() {
        return dtype$OFFSET;
    }

    /**
     * Getter for field:
     * {@snippet lang=c :
     * int32_t dtype
     * }
     */
    public static int dtype(MemorySegment struct) {
        return struct.get(dtype$LAYOUT, dtype$OFFSET);
    }

    /**
     * Setter for field:
     * {@snippet lang=c :
     * int32_t dtype
     * }
     */
    public static void dtype(MemorySegment struct, int fieldValue) {
        struct.set(dtype$LAYOUT, dtype$OFFSET, fieldValue);
    }

    private static final OfInt rank$LAYOUT = (OfInt)$LAYOUT.select(groupElement("rank"));

    /**
     * Layout for field:
     * {@snippet lang=c :
     * int32_t rank
     * }
     */
    public static final OfInt rank$layout() {
        return rank$LAYOUT;
    }

    private static final long rank$OFFSET = 20;

    /**
     * Offset for field:
     * {@snippet lang=c :
     * int32_t rank
     * }
     */
    public static final long rank$offset() {
        return rank$OFFSET;
    }

    /**
     * Getter for field:
     * {@snippet lang=c :
     * int32_t rank
     * }
     */
    public static int rank(MemorySegment struct) {
        return struct.get(rank$LAYOUT, rank$OFFSET);
    }

    /**
     * Setter for field:
     * {@snippet lang=c :
     * int32_t rank
     * }
     */
    public static void rank(MemorySegment struct, int fieldValue) {
        struct.set(rank$LAYOUT, rank$OFFSET, fieldValue);
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

    private static final long device$OFFSET = 24;

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

    private static final OfInt reserved$LAYOUT = (OfInt)$LAYOUT.select(groupElement("reserved"));

    /**
     * Layout for field:
     * {@snippet lang=c :
     * int32_t reserved
     * }
     */
    public static final OfInt reserved$layout() {
        return reserved$LAYOUT;
    }

    private static final long reserved$OFFSET = 28;

    /**
     * Offset for field:
     * {@snippet lang=c :
     * int32_t reserved
     * }
     */
    public static final long reserved$offset() {
        return reserved$OFFSET;
    }

    /**
     * Getter for field:
     * {@snippet lang=c :
     * int32_t reserved
     * }
     */
    public static int reserved(MemorySegment struct) {
        return struct.get(reserved$LAYOUT, reserved$OFFSET);
    }

    /**
     * Setter for field:
     * {@snippet lang=c :
     * int32_t reserved
     * }
     */
    public static void reserved(MemorySegment struct, int fieldValue) {
        struct.set(reserved$LAYOUT, reserved$OFFSET, fieldValue);
    }

    private static final SequenceLayout shape$LAYOUT = (SequenceLayout)$LAYOUT.select(groupElement("shape"));

    /**
     * Layout for field:
     * {@snippet lang=c :
     * int64_t shape[4]
     * }
     */
    public static final SequenceLayout shape$layout() {
        return shape$LAYOUT;
    }

    private static final long shape$OFFSET = 32;

    /**
     * Offset for field:
     * {@snippet lang=c :
     * int64_t shape[4]
     * }
     */
    public static final long shape$offset() {
        return shape$OFFSET;
    }

    /**
     * Getter for field:
     * {@snippet lang=c :
     * int64_t shape[4]
     * }
     */
    public static MemorySegment shape(MemorySegment struct) {
        return struct.asSlice(shape$OFFSET, shape$LAYOUT.byteSize());
    }

    /**
     * Setter for field:
     * {@snippet lang=c :
     * int64_t shape[4]
     * }
     */
    public static void shape(MemorySegment struct, MemorySegment fieldValue) {
        MemorySegment.copy(fieldValue, 0L, struct, shape$OFFSET, shape$LAYOUT.byteSize());
    }

    private static long[] shape$DIMS = { 4 };

    /**
     * Dimensions for array field:
     * {@snippet lang=c :
     * int64_t shape[4]
     * }
     */
    public static long[] shape$dimensions() {
        return shape$DIMS;
    }
    private static final VarHandle shape$ELEM_HANDLE = shape$LAYOUT.varHandle(sequenceElement());

    /**
     * Indexed getter for field:
     * {@snippet lang=c :
     * int64_t shape[4]
     * }
     */
    public static long shape(MemorySegment struct, long index0) {
        return (long)shape$ELEM_HANDLE.get(shape(struct), 0L, index0);
    }

    /**
     * Indexed setter for field:
     * {@snippet lang=c :
     * int64_t shape[4]
     * }
     */
    public static void shape(MemorySegment struct, long index0, long fieldValue) {
        shape$ELEM_HANDLE.set(shape(struct), 0L, index0, fieldValue);
    }

    private static final SequenceLayout strides$LAYOUT = (SequenceLayout)$LAYOUT.select(groupElement("strides"));

    /**
     * Layout for field:
     * {@snippet lang=c :
     * int64_t strides[4]
     * }
     */
    public static final SequenceLayout strides$layout() {
        return strides$LAYOUT;
    }

    private static final long strides$OFFSET = 64;

    /**
     * Offset for field:
     * {@snippet lang=c :
     * int64_t strides[4]
     * }
     */
    public static final long strides$offset() {
        return strides$OFFSET;
    }

    /**
     * Getter for field:
     * {@snippet lang=c :
     * int64_t strides[4]
     * }
     */
    public static MemorySegment strides(MemorySegment struct) {
        return struct.asSlice(strides$OFFSET, strides$LAYOUT.byteSize());
    }

    /**
     * Setter for field:
     * {@snippet lang=c :
     * int64_t strides[4]
     * }
     */
    public static void strides(MemorySegment struct, MemorySegment fieldValue) {
        MemorySegment.copy(fieldValue, 0L, struct, strides$OFFSET, strides$LAYOUT.byteSize());
    }

    private static long[] strides$DIMS = { 4 };

    /**
     * Dimensions for array field:
     * {@snippet lang=c :
     * int64_t strides[4]
     * }
     */
    public static long[] strides$dimensions() {
        return strides$DIMS;
    }
    private static final VarHandle strides$ELEM_HANDLE = strides$LAYOUT.varHandle(sequenceElement());

    /**
     * Indexed getter for field:
     * {@snippet lang=c :
     * int64_t strides[4]
     * }
     */
    public static long strides(MemorySegment struct, long index0) {
        return (long)strides$ELEM_HANDLE.get(strides(struct), 0L, index0);
    }

    /**
     * Indexed setter for field:
     * {@snippet lang=c :
     * int64_t strides[4]
     * }
     */
    public static void strides(MemorySegment struct, long index0, long fieldValue) {
        strides$ELEM_HANDLE.set(strides(struct), 0L, index0, fieldValue);
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
