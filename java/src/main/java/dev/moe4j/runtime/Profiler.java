package dev.moe4j.runtime;

import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Wall time spent inside native kernel calls, per native function, for the calling thread. While a profiler is
 * active on a thread, every kernel wrapper's call on that thread is timed ({@code System.nanoTime} around the
 * downcall alone: the wrappers build their argument descriptors before it, which is Java). What a caller's own elapsed
 * time exceeds the sum by is time spent in Java.
 *
 * <pre>{@code
 * try (Profiler p = Profiler.start()) {
 *     layer.forward(ctx, x, routing, out);
 *     long javaNanos = elapsed - p.totalNanos();
 * }
 * }</pre>
 *
 * On a CUDA context kernel calls return once their work is enqueued, so a kernel's entry holds its host part
 * (validation, launch) and the device time shows up in the next call that waits ({@code moe4j_synchronize}, a copy to
 * host memory). A profiler from {@link #startWaitingForDevice} makes each call on a CUDA context wait for its device
 * work before it returns, inside the timed call: every entry then holds its own device time, at the cost of
 * serializing host and device (the profiled steps run slower than unprofiled ones).
 *
 * <p>Confined to the thread that started it; {@link #close} restores the thread's previous profiler, if any.
 */
public final class Profiler implements AutoCloseable {
    private static final ThreadLocal<Profiler> CURRENT = new ThreadLocal<>();

    /** Nanoseconds and calls of one native function. */
    public record Entry(long nanos, long calls) {}

    private final Map<String, long[]> functions = new LinkedHashMap<>();
    private final String[] recentNames = new String[64];
    private final long[][] recent = new long[64][];
    private final Profiler previous;
    private final Thread owner = Thread.currentThread();
    private final boolean waitsForDevice;
    private boolean closed;

    private Profiler(Profiler previous, boolean waitsForDevice) {
        this.previous = previous;
        this.waitsForDevice = waitsForDevice;
    }

    /** Starts profiling the calling thread's native calls. */
    public static Profiler start() {
        return begin(false);
    }

    /** Starts profiling the calling thread's native calls, each call on a CUDA context waiting for its device work. */
    public static Profiler startWaitingForDevice() {
        return begin(true);
    }

    private static Profiler begin(boolean waitsForDevice) {
        Profiler p = new Profiler(CURRENT.get(), waitsForDevice);
        CURRENT.set(p);
        return p;
    }

    /** Whether calls on a CUDA context wait for their device work while this profiler is active. */
    public boolean waitsForDevice() {
        return waitsForDevice;
    }

    static Profiler current() {
        return CURRENT.get();
    }

    void record(String function, long nanos) {
        // The wrappers pass their functions' names as constants: a slot per name's hash, checked by identity, saves
        // the map lookup on almost every call (slots probed in turn, so that two names never take turns in one).
        int mask = recent.length - 1, slot = function.hashCode() & mask;
        while (recentNames[slot] != null && recentNames[slot] != function) slot = (slot + 1) & mask;
        long[] e = recent[slot];
        if (e == null) {
            e = functions.computeIfAbsent(function, f -> new long[2]);
            if (functions.size() <= recent.length / 2) { // a free slot stays for the probes to end at
                recentNames[slot] = function;
                recent[slot] = e;
            }
        }
        e[0] += nanos;
        e[1]++;
    }

    /** Time and calls per native function (e.g. {@code moe4j_fp8_expert_ffn_contiguous}), in first-call order. */
    public Map<String, Entry> entries() {
        Map<String, Entry> m = new LinkedHashMap<>();
        functions.forEach((f, e) -> m.put(f, new Entry(e[0], e[1])));
        return Collections.unmodifiableMap(m);
    }

    /** Nanoseconds in all native calls so far. */
    public long totalNanos() {
        long sum = 0;
        for (long[] e : functions.values()) sum += e[0];
        return sum;
    }

    /** Forgets what was recorded. */
    public void reset() {
        functions.clear();
        Arrays.fill(recentNames, null);
        Arrays.fill(recent, null);
    }

    @Override
    public void close() {
        if (Thread.currentThread() != owner)
            throw new IllegalStateException("a profiler is closed by the thread that started it");
        if (closed) return;
        closed = true;
        if (CURRENT.get() == this) CURRENT.set(previous);
    }
}
