package dev.moe4j.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.Tensor;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Generation on the tiny reference checkpoints: batch invariance, stopping, and errors that change nothing. */
class GeneratorTest {
    static final Path V3 = ModelTest.FIXTURES.resolve("v3-tiny");

    private static int[] prompt(SplittableRandom random, int length, int vocab) {
        int[] ids = new int[length];
        for (int i = 0; i < length; i++) ids[i] = random.nextInt(vocab);
        return ids;
    }

    @Test
    void tokensDoNotDependOnTheBatchOrOnPromptChunking() {
        try (Model model = Model.load(V3, Model.Options.defaults().withCacheTokens(2048), null)) {
            SplittableRandom random = new SplittableRandom(11);
            List<Request> requests = new ArrayList<>();
            int[] lengths = {5, 70, 17, 1, 33};
            for (int i = 0; i < lengths.length; i++) {
                SamplingParams sampling = i % 2 == 0
                        ? SamplingParams.greedy()
                        : SamplingParams.defaults()
                                .withTemperature(0.9)
                                .withTopP(0.9)
                                .withSeed(100 + i);
                requests.add(Request.ofIds(prompt(random, lengths[i], model.vocabSize()))
                        .withSampling(sampling)
                        .withMaxNewTokens(12));
            }
            // alone, one at a time, each prompt in one chunk
            List<int[]> alone = new ArrayList<>();
            Generator wide = new Generator(model, null, 512);
            for (Request r : requests) alone.add(wide.generate(r).outputIds());
            // all together, prompts cut into chunks of 7 tokens mixed with other requests' decode tokens
            for (int stepTokens : new int[] {512, 7, 1}) {
                List<Result> together = new Generator(model, null, stepTokens).generate(requests, null);
                for (int i = 0; i < requests.size(); i++)
                    assertArrayEquals(
                            alone.get(i),
                            together.get(i).outputIds(),
                            "request " + i + " in a batch of " + requests.size() + ", " + stepTokens
                                    + " tokens per step");
            }
            // reversed order
            List<Request> reversed = new ArrayList<>(requests.reversed());
            List<Result> back = new Generator(model, null, 13).generate(reversed, null);
            for (int i = 0; i < requests.size(); i++)
                assertArrayEquals(
                        alone.get(requests.size() - 1 - i), back.get(i).outputIds());
            assertEquals(model.cacheTokens(), model.freeCacheTokens(), "every sequence freed");
        }
    }

    @Test
    void stopsAtStopTokensAndLengthAndStreamsEveryToken() {
        try (Model model = Model.load(V3, Model.Options.defaults().withCacheTokens(1024), null)) {
            Generator generator = new Generator(model, null, 64);
            int[] prompt = prompt(new SplittableRandom(3), 9, model.vocabSize());
            Result free = generator.generate(Request.ofIds(prompt).withMaxNewTokens(10));
            assertEquals(Result.FinishReason.LENGTH, free.finishReason());
            assertEquals(10, free.completionTokens());
            assertEquals(9, free.promptTokens());
            int stop = free.outputIds()[4];
            int firstStop = 0;
            while (free.outputIds()[firstStop] != stop) firstStop++;
            List<Integer> streamed = new ArrayList<>();
            Result stopped = generator
                    .generate(
                            List.of(Request.ofIds(prompt).withMaxNewTokens(10).withStopTokenIds(List.of(stop))),
                            new Generator.Listener() {
                                @Override
                                public void onToken(int request, Sampler.Choice choice, String text) {
                                    streamed.add(choice.token());
                                }
                            })
                    .get(0);
            assertEquals(Result.FinishReason.STOP, stopped.finishReason());
            assertEquals(firstStop + 1, stopped.completionTokens(), "the stop token ends the output and is kept");
            assertEquals(stop, stopped.outputIds()[firstStop]);
            assertEquals(
                    streamed,
                    java.util.Arrays.stream(stopped.outputIds()).boxed().toList());
            assertTrue(stopped.text() == null, "no tokenizer, no text");
        }
    }

    @Test
    void badRequestsAreRejectedAndChangeNothing() {
        try (Model model = Model.load(V3, Model.Options.defaults().withCacheTokens(256), null)) {
            Generator generator = new Generator(model, null, 64);
            long free = model.freeCacheTokens();
            var outside = assertThrows(
                    IllegalArgumentException.class, () -> generator.generate(Request.ofIds(1, 2, model.vocabSize())));
            assertTrue(
                    outside.getMessage().contains("inputIds[2] = " + model.vocabSize() + " is outside the vocabulary"),
                    outside.getMessage());
            var text = assertThrows(IllegalArgumentException.class, () -> generator.generate(Request.ofText("hi")));
            assertTrue(text.getMessage().contains("no tokenizer"), text.getMessage());
            var cache = assertThrows(
                    IllegalStateException.class,
                    () -> generator.generate(Request.ofIds(new int[200]).withMaxNewTokens(100)));
            assertTrue(cache.getMessage().contains("cache blocks"), cache.getMessage());
            var context = assertThrows(
                    IllegalArgumentException.class,
                    () -> generator.generate(Request.ofIds(new int[model.maxPositions()])));
            assertTrue(context.getMessage().contains("context of " + model.maxPositions()), context.getMessage());
            assertThrows(IllegalArgumentException.class, () -> Request.ofIds(1).withMaxNewTokens(0));
            assertThrows(
                    IllegalArgumentException.class,
                    () -> SamplingParams.defaults().withTopP(0));
            assertThrows(
                    IllegalArgumentException.class,
                    () -> SamplingParams.defaults().withTemperature(-1));
            var step = assertThrows(
                    IllegalArgumentException.class,
                    () -> model.forward(new int[] {model.newSequence()}, new int[][] {{-1}}, false, (Arena) null));
            assertTrue(step.getMessage().contains("token id -1"), step.getMessage());
            try (Arena arena = Arena.ofConfined()) {
                Tensor twoRows = Tensor.allocate(arena, DType.F32, 2, model.vocabSize());
                var shape = assertThrows(
                        IllegalArgumentException.class,
                        () -> model.forward(new int[] {model.newSequence()}, new int[][] {{1}}, false, twoRows));
                assertTrue(shape.getMessage().contains("logits must be a contiguous F32 [1, "), shape.getMessage());
            }
            assertEquals(free, model.freeCacheTokens(), "nothing reserved by the failed calls");
            // the model still works
            assertEquals(
                    3,
                    generator
                            .generate(Request.ofIds(1, 2, 3).withMaxNewTokens(3))
                            .completionTokens());
        }
    }

    @Test
    void oneCallAtATime() {
        try (Model model = Model.load(V3, Model.Options.defaults().withCacheTokens(512), null)) {
            Generator generator = new Generator(model, null, 64);
            AtomicReference<Throwable> inner = new AtomicReference<>();
            generator.generate(List.of(Request.ofIds(1, 2, 3).withMaxNewTokens(2)), new Generator.Listener() {
                @Override
                public void onToken(int request, Sampler.Choice choice, String text) {
                    try {
                        generator.generate(Request.ofIds(4));
                    } catch (IllegalStateException e) {
                        inner.set(e);
                    }
                }
            });
            assertTrue(inner.get() != null && inner.get().getMessage().contains("called again"), String.valueOf(inner));
        }
    }

    @Test
    void configThatContradictsTheWeightsIsNamed(@TempDir Path dir) throws IOException {
        for (String file : List.of("model.safetensors")) Files.copy(V3.resolve(file), dir.resolve(file));
        String config = Files.readString(V3.resolve("config.json"));
        Files.writeString(
                dir.resolve("config.json"), config.replaceFirst("\"vocab_size\": *\\d+", "\"vocab_size\": 1000"));
        var e = assertThrows(IllegalArgumentException.class, () -> Model.load(dir, Model.Options.defaults(), null));
        assertTrue(
                e.getMessage().contains("model.embed_tokens.weight")
                        && e.getMessage().contains("1000"),
                e.getMessage());
        Files.writeString(
                dir.resolve("config.json"),
                config.replaceFirst("\"num_hidden_layers\": *\\d+", "\"num_hidden_layers\": 4"));
        var missing =
                assertThrows(IllegalArgumentException.class, () -> Model.load(dir, Model.Options.defaults(), null));
        assertTrue(missing.getMessage().contains("model.layers.3."), missing.getMessage());
    }
}
