package dev.moe4j.dashboard;

import dev.moe4j.engine.EngineMetrics;
import dev.moe4j.routing.Routing;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;

/**
 * Collects what a {@link Dashboard} shows while something runs: time series in bounded rings ({@link TimeSeries}, the
 * last {@code capacity} samples each, nothing allocated per sample), tokens routed to each expert per layer (counts
 * added in place), the last {@link Dashboard#MAX_REBALANCES} rebalances, roofline fractions and facts. Times are seconds
 * since the recorder was made. Thread-safe: a sampler thread, the model's MoE observer and a page request may use one
 * recorder at once.
 */
public final class Recorder {
    /** Samples kept per series by default: ten minutes at one per second. */
    public static final int DEFAULT_CAPACITY = 600;

    /** The charts {@link #sample(EngineMetrics)} fills. */
    public static final String THROUGHPUT = "throughput", LATENCY = "latency", KV_CACHE = "KV cache";

    private record Chart(String unit, Map<String, TimeSeries> series) {}

    private final String title;
    private final int capacity;
    private final long origin = System.nanoTime();
    private final List<String> facts = new ArrayList<>();
    private final Map<String, Chart> charts = new LinkedHashMap<>();
    private final Map<Integer, long[]> load = new TreeMap<>();
    private final ArrayDeque<DashboardData.Rebalance> rebalances = new ArrayDeque<>();
    private final List<DashboardData.Fraction> roofline = new ArrayList<>();

    /**
     * @param title the page's heading
     * @param capacity samples kept per series, ≥ 2
     */
    public Recorder(String title, int capacity) {
        this.title = Objects.requireNonNull(title, "title");
        if (capacity < 2) throw new IllegalArgumentException("capacity must be ≥ 2, got " + capacity);
        this.capacity = capacity;
    }

    /** Seconds since this recorder was made. */
    public double seconds() {
        return (System.nanoTime() - origin) / 1e9;
    }

    /** Replaces the lines under the heading. */
    public synchronized void facts(List<String> lines) {
        facts.clear();
        facts.addAll(lines);
    }

    /**
     * Adds a sample now to the series {@code name} of the chart {@code chart} (both made on first use; a chart's unit
     * is the one given first).
     *
     * @param value NaN for "unknown" (a gap)
     */
    public synchronized void record(String chart, String unit, String name, double value) {
        Chart c = charts.computeIfAbsent(chart, k -> new Chart(unit, new LinkedHashMap<>()));
        c.series().computeIfAbsent(name, n -> new TimeSeries(n, capacity)).add(seconds(), value);
    }

    /**
     * Counts one step's routing of a MoE layer into its expert load (expert ids outside [0, experts) are skipped).
     *
     * @param experts the layer's routed experts, ≥ 1
     */
    public synchronized void routed(int layer, Routing routing, int experts) {
        long[] counts = load.computeIfAbsent(layer, l -> new long[experts]);
        for (int t = 0; t < routing.tokens(); t++)
            for (int r = 0; r < routing.k(); r++) {
                int e = routing.expert(t, r);
                if (e >= 0 && e < counts.length) counts[e]++;
            }
    }

    /** A live rebalance of a layer at a step: balance (mean over max device load) before and after. */
    public synchronized void rebalance(int layer, int step, double before, double after) {
        if (rebalances.size() == Dashboard.MAX_REBALANCES) rebalances.pollFirst();
        rebalances.add(new DashboardData.Rebalance(layer, step, before, after));
    }

    /** A fraction of a ceiling reached (NaN: unmeasured); a second call with the same label replaces the first. */
    public synchronized void roofline(String label, double fraction) {
        roofline.removeIf(f -> f.label().equals(label));
        roofline.add(new DashboardData.Fraction(label, fraction));
    }

    /**
     * Samples an engine: tokens/s (prompt and generated, over the engine's rate window), TTFT and TPOT (p50 and p90 of
     * the last requests, in ms), KV cache blocks in use (%), expert load per layer (the engine's totals) and the
     * engine's recent rebalances.
     */
    public synchronized void sample(EngineMetrics m) {
        record(THROUGHPUT, "tokens/s", "prompt", m.promptTokensPerSecond());
        record(THROUGHPUT, "tokens/s", "generated", m.generatedTokensPerSecond());
        record(LATENCY, "ms", "TTFT p50", 1e3 * m.timeToFirstToken().p50());
        record(LATENCY, "ms", "TTFT p90", 1e3 * m.timeToFirstToken().p90());
        record(LATENCY, "ms", "TPOT p50", 1e3 * m.timePerOutputToken().p50());
        record(LATENCY, "ms", "TPOT p90", 1e3 * m.timePerOutputToken().p90());
        record(KV_CACHE, "% of blocks in use", "used", 100.0 * m.cacheBlocksUsed() / Math.max(1, m.cacheBlocksTotal()));
        for (EngineMetrics.LayerLoad l : m.expertLoad()) load.put(l.layer(), l.tokensPerExpert());
        rebalances.clear();
        for (EngineMetrics.Rebalance r : m.recentRebalances())
            rebalance(r.layer(), r.step(), r.balanceBefore(), r.balanceAfter());
    }

    /** What the dashboard shows now. */
    public synchronized DashboardData data() {
        List<EngineMetrics.LayerLoad> layers = new ArrayList<>();
        load.forEach((layer, counts) -> layers.add(new EngineMetrics.LayerLoad(layer, counts)));
        List<DashboardData.Chart> all = new ArrayList<>();
        charts.forEach((name, c) -> {
            List<TimeSeries.Samples> series = new ArrayList<>();
            for (TimeSeries s : c.series().values()) series.add(s.snapshot());
            all.add(new DashboardData.Chart(name, c.unit(), series));
        });
        return new DashboardData(title, facts, layers, new ArrayList<>(rebalances), all, roofline);
    }

    /**
     * Writes the dashboard as a static HTML report.
     *
     * @return the file's absolute path
     * @throws java.io.UncheckedIOException if it cannot be written
     */
    public Path write(Path file) {
        return Dashboard.write(data(), file);
    }
}
