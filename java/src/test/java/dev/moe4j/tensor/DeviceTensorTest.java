package dev.moe4j.tensor;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.moe4j.bindings.moe4j_tensor;
import dev.moe4j.kernels.Cast;
import dev.moe4j.kernels.Copy;
import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.Device;
import dev.moe4j.runtime.Workspace;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/**
 * Tensors of a device's memory on a machine without a GPU: a host segment tagged with a CUDA device (its views must
 * stay on the device and refuse Java access) and a CPU context that emulates a device.
 */
class DeviceTensorTest {
    @Test
    void viewsAndSlicesOfADeviceTensorStayOnTheDevice() {
        try (Arena arena = Arena.ofConfined()) {
            Device gpu = Device.cuda(1);
            Tensor t = Tensor.onDevice(arena.allocate(4 * 6 * 8 * 4, 64), gpu, DType.F32, 4, 6, 8);
            Tensor[] views = {
                t.view(24, 8),
                t.view(4, 48).slice(1, 8, 16),
                t.slice(0, 1, 2),
                t.slice(2, 3, 4).slice(0, 0, 1),
                t.asStrided(0, new long[] {6, 4, 8}, new long[] {8, 48, 1}),
                t.asStrided(8, new long[] {5, 4, 8}, new long[] {8, 48, 1}),
                new QuantizedTensor(
                                Tensor.onDevice(arena.allocate(2 * 128 * 128), gpu, DType.E4M3, 2, 128, 128),
                                Tensor.onDevice(arena.allocate(8, 64), gpu, DType.F32, 2, 1, 1),
                                QuantizedTensor.BLOCK)
                        .group(1)
                        .data()
            };
            for (Tensor v : views) {
                assertEquals(gpu, v.device(), v.toString());
                assertFalse(v.isHostMemory(), v.toString());
                assertFalse(v.isAccessible(), v.toString());
                MemorySegment d = v.descriptor(arena, "v");
                assertEquals(1, moe4j_tensor.device(d), "the descriptor names the GPU: " + v);
                long[] zero = new long[v.rank()];
                assertRefused(() -> v.getFloat(zero));
                assertRefused(() -> v.setFloat(1f, zero));
                assertRefused(v::toFloatArray);
                assertRefused(() -> v.copyFrom(new float[Math.toIntExact(v.elementCount())]));
            }
            Tensor ints = Tensor.onDevice(arena.allocate(64, 64), gpu, DType.I32, 4, 4)
                    .view(16);
            assertRefused(() -> ints.getInt(0));
            assertRefused(() -> ints.setInt(1, 0));

            var outside = assertThrows(
                    IllegalArgumentException.class, () -> t.asStrided(180, new long[] {2, 8}, new long[] {8, 1}));
            assertTrue(outside.getMessage().contains("reaches past"), outside.getMessage());
            assertThrows(IllegalArgumentException.class, () -> t.asStrided(-1, new long[] {1}, new long[] {1}));
        }
    }

    private static void assertRefused(Executable access) {
        var e = assertThrows(UnsupportedOperationException.class, access);
        assertTrue(e.getMessage().contains("cuda:1"), e.getMessage());
    }

    /**
     * An emulated device's memory behaves like a GPU's to Java: no element access, copies in and out, and a kernel
     * refuses a host operand, naming it; a plain CPU context keeps taking host memory everywhere.
     */
    @Test
    void anEmulatedDeviceRefusesHostOperandsAndJavaAccess() {
        try (Arena arena = Arena.ofConfined();
                Context plain = Context.create();
                Context ctx = DeviceEmulation.emulate(Context.create())) {
            assertTrue(DeviceEmulation.isEmulated(ctx));
            assertFalse(DeviceEmulation.isEmulated(plain));
            Tensor host = Tensor.fromFloats(arena, DType.F32, new float[] {1.5f, -2, 3.25f, 4}, 2, 2);
            try (Workspace.Frame frame = ctx.workspace().frame()) {
                Tensor device = Copy.toDevice(frame, host);
                assertNotSame(host, device);
                assertFalse(device.isHostMemory());
                assertTrue(device.isInMemoryOf(ctx));
                assertFalse(host.isInMemoryOf(ctx));
                assertSame(device, Copy.toDevice(frame, device));
                assertThrows(UnsupportedOperationException.class, () -> device.getFloat(0, 0));
                assertThrows(
                        UnsupportedOperationException.class,
                        () -> device.view(4).getFloat(1));

                Tensor bf16 = Tensor.scratch(frame, DType.BF16, 2, 2);
                assertFalse(bf16.isHostMemory());
                Cast.apply(ctx, device, bf16);
                Tensor back = Copy.toHost(frame, bf16);
                assertTrue(back.isHostMemory());
                assertArrayEquals(new float[] {1.5f, -2, 3.25f, 4}, back.toFloatArray());
                assertSame(back, Copy.toHost(frame, back));

                var hostOperand = assertThrows(IllegalStateException.class, () -> Cast.apply(ctx, host, bf16));
                assertTrue(hostOperand.getMessage().contains("'src'"), hostOperand.getMessage());
                assertTrue(hostOperand.getMessage().contains("host memory"), hostOperand.getMessage());
            }
            try (Workspace.Frame frame = plain.workspace().frame()) {
                assertSame(host, Copy.toDevice(frame, host));
                Tensor out = Tensor.scratch(frame, DType.BF16, 2, 2);
                assertTrue(out.isHostMemory());
                Cast.apply(plain, host, out);
                assertSame(out, Copy.toHost(frame, out));
            }
            try (DeviceMemory m = DeviceMemory.allocate(ctx, 64)) {
                Tensor t = m.tensor(DType.F32, 16);
                assertFalse(t.isHostMemory());
                assertEquals(Device.CPU, t.device());
            }
        }
    }
}
