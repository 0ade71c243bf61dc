package dev.moe4j.bench;

import static dev.moe4j.bench.Inputs.fp8Experts;
import static dev.moe4j.bench.Inputs.gaussian;

import dev.moe4j.model.Linear;
import dev.moe4j.parallel.DeviceGroup;
import dev.moe4j.parallel.ExpertParallelMoe;
import dev.moe4j.placement.Eplb;
import dev.moe4j.placement.Placement;
import dev.moe4j.routing.Gate;
import dev.moe4j.routing.GateConfig;
import dev.moe4j.routing.Routing;
import dev.moe4j.routing.Scoring;
import dev.moe4j.runtime.Context;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.QuantizedGroups;
import dev.moe4j.tensor.Tensor;
import java.lang.foreign.Arena;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * An expert-parallel MoE step with DeepSeek-V3's routing (256 experts, 8 groups, top-4 groups, top-8, sigmoid with
 * bias) and 32 redundant slots placed by refined EPLB, on 1 or 2 CPU devices of this machine (2 threads, or 1 thread
 * each). The expert FFNs are scaled down (hidden 1024, intermediate 512: 0.4 GB of FP8 experts) so that the host
 * copy and the device copies fit in memory; no shared experts. The gate is skewed (uneven row norms) so that EPLB has
 * something to balance.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class ExpertParallelBenchmark {
    static final int HIDDEN = 1024, INTER = 512, EXPERTS = 256, TOP_K = 8;

    @Param({"1", "2"})
    int devices;

    @Param({"64", "1024"})
    int tokens;

    private Arena arena;
    private Context ctx;
    private DeviceGroup group;
    private ExpertParallelMoe moe;
    private Tensor x, out;
    private Routing routing;

    @Setup(Level.Trial)
    public void setUp() {
        arena = Arena.ofShared();
        ctx = Context.create();
        SplittableRandom random = new SplittableRandom(17);
        Tensor gateWeight = gaussian(arena, random, 0.03, DType.BF16, EXPERTS, HIDDEN);
        for (int e = 0; e < EXPERTS; e++) { // uneven row norms: popular experts
            float scale = (float) Math.exp(0.5 * random.nextGaussian());
            for (int i = 0; i < HIDDEN; i++) gateWeight.setFloat(gateWeight.getFloat(e, i) * scale, e, i);
        }
        Gate gate = new Gate(
                new GateConfig(EXPERTS, TOP_K, 8, 4, Scoring.SIGMOID, true, 2.5),
                Linear.bf16(gateWeight),
                new float[EXPERTS]);
        QuantizedGroups g = fp8Experts(arena, random, EXPERTS, INTER, HIDDEN);
        QuantizedGroups u = fp8Experts(arena, random, EXPERTS, INTER, HIDDEN);
        QuantizedGroups d = fp8Experts(arena, random, EXPERTS, HIDDEN, INTER);
        x = gaussian(arena, random, 1, DType.BF16, tokens, HIDDEN);
        out = Tensor.allocate(arena, DType.F32, tokens, HIDDEN);
        routing = new Routing(TOP_K, tokens);
        gate.route(ctx, x, routing);
        double[] load = new double[EXPERTS];
        for (int t = 0; t < tokens; t++) for (int j = 0; j < TOP_K; j++) load[routing.expert(t, j)]++;
        Placement placement = Eplb.rebalance(new double[][] {load}, EXPERTS + 32, 8, 1, devices, Eplb.Policy.REFINED);
        group = DeviceGroup.cpu(devices, 1);
        moe = new ExpertParallelMoe(group, gate, g, u, d, null, placement, 0, 1);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        ExpertParallelMoe.StepStats s = moe.lastStep();
        System.out.printf(
                "%n%d devices, %d tokens: rows per device %s, balance %.3f, dispatched %.1f MB%n",
                devices, tokens, java.util.Arrays.toString(s.rowsPerDevice()), s.balance(), s.bytesDispatched() / 1e6);
        moe.close();
        group.close();
        ctx.close();
        arena.close();
    }

    @Benchmark
    public Tensor step() {
        moe.forward(ctx, x, routing, out);
        return out;
    }
}
