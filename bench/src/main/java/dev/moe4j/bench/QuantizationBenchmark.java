package dev.moe4j.bench;

import dev.moe4j.kernels.Quantization;
import dev.moe4j.kernels.ScaleFormat;
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
 * Per-token FP8 quantization through the Java API. The 1x128 shape is dominated by the cost of the call
 * itself (descriptor marshalling + downcall), so it measures the FFM overhead per call; the large shape
 * should match the native harness's {@code moe4j_bench quant} time.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class QuantizationBenchmark {
    @Param({"1x128", "128x7168", "4096x7168"})
    public String shape;

    private Arena arena;
    private Context ctx;
    private Tensor x, q, scales;

    @Setup(Level.Trial)
    public void setUp() {
        String[] parts = shape.split("x");
        long m = Long.parseLong(parts[0]), k = Long.parseLong(parts[1]);
        arena = Arena.ofConfined();
        ctx = Context.create();
        x = Inputs.gaussian(arena, new SplittableRandom(1), 1, DType.BF16, m, k);
        q = Tensor.allocate(arena, DType.E4M3, m, k);
        scales = Tensor.allocate(arena, DType.F32, m, (k + 127) / 128);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        ctx.close();
        arena.close();
    }

    @Benchmark
    public Tensor perToken() {
        Quantization.perToken(ctx, x, q, scales, ScaleFormat.FP32);
        return q;
    }
}
