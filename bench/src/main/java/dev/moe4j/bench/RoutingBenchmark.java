package dev.moe4j.bench;

import static dev.moe4j.bench.Inputs.gaussian;

import dev.moe4j.kernels.Gemm;
import dev.moe4j.model.Linear;
import dev.moe4j.routing.Gate;
import dev.moe4j.routing.GateConfig;
import dev.moe4j.routing.Routing;
import dev.moe4j.routing.Scoring;
import dev.moe4j.runtime.Context;
import dev.moe4j.tensor.DType;
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
 * DeepSeek-V3's gate: 256 experts in 8 groups, top-4 groups, top-8 experts, sigmoid with bias, hidden 7168.
 * {@code route} is the whole gate, {@code logitsOnly} its native GEMM; the difference is the Java selection.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class RoutingBenchmark {
    static final int HIDDEN = 7168, EXPERTS = 256;

    @Param({"64", "4096"})
    int tokens;

    private Arena arena;
    private Context ctx;
    private Gate gate;
    private Tensor x, weight, logits;
    private Routing routing;

    @Setup(Level.Trial)
    public void setUp() {
        arena = Arena.ofConfined();
        ctx = Context.create();
        SplittableRandom random = new SplittableRandom(11);
        weight = gaussian(arena, random, 0.02, DType.BF16, EXPERTS, HIDDEN);
        float[] bias = new float[EXPERTS];
        for (int i = 0; i < EXPERTS; i++) bias[i] = (float) (random.nextGaussian() * 0.01);
        gate = new Gate(new GateConfig(EXPERTS, 8, 8, 4, Scoring.SIGMOID, true, 2.5), Linear.bf16(weight), bias);
        x = gaussian(arena, random, 1, DType.BF16, tokens, HIDDEN);
        logits = Tensor.allocate(arena, DType.F32, tokens, EXPERTS);
        routing = new Routing(8, tokens);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        ctx.close();
        arena.close();
    }

    @Benchmark
    public Routing route() {
        gate.route(ctx, x, routing);
        return routing;
    }

    @Benchmark
    public Tensor logitsOnly() {
        Gemm.nt(ctx, x, weight, null, logits);
        return logits;
    }
}
