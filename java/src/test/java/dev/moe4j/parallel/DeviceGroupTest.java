package dev.moe4j.parallel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.moe4j.runtime.NativeLibrary;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

class DeviceGroupTest {
    @Test
    void cpuDevicesNeverRunOnMoreThreadsThanTheMachineHas() throws Exception {
        int hardware = NativeLibrary.capabilities().cpuThreads();
        int devices = 2 * hardware + 1;
        AtomicInteger running = new AtomicInteger(), most = new AtomicInteger();
        try (DeviceGroup group = DeviceGroup.cpu(devices, 1)) {
            assertTrue(group.isCpu());
            int threadsEach = group.context(0).threads();
            List<CompletableFuture<Integer>> work = new ArrayList<>();
            for (int round = 0; round < 3; round++)
                for (int d = 0; d < devices; d++)
                    work.add(group.submit(d, () -> {
                        int now = running.addAndGet(threadsEach);
                        most.accumulateAndGet(now, Math::max);
                        Thread.sleep(5);
                        running.addAndGet(-threadsEach);
                        return now;
                    }));
            for (CompletableFuture<Integer> w : work) w.get();
        }
        assertTrue(most.get() <= hardware, "at most " + hardware + " threads busy at once, saw " + most.get());
        assertEquals(0, running.get());
    }
}
