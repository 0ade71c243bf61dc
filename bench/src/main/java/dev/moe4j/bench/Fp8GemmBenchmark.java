package dev.moe4j.bench;

import dev.moe4j.kernels.Fp8Gemm;
import dev.moe4j.kernels.Quantization;
import dev.moe4j.kernels.ScaleFormat;
import dev.moe4j.runtime.Context;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.QuantizedTensor;
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
 * FP8 GEMM through the Java API. The 1x128x128 shape is all call overhead (four descriptors and a downcall);
 * the decode shapes should match {@code moe4j_bench gemm} from the same machine, the difference being the
 * FFM cost per call.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class Fp8GemmBenchmark {
    /** M x N x K. */
    @Param({"1x128x128", "1x7168x2048", "16x7168x2048"})
    public String shape;

    private Arena arena;
    private Context ctx;
    private QuantizedTensor a, b;
    private Tensor d;

    @Setup(Level.Trial)
    public void setUp() {
        String[] parts = shape.split("x");
        int m = Integer.parseInt(parts[0]), n = Integer.parseInt(parts[1]), k = Integer.parseInt(parts[2]);
        arena = Arena.ofConfined();
        ctx = Context.create();
        SplittableRandom random = new SplittableRandom(3);
        a = Quantization.perToken(ctx, Inputs.gaussian(arena, random, 1, DType.BF16, m, k), ScaleFormat.FP32, arena);
        b = Quantization.perBlock(ctx, Inputs.gaussian(arena, random, 1, DType.BF16, n, k), ScaleFormat.FP32, arena);
        d = Tensor.allocate(arena, DType.BF16, m, n);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        ctx.close();
        arena.close();
    }

    @Benchmark
    public Tensor nt() {
        Fp8Gemm.nt(ctx, a, b, null, d);
        return d;
    }
}
