package dev.moe4j.parallel;

import dev.moe4j.placement.Eplb;
import dev.moe4j.placement.Placement;
import dev.moe4j.routing.ExpertLoad;
import dev.moe4j.routing.Routing;
import java.util.Objects;

/**
 * Live rebalancing of an {@link ExpertParallelMoe}: records each step's per-expert load over a window and, every
 * {@code interval} steps, computes a placement for the window's load (EPLB with the given policy, then, if asked,
 * matched to the current placement to move as few experts as possible) and installs it between steps.
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
     * @param nanos time spent computing the placement and moving weights
     */
    public record Report(
            int step, double balanceBefore, double balanceAfter, int movedExperts, long movedBytes, long nanos) {}

    private final ExpertParallelMoe moe;
    private final ExpertLoad load;
    private final int interval, groups, nodes;
    private final Eplb.Policy policy;
    private final boolean minimalMove;
    private int steps;

    /**
     * @param window steps of load the placement is computed from
     * @param interval steps between rebalances
     * @param groups expert groups (n_group), for the hierarchical policy
     * @param nodes the device group's nodes
     */
    public LiveBalancer(
            ExpertParallelMoe moe,
            int window,
            int interval,
            int groups,
            int nodes,
            Eplb.Policy policy,
            boolean minimalMove) {
        this.moe = Objects.requireNonNull(moe, "moe");
        if (interval <= 0) throw new IllegalArgumentException("interval must be positive, got " + interval);
        this.load = new ExpertLoad(moe.gate().config().experts(), window);
        this.interval = interval;
        this.groups = groups;
        this.nodes = nodes;
        this.policy = Objects.requireNonNull(policy, "policy");
        this.minimalMove = minimalMove;
    }

    /** Records the step's routing; every interval steps rebalances and returns what it did, else null. */
    public Report afterStep(Routing routing) {
        load.record(routing);
        steps++;
        if (steps % interval != 0) return null;
        long start = System.nanoTime();
        long[] window = load.window();
        double[] w = new double[window.length];
        for (int e = 0; e < w.length; e++) w[e] = window[e];
        Placement current = moe.placement();
        Placement next =
                Eplb.rebalance(new double[][] {w}, current.replicas(), groups, nodes, current.devices(), policy);
        if (minimalMove) next = Eplb.minimizeMoves(next, current, new double[][] {w}, nodes);
        double before = 1 / current.imbalance(moe.layer(), w), after = 1 / next.imbalance(0, w);
        ExpertParallelMoe.RebalanceReport r = moe.rebalance(next, 0);
        return new Report(steps, before, after, r.movedExperts(), r.movedBytes(), System.nanoTime() - start);
    }
}
