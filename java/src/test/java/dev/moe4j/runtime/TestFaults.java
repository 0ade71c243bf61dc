package dev.moe4j.runtime;

import dev.moe4j.bindings.moe4j_h;

/**
 * Arms faults on a context for tests of failure handling ({@code moe4j_context_inject_fault}, which the library keeps
 * internal): here, in the test sources, so that tests of any package can provoke what they must survive. Like any call
 * on the context, arm faults between calls, on a thread that may use the context.
 */
public final class TestFaults {
    private TestFaults() {}

    /** The n-th allocation of ctx from now on (moe4j_alloc, native scratch growth) fails once; n ≥ 1. */
    public static void failAllocation(Context ctx, long n) {
        ctx.injectFault(moe4j_h.MOE4J_FAULT_ALLOCATION(), n);
    }

    /** Task {@code task} of ctx's next parallel run with more tasks fails as an allocation in it would; CPU only. */
    public static void failTask(Context ctx, long task) {
        ctx.injectFault(moe4j_h.MOE4J_FAULT_TASK_OUT_OF_MEMORY(), task);
    }

    /** Task {@code task} of ctx's next parallel run with more tasks throws an unexpected exception; CPU only. */
    public static void throwInTask(Context ctx, long task) {
        ctx.injectFault(moe4j_h.MOE4J_FAULT_TASK_EXCEPTION(), task);
    }

    /** Disarms ctx's faults. */
    public static void clear(Context ctx) {
        ctx.injectFault(moe4j_h.MOE4J_FAULT_NONE(), 0);
    }
}
