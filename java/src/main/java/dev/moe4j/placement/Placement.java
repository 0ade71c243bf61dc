package dev.moe4j.placement;

import java.util.Arrays;
import java.util.HashSet;
import java.util.Set;

/**
 * Where each layer's experts live: {@code replicas} physical expert slots spread evenly over {@code devices}
 * (slot {@code p} is on device {@code p / (replicas / devices)}), each slot holding one logical expert. The same
 * three arrays as DeepSeek's EPLB returns.
 *
 * @param phy2log [layers][replicas]: the logical expert in each physical slot
 * @param log2phy [layers][experts][maxReplicas]: each expert's physical slots in replica-rank order, padded with -1
 * @param logcnt [layers][experts]: each expert's replica count (≥ 1)
 * @param devices devices the slots are spread over
 */
public record Placement(int[][] phy2log, int[][][] log2phy, int[][] logcnt, int devices) {
    public int layers() {
        return phy2log.length;
    }

    public int replicas() {
        return phy2log[0].length;
    }

    public int experts() {
        return logcnt[0].length;
    }

    public int slotsPerDevice() {
        return replicas() / devices;
    }

    public int deviceOf(int slot) {
        return slot / slotsPerDevice();
    }

    /**
     * Each device's load in one layer when every expert's load is split evenly over its replicas.
     *
     * @param load tokens per logical expert in that layer
     */
    public double[] deviceLoads(int layer, double[] load) {
        double[] d = new double[devices];
        for (int p = 0; p < replicas(); p++) {
            int e = phy2log[layer][p];
            d[deviceOf(p)] += load[e] / logcnt[layer][e];
        }
        return d;
    }

    /**
     * Tokens of one layer that go to a node other than their expert's home node, the home of an expert being the
     * node that holds the largest share of its group's load (ties: the lowest node). 0 for a hierarchical placement
     * (every group on one node). A replica's share of its expert's tokens is 1 / replicas.
     *
     * @param load tokens per logical expert in that layer
     * @param groups expert groups (n_group), dividing the experts
     * @param nodes nodes, dividing the devices
     */
    public double crossNodeTokens(int layer, double[] load, int groups, int nodes) {
        int experts = experts(), groupSize = experts / groups, slotsPerNode = replicas() / nodes;
        if (experts % groups != 0 || devices % nodes != 0)
            throw new IllegalArgumentException(groups + " groups or " + nodes + " nodes do not divide " + experts
                    + " experts, " + devices + " devices");
        double[][] groupOnNode = new double[groups][nodes];
        for (int p = 0; p < replicas(); p++) {
            int e = phy2log[layer][p];
            groupOnNode[e / groupSize][p / slotsPerNode] += load[e] / logcnt[layer][e];
        }
        double cross = 0;
        for (int g = 0; g < groups; g++) {
            int home = 0;
            for (int n = 1; n < nodes; n++) if (groupOnNode[g][n] > groupOnNode[g][home]) home = n;
            for (int n = 0; n < nodes; n++) if (n != home) cross += groupOnNode[g][n];
        }
        return cross;
    }

    /** max / mean device load of one layer: 1 is perfect balance. */
    public double imbalance(int layer, double[] load) {
        double[] d = deviceLoads(layer, load);
        double max = Arrays.stream(d).max().orElse(0),
                mean = Arrays.stream(d).average().orElse(0);
        return mean == 0 ? 1 : max / mean;
    }

    /**
     * The expert weights that must travel to go from {@code previous} to this placement: per layer and device, the
     * distinct experts it holds now and did not hold before (a second replica on the same device is a local copy).
     */
    public int movedFrom(Placement previous) {
        if (previous.layers() != layers() || previous.replicas() != replicas() || previous.devices != devices)
            throw new IllegalArgumentException("placements of different shapes cannot be compared");
        int moved = 0;
        int per = slotsPerDevice();
        for (int l = 0; l < layers(); l++)
            for (int dev = 0; dev < devices; dev++) {
                Set<Integer> before = new HashSet<>(), now = new HashSet<>();
                for (int s = dev * per; s < (dev + 1) * per; s++) {
                    before.add(previous.phy2log[l][s]);
                    now.add(phy2log[l][s]);
                }
                now.removeAll(before);
                moved += now.size();
            }
        return moved;
    }

    /** How many distinct experts two expert lists share. */
    static int common(int[] a, int[] b) {
        Set<Integer> x = new HashSet<>(), y = new HashSet<>();
        for (int e : a) x.add(e);
        for (int e : b) y.add(e);
        x.retainAll(y);
        return x.size();
    }
}
