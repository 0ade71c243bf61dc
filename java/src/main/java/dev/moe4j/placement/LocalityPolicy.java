package dev.moe4j.placement;

import java.util.Arrays;

/**
 * The balanced-locality placement of one layer ({@link Eplb#balancedLocality}): the refined hierarchical placement,
 * then replicas of hot experts moved onto other nodes where the balance gained outweighs the inter-node traffic it
 * adds.
 *
 * <p>Cost model: a step costs its most loaded device's tokens plus {@code crossNodeCost} times the tokens sent to a
 * node other than their expert's home node (the node its group was assigned to), per device. A replica off its home
 * node receives its share of the expert's tokens from the home node's side, so each such token crosses nodes once.
 * With a large cost nothing moves (the hierarchical result); with cost 0 the balance alone decides.
 *
 * <p>The search is greedy: while it lowers the cost, one slot of some other node changes from a replica of one of its
 * experts that has several (the one with the least load per replica) to a replica of one of the hottest experts of
 * the most loaded node; every node is re-packed after each change. Deterministic.
 */
final class LocalityPolicy {
    private LocalityPolicy() {}

    // candidate experts to spread: the most loaded node's experts with the most load per replica
    private static final int CANDIDATES = 4;

    static Eplb.Layer place(double[] load, int replicas, int groups, int nodes, int devices, double crossNodeCost) {
        Eplb.Layer start = RefinedPolicy.place(load, replicas, groups, nodes, devices);
        int experts = load.length;
        int slotsPerNode = replicas / nodes, devicesPerNode = devices / nodes, perDevice = replicas / devices;
        // the hierarchical result: home node of each expert, and replicas per (node, expert)
        int[] home = new int[experts];
        int[][] count = new int[nodes][experts];
        for (int p = 0; p < replicas; p++) {
            int e = start.phy2log()[p];
            home[e] = p / slotsPerNode;
            count[p / slotsPerNode][e]++;
        }
        State best = evaluate(load, count, home, devicesPerNode, perDevice, crossNodeCost);
        for (boolean improved = true; improved; ) {
            improved = false;
            int heavy = best.heaviestNode;
            Integer[] hot = hottest(load, best.total, count[heavy], CANDIDATES);
            search:
            for (int e : hot)
                for (int n = 0; n < nodes; n++) {
                    if (n == heavy) continue;
                    int giver = cheapestReplica(load, best.total, count[n], e);
                    if (giver < 0) continue;
                    count[n][giver]--;
                    count[n][e]++;
                    State s = evaluate(load, count, home, devicesPerNode, perDevice, crossNodeCost);
                    if (s.cost < best.cost * (1 - 1e-9)) {
                        best = s;
                        improved = true;
                        break search;
                    }
                    count[n][giver]++;
                    count[n][e]--;
                }
        }
        if (best.cross == 0) return start;
        int[] phy2log = new int[replicas], phyrank = new int[replicas], logcnt = best.total.clone();
        int[] rank = new int[experts];
        for (int n = 0; n < nodes; n++)
            for (int s = 0; s < slotsPerNode; s++) {
                int e = best.slots[n][s];
                phy2log[n * slotsPerNode + s] = e;
                phyrank[n * slotsPerNode + s] = rank[e]++;
            }
        return new Eplb.Layer(phy2log, phyrank, logcnt);
    }

    /** A candidate: replicas per expert over all nodes, each node's packed slots (expert ids), its costs. */
    private record State(int[] total, int[][] slots, double cross, double cost, int heaviestNode) {}

    private static State evaluate(
            double[] load, int[][] count, int[] home, int devicesPerNode, int perDevice, double crossNodeCost) {
        int nodes = count.length, experts = load.length;
        int[] total = new int[experts];
        for (int[] c : count) for (int e = 0; e < experts; e++) total[e] += c[e];
        int[][] slots = new int[nodes][];
        double max = 0, cross = 0;
        int heaviest = 0;
        for (int n = 0; n < nodes; n++) {
            // the node's items: its experts' replicas, each carrying load / (replicas over all nodes)
            int items = 0;
            for (int e = 0; e < experts; e++) if (count[n][e] > 0) items++;
            int[] id = new int[items], c = new int[items];
            double[] w = new double[items];
            int i = 0;
            for (int e = 0; e < experts; e++)
                if (count[n][e] > 0) {
                    id[i] = e;
                    c[i] = count[n][e];
                    // pack() splits w over the node's c replicas: give it the node's share of the expert's load
                    w[i] = load[e] * count[n][e] / total[e];
                    if (n != home[e]) cross += w[i];
                    i++;
                }
            RefinedPolicy.Packing p = RefinedPolicy.pack(w, c, devicesPerNode, perDevice);
            slots[n] = new int[p.slots().length];
            for (int s = 0; s < slots[n].length; s++) slots[n][s] = id[p.slots()[s]];
            if (p.max() > max) {
                max = p.max();
                heaviest = n;
            }
        }
        double cost = cross == 0 ? max : max + crossNodeCost * cross / (nodes * devicesPerNode);
        return new State(total, slots, cross, cost, heaviest);
    }

    /** Up to k experts present on a node, by load per replica, most first. */
    private static Integer[] hottest(double[] load, int[] total, int[] onNode, int k) {
        Integer[] present = new Integer[load.length];
        int m = 0;
        for (int e = 0; e < load.length; e++) if (onNode[e] > 0) present[m++] = e;
        Integer[] sorted = Arrays.copyOf(present, m);
        Arrays.sort(sorted, (a, b) -> Double.compare(load[b] / total[b], load[a] / total[a]));
        return Arrays.copyOf(sorted, Math.min(k, m));
    }

    /**
     * The expert on a node whose replica there costs least to give up: it must keep a replica somewhere (several in
     * all) and not be `except`; the least load per replica. -1 if none.
     */
    private static int cheapestReplica(double[] load, int[] total, int[] onNode, int except) {
        int best = -1;
        for (int e = 0; e < load.length; e++) {
            if (e == except || onNode[e] == 0 || total[e] < 2) continue;
            if (best < 0 || load[e] / total[e] < load[best] / total[best]) best = e;
        }
        return best;
    }
}
