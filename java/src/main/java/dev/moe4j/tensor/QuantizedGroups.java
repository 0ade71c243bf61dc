package dev.moe4j.tensor;

import dev.moe4j.bindings.moe4j_fp8_weight_groups;
import dev.moe4j.bindings.moe4j_h;
import dev.moe4j.bindings.moe4j_tensor;
import dev.moe4j.runtime.Device;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * The weights of a grouped FP8 GEMM, one block-scaled matrix per group (per expert): what the native
 * {@code moe4j_fp8_weight_groups} describes. Each group is an E4M3 [N, K] matrix with contiguous rows and F32 block
 * scales [ceil(N/128), ceil(K/128)] ({@link QuantizedTensor} with {@code blockRows} 128); all groups have the same
 * shapes and live on the same device, but each may lie anywhere in memory: experts used in place from a checkpoint's
 * memory map (spread over shard files, in any order), copied one by one to a GPU, or views of one [G, N, K] stack.
 *
 * <p>Immutable and safe to share between threads; it holds references to the tensors, never copies of them, so the
 * memory behind them must stay alive while it is used.
 */
public final class QuantizedGroups {
    /** The most groups one call accepts ({@code MOE4J_MAX_WEIGHT_GROUPS}). */
    public static final int MAX_GROUPS = moe4j_h.MOE4J_MAX_WEIGHT_GROUPS();

    private final List<QuantizedTensor> groups;
    private final long outFeatures;
    private final long inFeatures;
    private final Device device;
    // One tensor per distinct memory scope among the groups' tensors (usually one: a checkpoint's map), checked on
    // every call in place of each tensor; and the descriptor arrays, written at the first call and reused by every
    // call after it (the groups never change). Kernel wrappers keep this object reachable while native code reads them.
    private record Owner(MemorySegment segment, String part) {}

    private final List<Owner> owners;
    private volatile MemorySegment[] cached; // {weights, scales}

    private QuantizedGroups(List<QuantizedTensor> groups) {
        this.groups = groups;
        QuantizedTensor first = groups.get(0);
        this.outFeatures = first.data().shape(0);
        this.inFeatures = first.data().shape(1);
        this.device = first.data().device();
        List<Owner> distinct = new ArrayList<>();
        for (int g = 0; g < groups.size(); g++)
            for (Owner o : List.of(
                    new Owner(groups.get(g).data().segment(), "group " + g),
                    new Owner(groups.get(g).scales().segment(), "group " + g + " scales")))
                if (distinct.stream()
                        .noneMatch(d -> d.segment().scope().equals(o.segment().scope()))) distinct.add(o);
        owners = List.copyOf(distinct);
    }

    /**
     * Groups from separate matrices, in order (group g is {@code groups.get(g)}).
     *
     * @param groups 1 to {@link #MAX_GROUPS} rank-2 weights with 128x128 block scales, all of the same data shape,
     *     scale shape and device, rows contiguous
     * @throws IllegalArgumentException naming the group that breaks a rule
     * @throws NullPointerException if the list or one of its elements is null
     */
    public static QuantizedGroups of(List<QuantizedTensor> groups) {
        Objects.requireNonNull(groups, "groups");
        if (groups.isEmpty() || groups.size() > MAX_GROUPS)
            throw new IllegalArgumentException(groups.size() + " groups, expected 1 to " + MAX_GROUPS);
        List<QuantizedTensor> copy = List.copyOf(groups);
        QuantizedTensor first = copy.get(0);
        for (int g = 0; g < copy.size(); g++) {
            QuantizedTensor w = copy.get(g);
            if (w.data().rank() != 2)
                throw new IllegalArgumentException("group " + g + ": " + w.data() + " is not a rank-2 matrix");
            if (w.blockRows() != QuantizedTensor.BLOCK)
                throw new IllegalArgumentException("group " + g + ": scales cover " + w.blockRows()
                        + " rows each, expected 128x128 weight blocks");
            if (w.data().shape(1) > 1 && w.data().strides()[1] != 1)
                throw new IllegalArgumentException("group " + g + ": rows of " + w.data() + " are not contiguous");
            if (!Arrays.equals(w.data().shape(), first.data().shape()))
                throw new IllegalArgumentException(
                        "group " + g + ": data " + w.data() + " differs in shape from group 0's " + first.data());
            if (!Arrays.equals(w.scales().shape(), first.scales().shape()))
                throw new IllegalArgumentException(
                        "group " + g + ": scales " + w.scales() + " differ in shape from group 0's " + first.scales());
            if (!w.data().device().equals(first.data().device())
                    || !w.scales().device().equals(first.data().device()))
                throw new IllegalArgumentException("group " + g + ": lives on "
                        + w.data().device() + " (scales on " + w.scales().device() + ") but group 0 on "
                        + first.data().device());
        }
        return new QuantizedGroups(copy);
    }

    /**
     * The matrices of a stack [G, N, K] with scales [G, ceil(N/128), ceil(K/128)], as views sharing its memory.
     *
     * @throws IllegalArgumentException if the stack is not rank 3 with 128x128 block scales, or a matrix of it is not
     *     addressable as a view (see {@link QuantizedTensor#group})
     */
    public static QuantizedGroups of(QuantizedTensor stack) {
        Objects.requireNonNull(stack, "stack");
        if (stack.data().rank() != 3)
            throw new IllegalArgumentException("a stack must be rank 3 [G, N, K], got " + stack.data());
        QuantizedTensor[] matrices =
                new QuantizedTensor[Math.toIntExact(stack.data().shape(0))];
        for (int g = 0; g < matrices.length; g++) matrices[g] = stack.group(g);
        return of(List.of(matrices));
    }

    /** G, the number of groups. */
    public int count() {
        return groups.size();
    }

    /** Group g's weights. */
    public QuantizedTensor group(int g) {
        return groups.get(g);
    }

    /** All groups, in order (unmodifiable). */
    public List<QuantizedTensor> groups() {
        return groups;
    }

    /** N, the rows of each matrix (output features). */
    public long outFeatures() {
        return outFeatures;
    }

    /** K, the columns of each matrix (input features). */
    public long inFeatures() {
        return inFeatures;
    }

    /** Where the groups live, as their tensors report it. */
    public Device device() {
        return device;
    }

    /** Bytes of all groups' data and scales (the elements, not the memory around strided views). */
    public long byteSize() {
        long bytes = 0;
        for (QuantizedTensor w : groups)
            bytes += w.data().elementCount() * w.data().dtype().byteSize()
                    + w.scales().elementCount() * w.scales().dtype().byteSize();
        return bytes;
    }

    /**
     * Writes the native {@code moe4j_fp8_weight_groups} struct into memory from allocator, for kernel wrappers; its
     * two descriptor arrays are written once, at the first call, and shared by every call after it. The result is
     * valid while the allocator's memory is and this object is reachable.
     *
     * @param name the argument name used in error messages
     * @throws IllegalStateException if a group's memory is no longer accessible from this thread
     */
    public MemorySegment descriptor(SegmentAllocator allocator, String name) {
        // messages built only on failure: this runs on every kernel call
        for (Owner owner : owners)
            if (!Tensor.isAccessible(owner.segment()))
                Tensor.checkAccessible(owner.segment(), name + " " + owner.part());
        QuantizedTensor first = groups.get(0);
        if (first.data().isHostOperandOfEmulatedDevice(allocator))
            first.data().checkKernelOperand(allocator, name + " group 0");
        if (first.scales().isHostOperandOfEmulatedDevice(allocator))
            first.scales().checkKernelOperand(allocator, name + " group 0 scales");
        MemorySegment[] arrays = cached;
        if (arrays == null) cached = arrays = writeDescriptors(name);
        MemorySegment struct = moe4j_fp8_weight_groups.allocate(allocator);
        moe4j_fp8_weight_groups.count(struct, groups.size());
        moe4j_fp8_weight_groups.weights(struct, arrays[0]);
        moe4j_fp8_weight_groups.scales(struct, arrays[1]);
        return struct;
    }

    private MemorySegment[] writeDescriptors(String name) {
        Arena arena = Arena.ofAuto(); // freed with this object
        MemorySegment weights = moe4j_tensor.allocateArray(groups.size(), arena);
        MemorySegment scales = moe4j_tensor.allocateArray(groups.size(), arena);
        for (int g = 0; g < groups.size(); g++) {
            QuantizedTensor w = groups.get(g);
            w.data().writeDescriptor(moe4j_tensor.asSlice(weights, g), name + " group " + g);
            w.scales().writeDescriptor(moe4j_tensor.asSlice(scales, g), name + " group " + g + " scales");
        }
        return new MemorySegment[] {weights, scales};
    }

    @Override
    public String toString() {
        return "QuantizedGroups[" + groups.size() + " x E4M3 [" + outFeatures + ", " + inFeatures + "] on " + device
                + "]";
    }
}
