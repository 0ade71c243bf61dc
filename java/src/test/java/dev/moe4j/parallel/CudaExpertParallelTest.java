package dev.moe4j.parallel;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.moe4j.placement.Eplb;
import dev.moe4j.routing.Routing;
import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.NativeLibrary;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.Tensor;
import dev.moe4j.testing.Reference;
import dev.moe4j.testing.TestSupport;
import java.lang.foreign.Arena;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** Expert parallelism on CUDA devices: the same bits on 1 and on every available GPU, and close to CPU devices. */
@Tag("gpu")
class CudaExpertParallelTest {
    private static final String NO_GPU = TestSupport.noGpuReason();

    @Test
    void gpusGiveTheSameOutputAsOneGpuAndCloseToTheCpu() {
        assumeTrue(NO_GPU == null, NO_GPU);
        int gpus = NativeLibrary.capabilities().cudaDeviceCount();
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        try (Arena arena = Arena.ofShared();
                Context ctx = Context.create()) {
            var l = ExpertParallelMoeTest.layer(ctx, arena, random);
            Tensor x = ExpertParallelMoeTest.inputs(arena, random, 1).getFirst();
            float[][] outs = new float[3][];
            int[] counts = {1, gpus};
            for (int run = 0; run < 3; run++) {
                int devices = run == 2 ? 1 : counts[run];
                try (DeviceGroup group = run == 2 ? DeviceGroup.cpu(1, 1) : DeviceGroup.cuda(devices, 1);
                        ExpertParallelMoe moe = new ExpertParallelMoe(
                                group,
                                l.gate(),
                                l.g(),
                                l.u(),
                                l.d(),
                                l.shared(),
                                Eplb.rebalance(new double[1][ExpertParallelMoeTest.E], 4 * devices * 4, 4, 1, devices),
                                0,
                                1)) {
                    Tensor out = Tensor.allocate(arena, DType.F32, ExpertParallelMoeTest.T, ExpertParallelMoeTest.H);
                    moe.forward(ctx, x, new Routing(ExpertParallelMoeTest.K, ExpertParallelMoeTest.T), out);
                    outs[run] = out.toFloatArray();
                }
            }
            assertArrayEquals(outs[0], outs[1], "1 GPU vs " + gpus + " GPUs, seed " + seed);
            double diff = Reference.calcDiff(
                    ExpertParallelMoeTest.toDouble(outs[0]), ExpertParallelMoeTest.toDouble(outs[2]));
            assertTrue(diff < 1e-4, "GPU vs CPU devices calc_diff " + diff + ", seed " + seed);
        }
    }
}
