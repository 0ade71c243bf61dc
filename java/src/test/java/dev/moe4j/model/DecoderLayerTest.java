package dev.moe4j.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.moe4j.routing.Routing;
import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.Workspace;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.Tensor;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** A layer's input given as two terms, and its output left as two: the same bits as adding them first. */
class DecoderLayerTest {
    private static final Path DIR = Path.of("src/test/resources/fixtures/model/v3-tiny");
    private static final int T = 3;

    @Test
    void inputAsTwoTermsMatchesTheirSum() {
        try (Checkpoint checkpoint = Checkpoint.open(DIR);
                Context ctx = Context.create();
                Arena arena = Arena.ofConfined()) {
            int hidden = checkpoint.config().hiddenSize();
            DecoderLayer layer = DecoderLayer.load(checkpoint, 1, false, false, false, ctx, arena);
            Random random = new Random(7);
            float[] a = new float[T * hidden], b = new float[T * hidden], ab = new float[T * hidden];
            for (int i = 0; i < a.length; i++) {
                a[i] = (float) random.nextGaussian();
                b[i] = (float) random.nextGaussian();
                ab[i] = a[i] + b[i];
            }
            float[] split = run(ctx, arena, layer, hidden, a, b);
            float[] summed = run(ctx, arena, layer, hidden, ab, null);
            assertArrayEquals(summed, split);
            boolean nonzero = false;
            for (float v : split) nonzero |= v != 0;
            assertTrue(nonzero, "the layer wrote its output");
        }
    }

    /** The layer's output, sum + branch added here, for input x (+ residual). */
    private static float[] run(Context ctx, Arena arena, DecoderLayer layer, int hidden, float[] x, float[] residual) {
        Tensor xt = Tensor.fromFloats(arena, DType.F32, x, T, hidden);
        Tensor rt = residual == null ? null : Tensor.fromFloats(arena, DType.F32, residual, T, hidden);
        Tensor sum = rt != null ? rt : Tensor.allocate(arena, DType.F32, T, hidden);
        Tensor branch = xt; // both written in place, as the model's step does
        Routing routing = new Routing(layer.moe().gate().config().topK(), T);
        PagedLatentCache cache = cache(arena, layer.index() + 1);
        try (Workspace.Frame frame = ctx.workspace().frame()) {
            cache.inStep(frame, new int[] {0}, new int[] {T}, step -> {
                layer.forward(ctx, cache, step, xt, rt, routing, sum, branch);
                return null;
            });
        }
        float[] s = sum.toFloatArray(), out = branch.toFloatArray();
        for (int i = 0; i < out.length; i++) out[i] += s[i];
        return out;
    }

    @Test
    void badStreamsAreNamed() {
        try (Checkpoint checkpoint = Checkpoint.open(DIR);
                Context ctx = Context.create();
                Arena arena = Arena.ofConfined()) {
            int hidden = checkpoint.config().hiddenSize();
            DecoderLayer layer = DecoderLayer.load(checkpoint, 1, false, false, false, ctx, arena);
            Tensor x = Tensor.allocate(arena, DType.F32, T, hidden);
            Tensor f32 = Tensor.allocate(arena, DType.F32, T, hidden);
            Tensor bf16 = Tensor.allocate(arena, DType.BF16, T, hidden);
            Tensor shorter = Tensor.allocate(arena, DType.F32, T - 1, hidden);
            Routing routing = new Routing(layer.moe().gate().config().topK(), T);
            PagedLatentCache cache = cache(arena, layer.index() + 1);
            try (Workspace.Frame frame = ctx.workspace().frame()) {
                cache.inStep(frame, new int[] {0}, new int[] {T}, step -> {
                    assertMessage(
                            "residual must be", () -> layer.forward(ctx, cache, step, x, shorter, routing, f32, x));
                    assertMessage("sum must be", () -> layer.forward(ctx, cache, step, x, null, routing, bf16, x));
                    assertMessage("branch must be", () -> layer.forward(ctx, cache, step, x, null, routing, f32, null));
                    assertMessage("sum and branch", () -> layer.forward(ctx, cache, step, x, null, routing, f32, f32));
                    return null;
                });
            }
        }
    }

    private static void assertMessage(String start, Runnable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call::run);
        assertTrue(e.getMessage().startsWith(start), e.getMessage());
    }

    /** A cache of {@code layers} layers with one empty sequence (id 0) of room for T tokens. */
    private static PagedLatentCache cache(Arena arena, int layers) {
        PagedLatentCache cache = new PagedLatentCache(arena, layers, PagedLatentCache.blocksFor(T), 1, false);
        cache.newSequence();
        return cache;
    }
}
