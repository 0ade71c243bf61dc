package dev.moe4j.server;

import static dev.moe4j.server.TestServers.JSON;
import static dev.moe4j.server.TestServers.error;
import static dev.moe4j.server.TestServers.events;
import static dev.moe4j.server.TestServers.get;
import static dev.moe4j.server.TestServers.json;
import static dev.moe4j.server.TestServers.post;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.engine.Engine;
import dev.moe4j.engine.EngineMetrics;
import dev.moe4j.engine.Generator;
import dev.moe4j.engine.Model;
import dev.moe4j.engine.Request;
import dev.moe4j.engine.Result;
import dev.moe4j.engine.Sampler;
import dev.moe4j.engine.SamplingParams;
import dev.moe4j.tokenizer.ChatTemplate;
import dev.moe4j.tokenizer.Tokenizer;
import java.net.Socket;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The HTTP API over a tiny checkpoint with DeepSeek-V3's tokenizer: answers equal to {@link Generator}'s (what {@code
 * ./moe4j generate} runs), streamed or not, concurrent; chat through the chat template; errors; hang-ups; metrics.
 */
@Timeout(120)
class OpenAiServerTest {
    static final String NAME = "tiny";

    /** One API request with the engine request it stands for and what the generator answers alone. */
    record Case(String path, ObjectNode body, Request request, Result expected) {}

    static Model model;
    static Tokenizer tokenizer;
    static Engine engine;
    static OpenAiServer server;
    static final List<Case> cases = new ArrayList<>();

    @BeforeAll
    static void start() {
        model = Model.load(TestServers.checkpoint(), Model.Options.defaults().withCacheTokens(1024), null);
        tokenizer = TestServers.tokenizer();
        Generator generator = new Generator(model, tokenizer, 512);
        SplittableRandom random = new SplittableRandom(3);

        completion(generator, body("Hello, 世界").put("max_tokens", 12), SamplingParams.greedy());
        ObjectNode ids = body(randomIds(random, 40)).put("max_tokens", 16).put("logprobs", 3);
        completion(generator, ids, SamplingParams.greedy().withLogprobs(3));
        completion(
                generator,
                body("The quick brown fox")
                        .put("max_tokens", 10)
                        .put("temperature", 0.8)
                        .put("top_p", 0.9)
                        .put("seed", 7),
                SamplingParams.defaults().withTemperature(0.8).withTopP(0.9).withSeed(7));
        completion(
                generator,
                body(randomIds(random, 5))
                        .put("max_tokens", 8)
                        .put("temperature", 1.0)
                        .put("top_k", 20)
                        .put("seed", 3),
                SamplingParams.defaults().withTopK(20).withSeed(3));
        completion(
                generator,
                body(JSON.createArrayNode().add(randomIds(random, 70)))
                        .put("max_tokens", 14)
                        .put("temperature", 0.7)
                        .put("seed", 11),
                SamplingParams.defaults().withTemperature(0.7).withSeed(11));
        // a stop string taken from the free answer: the text is cut before it
        String free = generator
                .generate(Request.ofText("Once upon a time").withMaxNewTokens(20))
                .text();
        ObjectNode stopped = body(JSON.createArrayNode().add("Once upon a time"))
                .put("max_tokens", 20)
                .put("stop", free.substring(4, 7));
        completion(generator, stopped, SamplingParams.greedy());
        assertEquals(Result.FinishReason.STOP, cases.getLast().expected().finishReason(), "the stop string stops it");

        chat(
                generator,
                List.of(new ChatTemplate.Message("user", "Hi there")),
                body(null).put("max_tokens", 8),
                0,
                0);
        chat(
                generator,
                List.of(
                        new ChatTemplate.Message("system", "You are terse."),
                        new ChatTemplate.Message("user", "A color?")),
                body(null)
                        .put("max_completion_tokens", 10)
                        .put("temperature", 0.9)
                        .put("seed", 5)
                        .put("logprobs", true)
                        .put("top_logprobs", 2),
                0.9,
                2);
        chat(
                generator,
                List.of(
                        new ChatTemplate.Message("user", "One"),
                        new ChatTemplate.Message("assistant", "Two"),
                        new ChatTemplate.Message("user", "Three")),
                body(null).put("max_tokens", 6),
                0,
                0);

        // small steps (chunked prefill beside decodes) and small stream buffers (backpressure)
        engine = new Engine(
                model,
                tokenizer,
                Engine.Options.defaults().withMaxBatchTokens(16).withStreamCapacity(2));
        server = new OpenAiServer(engine, OpenAiServer.Options.defaults(NAME).withPort(0));
    }

    @AfterAll
    static void stop() {
        if (server != null) server.close();
        if (model != null) model.close();
    }

    private static ObjectNode body(Object prompt) {
        ObjectNode body = JSON.createObjectNode().put("model", NAME).put("temperature", 0);
        if (prompt != null) body.set("prompt", JSON.valueToTree(prompt));
        return body;
    }

    private static ArrayNode randomIds(SplittableRandom random, int n) {
        ArrayNode ids = JSON.createArrayNode();
        for (int i = 0; i < n; i++) ids.add(random.nextInt(tokenizer.vocabSize()));
        return ids;
    }

    private static void completion(Generator generator, ObjectNode body, SamplingParams sampling) {
        JsonNode p = body.get("prompt");
        if (p.isArray() && p.size() == 1 && !p.get(0).isNumber()) p = p.get(0);
        int[] ids;
        if (p.isTextual()) ids = tokenizer.encode(p.asText(), true);
        else {
            ids = new int[p.size()];
            for (int i = 0; i < ids.length; i++) ids[i] = p.get(i).intValue();
        }
        List<String> stops = body.has("stop") ? List.of(body.get("stop").asText()) : List.of();
        Request request =
                new Request(ids, null, sampling, body.get("max_tokens").intValue(), List.of(), stops);
        cases.add(new Case("/v1/completions", body, request, generator.generate(request)));
    }

    private static void chat(
            Generator generator,
            List<ChatTemplate.Message> messages,
            ObjectNode body,
            double temperature,
            int logprobs) {
        ArrayNode list = body.putArray("messages");
        for (ChatTemplate.Message m : messages)
            list.addObject().put("role", m.role()).put("content", m.content());
        body.put("temperature", temperature);
        int[] ids = tokenizer.encode(ChatTemplate.from(tokenizer).render(messages, true), false);
        int maxTokens =
                (body.has("max_tokens") ? body.get("max_tokens") : body.get("max_completion_tokens")).intValue();
        SamplingParams sampling = SamplingParams.defaults()
                .withTemperature(temperature)
                .withSeed(body.path("seed").asLong(0))
                .withLogprobs(logprobs);
        Request request = new Request(ids, null, sampling, maxTokens, List.of(), List.of());
        cases.add(new Case("/v1/chat/completions", body, request, generator.generate(request)));
    }

    @Test
    void concurrentAnswersStreamedOrNotEqualTheGenerators() throws Exception {
        try (ExecutorService clients = Executors.newVirtualThreadPerTaskExecutor()) {
            List<Future<?>> done = new ArrayList<>();
            for (Case c : cases)
                for (boolean stream : new boolean[] {false, true})
                    done.add(clients.submit(() -> {
                        check(c, stream);
                        return null;
                    }));
            for (Future<?> f : done) f.get(90, TimeUnit.SECONDS);
        }
        EngineMetrics m = engine.metrics();
        assertEquals(0, m.running());
        assertEquals(0, m.cacheBlocksUsed());
    }

    private static void check(Case c, boolean stream) {
        boolean chat = c.path().contains("chat");
        ObjectNode body = c.body().deepCopy();
        if (stream) body.put("stream", true).putObject("stream_options").put("include_usage", true);
        HttpResponse<String> response = post(server, c.path(), body.toString());
        String what = c.path() + " " + body;
        assertEquals(200, response.statusCode(), what + " -> " + response.body());
        Result expected = c.expected();
        List<Sampler.Choice> choices = expected.choices();
        if (!stream) {
            JsonNode answer = json(response.body());
            checkHead(answer, chat ? "chat.completion" : "text_completion", chat);
            JsonNode choice = answer.get("choices").get(0);
            String text = chat
                    ? choice.get("message").get("content").asText()
                    : choice.get("text").asText();
            assertEquals(expected.text(), text, what);
            if (chat)
                assertEquals("assistant", choice.get("message").get("role").asText());
            assertEquals(
                    expected.finishReason().apiName(),
                    choice.get("finish_reason").asText(),
                    what);
            checkUsage(answer.get("usage"), expected);
            JsonNode logprobs = choice.get("logprobs");
            if (c.request().sampling().logprobs() == 0 && !c.body().has("logprobs")) assertTrue(logprobs.isNull());
            else checkLogprobs(logprobs, choices, chat, 0);
            return;
        }
        List<JsonNode> events = events(response.body());
        StringBuilder text = new StringBuilder();
        int tokens = 0;
        for (int i = 0; i < events.size(); i++) {
            JsonNode e = events.get(i);
            checkHead(e, chat ? "chat.completion.chunk" : "text_completion", chat);
            assertEquals(events.getFirst().get("id"), e.get("id"), "one id per stream");
            if (i == events.size() - 1) {
                assertEquals(0, e.get("choices").size(), "the usage chunk has no choices");
                checkUsage(e.get("usage"), expected);
                continue;
            }
            assertTrue(e.get("usage").isNull());
            JsonNode choice = e.get("choices").get(0);
            if (chat && i == 0) {
                assertEquals("assistant", choice.get("delta").get("role").asText(), "the first chat chunk: the role");
                continue;
            }
            if (i == events.size() - 2) {
                assertEquals(
                        expected.finishReason().apiName(),
                        choice.get("finish_reason").asText(),
                        what);
                continue;
            }
            assertTrue(choice.get("finish_reason").isNull());
            text.append(
                    chat
                            ? choice.get("delta").get("content").asText()
                            : choice.get("text").asText());
            if (!choice.get("logprobs").isNull())
                checkLogprobs(choice.get("logprobs"), choices.subList(tokens, tokens + 1), chat, tokens);
            tokens++;
        }
        assertEquals(expected.text(), text.toString(), what);
        assertEquals(expected.completionTokens(), tokens, "one chunk per token: " + what);
    }

    private static void checkHead(JsonNode answer, String object, boolean chat) {
        assertEquals(object, answer.get("object").asText());
        assertTrue(answer.get("id").asText().startsWith(chat ? "chatcmpl-" : "cmpl-"), answer.toString());
        assertTrue(answer.get("created").asLong() > 1_600_000_000L);
        assertEquals(NAME, answer.get("model").asText());
    }

    private static void checkUsage(JsonNode usage, Result expected) {
        assertEquals(expected.promptTokens(), usage.get("prompt_tokens").asInt());
        assertEquals(expected.completionTokens(), usage.get("completion_tokens").asInt());
        assertEquals(
                expected.promptTokens() + expected.completionTokens(),
                usage.get("total_tokens").asInt());
    }

    private static void checkLogprobs(JsonNode logprobs, List<Sampler.Choice> choices, boolean chat, int offset) {
        JsonNode entries = chat ? logprobs.get("content") : logprobs.get("token_logprobs");
        assertEquals(choices.size(), entries.size(), logprobs.toString());
        for (int i = 0; i < choices.size(); i++) {
            Sampler.Choice c = choices.get(i);
            String token = tokenizer.decode(new int[] {c.token()});
            if (chat) {
                JsonNode e = entries.get(i);
                assertEquals(token, e.get("token").asText());
                assertEquals(c.logprob(), (float) e.get("logprob").asDouble());
                assertEquals(c.topTokens().length, e.get("top_logprobs").size());
                for (int k = 0; k < c.topTokens().length; k++)
                    assertEquals(c.topLogprobs()[k], (float)
                            e.get("top_logprobs").get(k).get("logprob").asDouble());
            } else {
                assertEquals(token, logprobs.get("tokens").get(i).asText());
                assertEquals(c.logprob(), (float) entries.get(i).asDouble());
                JsonNode top = logprobs.get("top_logprobs").get(i);
                for (int k = 0; k < c.topTokens().length; k++)
                    assertEquals(c.topLogprobs()[k], (float) top.get(tokenizer.decode(new int[] {c.topTokens()[k]}))
                            .asDouble());
            }
        }
        if (!chat && offset == 0)
            assertEquals(0, logprobs.get("text_offset").get(0).asInt());
    }

    /** A request, the field its 400 names (null: the body as a whole). */
    record Bad(String path, String body, String param) {}

    @Test
    void malformedRequestsAre400NamingTheFieldAndTheServerKeepsServing() {
        String c = "/v1/completions", chat = "/v1/chat/completions";
        String ok = "\"model\": \"tiny\", \"prompt\": \"Hi\"";
        String msgs = "\"model\": \"tiny\", \"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]";
        String tooLong = JSON.valueToTree(new int[TestServers.CONTEXT]).toString();
        List<Bad> bad = List.of(
                new Bad(c, "{bad", null),
                new Bad(c, "[1, 2]", null),
                new Bad(c, "{\"model\": \"tiny\", \"model\": \"tiny\", \"prompt\": \"Hi\"}", null),
                new Bad(c, "{\"prompt\": \"Hi\"}", "model"),
                new Bad(c, "{\"model\": 5, \"prompt\": \"Hi\"}", "model"),
                new Bad(c, "{\"model\": \"gpt-4\", \"prompt\": \"Hi\"}", "model"),
                new Bad(c, "{\"model\": \"tiny\"}", "prompt"),
                new Bad(c, "{\"model\": \"tiny\", \"prompt\": \"\"}", "prompt"),
                new Bad(c, "{\"model\": \"tiny\", \"prompt\": []}", "prompt"),
                new Bad(c, "{\"model\": \"tiny\", \"prompt\": [1, \"a\"]}", "prompt"),
                new Bad(c, "{\"model\": \"tiny\", \"prompt\": [-1]}", "prompt"),
                new Bad(c, "{\"model\": \"tiny\", \"prompt\": [999999999]}", "prompt"),
                new Bad(c, "{\"model\": \"tiny\", \"prompt\": [1.5]}", "prompt"),
                new Bad(c, "{\"model\": \"tiny\", \"prompt\": [\"a\", \"b\"]}", "prompt"),
                new Bad(c, "{\"model\": \"tiny\", \"prompt\": {\"text\": \"a\"}}", "prompt"),
                new Bad(c, "{\"model\": \"tiny\", \"prompt\": " + tooLong + "}", "prompt"),
                new Bad(c, "{" + ok + ", \"max_tokens\": 0}", "max_tokens"),
                new Bad(c, "{" + ok + ", \"max_tokens\": \"8\"}", "max_tokens"),
                new Bad(c, "{" + ok + ", \"max_tokens\": 1.5}", "max_tokens"),
                new Bad(c, "{" + ok + ", \"max_tokens\": 1500}", "max_tokens"), // more than the KV cache holds
                new Bad(c, "{" + ok + ", \"temperature\": -0.1}", "temperature"),
                new Bad(c, "{" + ok + ", \"temperature\": 3}", "temperature"),
                new Bad(c, "{" + ok + ", \"temperature\": \"hot\"}", "temperature"),
                new Bad(c, "{" + ok + ", \"top_p\": 0}", "top_p"),
                new Bad(c, "{" + ok + ", \"top_p\": 1.5}", "top_p"),
                new Bad(c, "{" + ok + ", \"top_k\": -2}", "top_k"),
                new Bad(c, "{" + ok + ", \"seed\": 1.5}", "seed"),
                new Bad(c, "{" + ok + ", \"seed\": \"x\"}", "seed"),
                new Bad(c, "{" + ok + ", \"stop\": 5}", "stop"),
                new Bad(c, "{" + ok + ", \"stop\": [\"\"]}", "stop"),
                new Bad(c, "{" + ok + ", \"stop\": [\"a\", 1]}", "stop"),
                new Bad(c, "{" + ok + ", \"stop_token_ids\": [-1]}", "stop_token_ids"),
                new Bad(c, "{" + ok + ", \"logprobs\": 21}", "logprobs"),
                new Bad(c, "{" + ok + ", \"logprobs\": true}", "logprobs"),
                new Bad(c, "{" + ok + ", \"n\": 2}", "n"),
                new Bad(c, "{" + ok + ", \"best_of\": 2}", "best_of"),
                new Bad(c, "{" + ok + ", \"echo\": true}", "echo"),
                new Bad(c, "{" + ok + ", \"logit_bias\": {\"1\": 5}}", "logit_bias"),
                new Bad(c, "{" + ok + ", \"stream\": \"yes\"}", "stream"),
                new Bad(c, "{" + ok + ", \"stream_options\": {\"include_usage\": true}}", "stream_options"),
                new Bad(
                        c,
                        "{" + ok + ", \"stream\": true, \"stream_options\": {\"include_usage\": 1}}",
                        "stream_options.include_usage"),
                new Bad(chat, "{\"model\": \"tiny\"}", "messages"),
                new Bad(chat, "{\"model\": \"tiny\", \"messages\": []}", "messages"),
                new Bad(chat, "{\"model\": \"tiny\", \"messages\": \"Hi\"}", "messages"),
                new Bad(chat, "{\"model\": \"tiny\", \"messages\": [\"Hi\"]}", "messages[0]"),
                new Bad(chat, "{\"model\": \"tiny\", \"messages\": [{\"content\": \"Hi\"}]}", "messages[0].role"),
                new Bad(
                        chat,
                        "{\"model\": \"tiny\", \"messages\": [{\"role\": 1, \"content\": \"Hi\"}]}",
                        "messages[0].role"),
                new Bad(
                        chat,
                        "{\"model\": \"tiny\", \"messages\": [{\"role\": \"user\", \"content\": 5}]}",
                        "messages[0].content"),
                new Bad(
                        chat,
                        "{\"model\": \"tiny\", \"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\"}]}]}",
                        "messages[0].content[0]"),
                new Bad(chat, "{" + msgs + ", \"max_completion_tokens\": 0}", "max_completion_tokens"),
                new Bad(chat, "{" + msgs + ", \"top_logprobs\": 3}", "top_logprobs"),
                new Bad(chat, "{" + msgs + ", \"logprobs\": true, \"top_logprobs\": 21}", "top_logprobs"),
                new Bad(chat, "{" + msgs + ", \"tools\": [{\"type\": \"function\"}]}", "tools"),
                new Bad(chat, "{" + msgs + ", \"response_format\": {\"type\": \"json_object\"}}", "response_format"));
        for (Bad b : bad) {
            JsonNode error = error(post(server, b.path(), b.body()), 400);
            assertEquals("invalid_request_error", error.get("type").asText(), b.body());
            assertEquals(
                    b.param(),
                    error.get("param").isNull() ? null : error.get("param").asText(),
                    b.body());
            if (b.param() != null)
                assertTrue(error.get("message").asText().contains(b.param().replaceAll("\\[.*", "")), error.toString());
        }
        HttpResponse<String> fine = post(server, c, "{" + ok + ", \"max_tokens\": 2}");
        assertEquals(200, fine.statusCode(), fine.body());
        assertEquals(2, json(fine.body()).get("usage").get("completion_tokens").asInt());
    }

    @Test
    void unknownPathsAre404WrongMethods405() {
        JsonNode notFound = error(get(server, "/v1/engines"), 404);
        assertTrue(notFound.get("message").asText().contains("/v1/engines"));
        HttpResponse<String> wrong = get(server, "/v1/completions");
        error(wrong, 405);
        assertEquals("POST", wrong.headers().firstValue("Allow").orElse(null));
        error(post(server, "/metrics", "{}"), 405);
    }

    @Test
    void modelsAndHealth() {
        HttpResponse<String> models = get(server, "/v1/models");
        assertEquals(200, models.statusCode());
        JsonNode list = json(models.body());
        assertEquals("list", list.get("object").asText());
        assertEquals(NAME, list.get("data").get(0).get("id").asText());
        assertEquals("model", list.get("data").get(0).get("object").asText());
        assertEquals(
                TestServers.CONTEXT,
                list.get("data").get(0).get("max_model_len").asInt());
        HttpResponse<String> health = get(server, "/health");
        assertEquals(200, health.statusCode());
        JsonNode state = json(health.body());
        assertEquals("ok", state.get("status").asText());
        assertEquals("tiny", state.get("model").asText());
        assertEquals(
                engine.metrics().cacheBlocksTotal(),
                state.get("kv_blocks_total").asLong());
        assertTrue(state.has("running") && state.has("queued") && state.has("kv_blocks_used"), health.body());
    }

    @Test
    void aClientHangingUpMidStreamFreesItsSequenceAndTheServerKeepsServing() throws Exception {
        long cancelled = engine.metrics().cancelled();
        String body = "{\"model\": \"tiny\", \"prompt\": [5, 6, 7], \"max_tokens\": 900, \"temperature\": 0,"
                + " \"stream\": true}";
        try (Socket socket = TestServers.streamAndRead(server, body, 3)) {
            assertNotNull(socket);
            assertEquals(1, engine.metrics().running(), "the request runs");
        }
        assertCancelledAndServing(cancelled);
    }

    @Test
    void aClientHangingUpOnAWholeAnswerFreesItsSequenceAndTheServerKeepsServing() throws Exception {
        long cancelled = engine.metrics().cancelled();
        String body = "{\"model\": \"tiny\", \"prompt\": [5, 6, 7], \"max_tokens\": 900, \"temperature\": 0}";
        try (Socket socket = TestServers.post(server, body)) {
            TestServers.await(engine::metrics, x -> x.running() == 1, "the request runs");
        }
        assertCancelledAndServing(cancelled);
    }

    /** The hung-up request ends cancelled (one more than {@code cancelledBefore}), its blocks free; the next is served. */
    private static void assertCancelledAndServing(long cancelledBefore) throws InterruptedException {
        EngineMetrics m = TestServers.await(
                engine::metrics, x -> x.running() == 0 && x.cacheBlocksUsed() == 0, "the hung-up request ends");
        assertEquals(cancelledBefore + 1, m.cancelled(), "it was cancelled, not finished");
        HttpResponse<String> next = post(server, "/v1/completions", "{\"model\": \"tiny\", \"prompt\": \"Hi\"}");
        assertEquals(200, next.statusCode(), next.body());
    }

    @Test
    void aRequestPipelinedBehindAWholeAnswerClosesTheConnectionAfterACompleteAnswer() throws Exception {
        // A stream that its client stops reading holds 15 of the 16 KV blocks, so the first request (2 blocks) waits
        // in the queue while the second is pipelined behind it: the bytes are there before it can finish, however
        // fast the model runs.
        String holding = "{\"model\": \"tiny\", \"prompt\": [5, 6, 7], \"max_tokens\": 900, \"temperature\": 0,"
                + " \"stream\": true}";
        String first = "{\"model\": \"tiny\", \"prompt\": [5, 6, 7], \"max_tokens\": 120, \"temperature\": 0}";
        String second = "{\"model\": \"tiny\", \"prompt\": [8], \"max_tokens\": 2}";
        Socket holder = TestServers.streamAndRead(server, holding, 2);
        try (Socket socket = TestServers.post(server, first)) {
            socket.setSoTimeout(60_000); // a connection left open fails the test instead of hanging it
            TestServers.await(engine::metrics, x -> x.queued() == 1, "the first request waits");
            socket.getOutputStream().write(TestServers.completionRequest(second));
            holder.close(); // its blocks free: the first request runs
            byte[] all = socket.getInputStream().readAllBytes(); // to the end of stream: the server closes
            String text = new String(all, StandardCharsets.UTF_8);
            assertTrue(text.startsWith("HTTP/1.1 200"), text);
            assertTrue(text.toLowerCase(Locale.ROOT).contains("connection: close"), text);
            JsonNode answer = JSON.readTree(text.substring(text.indexOf("\r\n\r\n") + 4));
            assertEquals(120, answer.get("usage").get("completion_tokens").asInt(), text);
            assertEquals(1, text.split("HTTP/1.1 ", -1).length - 1, "one answer only: " + text);
        } finally {
            holder.close();
        }
        TestServers.await(engine::metrics, x -> x.running() == 0 && x.cacheBlocksUsed() == 0, "both end");
        HttpResponse<String> next = post(server, "/v1/completions", "{\"model\": \"tiny\", \"prompt\": \"Hi\"}");
        assertEquals(200, next.statusCode(), next.body());
    }

    private static final Pattern SAMPLE = Pattern.compile(
            "([a-zA-Z_:][a-zA-Z0-9_:]*)(\\{[a-zA-Z_][a-zA-Z0-9_]*=\"[^\"]*\"(,[a-zA-Z_][a-zA-Z0-9_]*=\"[^\"]*\")*})? (\\S+)");

    @Test
    void metricsAreValidPrometheusText() {
        post(server, "/v1/completions", "{\"model\": \"tiny\", \"prompt\": \"Hi\", \"max_tokens\": 3}");
        HttpResponse<String> response = get(server, "/metrics");
        assertEquals(200, response.statusCode());
        assertEquals(
                PrometheusText.CONTENT_TYPE.replace(" ", ""),
                response.headers()
                        .firstValue("Content-Type")
                        .orElse("")
                        .replace(" ", "")
                        .toLowerCase());
        Map<String, String> types = new HashMap<>();
        Set<String> help = new LinkedHashSet<>();
        Map<String, Double> values = new HashMap<>();
        for (String line : response.body().split("\n")) {
            if (line.startsWith("# HELP ")) {
                help.add(line.split(" ")[2]);
                continue;
            }
            if (line.startsWith("# TYPE ")) {
                String[] parts = line.split(" ");
                assertTrue(Set.of("gauge", "counter", "summary").contains(parts[3]), line);
                assertTrue(help.contains(parts[2]), "HELP before TYPE: " + line);
                types.put(parts[2], parts[3]);
                continue;
            }
            Matcher m = SAMPLE.matcher(line);
            assertTrue(m.matches(), "not a sample line: " + line);
            String name = m.group(1), family = name.replaceAll("_(count|sum)$", "");
            assertTrue(name.startsWith("moe4j_"), line);
            assertTrue(types.containsKey(family) || types.containsKey(name), "TYPE before sample: " + line);
            if (types.get(family).equals("counter")) assertTrue(name.endsWith("_total"), line);
            double value = Double.parseDouble(m.group(4));
            values.put(name + (m.group(2) == null ? "" : m.group(2)), value);
        }
        for (String name : List.of(
                "moe4j_requests_waiting",
                "moe4j_requests_running",
                "moe4j_kv_cache_blocks_used",
                "moe4j_kv_cache_blocks_free",
                "moe4j_prompt_tokens_total",
                "moe4j_generation_tokens_total",
                "moe4j_prompt_tokens_per_second",
                "moe4j_generation_tokens_per_second",
                "moe4j_requests_finished_total",
                "moe4j_requests_cancelled_total",
                "moe4j_requests_rejected_total",
                "moe4j_time_to_first_token_seconds",
                "moe4j_time_per_output_token_seconds",
                "moe4j_expert_tokens_total",
                "moe4j_expert_load_imbalance",
                "moe4j_device_balance",
                "moe4j_rebalances_total")) assertTrue(types.containsKey(name), name + " is exposed");
        assertEquals("summary", types.get("moe4j_time_to_first_token_seconds"));
        assertEquals(
                engine.metrics().cacheBlocksTotal(),
                values.get("moe4j_kv_cache_blocks_free") + values.get("moe4j_kv_cache_blocks_used"));
        assertTrue(values.get("moe4j_generation_tokens_total") >= 3);
        assertTrue(values.get("moe4j_time_to_first_token_seconds{quantile=\"0.99\"}") > 0);
        double ttftSum = values.get("moe4j_time_to_first_token_seconds_sum"),
                ttftCount = values.get("moe4j_time_to_first_token_seconds_count");
        assertTrue(ttftCount >= 1 && ttftSum > 0, "sum " + ttftSum + " over " + ttftCount);
        assertTrue(values.get("moe4j_expert_tokens_total{layer=\"1\",expert=\"0\"}") >= 0);
    }
}
