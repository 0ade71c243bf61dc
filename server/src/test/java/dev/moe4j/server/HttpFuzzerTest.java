package dev.moe4j.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.moe4j.engine.Engine;
import dev.moe4j.engine.Model;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The HTTP fuzzer on the test checkpoint (a short run; CI runs thousands of iterations with {@code ./moe4j fuzz
 * http}), and the answers it found wrong, each as a regression test.
 */
@Timeout(600)
class HttpFuzzerTest {
    static Model model;
    static OpenAiServer server;
    static HttpFuzzer fuzzer;

    @BeforeAll
    static void start() {
        model = Model.load(TestServers.checkpoint(), Model.Options.defaults().withCacheTokens(4096), null);
        server = new OpenAiServer(
                new Engine(model, TestServers.tokenizer(), Engine.Options.defaults()),
                OpenAiServer.Options.defaults("tiny")
                        .withPort(0)
                        .withIdleTimeout(Duration.ofSeconds(30))
                        .withChatMaxTokens(HttpFuzzer.CHAT_MAX_TOKENS));
        fuzzer = new HttpFuzzer(server);
    }

    @AfterAll
    static void stop() {
        if (server != null) server.close();
        if (model != null) model.close();
    }

    @Test
    void fuzzedRequestsAreAnswered2xxOr4xxWithErrorObjectsAndTheServerStaysHealthy() throws Exception {
        List<String> findings = new ArrayList<>();
        int iterations = 100;
        for (int i = 0; i < iterations; i++) {
            try {
                fuzzer.iteration(i, new SplittableRandom(0x5EEDL * 0x9E3779B97F4A7C15L + i));
            } catch (HttpFuzzer.Finding e) {
                findings.add("iteration " + i + ": " + e.getMessage());
            }
        }
        fuzzer.checkHealthy(server);
        System.out.println("HttpFuzzerTest: " + iterations + " requests, outcomes " + fuzzer.outcomes());
        assertEquals(List.of(), findings);
        assertTrue(fuzzer.outcomes().contains("200"), "some fuzzed requests were valid: " + fuzzer.outcomes());
        assertTrue(fuzzer.outcomes().contains("400"), "some were refused: " + fuzzer.outcomes());
    }

    /**
     * An answer that carries another request's marker is a finding, whatever its status and shape: the fuzzer sees a
     * request's bytes leaking into another connection's answer (as Jetty 12.1's 414 answers once did), its own marker
     * echoed back is fine.
     */
    @Test
    void anAnswerCarryingAnotherRequestsMarkerIsAFinding() throws Exception {
        HttpFuzzer.Probe probe = new HttpFuzzer.Probe("GET", "/v1/models", null, null, "models", HttpFuzzer.marker(7));
        fuzzer.check(probe, fuzzer.exchange(probe));
        String leaked = "{\"error\": {\"message\": \"HTTP 414: GET /" + HttpFuzzer.marker(6)
                + "\", \"type\": \"invalid_request_error\", \"param\": null, \"code\": null}}";
        HttpFuzzer.Answer contaminated = new HttpFuzzer.Answer(
                414, Map.of("content-type", "application/json"), leaked.getBytes(StandardCharsets.UTF_8));
        var e = assertThrows(IllegalStateException.class, () -> fuzzer.check(probe, contaminated));
        assertTrue(e.getMessage().contains("fuzzmark6x, the marker of iteration 6's request"), e.getMessage());
        HttpFuzzer.Answer ownEchoed = new HttpFuzzer.Answer(
                414,
                Map.of("content-type", "application/json"),
                leaked.replace(HttpFuzzer.marker(6), HttpFuzzer.marker(7)).getBytes(StandardCharsets.UTF_8));
        fuzzer.check(probe, ownEchoed);
    }

    /** The answers Jetty gives itself, before the API sees the request, are OpenAI error objects, not HTML pages. */
    @Test
    void errorsJettyAnswersItselfAreJsonErrorObjects() throws Exception {
        for (String path : List.of("/v1/%2e%2e/metrics", "/%00", "/v1/completions?x=%zz", "/" + "a".repeat(20_000))) {
            HttpFuzzer.Answer a = fuzzer.exchange(new HttpFuzzer.Probe("GET", path, null, null, "a bad path"));
            assertTrue(a.status() >= 400 && a.status() < 500, path + ": " + a.status());
            assertTrue(a.headers().getOrDefault("content-type", "").startsWith("application/json"), path);
            assertTrue(TestServers.json(a.text()).get("error").get("message").isTextual(), a.text());
        }
        HttpFuzzer.Answer trace = fuzzer.exchange(new HttpFuzzer.Probe(
                "TRACE", "/health", "application/json", "{}".getBytes(StandardCharsets.UTF_8), "TRACE"));
        assertTrue(trace.status() >= 400 && trace.status() < 500, "TRACE: " + trace.status());
        assertTrue(TestServers.json(trace.text()).has("error"), trace.text());
    }
}
