package dev.moe4j.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.moe4j.engine.Generator;
import dev.moe4j.engine.Model;
import dev.moe4j.engine.Request;
import dev.moe4j.engine.Result;
import dev.moe4j.engine.Sampler;
import dev.moe4j.internal.Json;
import dev.moe4j.model.Safetensors;
import dev.moe4j.testing.DeepSeekFiles;
import dev.moe4j.tokenizer.Tokenizer;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The generate, score, tokenize and make-model verbs, end to end. */
class GenerateCommandTest {
    static final String V3 = "../java/src/test/resources/fixtures/model/v3-tiny";

    /** Runs a verb and returns what it printed. */
    static String capture(Callable<Integer> verb) throws Exception {
        PrintStream old = System.out;
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        System.setOut(new PrintStream(bytes, true, StandardCharsets.UTF_8));
        try {
            assertEquals(0, verb.call());
        } finally {
            System.setOut(old);
        }
        return bytes.toString(StandardCharsets.UTF_8);
    }

    static int[] ints(Object list) {
        return ((List<?>) list).stream().mapToInt(x -> ((Number) x).intValue()).toArray();
    }

    @Test
    void lmHeadFormatsAreChosenByName() {
        for (String format : new String[] {"q8", "fp8", "bf16"}) {
            Options o = new Options(
                    "generate",
                    new String[] {"--model", V3, "--lm-head", format},
                    ModelLoading.VALUED,
                    ModelLoading.FLAGS);
            try (Model model = ModelLoading.load(o, 64)) {
                assertTrue(model.toString().contains("LM head " + format), model.toString());
            }
        }
        assertEquals(Model.LmHead.Q8, ModelLoading.lmHead(options()));
        assertEquals(Model.LmHead.FP8, ModelLoading.lmHead(options("--gpu")));
        var bad = assertThrows(IllegalArgumentException.class, () -> ModelLoading.lmHead(options("--lm-head", "int4")));
        assertTrue(bad.getMessage().contains("--lm-head") && bad.getMessage().contains("int4"), bad.getMessage());
    }

    @Test
    void denseWeightsAreChosenByName() {
        for (String format : new String[] {"q8", "stored"}) {
            try (Model model = ModelLoading.load(options("--model", V3, "--dense", format), 64)) {
                assertEquals(format.equals("q8"), model.toString().contains("int8 dense weights"), model.toString());
            }
        }
        assertTrue(ModelLoading.q8Dense(options()));
        var bad = assertThrows(IllegalArgumentException.class, () -> ModelLoading.q8Dense(options("--dense", "fp4")));
        assertTrue(bad.getMessage().contains("--dense") && bad.getMessage().contains("fp4"), bad.getMessage());
    }

    static Options options(String... args) {
        return new Options("generate", args, ModelLoading.VALUED, ModelLoading.FLAGS);
    }

    @Test
    void generateJsonLogitsAndScoreAgree(@TempDir Path tmp) throws Exception {
        Path logitsFile = tmp.resolve("gen.safetensors"), scoreFile = tmp.resolve("score.safetensors");
        String out = capture(() -> GenerateCommand.run(new String[] {
            "--model",
            V3,
            "--input-ids",
            "0,5,17,300,2",
            "--max-new-tokens",
            "6",
            "--json",
            "--logits-out",
            logitsFile.toString()
        }));
        Map<?, ?> json = (Map<?, ?>) Json.parse(out.strip());
        assertArrayEquals(new int[] {0, 5, 17, 300, 2}, ints(json.get("input_ids")));
        int[] output = ints(json.get("output_ids"));
        assertEquals(6, output.length);
        assertEquals("length", json.get("finish_reason"));

        int[] all = Arrays.copyOf(new int[] {0, 5, 17, 300, 2}, 5 + 5);
        System.arraycopy(output, 0, all, 5, 5);
        String ids =
                String.join(",", Arrays.stream(all).mapToObj(String::valueOf).toList());
        String scored = capture(() ->
                ScoreCommand.run(new String[] {"--model", V3, "--input-ids", ids, "--output", scoreFile.toString()}));
        assertTrue(scored.contains("perplexity"), scored);
        try (Safetensors gen = Safetensors.open(logitsFile);
                Safetensors score = Safetensors.open(scoreFile)) {
            float[] g = gen.tensor("logits").toFloatArray(),
                    s = score.tensor("logits").toFloatArray();
            assertArrayEquals(new long[] {6, 512}, gen.tensor("logits").shape());
            assertArrayEquals(new long[] {10, 512}, score.tensor("logits").shape());
            // generation step i chose from the logits scoring has at position 4 + i: exactly at step 0 (both from
            // the prompt read in one chunk), within rounding after it (decoded one token at a time, the absorbed
            // way, against scored MHA-style in the chunk; this checkpoint's sigmoid routing turns rounding into
            // flipped experts, so the bound is ModelTest's generation bound for it)
            assertArrayEquals(Arrays.copyOfRange(s, 4 * 512, 5 * 512), Arrays.copyOfRange(g, 0, 512));
            double xy = 0, xx = 0, yy = 0;
            for (int i = 512; i < g.length; i++) {
                double x = g[i], y = s[4 * 512 + i];
                xy += x * y;
                xx += x * x;
                yy += y * y;
            }
            double calcDiff = 1 - 2 * xy / (xx + yy);
            assertTrue(calcDiff < 1e-2, "decoded vs scored logits: calc_diff " + calcDiff);
        }
    }

    @Test
    void requestsFileRunsInOneBatchInInputOrder(@TempDir Path tmp) throws Exception {
        Path requests = tmp.resolve("r.jsonl");
        Files.writeString(requests, """
                {"input_ids": [0, 9, 8, 7], "max_new_tokens": 3}
                {"input_ids": [0, 1, 2], "max_new_tokens": 4, "temperature": 0.8, "seed": 5}

                {"input_ids": [0, 9, 8, 7], "max_new_tokens": 3, "stop_token_ids": [1]}
                """);
        String out = capture(
                () -> GenerateCommand.run(new String[] {"--model", V3, "--requests", requests.toString(), "--json"}));
        List<String> lines = out.strip().lines().toList();
        assertEquals(3, lines.size(), out);
        Map<?, ?> first = (Map<?, ?>) Json.parse(lines.get(0)), third = (Map<?, ?>) Json.parse(lines.get(2));
        assertEquals(3, ints(first.get("output_ids")).length);
        assertEquals(4, ints(((Map<?, ?>) Json.parse(lines.get(1))).get("output_ids")).length);
        assertArrayEquals(ints(first.get("input_ids")), ints(third.get("input_ids")));

        Files.writeString(requests, "{\"input_ids\": [1], \"temprature\": 1}\n");
        var bad = assertThrows(
                IllegalArgumentException.class,
                () -> GenerateCommand.run(new String[] {"--model", V3, "--requests", requests.toString()}));
        assertTrue(bad.getMessage().contains("line 1") && bad.getMessage().contains("temprature"), bad.getMessage());
        var two = assertThrows(
                IllegalArgumentException.class,
                () -> GenerateCommand.run(new String[] {"--model", V3, "--prompt", "x", "--input-ids", "1"}));
        assertTrue(two.getMessage().contains("exactly one"), two.getMessage());
    }

    @Test
    void tokenizerModelsGenerateTextAndTokenizeMatches(@TempDir Path tmp) throws Exception {
        Path tokenizerDir = DeepSeekFiles.dir();
        Path model = tmp.resolve("model");
        capture(() -> MakeModel.run(new String[] {
            "--preset",
            "v3",
            "--layers",
            "2",
            "--first-dense",
            "1",
            "--experts",
            "8",
            "--hidden",
            "128",
            "--heads",
            "1",
            "--inter",
            "256",
            "--moe-inter",
            "128",
            "--top-k",
            "2",
            "--out",
            model.toString(),
            "--tokenizer",
            tokenizerDir.toString()
        }));
        Tokenizer tokenizer = Tokenizer.load(tokenizerDir);
        var config = dev.moe4j.model.ModelConfig.read(model.resolve("config.json"));
        assertEquals(tokenizer.vocabSize(), config.vocabSize());
        assertEquals(tokenizer.bosId().getAsInt(), config.bosTokenId());
        assertTrue(Files.exists(model.resolve("tokenizer.json")));

        String out = capture(() -> GenerateCommand.run(new String[] {
            "--model",
            model.toString(),
            "--prompt",
            "Hello, 世界",
            "--max-new-tokens",
            "5",
            "--json",
            "--cache-tokens",
            "256"
        }));
        Map<?, ?> json = (Map<?, ?>) Json.parse(out.strip());
        int[] input = ints(json.get("input_ids"));
        assertEquals(tokenizer.bosId().getAsInt(), input[0], "BOS added per tokenizer_config.json");
        assertEquals(tokenizer.decode(ints(json.get("output_ids")), true), json.get("text"));

        // stop strings through the Java API: the text is cut before the first one, and streaming never shows it
        try (Model m = Model.load(model, Model.Options.defaults().withCacheTokens(512), null)) {
            Generator generator = new Generator(m, tokenizer, 64);
            Request free = Request.ofText("Hello, 世界").withMaxNewTokens(12);
            String text = generator.generate(free).text();
            assertTrue(text.length() > 6, text);
            String stop = text.substring(3, 6);
            StringBuilder streamed = new StringBuilder();
            Result cut = generator
                    .generate(List.of(free.withStopStrings(List.of(stop))), new Generator.Listener() {
                        @Override
                        public void onToken(int request, Sampler.Choice choice, String delta) {
                            streamed.append(delta);
                        }
                    })
                    .get(0);
            assertEquals(text.substring(0, text.indexOf(stop)), cut.text());
            assertEquals(Result.FinishReason.STOP, cut.finishReason());
            assertEquals(cut.text(), streamed.toString());
        }

        // a vocabulary padded far past the tokenizer's: the padding ids are never chosen, so the text always decodes
        Path padded = tmp.resolve("padded");
        capture(() -> MakeModel.run(new String[] {
            "--preset",
            "v3",
            "--layers",
            "1",
            "--first-dense",
            "1",
            "--hidden",
            "128",
            "--heads",
            "1",
            "--inter",
            "256",
            "--vocab",
            String.valueOf(tokenizer.vocabSize() + 200_000),
            "--out",
            padded.toString(),
            "--tokenizer",
            tokenizerDir.toString()
        }));
        String paddedOut = capture(() -> GenerateCommand.run(new String[] {
            "--model", padded.toString(), "--prompt", "Hi", "--max-new-tokens", "8", "--json", "--cache-tokens", "128"
        }));
        for (int id : ints(((Map<?, ?>) Json.parse(paddedOut.strip())).get("output_ids")))
            assertTrue(id < tokenizer.vocabSize(), "padding id " + id + " chosen");
        assertThrows(
                IllegalArgumentException.class,
                () -> MakeModel.run(new String[] {
                    "--preset",
                    "v3",
                    "--layers",
                    "1",
                    "--vocab",
                    "1000",
                    "--out",
                    padded.toString(),
                    "--tokenizer",
                    tokenizerDir.toString()
                }));

        String tokens = capture(() -> TokenizeCommand.run(
                new String[] {"--tokenizer", tokenizerDir.toString(), "--text", "Hello, 世界 <｜User｜>"}));
        Map<?, ?> t = (Map<?, ?>) Json.parse(tokens.strip());
        assertArrayEquals(tokenizer.encode("Hello, 世界 <｜User｜>", false), ints(t.get("ids")));
        assertEquals("Hello, 世界 <｜User｜>", t.get("decoded"));
    }

    @Test
    void badModelDirectoriesAreNamed(@TempDir Path tmp) throws IOException {
        var e = assertThrows(
                IllegalArgumentException.class,
                () -> GenerateCommand.run(new String[] {"--model", tmp.toString(), "--input-ids", "1"}));
        assertTrue(e.getMessage().contains("config.json") || e.getMessage().contains(tmp.toString()), e.getMessage());
    }

    /**
     * A dense MLP whose intermediate width is not a multiple of 128 (V2-Lite's 10944) stores its down_proj in BF16;
     * with --quantize it is widened with zero rows and columns to FP8 and runs fused. Same function up to the FP8
     * rounding of down_proj and of the intermediate activations (the fused call quantizes them per 128 columns):
     * measured calc_diff 3.7e-3 against the BF16 run; a misplaced row or column block gives garbage (order 1).
     */
    @Test
    void quantizedOddWidthDenseMlpStaysTheSameFunction(@TempDir Path tmp) throws Exception {
        Path dir = tmp.resolve("model");
        capture(() -> MakeModel.run(new String[] {
            "--preset",
            "v2-lite",
            "--layers",
            "2",
            "--first-dense",
            "1",
            "--experts",
            "8",
            "--hidden",
            "256",
            "--heads",
            "2",
            "--inter",
            "200",
            "--moe-inter",
            "128",
            "--top-k",
            "2",
            "--vocab",
            "300",
            "--out",
            dir.toString()
        }));
        int[] ids = {3, 17, 99, 250, 7, 42, 1, 5};
        float[][] logits = new float[2][];
        long[] copied = new long[2];
        for (int q = 0; q < 2; q++) {
            try (Model model = Model.load(
                            dir, Model.Options.defaults().withCacheTokens(256).withQuantize(q == 1), null);
                    java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofConfined()) {
                logits[q] = new Generator(model, null, 16).score(ids, arena).toFloatArray();
                copied[q] = model.memory().copiedWeights();
            }
        }
        double diff = dev.moe4j.testing.Reference.calcDiff(
                dev.moe4j.testing.Reference.toDouble(logits[1]), dev.moe4j.testing.Reference.toDouble(logits[0]));
        System.out.printf("odd-width dense MLP: quantized vs bf16 down_proj score calc_diff %.3g%n", diff);
        assertTrue(diff < 1e-2, "calc_diff " + diff);
        assertTrue(diff > 0, "the quantized run changed nothing: was the MLP padded and quantized at all?");
        assertTrue(copied[1] > copied[0], "the widened weights are copies");
    }
}
