package dev.moe4j.bench;

import dev.moe4j.placement.Eplb;
import dev.moe4j.placement.Placement;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Expert placement on a Zipf-skewed routing workload with DeepSeek-V3's shapes: 256 experts in 8 groups, top-8 per
 * token, 32 redundant slots (288), 32 devices in 4 nodes (and 8 devices in 1 node). Every step routes 4,096 tokens;
 * expert popularity follows Zipf(s) over a random order and drifts a little from window to window.
 *
 * <p>Prints, per policy, the max/mean device load: on the window the placement was computed from, and on the next
 * window (what a deployment sees, since placements are computed from history); then the bytes a rebalance moves
 * at each window with and without minimal-move matching (V3 expert: 3 FP8 matrices of 2048 x 7168 plus scales).
 */
public final class PlacementReport {
    static final int EXPERTS = 256, GROUPS = 8, TOP_K = 8, TOKENS = 4096, STEPS_PER_WINDOW = 20, WINDOWS = 12;
    static final long EXPERT_BYTES = 3L * 2048 * 7168 + 3L * 4 * 16 * 56;

    public static void main(String[] args) {
        skewed();
        double s = args.length > 0 ? Double.parseDouble(args[0]) : 1.0;
        SplittableRandom random = new SplittableRandom(2026);
        double[] popularity = zipf(random, s);
        double[][] windows = new double[WINDOWS][];
        for (int w = 0; w < WINDOWS; w++) {
            windows[w] = route(random, popularity);
            for (int e = 0; e < EXPERTS; e++) popularity[e] *= Math.exp(0.15 * random.nextGaussian()); // drift
        }
        System.out.printf(
                "Zipf s=%.2f routing, %d experts, top-%d, %d tokens x %d steps per window%n%n",
                s, EXPERTS, TOP_K, TOKENS, STEPS_PER_WINDOW);
        for (int[] shape : new int[][] {{32, 4}, {8, 1}}) {
            int devices = shape[0], nodes = shape[1];
            System.out.printf(
                    "%d devices in %d nodes: max/mean device load (mean over %d windows)%n",
                    devices, nodes, WINDOWS - 1);
            System.out.printf("  %-32s %12s %12s%n", "placement", "same window", "next window");
            report("no balancing (contiguous, 256)", windows, devices, null, nodes);
            report("EPLB, 288 slots", windows, devices, Eplb.Policy.DEEPSEEK, nodes);
            report("refined EPLB, 288 slots", windows, devices, Eplb.Policy.REFINED, nodes);
            moved(windows, devices, nodes);
            System.out.println();
        }
    }

    static final int SKEWED_LAYERS = 16;
    static final double SKEW = 1.2;

    /** A policy of the skewed table: its name, and the placement of one layer's load. */
    record Candidate(String name, java.util.function.Function<double[][], Placement> place) {}

    /**
     * The skewed workload of the placement issue: per layer, expert loads Zipf(1.2) over a random order of V3's 256
     * experts (8 groups), so the hottest expert carries about a quarter of the tokens; 288 slots on 32 devices in 4
     * nodes. Every policy side by side: mean and worst max/mean device load, cross-node tokens, weights moved from the
     * previous layer's placement (as a rebalance from one load to the next would), time per layer; and the node-level
     * bound no hierarchical placement can beat.
     */
    static void skewed() {
        SplittableRandom random = new SplittableRandom(2026);
        double[][] layers = new double[SKEWED_LAYERS][];
        for (int l = 0; l < SKEWED_LAYERS; l++) {
            double[] p = zipf(random, SKEW);
            double total = Arrays.stream(p).sum();
            layers[l] = new double[EXPERTS];
            for (int e = 0; e < EXPERTS; e++) layers[l][e] = Math.round(p[e] / total * 1_000_000);
        }
        double hottest = 0, bound = 0;
        for (double[] load : layers) {
            double total = Arrays.stream(load).sum();
            hottest += Arrays.stream(load).max().orElseThrow() / total / SKEWED_LAYERS;
            bound += Eplb.nodeBound(load, GROUPS, 4) / SKEWED_LAYERS;
        }
        System.out.printf(
                "Skewed loads: Zipf(%.1f) expert loads, hottest expert %.1f%% of the tokens, %d layers; 256 experts"
                        + " in 8 groups, 288 slots, 32 devices in 4 nodes%n",
                SKEW, 100 * hottest, SKEWED_LAYERS);
        System.out.printf(
                "  %-34s %9s %9s %12s %14s %10s%n",
                "policy", "max/mean", "worst", "cross-node", "moved/layer", "ms/layer");
        List<Candidate> policies = List.of(
                new Candidate("EPLB (hierarchical)", l -> Eplb.rebalance(l, 288, GROUPS, 4, 32)),
                new Candidate("refined", l -> Eplb.rebalance(l, 288, GROUPS, 4, 32, Eplb.Policy.REFINED)),
                new Candidate(
                        "balanced-locality, C = 8",
                        l -> Eplb.rebalance(l, 288, GROUPS, 4, 32, Eplb.Policy.BALANCED_LOCALITY, 8)),
                new Candidate(
                        "balanced-locality, C = 2",
                        l -> Eplb.rebalance(l, 288, GROUPS, 4, 32, Eplb.Policy.BALANCED_LOCALITY, 2)),
                new Candidate(
                        "balanced-locality, C = 0.5",
                        l -> Eplb.rebalance(l, 288, GROUPS, 4, 32, Eplb.Policy.BALANCED_LOCALITY, 0.5)),
                new Candidate(
                        "balanced-locality, C = 0",
                        l -> Eplb.rebalance(l, 288, GROUPS, 4, 32, Eplb.Policy.BALANCED_LOCALITY, 0)),
                new Candidate(
                        "EPLB global (no node rule)", l -> Eplb.rebalance(l, 288, GROUPS, 4, 32, Eplb.Policy.GLOBAL)));
        for (Candidate c : policies) {
            for (int warm = 0; warm < 2; warm++) c.place().apply(new double[][] {layers[warm]});
            double mean = 0, worst = 0, cross = 0;
            long moved = 0, nanos = 0;
            Placement previous = null;
            for (double[] load : layers) {
                long t0 = System.nanoTime();
                Placement p = c.place().apply(new double[][] {load});
                nanos += System.nanoTime() - t0;
                double imbalance = p.imbalance(0, load);
                mean += imbalance / SKEWED_LAYERS;
                worst = Math.max(worst, imbalance);
                cross += p.crossNodeTokens(0, load, GROUPS, 4)
                        / Arrays.stream(load).sum()
                        / SKEWED_LAYERS;
                if (previous != null)
                    moved += Eplb.minimizeMoves(p, previous, new double[][] {load}, 4)
                            .movedFrom(previous);
                previous = p;
            }
            System.out.printf(
                    "  %-34s %9.3f %9.3f %11.1f%% %8.1f GB %10.1f%n",
                    c.name(),
                    mean,
                    worst,
                    100 * cross,
                    moved * EXPERT_BYTES / 1e9 / (SKEWED_LAYERS - 1),
                    nanos / 1e6 / SKEWED_LAYERS);
        }
        System.out.printf(
                "  %-34s %9.3f   (no placement that keeps each group on one node does better)%n%n",
                "node-level bound", bound);
    }

    static void report(String name, double[][] windows, int devices, Eplb.Policy policy, int nodes) {
        double same = 0, next = 0;
        for (int w = 0; w + 1 < WINDOWS; w++) {
            Placement p = policy == null
                    ? Eplb.rebalance(new double[][] {windows[w]}, EXPERTS, 1, 1, devices, Eplb.Policy.GLOBAL)
                    : Eplb.rebalance(new double[][] {windows[w]}, EXPERTS + 32, GROUPS, nodes, devices, policy);
            if (policy == null) p = contiguous(devices);
            same += p.imbalance(0, windows[w]);
            next += p.imbalance(0, windows[w + 1]);
        }
        System.out.printf("  %-32s %12.3f %12.3f%n", name, same / (WINDOWS - 1), next / (WINDOWS - 1));
    }

    /** Experts 0..255 in order, 256 / devices per device, one replica each. */
    static Placement contiguous(int devices) {
        int[][] phy2log = {new int[EXPERTS]};
        int[][][] log2phy = new int[1][EXPERTS][1];
        int[][] logcnt = new int[1][EXPERTS];
        for (int e = 0; e < EXPERTS; e++) {
            phy2log[0][e] = e;
            log2phy[0][e][0] = e;
            logcnt[0][e] = 1;
        }
        return new Placement(phy2log, log2phy, logcnt, devices);
    }

    static void moved(double[][] windows, int devices, int nodes) {
        long plain = 0, minimal = 0;
        Placement current =
                Eplb.rebalance(new double[][] {windows[0]}, EXPERTS + 32, GROUPS, nodes, devices, Eplb.Policy.REFINED);
        Placement currentMinimal = current;
        for (int w = 1; w < WINDOWS; w++) {
            Placement next = Eplb.rebalance(
                    new double[][] {windows[w]}, EXPERTS + 32, GROUPS, nodes, devices, Eplb.Policy.REFINED);
            plain += next.movedFrom(current);
            Placement matched = Eplb.minimizeMoves(next, currentMinimal, new double[][] {windows[w]}, nodes);
            minimal += matched.movedFrom(currentMinimal);
            current = next;
            currentMinimal = matched;
        }
        int rebalances = WINDOWS - 1;
        System.out.printf(
                "  moved per rebalance (refined): plain %.1f experts = %.2f GB, minimal-move %.1f experts ="
                        + " %.2f GB (%.0f%% less)%n",
                (double) plain / rebalances,
                plain * EXPERT_BYTES / 1e9 / rebalances,
                (double) minimal / rebalances,
                minimal * EXPERT_BYTES / 1e9 / rebalances,
                100.0 * (plain - minimal) / Math.max(1, plain));
    }

    /** Zipf(s) weights over a random order of the experts. */
    static double[] zipf(SplittableRandom random, double s) {
        int[] order = random.ints(0, Integer.MAX_VALUE).limit(EXPERTS).toArray();
        Integer[] idx = new Integer[EXPERTS];
        for (int e = 0; e < EXPERTS; e++) idx[e] = e;
        Arrays.sort(idx, (a, b) -> Integer.compare(order[a], order[b]));
        double[] p = new double[EXPERTS];
        for (int r = 0; r < EXPERTS; r++) p[idx[r]] = 1 / Math.pow(r + 1, s);
        return p;
    }

    /** Tokens per expert over one window: each token draws TOP_K distinct experts by popularity. */
    static double[] route(SplittableRandom random, double[] popularity) {
        double[] cumulative = new double[EXPERTS];
        double sum = 0;
        for (int e = 0; e < EXPERTS; e++) cumulative[e] = sum += popularity[e];
        double[] load = new double[EXPERTS];
        boolean[] chosen = new boolean[EXPERTS];
        int[] picks = new int[TOP_K];
        for (int t = 0; t < TOKENS * STEPS_PER_WINDOW; t++) {
            for (int j = 0; j < TOP_K; j++) {
                int e;
                do {
                    int i = Arrays.binarySearch(cumulative, random.nextDouble() * sum);
                    e = i >= 0 ? i : -i - 1;
                } while (chosen[e]);
                chosen[e] = true;
                picks[j] = e;
                load[e]++;
            }
            for (int e : picks) chosen[e] = false;
        }
        return load;
    }
}
