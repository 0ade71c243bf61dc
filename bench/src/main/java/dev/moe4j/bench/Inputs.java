package dev.moe4j.bench;

import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.Tensor;
import java.lang.foreign.Arena;
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
}
