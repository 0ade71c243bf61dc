package dev.moe4j.internal;

/**
 * When the calling thread last finished building a native call's argument descriptor. The kernel wrappers build their
 * descriptors inside the call's lambda ({@code Tensor.descriptor}, {@code QuantizedGroups.descriptor}), just before
 * the downcall, so {@code NativeLibrary.call} times a profiled call from the later of its start and the last
 * descriptor's end: what came before is Java, and a {@code Profiler} counts it so. The descriptors stamp the time only
 * while some profiler is running on some thread.
 *
 * <p>Thread-safe: each thread has its own stamp.
 */
public final class CallClock {
    private static final ThreadLocal<long[]> LAST = ThreadLocal.withInitial(() -> new long[1]);
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

    /** Whether descriptors should stamp their end: some profiler is running. */
    public static boolean counting() {
        return profilers > 0;
    }

    /** Records that this thread finished building a descriptor now ({@link System#nanoTime}). */
    public static void stamp() {
        LAST.get()[0] = System.nanoTime();
    }

    /** This thread's last {@link #stamp} ({@link System#nanoTime} units; 0 if none yet). */
    public static long last() {
        return LAST.get()[0];
    }
}
