package dev.moe4j.runtime;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.moe4j.tensor.DeviceMemory;
import dev.moe4j.testing.TestSupport;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** Injected faults on a CUDA context: device allocations fail once, task faults are refused (no host tasks). */
@Tag("gpu")
class CudaFaultsTest {
    private static final String NO_GPU = TestSupport.noGpuReason();

    @Test
    void aDeviceAllocationFailsOnceAndTheContextGoesOn() {
        assumeTrue(NO_GPU == null, NO_GPU);
        try (Context gpu = Context.create(Context.Options.cuda(0))) {
            TestFaults.failAllocation(gpu, 1);
            Moe4jException e = assertThrows(Moe4jException.class, () -> DeviceMemory.allocate(gpu, 1 << 20));
            assertEquals(Status.OUT_OF_MEMORY, e.status());
            assertEquals(
                    "moe4j_alloc: cannot allocate 1048576 bytes of device memory (injected fault)", e.nativeMessage());
            try (DeviceMemory memory = DeviceMemory.allocate(gpu, 1 << 20)) {
                assertEquals(1 << 20, memory.byteSize());
            }
            // the workspace's device region grows through moe4j_alloc: a frame request fails, the next one works
            TestFaults.failAllocation(gpu, 1);
            try (Workspace.Frame frame = gpu.workspace().frame()) {
                Moe4jException grow = assertThrows(Moe4jException.class, () -> frame.device(4096));
                assertEquals(Status.OUT_OF_MEMORY, grow.status());
                assertEquals(4096, frame.device(4096).byteSize());
            }
            Moe4jException task = assertThrows(Moe4jException.class, () -> TestFaults.failTask(gpu, 0));
            assertEquals(Status.UNSUPPORTED, task.status());
            assertTrue(task.nativeMessage().contains("task faults need a CPU context"), task.nativeMessage());
        }
    }
}
