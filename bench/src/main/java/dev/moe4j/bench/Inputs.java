package dev.moe4j.bench;

import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.QuantizedGroups;
import dev.moe4j.tensor.QuantizedTensor;
import dev.moe4j.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;

/** Benchmark inputs: fresh Gaussian values, never zeros, so kernels do their real work. */
final class Inputs {
    private Inputs() {}

    /** A row-major tensor of dtype holding N(0, sigma²) values. */
    static Tensor gaussian(Arena arena, SplittableRandom random, double sigma, DType dtype, long... shape) {
        Tensor t = Tensor.allocate(arena, dtype, shape);
        float[] v = new float[Math.toIntExact(t.elementCount())];
        for (int i = 0; i < v.length; i++) v[i] = (float) (random.nextGaussian() * sigma);
        t.copyFrom(v);
        return t;
    }

    /**
     * FP8 weights [groups, N, K] with 128x128 block scales, drawn directly as random e4m3 codes of magnitude 0.5-3.75
     * (no quantization pass: expert stacks run to hundreds of MB) and scales of 1 / (2·sqrt(K)).
     */
    static QuantizedTensor fp8Weights(Arena arena, SplittableRandom random, long groups, long n, long k) {
        Tensor data = Tensor.allocate(arena, DType.E4M3, groups, n, k);
        MemorySegment bytes = data.segment();
        for (long i = 0; i < bytes.byteSize(); i++)
            bytes.set(ValueLayout.JAVA_BYTE, i, (byte) ((random.nextInt() & 0x80) | (0x30 + random.nextInt(32))));
        Tensor scales = Tensor.allocate(arena, DType.F32, groups, (n + 127) / 128, k / 128);
        scales.segment().fill((byte) 0);
        float s = (float) (0.5 / Math.sqrt(k));
        for (long i = 0; i < scales.elementCount(); i++) scales.segment().setAtIndex(ValueLayout.JAVA_FLOAT, i, s);
        return new QuantizedTensor(data, scales, QuantizedTensor.BLOCK);
    }

    /** {@link #fp8Weights} as the kernels take experts: one group per matrix of the stack. */
    static QuantizedGroups fp8Experts(Arena arena, SplittableRandom random, long groups, long n, long k) {
        return QuantizedGroups.of(fp8Weights(arena, random, groups, n, k));
    }
}
