package dev.moe4j.kernels;

import dev.moe4j.bindings.moe4j_h;
import dev.moe4j.runtime.Context;
import dev.moe4j.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Objects;

/**
 * A hint that a context's next parallel kernel call reads a tensor, a weight matrix typically ({@code
 * moe4j_prefetch}): on a CPU context of more than one thread, the worker threads that wait for that call meanwhile
 * prefetch the start of each thread's share of the tensor's bytes (up to 4 MiB a thread) into their caches, while the
 * caller goes on with small kernels and Java. The next call that runs on more than one thread cancels what is left. A
 * decode step's weight-streaming calls are separated by such gaps (norms, RoPE, routing, the Java between calls), in
 * which the memory bus would otherwise idle.
 *
 * <p>Only workers still awake take a hint (they wait awake for 2 ms after a call, as they do between a decode step's
 * calls; a sleeping worker is not woken for it).
 *
 * <p>A hint changes no result. On a CPU context of one thread, on a CUDA context and on one whose hints are off
 * ({@link Context#enableHints}) it does nothing.
 *
 * <p>The tensor's descriptor is written once, here, so that {@link #on} costs a downcall and no allocation: a model
 * keeps one per weight. Immutable and safe to share between threads; {@link #on} is a call on its context, one
 * thread at a time as every call on a context. The tensor's memory may be freed while a hint for it is in flight or
 * afterwards: a prefetch never faults, and a hint for freed memory prefetches nothing useful.
 */
public final class Prefetch {
    private final MemorySegment descriptor;

    /**
     * A hint for t: any dtype and rank, the bytes from its first element to its last; in the memory of the contexts
     * it will be given to (checked by {@link #on}).
     *
     * @throws IllegalStateException if t's memory was freed or belongs to another thread's confined arena
     */
    public Prefetch(Tensor t) {
        Objects.requireNonNull(t, "t");
        // memory the GC frees with this hint: a descriptor outlives no hint, and a hint may outlive nothing it names
        descriptor = t.descriptor(Arena.ofAuto(), "t");
    }

    /**
     * Hints that ctx's next parallel call reads the tensor.
     *
     * @throws dev.moe4j.runtime.Moe4jException naming argument 't' if the tensor is not in the memory of ctx's device
     *     (a CPU context of more than one thread with hints on: the others skip the hint unchecked)
     * @throws IllegalStateException if ctx is closed or another thread is using it
     */
    public void on(Context ctx) {
        // where the native call would only check its argument, the Java side skips it: on a GPU a decode step's
        // calls are launch-bound host time
        if (!ctx.device().isCpu() || ctx.threads() < 2 || !ctx.hintsEnabled()) return;
        ctx.call("moe4j_prefetch", ptr -> moe4j_h.moe4j_prefetch(ptr, descriptor));
    }
}
