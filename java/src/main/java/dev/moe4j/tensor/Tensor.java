package dev.moe4j.tensor;

import dev.moe4j.bindings.moe4j_h;
import dev.moe4j.bindings.moe4j_tensor;
import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.Device;
import dev.moe4j.runtime.Workspace;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * A strided view of memory: a {@link MemorySegment}, an element type, a shape and strides. Host tensors (the usual
 * kind) live in host memory that Java can read and write; device tensors ({@link DeviceMemory#tensor},
 * {@link #scratch} on a CUDA context) live on a CUDA device, where only kernels and {@link dev.moe4j.kernels.Copy}
 * reach them, and Java element access throws {@link UnsupportedOperationException}. Views ({@link #slice},
 * {@link #view}, {@link #asStrided}) keep their tensor's device. Memory of a CPU context that
 * {@linkplain DeviceEmulation emulates a device} counts as device memory (on {@link Device#CPU}).
 *
 * <p>Element {@code (i0, i1, ...)} lives at byte {@code (i0*strides[0] + i1*strides[1] + ...) * dtype.byteSize()}
 * of the segment; shapes and strides count elements. Rank is 1 to {@value #MAX_RANK}. A tensor does not own
 * memory: the arena that allocated its segment does, and closing that arena makes every tensor over it
 * unusable (kernels then refuse it with {@link IllegalStateException}). The caller must not close an arena
 * while a kernel is running on tensors from it.
 *
 * <p>Thread-safety: a tensor is immutable; its memory follows the rules of its arena (a confined arena's
 * tensors are usable only from the owner thread).
 */
public final class Tensor {
    public static final int MAX_RANK = 4;
    /** Allocation alignment: one cache line, enough for any SIMD load. */
    public static final long ALIGNMENT = 64;

    private static final long SHAPE_OFFSET = moe4j_tensor.shape$offset(),
            STRIDES_OFFSET = moe4j_tensor.strides$offset();

    private final MemorySegment segment;
    private final DType dtype;
    private final long[] shape;
    private final long[] strides;
    private final Device device;
    private final boolean deviceMemory; // a device's memory (a GPU's, or an emulated device's): no Java access

    private Tensor(MemorySegment segment, DType dtype, long[] shape, long[] strides) {
        this(segment, dtype, shape, strides, Device.CPU, false);
    }

    private Tensor(
            MemorySegment segment, DType dtype, long[] shape, long[] strides, Device device, boolean deviceMemory) {
        this.device = device;
        this.deviceMemory = deviceMemory;
        this.segment = segment;
        this.dtype = dtype;
        this.shape = shape;
        this.strides = strides;
    }

    /**
     * Allocates a zero-filled, contiguous (row-major) tensor from allocator (an {@link Arena}, or a workspace
     * frame).
     */
    public static Tensor allocate(SegmentAllocator allocator, DType dtype, long... shape) {
        long[] s = checkShape(shape);
        long bytes = Math.multiplyExact(elementCount(s), dtype.byteSize());
        return new Tensor(allocator.allocate(bytes, ALIGNMENT), dtype, s, rowMajorStrides(s));
    }

    /**
     * A contiguous (row-major) tensor in a workspace frame's memory on its context's device (host memory for a CPU
     * context, unless it {@linkplain DeviceEmulation emulates a device}): not zeroed, valid until the frame closes.
     */
    public static Tensor scratch(Workspace.Frame frame, DType dtype, long... shape) {
        long[] s = checkShape(shape);
        MemorySegment memory = frame.device(Math.multiplyExact(elementCount(s), dtype.byteSize()));
        Context ctx = frame.context();
        return new Tensor(memory, dtype, s, rowMajorStrides(s), ctx.device(), DeviceEmulation.hasDeviceMemory(ctx));
    }

    /** A contiguous tensor in a workspace frame's host memory (for tables Java writes): not zeroed. */
    public static Tensor hostScratch(Workspace.Frame frame, DType dtype, long... shape) {
        long[] s = checkShape(shape);
        MemorySegment memory = frame.host(Math.multiplyExact(elementCount(s), dtype.byteSize()), ALIGNMENT);
        return new Tensor(memory, dtype, s, rowMajorStrides(s));
    }

    /** Allocates a contiguous tensor in arena holding values converted to dtype (rounded as in {@link #setFloat}). */
    public static Tensor fromFloats(Arena arena, DType dtype, float[] values, long... shape) {
        Tensor t = allocate(arena, dtype, shape);
        if (values.length != t.elementCount())
            throw new IllegalArgumentException("values has " + values.length + " elements but shape "
                    + Arrays.toString(shape) + " holds " + t.elementCount());
        t.copyFrom(values);
        return t;
    }

    /** A contiguous row-major view of segment. */
    public static Tensor of(MemorySegment segment, DType dtype, long... shape) {
        long[] s = checkShape(shape);
        return of(segment, dtype, s, rowMajorStrides(s));
    }

    /**
     * A strided view of segment, e.g. a column-major scale matrix: {@code of(seg, F32, {m, k}, {1, m})}.
     *
     * @throws IllegalArgumentException if a stride is negative, the ranks differ, the segment's address is not
     *     aligned to the element size, or an element would lie outside the segment
     */
    public static Tensor of(MemorySegment segment, DType dtype, long[] shape, long[] strides) {
        long[] s = checkShape(shape);
        if (strides.length != s.length)
            throw new IllegalArgumentException(
                    "strides " + Arrays.toString(strides) + " do not match rank " + s.length);
        for (long stride : strides) {
            if (stride < 0) throw new IllegalArgumentException("negative stride in " + Arrays.toString(strides));
        }
        if (segment.address() % dtype.byteSize() != 0)
            throw new IllegalArgumentException("segment address " + segment.address() + " is not aligned to " + dtype
                    + "'s " + dtype.byteSize() + " bytes");
        Tensor t = new Tensor(segment, dtype, s, strides.clone());
        if (t.extentBytes() > segment.byteSize())
            throw new IllegalArgumentException(
                    "shape " + Arrays.toString(s) + " with strides " + Arrays.toString(strides) + " reaches "
                            + t.extentBytes() + " bytes but the segment has " + segment.byteSize());
        return t;
    }

    /**
     * The view of elements {@code start .. start + length - 1} along dim, sharing this tensor's memory.
     *
     * @throws IllegalArgumentException if the range is outside the dimension
     */
    public Tensor slice(int dim, long start, long length) {
        if (dim < 0 || dim >= shape.length)
            throw new IllegalArgumentException("dim " + dim + " is outside rank " + shape.length);
        if (start < 0 || length < 0 || start + length > shape[dim])
            throw new IllegalArgumentException("slice [" + start + ", " + (start + length) + ") is outside dim " + dim
                    + " of extent " + shape[dim]);
        long[] s = shape.clone();
        s[dim] = length;
        long offset = length == 0 ? 0 : start * strides[dim] * dtype.byteSize();
        Tensor t = new Tensor(segment.asSlice(offset), dtype, s, strides.clone(), device, deviceMemory);
        if (t.extentBytes() > t.segment.byteSize()) throw new IllegalArgumentException("slice outside the buffer");
        return t;
    }

    /**
     * A view of this tensor's memory with its own shape and strides (in elements) starting {@code offset} elements
     * into it, on the same device: e.g. one head's columns of every token row as a batch entry.
     *
     * @throws IllegalArgumentException if offset or a stride is negative, the ranks differ, or an element would lie
     *     outside this tensor's memory
     */
    public Tensor asStrided(long offset, long[] shape, long[] strides) {
        long[] s = checkShape(shape);
        if (strides.length != s.length)
            throw new IllegalArgumentException(
                    "strides " + Arrays.toString(strides) + " do not match rank " + s.length);
        for (long stride : strides)
            if (stride < 0) throw new IllegalArgumentException("negative stride in " + Arrays.toString(strides));
        long start = Math.multiplyExact(offset, dtype.byteSize());
        if (offset < 0 || start > segment.byteSize())
            throw new IllegalArgumentException(
                    "offset " + offset + " is outside " + this + " (" + segment.byteSize() + " bytes)");
        Tensor t = new Tensor(segment.asSlice(start), dtype, s, strides.clone(), device, deviceMemory);
        if (t.extentBytes() > t.segment.byteSize())
            throw new IllegalArgumentException("shape " + Arrays.toString(s) + " with strides "
                    + Arrays.toString(strides) + " at offset " + offset + " reaches past the memory of " + this);
        return t;
    }

    /**
     * The same elements under another row-major shape, sharing this tensor's memory.
     *
     * @throws IllegalArgumentException if this tensor is not contiguous or the element counts differ
     */
    public Tensor view(long... newShape) {
        if (!isContiguous()) throw new IllegalArgumentException("view of a non-contiguous " + this);
        long[] s = checkShape(newShape);
        if (elementCount(s) != elementCount())
            throw new IllegalArgumentException("view " + Arrays.toString(s) + " has " + elementCount(s) + " elements, "
                    + this + " has " + elementCount());
        return new Tensor(segment, dtype, s, rowMajorStrides(s), device, deviceMemory);
    }

    public DType dtype() {
        return dtype;
    }

    public int rank() {
        return shape.length;
    }

    public long[] shape() {
        return shape.clone();
    }

    public long shape(int dim) {
        return shape[dim];
    }

    public long[] strides() {
        return strides.clone();
    }

    /** The device whose memory holds the data; host tensors belong to {@link Device#CPU}. */
    public Device device() {
        return device;
    }

    /**
     * Whether the elements are in host memory that Java reads and writes (not a device's memory, and not an
     * emulated device's).
     */
    public boolean isHostMemory() {
        return !deviceMemory;
    }

    /**
     * Whether this tensor is in the memory that kernels on ctx take for their operands: ctx's GPU's memory, an
     * emulated device's memory for a context that {@linkplain DeviceEmulation emulates one}, else host memory.
     */
    public boolean isInMemoryOf(Context ctx) {
        return DeviceEmulation.hasDeviceMemory(ctx) ? deviceMemory && device.equals(ctx.device()) : device.isCpu();
    }

    /**
     * A contiguous tensor over a device's memory (used by {@link DeviceMemory}); the segment is never dereferenced.
     * {@code device} is a CUDA device, or {@link Device#CPU} for an emulated device's memory.
     */
    static Tensor onDevice(MemorySegment segment, Device device, DType dtype, long... shape) {
        long[] s = checkShape(shape);
        Tensor t = new Tensor(segment, dtype, s, rowMajorStrides(s), device, true);
        if (t.extentBytes() > segment.byteSize())
            throw new IllegalArgumentException("shape " + Arrays.toString(s) + " needs " + t.extentBytes()
                    + " bytes but the device buffer has " + segment.byteSize());
        return t;
    }

    public MemorySegment segment() {
        return segment;
    }

    public long elementCount() {
        return elementCount(shape);
    }

    /** Whether the elements are packed in row-major order (the stride of a dimension of extent 1 never matters). */
    public boolean isContiguous() {
        long[] packed = rowMajorStrides(shape);
        for (int d = 0; d < shape.length; d++) if (shape[d] > 1 && strides[d] != packed[d]) return false;
        return true;
    }

    /**
     * Whether Java can read and write the elements from this thread: host memory whose arena is open and, if confined,
     * owned here.
     */
    public boolean isAccessible() {
        return !deviceMemory && segment.scope().isAlive() && segment.isAccessibleBy(Thread.currentThread());
    }

    public float getFloat(long... index) {
        return getFloatAtByte(byteOffset(index));
    }

    /** Stores value rounded to nearest even in the tensor's dtype (E4M3 saturates to +-448). */
    public void setFloat(float value, long... index) {
        setFloatAtByte(value, byteOffset(index));
    }

    private float getFloatAt(long element) {
        return getFloatAtByte(element * dtype.byteSize());
    }

    private void setFloatAt(float value, long element) {
        setFloatAtByte(value, element * dtype.byteSize());
    }

    private float getFloatAtByte(long offset) {
        return switch (dtype) {
            case F32 -> segment.get(ValueLayout.JAVA_FLOAT_UNALIGNED, offset);
            case BF16 -> BFloat16.toFloat(segment.get(ValueLayout.JAVA_SHORT_UNALIGNED, offset));
            case F16 -> Float.float16ToFloat(segment.get(ValueLayout.JAVA_SHORT_UNALIGNED, offset));
            case E4M3 -> Float8E4M3.toFloat(segment.get(ValueLayout.JAVA_BYTE, offset));
            default -> throw new UnsupportedOperationException("getFloat on a " + dtype + " tensor");
        };
    }

    private void setFloatAtByte(float value, long offset) {
        switch (dtype) {
            case F32 -> segment.set(ValueLayout.JAVA_FLOAT_UNALIGNED, offset, value);
            case BF16 -> segment.set(ValueLayout.JAVA_SHORT_UNALIGNED, offset, BFloat16.fromFloat(value));
            case F16 -> segment.set(ValueLayout.JAVA_SHORT_UNALIGNED, offset, Float.floatToFloat16(value));
            case E4M3 -> segment.set(ValueLayout.JAVA_BYTE, offset, Float8E4M3.fromFloat(value));
            default -> throw new UnsupportedOperationException("setFloat on a " + dtype + " tensor");
        }
    }

    /** The raw byte of an E4M3 or U8 element. */
    public byte getByte(long... index) {
        if (dtype.byteSize() != 1) throw new UnsupportedOperationException("getByte on a " + dtype + " tensor");
        return segment.get(ValueLayout.JAVA_BYTE, byteOffset(index));
    }

    public int getInt(long... index) {
        if (dtype != DType.I32) throw new UnsupportedOperationException("getInt on a " + dtype + " tensor");
        return segment.get(ValueLayout.JAVA_INT_UNALIGNED, byteOffset(index));
    }

    public void setInt(int value, long... index) {
        if (dtype != DType.I32) throw new UnsupportedOperationException("setInt on a " + dtype + " tensor");
        segment.set(ValueLayout.JAVA_INT_UNALIGNED, byteOffset(index), value);
    }

    /** All elements as floats in row-major order of the logical shape. */
    public float[] toFloatArray() {
        float[] out = new float[Math.toIntExact(elementCount())];
        forEachRun((element, start, length) -> {
            for (int i = 0; i < length; i++) out[start + i] = getFloatAt(element + i);
        });
        return out;
    }

    /** Stores values (row-major order of the logical shape) rounded to the tensor's dtype. */
    public void copyFrom(float[] values) {
        if (values.length != elementCount())
            throw new IllegalArgumentException(
                    "values has " + values.length + " elements, tensor has " + elementCount());
        forEachRun((element, start, length) -> {
            for (int i = 0; i < length; i++) setFloatAt(values[start + i], element + i);
        });
    }

    /** A run of consecutive elements: the first one's element offset and its position in row-major order. */
    private interface Run {
        void accept(long element, int start, int length);
    }

    /** Visits the tensor in row-major order as runs along the innermost dim (one run if contiguous). */
    private void forEachRun(Run run) {
        requireHost();
        int count = Math.toIntExact(elementCount());
        if (count == 0) return;
        if (isContiguous()) {
            run.accept(0, 0, count);
            return;
        }
        int last = shape.length - 1;
        int inner = Math.toIntExact(shape[last]);
        long[] index = new long[shape.length];
        for (int start = 0; start < count; start += inner) {
            long element = 0;
            for (int d = 0; d < last; d++) element += index[d] * strides[d];
            if (strides[last] == 1) {
                run.accept(element, start, inner);
            } else {
                for (int i = 0; i < inner; i++) run.accept(element + i * strides[last], start + i, 1);
            }
            index[last] = inner - 1;
            increment(index);
        }
    }

    /**
     * Writes this tensor's {@code moe4j_tensor} descriptor into memory from allocator, for kernel wrappers.
     *
     * @param name the argument name used in error messages
     * @throws IllegalStateException if the memory is no longer accessible from this thread
     */
    public MemorySegment descriptor(SegmentAllocator allocator, String name) {
        checkKernelOperand(allocator, name);
        MemorySegment d = moe4j_tensor.allocate(allocator);
        writeDescriptor(d, name);
        return d;
    }

    /**
     * For a kernel call whose descriptors come from a frame of a context that emulates a device: throws if this tensor
     * is in host memory, as the GPU kernel would ({@link dev.moe4j.kernels.Copy} takes host tensors on any context and
     * writes its descriptors from elsewhere).
     */
    void checkKernelOperand(SegmentAllocator allocator, String name) {
        if (isHostOperandOfEmulatedDevice(allocator) && allocator instanceof Workspace.Frame frame)
            throw new IllegalStateException("tensor '" + name + "' " + this + " is in host memory, but "
                    + frame.context() + " emulates a device: a GPU kernel takes device memory only");
    }

    /** Whether {@link #checkKernelOperand} throws. */
    boolean isHostOperandOfEmulatedDevice(SegmentAllocator allocator) {
        return !deviceMemory
                && allocator instanceof Workspace.Frame frame
                && DeviceEmulation.isEmulated(frame.context());
    }

    /** Whether {@link #checkAccessible} passes. */
    static boolean isAccessible(MemorySegment segment) {
        return segment.scope().isAlive() && segment.isAccessibleBy(Thread.currentThread());
    }

    /** Throws if the memory of tensor {@code name} is freed or confined to another thread. */
    static void checkAccessible(MemorySegment segment, String name) {
        if (!segment.scope().isAlive())
            throw new IllegalStateException(
                    "tensor '" + name + "' is no longer usable: the arena that owns its memory was closed");
        if (!segment.isAccessibleBy(Thread.currentThread()))
            throw new IllegalStateException("tensor '" + name + "' belongs to a confined arena of another thread");
    }

    /** Writes this tensor's {@code moe4j_tensor} descriptor into {@code d} (one struct, in an array, say). */
    void writeDescriptor(MemorySegment d, String name) {
        checkAccessible(segment, name);
        moe4j_tensor.data(d, segment);
        moe4j_tensor.size_bytes(d, segment.byteSize());
        moe4j_tensor.dtype(d, dtype.code());
        moe4j_tensor.rank(d, shape.length);
        moe4j_tensor.device(d, device.isCpu() ? moe4j_h.MOE4J_HOST_MEMORY() : device.ordinal());
        moe4j_tensor.reserved(d, 0);
        // Element writes at the arrays' offsets: the generated indexed setters make a slice of the struct per element
        // (a decode step writes ~300 descriptors; in a JFR profile of batch-1 decode those slices were ~15% of the
        // samples in Java code).
        for (int i = 0; i < shape.length; i++) {
            d.set(ValueLayout.JAVA_LONG, SHAPE_OFFSET + 8L * i, shape[i]);
            d.set(ValueLayout.JAVA_LONG, STRIDES_OFFSET + 8L * i, strides[i]);
        }
    }

    @Override
    public String toString() {
        return "Tensor[" + dtype + " " + Arrays.toString(shape)
                + (isContiguous() ? "" : " strides " + Arrays.toString(strides)) + " on " + device()
                + (deviceMemory && device.isCpu() ? " (emulated device memory)" : "") + "]";
    }

    private void requireHost() {
        if (deviceMemory)
            throw new UnsupportedOperationException(this + " lives in the memory of " + device
                    + (device.isCpu() ? " (an emulated device)" : "")
                    + ": copy it to a host tensor (Copy.apply) to read or write it");
    }

    private long byteOffset(long[] index) {
        requireHost();
        if (index.length != shape.length)
            throw new IndexOutOfBoundsException("index " + Arrays.toString(index) + " has rank " + index.length
                    + ", tensor has rank " + shape.length);
        long element = 0;
        for (int i = 0; i < index.length; i++) {
            if (index[i] < 0 || index[i] >= shape[i])
                throw new IndexOutOfBoundsException(
                        "index " + Arrays.toString(index) + " outside shape " + Arrays.toString(shape));
            element += index[i] * strides[i];
        }
        return element * dtype.byteSize();
    }

    private long extentBytes() {
        long last = 0;
        for (int i = 0; i < shape.length; i++) {
            if (shape[i] == 0) return 0;
            last = Math.addExact(last, Math.multiplyExact(shape[i] - 1, strides[i]));
        }
        return Math.multiplyExact(last + 1, dtype.byteSize());
    }

    private void increment(long[] index) {
        for (int d = index.length - 1; d >= 0; d--) {
            if (++index[d] < shape[d]) return;
            index[d] = 0;
        }
    }

    private static long[] checkShape(long[] shape) {
        if (shape.length < 1 || shape.length > MAX_RANK)
            throw new IllegalArgumentException("rank " + shape.length + " is outside 1.." + MAX_RANK);
        for (long extent : shape) {
            if (extent < 0) throw new IllegalArgumentException("negative extent in shape " + Arrays.toString(shape));
        }
        return shape.clone();
    }

    private static long elementCount(long[] shape) {
        long n = 1;
        for (long extent : shape) n = Math.multiplyExact(n, extent);
        return n;
    }

    private static long[] rowMajorStrides(long[] shape) {
        long[] strides = new long[shape.length];
        long stride = 1;
        for (int i = shape.length - 1; i >= 0; i--) {
            strides[i] = stride;
            stride = Math.multiplyExact(stride, Math.max(shape[i], 1));
        }
        return strides;
    }
}
