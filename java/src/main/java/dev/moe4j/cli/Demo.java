package dev.moe4j.cli;

import dev.moe4j.kernels.Fp8Gemm;
import dev.moe4j.kernels.Quantization;
import dev.moe4j.kernels.ScaleFormat;
import dev.moe4j.runtime.Capabilities;
import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.Isa;
import dev.moe4j.runtime.NativeLibrary;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.QuantizedTensor;
import dev.moe4j.tensor.Tensor;
import java.lang.foreign.Arena;
import java.util.SplittableRandom;

/**
 * The demo on built-in synthetic data: FP8 block quantization of a DeepSeek-V3-shaped weight with its error
 * against the original, then per-token activation quantization throughput on every CPU path.
 */
final class Demo {
    private Demo() {}

    static int run(String[] args) {
        long rows = 7168, cols = 2048, tokens = 4096;
        for (int i = 0; i < args.length; i++) {
            String value = i + 1 < args.length ? args[i + 1] : null;
            switch (args[i]) {
                case "--rows" -> rows = parsePositive("--rows", value);
                case "--cols" -> cols = parsePositive("--cols", value);
                case "--tokens" -> tokens = parsePositive("--tokens", value);
                default -> throw new IllegalArgumentException("unknown option '" + args[i] + "'");
            }
            i++;
        }
        Capabilities caps = NativeLibrary.capabilities();
        System.out.printf(
                "moe4j %s demo: native library %s, CPU path %s, %d threads%n%n",
                caps.version(), caps.library(), caps.cpuIsa().nativeName(), caps.cpuThreads());
        try (Arena arena = Arena.ofConfined();
                Context ctx = Context.create()) {
            QuantizedTensor weight = weightQuantization(ctx, arena, rows, cols);
            activationThroughput(arena, tokens, cols);
            decodeGemm(ctx, arena, weight);
        }
        return 0;
    }

    private static QuantizedTensor weightQuantization(Context ctx, Arena arena, long rows, long cols) {
        System.out.printf("1. 128x128 block FP8 quantization of a synthetic bf16 weight [%d, %d]%n", rows, cols);
        float[] values = syntheticWeight(rows, cols, new SplittableRandom(42));
        Tensor w = Tensor.fromFloats(arena, DType.BF16, values, rows, cols);
        float[] original = w.toFloatArray();
        QuantizedTensor fp32Scaled = null;
        for (ScaleFormat format : ScaleFormat.values()) {
            long t0 = System.nanoTime();
            QuantizedTensor q = Quantization.perBlock(ctx, w, format, arena);
            long t1 = System.nanoTime();
            if (format == ScaleFormat.FP32) fp32Scaled = q;
            float[] restored = Quantization.dequantize(ctx, q, DType.F32, arena).toFloatArray();
            double dot = 0, xx = 0, yy = 0, maxAbs = 0, errSq = 0;
            for (int i = 0; i < original.length; i++) {
                double x = original[i], y = restored[i];
                dot += x * y;
                xx += x * x;
                yy += y * y;
                errSq += (x - y) * (x - y);
                maxAbs = Math.max(maxAbs, Math.abs(x - y));
            }
            double calcDiff = 1 - 2 * dot / (xx + yy);
            System.out.printf(
                    "   %-5s scales: relative RMS error %.4f%%, SNR %.1f dB, calc_diff %.2e, max |error| %.3e, %.1f ms%n",
                    format,
                    100 * Math.sqrt(errSq / xx),
                    10 * Math.log10(xx / errSq),
                    calcDiff,
                    maxAbs,
                    (t1 - t0) / 1e6);
        }
        System.out.println();
        return fp32Scaled;
    }

    /** Decode-sized FP8 GEMMs against the quantized weight. */
    private static void decodeGemm(Context ctx, Arena arena, QuantizedTensor w) {
        long n = w.data().shape(0), k = w.data().shape(1);
        System.out.printf(
                "%n3. FP8 GEMM y = x · wᵀ with the weight above (%d x %d e4m3), decode batch sizes, best of 10%n",
                n, k);
        SplittableRandom random = new SplittableRandom(11);
        for (int m : new int[] {1, 4, 16}) {
            float[] values = new float[Math.toIntExact(m * k)];
            for (int i = 0; i < values.length; i++) values[i] = (float) random.nextGaussian();
            QuantizedTensor x = Quantization.perToken(
                    ctx, Tensor.fromFloats(arena, DType.BF16, values, m, k), ScaleFormat.FP32, arena);
            Tensor y = Tensor.allocate(arena, DType.BF16, m, n);
            double best = Double.MAX_VALUE;
            for (int rep = 0; rep < 11; rep++) {
                long t0 = System.nanoTime();
                Fp8Gemm.nt(ctx, x, w, null, y);
                double seconds = (System.nanoTime() - t0) / 1e9;
                if (rep > 0) best = Math.min(best, seconds);
            }
            System.out.printf(
                    "   M = %2d  %8.3f ms  %6.1f GB/s of weights  %6.1f GFLOP/s%n",
                    m, best * 1e3, n * k / best / 1e9, 2.0 * m * n * k / best / 1e9);
        }
        System.out.println(
                "   (`./moe4j bench gemm` measures these beside OpenBLAS and the memory bandwidth, with the cache cleared)");
    }

    private static void activationThroughput(Arena arena, long tokens, long cols) {
        System.out.printf(
                "2. per-token (1x128) activation quantization of bf16 [%d, %d], best of 5, per CPU path%n",
                tokens, cols);
        float[] values = new float[Math.toIntExact(tokens * cols)];
        SplittableRandom random = new SplittableRandom(7);
        for (int i = 0; i < values.length; i++)
            values[i] = (float) (random.nextGaussian() * (1 + (i % 97 == 0 ? 20 : 0)));
        Tensor x = Tensor.fromFloats(arena, DType.BF16, values, tokens, cols);
        Tensor q = Tensor.allocate(arena, DType.E4M3, tokens, cols);
        Tensor scales = Tensor.allocate(arena, DType.F32, tokens, (cols + 127) / 128);
        double bytes = tokens * cols * (2.0 + 1.0) + scales.elementCount() * 4.0;
        double scalarSeconds = Double.NaN;
        for (Isa isa : Isa.values()) {
            if (isa.ordinal() > NativeLibrary.capabilities().cpuIsa().ordinal()) continue;
            try (Context ctx = Context.create(Context.Options.cpu().withMaxIsa(isa))) {
                double best = Double.MAX_VALUE;
                for (int rep = 0; rep < 6; rep++) {
                    long t0 = System.nanoTime();
                    Quantization.perToken(ctx, x, q, scales, ScaleFormat.FP32);
                    double seconds = (System.nanoTime() - t0) / 1e9;
                    if (rep > 0) best = Math.min(best, seconds);
                }
                if (isa == Isa.SCALAR) scalarSeconds = best;
                System.out.printf(
                        "   %-12s %8.2f ms  %6.2f GB/s  %5.1fx the scalar path%n",
                        isa.nativeName(), best * 1e3, bytes / best / 1e9, scalarSeconds / best);
            }
        }
        System.out.println(
                "   (GB/s counts bf16 read + e4m3 and scales written; `./moe4j bench quant` compares with memory bandwidth)");
    }

    /** Gaussian rows with per-row magnitudes spread over two decades and rare outliers, like trained weights. */
    private static float[] syntheticWeight(long rows, long cols, SplittableRandom random) {
        float[] values = new float[Math.toIntExact(rows * cols)];
        for (long r = 0; r < rows; r++) {
            double rowScale = 0.002 * Math.pow(10, random.nextDouble(0, 2));
            for (long c = 0; c < cols; c++) {
                double v = random.nextGaussian() * rowScale;
                if (random.nextInt(4096) == 0) v *= 30;
                values[(int) (r * cols + c)] = (float) v;
            }
        }
        return values;
    }

    private static long parsePositive(String option, String value) {
        if (value == null) throw new IllegalArgumentException(option + " needs a value");
        try {
            long v = Long.parseLong(value);
            if (v <= 0) throw new IllegalArgumentException(option + " must be positive, got " + v);
            return v;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(option + " expects an integer, got '" + value + "'");
        }
    }
}
