package dev.moe4j.placement;

import java.util.Arrays;
import java.util.Comparator;
import java.util.stream.IntStream;

/**
 * DeepSeek's expert-parallelism load balancer (EPLB, {@code rebalance_experts}) and two improvements on it.
 *
 * <p>{@link Policy#DEEPSEEK} reproduces EPLB exactly, in float32 like its PyTorch code: with {@code groups % nodes
 * == 0} the hierarchical policy (pack expert groups onto nodes, replicate within each node, pack the replicas onto the
 * node's devices), otherwise the global one (the same with one group and one node). Balanced packing takes items
 * by weight, descending (stable), each into the lightest pack with room (lowest index on ties); replication gives
 * each extra slot to the expert with the highest load per replica (first on ties).
 *
 * <p>{@link Policy#REFINED} keeps EPLB's constraint (hierarchically, each group's experts on one node) and chooses
 * better within it: groups onto nodes by an exact search, and within each node the replica counts and their packing
 * together, with a local search over all device pairs and over moves of replicas between experts (see {@code
 * RefinedPolicy}). Per layer it keeps EPLB's result where that is not worse, so it is never worse than DEEPSEEK in max
 * device load.
 *
 * <p>{@link #minimizeMoves} relabels the devices (and nodes) of a new placement, orders the slots within each device
 * and swaps replicas between devices where the balance allows, so that as many experts as possible stay where a
 * previous placement had them: no device above the new placement's maximum, fewer weights to move.
 *
 * <p>Stateless and thread-safe.
 */
public final class Eplb {
    private Eplb() {}

    public enum Policy {
        /** EPLB as published: hierarchical when groups divide by nodes, else global. */
        DEEPSEEK,
        /** EPLB's hierarchical policy, required: groups must divide by nodes. */
        HIERARCHICAL,
        /** EPLB's global policy (one group, one node). */
        GLOBAL,
        /** EPLB's constraint with better group, replica-count and packing choices; never worse than DEEPSEEK. */
        REFINED,
        /**
         * REFINED, then replicas of hot experts on other nodes where the balance gained outweighs the cross-node
         * traffic at a given cost per token (groups must divide by nodes).
         */
        BALANCED_LOCALITY;

        public static Policy parse(String name) {
            return switch (name) {
                case "deepseek" -> DEEPSEEK;
                case "hierarchical" -> HIERARCHICAL;
                case "global" -> GLOBAL;
                case "refined" -> REFINED;
                case "balanced-locality" -> BALANCED_LOCALITY;
                default ->
                    throw new IllegalArgumentException("policy must be deepseek, hierarchical, global, refined or"
                            + " balanced-locality, got '" + name + "'");
            };
        }
    }

    /** EPLB with the DEEPSEEK policy. */
    public static Placement rebalance(double[][] load, int replicas, int groups, int nodes, int devices) {
        return rebalance(load, replicas, groups, nodes, devices, Policy.DEEPSEEK);
    }

    /**
     * @param load [layers][experts]: tokens (or any non-negative weight) per logical expert
     * @param replicas physical expert slots per layer, a multiple of devices and at least the expert count
     * @param groups expert groups (n_group); experts divide by it
     * @param nodes device nodes; devices divide by it
     * @throws IllegalArgumentException naming the argument when the placement cannot exist
     */
    public static Placement rebalance(
            double[][] load, int replicas, int groups, int nodes, int devices, Policy policy) {
        if (policy == Policy.BALANCED_LOCALITY)
            throw new IllegalArgumentException("the balanced-locality policy needs a cross-node cost: use"
                    + " rebalance(load, replicas, groups, nodes, devices, policy, crossNodeCost)");
        return rebalance(load, replicas, groups, nodes, devices, policy, 0);
    }

    /**
     * As {@link #rebalance(double[][], int, int, int, int, Policy)}, for any policy; only {@link
     * Policy#BALANCED_LOCALITY} reads {@code crossNodeCost}: the cost of one token sent to a node other than its
     * expert's home node, in units of one token of load on the most loaded device (see {@link
     * Placement#crossNodeTokens}). A step's cost is its most loaded device's tokens plus crossNodeCost times the
     * cross-node tokens per device; a replica moves off its home node only where that lowers the cost.
     *
     * @throws IllegalArgumentException naming the argument when the placement cannot exist, or when crossNodeCost is
     *     negative or NaN
     */
    public static Placement rebalance(
            double[][] load, int replicas, int groups, int nodes, int devices, Policy policy, double crossNodeCost) {
        int experts = check(load, replicas, groups, nodes, devices);
        if (!(crossNodeCost >= 0))
            throw new IllegalArgumentException("crossNodeCost must be >= 0, got " + crossNodeCost);
        boolean hierarchical = switch (policy) {
            case HIERARCHICAL, BALANCED_LOCALITY -> {
                if (groups % nodes != 0)
                    throw new IllegalArgumentException(
                            "the " + policy.name().toLowerCase().replace('_', '-')
                                    + " policy needs groups divisible by nodes, got " + groups + " groups on " + nodes
                                    + " nodes");
                yield true;
            }
            case GLOBAL -> false;
            case DEEPSEEK, REFINED -> groups % nodes == 0;
        };
        int layers = load.length;
        int[][] phy2log = new int[layers][], phyrank = new int[layers][], logcnt = new int[layers][];
        for (int l = 0; l < layers; l++) {
            float[] w = new float[experts];
            for (int e = 0; e < experts; e++) w[e] = (float) load[l][e];
            int g = hierarchical ? groups : 1, n = hierarchical ? nodes : 1;
            Layer r = hierarchical(w, replicas, g, n, devices);
            if (policy == Policy.REFINED) {
                Layer refined = RefinedPolicy.place(load[l], replicas, g, n, devices);
                if (maxDeviceLoad(refined, load[l], devices) < maxDeviceLoad(r, load[l], devices)) r = refined;
            } else if (policy == Policy.BALANCED_LOCALITY) {
                r = LocalityPolicy.place(load[l], replicas, g, n, devices, crossNodeCost);
            }
            phy2log[l] = r.phy2log;
            phyrank[l] = r.phyrank;
            logcnt[l] = r.logcnt;
        }
        return build(phy2log, phyrank, logcnt, devices);
    }

    /**
     * The max / mean device load no hierarchical placement (each group's experts on one node) can go below for one
     * layer's load: the most loaded node of the best assignment of groups to nodes (groups / nodes each), its load
     * spread perfectly over the node's devices. The assignment is the exact one the refined policy uses.
     *
     * @param load tokens per logical expert of one layer
     * @throws IllegalArgumentException if groups do not divide the experts or nodes do not divide the groups
     */
    public static double nodeBound(double[] load, int groups, int nodes) {
        if (groups <= 0 || nodes <= 0 || load.length % groups != 0 || groups % nodes != 0)
            throw new IllegalArgumentException(
                    groups + " groups must divide " + load.length + " experts and divide by " + nodes + " nodes");
        int groupSize = load.length / groups;
        double[] groupLoad = new double[groups];
        for (int e = 0; e < load.length; e++) groupLoad[e / groupSize] += load[e];
        int[] node = RefinedPolicy.groupsOntoNodes(groupLoad, nodes, groups / nodes);
        double[] nodeLoad = new double[nodes];
        for (int g = 0; g < groups; g++) nodeLoad[node[g]] += groupLoad[g];
        double total = Arrays.stream(load).sum();
        return total == 0 ? 1 : Arrays.stream(nodeLoad).max().orElseThrow() * nodes / total;
    }

    private static int check(double[][] load, int replicas, int groups, int nodes, int devices) {
        if (load.length == 0 || load[0].length == 0)
            throw new IllegalArgumentException("load must have at least one layer and one expert");
        int experts = load[0].length;
        for (int l = 0; l < load.length; l++) {
            if (load[l].length != experts)
                throw new IllegalArgumentException(
                        "load layer " + l + " has " + load[l].length + " experts, layer 0 has " + experts);
            for (int e = 0; e < experts; e++)
                if (!(load[l][e] >= 0) || Double.isInfinite(load[l][e]))
                    throw new IllegalArgumentException(
                            "load of layer " + l + ", expert " + e + " is " + load[l][e] + ", not a finite value >= 0");
        }
        if (devices <= 0 || nodes <= 0 || groups <= 0)
            throw new IllegalArgumentException("devices, nodes and groups must be positive");
        if (replicas < experts)
            throw new IllegalArgumentException(
                    "replicas (" + replicas + ") must be at least the number of experts (" + experts + ")");
        if (replicas % devices != 0)
            throw new IllegalArgumentException(
                    "replicas (" + replicas + ") must be divisible by devices (" + devices + ")");
        if (devices % nodes != 0)
            throw new IllegalArgumentException("devices (" + devices + ") must be divisible by nodes (" + nodes + ")");
        if (experts % groups != 0)
            throw new IllegalArgumentException(
                    "experts (" + experts + ") must be divisible by groups (" + groups + ")");
        return experts;
    }

    /** One layer's result: physical slot -> logical expert, the replica's rank, replicas per expert. */
    record Layer(int[] phy2log, int[] phyrank, int[] logcnt) {}

    /** EPLB's rebalance_experts_hierarchical for one layer. */
    private static Layer hierarchical(float[] w, int replicas, int groups, int nodes, int devices) {
        int experts = w.length, groupSize = experts / groups, groupsPerNode = groups / nodes;
        int perNode = experts / nodes, phyPerNode = replicas / nodes, phyPerDevice = replicas / devices;
        // 1. groups onto nodes
        float[] groupTokens = new float[groups];
        for (int g = 0; g < groups; g++) for (int j = 0; j < groupSize; j++) groupTokens[g] += w[g * groupSize + j];
        int[][] groupPack = balancedPacking(groupTokens, nodes);
        int[] log2mlog = new int[experts], mlog2log = new int[experts];
        for (int g = 0; g < groups; g++)
            for (int j = 0; j < groupSize; j++) {
                int m = (groupPack[0][g] * groupsPerNode + groupPack[1][g]) * groupSize + j;
                log2mlog[g * groupSize + j] = m;
                mlog2log[m] = g * groupSize + j;
            }
        int[] phy2log = new int[replicas], phyrank = new int[replicas], mlogcnt = new int[experts];
        for (int n = 0; n < nodes; n++) {
            // 2. replicas within the node
            float[] nodeTokens = new float[perNode];
            for (int m = 0; m < perNode; m++) nodeTokens[m] = w[mlog2log[n * perNode + m]];
            int[][] rep = replicate(nodeTokens, phyPerNode);
            int[] phy2mlog = rep[0], rank = rep[1], cnt = rep[2];
            System.arraycopy(cnt, 0, mlogcnt, n * perNode, perNode);
            // 3. replicas onto the node's devices
            float[] phyTokens = new float[phyPerNode];
            for (int p = 0; p < phyPerNode; p++) phyTokens[p] = nodeTokens[phy2mlog[p]] / cnt[phy2mlog[p]];
            int[][] pack = balancedPacking(phyTokens, devices / nodes);
            for (int p = 0; p < phyPerNode; p++) {
                int q = n * phyPerNode + pack[0][p] * phyPerDevice + pack[1][p];
                phy2log[q] = mlog2log[n * perNode + phy2mlog[p]];
                phyrank[q] = rank[p];
            }
        }
        int[] logcnt = new int[experts];
        for (int e = 0; e < experts; e++) logcnt[e] = mlogcnt[log2mlog[e]];
        return new Layer(phy2log, phyrank, logcnt);
    }

    /**
     * EPLB's balanced_packing: {pack index, rank in pack} of each item; every pack gets items/packs items.
     */
    static int[][] balancedPacking(float[] weight, int packs) {
        int n = weight.length, perPack = n / packs;
        int[] packIndex = new int[n], rankInPack = new int[n];
        if (perPack == 1) {
            for (int i = 0; i < n; i++) packIndex[i] = i;
            return new int[][] {packIndex, rankInPack};
        }
        Integer[] order = IntStream.range(0, n).boxed().toArray(Integer[]::new);
        Arrays.sort(order, Comparator.comparingDouble((Integer i) -> -weight[i])); // stable
        float[] packWeight = new float[packs];
        int[] packItems = new int[packs];
        for (int item : order) {
            int best = -1;
            for (int p = 0; p < packs; p++)
                if (packItems[p] < perPack && (best < 0 || packWeight[p] < packWeight[best])) best = p;
            packIndex[item] = best;
            rankInPack[item] = packItems[best]++;
            packWeight[best] += weight[item];
        }
        return new int[][] {packIndex, rankInPack};
    }

    /** EPLB's replicate_experts: {phy2log, rank, logcnt} for numPhy slots over weight.length experts. */
    static int[][] replicate(float[] weight, int numPhy) {
        int numLog = weight.length;
        int[] phy2log = new int[numPhy], rank = new int[numPhy], logcnt = new int[numLog];
        for (int i = 0; i < numLog; i++) phy2log[i] = i;
        Arrays.fill(logcnt, 1);
        for (int i = numLog; i < numPhy; i++) {
            int best = 0;
            for (int e = 1; e < numLog; e++) if (weight[e] / logcnt[e] > weight[best] / logcnt[best]) best = e;
            phy2log[i] = best;
            rank[i] = logcnt[best]++;
        }
        return new int[][] {phy2log, rank, logcnt};
    }

    private static double maxDeviceLoad(Layer r, double[] load, int devices) {
        int per = r.phy2log.length / devices;
        double[] device = new double[devices];
        for (int p = 0; p < r.phy2log.length; p++) device[p / per] += load[r.phy2log[p]] / r.logcnt[r.phy2log[p]];
        return Arrays.stream(device).max().orElse(0);
    }

    private static void swap(int[] v, int i, int j) {
        int t = v[i];
        v[i] = v[j];
        v[j] = t;
    }

    /** The full placement from per-layer phy2log, replica ranks and counts. */
    private static Placement build(int[][] phy2log, int[][] phyrank, int[][] logcnt, int devices) {
        int layers = phy2log.length, replicas = phy2log[0].length, experts = logcnt[0].length;
        int maxCount = replicas - experts + 1;
        int[][][] log2phy = new int[layers][experts][maxCount];
        for (int l = 0; l < layers; l++) {
            for (int[] row : log2phy[l]) Arrays.fill(row, -1);
            for (int p = 0; p < replicas; p++) log2phy[l][phy2log[l][p]][phyrank[l][p]] = p;
        }
        return new Placement(phy2log, log2phy, logcnt, devices);
    }

    /**
     * A placement as balanced as {@code next} (the same replica counts, no device above next's most loaded one) that
     * keeps as many experts as possible on the devices where {@code previous} had them. First nodes are matched to
     * nodes and devices to devices within matched nodes by the most experts kept (an optimal assignment at each
     * level), experts that stay on a device keep their slot; then replicas are swapped between devices of a node
     * while a swap keeps more experts in place and leaves both devices at or below next's maximum load.
     *
     * @param load [layers][experts], the load {@code next} was computed for
     * @param nodes the node count both placements were made for (devices move between nodes only as whole nodes)
     */
    public static Placement minimizeMoves(Placement next, Placement previous, double[][] load, int nodes) {
        if (next.layers() != previous.layers()
                || next.replicas() != previous.replicas()
                || next.devices() != previous.devices()
                || next.experts() != previous.experts())
            throw new IllegalArgumentException("placements of different shapes cannot be matched");
        int devices = next.devices(), per = next.slotsPerDevice(), devicesPerNode = devices / nodes;
        if (devices % nodes != 0)
            throw new IllegalArgumentException("devices (" + devices + ") must be divisible by nodes (" + nodes + ")");
        int layers = next.layers(), replicas = next.replicas();
        int[][] phy2log = new int[layers][replicas], phyrank = new int[layers][replicas];
        for (int l = 0; l < layers; l++) {
            int[] nextLayer = next.phy2log()[l], previousLayer = previous.phy2log()[l];
            int[] nextRank = ranks(next, l);
            int[] nodeOf = assign(
                    nodes,
                    (nn, pn) -> Placement.common(
                            slice(nextLayer, nn * devicesPerNode * per, devicesPerNode * per),
                            slice(previousLayer, pn * devicesPerNode * per, devicesPerNode * per)));
            for (int nn = 0; nn < nodes; nn++) {
                int node = nn, target = nodeOf[nn];
                int[] deviceOf = assign(
                        devicesPerNode,
                        (nd, pd) -> Placement.common(
                                slice(nextLayer, (node * devicesPerNode + nd) * per, per),
                                slice(previousLayer, (target * devicesPerNode + pd) * per, per)));
                for (int nd = 0; nd < devicesPerNode; nd++) {
                    int from = (node * devicesPerNode + nd) * per, to = (target * devicesPerNode + deviceOf[nd]) * per;
                    arrange(nextLayer, nextRank, from, previousLayer, to, per, phy2log[l], phyrank[l]);
                }
            }
            double maxLoad = Arrays.stream(next.deviceLoads(l, load[l])).max().orElse(0);
            keepMore(phy2log[l], phyrank[l], previousLayer, next.logcnt()[l], load[l], per, devicesPerNode, maxLoad);
        }
        int[][] logcnt = new int[layers][];
        for (int l = 0; l < layers; l++) logcnt[l] = next.logcnt()[l].clone();
        return build(phy2log, phyrank, logcnt, devices);
    }

    /**
     * Swaps replicas between two devices of a node while that keeps more experts where they were (a device holding
     * an expert it held before) and neither device goes above maxLoad.
     */
    private static void keepMore(
            int[] phy2log,
            int[] phyrank,
            int[] previous,
            int[] logcnt,
            double[] load,
            int per,
            int perNode,
            double maxLoad) {
        int devices = phy2log.length / per;
        double[] deviceLoad = new double[devices];
        for (int p = 0; p < phy2log.length; p++) deviceLoad[p / per] += load[phy2log[p]] / logcnt[phy2log[p]];
        double limit = maxLoad * (1 + 1e-12);
        boolean improved = true;
        for (int pass = 0; improved && pass < 8; pass++) {
            improved = false;
            for (int a = 0; a < phy2log.length; a++) {
                int da = a / per;
                if (held(previous, per, da, phy2log[a])) continue; // already in place
                int nodeStart = da / perNode * perNode * per;
                for (int b = nodeStart; b < nodeStart + perNode * per; b++) {
                    int db = b / per;
                    if (db == da) continue;
                    int ea = phy2log[a], eb = phy2log[b];
                    int gain = (held(previous, per, db, ea) ? 1 : 0)
                            + (held(previous, per, da, eb) ? 1 : 0)
                            - (held(previous, per, db, eb) ? 1 : 0);
                    if (gain <= 0) continue;
                    double la = load[ea] / logcnt[ea], lb = load[eb] / logcnt[eb];
                    if (deviceLoad[da] - la + lb > limit || deviceLoad[db] - lb + la > limit) continue;
                    deviceLoad[da] += lb - la;
                    deviceLoad[db] += la - lb;
                    swap(phy2log, a, b);
                    swap(phyrank, a, b);
                    improved = true;
                    break;
                }
            }
        }
    }

    private static boolean held(int[] previous, int per, int device, int expert) {
        for (int s = device * per; s < (device + 1) * per; s++) if (previous[s] == expert) return true;
        return false;
    }

    /** Replica rank of each slot of layer l, from log2phy. */
    private static int[] ranks(Placement p, int l) {
        int[] rank = new int[p.replicas()];
        for (int e = 0; e < p.experts(); e++)
            for (int r = 0; r < p.log2phy()[l][e].length; r++) {
                int slot = p.log2phy()[l][e][r];
                if (slot >= 0) rank[slot] = r;
            }
        return rank;
    }

    /**
     * Writes device contents {@code src[from .. from+per)} into slots {@code to ..}: each expert the previous
     * placement had on that device keeps its old slot, the others fill the remaining slots in order.
     */
    private static void arrange(
            int[] src, int[] srcRank, int from, int[] old, int to, int per, int[] dst, int[] dstRank) {
        boolean[] placed = new boolean[per], filled = new boolean[per];
        for (int s = 0; s < per; s++)
            for (int i = 0; i < per; i++)
                if (!placed[i] && !filled[s] && src[from + i] == old[to + s]) {
                    dst[to + s] = src[from + i];
                    dstRank[to + s] = srcRank[from + i];
                    placed[i] = filled[s] = true;
                }
        int s = 0;
        for (int i = 0; i < per; i++) {
            if (placed[i]) continue;
            while (filled[s]) s++;
            dst[to + s] = src[from + i];
            dstRank[to + s] = srcRank[from + i];
            filled[s] = true;
        }
    }

    private static int[] slice(int[] v, int from, int length) {
        return Arrays.copyOfRange(v, from, from + length);
    }

    private interface Score {
        int of(int row, int column);
    }

    /** The assignment of rows to columns (a permutation) with the largest total score. */
    static int[] assign(int n, Score score) {
        double[][] cost = new double[n][n];
        for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) cost[i][j] = -score.of(i, j);
        return Hungarian.solve(cost);
    }
}
