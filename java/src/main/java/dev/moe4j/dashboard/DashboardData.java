package dev.moe4j.dashboard;

import dev.moe4j.engine.EngineMetrics;
import java.util.List;
import java.util.Objects;

/**
 * What a dashboard shows, as plain values ({@link Dashboard#html} renders it).
 *
 * @param title the page's heading
 * @param facts short lines under the heading (the model, the totals)
 * @param expertLoad tokens routed to each expert, per MoE layer (the heatmap's rows)
 * @param rebalances device balance (mean over max of the per-device work, 1 is perfect) before and after each live
 *     rebalance, oldest first
 * @param charts quantities over time
 * @param roofline fractions of the machine's ceilings reached (read bandwidth, peak), where measured
 */
public record DashboardData(
        String title,
        List<String> facts,
        List<EngineMetrics.LayerLoad> expertLoad,
        List<Rebalance> rebalances,
        List<Chart> charts,
        List<Fraction> roofline) {
    public DashboardData {
        Objects.requireNonNull(title, "title");
        facts = List.copyOf(facts);
        expertLoad = List.copyOf(expertLoad);
        rebalances = List.copyOf(rebalances);
        charts = List.copyOf(charts);
        roofline = List.copyOf(roofline);
    }

    /** One live rebalance of one layer at a step: balance in (0, 1] before and after. */
    public record Rebalance(int layer, int step, double before, double after) {}

    /** One chart: a title, the unit of its y axis, and its series (time in seconds on the x axis). */
    public record Chart(String title, String unit, List<TimeSeries.Samples> series) {
        public Chart {
            Objects.requireNonNull(title, "title");
            Objects.requireNonNull(unit, "unit");
            series = List.copyOf(series);
        }
    }

    /** A fraction (0 to 1, more drawn as a full bar) of a ceiling, with what it is of. */
    public record Fraction(String label, double value) {}
}
