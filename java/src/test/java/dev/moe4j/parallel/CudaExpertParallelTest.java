package dev.moe4j.parallel;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.moe4j.kernels.Copy;
import dev.moe4j.model.DenseMlp;
import dev.moe4j.placement.Eplb;
import dev.moe4j.routing.Routing;
import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.NativeLibrary;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.DeviceMemory;
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
                        ExpertParallelMoe moe = moe(group, l, l.shared(), devices)) {
                    Tensor out = Tensor.allocate(arena, DType.F32, ExpertParallelMoeTest.T, ExpertParallelMoeTest.H);
                    moe.forward(ctx, x, new Routing(ExpertParallelMoeTest.K, ExpertParallelMoeTest.T), out);
                    outs[run] = out.toFloatArray();
                }
            }
            assertArrayEquals(outs[0], outs[1], "1 GPU vs " + gpus + " GPUs, seed " + seed);
            double diff = Reference.calcDiff(Reference.toDouble(outs[0]), Reference.toDouble(outs[2]));
            assertTrue(diff < 1e-4, "GPU vs CPU devices calc_diff " + diff + ", seed " + seed);
        }
    }

    /**
     * Tokens living on GPU 0 (the step's home): the dispatch gathers on GPU 0 and copies device to device, the
     * combine runs on GPU 0; the result has the bits of the same step with a host home (the combine's arithmetic is
     * the same on both backends, and the FFNs run on the same GPUs).
     */
    @Test
    void aGpuHomeKeepsDispatchAndCombineOnTheGpusWithTheSameBits() {
        assumeTrue(NO_GPU == null, NO_GPU);
        int gpus = NativeLibrary.capabilities().cudaDeviceCount();
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        try (Arena arena = Arena.ofShared();
                Context cpu = Context.create();
                DeviceGroup group = DeviceGroup.cuda(gpus, 1)) {
            var l = ExpertParallelMoeTest.layer(cpu, arena, random);
            Tensor x = ExpertParallelMoeTest.inputs(arena, random, 1).getFirst();
            int t = ExpertParallelMoeTest.T, h = ExpertParallelMoeTest.H;
            try (ExpertParallelMoe moe = moe(group, l, null, gpus);
                    Context home = Context.create(Context.Options.cuda(0));
                    DeviceMemory xMemory = DeviceMemory.allocate(
                            home, x.elementCount() * x.dtype().byteSize());
                    DeviceMemory outMemory = DeviceMemory.allocate(home, 4L * t * h)) {
                Routing routing = new Routing(ExpertParallelMoeTest.K, t);
                l.gate().route(cpu, x, routing);
                Tensor hostOut = Tensor.allocate(arena, DType.F32, t, h);
                moe.forwardRouted(cpu, x, routing, hostOut);

                Tensor dx = xMemory.tensor(x.dtype(), x.shape()), dOut = outMemory.tensor(DType.F32, t, h);
                Copy.apply(home, x, dx);
                moe.forwardRouted(home, dx, routing, dOut);
                Tensor back = Tensor.allocate(arena, DType.F32, t, h);
                Copy.apply(home, dOut, back);
                assertArrayEquals(hostOut.toFloatArray(), back.toFloatArray(), "GPU home vs host home, seed " + seed);

                try (ExpertParallelMoe withShared = moe(group, l, l.shared(), gpus)) {
                    var sharedOnGpu = assertThrows(
                            IllegalArgumentException.class, () -> withShared.forwardRouted(home, dx, routing, dOut));
                    assertTrue(sharedOnGpu.getMessage().contains("host memory"), sharedOnGpu.getMessage());
                }
            }
        }
    }

    /** The test layer over `devices` devices, EPLB's placement for uniform load, alignment 1. */
    static ExpertParallelMoe moe(DeviceGroup group, ExpertParallelMoeTest.Layer l, DenseMlp shared, int devices) {
        return new ExpertParallelMoe(
                group,
                l.gate(),
                l.g(),
                l.u(),
                l.d(),
                shared,
                Eplb.rebalance(new double[1][ExpertParallelMoeTest.E], 4 * devices * 4, 4, 1, devices),
                0,
                1);
    }
}
