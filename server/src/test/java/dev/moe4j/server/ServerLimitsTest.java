package dev.moe4j.server;

import static dev.moe4j.server.TestServers.HTTP;
import static dev.moe4j.server.TestServers.error;
import static dev.moe4j.server.TestServers.json;
import static dev.moe4j.server.TestServers.post;
import static dev.moe4j.server.TestServers.uri;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.engine.Engine;
import dev.moe4j.engine.Model;
import java.net.ConnectException;
import java.net.Socket;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Admission and shutdown at the HTTP boundary: a full queue, requests outliving the server, an engine gone. */
@Timeout(120)
class ServerLimitsTest {
    static Model model;

    @BeforeAll
    static void load() {
        // 16 cache blocks of 64 tokens
        model = Model.load(TestServers.checkpoint(), Model.Options.defaults().withCacheTokens(1024), null);
    }

    @AfterAll
    static void close() {
        if (model != null) model.close();
    }

    private static OpenAiServer start(Engine.Options engine, Duration idleTimeout) {
        return new OpenAiServer(
                new Engine(model, TestServers.tokenizer(), engine),
                OpenAiServer.Options.defaults("tiny").withPort(0).withIdleTimeout(idleTimeout));
    }

    private static CompletableFuture<HttpResponse<String>> postAsync(OpenAiServer server, String body) {
        return HTTP.sendAsync(
                HttpRequest.newBuilder(uri(server, "/v1/completions"))
                        .POST(HttpRequest.BodyPublishers.ofString(body))
                        .build(),
                HttpResponse.BodyHandlers.ofString());
    }

    @Test
    void aFullQueueIs429AndAQueuedRequestOutlivesTheIdleTimeout() throws Exception {
        // an idle timeout of 1 s: waiting in the queue is not idleness
        try (OpenAiServer server = start(Engine.Options.defaults().withMaxQueue(1), Duration.ofSeconds(1))) {
            Engine engine = server.engine();
            // 15 of the 16 blocks; its events carry logprobs, so that the stream fills the socket's buffers within a
            // few
            // dozen tokens and holds the sequence (900 short events could all fit in a grown send buffer, and a fast
            // machine would then finish the request before the sleep below ends)
            String big = "{\"model\": \"tiny\", \"prompt\": [5, 6, 7], \"max_tokens\": 900, \"temperature\": 0,"
                    + " \"logprobs\": 5, \"stream\": true}";
            String small = "{\"model\": \"tiny\", \"prompt\": [8, 9], \"max_tokens\": 100, \"temperature\": 0}";
            CompletableFuture<HttpResponse<String>> waiting;
            try (Socket holder = TestServers.streamAndRead(server, big, 2)) {
                waiting = postAsync(server, small); // needs 2 blocks: waits
                TestServers.await(engine::metrics, m -> m.queued() == 1, "the second request waits");
                JsonNode full = error(post(server, "/v1/completions", small), 429);
                assertEquals("rate_limit_exceeded", full.get("type").asText());
                assertTrue(full.get("message").asText().contains("queue is full"), full.toString());
                Thread.sleep(1500);
                assertEquals(1, engine.metrics().queued(), "still waiting past the idle timeout");
            } // the holder hangs up: its blocks free, the waiting request runs
            HttpResponse<String> done = waiting.get(60, TimeUnit.SECONDS);
            assertEquals(200, done.statusCode(), done.body());
            assertEquals(2, json(done.body()).get("usage").get("prompt_tokens").asInt());
        }
    }

    @Test
    void requestsOutlivingTheGraceAreCancelledAStreamWithAnErrorEventAWholeAnswerWith503() throws Exception {
        OpenAiServer server = start(Engine.Options.defaults(), Duration.ofMinutes(1));
        Engine engine = server.engine();
        String body = "{\"model\": \"tiny\", \"prompt\": [5, 6, 7], \"max_tokens\": 500, \"temperature\": 0";
        CompletableFuture<HttpResponse<String>> stream = postAsync(server, body + ", \"stream\": true}");
        CompletableFuture<HttpResponse<String>> whole = postAsync(server, body + "}");
        TestServers.await(engine::metrics, m -> m.running() == 2 && m.generatedTokens() > 4, "both run");
        server.shutdown(Duration.ZERO);

        HttpResponse<String> streamed = stream.get(30, TimeUnit.SECONDS);
        assertEquals(200, streamed.statusCode());
        List<JsonNode> events = TestServers.events(streamed.body());
        JsonNode last = events.getLast().get("error");
        assertEquals(
                "service_unavailable",
                last.get("type").asText(),
                events.getLast().toString());
        assertTrue(events.size() > 1, "tokens came before the end");
        JsonNode cancelled = error(whole.get(30, TimeUnit.SECONDS), 503);
        assertEquals("service_unavailable", cancelled.get("type").asText());
        assertEquals(2, engine.metrics().cancelled());
        assertEquals(0, engine.metrics().cacheBlocksUsed());
        assertThrows(
                ConnectException.class,
                () -> HTTP.send(
                        HttpRequest.newBuilder(uri(server, "/health")).build(), HttpResponse.BodyHandlers.ofString()),
                "no new connections");
    }

    @Test
    void anEngineThatHasShutDownAnswers503() throws Exception {
        try (OpenAiServer server = start(Engine.Options.defaults(), Duration.ofMinutes(1))) {
            server.engine().shutdown(Duration.ZERO);
            JsonNode gone = error(post(server, "/v1/completions", "{\"model\": \"tiny\", \"prompt\": [1]}"), 503);
            assertEquals("service_unavailable", gone.get("type").asText());
            assertEquals(200, TestServers.get(server, "/v1/models").statusCode(), "the server itself still answers");
            assertEquals(503, TestServers.get(server, "/health").statusCode(), "but is not healthy");
        }
    }
}
