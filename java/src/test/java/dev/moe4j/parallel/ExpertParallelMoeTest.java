package dev.moe4j.parallel;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.moe4j.kernels.Quantization;
import dev.moe4j.kernels.ScaleFormat;
import dev.moe4j.model.DenseMlp;
import dev.moe4j.model.Linear;
import dev.moe4j.model.MoeLayer;
import dev.moe4j.placement.Eplb;
import dev.moe4j.placement.Placement;
import dev.moe4j.routing.Gate;
import dev.moe4j.routing.GateConfig;
import dev.moe4j.routing.Routing;
import dev.moe4j.routing.Scoring;
import dev.moe4j.runtime.Context;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.QuantizedGroups;
import dev.moe4j.tensor.QuantizedTensor;
import dev.moe4j.tensor.Tensor;
import dev.moe4j.testing.Reference;
import dev.moe4j.testing.TestSupport;
import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class ExpertParallelMoeTest {
    static final int H = 256, I = 256, E = 16, K = 4, T = 40;

    /** Expert weights, gate and shared experts of a small V3-style MoE layer. */
    record Layer(Gate gate, QuantizedGroups g, QuantizedGroups u, QuantizedGroups d, DenseMlp shared) {}

    static QuantizedGroups experts(Context ctx, Arena arena, SplittableRandom random, int n, int k) {
        float[] w = new float[E * n * k];
        for (int i = 0; i < w.length; i++) w[i] = (float) (random.nextGaussian() / Math.sqrt(k));
        QuantizedTensor q = Quantization.perBlock(
                ctx, Tensor.fromFloats(arena, DType.F32, w, (long) E * n, k), ScaleFormat.FP32, arena);
        return TestSupport.split(q, E);
    }

    static Linear linear(Context ctx, Arena arena, SplittableRandom random, int n, int k) {
        float[] w = new float[n * k];
        for (int i = 0; i < w.length; i++) w[i] = (float) (random.nextGaussian() / Math.sqrt(k));
        return Linear.fp8(
                Quantization.perBlock(ctx, Tensor.fromFloats(arena, DType.F32, w, n, k), ScaleFormat.FP32, arena));
    }

    static Layer layer(Context ctx, Arena arena, SplittableRandom random) {
        float[] gw = new float[E * H];
        for (int i = 0; i < gw.length; i++) gw[i] = (float) (random.nextGaussian() * 0.1);
        float[] bias = new float[E];
        for (int i = 0; i < E; i++) bias[i] = (float) (random.nextGaussian() * 0.02);
        Gate gate = new Gate(
                new GateConfig(E, K, 4, 2, Scoring.SIGMOID, true, 2.5),
                Linear.bf16(Tensor.fromFloats(arena, DType.BF16, gw, E, H)),
                bias);
        DenseMlp shared = new DenseMlp(
                linear(ctx, arena, random, I, H), linear(ctx, arena, random, I, H), linear(ctx, arena, random, H, I));
        return new Layer(
                gate,
                experts(ctx, arena, random, I, H),
                experts(ctx, arena, random, I, H),
                experts(ctx, arena, random, H, I),
                shared);
    }

    static List<Tensor> inputs(Arena arena, SplittableRandom random, int steps) {
        List<Tensor> xs = new ArrayList<>();
        for (int s = 0; s < steps; s++) {
            float[] v = new float[T * H];
            for (int i = 0; i < v.length; i++) v[i] = (float) random.nextGaussian();
            xs.add(Tensor.fromFloats(arena, DType.BF16, v, T, H));
        }
        return xs;
    }

    /** Runs the steps on a device group with a placement, optionally rebalancing before step `switchAt`. */
    /** Each step's output with every expert on one device: what any other device count must give. */
    static List<float[]> singleDevice(Context ctx, Arena arena, Layer l, List<Tensor> xs, SplittableRandom random) {
        return run(
                ctx, arena, l, xs, 1, 1, Eplb.rebalance(randomLoad(random), E, 4, 1, 1), null, -1, new ArrayList<>());
    }

    static List<float[]> run(
            Context ctx,
            Arena arena,
            Layer l,
            List<Tensor> xs,
            int devices,
            int nodes,
            Placement placement,
            Placement switchTo,
            int switchAt,
            List<ExpertParallelMoe.RebalanceReport> reports) {
        List<float[]> outs = new ArrayList<>();
        try (DeviceGroup group = DeviceGroup.cpu(devices, nodes);
                ExpertParallelMoe moe =
                        new ExpertParallelMoe(group, l.gate(), l.g(), l.u(), l.d(), l.shared(), placement, 0, 1)) {
            Routing routing = new Routing(K, T);
            for (int s = 0; s < xs.size(); s++) {
                if (s == switchAt) reports.add(moe.rebalance(switchTo, 0));
                Tensor out = Tensor.allocate(arena, DType.F32, T, H);
                moe.forward(ctx, xs.get(s), routing, out);
                outs.add(out.toFloatArray());
                ExpertParallelMoe.StepStats st = moe.lastStep();
                assertNotNull(st);
                assertEquals(devices, st.rowsPerDevice().length);
                assertEquals(T * K, java.util.Arrays.stream(st.rowsPerDevice()).sum());
            }
        }
        return outs;
    }

    static double[][] randomLoad(SplittableRandom random) {
        double[][] load = new double[1][E];
        for (int e = 0; e < E; e++) load[0][e] = Math.floor(1000 * Math.pow(random.nextDouble(), 3));
        return load;
    }

    /**
     * 1, 2, 4 and 8 CPU devices, with and without redundant experts, EPLB and refined placements, and a live
     * rebalance in the middle of a run: every step's output is bit-for-bit the single-device output.
     */
    @Test
    void anyDeviceCountAndPlacementGivesTheSingleDeviceBits() {
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        try (Arena arena = Arena.ofShared();
                Context ctx = Context.create()) {
            Layer l = layer(ctx, arena, random);
            List<Tensor> xs = inputs(arena, random, 4);
            List<float[]> single = singleDevice(ctx, arena, l, xs, random);
            int[][] shapes = {{2, 1, 16}, {4, 2, 16}, {4, 2, 32}, {8, 2, 16}, {8, 4, 32}, {2, 1, 20}};
            for (int[] shape : shapes) {
                int devices = shape[0], nodes = shape[1], replicas = shape[2];
                Eplb.Policy policy = replicas == 20 ? Eplb.Policy.GLOBAL : Eplb.Policy.REFINED;
                Placement a = Eplb.rebalance(randomLoad(random), replicas, 4, nodes, devices, policy);
                Placement b = Eplb.rebalance(randomLoad(random), replicas, 4, nodes, devices, Eplb.Policy.DEEPSEEK);
                List<ExpertParallelMoe.RebalanceReport> reports = new ArrayList<>();
                List<float[]> got = run(ctx, arena, l, xs, devices, nodes, a, b, 2, reports);
                for (int s = 0; s < xs.size(); s++)
                    assertArrayEquals(
                            single.get(s),
                            got.get(s),
                            devices + " devices, " + replicas + " replicas, step " + s + ", seed " + seed);
                assertTrue(reports.getFirst().movedExperts() >= 0);
                assertEquals(
                        reports.getFirst().movedExperts() == 0,
                        reports.getFirst().movedBytes() == 0);
            }

            // and it is the MoE layer's output, up to the bf16 rounding of the returned rows
            MoeLayer plain = new MoeLayer(l.gate(), l.g(), l.u(), l.d(), l.shared(), 1);
            Tensor out = Tensor.allocate(arena, DType.F32, T, H);
            plain.forward(ctx, xs.getFirst(), new Routing(K, T), out);
            double diff =
                    Reference.calcDiff(Reference.toDouble(out.toFloatArray()), Reference.toDouble(single.getFirst()));
            assertTrue(diff < 1e-5, "vs MoeLayer: calc_diff " + diff);
        }
    }

    /**
     * Two replicas of one expert on the same device (EPLB can place them so): dispatch splits the expert's tokens over
     * both, the device runs them as two groups, combine adds them back, and a rebalance between two such placements
     * moves them; every step's output is still bit for bit the single-device output. Also the balanced-locality
     * policy's placements, whose hot experts have replicas on other nodes.
     */
    @Test
    void doubledReplicasAndCrossNodeReplicasGiveTheSingleDeviceBits() {
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        try (Arena arena = Arena.ofShared();
                Context ctx = Context.create()) {
            Layer l = layer(ctx, arena, random);
            List<Tensor> xs = inputs(arena, random, 4);
            List<float[]> single = singleDevice(ctx, arena, l, xs, random);
            // 20 slots on 2 devices: expert 0 three times (twice on device 0), expert 5 twice on device 1, expert 9
            // twice on device 1
            int[] a = {0, 0, 1, 2, 3, 4, 6, 7, 8, 0, /* device 1 */ 5, 5, 9, 9, 10, 11, 12, 13, 14, 15};
            int[] b = {5, 5, 5, 1, 2, 3, 4, 6, 7, 8, /* device 1 */ 0, 0, 9, 10, 11, 12, 13, 14, 15, 9};
            List<ExpertParallelMoe.RebalanceReport> reports = new ArrayList<>();
            List<float[]> got = run(ctx, arena, l, xs, 2, 1, placement(a, 2), placement(b, 2), 2, reports);
            for (int s = 0; s < xs.size(); s++)
                assertArrayEquals(single.get(s), got.get(s), "doubled replicas, step " + s + ", seed " + seed);
            assertTrue(reports.getFirst().movedExperts() > 0);
            for (double cost : new double[] {0, 1}) {
                Placement p = Eplb.rebalance(randomLoad(random), 32, 4, 2, 4, Eplb.Policy.BALANCED_LOCALITY, cost);
                Placement q = Eplb.rebalance(randomLoad(random), 32, 4, 2, 4, Eplb.Policy.BALANCED_LOCALITY, cost);
                got = run(ctx, arena, l, xs, 4, 2, p, q, 1, new ArrayList<>());
                for (int s = 0; s < xs.size(); s++)
                    assertArrayEquals(
                            single.get(s), got.get(s), "balanced-locality " + cost + ", step " + s + ", seed " + seed);
            }
        }
    }

    /**
     * A rebalance staged in the background while steps run: every step is bit for bit the single-device output
     * (whichever placement it ran on), the switch happens between steps once staging is done, it reports the same
     * moves as the synchronous rebalance, and the calling thread is not held for the staging.
     */
    @Test
    void asyncRebalanceGivesTheSynchronousBitsAndDoesNotHoldTheSteps() throws Exception {
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        try (Arena arena = Arena.ofShared();
                Context ctx = Context.create()) {
            Layer l = layer(ctx, arena, random);
            List<Tensor> xs = inputs(arena, random, 6);
            List<float[]> single = singleDevice(ctx, arena, l, xs, random);
            Placement a = Eplb.rebalance(randomLoad(random), 32, 4, 2, 4, Eplb.Policy.REFINED);
            Placement b = Eplb.rebalance(randomLoad(random), 32, 4, 2, 4, Eplb.Policy.REFINED);
            List<ExpertParallelMoe.RebalanceReport> synchronous = new ArrayList<>();
            run(ctx, arena, l, xs, 4, 2, a, b, 1, synchronous);
            try (DeviceGroup group = DeviceGroup.cpu(4, 2);
                    ExpertParallelMoe moe =
                            new ExpertParallelMoe(group, l.gate(), l.g(), l.u(), l.d(), l.shared(), a, 0, 1)) {
                Routing routing = new Routing(K, T);
                var report = new java.util.concurrent.CompletableFuture<ExpertParallelMoe.RebalanceReport>();
                for (int s = 0; s < xs.size(); s++) {
                    if (s == 1) {
                        report = moe.rebalanceAsync(() -> b, 0);
                        assertTrue(moe.rebalancing());
                        var again = report;
                        assertThrows(IllegalStateException.class, () -> moe.rebalanceAsync(() -> b, 0));
                        assertThrows(IllegalStateException.class, () -> moe.rebalance(b, 0));
                        assertNotNull(again);
                    }
                    if (s == 3) report.get(30, java.util.concurrent.TimeUnit.SECONDS); // staged by now
                    Tensor out = Tensor.allocate(arena, DType.F32, T, H);
                    moe.forward(ctx, xs.get(s), routing, out);
                    assertArrayEquals(single.get(s), out.toFloatArray(), "step " + s + ", seed " + seed);
                }
                assertEquals(b, moe.placement(), "switched to the staged placement");
                assertTrue(!moe.rebalancing());
                ExpertParallelMoe.RebalanceReport r = report.get();
                assertEquals(synchronous.getFirst().movedExperts(), r.movedExperts(), "the same experts move");
                assertEquals(synchronous.getFirst().movedBytes(), r.movedBytes());
            }
        }
    }

    /** A one-layer placement from its slots' experts (phy2log), replicas ranked in slot order. */
    static Placement placement(int[] phy2log, int devices) {
        int[] count = new int[E];
        for (int e : phy2log) count[e]++;
        int max = Arrays.stream(count).max().orElseThrow();
        int[][] log2phy = new int[E][max];
        for (int[] row : log2phy) Arrays.fill(row, -1);
        int[] seen = new int[E];
        for (int slot = 0; slot < phy2log.length; slot++) log2phy[phy2log[slot]][seen[phy2log[slot]]++] = slot;
        return new Placement(new int[][] {phy2log.clone()}, new int[][][] {log2phy}, new int[][] {count}, devices);
    }

    @Test
    void rebalanceMovesOnlyWhatChangedAndMinimalMoveMovesLess() {
        SplittableRandom random = TestSupport.random(TestSupport.freshSeed());
        try (Arena arena = Arena.ofShared();
                Context ctx = Context.create();
                DeviceGroup group = DeviceGroup.cpu(4, 1)) {
            Layer l = layer(ctx, arena, random);
            Placement a = Eplb.rebalance(randomLoad(random), 24, 4, 1, 4);
            try (ExpertParallelMoe moe = new ExpertParallelMoe(group, l.gate(), l.g(), l.u(), l.d(), null, a, 0, 1)) {
                assertEquals(0, moe.rebalance(a, 0).movedExperts(), "the same placement moves nothing");
                double[][] loadB = randomLoad(random);
                Placement b = Eplb.rebalance(loadB, 24, 4, 1, 4);
                Placement minimal = Eplb.minimizeMoves(b, a, loadB, 1);
                int expected = b.movedFrom(a);
                ExpertParallelMoe.RebalanceReport plain = moe.rebalance(b, 0);
                assertEquals(expected, plain.movedExperts());
                long perExpert = 3L * (I * H + 4L * (I / 128) * (H / 128));
                assertEquals(expected * perExpert, plain.movedBytes());
                moe.rebalance(a, 0);
                ExpertParallelMoe.RebalanceReport matched = moe.rebalance(minimal, 0);
                assertEquals(minimal.movedFrom(a), matched.movedExperts());
                assertTrue(matched.movedExperts() <= plain.movedExperts());
            }
        }
    }

    @Test
    void liveBalancerRebalancesEveryIntervalAndReports() throws Exception {
        SplittableRandom random = TestSupport.random(TestSupport.freshSeed());
        try (Arena arena = Arena.ofShared();
                Context ctx = Context.create();
                DeviceGroup group = DeviceGroup.cpu(2, 1)) {
            Layer l = layer(ctx, arena, random);
            Placement start = Eplb.rebalance(new double[1][E], 20, 4, 1, 2);
            List<Tensor> xs = inputs(arena, random, 12);
            for (boolean async : new boolean[] {false, true}) {
                try (ExpertParallelMoe moe =
                        new ExpertParallelMoe(group, l.gate(), l.g(), l.u(), l.d(), l.shared(), start, 0, 1)) {
                    LiveBalancer balancer = new LiveBalancer(moe, 4, 3, 4, 1, Eplb.Policy.REFINED, true, async);
                    Routing routing = new Routing(K, T);
                    List<LiveBalancer.Report> reports = new ArrayList<>();
                    for (Tensor x : xs) {
                        moe.forward(ctx, x, routing, Tensor.allocate(arena, DType.F32, T, H));
                        LiveBalancer.Report r = balancer.afterStep(routing);
                        if (r != null) reports.add(r);
                        if (async) Thread.sleep(20); // a step's length: staging has time to finish
                    }
                    assertTrue(reports.size() >= (async ? 2 : 4), async + ": " + reports);
                    assertEquals(3, reports.getFirst().step());
                    for (LiveBalancer.Report r : reports) {
                        assertTrue(r.balanceAfter() >= r.balanceBefore() - 1e-12, r.toString());
                        if (!async) assertEquals(r.nanos(), r.stallNanos(), "synchronous: the step waits for all");
                    }
                }
            }
        }
    }

    /** A device that fails fails the step with its name; out keeps what it held. */
    @Test
    void aFailingDeviceIsNamedAndNoOutputIsWritten() {
        SplittableRandom random = TestSupport.random(TestSupport.freshSeed());
        try (Arena arena = Arena.ofShared();
                Context ctx = Context.create();
                DeviceGroup group = DeviceGroup.cpu(4, 1)) {
            Layer l = layer(ctx, arena, random);
            Placement p = Eplb.rebalance(new double[1][E], E, 4, 1, 4);
            ExpertParallelMoe moe = new ExpertParallelMoe(group, l.gate(), l.g(), l.u(), l.d(), l.shared(), p, 0, 1);
            group.context(2).close();
            Tensor out = Tensor.allocate(arena, DType.F32, T, H);
            out.segment().fill((byte) 0x7F);
            byte[] before = out.segment().toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
            Tensor x = inputs(arena, random, 1).getFirst();
            DeviceException e = assertThrows(DeviceException.class, () -> moe.forward(ctx, x, new Routing(K, T), out));
            assertEquals(2, e.device());
            assertTrue(e.getMessage().contains("device 2"), e.getMessage());
            assertArrayEquals(before, out.segment().toArray(java.lang.foreign.ValueLayout.JAVA_BYTE));
            // the other devices' memory is freed; device 2's cannot be, its context is gone, and close says so
            DeviceException unfreed = assertThrows(DeviceException.class, moe::close);
            assertEquals(2, unfreed.device());
        }
    }

    @Test
    void dispatchPlanSplitsExpertsEvenlyOverReplicasAndCountsLikeDeepEp() {
        // 4 experts, 8 slots on 2 devices: expert 0 has 3 replicas
        Placement p = Eplb.rebalance(new double[][] {{25, 10, 10, 10}}, 8, 1, 1, 2);
        assertEquals(3, p.logcnt()[0][0]);
        Routing r = new Routing(2, 10);
        fill(r, 10);
        DispatchPlan plan = new DispatchPlan(r, p, 0, 4);
        int[] perSlot = plan.pairsPerSlot();
        for (int rank = 0; rank < 3; rank++) {
            int slot = p.log2phy()[0][0][rank];
            assertTrue(perSlot[slot] == 3 || perSlot[slot] == 4, "even split: " + perSlot[slot]);
        }
        assertEquals(10, plan.pairsPerExpert()[0]);
        int[] tokens = plan.tokensPerDevice();
        for (int d = 0; d < 2; d++) {
            int count = 0;
            for (int t = 0; t < 10; t++) if (plan.tokenInDevice(t, d)) count++;
            assertEquals(count, tokens[d]);
            assertEquals(0, plan.rows(d) % 4, "rows padded to the alignment per slot");
        }
        for (int t = 0; t < 10; t++)
            for (int j = 0; j < 2; j++) {
                int d = plan.device(t, j), row = plan.row(t, j);
                assertEquals(t, plan.rowToken(d, row));
                assertEquals(p.phy2log()[0][d * 4 + plan.rowSlot(d, row)], r.expert(t, j));
            }
        assertThrows(IllegalArgumentException.class, () -> new DispatchPlan(r, p, 0, 0));
        r.assign(1, new int[] {0, 9}, new float[] {0.5f, 0.5f}); // expert 9 of 4
        var outOfRange = assertThrows(IllegalArgumentException.class, () -> new DispatchPlan(r, p, 0, 1));
        assertTrue(outOfRange.getMessage().contains("expert 9"), outOfRange.getMessage());
        assertThrows(IllegalArgumentException.class, () -> r.assign(1, new int[] {0, -2}, new float[2]));
    }

    /** Token t goes to expert 0 and expert 1 + t % 3. */
    static void fill(Routing r, int tokens) {
        int[] experts = new int[tokens * 2];
        float[] weights = new float[tokens * 2];
        for (int t = 0; t < tokens; t++) {
            experts[2 * t] = 0;
            experts[2 * t + 1] = 1 + t % 3;
            weights[2 * t] = weights[2 * t + 1] = 0.5f;
        }
        r.assign(tokens, experts, weights);
    }
}
