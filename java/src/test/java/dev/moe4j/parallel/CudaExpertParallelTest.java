package dev.moe4j.parallel;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.moe4j.kernels.Copy;
import dev.moe4j.model.DenseMlp;
import dev.moe4j.model.DeviceStore;
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

/**
 * Expert parallelism on CUDA devices: one GPU close to CPU devices, every available GPU the same bits as one (needs two
 * or more GPUs), and a GPU home that keeps dispatch, shared experts and combine on the GPUs.
 */
@Tag("gpu")
class CudaExpertParallelTest {
    private static final String NO_GPU = TestSupport.noGpuReason();

    @Test
    void oneGpuIsCloseToCpuDevices() {
        assumeTrue(NO_GPU == null, NO_GPU);
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        try (Arena arena = Arena.ofShared();
                Context ctx = Context.create()) {
            var l = ExpertParallelMoeTest.layer(ctx, arena, random);
            Tensor x = ExpertParallelMoeTest.inputs(arena, random, 1).getFirst();
            float[] gpu = run(ctx, arena, l, x, DeviceGroup.cuda(1, 1), 1);
            float[] cpu = run(ctx, arena, l, x, DeviceGroup.cpu(1, 1), 1);
            double diff = Reference.calcDiff(Reference.toDouble(gpu), Reference.toDouble(cpu));
            assertTrue(diff < 1e-4, "GPU vs CPU devices calc_diff " + diff + ", seed " + seed);
        }
    }

    /** The experts spread over every GPU of the machine give the bits of all of them on one GPU. */
    @Tag("multi-gpu") // bench/gpu.sh leaves it out on a one-GPU machine
    @Test
    void allGpusGiveTheSameBitsAsOneGpu() {
        assumeTrue(NO_GPU == null, NO_GPU);
        int gpus = NativeLibrary.capabilities().cudaDeviceCount();
        assumeTrue(gpus >= 2, "expert parallelism over GPUs needs 2 or more GPUs, this machine has " + gpus);
        long seed = TestSupport.freshSeed();
        SplittableRandom random = TestSupport.random(seed);
        try (Arena arena = Arena.ofShared();
                Context ctx = Context.create()) {
            var l = ExpertParallelMoeTest.layer(ctx, arena, random);
            Tensor x = ExpertParallelMoeTest.inputs(arena, random, 1).getFirst();
            float[] one = run(ctx, arena, l, x, DeviceGroup.cuda(1, 1), 1);
            float[] all = run(ctx, arena, l, x, DeviceGroup.cuda(gpus, 1), gpus);
            assertArrayEquals(one, all, "1 GPU vs " + gpus + " GPUs, seed " + seed);
        }
    }

    /** One step of the test layer (shared experts on the host, tokens at home on the CPU) over a group it closes. */
    private static float[] run(
            Context ctx, Arena arena, ExpertParallelMoeTest.Layer l, Tensor x, DeviceGroup devices, int count) {
        try (DeviceGroup group = devices;
                ExpertParallelMoe moe = moe(group, l, l.shared(), count)) {
            Tensor out = Tensor.allocate(arena, DType.F32, ExpertParallelMoeTest.T, ExpertParallelMoeTest.H);
            moe.forward(ctx, x, new Routing(ExpertParallelMoeTest.K, ExpertParallelMoeTest.T), out);
            return out.toFloatArray();
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

                try (ExpertParallelMoe hostShared = moe(group, l, l.shared(), gpus)) {
                    var sharedOnHost = assertThrows(
                            IllegalArgumentException.class, () -> hostShared.forwardRouted(home, dx, routing, dOut));
                    assertTrue(sharedOnHost.getMessage().contains("host memory"), sharedOnHost.getMessage());
                }

                // the shared experts on the home GPU: close to the same step with host home and host shared experts
                try (DeviceStore store = new DeviceStore(home);
                        ExpertParallelMoe gpuShared = moe(group, l, l.shared().to(store), gpus);
                        ExpertParallelMoe cpuShared = moe(group, l, l.shared(), gpus)) {
                    gpuShared.forwardRouted(home, dx, routing, dOut);
                    Copy.apply(home, dOut, back);
                    cpuShared.forwardRouted(cpu, x, routing, hostOut);
                    double diff = Reference.calcDiff(
                            Reference.toDouble(back.toFloatArray()), Reference.toDouble(hostOut.toFloatArray()));
                    assertTrue(
                            diff < 1e-3, "shared experts on the GPU vs the CPU: calc_diff " + diff + ", seed " + seed);
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
