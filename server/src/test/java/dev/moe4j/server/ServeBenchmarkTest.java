package dev.moe4j.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.engine.Engine;
import dev.moe4j.engine.Model;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** {@code bench serve} against a running server ({@code --url}): its passes, numbers and baselines. */
@Timeout(120)
class ServeBenchmarkTest {
    private static String run(String... args) throws Exception {
        PrintStream old = System.out;
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        System.setOut(new PrintStream(bytes, true, StandardCharsets.UTF_8));
        try {
            assertEquals(0, ServeBenchmark.run(args), "no errors");
        } finally {
            System.setOut(old);
        }
        return bytes.toString(StandardCharsets.UTF_8);
    }

    @Test
    void reportsThroughputLatenciesAndBaselines() throws Exception {
        try (Model model = Model.load(
                        TestServers.checkpoint(), Model.Options.defaults().withCacheTokens(1024), null);
                OpenAiServer server = new OpenAiServer(
                        new Engine(
                                model,
                                TestServers.tokenizer(),
                                Engine.Options.defaults().withMaxBatchTokens(32)),
                        OpenAiServer.Options.defaults("tiny").withPort(0))) {
            String url = "http://127.0.0.1:" + server.port() + "/v1";
            String vocab = String.valueOf(model.vocabSize());
            JsonNode report = TestServers.json(run(
                    "--url",
                    url,
                    "--vocab",
                    vocab,
                    "--clients",
                    "2",
                    "--requests",
                    "4",
                    "--prompt-tokens",
                    "8",
                    "--max-tokens",
                    "4",
                    "--long-prompt-tokens",
                    "100",
                    "--long-every",
                    "2",
                    "--baseline",
                    "--json"));
            assertEquals("tiny", report.get("model").asText());
            JsonNode passes = report.get("passes");
            assertEquals(
                    List.of("1 client", "2 clients, no long prompts", "2 clients"), passes.findValuesAsText("name"));
            for (JsonNode pass : passes) {
                assertEquals(0, pass.get("errors").asInt(), pass.toString());
                long tokens = pass.get("generated_tokens").asLong();
                assertTrue(tokens > 0 && tokens <= 4L * pass.get("requests").asInt(), pass.toString());
                assertTrue(pass.get("ttft_ms").get("p50").asDouble() > 0, pass.toString());
                assertTrue(pass.get("generated_tokens_per_second").asDouble() > 0, pass.toString());
            }
            assertTrue(passes.get(2).has("long_prompt_ttft_ms"), "long prompts were mixed in");
            assertTrue(report.get("speed_up_over_one_client").asDouble() > 0);
            assertTrue(report.has("tpot_over_decode_only"));

            String text = run("--url", url, "--vocab", vocab, "--clients", "1", "--requests", "2", "--max-tokens", "3");
            assertTrue(text.contains("TTFT ms p50/p90/p99") && text.contains("1 client"), text);
            assertEquals(0, server.engine().metrics().running());
        }
    }
}
