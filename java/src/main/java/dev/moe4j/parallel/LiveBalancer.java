package dev.moe4j.parallel;

import dev.moe4j.placement.Eplb;
import dev.moe4j.placement.Placement;
import dev.moe4j.routing.ExpertLoad;
import dev.moe4j.routing.Routing;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;

/**
 * Live rebalancing of an {@link ExpertParallelMoe}: records each step's per-expert load over a window and, every
 * {@code interval} steps, computes a placement for the window's load (EPLB with the given policy, then, if asked,
 * matched to the current placement to move as few experts as possible) and installs it between steps: in the
 * background by default ({@link ExpertParallelMoe#rebalanceAsync}: the placement is computed and the weights staged
 * while steps go on, the switch happens between two steps), or on the calling thread.
 *
 * <p>Not thread-safe: call {@link #afterStep} from the thread that drives the layer's steps.
 */
public final class LiveBalancer {
    /**
     * One rebalance.
     *
     * @param step the step count after which it ran
     * @param balanceBefore mean / max device load of the window's load under the old placement
     * @param balanceAfter the same under the new one
     * @param nanos time spent computing the placement and moving weights (in the background when asynchronous)
     * @param stallNanos time the thread driving the steps spent on it: all of nanos when synchronous; when
     *     asynchronous, taking the window's load and switching to the staged placement
     */
    public record Report(
            int step,
            double balanceBefore,
            double balanceAfter,
            int movedExperts,
            long movedBytes,
            long nanos,
            long stallNanos) {}

    /** A background rebalance not reported yet. */
    private record InFlight(
            int step,
            long startNanos,
            long submitNanos,
            double[] load,
            Placement current,
            Placement[] next,
            long[] stagedAt,
            CompletableFuture<ExpertParallelMoe.RebalanceReport> report) {}

    private final ExpertParallelMoe moe;
    private final ExpertLoad load;
    private final int interval, groups, nodes;
    private final Eplb.Policy policy;
    private final boolean minimalMove, async;
    private int steps;
    private InFlight inFlight;

    /**
     * @param window steps of load the placement is computed from
     * @param interval steps between rebalances
     * @param groups expert groups (n_group), for the hierarchical policy
     * @param nodes the device group's nodes
     * @param async stage rebalances in the background ({@link ExpertParallelMoe#rebalanceAsync}) rather than on the
     *     calling thread
     */
    public LiveBalancer(
            ExpertParallelMoe moe,
            int window,
            int interval,
            int groups,
            int nodes,
            Eplb.Policy policy,
            boolean minimalMove,
            boolean async) {
        this.moe = Objects.requireNonNull(moe, "moe");
        if (interval <= 0) throw new IllegalArgumentException("interval must be positive, got " + interval);
        this.load = new ExpertLoad(moe.gate().config().experts(), window);
        this.interval = interval;
        this.groups = groups;
        this.nodes = nodes;
        this.policy = Objects.requireNonNull(policy, "policy");
        this.minimalMove = minimalMove;
        this.async = async;
    }

    /**
     * Records the step's routing; every interval steps rebalances. Returns what a rebalance did once it is in place
     * (synchronous: at once; asynchronous: at the first call after the layer switched to it), else null. An interval
     * that ends while a background rebalance is still staging is skipped.
     */
    public Report afterStep(Routing routing) {
        load.record(routing);
        steps++;
        Report done = finished();
        if (steps % interval != 0 || inFlight != null) return done;
        long start = System.nanoTime();
        long[] window = load.window();
        double[] w = new double[window.length];
        for (int e = 0; e < w.length; e++) w[e] = window[e];
        Placement current = moe.placement();
        if (!async) {
            Placement next = placementFor(w, current);
            ExpertParallelMoe.RebalanceReport r = moe.rebalance(next, 0);
            long nanos = System.nanoTime() - start;
            return new Report(
                    steps,
                    balance(current, moe.layer(), w),
                    balance(next, 0, w),
                    r.movedExperts(),
                    r.movedBytes(),
                    nanos,
                    nanos);
        }
        Placement[] next = new Placement[1];
        long[] stagedAt = new long[1];
        CompletableFuture<ExpertParallelMoe.RebalanceReport> report = moe.rebalanceAsync(
                        () -> {
                            next[0] = placementFor(w, current);
                            return next[0];
                        },
                        0)
                .whenComplete((r, e) -> stagedAt[0] = System.nanoTime());
        inFlight = new InFlight(steps, start, System.nanoTime() - start, w, current, next, stagedAt, report);
        return done;
    }

    /** The report of a background rebalance the layer has switched to, or null. */
    private Report finished() {
        InFlight f = inFlight;
        if (f == null || moe.rebalancing() || !f.report().isDone()) return null;
        inFlight = null;
        ExpertParallelMoe.RebalanceReport r = f.report().join(); // a failed staging throws here, on the stepping thread
        return new Report(
                f.step(),
                balance(f.current(), 0, f.load()),
                balance(f.next()[0], 0, f.load()),
                r.movedExperts(),
                r.movedBytes(),
                f.stagedAt()[0] - f.startNanos(),
                f.submitNanos() + moe.lastSwitchNanos());
    }

    private Placement placementFor(double[] w, Placement current) {
        Placement next =
                Eplb.rebalance(new double[][] {w}, current.replicas(), groups, nodes, current.devices(), policy);
        return minimalMove ? Eplb.minimizeMoves(next, current, new double[][] {w}, nodes) : next;
    }

    /** mean over max device load of a placement's layer under a load. */
    private static double balance(Placement p, int layer, double[] w) {
        return 1 / p.imbalance(layer, w);
    }
}
