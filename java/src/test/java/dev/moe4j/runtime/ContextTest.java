package dev.moe4j.runtime;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.moe4j.bindings.moe4j_context_options;
import dev.moe4j.bindings.moe4j_h;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.junit.jupiter.api.Test;

class ContextTest {
    /** Profilers nest per thread; one waiting for the device times CPU calls as any other (there is nothing to wait). */
    @Test
    void profilersNestAndTimeEveryCall() {
        try (Context ctx = Context.create();
                Profiler outer = Profiler.start()) {
            ctx.resetKernelVariants();
            try (Profiler inner = Profiler.startWaitingForDevice()) {
                assertTrue(inner.waitsForDevice());
                ctx.resetKernelVariants();
                ctx.resetKernelVariants();
                assertEquals(
                        2,
                        inner.entries()
                                .get("moe4j_context_reset_kernel_variants")
                                .calls());
            }
            ctx.resetKernelVariants();
            assertFalse(outer.waitsForDevice());
            assertEquals(
                    2,
                    outer.entries().get("moe4j_context_reset_kernel_variants").calls());
            assertFalse(outer.entries().containsKey("moe4j_synchronize"));
        }
    }

    /** A profiled call's time is counted per function however many functions share a slot of the profiler's cache. */
    @Test
    void profilerCountsEveryFunctionApart() {
        try (Profiler profiler = Profiler.start()) {
            for (int i = 0; i < 200; i++) {
                String f = ("f" + (i % 100)).intern();
                profiler.record(f, 1);
            }
            assertEquals(100, profiler.entries().size());
            for (int i = 0; i < 100; i++)
                assertEquals(2, profiler.entries().get("f" + i).calls());
            assertEquals(200, profiler.totalNanos());
        }
    }

    @Test
    void capabilitiesDescribeTheLoadedLibrary() {
        Capabilities caps = NativeLibrary.capabilities();
        assertEquals(NativeLibrary.ABI_VERSION, caps.abiVersion());
        assertEquals(Runtime.getRuntime().availableProcessors(), caps.cpuThreads());
        assertTrue(caps.library().getFileName().toString().startsWith("libmoe4j"));
        assertTrue(caps.version().matches("\\d+\\.\\d+\\.\\d+"), caps.version());
        if (!caps.cudaCompiled()) assertEquals(0, caps.cudaDeviceCount());
    }

    @Test
    void sanitizerRunReallyLoadsTheSanitizers() throws java.io.IOException {
        if (!Boolean.getBoolean("moe4j.test.sanitized")) return;
        String maps = java.nio.file.Files.readString(java.nio.file.Path.of("/proc/self/maps"));
        assertTrue(maps.contains("libasan"), "AddressSanitizer runtime is not loaded");
        assertTrue(maps.contains("libubsan"), "UndefinedBehaviorSanitizer runtime is not loaded");
        assertTrue(
                NativeLibrary.capabilities().library().toString().contains("asan"),
                NativeLibrary.capabilities().library().toString());
    }

    @Test
    void defaultContextUsesEveryThreadAndTheBestPath() {
        try (Context ctx = Context.create()) {
            assertEquals(Device.CPU, ctx.device());
            assertEquals(NativeLibrary.capabilities().cpuThreads(), ctx.threads());
            assertEquals(NativeLibrary.capabilities().cpuIsa(), ctx.isa());
            assertFalse(ctx.isClosed());
        }
    }

    @Test
    void isaCanBeCappedAndThreadsChosen() {
        for (Isa isa : Isa.values()) {
            try (Context ctx =
                    Context.create(Context.Options.cpu().withMaxIsa(isa).withThreads(3))) {
                Isa expected =
                        isa.ordinal() <= NativeLibrary.capabilities().cpuIsa().ordinal()
                                ? isa
                                : NativeLibrary.capabilities().cpuIsa();
                assertEquals(expected, ctx.isa());
                assertEquals(3, ctx.threads());
            }
        }
    }

    @Test
    void reproducibleFlagRoundTrips() {
        try (Context plain = Context.create();
                Context reproducible = Context.create(Context.Options.cpu().withReproducible(true))) {
            assertFalse(plain.reproducible());
            assertTrue(reproducible.reproducible());
            assertTrue(reproducible.toString().contains("reproducible"));
        }
    }

    @Test
    void simpleKernelsAreForCudaContextsOnly() {
        var e = assertThrows(
                IllegalArgumentException.class, () -> Context.Options.cpu().withSimpleKernels(true));
        assertTrue(e.getMessage().contains("Isa.SCALAR"), e.getMessage());
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment opts = moe4j_context_options.allocate(arena);
            MemorySegment out = arena.allocate(ValueLayout.ADDRESS);
            moe4j_context_options.max_isa(opts, moe4j_h.MOE4J_ISA_BEST());
            moe4j_context_options.flags(opts, moe4j_h.MOE4J_CONTEXT_SIMPLE_KERNELS());
            assertEquals(moe4j_h.MOE4J_ERROR_INVALID_ARGUMENT(), moe4j_h.moe4j_context_create(opts, out));
            assertTrue(NativeLibrary.lastError().contains("for CUDA contexts"), NativeLibrary.lastError());
        }
    }

    @Test
    void cudaBackendNeedsTheCudaLibraryOrADevice() {
        Moe4jException e = assertThrows(Moe4jException.class, () -> Context.create(Context.Options.cuda(0)));
        System.out.println("rejected: " + e.getMessage());
        if (NativeLibrary.capabilities().cudaCompiled()) {
            if (NativeLibrary.capabilities().cudaDeviceCount() == 0)
                assertTrue(e.nativeMessage().contains("does not exist; 0 found"));
        } else {
            assertEquals(Status.UNSUPPORTED, e.status());
            assertTrue(e.nativeMessage().contains("libmoe4j_cuda"), e.nativeMessage());
        }
    }

    @Test
    void nativeSideRejectsBadOptions() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment opts = moe4j_context_options.allocate(arena);
            MemorySegment out = arena.allocate(ValueLayout.ADDRESS);
            out.set(ValueLayout.ADDRESS, 0, MemorySegment.NULL);
            moe4j_context_options.threads(opts, -2);
            assertEquals(moe4j_h.MOE4J_ERROR_INVALID_ARGUMENT(), moe4j_h.moe4j_context_create(opts, out));
            assertTrue(NativeLibrary.lastError().contains("threads -2"), NativeLibrary.lastError());
            moe4j_context_options.threads(opts, 0);
            moe4j_context_options.max_isa(opts, 9);
            assertEquals(moe4j_h.MOE4J_ERROR_INVALID_ARGUMENT(), moe4j_h.moe4j_context_create(opts, out));
            assertTrue(NativeLibrary.lastError().contains("max_isa 9"), NativeLibrary.lastError());
            moe4j_context_options.max_isa(opts, -1);
            moe4j_context_options.device(opts, 1);
            assertEquals(moe4j_h.MOE4J_ERROR_INVALID_ARGUMENT(), moe4j_h.moe4j_context_create(opts, out));
            assertTrue(NativeLibrary.lastError().contains("only device 0"), NativeLibrary.lastError());
            assertEquals(moe4j_h.MOE4J_ERROR_INVALID_ARGUMENT(), moe4j_h.moe4j_context_create(MemorySegment.NULL, out));
            assertEquals(MemorySegment.NULL, out.get(ValueLayout.ADDRESS, 0), "no context was handed out");
            assertEquals(moe4j_h.MOE4J_OK(), moe4j_h.moe4j_context_destroy(MemorySegment.NULL));
        }
    }

    /** The detected path follows the CPU's flags (Linux /proc/cpuinfo), AVX-512 without BF16 included. */
    @Test
    void detectedIsaMatchesTheCpuFlags() throws java.io.IOException {
        java.nio.file.Path cpuinfo = java.nio.file.Path.of("/proc/cpuinfo");
        String cap = System.getenv("MOE4J_MAX_ISA");
        org.junit.jupiter.api.Assumptions.assumeTrue(
                java.nio.file.Files.isReadable(cpuinfo) && (cap == null || cap.isEmpty()),
                "needs /proc/cpuinfo and no MOE4J_MAX_ISA cap");
        java.util.Set<String> flags = java.nio.file.Files.readAllLines(cpuinfo).stream()
                .filter(line -> line.startsWith("flags"))
                .findFirst()
                .map(line -> java.util.Set.of(
                        line.substring(line.indexOf(':') + 1).trim().split("\\s+")))
                .orElseThrow();
        boolean avx512 =
                flags.containsAll(java.util.List.of("avx512f", "avx512bw", "avx512vl", "avx512dq", "fma", "f16c"));
        Isa expected = avx512 && flags.containsAll(java.util.List.of("avx512_bf16", "avx512vbmi"))
                ? Isa.AVX512_BF16
                : avx512
                        ? Isa.AVX512
                        : flags.containsAll(java.util.List.of("avx2", "fma", "f16c")) ? Isa.AVX2 : Isa.SCALAR;
        assertEquals(expected, NativeLibrary.capabilities().cpuIsa(), "flags: " + flags);
        assertEquals(Isa.AVX512, Isa.parse("avx512"));
        assertEquals(Isa.AVX512, Isa.of(moe4j_h.MOE4J_ISA_AVX512()));
        assertEquals(Isa.AVX512_BF16, Isa.of(moe4j_h.MOE4J_ISA_AVX512_BF16()));
    }

    @Test
    void javaSideRejectsBadOptions() {
        assertThrows(IllegalArgumentException.class, () -> Context.Options.cpu().withThreads(-1));
        assertThrows(IllegalArgumentException.class, () -> new Device(Backend.CPU, 1));
        assertThrows(IllegalArgumentException.class, () -> Isa.parse("sse2"));
    }

    @Test
    void contextsOnManyThreadsAreIndependent() throws InterruptedException {
        Thread[] threads = new Thread[4];
        Throwable[] failures = new Throwable[threads.length];
        for (int t = 0; t < threads.length; t++) {
            int id = t;
            threads[t] = new Thread(() -> {
                try {
                    for (int i = 0; i < 20; i++) {
                        try (Context ctx = Context.create(Context.Options.cpu().withThreads(2))) {
                            assertEquals(2, ctx.threads());
                        }
                    }
                } catch (Throwable e) {
                    failures[id] = e;
                }
            });
            threads[t].start();
        }
        for (Thread t : threads) t.join();
        for (Throwable f : failures) if (f != null) throw new AssertionError(f);
    }
}
