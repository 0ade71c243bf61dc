package dev.moe4j.routing;

import java.util.Arrays;

/**
 * Per-expert token counts: the last step's and a sliding window's over the last {@code window} steps, with
 * MaxVio ({@code max load / mean load − 1}, DeepSeek's balance measure; 0 is perfect balance).
 *
 * <p>Recording allocates nothing. Not thread-safe.
 */
public final class ExpertLoad {
    private final int experts;
    private final long[][] steps;
    private final long[] window;
    private int recorded;

    /**
     * @param window steps the sliding window covers
     */
    public ExpertLoad(int experts, int window) {
        if (experts <= 0 || window <= 0)
            throw new IllegalArgumentException(
                    "experts and window must be positive, got " + experts + " and " + window);
        this.experts = experts;
        this.steps = new long[window][experts];
        this.window = new long[experts];
    }

    /** Counts one step's assignments (dropped ones excluded). */
    public void record(Routing routing) {
        long[] slot = steps[recorded % steps.length];
        for (int e = 0; e < experts; e++) window[e] -= slot[e];
        Arrays.fill(slot, 0);
        for (int t = 0; t < routing.tokens(); t++)
            for (int j = 0; j < routing.k(); j++) {
                int e = routing.expert(t, j);
                if (e >= experts)
                    throw new IllegalArgumentException("expert " + e + " outside the " + experts + " counted");
                if (e >= 0) slot[e]++;
            }
        for (int e = 0; e < experts; e++) window[e] += slot[e];
        recorded++;
    }

    /** Tokens per expert in the last recorded step (zeros before the first). */
    public long[] lastStep() {
        return recorded == 0 ? new long[experts] : steps[(recorded - 1) % steps.length].clone();
    }

    /** Tokens per expert over the last min(recorded, window) steps. */
    public long[] window() {
        return window.clone();
    }

    /** Steps recorded so far. */
    public int recordedSteps() {
        return recorded;
    }

    /** {@code max(load) / mean(load) − 1}; 0 for an all-zero load. */
    public static double maxVio(long[] load) {
        long max = 0, sum = 0;
        for (long l : load) {
            max = Math.max(max, l);
            sum += l;
        }
        return sum == 0 ? 0 : max / ((double) sum / load.length) - 1;
    }
}
