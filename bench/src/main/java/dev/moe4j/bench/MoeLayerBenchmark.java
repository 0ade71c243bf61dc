package dev.moe4j.bench;

import static dev.moe4j.bench.Inputs.fp8Experts;
import static dev.moe4j.bench.Inputs.fp8Weights;
import static dev.moe4j.bench.Inputs.gaussian;

import dev.moe4j.model.DenseMlp;
import dev.moe4j.model.Linear;
import dev.moe4j.model.MoeLayer;
import dev.moe4j.routing.Gate;
import dev.moe4j.routing.GateConfig;
import dev.moe4j.routing.Routing;
import dev.moe4j.routing.Scoring;
import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.Profiler;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.Tensor;
import java.lang.foreign.Arena;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.AuxCounters;
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
 * One MoE layer on DeepSeek-V2-Lite's shapes (hidden 2048, 64 routed experts of 1408, top-6 by softmax, 2 shared
 * experts), FP8 weights, through {@link MoeLayer#forward}. A {@link Profiler} times every native call of each
 * invocation; the secondary results {@code javaNanos} and {@code nativeNanos} split the invocations' wall time into
 * time outside and inside native calls (Java share = javaNanos / (javaNanos + nativeNanos)).
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class MoeLayerBenchmark {
    static final int HIDDEN = 2048, INTER = 1408, EXPERTS = 64, TOP_K = 6, SHARED = 2;

    @Param({"1", "16", "64", "4096"})
    int tokens;

    private Arena arena;
    private Context ctx;
    private MoeLayer layer;
    private Tensor x, out;
    private Routing routing;

    /** Per-iteration totals of the time split. */
    @State(Scope.Thread)
    @AuxCounters(AuxCounters.Type.EVENTS)
    public static class Split {
        public long javaNanos, nativeNanos;

        @Setup(Level.Iteration)
        public void clear() {
            javaNanos = 0;
            nativeNanos = 0;
        }
    }

    @Setup(Level.Trial)
    public void setUp() {
        arena = Arena.ofConfined();
        ctx = Context.create();
        SplittableRandom random = new SplittableRandom(13);
        Linear gateWeight = Linear.bf16(gaussian(arena, random, 0.02, DType.BF16, EXPERTS, HIDDEN));
        DenseMlp shared = new DenseMlp(
                Linear.fp8(fp8Weights(arena, random, 1, SHARED * INTER, HIDDEN).group(0)),
                Linear.fp8(fp8Weights(arena, random, 1, SHARED * INTER, HIDDEN).group(0)),
                Linear.fp8(fp8Weights(arena, random, 1, HIDDEN, SHARED * INTER).group(0)));
        Gate router = new Gate(new GateConfig(EXPERTS, TOP_K, 1, 1, Scoring.SOFTMAX, false, 1.0), gateWeight, null);
        layer = new MoeLayer(
                router,
                fp8Experts(arena, random, EXPERTS, INTER, HIDDEN),
                fp8Experts(arena, random, EXPERTS, INTER, HIDDEN),
                fp8Experts(arena, random, EXPERTS, HIDDEN, INTER),
                shared,
                1);
        x = gaussian(arena, random, 1, DType.BF16, tokens, HIDDEN);
        out = Tensor.allocate(arena, DType.F32, tokens, HIDDEN);
        routing = new Routing(TOP_K, tokens);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        ctx.close();
        arena.close();
    }

    @Benchmark
    public Tensor forward(Split split) {
        try (Profiler profiler = Profiler.start()) {
            long t0 = System.nanoTime();
            layer.forward(ctx, x, routing, out);
            long total = System.nanoTime() - t0, inNative = profiler.totalNanos();
            split.nativeNanos += inNative;
            split.javaNanos += total - inNative;
        }
        return out;
    }
}
