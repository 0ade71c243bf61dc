package dev.moe4j.model;

import dev.moe4j.kernels.Copy;
import dev.moe4j.runtime.Context;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.DeviceMemory;
import dev.moe4j.tensor.QuantizedGroups;
import dev.moe4j.tensor.QuantizedTensor;
import dev.moe4j.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * Long-lived memory on one context's device, freed all at once by {@link #close}: weights uploaded once from host
 * memory (FP8 codes and their scales as stored, no conversion) and uninitialized allocations (a KV cache). This is
 * where a model on a GPU keeps what it holds across steps; per-step scratch comes from the context's workspace
 * instead. On a CPU context the memory is {@code moe4j_alloc}'d host memory (device memory, if the context
 * {@linkplain dev.moe4j.tensor.DeviceEmulation emulates a device}).
 *
 * <p>Close it before its context. Not thread-safe: one thread uploads; the tensors it returns follow
 * {@link DeviceMemory}'s rules.
 */
public final class DeviceStore implements AutoCloseable {
    private final Context ctx;
    private final List<DeviceMemory> memory = new ArrayList<>();
    private long bytes;

    /** A store on ctx's device; ctx allocates and copies (uploads use it on the calling thread). */
    public DeviceStore(Context ctx) {
        this.ctx = Objects.requireNonNull(ctx, "ctx");
    }

    /** The context whose device holds the memory. */
    public Context context() {
        return ctx;
    }

    /** Bytes held. */
    public long bytes() {
        return bytes;
    }

    /**
     * A new contiguous tensor on the device, not initialized.
     *
     * @throws dev.moe4j.runtime.Moe4jException if the device is out of memory
     */
    public Tensor allocate(DType dtype, long... shape) {
        long size = dtype.byteSize();
        for (long extent : shape) size = Math.multiplyExact(size, extent);
        DeviceMemory m = DeviceMemory.allocate(ctx, Math.max(size, 1));
        memory.add(m);
        bytes += m.byteSize();
        return m.tensor(dtype, shape);
    }

    /**
     * A device copy of a contiguous tensor (host memory, or any device a copy reaches), same dtype and shape.
     *
     * @throws IllegalArgumentException if t is not contiguous
     */
    public Tensor upload(Tensor t) {
        if (!t.isContiguous()) throw new IllegalArgumentException("only a contiguous tensor is uploaded, got " + t);
        Tensor copy = allocate(t.dtype(), t.shape());
        Copy.apply(ctx, t, copy);
        return copy;
    }

    /** A device copy of FP8 codes and their scales. */
    public QuantizedTensor upload(QuantizedTensor q) {
        return new QuantizedTensor(upload(q.data()), upload(q.scales()), q.blockRows());
    }

    /**
     * A device copy of weight groups as one stack [G, N, K] with scales [G, ·, ·] (two allocations, whatever the
     * groups' places in host memory), the groups views of it.
     *
     * @throws IllegalArgumentException if a group's data or scales are not contiguous
     */
    public QuantizedGroups upload(QuantizedGroups groups) {
        QuantizedTensor first = groups.group(0);
        long[] shape = first.data().shape(), scaleShape = first.scales().shape();
        int g = groups.count();
        QuantizedTensor stack = new QuantizedTensor(
                allocate(DType.E4M3, g, shape[0], shape[1]),
                allocate(DType.F32, g, scaleShape[0], scaleShape[1]),
                QuantizedTensor.BLOCK);
        QuantizedGroups copy = QuantizedGroups.of(stack);
        for (int i = 0; i < g; i++) {
            QuantizedTensor from = groups.group(i), to = copy.group(i);
            if (!from.data().isContiguous() || !from.scales().isContiguous())
                throw new IllegalArgumentException("group " + i + " of " + groups + " is not contiguous");
            Copy.apply(ctx, from.data(), to.data());
            Copy.apply(ctx, from.scales(), to.scales());
        }
        return copy;
    }

    /**
     * Frees everything; tensors from this store must not be used after. Every allocation is attempted; the first
     * failure is thrown after.
     */
    @Override
    public void close() {
        RuntimeException first = null;
        for (DeviceMemory m : memory) {
            try {
                m.close();
            } catch (RuntimeException e) {
                if (first == null) first = e;
            }
        }
        memory.clear();
        bytes = 0;
        if (first != null) throw first;
    }
}
