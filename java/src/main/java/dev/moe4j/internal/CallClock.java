package dev.moe4j.internal;

/**
 * Java time spent inside a native call's lambda on something other than the native function: the kernel wrappers
 * build their argument descriptors there ({@code Tensor.descriptor}, {@code QuantizedGroups.descriptor}), and
 * {@code NativeLibrary.call} takes it off the call's time, so that a {@code Profiler} counts it as Java. The
 * descriptors time themselves only while some profiler is running on some thread.
 *
 * <p>Thread-safe: each thread has its own count.
 */
public final class CallClock {
    private static final ThreadLocal<long[]> SPENT = ThreadLocal.withInitial(() -> new long[1]);
    private static volatile int profilers;

    private CallClock() {}

    /** A profiler started (on any thread). */
    public static synchronized void profilerStarted() {
        profilers++;
    }

    /** A profiler closed (on any thread). */
    public static synchronized void profilerClosed() {
        profilers--;
    }

    /** Whether argument building should time itself: some profiler is running. */
    public static boolean counting() {
        return profilers > 0;
    }

    /** Counts {@code nanos} of argument building on this thread. */
    public static void add(long nanos) {
        SPENT.get()[0] += nanos;
    }

    /** The nanoseconds counted on this thread since the last call, which it resets. */
    public static long take() {
        long[] spent = SPENT.get();
        long nanos = spent[0];
        spent[0] = 0;
        return nanos;
    }
}
