package dev.moe4j.bench;

import dev.moe4j.kernels.ExpertFfn;
import dev.moe4j.kernels.Gemm;
import dev.moe4j.kernels.Mla;
import dev.moe4j.kernels.Quantization;
import dev.moe4j.kernels.ScaleFormat;
import dev.moe4j.runtime.Context;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.QuantizedGroups;
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
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The remaining kernel families through the Java API, at decode sizes where per-call overhead would show:
 * the router gate (bf16 GEMM, 16 tokens x 64 experts x 2048), a fused expert FFN step (8 V2-Lite-shaped
 * experts, 8 tokens each) and MLA decode (8 sequences of 1024 tokens, 16 heads). Compare with the native
 * harness ({@code moe4j_bench gemm | mla}) for the FFM share of each call.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class KernelsBenchmark {
    static final int HIDDEN = 2048, INTER = 1408, EXPERTS = 8, TOKENS_PER_EXPERT = 8;

    private Arena arena;
    private Context ctx;
    private final SplittableRandom random = new SplittableRandom(5);

    private Tensor gateX, gateW, gateOut;
    private QuantizedTensor ffnX;
    private QuantizedGroups ffnGate, ffnUp, ffnDown;
    private Tensor ffnLayout, ffnOut;
    private Tensor mlaQ, mlaCache, mlaTable, mlaLengths, mlaOut, mlaLse;

    @Setup(Level.Trial)
    public void setUp() {
        arena = Arena.ofConfined();
        ctx = Context.create();
        gateX = gaussian(DType.BF16, 16, HIDDEN);
        gateW = gaussian(DType.BF16, 64, HIDDEN);
        gateOut = Tensor.allocate(arena, DType.F32, 16, 64);

        int rows = EXPERTS * 128; // each expert's 8 tokens padded to a 128-row block
        ffnX = Quantization.perToken(ctx, gaussian(DType.BF16, rows, HIDDEN), ScaleFormat.FP32, arena);
        ffnGate = experts(INTER, HIDDEN);
        ffnUp = experts(INTER, HIDDEN);
        ffnDown = experts(HIDDEN, INTER);
        ffnLayout = Tensor.allocate(arena, DType.I32, rows);
        for (int r = 0; r < rows; r++) ffnLayout.setInt(r % 128 < TOKENS_PER_EXPERT ? r / 128 : -1, r);
        ffnOut = Tensor.allocate(arena, DType.BF16, rows, HIDDEN);

        int batch = 8, length = 1024, blocks = length / 64;
        mlaQ = gaussian(DType.BF16, batch, 1, 16, 576);
        mlaCache = gaussian(DType.BF16, batch * blocks, 64, 1, 576);
        mlaTable = Tensor.allocate(arena, DType.I32, batch, blocks);
        mlaLengths = Tensor.allocate(arena, DType.I32, batch);
        for (int i = 0; i < batch; i++) {
            mlaLengths.setInt(length, i);
            for (int b = 0; b < blocks; b++) mlaTable.setInt(i * blocks + b, i, b);
        }
        mlaOut = Tensor.allocate(arena, DType.BF16, batch, 1, 16, 512);
        mlaLse = Tensor.allocate(arena, DType.F32, batch, 16, 1);
    }

    private Tensor gaussian(DType dtype, long... shape) {
        return Inputs.gaussian(arena, random, 0.5, dtype, shape);
    }

    /** EXPERTS stacked [n, k] weights, each block-quantized on its own, one group each. */
    private QuantizedGroups experts(int n, int k) {
        Tensor data = Tensor.allocate(arena, DType.E4M3, EXPERTS, n, k);
        Tensor scales = Tensor.allocate(arena, DType.F32, EXPERTS, (n + 127) / 128, k / 128);
        long scaleBytes = 4L * ((n + 127) / 128) * (k / 128);
        for (int e = 0; e < EXPERTS; e++) {
            Tensor q = Tensor.of(data.segment().asSlice((long) e * n * k, (long) n * k), DType.E4M3, n, k);
            Tensor s = Tensor.of(
                    scales.segment().asSlice(e * scaleBytes, scaleBytes), DType.F32, (n + 127) / 128, k / 128);
            Quantization.perBlock(ctx, gaussian(DType.BF16, n, k), q, s, ScaleFormat.FP32);
        }
        return QuantizedGroups.of(new QuantizedTensor(data, scales, 128));
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        ctx.close();
        arena.close();
    }

    @Benchmark
    public Tensor routerGate() {
        Gemm.nt(ctx, gateX, gateW, null, gateOut);
        return gateOut;
    }

    @Benchmark
    public Tensor expertFfn() {
        ExpertFfn.contiguous(ctx, ffnX, ffnGate, ffnUp, ffnDown, ffnLayout, 128, ffnOut);
        return ffnOut;
    }

    @Benchmark
    public Tensor mlaDecode() {
        Mla.decode(ctx, mlaQ, mlaCache, mlaTable, mlaLengths, Mla.DEFAULT_SCALE, false, mlaOut, mlaLse);
        return mlaOut;
    }
}
