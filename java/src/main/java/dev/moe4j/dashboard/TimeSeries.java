package dev.moe4j.dashboard;

import java.util.Objects;

/**
 * A bounded history of one quantity: the last {@code capacity} samples (time in seconds, value) in a ring of primitive
 * arrays, so that adding a sample allocates nothing; older samples are overwritten. Thread-safe.
 */
public final class TimeSeries {
    /** A copy of a series' samples, oldest first; a NaN value is a gap. */
    public record Samples(String name, double[] seconds, double[] values) {
        public Samples {
            Objects.requireNonNull(name, "name");
            if (seconds.length != values.length)
                throw new IllegalArgumentException(
                        "seconds and values differ in length: " + seconds.length + " and " + values.length);
            seconds = seconds.clone();
            values = values.clone();
        }

        @Override
        public double[] seconds() {
            return seconds.clone();
        }

        @Override
        public double[] values() {
            return values.clone();
        }

        public int size() {
            return values.length;
        }
    }

    private final String name;
    private final double[] seconds;
    private final double[] values;
    private long added;

    /**
     * @param name what the series measures, with its unit where the chart's does not say it (shown in the legend)
     * @param capacity the most samples kept, ≥ 2
     */
    public TimeSeries(String name, int capacity) {
        this.name = Objects.requireNonNull(name, "name");
        if (capacity < 2) throw new IllegalArgumentException("capacity must be ≥ 2, got " + capacity);
        seconds = new double[capacity];
        values = new double[capacity];
    }

    public String name() {
        return name;
    }

    /**
     * Appends a sample, overwriting the oldest when full.
     *
     * @param atSeconds when, in seconds from any fixed origin (finite)
     * @param value the quantity then; NaN for "unknown" (a gap in the chart)
     */
    public synchronized void add(double atSeconds, double value) {
        if (!Double.isFinite(atSeconds))
            throw new IllegalArgumentException("atSeconds must be finite, got " + atSeconds);
        int i = (int) (added++ % values.length);
        seconds[i] = atSeconds;
        values[i] = value;
    }

    /** The samples kept, oldest first. */
    public synchronized Samples snapshot() {
        int n = (int) Math.min(added, values.length);
        int start = added <= values.length ? 0 : (int) (added % values.length);
        double[] t = new double[n], v = new double[n];
        for (int k = 0; k < n; k++) {
            t[k] = seconds[(start + k) % values.length];
            v[k] = values[(start + k) % values.length];
        }
        return new Samples(name, t, v);
    }

    @Override
    public synchronized String toString() {
        return name + " (" + Math.min(added, values.length) + " of " + values.length + " samples)";
    }
}
