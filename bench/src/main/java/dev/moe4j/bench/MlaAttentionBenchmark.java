package dev.moe4j.bench;

import static dev.moe4j.bench.Inputs.gaussian;

import dev.moe4j.kernels.Mla;
import dev.moe4j.kernels.Quantization;
import dev.moe4j.kernels.ScaleFormat;
import dev.moe4j.model.Linear;
import dev.moe4j.model.MlaAttention;
import dev.moe4j.model.PagedLatentCache;
import dev.moe4j.model.RmsNorm;
import dev.moe4j.model.Rope;
import dev.moe4j.runtime.Context;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.Tensor;
import java.lang.foreign.Arena;
import java.util.Arrays;
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
 * The whole MLA block on DeepSeek-V2-Lite's attention shapes (hidden 2048, 16 heads, no q LoRA, FP8 weights):
 * a decode step for {@code batch} sequences of {@code context} tokens, and a 512-token prefill, beside the bare
 * {@link Mla#decode} kernel on the same cache so the share of the projections and of Java is visible.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class MlaAttentionBenchmark {
    static final int HIDDEN = 2048, HEADS = 16, PREFILL = 512;

    @Param({"1", "8"})
    int batch;

    @Param({"1024"})
    int context;

    private Arena arena;
    private Context ctx;
    private MlaAttention mla;
    private PagedLatentCache cache;
    private int[] sequences;
    private int prefillSequence;
    private Tensor x, out, prefillX, prefillOut, q, attended, lse;
    private PagedLatentCache.Batch decodeBatch;
    private int[] oneEach;

    @Setup(Level.Trial)
    public void setUp() {
        arena = Arena.ofConfined();
        ctx = Context.create();
        SplittableRandom random = new SplittableRandom(7);
        var config = new MlaAttention.Config(
                HIDDEN, HEADS, 0, 512, 128, 64, 128, 1e-6f, 10000, new Rope.Yarn(40, 4096, 32, 1, 0.707, 0.707));
        float[] ones = new float[512];
        Arrays.fill(ones, 1);
        var weights = new MlaAttention.Weights(
                fp8(random, HEADS * 192, HIDDEN),
                null,
                null,
                null,
                fp8(random, 576, HIDDEN),
                new RmsNorm(ones, 1e-6f),
                fp8(random, HEADS * 256, 512),
                fp8(random, HIDDEN, HEADS * 128));
        mla = new MlaAttention(ctx, config, weights, arena);
        int blocksPerSequence = (context + PREFILL) / 64 + 2;
        cache = new PagedLatentCache(arena, 1, (batch + 1) * blocksPerSequence, 1, false);
        sequences = new int[batch];
        for (int i = 0; i < batch; i++) {
            sequences[i] = cache.newSequence();
            cache.append(ctx, 0, sequences[i], gaussian(arena, random, 1, DType.BF16, context, 1, 576));
        }
        prefillSequence = cache.newSequence();
        x = gaussian(arena, random, 1, DType.BF16, batch, HIDDEN);
        out = Tensor.allocate(arena, DType.F32, batch, HIDDEN);
        prefillX = gaussian(arena, random, 1, DType.BF16, PREFILL, HIDDEN);
        prefillOut = Tensor.allocate(arena, DType.F32, PREFILL, HIDDEN);
        q = gaussian(arena, random, 1, DType.BF16, batch, 1, HEADS, 576);
        attended = Tensor.allocate(arena, DType.BF16, batch, 1, HEADS, 512);
        lse = Tensor.allocate(arena, DType.F32, batch, HEADS, 1);
        oneEach = new int[batch];
        Arrays.fill(oneEach, 1);
        decodeBatch = cache.batch(arena, sequences);
    }

    private Linear fp8(SplittableRandom random, int rows, int cols) {
        Tensor w = gaussian(arena, random, 1 / Math.sqrt(cols), DType.F32, rows, cols);
        return Linear.fp8(Quantization.perBlock(ctx, w, ScaleFormat.FP32, arena));
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        ctx.close();
        arena.close();
    }

    /** One decode step: every sequence gains a token, then is cut back so the context stays fixed. */
    @Benchmark
    public Tensor decodeStep() {
        mla.step(ctx, cache, 0, sequences, oneEach, x, out);
        for (int s : sequences) cache.truncate(s, context);
        return out;
    }

    /** The attention kernel alone over the same cache and batch. */
    @Benchmark
    public Tensor decodeKernelOnly() {
        Mla.decode(
                ctx,
                q,
                cache.tensor(0),
                decodeBatch.blockTable(),
                decodeBatch.lengths(),
                mla.softmaxScale(),
                false,
                attended,
                lse);
        return attended;
    }

    @Benchmark
    public Tensor prefill512() {
        mla.step(ctx, cache, 0, new int[] {prefillSequence}, new int[] {PREFILL}, prefillX, prefillOut);
        cache.truncate(prefillSequence, 0);
        return prefillOut;
    }
}
