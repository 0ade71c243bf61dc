// Generated in jextract's layout from native/include/moe4j.h; regenerate with bindings/jextract.sh.
package dev.moe4j.bindings;

import java.lang.foreign.*;
import java.lang.invoke.*;
import java.util.function.*;

import static java.lang.foreign.ValueLayout.*;
import static java.lang.foreign.MemoryLayout.PathElement.*;

/**
 * {@snippet lang=c :
 * struct moe4j_capabilities
 * }
 */
public class moe4j_capabilities {

    moe4j_capabilities() {
        // Should not be called directly
    }

    private static final GroupLayout $LAYOUT = MemoryLayout.structLayout(
        moe4j_h.C_INT.withName("abi_version"),
        moe4j_h.C_INT.withName("version_major"),
        moe4j_h.C_INT.withName("version_minor"),
        moe4j_h.C_INT.withName("version_patch"),
        moe4j_h.C_INT.withName("cpu_isa"),
        moe4j_h.C_INT.withName("cpu_threads"),
        moe4j_h.C_INT.withName("cuda_compiled"),
        moe4j_h.C_INT.withName("cuda_device_count")
    ).withName("moe4j_capabilities");

    /**
     * The layout of this struct
     */
    public static final GroupLayout layout() {
        return $LAYOUT;
    }

    private static final OfInt abi_version$LAYOUT = (OfInt)$LAYOUT.select(groupElement("abi_version"));

    /**
     * Layout for field:
     * {@snippet lang=c :
     * int32_t abi_version
     * }
     */
    public static final OfInt abi_version$layout() {
        return abi_version$LAYOUT;
    }

    private static final long abi_version$OFFSET = 0;

    /**
     * Offset for field:
     * {@snippet lang=c :
     * int32_t abi_version
     * }
     */
    public static final long abi_version$offset() {
        return abi_version$OFFSET;
    }

    /**
     * Getter for field:
     * {@snippet lang=c :
     * int32_t abi_version
     * }
     */
    public static int abi_version(MemorySegment struct) {
        return struct.get(abi_version$LAYOUT, abi_version$OFFSET);
    }

    /**
     * Setter for field:
     * {@snippet lang=c :
     * int32_t abi_version
     * }
     */
    public static void abi_version(MemorySegment struct, int fieldValue) {
        struct.set(abi_version$LAYOUT, abi_version$OFFSET, fieldValue);
    }

    private static final OfInt version_major$LAYOUT = (OfInt)$LAYOUT.select(groupElement("version_major"));

    /**
     * Layout for field:
     * {@snippet lang=c :
     * int32_t version_major
     * }
     */
    public static final OfInt version_major$layout() {
        return version_major$LAYOUT;
    }

    private static final long version_major$OFFSET = 4;

    /**
     * Offset for field:
     * {@snippet lang=c :
     * int32_t version_major
     * }
     */
    public static final long version_major$offset() {
        return version_major$OFFSET;
    }

    /**
     * Getter for field:
     * {@snippet lang=c :
     * int32_t version_major
     * }
     */
    public static int version_major(MemorySegment struct) {
        return struct.get(version_major$LAYOUT, version_major$OFFSET);
    }

    /**
     * Setter for field:
     * {@snippet lang=c :
     * int32_t version_major
     * }
     */
    public static void version_major(MemorySegment struct, int fieldValue) {
        struct.set(version_major$LAYOUT, version_major$OFFSET, fieldValue);
    }

    private static final OfInt version_minor$LAYOUT = (OfInt)$LAYOUT.select(groupElement("version_minor"));

    /**
     * Layout for field:
     * {@snippet lang=c :
     * int32_t version_minor
     * }
     */
    public static final OfInt version_minor$layout() {
        return version_minor$LAYOUT;
    }

    private static final long version_minor$OFFSET = 8;

    /**
     * Offset for field:
     * {@snippet lang=c :
     * int32_t version_minor
     * }
     */
    public static final long version_minor$offset() {
        return version_minor$OFFSET;
    }

    /**
     * Getter for field:
     * {@snippet lang=c :
     * int32_t version_minor
     * }
     */
    public static int version_minor(MemorySegment struct) {
        return struct.get(version_minor$LAYOUT, version_minor$OFFSET);
    }

    /**
     * Setter for field:
     * {@snippet lang=c :
     * int32_t version_minor
     * }
     */
    public static void version_minor(MemorySegment struct, int fieldValue) {
        struct.set(version_minor$LAYOUT, version_minor$OFFSET, fieldValue);
    }

    private static final OfInt version_patch$LAYOUT = (OfInt)$LAYOUT.select(groupElement("version_patch"));

    /**
     * Layout for field:
     * {@snippet lang=c :
     * int32_t version_patch
     * }
     */
    public static final OfInt version_patch$layout() {
        return version_patch$LAYOUT;
    }

    private static final long version_patch$OFFSET = 12;

    /**
     * Offset for field:
     * {@snippet lang=c :
     * int32_t version_patch
     * }
     */
    public static final long version_patch$offset() {
        return version_patch$OFFSET;
    }

    /**
     * Getter for field:
     * {@snippet lang=c :
     * int32_t version_patch
     * }
     */
    public static int version_patch(MemorySegment struct) {
        return struct.get(version_patch$LAYOUT, version_patch$OFFSET);
    }

    /**
     * Setter for field:
     * {@snippet lang=c :
     * int32_t version_patch
     * }
     */
    public static void version_patch(MemorySegment struct, int fieldValue) {
        struct.set(version_patch$LAYOUT, version_patch$OFFSET, fieldValue);
    }

    private static final OfInt cpu_isa$LAYOUT = (OfInt)$LAYOUT.select(groupElement("cpu_isa"));

    /**
     * Layout for field:
     * {@snippet lang=c :
     * int32_t cpu_isa
     * }
     */
    public static final OfInt cpu_isa$layout() {
        return cpu_isa$LAYOUT;
    }

    private static final long cpu_isa$OFFSET = 16;

    /**
     * Offset for field:
     * {@snippet lang=c :
     * int32_t cpu_isa
     * }
     */
    public static final long cpu_isa$offset() {
        return cpu_isa$OFFSET;
    }

    /**
     * Getter for field:
     * {@snippet lang=c :
     * int32_t cpu_isa
     * }
     */
    public static int cpu_isa(MemorySegment struct) {
        return struct.get(cpu_isa$LAYOUT, cpu_isa$OFFSET);
    }

    /**
     * Setter for field:
     * {@snippet lang=c :
     * int32_t cpu_isa
     * }
     */
    public static void cpu_isa(MemorySegment struct, int fieldValue) {
        struct.set(cpu_isa$LAYOUT, cpu_isa$OFFSET, fieldValue);
    }

    private static final OfInt cpu_threads$LAYOUT = (OfInt)$LAYOUT.select(groupElement("cpu_threads"));

    /**
     * Layout for field:
     * {@snippet lang=c :
     * int32_t cpu_threads
     * }
     */
    public static final OfInt cpu_threads$layout() {
        return cpu_threads$LAYOUT;
    }

    private static final long cpu_threads$OFFSET = 20;

    /**
     * Offset for field:
     * {@snippet lang=c :
     * int32_t cpu_threads
     * }
     */
    public static final long cpu_threads$offset() {
        return cpu_threads$OFFSET;
    }

    /**
     * Getter for field:
     * {@snippet lang=c :
     * int32_t cpu_threads
     * }
     */
    public static int cpu_threads(MemorySegment struct) {
        return struct.get(cpu_threads$LAYOUT, cpu_threads$OFFSET);
    }

    /**
     * Setter for field:
     * {@snippet lang=c :
     * int32_t cpu_threads
     * }
     */
    public static void cpu_threads(MemorySegment struct, int fieldValue) {
        struct.set(cpu_threads$LAYOUT, cpu_threads$OFFSET, fieldValue);
    }

    private static final OfInt cuda_compiled$LAYOUT = (OfInt)$LAYOUT.select(groupElement("cuda_compiled"));

    /**
     * Layout for field:
     * {@snippet lang=c :
     * int32_t cuda_compiled
     * }
     */
    public static final OfInt cuda_compiled$layout() {
        return cuda_compiled$LAYOUT;
    }

    private static final long cuda_compiled$OFFSET = 24;

    /**
     * Offset for field:
     * {@snippet lang=c :
     * int32_t cuda_compiled
     * }
     */
    public static final long cuda_compiled$offset() {
        return cuda_compiled$OFFSET;
    }

    /**
     * Getter for field:
     * {@snippet lang=c :
     * int32_t cuda_compiled
     * }
     */
    public static int cuda_compiled(MemorySegment struct) {
        return struct.get(cuda_compiled$LAYOUT, cuda_compiled$OFFSET);
    }

    /**
     * Setter for field:
     * {@snippet lang=c :
     * int32_t cuda_compiled
     * }
     */
    public static void cuda_compiled(MemorySegment struct, int fieldValue) {
        struct.set(cuda_compiled$LAYOUT, cuda_compiled$OFFSET, fieldValue);
    }

    private static final OfInt cuda_device_count$LAYOUT = (OfInt)$LAYOUT.select(groupElement("cuda_device_count"));

    /**
     * Layout for field:
     * {@snippet lang=c :
     * int32_t cuda_device_count
     * }
     */
    public static final OfInt cuda_device_count$layout() {
        return cuda_device_count$LAYOUT;
    }

    private static final long cuda_device_count$OFFSET = 28;

    /**
     * Offset for field:
     * {@snippet lang=c :
     * int32_t cuda_device_count
     * }
     */
    public static final long cuda_device_count$offset() {
        return cuda_device_count$OFFSET;
    }

    /**
     * Getter for field:
     * {@snippet lang=c :
     * int32_t cuda_device_count
     * }
     */
    public static int cuda_device_count(MemorySegment struct) {
        return struct.get(cuda_device_count$LAYOUT, cuda_device_count$OFFSET);
    }

    /**
     * Setter for field:
     * {@snippet lang=c :
     * int32_t cuda_device_count
     * }
     */
    public static void cuda_device_count(MemorySegment struct, int fieldValue) {
        struct.set(cuda_device_count$LAYOUT, cuda_device_count$OFFSET, fieldValue);
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
