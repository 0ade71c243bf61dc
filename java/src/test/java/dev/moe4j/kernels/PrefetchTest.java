package dev.moe4j.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.Profiler;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.Tensor;
import java.lang.foreign.Arena;
import org.junit.jupiter.api.Test;

/**
 * {@link Prefetch} reaches the native side on a CPU context of more than one thread with hints on, and only there; a
 * hint leaves the next kernel's result as it was. (What the workers do with it is tested natively: pool_prefetch and
 * abi_prefetch in native/test/native_tests.cpp.)
 */
class PrefetchTest {
    @Test
    void hintsReachTheNativeSideOnlyWhereAWorkerCanTakeThem() {
        try (Arena arena = Arena.ofConfined();
                Context two = Context.create(Context.Options.cpu().withThreads(2));
                Context one = Context.create(Context.Options.cpu().withThreads(1))) {
            Tensor w = Tensor.allocate(arena, DType.BF16, 256, 512);
            Prefetch hint = new Prefetch(w.slice(1, 0, 128));
            assertTrue(two.hintsEnabled(), "hints are on by default");
            assertEquals(1, nativeCalls(hint, two), "a context of two threads");
            assertEquals(0, nativeCalls(hint, one), "a context of one thread has no worker for it");
            two.enableHints(false);
            assertEquals(0, nativeCalls(hint, two), "hints off");
            two.enableHints(true);
            assertEquals(1, nativeCalls(hint, two), "hints on again");
        }
    }

    @Test
    void aHintLeavesTheNextResultAsItWas() {
        try (Arena arena = Arena.ofConfined();
                Context ctx = Context.create(Context.Options.cpu().withThreads(2))) {
            Tensor a = Tensor.fromFloats(arena, DType.BF16, steps(3 * 256, 7), 3, 256);
            Tensor b = Tensor.fromFloats(arena, DType.BF16, steps(512 * 256, 5), 512, 256);
            Tensor without = Tensor.allocate(arena, DType.F32, 3, 512);
            Tensor with = Tensor.allocate(arena, DType.F32, 3, 512);
            Gemm.nt(ctx, a, b, null, without);
            new Prefetch(b).on(ctx);
            Gemm.nt(ctx, a, b, null, with);
            assertArrayEquals(without.toFloatArray(), with.toFloatArray());
        }
    }

    @Test
    void nullArgumentsAreNamed() {
        NullPointerException e = assertThrows(NullPointerException.class, () -> new Prefetch(null));
        assertEquals("t", e.getMessage());
    }

    /** n small integers, exact in bf16: i mod m, centred. */
    private static float[] steps(int n, int m) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = i % m - m / 2;
        return v;
    }

    /** The native calls that one hint made on ctx. */
    private static long nativeCalls(Prefetch hint, Context ctx) {
        try (Profiler profiler = Profiler.start()) {
            hint.on(ctx);
            Profiler.Entry e = profiler.entries().get("moe4j_prefetch");
            return e == null ? 0 : e.calls();
        }
    }
}
