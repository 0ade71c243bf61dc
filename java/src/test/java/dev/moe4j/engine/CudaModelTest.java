package dev.moe4j.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.moe4j.runtime.Device;
import dev.moe4j.runtime.NativeLibrary;
import dev.moe4j.testing.Reference;
import dev.moe4j.testing.TestSupport;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Whole models on GPUs against the same models on the CPU, on the reference fixtures: the same greedy tokens (a
 * different token is allowed only where the reference run rates it within {@link ModelTest#TIE_GAP} logits of its own
 * choice, and is reported), logits close, scoring close; and routed experts spread over every GPU of the machine
 * against all of them on the model's GPU. Requests are batched, whole (a long prompt attended in two causal query
 * chunks) or with prompts cut into chunks, so that prefill and decode mix in one step. Skips, saying why, without a CUDA device (and the multi-GPU test with fewer than two).
 */
@Tag("gpu")
class CudaModelTest {
    private static final String NO_GPU = TestSupport.noGpuReason();
    /** Catches wrong results, not kernel rounding: GPU and CPU logits of the same model on the same tokens. */
    private static final double LOGITS_BOUND = 1e-2;

    @ParameterizedTest
    @ValueSource(strings = {"v2lite-tiny", "v3-tiny"})
    void aGpuGeneratesTheCpusGreedyTokens(String name) {
        assumeTrue(NO_GPU == null, NO_GPU);
        Path dir = ModelTest.FIXTURES.resolve(name);
        Model.Options options = Model.Options.defaults().withCacheTokens(2048);
        try (Model cpu = Model.load(dir, options, null);
                Model gpu = Model.load(dir, options.withDevice(Device.cuda(0)), null);
                Arena arena = Arena.ofConfined()) {
            assertEquals(Device.cuda(0), gpu.device());
            System.out.println(name + " on the GPU: " + gpu.memory());
            for (int stepTokens : new int[] {1024, 7})
                compare(name + " GPU vs CPU, step " + stepTokens, cpu, gpu, stepTokens);
            int[] prompt =
                    Generations.requests(dir, cpu.vocabSize(), false).getFirst().inputIds();
            double scoreDiff = Reference.calcDiff(
                    Reference.toDouble(
                            new Generator(cpu, null, 16).score(prompt, arena).toFloatArray()),
                    Reference.toDouble(
                            new Generator(gpu, null, 16).score(prompt, arena).toFloatArray()));
            System.out.printf("%s: scoring calc_diff GPU vs CPU %.3g%n", name, scoreDiff);
            assertTrue(scoreDiff < LOGITS_BOUND, name + ": scoring calc_diff " + scoreDiff);
        }
    }

    @Tag("multi-gpu") // bench/gpu.sh leaves it out on a one-GPU machine
    @ParameterizedTest
    @ValueSource(strings = {"v2lite-tiny", "v3-tiny"})
    void expertsOverAllGpusGenerateWhatOneGpuDoes(String name) {
        assumeTrue(NO_GPU == null, NO_GPU);
        int gpus = NativeLibrary.capabilities().cudaDeviceCount();
        assumeTrue(gpus >= 2, "expert parallelism over GPUs needs 2 or more GPUs, this machine has " + gpus);
        Path dir = ModelTest.FIXTURES.resolve(name);
        Model.Options options = Model.Options.defaults().withCacheTokens(2048).withDevice(Device.cuda(0));
        try (Model one = Model.load(dir, options, null);
                Model all = Model.load(dir, options.withExpertDevices(gpus), null)) {
            assertEquals(2, all.expertParallel().size(), "both MoE layers spread over the GPUs");
            compare(name + " " + gpus + " GPUs vs 1", one, all, 1024);
        }
    }

    /** Generates the fixture's requests with both models; candidate must follow reference up to reported ties. */
    private static void compare(String what, Model reference, Model candidate, int stepTokens) {
        List<Request> requests = Generations.requests(reference.dir(), reference.vocabSize(), false);
        Generations want = Generations.of(reference, requests, stepTokens);
        Generations got = Generations.of(candidate, requests, stepTokens);
        for (int r = 0; r < requests.size(); r++) {
            int[] w = want.ids().get(r), g = got.ids().get(r);
            int same = 0;
            while (same < Math.min(w.length, g.length) && w[same] == g[same]) same++;
            double[] a = flatten(want.logits().get(r), same),
                    b = flatten(got.logits().get(r), same);
            double diff = same == 0 ? 0 : Reference.calcDiff(a, b);
            System.out.printf(
                    "%s, request %d: %d/%d tokens equal, logits calc_diff %.3g%n", what, r, same, w.length, diff);
            assertTrue(diff < LOGITS_BOUND, what + ", request " + r + ": logits calc_diff " + diff);
            if (same < w.length && same < g.length) {
                float[] row = want.logits().get(r).get(same);
                float margin = row[w[same]] - row[g[same]];
                System.out.printf(
                        "%s, request %d: tie at step %d, the reference prefers its token by %.3f%n",
                        what, r, same, margin);
                assertTrue(
                        margin < ModelTest.TIE_GAP,
                        what + ", request " + r + ": token " + g[same] + " instead of " + w[same] + " at step " + same
                                + ", where the reference prefers its own by " + margin);
            }
        }
    }

    /** The first {@code steps} rows, one after another. */
    private static double[] flatten(List<float[]> rows, int steps) {
        int vocab = rows.isEmpty() ? 0 : rows.getFirst().length;
        double[] out = new double[steps * vocab];
        for (int s = 0; s < steps; s++) for (int v = 0; v < vocab; v++) out[s * vocab + v] = rows.get(s)[v];
        return out;
    }
}
