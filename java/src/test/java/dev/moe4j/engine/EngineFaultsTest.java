package dev.moe4j.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.moe4j.runtime.Moe4jException;
import dev.moe4j.runtime.Status;
import dev.moe4j.runtime.TestFaults;
import dev.moe4j.runtime.Workspace;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Failures inside model steps fail the request that cannot be served, not the engine: a workspace that cannot grow
 * for one long prompt, and a passing native fault (an allocation failing in a worker task) that costs no request.
 */
@Timeout(180)
class EngineFaultsTest {
    private static int[] prompt(SplittableRandom random, int length, int vocab) {
        int[] ids = new int[length];
        for (int i = 0; i < length; i++) ids[i] = random.nextInt(vocab);
        return ids;
    }

    /** Short requests, greedy and sampled, with their tokens from a Generator run of them together. */
    private static List<Request> shortRequests(Model model, SplittableRandom random, int n) {
        List<Request> requests = new ArrayList<>();
        for (int i = 0; i < n; i++)
            requests.add(Request.ofIds(prompt(random, 2 + random.nextInt(8), model.vocabSize()))
                    .withSampling(
                            i % 2 == 0
                                    ? SamplingParams.greedy()
                                    : SamplingParams.defaults()
                                            .withTemperature(0.9)
                                            .withSeed(11 + i))
                    .withMaxNewTokens(6 + random.nextInt(6)));
        return requests;
    }

    @Test
    void aRequestTheWorkspaceCannotHoldFailsAloneAndTheOthersGetTheirTokens() throws Exception {
        try (Model model = Model.load(GeneratorTest.V3, Model.Options.defaults().withCacheTokens(4096), null)) {
            SplittableRandom random = new SplittableRandom(21);
            List<Request> shorts = shortRequests(model, random, 4);
            Request big = Request.ofIds(prompt(random, 400, model.vocabSize())).withMaxNewTokens(4);
            Generator generator = new Generator(model, null, 512);
            // together in one generation: the workspace grows to what the short requests need side by side
            List<Result> expected = generator.generate(shorts, null);
            Workspace workspace = model.context().workspace();
            long held = workspace.capacity();
            workspace.limit(held); // no growth from here: a 400-token step needs far more

            Engine.Options options = Engine.Options.defaults().withMaxBatchTokens(512);
            try (Engine engine = new Engine(model, null, options)) {
                Submission failing = engine.submit(big, false);
                List<Submission> others = new ArrayList<>();
                for (Request r : shorts) others.add(engine.submit(r, false));

                ExecutionException e = assertThrows(
                        ExecutionException.class, () -> failing.result().get(60, TimeUnit.SECONDS));
                Moe4jException cause = assertInstanceOf(Moe4jException.class, e.getCause());
                assertEquals(Status.OUT_OF_MEMORY, cause.status());
                assertEquals("workspace", cause.function());
                assertTrue(cause.nativeMessage().contains("limit is " + held), cause.nativeMessage());
                for (int i = 0; i < others.size(); i++)
                    assertArrayEquals(
                            expected.get(i).outputIds(),
                            others.get(i).result().get(60, TimeUnit.SECONDS).outputIds(),
                            "request " + i + " beside the failing one");

                // the engine goes on serving, and the failed request's blocks are back in the pool
                Result after = engine.submit(shorts.getFirst(), false).result().get(60, TimeUnit.SECONDS);
                assertArrayEquals(expected.getFirst().outputIds(), after.outputIds(), "a request after the failure");
                EngineMetrics m = engine.metrics();
                assertEquals(1, m.failed(), "one request failed");
                assertEquals(0, m.cacheBlocksUsed(), "every block is back");
            }
            assertTrue(workspace.capacity() <= held, "the workspace stayed within its limit");
            // with the limit lifted the model serves the big request too
            workspace.limit(Long.MAX_VALUE);
            assertEquals(4, generator.generate(big).outputIds().length);
        }
    }

    @Test
    void aPassingNativeFaultCostsNoRequest() throws Exception {
        try (Model model = Model.load(GeneratorTest.V3, Model.Options.defaults().withCacheTokens(4096), null)) {
            SplittableRandom random = new SplittableRandom(22);
            List<Request> requests = shortRequests(model, random, 5);
            List<Result> expected = new Generator(model, null, 512).generate(requests, null);

            // the first parallel run of the next step fails as an allocation in a worker would, once
            TestFaults.failTask(model.context(), 0);
            try (Engine engine =
                    new Engine(model, null, Engine.Options.defaults().withMaxBatchTokens(64))) {
                List<Submission> submissions = new ArrayList<>();
                for (Request r : requests) submissions.add(engine.submit(r, false));
                for (int i = 0; i < submissions.size(); i++)
                    assertArrayEquals(
                            expected.get(i).outputIds(),
                            submissions
                                    .get(i)
                                    .result()
                                    .get(60, TimeUnit.SECONDS)
                                    .outputIds(),
                            "request " + i);
                assertEquals(0, engine.metrics().failed(), "no request failed");
                assertEquals(0, engine.metrics().cacheBlocksUsed());
            }
        }
    }

    @Test
    void aGeneratorReportsTheModelsFailureItself() {
        try (Model model = Model.load(GeneratorTest.V3, Model.Options.defaults().withCacheTokens(1024), null)) {
            Generator generator = new Generator(model, null, 64);
            Request r = Request.ofIds(new int[] {3, 4, 5}).withMaxNewTokens(3);
            TestFaults.failTask(model.context(), 0);
            Moe4jException e = assertThrows(Moe4jException.class, () -> generator.generate(r));
            assertEquals(Status.OUT_OF_MEMORY, e.status());
            assertEquals(model.cacheTokens(), model.freeCacheTokens(), "the failed generation's blocks are free");
            assertEquals(3, generator.generate(r).outputIds().length, "the model works afterwards");
        }
    }
}
