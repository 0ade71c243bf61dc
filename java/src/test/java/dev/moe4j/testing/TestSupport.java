package dev.moe4j.testing;

import dev.moe4j.runtime.Isa;
import dev.moe4j.runtime.NativeLibrary;
import dev.moe4j.tensor.QuantizedGroups;
import dev.moe4j.tensor.QuantizedTensor;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/** Shared test plumbing: the ISA paths to cover and fresh, reproducible randomness. */
public final class TestSupport {
    private TestSupport() {}

    /** Every CPU path this machine can run: each kernel test runs on all of them. */
    public static List<Isa> isaPaths() {
        Isa best = NativeLibrary.capabilities().cpuIsa();
        return Arrays.stream(Isa.values())
                .filter(isa -> isa.ordinal() <= best.ordinal())
                .toList();
    }

    /**
     * Why the GPU tests cannot run in this JVM, or null when a CUDA device is there: the CPU-only library is loaded,
     * libmoe4j_cuda is missing, or the driver reports no device. Printed once by the first GPU test class asking.
     */
    public static String noGpuReason() {
        String reason;
        try {
            var caps = NativeLibrary.capabilities();
            reason = !caps.cudaCompiled()
                    ? "the CPU-only library is loaded; run with -Dmoe4j.library=moe4j_cuda"
                    : caps.cudaDeviceCount() == 0 ? "no CUDA device (no driver or no GPU on this machine)" : null;
        } catch (UnsatisfiedLinkError e) {
            reason = "libmoe4j_cuda cannot be loaded (it is built when nvcc is found): "
                    + e.getMessage().lines().findFirst().orElse("");
        }
        if (reason != null && !gpuReasonPrinted) System.err.println("GPU tests skipped: " + reason);
        gpuReasonPrinted = true;
        return reason;
    }

    private static boolean gpuReasonPrinted;

    /**
     * A rank-2 block-quantized weight [groups · R, C] as {@code groups} matrices [R, C] sharing its memory (R a
     * multiple of 128, so that every matrix owns whole scale blocks).
     */
    public static QuantizedGroups split(QuantizedTensor q, int groups) {
        long rows = q.data().shape(0) / groups, cols = q.data().shape(1);
        if (rows * groups != q.data().shape(0) || rows % QuantizedTensor.BLOCK != 0)
            throw new IllegalArgumentException(q.data() + " does not split into " + groups + " groups of whole blocks");
        return QuantizedGroups.of(new QuantizedTensor(
                q.data().view(groups, rows, cols),
                q.scales().view(groups, rows / QuantizedTensor.BLOCK, q.scales().shape(1)),
                QuantizedTensor.BLOCK));
    }

    /**
     * A fresh seed per call (printed by the caller in assertion messages) so runs explore new inputs;
     * {@code -Dmoe4j.test.seed=N} replays one.
     */
    public static long freshSeed() {
        return Long.getLong("moe4j.test.seed", System.nanoTime() ^ 0x5DEECE66DL);
    }

    public static SplittableRandom random(long seed) {
        return new SplittableRandom(seed);
    }

    /** Random floats spanning many magnitudes with both signs: Gaussian times 10^U(-3, 2). */
    public static float[] wideFloats(SplittableRandom random, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) (random.nextGaussian() * Math.pow(10, random.nextDouble(-3, 2)));
        return v;
    }
}
