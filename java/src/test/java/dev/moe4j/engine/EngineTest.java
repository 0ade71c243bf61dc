package dev.moe4j.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The continuous-batching engine on the tiny V3 checkpoint: same tokens as alone, admission, cancellation. */
@Timeout(120)
class EngineTest {
    static final Path V3 = GeneratorTest.V3;

    private static int[] prompt(SplittableRandom random, int length, int vocab) {
        int[] ids = new int[length];
        for (int i = 0; i < length; i++) ids[i] = random.nextInt(vocab);
        return ids;
    }

    private static List<Integer> drain(Submission s, List<Submission.Event> into) throws InterruptedException {
        List<Integer> ids = new ArrayList<>();
        while (true) {
            Submission.Event e = s.next(30, TimeUnit.SECONDS);
            assertNotNull(e, "no event within 30 s");
            into.add(e);
            if (e.terminal()) return ids;
            ids.add(((Submission.Event.Token) e).choice().token());
        }
    }

    @Test
    void concurrentRequestsGetTheTokensTheyGetAlone() throws Exception {
        try (Model model = Model.load(V3, Model.Options.defaults().withCacheTokens(4096), null)) {
            SplittableRandom random = new SplittableRandom(5);
            List<Request> requests = new ArrayList<>();
            for (int i = 0; i < 12; i++) {
                // two of three sampled: steps draw several rows at once, spread over threads
                SamplingParams sampling = i % 3 != 1
                        ? SamplingParams.defaults().withTemperature(0.8).withSeed(7 + i)
                        : SamplingParams.greedy();
                requests.add(Request.ofIds(prompt(random, 1 + random.nextInt(90), model.vocabSize()))
                        .withSampling(sampling)
                        .withMaxNewTokens(4 + random.nextInt(12)));
            }
            Generator alone = new Generator(model, null, 512);
            List<int[]> expected = new ArrayList<>();
            for (Request r : requests) expected.add(alone.generate(r).outputIds());

            // small steps (chunked prefill beside decodes), tiny stream buffers (backpressure), many threads
            Engine.Options options =
                    Engine.Options.defaults().withMaxBatchTokens(16).withStreamCapacity(2);
            try (Engine engine = new Engine(model, null, options);
                    ExecutorService clients = Executors.newFixedThreadPool(6)) {
                List<Future<int[]>> got = new ArrayList<>();
                for (int i = 0; i < requests.size(); i++) {
                    Request r = requests.get(i);
                    boolean stream = i % 2 == 0;
                    got.add(clients.submit(() -> {
                        Submission s = engine.submit(r, stream);
                        if (!stream) return s.result().get(60, TimeUnit.SECONDS).outputIds();
                        List<Submission.Event> events = new ArrayList<>();
                        List<Integer> ids = drain(s, events);
                        Thread.sleep(1); // a slow reader
                        Result result = ((Submission.Event.Finished) events.getLast()).result();
                        assertArrayEquals(
                                result.outputIds(),
                                ids.stream().mapToInt(Integer::intValue).toArray());
                        return result.outputIds();
                    }));
                }
                for (int i = 0; i < requests.size(); i++)
                    assertArrayEquals(expected.get(i), got.get(i).get(90, TimeUnit.SECONDS), "request " + i);
                EngineMetrics m = engine.metrics();
                assertEquals(requests.size(), m.finished());
                assertEquals(0, m.running());
                assertEquals(0, m.cacheBlocksUsed());
                int generated = expected.stream().mapToInt(a -> a.length).sum();
                assertEquals(generated, m.generatedTokens());
                assertEquals(requests.size(), m.timeToFirstToken().count());
                assertTrue(m.timeToFirstToken().p50() > 0);
                long routed = m.expertLoad().stream()
                        .mapToLong(l ->
                                java.util.Arrays.stream(l.tokensPerExpert()).sum())
                        .sum();
                assertTrue(routed > 0, "expert load counted");
            }
            assertEquals(model.cacheTokens(), model.freeCacheTokens(), "every sequence freed");
        }
    }

    @Test
    void rejectsWhatCanNeverFitAndWhatOverflowsTheQueue() throws Exception {
        try (Model model = Model.load(V3, Model.Options.defaults().withCacheTokens(256), null)) {
            int vocab = model.vocabSize();
            try (Engine engine =
                    new Engine(model, null, Engine.Options.defaults().withMaxQueue(1))) {
                Request huge = Request.ofIds(prompt(new SplittableRandom(1), 200, vocab))
                        .withMaxNewTokens(100);
                var tooLarge = assertThrows(Engine.RejectedException.class, () -> engine.submit(huge, false));
                assertEquals(Engine.RejectedException.Reason.TOO_LARGE, tooLarge.reason());
                assertTrue(tooLarge.getMessage().contains("cache"), tooLarge.getMessage());
                // a long request holds most of the cache; the next waits, the one after finds the queue full
                Request big = Request.ofIds(prompt(new SplittableRandom(2), 150, vocab))
                        .withMaxNewTokens(60);
                Submission first = engine.submit(big, true);
                while (engine.metrics().running() == 0) Thread.sleep(1);
                Submission second = engine.submit(big, false);
                assertEquals(1, engine.metrics().queued(), "the second waits for cache blocks");
                var full = assertThrows(Engine.RejectedException.class, () -> engine.submit(big, false));
                assertEquals(Engine.RejectedException.Reason.QUEUE_FULL, full.reason());
                assertEquals(1, engine.metrics().rejected() - 1, "two rejections counted");
                first.cancel();
                second.cancel();
                assertEquals(
                        Result.FinishReason.CANCELLED,
                        second.result().get(30, TimeUnit.SECONDS).finishReason());
                Result r = first.result().get(30, TimeUnit.SECONDS);
                assertTrue(r.finishReason() == Result.FinishReason.CANCELLED || r.completionTokens() == 60);
            }
            assertEquals(model.cacheTokens(), model.freeCacheTokens(), "cancelled requests gave their blocks back");
        }
    }

    @Test
    void aRequestWaitingForBlocksRunsWhenTheOnlyRunningOneEnds() throws Exception {
        try (Model model = Model.load(V3, Model.Options.defaults().withCacheTokens(256), null)) {
            int vocab = model.vocabSize();
            try (Engine engine = new Engine(model, null, Engine.Options.defaults())) {
                // all 4 blocks, then 1 block: the second waits until the first has finished or been cancelled
                Request big = Request.ofIds(prompt(new SplittableRandom(3), 100, vocab))
                        .withMaxNewTokens(100);
                Request small = Request.ofIds(prompt(new SplittableRandom(4), 10, vocab))
                        .withMaxNewTokens(5);
                for (boolean cancelFirst : new boolean[] {false, true}) {
                    Submission first = engine.submit(big, true);
                    while (engine.metrics().running() == 0) Thread.sleep(1);
                    Submission second = engine.submit(small, false);
                    assertEquals(1, engine.metrics().queued(), "the second waits for cache blocks");
                    if (cancelFirst) first.cancel();
                    else while (!first.next(30, TimeUnit.SECONDS).terminal()) {}
                    assertEquals(5, second.result().get(30, TimeUnit.SECONDS).completionTokens());
                }
            }
        }
    }

    @Test
    void aReaderThatStopsReadingHoldsOnlyItsOwnRequestAndCancellingFreesIt() throws Exception {
        try (Model model = Model.load(V3, Model.Options.defaults().withCacheTokens(2048), null)) {
            int vocab = model.vocabSize();
            try (Engine engine =
                    new Engine(model, null, Engine.Options.defaults().withStreamCapacity(2))) {
                Submission stalled = engine.submit(
                        Request.ofIds(prompt(new SplittableRandom(3), 20, vocab))
                                .withMaxNewTokens(50),
                        true);
                Request other = Request.ofIds(prompt(new SplittableRandom(4), 30, vocab))
                        .withMaxNewTokens(20);
                Result done = engine.submit(other, false).result().get(60, TimeUnit.SECONDS);
                assertEquals(20, done.completionTokens(), "the other request ran to its end");
                assertTrue(engine.metrics().running() >= 1, "the stalled one is still held");
                assertTrue(engine.metrics().cacheBlocksUsed() > 0);
                stalled.cancel();
                Result r = stalled.result().get(30, TimeUnit.SECONDS);
                assertEquals(Result.FinishReason.CANCELLED, r.finishReason());
                assertTrue(r.completionTokens() <= 3, "held back after its buffer filled: " + r.completionTokens());
                // the reader still gets the buffered tokens, then the end
                List<Submission.Event> events = new ArrayList<>();
                drain(stalled, events);
                assertInstanceOf(Submission.Event.Finished.class, events.getLast());
                EngineMetrics m = engine.metrics();
                assertEquals(1, m.cancelled());
                assertEquals(0, m.cacheBlocksUsed());
            }
            assertEquals(model.cacheTokens(), model.freeCacheTokens());
        }
    }

    @Test
    void shutdownFinishesWithinTheGraceThenCancelsAndRejectsNewWork() throws Exception {
        try (Model model = Model.load(V3, Model.Options.defaults().withCacheTokens(2048), null)) {
            int vocab = model.vocabSize();
            Engine engine = new Engine(model, null, Engine.Options.defaults());
            Submission quick = engine.submit(Request.ofIds(1, 2, 3).withMaxNewTokens(3), false);
            Submission endless = engine.submit(
                    Request.ofIds(prompt(new SplittableRandom(6), 8, vocab)).withMaxNewTokens(1000), false);
            quick.result().get(30, TimeUnit.SECONDS);
            engine.shutdown(Duration.ofMillis(200));
            assertEquals(
                    Result.FinishReason.CANCELLED, endless.result().getNow(null).finishReason());
            var late = assertThrows(Engine.RejectedException.class, () -> engine.submit(Request.ofIds(1), false));
            assertEquals(Engine.RejectedException.Reason.SHUT_DOWN, late.reason());
            assertThrows(IllegalArgumentException.class, () -> Request.ofIds(1).withMaxNewTokens(0));
            assertEquals(model.cacheTokens(), model.freeCacheTokens());
        }
    }
}
