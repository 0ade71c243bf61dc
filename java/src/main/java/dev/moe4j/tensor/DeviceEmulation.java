package dev.moe4j.tensor;

import dev.moe4j.runtime.Context;
import java.util.Collections;
import java.util.Set;
import java.util.WeakHashMap;

/**
 * A checking mode for machines without a GPU: a CPU context that emulates a device, so that code written for device
 * memory (the model classes on a CUDA context) runs its device paths on the CPU, and its mistakes show.
 *
 * <p>For an emulated context, the memory its kernels work on — a workspace frame's device memory
 * ({@link Tensor#scratch}), {@link DeviceMemory}, a {@link dev.moe4j.model.DeviceStore} — is host memory that Java treats as a
 * device's ({@link Tensor#isHostMemory} false): element access throws as on a GPU tensor, data moves in and out only
 * through {@link dev.moe4j.kernels.Copy}, and a kernel called on the context with a tensor in host memory (one a GPU
 * kernel would reject) throws {@link IllegalStateException} naming the argument. The kernels are the CPU's and copies
 * are exact, so results are the plain CPU context's bit for bit; the extra copies are the only cost. A check covers
 * the Java side only, and there the tensor API: reads of {@link Tensor#segment} bypass it, and what the CUDA kernels
 * compute and the ordering of work on a GPU's stream it cannot see.
 *
 * <p>Thread-safety: contexts may be registered and queried from any thread. A context stays emulated until it is
 * garbage-collected.
 */
public final class DeviceEmulation {
    private static final Set<Context> EMULATED =
            Collections.synchronizedSet(Collections.newSetFromMap(new WeakHashMap<>()));
    private static volatile boolean used; // keeps the lookups off the path of programs that never emulate

    private DeviceEmulation() {}

    /**
     * Makes a CPU context emulate a device from now on; returns it. Register a context before any memory is taken from
     * it (its workspace included): memory handed out before counts as host memory.
     *
     * @throws IllegalArgumentException if ctx is not a CPU context
     */
    public static Context emulate(Context ctx) {
        if (!ctx.device().isCpu())
            throw new IllegalArgumentException("only a CPU context emulates a device, got " + ctx);
        EMULATED.add(ctx);
        used = true;
        return ctx;
    }

    /** Whether ctx emulates a device. */
    public static boolean isEmulated(Context ctx) {
        return used && EMULATED.contains(ctx);
    }

    /** Whether ctx's kernels work on a device's memory apart from Java's host memory: a GPU's, or an emulated one. */
    static boolean hasDeviceMemory(Context ctx) {
        return !ctx.device().isCpu() || isEmulated(ctx);
    }
}
