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
import org.junit.jupiter.api.Test;

/** moe4j_alloc / moe4j_copy on a CPU context (host memory); the CUDA side is covered by the GPU tests. */
class DeviceMemoryTest {
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
