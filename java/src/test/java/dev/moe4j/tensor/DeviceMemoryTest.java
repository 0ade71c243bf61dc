package dev.moe4j.tensor;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.moe4j.bindings.moe4j_h;
import dev.moe4j.bindings.moe4j_tensor;
import dev.moe4j.kernels.Copy;
import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.Moe4jException;
import dev.moe4j.runtime.Status;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.Test;

/** moe4j_alloc / moe4j_copy on a CPU context (host memory); the CUDA side is covered by the GPU tests. */
class DeviceMemoryTest {
    /**
     * Memory nobody closed is freed by the collector through its context, but only once no tensor over it is
     * reachable; memory closed explicitly is never freed a second time (a double free of moe4j_alloc's host memory
     * would abort this JVM).
     */
    @Test
    void unclosedMemoryIsFreedOnceNothingReachesIt() throws InterruptedException {
        try (Arena arena = Arena.ofConfined();
                Context ctx = Context.create()) {
            long bytes = 3 * 1_000_003L; // a size no other test frees
            // other tests' unreachable memory (some leak on purpose, e.g. a device whose context they closed) is
            // collected first, so that the counts below move only with this test's memory
            collect(() -> false, 5);
            DeviceMemory.Collected before = DeviceMemory.collected();
            for (int i = 0; i < 20; i++) DeviceMemory.allocate(ctx, 4096).close(); // closed: the collector has no work
            Tensor kept = forgottenMemory(ctx, bytes);
            collect(() -> false, 5);
            assertEquals(before.freedBytes(), DeviceMemory.collected().freedBytes(), "the tensor keeps its memory");
            Tensor host = Tensor.fromFloats(arena, DType.F32, new float[] {7, 8}, 2);
            Copy.apply(ctx, host, kept.slice(0, 5, 2));
            Tensor back = Tensor.allocate(arena, DType.F32, 2);
            Copy.apply(ctx, kept.slice(0, 5, 2), back);
            assertArrayEquals(new float[] {7, 8}, back.toFloatArray());

            kept = null;
            assertTrue(
                    collect(() -> DeviceMemory.collected().freedBytes() - before.freedBytes() >= bytes, 200),
                    "freed once unreachable: " + DeviceMemory.collected() + " (before " + before + ")");
            assertEquals(before.leaked(), DeviceMemory.collected().leaked());
        }
    }

    /** Memory still allocated when its context closes is leaked, not freed through a destroyed context. */
    @Test
    void memoryOfAClosedContextIsLeakedNotFreed() throws InterruptedException {
        DeviceMemory.Collected before = DeviceMemory.collected();
        long bytes = 5 * 1_000_003L;
        Context ctx = Context.create();
        DeviceMemory open = DeviceMemory.allocate(ctx, 64);
        forgottenMemory(ctx, bytes);
        ctx.close();
        var closedFirst = assertThrows(IllegalStateException.class, open::close);
        assertTrue(closedFirst.getMessage().contains("context was closed first"), closedFirst.getMessage());
        open.close(); // once is enough
        assertTrue(
                collect(() -> DeviceMemory.collected().leakedBytes() - before.leakedBytes() >= bytes, 200),
                "leaked: " + DeviceMemory.collected() + " (before " + before + ")");
    }

    /** A tensor over new memory of the given size, whose DeviceMemory is dropped unclosed. */
    private static Tensor forgottenMemory(Context ctx, long bytes) {
        return DeviceMemory.allocate(ctx, bytes).tensor(DType.F32, bytes / 4);
    }

    /** Runs the collector until done says so, at most {@code rounds} times 50 ms; whether it did. */
    private static boolean collect(BooleanSupplier done, int rounds) throws InterruptedException {
        for (int i = 0; i < rounds; i++) {
            if (done.getAsBoolean()) return true;
            System.gc();
            Thread.sleep(50);
        }
        return done.getAsBoolean();
    }

    @Test
    void allocatesCopiesAndFrees() {
        try (Arena arena = Arena.ofConfined();
                Context ctx = Context.create();
                DeviceMemory memory = DeviceMemory.allocate(ctx, 3 * 5 * 4)) {
            float[] values = new float[15];
            for (int i = 0; i < 15; i++) values[i] = i * 1.5f - 4;
            Tensor host = Tensor.fromFloats(arena, DType.F32, values, 3, 5);
            Tensor onDevice = memory.tensor(DType.F32, 3, 5);
            assertEquals(0, onDevice.segment().address() % 64, "64-byte aligned");
            Copy.apply(ctx, host, onDevice);
            Tensor back = Tensor.allocate(arena, DType.F32, 3, 5);
            Copy.apply(ctx, onDevice, back);
            Copy.synchronize(ctx);
            assertArrayEquals(values, back.toFloatArray());

            var shape = assertThrows(Moe4jException.class, () -> Copy.apply(ctx, host, memory.tensor(DType.F32, 5, 3)));
            assertTrue(shape.getMessage().contains("dst"), shape.getMessage());
            var dtype = assertThrows(Moe4jException.class, () -> Copy.apply(ctx, host, memory.tensor(DType.I32, 3, 5)));
            assertTrue(dtype.getMessage().contains("differ in dtype"), dtype.getMessage());
            Tensor strided = host.slice(1, 1, 2);
            var layout =
                    assertThrows(Moe4jException.class, () -> Copy.apply(ctx, strided, memory.tensor(DType.F32, 3, 2)));
            assertTrue(layout.getMessage().contains("not contiguous"), layout.getMessage());
            assertThrows(IllegalArgumentException.class, () -> memory.tensor(DType.F32, 4, 4)); // 64 bytes > 60
        }
    }

    @Test
    void closedMemoryIsRefusedAndCudaTensorsNeedACudaContext() {
        try (Arena arena = Arena.ofConfined();
                Context ctx = Context.create()) {
            DeviceMemory memory = DeviceMemory.allocate(ctx, 64);
            Tensor t = memory.tensor(DType.F32, 16);
            memory.close();
            assertThrows(IllegalStateException.class, () -> Copy.apply(ctx, t, Tensor.allocate(arena, DType.F32, 16)));
            assertThrows(IllegalArgumentException.class, () -> DeviceMemory.allocate(ctx, 0));

            // a descriptor that claims CUDA device 0, handed to a CPU context
            Tensor host = Tensor.allocate(arena, DType.F32, 4);
            MemorySegment src = host.descriptor(arena, "src");
            moe4j_tensor.device(src, 0);
            MemorySegment dst = Tensor.allocate(arena, DType.F32, 4).descriptor(arena, "dst");
            int status = moe4j_h.moe4j_copy(ctx.handle(), src, dst);
            assertEquals(Status.UNSUPPORTED.code(), status);
            assertTrue(dev.moe4j.runtime.NativeLibrary.lastError().contains("only a CUDA context"));
        }
    }
}
