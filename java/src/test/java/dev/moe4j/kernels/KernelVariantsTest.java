package dev.moe4j.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.moe4j.bindings.moe4j_h;
import dev.moe4j.bindings.moe4j_kernel_variant;
import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.Isa;
import dev.moe4j.runtime.KernelVariant;
import dev.moe4j.runtime.Moe4jException;
import dev.moe4j.runtime.NativeLibrary;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.QuantizedGroups;
import dev.moe4j.tensor.QuantizedTensor;
import dev.moe4j.tensor.Tensor;
import dev.moe4j.testing.TestSupport;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The per-context kernel-variant counts ({@link Context#kernelVariants()}) on the CPU backend: each call counts once
 * under the ISA path that ran, with its sub-kernel; rejected calls do not count; reset forgets; the native entry
 * point rejects bad arguments by name.
 */
class KernelVariantsTest {
    private Arena arena;
    private Context setup;
    private SplittableRandom random;

    @BeforeEach
    void open() {
        arena = Arena.ofConfined();
        setup = Context.create(); // quantizes the operands, so the contexts under test count only the calls made
        random = TestSupport.random(TestSupport.freshSeed());
    }

    @AfterEach
    void close() {
        setup.close();
        arena.close();
    }

    Tensor gaussian(DType dtype, long... shape) {
        Tensor t = Tensor.allocate(arena, dtype, shape);
        float[] v = new float[Math.toIntExact(t.elementCount())];
        for (int i = 0; i < v.length; i++) v[i] = (float) random.nextGaussian();
        t.copyFrom(v);
        return t;
    }

    QuantizedTensor activations(int rows, int k) {
        return Quantization.perToken(setup, gaussian(DType.BF16, rows, k), ScaleFormat.FP32, arena);
    }

    QuantizedTensor weights(int n, int k) {
        return Quantization.perBlock(setup, gaussian(DType.BF16, n, k), ScaleFormat.FP32, arena);
    }

    @Test
    void fp8GemmCallsCountUnderThePathThatRan() {
        QuantizedTensor a = activations(5, 256), b = weights(192, 256);
        Tensor d = Tensor.allocate(arena, DType.F32, 5, 192);
        for (Isa isa : TestSupport.isaPaths()) {
            try (Context ctx =
                    Context.create(Context.Options.cpu().withMaxIsa(isa).withThreads(2))) {
                assertEquals(List.of(), ctx.kernelVariants(), "a fresh context has counted nothing");
                for (int i = 0; i < 3; i++) Fp8Gemm.nt(ctx, a, b, null, d);
                assertEquals(
                        List.of(new KernelVariant("fp8_gemm_nt", isa.nativeName(), "row kernel", 3)),
                        ctx.kernelVariants(),
                        isa.nativeName());
                Fp8Gemm.nt(ctx, a, b, null, d);
                assertEquals(4, ctx.kernelVariants().get(0).calls(), "one more call, one more count");
            }
        }
    }

    @Test
    void resetForgetsAndCountingStartsOver() {
        QuantizedTensor a = activations(3, 128), b = weights(128, 128);
        Tensor d = Tensor.allocate(arena, DType.BF16, 3, 128);
        try (Context ctx = Context.create(Context.Options.cpu().withMaxIsa(Isa.SCALAR))) {
            Fp8Gemm.nt(ctx, a, b, null, d);
            Fp8Gemm.nt(ctx, a, b, null, d);
            ctx.resetKernelVariants();
            assertEquals(List.of(), ctx.kernelVariants());
            Fp8Gemm.nt(ctx, a, b, null, d);
            assertEquals(List.of(new KernelVariant("fp8_gemm_nt", "scalar", "row kernel", 1)), ctx.kernelVariants());
            ctx.resetKernelVariants();
            ctx.resetKernelVariants(); // idempotent
            assertEquals(List.of(), ctx.kernelVariants());
        }
    }

    @Test
    void rejectedCallsDoNotCount() {
        QuantizedTensor a = activations(4, 256), b = weights(128, 256);
        try (Context ctx = Context.create(Context.Options.cpu().withMaxIsa(Isa.SCALAR))) {
            Tensor wrong = Tensor.allocate(arena, DType.F32, 4, 129);
            assertThrows(Moe4jException.class, () -> Fp8Gemm.nt(ctx, a, b, null, wrong));
            assertEquals(List.of(), ctx.kernelVariants());
        }
    }

    @Test
    void entriesKeepFirstSeenOrderAndSeparateKernels() {
        QuantizedTensor a = activations(6, 256), b = weights(256, 256);
        Tensor d = Tensor.allocate(arena, DType.F32, 6, 256);
        Tensor x = gaussian(DType.BF16, 6, 256), y = gaussian(DType.BF16, 64, 256);
        try (Context ctx = Context.create(Context.Options.cpu().withMaxIsa(Isa.SCALAR))) {
            Gemm.nt(ctx, x, y, DType.F32, arena);
            Fp8Gemm.nt(ctx, a, b, null, d);
            Gemm.nt(ctx, x, y, DType.F32, arena);
            Quantization.perToken(ctx, x, ScaleFormat.FP32, arena);
            assertEquals(
                    List.of(
                            new KernelVariant("gemm_nt", "scalar", "", 2),
                            new KernelVariant("fp8_gemm_nt", "scalar", "row kernel", 1),
                            new KernelVariant("quantize_fp8_per_token", "scalar", "", 1)),
                    ctx.kernelVariants());
        }
    }

    @Test
    void kernelsWithoutAvx512CodeSayTheyRanTheAvx2Path() {
        if (!TestSupport.isaPaths().contains(Isa.AVX512)) {
            System.out.println("no AVX-512 on this machine: the avx512 fallback is not exercised");
            return;
        }
        Tensor x = gaussian(DType.BF16, 4, 256), y = gaussian(DType.BF16, 8, 256);
        QuantizedTensor a = activations(4, 256), b = weights(128, 256);
        Tensor d = Tensor.allocate(arena, DType.F32, 4, 128);
        try (Context ctx = Context.create(Context.Options.cpu().withMaxIsa(Isa.AVX512))) {
            Cast.apply(ctx, x, Tensor.allocate(arena, DType.F32, 4, 256));
            Gemm.nt(ctx, x, y, DType.F32, arena);
            Fp8Gemm.nt(ctx, a, b, null, d);
            assertEquals(
                    List.of(
                            new KernelVariant("cast", "avx2", "no AVX-512F code of its own: the AVX2 path", 1),
                            new KernelVariant("gemm_nt", "avx512", "", 1),
                            new KernelVariant("fp8_gemm_nt", "avx512", "row kernel", 1)),
                    ctx.kernelVariants());
        }
    }

    @Test
    void groupedGemmsAndTheExpertFfnCountTheirStages() {
        int experts = 2, hidden = 256, inter = 256, rows = 8;
        QuantizedTensor x = activations(rows, hidden);
        QuantizedGroups gate = QuantizedGroups.of(List.of(weights(inter, hidden), weights(inter, hidden)));
        QuantizedGroups up = QuantizedGroups.of(List.of(weights(inter, hidden), weights(inter, hidden)));
        QuantizedGroups down = QuantizedGroups.of(List.of(weights(hidden, inter), weights(hidden, inter)));
        Tensor layout = Tensor.allocate(arena, DType.I32, rows);
        for (int r = 0; r < rows; r++) layout.setInt(r < 3 ? 0 : r < 7 ? 1 : -1, r);
        Tensor d = Tensor.allocate(arena, DType.F32, rows, hidden);
        Isa isa = NativeLibrary.capabilities().cpuIsa();
        try (Context ctx = Context.create(Context.Options.cpu().withThreads(2))) {
            ExpertFfn.contiguous(ctx, x, gate, up, down, layout, 1, d);
            ExpertFfn.contiguous(ctx, x, gate, up, down, layout, 1, d);
            Fp8Gemm.groupedContiguous(ctx, x, gate, layout, 1, Tensor.allocate(arena, DType.F32, rows, inter));
            assertEquals(
                    List.of(
                            new KernelVariant(
                                    "fp8_expert_ffn_contiguous:gate_up",
                                    isa.nativeName(),
                                    "fused gate/up pass, row kernel",
                                    2),
                            new KernelVariant("fp8_expert_ffn_contiguous:down", isa.nativeName(), "row kernel", 2),
                            new KernelVariant("grouped_fp8_gemm_contiguous", isa.nativeName(), "row kernel", 1)),
                    ctx.kernelVariants());
        }
    }

    /**
     * Groups of 16 rows or more take the packed-panel kernel on the AVX-512 paths in a context that is not
     * reproducible, the fused gate/up pass included; a reproducible context keeps them on the row kernel.
     */
    @Test
    void largeGroupsCountThePackedPanelKernel() {
        int hidden = 256, inter = 256, rows = 16;
        QuantizedTensor x = activations(rows, hidden);
        QuantizedGroups gate = QuantizedGroups.of(List.of(weights(inter, hidden)));
        QuantizedGroups up = QuantizedGroups.of(List.of(weights(inter, hidden)));
        QuantizedGroups down = QuantizedGroups.of(List.of(weights(hidden, inter)));
        Tensor layout = Tensor.allocate(arena, DType.I32, rows);
        for (int r = 0; r < rows; r++) layout.setInt(0, r);
        Tensor d = Tensor.allocate(arena, DType.F32, rows, hidden);
        for (Isa isa : TestSupport.isaPaths()) {
            for (boolean reproducible : new boolean[] {false, true}) {
                try (Context ctx =
                        Context.create(Context.Options.cpu().withMaxIsa(isa).withReproducible(reproducible))) {
                    ExpertFfn.contiguous(ctx, x, gate, up, down, layout, 1, d);
                    String kernel = isa.hasPackedKernels() && !reproducible ? "packed-panel kernel" : "row kernel";
                    assertEquals(
                            List.of(
                                    new KernelVariant(
                                            "fp8_expert_ffn_contiguous:gate_up",
                                            isa.nativeName(),
                                            "fused gate/up pass, " + kernel,
                                            1),
                                    new KernelVariant("fp8_expert_ffn_contiguous:down", isa.nativeName(), kernel, 1)),
                            ctx.kernelVariants(),
                            isa.nativeName() + (reproducible ? ", reproducible" : ""));
                }
            }
        }
    }

    @Test
    void closedContextsRefuse() {
        Context ctx = Context.create();
        ctx.close();
        assertThrows(IllegalStateException.class, ctx::kernelVariants);
        assertThrows(IllegalStateException.class, ctx::resetKernelVariants);
    }

    @Test
    void nativeEntryPointNamesBadArguments() {
        QuantizedTensor a = activations(2, 128), b = weights(128, 128);
        try (Context ctx = Context.create(Context.Options.cpu().withMaxIsa(Isa.SCALAR))) {
            Fp8Gemm.nt(ctx, a, b, null, Tensor.allocate(arena, DType.F32, 2, 128));
            Gemm.nt(ctx, gaussian(DType.F32, 2, 8), gaussian(DType.F32, 3, 8), DType.F32, arena);
            MemorySegment count = arena.allocate(ValueLayout.JAVA_INT);
            MemorySegment one = moe4j_kernel_variant.allocateArray(1, arena);
            assertFails(moe4j_h.moe4j_context_kernel_variants(MemorySegment.NULL, one, 1, count), "'ctx' is null");
            assertFails(moe4j_h.moe4j_context_kernel_variants(ctx.handle(), one, 1, MemorySegment.NULL), "'count'");
            assertFails(moe4j_h.moe4j_context_kernel_variants(ctx.handle(), one, -1, count), "'capacity': -1");
            assertFails(moe4j_h.moe4j_context_kernel_variants(ctx.handle(), MemorySegment.NULL, 2, count), "'out'");
            count.set(ValueLayout.JAVA_INT, 0, -7);
            one.fill((byte) 0x55);
            assertFails(
                    moe4j_h.moe4j_context_kernel_variants(ctx.handle(), one, 1, count),
                    "'capacity': 1 entries, but the context has 2");
            assertEquals(-7, count.get(ValueLayout.JAVA_INT, 0), "a failed call writes nothing");
            assertEquals(0x55, one.get(ValueLayout.JAVA_BYTE, 0), "a failed call writes nothing");
            assertFails(moe4j_h.moe4j_context_reset_kernel_variants(MemorySegment.NULL), "'ctx' is null");

            assertEquals(0, moe4j_h.moe4j_context_kernel_variants(ctx.handle(), MemorySegment.NULL, 0, count));
            assertEquals(2, count.get(ValueLayout.JAVA_INT, 0), "size query");
            MemorySegment three = moe4j_kernel_variant.allocateArray(3, arena);
            assertEquals(0, moe4j_h.moe4j_context_kernel_variants(ctx.handle(), three, 3, count));
            assertEquals(2, count.get(ValueLayout.JAVA_INT, 0), "a larger array is fine");
            MemorySegment second = moe4j_kernel_variant.asSlice(three, 1);
            assertEquals("gemm_nt", moe4j_kernel_variant.kernel(second).getString(0));
            assertEquals(1, moe4j_kernel_variant.calls(second));
        }
    }

    static void assertFails(int status, String messagePart) {
        assertEquals(moe4j_h.MOE4J_ERROR_INVALID_ARGUMENT(), status, messagePart);
        String message = NativeLibrary.lastError();
        assertTrue(message.contains(messagePart), message);
        assertTrue(message.startsWith("moe4j_context_"), message);
    }
}
