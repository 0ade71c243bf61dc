package dev.moe4j.placement;

import java.util.Arrays;

/**
 * The refined hierarchical placement of one layer ({@link Eplb.Policy#REFINED}): EPLB's constraint (each expert group
 * on one node, the node's experts replicated onto its own slots) with better choices inside it.
 *
 * <ol>
 *   <li>Groups onto nodes: the assignment (groups / nodes per node) with the smallest most loaded node, by branch and
 *       bound (EPLB packs greedily).
 *   <li>Within each node, replica counts and packing together: counts start at EPLB's (each extra slot to the expert
 *       with the most load per replica); slots are packed onto the node's devices largest first, each to the least
 *       loaded device with room, preferring one that holds no replica of the same expert; then a local search swaps
 *       replicas between the most loaded device and any other device of the node while that lowers the larger of the
 *       two loads. Around that, a search over the counts moves one replica from an expert to another (re-splitting a
 *       hot expert's load, e.g. 8 replicas on 8 devices instead of 9 that put two on one device) and keeps the move
 *       when the packed maximum drops.
 * </ol>
 *
 * <p>Slot load is the expert's load divided by its replica count, as everywhere in this package. Deterministic.
 */
final class RefinedPolicy {
    private RefinedPolicy() {}

    // the count search tries moving a replica to one of this many experts with the most load per replica
    private static final int RECEIVERS = 8;
    private static final double EPS = 1e-9;
    // two replicas of one expert on a device are avoided when that costs at most this much of the maximum load
    private static final double DUPLICATE_SLACK = 1e-3;

    static Eplb.Layer place(double[] load, int replicas, int groups, int nodes, int devices) {
        int experts = load.length, groupSize = experts / groups, groupsPerNode = groups / nodes;
        int slotsPerNode = replicas / nodes, devicesPerNode = devices / nodes, perDevice = replicas / devices;
        double[] groupLoad = new double[groups];
        for (int e = 0; e < experts; e++) groupLoad[e / groupSize] += load[e];
        int[] nodeOfGroup = groupsOntoNodes(groupLoad, nodes, groupsPerNode);

        int[] phy2log = new int[replicas], phyrank = new int[replicas], logcnt = new int[experts];
        for (int n = 0; n < nodes; n++) {
            int[] members = new int[groupsPerNode * groupSize];
            int m = 0;
            for (int g = 0; g < groups; g++)
                if (nodeOfGroup[g] == n) for (int j = 0; j < groupSize; j++) members[m++] = g * groupSize + j;
            double[] w = new double[members.length];
            for (int i = 0; i < members.length; i++) w[i] = load[members[i]];
            Packing p = planNode(w, slotsPerNode, devicesPerNode, perDevice);
            int[] rank = new int[members.length];
            for (int s = 0; s < slotsPerNode; s++) {
                int local = p.slots[s], q = n * slotsPerNode + s;
                phy2log[q] = members[local];
                phyrank[q] = rank[local]++;
            }
            for (int i = 0; i < members.length; i++) logcnt[members[i]] = p.counts[i];
        }
        return new Eplb.Layer(phy2log, phyrank, logcnt);
    }

    /** The assignment of groups to nodes (perNode each) that minimizes the most loaded node. */
    static int[] groupsOntoNodes(double[] groupLoad, int nodes, int perNode) {
        int groups = groupLoad.length;
        Integer[] order = new Integer[groups];
        for (int g = 0; g < groups; g++) order[g] = g;
        Arrays.sort(order, (a, b) -> Double.compare(groupLoad[b], groupLoad[a]));
        GroupSearch s = new GroupSearch(groupLoad, order, nodes, perNode);
        s.search(0, 0);
        return s.best;
    }

    private static final class GroupSearch {
        final double[] load;
        final Integer[] order;
        final double[] nodeLoad;
        final int[] nodeCount, current;
        final int perNode;
        int[] best;
        double bestMax = Double.POSITIVE_INFINITY;
        long budget = 200_000; // nodes of the search tree; past it the best found so far stands

        GroupSearch(double[] load, Integer[] order, int nodes, int perNode) {
            this.load = load;
            this.order = order;
            this.perNode = perNode;
            nodeLoad = new double[nodes];
            nodeCount = new int[nodes];
            current = new int[load.length];
        }

        void search(int i, double max) {
            if (max >= bestMax - EPS || --budget < 0 && best != null) return;
            if (i == order.length) {
                bestMax = max;
                best = current.clone();
                return;
            }
            int g = order[i];
            for (int n = 0; n < nodeLoad.length; n++) {
                if (nodeCount[n] == perNode) continue;
                // empty nodes are interchangeable: try the first only
                if (nodeCount[n] == 0 && n > 0 && nodeCount[n - 1] == 0) break;
                nodeLoad[n] += load[g];
                nodeCount[n]++;
                current[g] = n;
                search(i + 1, Math.max(max, nodeLoad[n]));
                nodeLoad[n] -= load[g];
                nodeCount[n]--;
            }
        }
    }

    /**
     * A node's plan: replicas per expert, the expert (local index) of each slot, device by device, its most loaded
     * device's load, and the devices holding two replicas of one expert.
     */
    record Packing(int[] counts, int[] slots, double max, int duplicates) {}

    /** Replica counts and packing for one node's experts (loads w) on devices × perDevice slots. */
    static Packing planNode(double[] w, int slots, int devices, int perDevice) {
        int[] counts = new int[w.length];
        Arrays.fill(counts, 1);
        for (int extra = w.length; extra < slots; extra++) {
            int best = 0;
            for (int e = 1; e < w.length; e++) if (w[e] / counts[e] > w[best] / counts[best]) best = e;
            counts[best]++;
        }
        Packing start = pack(w, counts, devices, perDevice);
        // first the balance: moves to the experts with the most load per replica
        Packing balanced = moveReplicas(
                w,
                start,
                devices,
                perDevice,
                Math.min(RECEIVERS, w.length),
                (e, best) -> best.counts[e] > 1,
                (p, best) -> p.max < best.max * (1 - EPS));
        if (balanced.duplicates == 0) return balanced;
        // then fewer doubled replicas at the same balance (within DUPLICATE_SLACK): a doubled expert gives a replica
        // to any expert
        double bound = balanced.max * (1 + DUPLICATE_SLACK);
        return moveReplicas(
                w,
                balanced,
                devices,
                perDevice,
                w.length,
                (e, best) -> doubled(best, e, perDevice),
                (p, best) -> p.duplicates < best.duplicates && p.max <= bound);
    }

    /** Whether some device of the packing holds two replicas of expert e. */
    private static boolean doubled(Packing p, int e, int perDevice) {
        if (p.counts[e] < 2) return false;
        for (int d = 0; d < p.slots.length / perDevice; d++) {
            int held = 0;
            for (int i = d * perDevice; i < (d + 1) * perDevice; i++) if (p.slots[i] == e) held++;
            if (held > 1) return true;
        }
        return false;
    }

    private interface Giver {
        boolean test(int expert, Packing best);
    }

    private interface Better {
        boolean test(Packing candidate, Packing best);
    }

    /**
     * Moves one replica at a time from a `giver` expert (one with several replicas) to one of the `receivers` experts
     * with the most load per replica, re-packing each time, while a move gives a packing `better` than the best so far.
     */
    private static Packing moveReplicas(
            double[] w, Packing best, int devices, int perDevice, int receivers, Giver giver, Better better) {
        Integer[] byShare = new Integer[w.length];
        for (boolean improved = true; improved; ) {
            improved = false;
            int[] c = best.counts.clone();
            for (int e = 0; e < w.length; e++) byShare[e] = e;
            Arrays.sort(byShare, (a, b) -> Double.compare(w[b] / c[b], w[a] / c[a]));
            search:
            for (int from = 0; from < w.length; from++) {
                if (!giver.test(from, best)) continue;
                for (int r = 0; r < receivers; r++) {
                    int to = byShare[r];
                    // a single replica of `from` heavier than the best maximum cannot pack below it
                    if (to == from || w[from] / (c[from] - 1) > best.max * (1 + DUPLICATE_SLACK)) continue;
                    c[from]--;
                    c[to]++;
                    Packing p = pack(w, c, devices, perDevice);
                    c[from]++;
                    c[to]--;
                    if (better.test(p, best)) {
                        best = p;
                        improved = true;
                        break search;
                    }
                }
            }
        }
        return best;
    }

    /** Packs each expert's counts[e] replicas (load w[e] / counts[e] each) onto devices, perDevice slots each. */
    static Packing pack(double[] w, int[] counts, int devices, int perDevice) {
        int slots = devices * perDevice;
        // slots in descending load: experts by load per replica (ties by index), each one's replicas together
        Integer[] experts = new Integer[w.length];
        for (int e = 0; e < w.length; e++) experts[e] = e;
        Arrays.sort(experts, (a, b) -> Double.compare(w[b] / counts[b], w[a] / counts[a]));
        int[] expertOf = new int[slots];
        double[] slotLoad = new double[slots];
        int s = 0;
        for (int e : experts)
            for (int r = 0; r < counts[e]; r++) {
                expertOf[s] = e;
                slotLoad[s++] = w[e] / counts[e];
            }
        double[] deviceLoad = new double[devices];
        int[] filled = new int[devices];
        int[] slotOf = new int[slots]; // position: device * perDevice + index
        int[] content = new int[slots]; // position -> item
        for (int item = 0; item < slots; item++) {
            int best = -1;
            boolean bestDuplicate = true;
            for (int d = 0; d < devices; d++) {
                if (filled[d] == perDevice) continue;
                boolean duplicate = false;
                for (int i = 0; i < filled[d]; i++) duplicate |= expertOf[content[d * perDevice + i]] == expertOf[item];
                if (best < 0
                        || bestDuplicate && !duplicate
                        || duplicate == bestDuplicate && deviceLoad[d] < deviceLoad[best]) {
                    best = d;
                    bestDuplicate = duplicate;
                }
            }
            int position = best * perDevice + filled[best]++;
            content[position] = item;
            slotOf[item] = position;
            deviceLoad[best] += slotLoad[item];
        }
        improveBySwaps(content, slotLoad, expertOf, deviceLoad, devices, perDevice);
        int[] result = new int[slots];
        for (int p = 0; p < slots; p++) result[p] = expertOf[content[p]];
        int duplicates = 0;
        for (int d = 0; d < devices; d++)
            for (int i = 1; i < perDevice; i++)
                if (holds(result, d, perDevice, i, result[d * perDevice + i])) {
                    duplicates++;
                    break;
                }
        double max = Arrays.stream(deviceLoad).max().orElse(0);
        return new Packing(counts.clone(), result, max, duplicates);
    }

    /** Whether one of the first `filled` slots of device holds expert (slots hold expert ids). */
    private static boolean holds(int[] slots, int device, int perDevice, int filled, int expert) {
        for (int i = 0; i < filled; i++) if (slots[device * perDevice + i] == expert) return true;
        return false;
    }

    /**
     * Swaps items between the most loaded device and another while that lowers the larger of the two loads; a swap
     * that would put two replicas of one expert on a device is taken only when no other lowers it as much.
     */
    private static void improveBySwaps(
            int[] content, double[] slotLoad, int[] expertOf, double[] deviceLoad, int devices, int perDevice) {
        for (int round = 0; round < 4 * content.length; round++) {
            int a = 0;
            for (int d = 1; d < devices; d++) if (deviceLoad[d] > deviceLoad[a]) a = d;
            double best = deviceLoad[a] * (1 - EPS);
            boolean bestDuplicate = true;
            int bestA = -1, bestB = -1;
            for (int b = 0; b < devices; b++) {
                if (b == a) continue;
                for (int pa = a * perDevice; pa < (a + 1) * perDevice; pa++)
                    for (int pb = b * perDevice; pb < (b + 1) * perDevice; pb++) {
                        double delta = slotLoad[content[pa]] - slotLoad[content[pb]];
                        if (delta <= 0) continue;
                        double worse = Math.max(deviceLoad[a] - delta, deviceLoad[b] + delta);
                        if (worse > best) continue;
                        boolean duplicate = createsDuplicate(content, expertOf, perDevice, pa, pb);
                        if (worse < best - EPS * best || bestDuplicate && !duplicate) {
                            best = worse;
                            bestDuplicate = duplicate;
                            bestA = pa;
                            bestB = pb;
                        }
                    }
            }
            if (bestA < 0) return;
            double delta = slotLoad[content[bestA]] - slotLoad[content[bestB]];
            deviceLoad[bestA / perDevice] -= delta;
            deviceLoad[bestB / perDevice] += delta;
            int t = content[bestA];
            content[bestA] = content[bestB];
            content[bestB] = t;
        }
    }

    /** Whether swapping positions pa and pb leaves some device with two replicas of one expert. */
    private static boolean createsDuplicate(int[] content, int[] expertOf, int perDevice, int pa, int pb) {
        int ea = expertOf[content[pa]], eb = expertOf[content[pb]];
        if (ea == eb) return false;
        int da = pa / perDevice, db = pb / perDevice;
        for (int i = 0; i < perDevice; i++) {
            if (expertOf[content[db * perDevice + i]] == ea) return true;
            if (expertOf[content[da * perDevice + i]] == eb) return true;
        }
        return false;
    }
}
