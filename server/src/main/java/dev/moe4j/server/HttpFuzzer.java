package dev.moe4j.server;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.cli.ModelLoading;
import dev.moe4j.cli.Options;
import dev.moe4j.engine.Engine;
import dev.moe4j.engine.EngineMetrics;
import dev.moe4j.engine.Model;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * {@code fuzz-http} ({@code ./moe4j fuzz http}): a seeded fuzzer of the HTTP API. Each iteration sends one request over
 * a raw socket to a server running in this process: a valid completion or chat body mutated (wrong types, hostile
 * values, deleted and added fields, huge numbers, bad UTF-8, lone surrogates, truncation, deep nesting, huge arrays),
 * valid bodies with extreme parameters, wrong content types, wrong methods and unknown or malformed paths. Every answer
 * must come within {@link #TIMEOUT_SECONDS} and be a 4xx with an OpenAI error object ({@code {"error": {"message",
 * "type", "param", "code"}}}) or a 2xx whose body is what the endpoint promises (a completion, or a stream ending with
 * {@code data: [DONE]} and no error event); anything else (5xx, another shape, a hang, a dropped connection) is a
 * finding. After the last iteration the server must be healthy: {@code /health} 200, a plain request answered, no
 * request left running, no cache block held, no model failure counted.
 *
 * <p>Iteration i draws from its own generator (seed, i), so a finding is reproduced by {@code --seed S --from I
 * --iterations I+1}. Not thread-safe: one fuzzer sends one request at a time.
 */
final class HttpFuzzer {
    static final String USAGE =
            "fuzz-http --model DIR [--iterations N] [--seed S] [--from I] [model options as for generate]";
    /** The longest an answer may take before the iteration counts as a hang. */
    static final int TIMEOUT_SECONDS = 60;

    /** The server's default chat max_tokens: small, so that a request that leaves it out stays quick. */
    static final int CHAT_MAX_TOKENS = 8;

    private static final int REPORTED = 20; // findings printed in full
    private static final double SLOW_SECONDS = 5; // iterations reported as slow (not findings)
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final JsonNodeFactory NODES = JsonNodeFactory.instance;
    /** A string value replaced, after serialization, by a JSON escape of a lone surrogate. */
    private static final String SURROGATE_MARK = "@@lone-surrogate@@";

    private static final List<String> FIELDS = List.of(
            "model",
            "prompt",
            "messages",
            "max_tokens",
            "max_completion_tokens",
            "temperature",
            "top_p",
            "top_k",
            "min_p",
            "presence_penalty",
            "frequency_penalty",
            "repetition_penalty",
            "seed",
            "stop",
            "stop_token_ids",
            "logprobs",
            "top_logprobs",
            "stream",
            "stream_options",
            "n",
            "echo",
            "suffix",
            "best_of",
            "logit_bias",
            "tools",
            "tool_choice",
            "functions",
            "function_call",
            "response_format",
            "user");
    private static final List<String> EXTREMES = List.of(
            "temperature",
            "top_p",
            "top_k",
            "min_p",
            "penalty",
            "repetition_penalty",
            "seed",
            "max_tokens",
            "logprobs",
            "stop",
            "stop_token_ids",
            "prompt length",
            "prompt text",
            "stream");
    private static final List<String> PATHS =
            List.of("/v1/completions", "/v1/chat/completions", "/v1/models", "/health", "/metrics", "/dashboard");
    private static final List<String> CONTENT_TYPES = List.of(
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=xyz",
            "application/json; charset=iso-8859-1",
            "application/json; charset=utf-16",
            "application/octet-stream",
            "*/*",
            ";;;");

    /**
     * One request as sent; {@code what} says how it was made, for the report. {@code marker} (or null), unique to the
     * iteration, travels in a header and, where the body starts as JSON, as its {@code user} field: an answer that
     * carries another request's marker received bytes of that request (a leak between connections).
     */
    record Probe(String method, String path, String contentType, byte[] body, String what, String marker) {
        Probe(String method, String path, String contentType, byte[] body, String what) {
            this(method, path, contentType, body, what, null);
        }
    }

    /** Where a marker appears in an answer: the iteration it was made for in group 1. */
    private static final Pattern MARKER = Pattern.compile("fuzzmark(\\d+)x");

    static String marker(int iteration) {
        return "fuzzmark" + iteration + "x";
    }

    /** One answer as read: status, lower-cased header names, the body (de-chunked). */
    record Answer(int status, Map<String, String> headers, byte[] body) {
        String text() {
            return new String(body, StandardCharsets.UTF_8);
        }
    }

    /** A misbehaviour of the server: what was sent and what came back. */
    static final class Finding extends RuntimeException {
        Finding(String message, Throwable cause) {
            super(message, cause);
        }
    }

    private final int port;
    private final String model;
    private final int vocab;
    private final int context;
    private final long cacheTokens;
    private final Map<String, Integer> outcomes = new TreeMap<>();

    /**
     * @param server the server to fuzz, on a loopback port, serving a model with a tokenizer and a chat template
     */
    HttpFuzzer(OpenAiServer server) {
        port = server.port();
        model = server.options().servedModelName();
        vocab = server.engine().model().vocabSize();
        context = server.engine().model().maxPositions();
        cacheTokens = server.engine().model().cacheTokens();
    }

    /** Counts of answers so far, by status (and, for 400, by the field at fault), for the final report. */
    String outcomes() {
        return outcomes.toString();
    }

    // ---------------------------------------------------------------- the command

    static int run(String[] args) throws InterruptedException {
        Set<String> valued = new HashSet<>(ModelLoading.VALUED);
        valued.addAll(Set.of("--iterations", "--seed", "--from"));
        Options o = new Options("fuzz-http", args, valued, ModelLoading.FLAGS);
        int iterations = o.positive("--iterations", 1000), from = o.has("--from") ? o.integer("--from") : 0;
        long seed = o.has("--seed") ? Long.parseLong(o.string("--seed")) : System.nanoTime();
        Model model = ModelLoading.load(o, 0);
        try (OpenAiServer server = new OpenAiServer(
                new Engine(model, ModelLoading.tokenizer(model.dir()), Engine.Options.defaults()),
                OpenAiServer.Options.defaults("fuzz")
                        .withPort(0)
                        .withIdleTimeout(Duration.ofSeconds(30))
                        .withChatMaxTokens(CHAT_MAX_TOKENS))) {
            if (!server.servesChat())
                throw new IllegalArgumentException("fuzz-http needs a model with a tokenizer and a chat template"
                        + " (make-model --tokenizer DIR), so that every endpoint runs");
            return new HttpFuzzer(server).fuzz(seed, from, iterations, server);
        } finally {
            model.close();
        }
    }

    /** Iterations [from, to), printing the seed, progress, findings with how to reproduce them, and the counts. */
    int fuzz(long seed, int from, int to, OpenAiServer server) throws InterruptedException {
        System.out.printf("fuzz http: seed %d, iterations %d..%d%n", seed, from, to);
        int findings = 0, tried = 0;
        long t0 = System.nanoTime();
        for (int i = from; i < to; i++) {
            tried++;
            try {
                long i0 = System.nanoTime();
                Probe p = iteration(i, new SplittableRandom(seed * 0x9E3779B97F4A7C15L + i));
                double seconds = (System.nanoTime() - i0) / 1e9;
                if (seconds > SLOW_SECONDS)
                    System.out.printf("  slow: iteration %d took %.1f s: %s%n", i, seconds, describe(p));
            } catch (RuntimeException e) {
                findings++;
                if (findings <= REPORTED) {
                    System.out.printf(
                            "FINDING at iteration %d (reproduce: ./moe4j fuzz http --seed %d --from %d --iterations"
                                    + " %d):%n",
                            i, seed, i, i + 1);
                    e.printStackTrace(System.out);
                }
            }
            if ((i + 1) % 1000 == 0)
                System.out.printf(
                        "  %d requests, %d findings, %.0f s%n", tried, findings, (System.nanoTime() - t0) / 1e9);
        }
        try {
            checkHealthy(server);
        } catch (RuntimeException e) {
            findings++;
            System.out.println("FINDING after the last iteration: the server is not healthy");
            e.printStackTrace(System.out);
        }
        System.out.printf(
                "fuzz http: seed %d, %d requests tried, %d findings, %.1f s%n",
                seed, tried, findings, (System.nanoTime() - t0) / 1e9);
        System.out.println("  outcomes: " + outcomes());
        return findings == 0 ? 0 : 1;
    }

    /**
     * Sends one probe drawn from random, marked as iteration {@code index}'s, and checks its answer; throws a
     * {@link Finding} on misbehaviour.
     *
     * @return the probe sent
     */
    Probe iteration(int index, SplittableRandom random) {
        Probe probe = probe(random, marker(index));
        Answer answer;
        try {
            answer = exchange(probe);
        } catch (SocketTimeoutException e) {
            throw new Finding("no answer within " + TIMEOUT_SECONDS + " s to " + describe(probe), e);
        } catch (IOException e) {
            throw new Finding("the connection failed (" + e + ") on " + describe(probe), e);
        }
        try {
            check(probe, answer);
        } catch (RuntimeException e) {
            throw new Finding(
                    e.getMessage() + "\n  request: " + describe(probe) + "\n  answer: " + answer.status() + " "
                            + abbreviate(answer.text()),
                    null);
        }
        return probe;
    }

    /** The server's state after fuzzing: healthy, serving, nothing left running or held. */
    void checkHealthy(OpenAiServer server) throws InterruptedException {
        Answer health = exchangeOrFail(new Probe("GET", "/health", null, null, "health"));
        if (health.status() != 200) throw new Finding("/health answered " + health.status(), null);
        String body = "{\"model\": \"" + model + "\", \"prompt\": \"The end\", \"max_tokens\": 3, \"temperature\": 0}";
        Probe plain = new Probe("POST", "/v1/completions", "application/json", utf8(body), "a plain completion");
        Answer answer = exchangeOrFail(plain);
        if (answer.status() != 200) throw new Finding("a plain completion answered " + answer.status(), null);
        check(plain, answer);
        long deadline = System.nanoTime() + 30_000_000_000L;
        EngineMetrics m = server.engine().metrics();
        while (m.running() + m.queued() > 0 || m.cacheBlocksUsed() > 0) {
            if (System.nanoTime() > deadline)
                throw new Finding("requests still running or cache blocks held 30 s after the last answer: " + m, null);
            Thread.sleep(10);
            m = server.engine().metrics();
        }
        if (m.failed() > 0) throw new Finding(m.failed() + " requests failed in the model", null);
    }

    private Answer exchangeOrFail(Probe probe) {
        try {
            return exchange(probe);
        } catch (IOException e) {
            throw new Finding("the connection failed (" + e + ") on " + describe(probe), e);
        }
    }

    // ---------------------------------------------------------------- checking answers

    void check(Probe probe, Answer a) {
        checkNoOtherMarker(probe, a);
        int status = a.status();
        if (status >= 500 || status < 200 || (status >= 300 && status < 400))
            throw new IllegalStateException("status " + status + " (only 2xx and 4xx are acceptable)");
        if ("HEAD".equals(probe.method())) {
            count(status + " HEAD");
            return; // no body to check
        }
        String type = a.headers().getOrDefault("content-type", "");
        if (status >= 400) {
            if (!type.startsWith("application/json"))
                throw new IllegalStateException("an error answer of type '" + type + "', not JSON");
            JsonNode error = parse(a.body()).get("error");
            if (error == null
                    || !error.path("message").isTextual()
                    || error.path("message").asText().isBlank()
                    || !error.path("type").isTextual()
                    || !error.has("param")
                    || !error.has("code")) throw new IllegalStateException("not an OpenAI error object");
            count(status
                    + (error.path("param").isTextual()
                            ? " " + error.get("param").asText()
                            : ""));
            return;
        }
        count(status + " " + probe.path());
        switch (probe.path()) {
            case "/v1/completions", "/v1/chat/completions" -> {
                if (type.startsWith("text/event-stream")) checkStream(a.text());
                else {
                    JsonNode answer = parse(a.body());
                    if (!answer.path("choices").isArray()
                            || answer.path("choices").isEmpty()
                            || !answer.path("usage").isObject())
                        throw new IllegalStateException("a 2xx completion without choices or usage");
                }
            }
            case "/health", "/v1/models" -> parse(a.body());
            default -> {
                if (a.body().length == 0) throw new IllegalStateException("an empty 2xx answer");
            }
        }
    }

    /** The answer's headers and body name no request's marker but the probe's own. */
    private static void checkNoOtherMarker(Probe probe, Answer a) {
        String text = a.headers() + "\n" + new String(a.body(), StandardCharsets.ISO_8859_1);
        Matcher m = MARKER.matcher(text);
        while (m.find())
            if (!m.group().equals(probe.marker()))
                throw new IllegalStateException("the answer carries " + m.group() + ", the marker of iteration "
                        + m.group(1) + "'s request: bytes leaked from another connection");
    }

    /** A stream: event lines only, each a JSON object without an error, ending with [DONE]. */
    private static void checkStream(String stream) {
        List<String> lines = stream.lines().filter(l -> !l.isEmpty()).toList();
        if (lines.isEmpty() || !lines.getLast().equals("data: [DONE]"))
            throw new IllegalStateException("a stream that does not end with data: [DONE]");
        for (String line : lines.subList(0, lines.size() - 1)) {
            if (!line.startsWith("data: ")) throw new IllegalStateException("not an event line: " + line);
            JsonNode event = parse(line.substring(6).getBytes(StandardCharsets.UTF_8));
            if (event.has("error")) throw new IllegalStateException("an error event in a stream: " + line);
        }
    }

    private static JsonNode parse(byte[] body) {
        try {
            return JSON.readTree(body);
        } catch (IOException e) {
            throw new IllegalStateException("a body that is not JSON: " + e.getMessage(), e);
        }
    }

    private void count(String outcome) {
        outcomes.merge(outcome, 1, Integer::sum);
    }

    // ---------------------------------------------------------------- making probes

    Probe probe(SplittableRandom r, String marker) {
        int kind = r.nextInt(100);
        if (kind < 10) return wrongMethodOrPath(r, marker);
        boolean chat = r.nextBoolean();
        String path = chat ? "/v1/chat/completions" : "/v1/completions";
        ObjectNode body = base(r, chat).put("user", marker);
        List<String> what = new ArrayList<>();
        String contentType = "application/json";
        if (r.nextInt(100) < 10) {
            contentType = r.nextInt(8) == 0 ? null : pick(r, CONTENT_TYPES);
            what.add("content type " + contentType);
        }
        if (kind < 20) {
            extreme(r, body, what);
            return new Probe("POST", path, contentType, utf8(write(body)), String.join(", ", what), marker);
        }
        if (kind < 30)
            return new Probe("POST", path, contentType, structural(r, body, what), String.join(", ", what), marker);
        int mutations = 1 + r.nextInt(3);
        for (int m = 0; m < mutations; m++) mutateTree(r, body, what);
        byte[] bytes = utf8(write(body));
        if (kind >= 85) bytes = mutateBytes(r, bytes, what);
        return new Probe("POST", path, contentType, bytes, String.join(", ", what), marker);
    }

    /** A valid body to start from. */
    private ObjectNode base(SplittableRandom r, boolean chat) {
        ObjectNode b = NODES.objectNode().put("model", model);
        if (chat) {
            ArrayNode messages = b.putArray("messages");
            if (r.nextBoolean()) messages.addObject().put("role", "system").put("content", "Be brief.");
            ObjectNode user = messages.addObject().put("role", "user");
            if (r.nextBoolean()) user.put("content", "Hello, who are you?");
            else user.putArray("content").addObject().put("type", "text").put("text", "Hi there");
            b.put(r.nextBoolean() ? "max_tokens" : "max_completion_tokens", 1 + r.nextInt(4));
        } else {
            switch (r.nextInt(3)) {
                case 0 -> b.put("prompt", "The capital of France is");
                case 1 -> b.putArray("prompt").add(1000).add(2000).add(3000);
                default -> b.putArray("prompt").add("Once upon a time");
            }
            b.put("max_tokens", 1 + r.nextInt(4));
        }
        if (r.nextBoolean()) b.put("temperature", r.nextInt(3) * 0.5);
        if (r.nextInt(3) == 0) {
            b.put("stream", true);
            if (r.nextBoolean()) b.putObject("stream_options").put("include_usage", true);
        }
        if (r.nextInt(4) == 0) b.putArray("stop").add("\n").add(".");
        if (r.nextInt(4) == 0) b.put("seed", r.nextLong());
        if (r.nextInt(4) == 0) {
            if (chat) b.put("logprobs", true).put("top_logprobs", 2);
            else b.put("logprobs", 2);
        }
        return b;
    }

    /** A wrong method on an endpoint, or an unknown, odd or malformed path. */
    private Probe wrongMethodOrPath(SplittableRandom r, String marker) {
        String method = pick(r, List.of("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "FOO"));
        String path = switch (r.nextInt(10)) {
            case 0 -> "/v1/completion";
            case 1 -> "/v1/completions/";
            case 2 -> "/v1//chat/completions";
            case 3 -> "/v1/%2e%2e/metrics";
            case 4 -> "/v1/completions?x=%zz&y";
            case 5 -> "/" + "a".repeat(1 + r.nextInt(20_000));
            case 6 -> "/%00";
            case 7 -> "/v1/models/" + model;
            case 8 -> "/ü/\u00ff";
            default -> pick(r, PATHS);
        };
        byte[] body = r.nextBoolean()
                ? utf8("{\"model\": \"" + model + "\", \"prompt\": \"hi\", \"max_tokens\": 1, \"user\": \"" + marker
                        + "\"}")
                : null;
        return new Probe(method, path, body == null ? null : "application/json", body, method + " " + path, marker);
    }

    /** Valid fields set to extreme values (each may be accepted or refused, but never fail the server). */
    private void extreme(SplittableRandom r, ObjectNode b, List<String> what) {
        int n = 1 + r.nextInt(3);
        for (int i = 0; i < n; i++) {
            int c = r.nextInt(14);
            what.add("extreme " + EXTREMES.get(c));
            switch (c) {
                case 0 -> b.put("temperature", pick(r, List.of(0.0, 1e-300, Double.MIN_VALUE, 2.0)));
                case 1 -> b.put("top_p", pick(r, List.of(Double.MIN_VALUE, 1e-9, 1.0)));
                case 2 -> b.put("top_k", pick(r, List.of(-1, 0, 1, Integer.MAX_VALUE)));
                case 3 -> b.put("min_p", pick(r, List.of(0.0, Math.nextDown(1.0), 0.999999)));
                case 4 -> b.put(pick(r, List.of("presence_penalty", "frequency_penalty")), pick(r, List.of(-2.0, 2.0)));
                case 5 ->
                    b.put("repetition_penalty", pick(r, List.of(Double.MIN_VALUE, 1e-300, 1e300, Double.MAX_VALUE)));
                case 6 -> b.put("seed", pick(r, List.of(Long.MIN_VALUE, Long.MAX_VALUE, 0L, -1L)));
                case 7 -> {
                    b.remove("max_completion_tokens");
                    b.put("max_tokens", pick(r, List.of(Integer.MAX_VALUE, 1 << 20, (int) cacheTokens + 1)));
                }
                case 8 -> {
                    if (b.has("messages")) b.put("logprobs", true).put("top_logprobs", 20);
                    else b.put("logprobs", 20);
                }
                case 9 -> {
                    ArrayNode stop = b.putArray("stop");
                    int count = pick(r, List.of(1, 100, 2000));
                    for (int s = 0; s < count; s++) stop.add(randomText(r, 1 + r.nextInt(8)));
                }
                case 10 -> {
                    ArrayNode ids = b.putArray("stop_token_ids");
                    int count = pick(r, List.of(1, 1000, vocab));
                    for (int s = 0; s < count; s++) ids.add(r.nextInt(vocab));
                }
                case 11 -> {
                    // prompts at the edges: the context (refused), the cache (refused), a long one that runs
                    int length =
                            pick(r, List.of(context, context - 1, (int) Math.min(context - 1, cacheTokens + 64), 200));
                    b.remove("messages");
                    ArrayNode prompt = b.putArray("prompt");
                    for (int t = 0; t < length; t++) prompt.add(r.nextInt(vocab));
                    b.put("max_tokens", 1);
                }
                case 12 -> {
                    if (b.has("prompt")) b.put("prompt", randomText(r, 200 + r.nextInt(400)));
                    else b.withArray("messages").addObject().put("role", "user").put("content", randomText(r, 400));
                }
                default -> {
                    b.put("stream", true);
                    b.putObject("stream_options").put("include_usage", r.nextBoolean());
                }
            }
        }
    }

    /** Deep nesting, huge arrays, huge strings, a body that is not an object. */
    private byte[] structural(SplittableRandom r, ObjectNode b, List<String> what) {
        String field = pick(r, FIELDS);
        switch (r.nextInt(6)) {
            case 0 -> {
                int depth = pick(r, List.of(100, 999, 1001, 5000, 100_000));
                String open = r.nextBoolean() ? "[" : "{\"a\":";
                String close = open.equals("[") ? "]" : "}";
                String text = write(b);
                String nested = open.repeat(depth) + "1" + close.repeat(depth);
                what.add(field + " nested " + depth + " deep");
                return utf8(text.substring(0, text.length() - 1) + ", \"" + field + "\": " + nested + "}");
            }
            case 1 -> {
                ArrayNode huge = b.putArray(field);
                int count = pick(r, List.of(10_000, 200_000));
                for (int i = 0; i < count; i++) huge.add(r.nextInt(vocab));
                what.add(field + " an array of " + count + " ids");
            }
            case 2 -> {
                ArrayNode messages = b.putArray("messages");
                int count = pick(r, List.of(10, 100, 300));
                for (int i = 0; i < count; i++)
                    messages.addObject()
                            .put("role", i % 2 == 0 ? "user" : "assistant")
                            .put("content", "x");
                what.add(count + " messages");
            }
            case 3 -> {
                b.put(field, "é".repeat(pick(r, List.of(100_000, 1_000_000))));
                what.add(field + " a huge string");
            }
            case 4 -> {
                String body = pick(
                        r, List.of("", "null", "[]", "42", "\"text\"", "true", "{}", "[{}]", "{\"model\": null}", " "));
                what.add("body " + body);
                return utf8(body);
            }
            default -> {
                b.put(field, SURROGATE_MARK);
                what.add(field + " a lone surrogate");
            }
        }
        return utf8(write(b));
    }

    /** Sets, deletes or adds one field of the body or of a message. */
    private void mutateTree(SplittableRandom r, ObjectNode b, List<String> what) {
        ObjectNode target = b;
        String at = "";
        if (b.has("messages")
                && b.get("messages").isArray()
                && !b.get("messages").isEmpty()
                && r.nextInt(4) == 0) {
            JsonNode m = b.get("messages").get(r.nextInt(b.get("messages").size()));
            if (m instanceof ObjectNode message) {
                target = message;
                at = "messages[].";
            }
        }
        List<String> names = new ArrayList<>();
        target.fieldNames().forEachRemaining(names::add);
        switch (r.nextInt(4)) {
            case 0 -> {
                if (names.isEmpty()) return;
                String name = pick(r, names);
                target.remove(name);
                what.add("deleted " + at + name);
            }
            case 1 -> {
                String name = at.isEmpty() ? pick(r, FIELDS) : pick(r, List.of("role", "content", "name", "type"));
                JsonNode value = hostile(r);
                target.set(name, value);
                what.add(at + name + " = " + abbreviate(value.toString()));
            }
            default -> {
                if (names.isEmpty()) return;
                String name = pick(r, names);
                JsonNode value = hostile(r);
                target.set(name, value);
                what.add(at + name + " = " + abbreviate(value.toString()));
            }
        }
    }

    /** A value of a wrong type, out of range, huge or strange. */
    private JsonNode hostile(SplittableRandom r) {
        return switch (r.nextInt(30)) {
            case 0 -> NODES.nullNode();
            case 1 -> NODES.booleanNode(r.nextBoolean());
            case 2 -> NODES.numberNode(0);
            case 3 -> NODES.numberNode(-1);
            case 4 -> NODES.numberNode(Integer.MAX_VALUE);
            case 5 -> NODES.numberNode(Integer.MAX_VALUE + 1L);
            case 6 -> NODES.numberNode(Long.MIN_VALUE);
            case 7 -> NODES.numberNode(BigInteger.TWO.pow(70 + r.nextInt(2000)));
            case 8 -> NODES.numberNode(new BigDecimal("1e" + (300 + r.nextInt(100_000))));
            case 9 -> NODES.numberNode(new BigDecimal("-1e-" + (300 + r.nextInt(100_000))));
            case 10 -> NODES.numberNode(r.nextDouble() * 4 - 2);
            case 11 -> NODES.numberNode(-0.0);
            case 12 -> NODES.numberNode(1.5);
            case 13 -> NODES.textNode("");
            case 14 -> NODES.textNode(model);
            case 15 -> NODES.textNode(randomText(r, 1 + r.nextInt(50)));
            case 16 -> NODES.textNode("x".repeat(100_000));
            case 17 -> NODES.textNode("\u0000\u0001\u001b[31m\r\n\t\u007f\u2028\ufeff");
            case 18 -> NODES.textNode("🙂𝄞中文ß\u0301");
            case 19 -> NODES.textNode(SURROGATE_MARK);
            case 20 -> NODES.arrayNode();
            case 21 -> NODES.arrayNode().add(1).add(2).add(-5);
            case 22 -> NODES.arrayNode().add("a").add(NODES.nullNode()).add(3);
            case 23 -> NODES.arrayNode().add(NODES.arrayNode().add(vocab).add(0));
            case 24 -> NODES.arrayNode().add(NODES.arrayNode()).add(NODES.objectNode());
            case 25 -> NODES.objectNode();
            case 26 -> NODES.objectNode().put("type", "text").put("text", "hi");
            case 27 -> NODES.objectNode().put("include_usage", "yes");
            case 28 ->
                NODES.arrayNode().add(NODES.objectNode().put("role", "user").put("content", 5));
            default -> NODES.numberNode(vocab + r.nextInt(3) - 1);
        };
    }

    /** Byte-level damage: truncation, flipped bytes, invalid UTF-8, NULs. */
    private static byte[] mutateBytes(SplittableRandom r, byte[] bytes, List<String> what) {
        if (bytes.length == 0) return bytes;
        int at = r.nextInt(bytes.length);
        switch (r.nextInt(5)) {
            case 0 -> {
                what.add("truncated at " + at);
                return java.util.Arrays.copyOf(bytes, at);
            }
            case 1 -> {
                byte[] copy = bytes.clone();
                copy[at] ^= (byte) (1 << r.nextInt(8));
                what.add("bit flipped at " + at);
                return copy;
            }
            case 2 -> {
                byte[][] invalid = {
                    {(byte) 0xC3, 0x28},
                    {(byte) 0xFF},
                    {(byte) 0xC0, (byte) 0xAF},
                    {(byte) 0xED, (byte) 0xA0, (byte) 0x80},
                    {(byte) 0xF4, (byte) 0x90, (byte) 0x80, (byte) 0x80},
                    {(byte) 0xE2, (byte) 0x82}
                };
                byte[] bad = invalid[r.nextInt(invalid.length)];
                what.add("invalid UTF-8 inserted at " + at);
                return splice(bytes, at, bad);
            }
            case 3 -> {
                what.add("NUL inserted at " + at);
                return splice(bytes, at, new byte[] {0});
            }
            default -> {
                byte[] copy = bytes.clone();
                for (int i = 0; i < 1 + r.nextInt(8); i++) copy[r.nextInt(copy.length)] = (byte) r.nextInt(256);
                what.add("random bytes");
                return copy;
            }
        }
    }

    private static byte[] splice(byte[] bytes, int at, byte[] insert) {
        byte[] out = new byte[bytes.length + insert.length];
        System.arraycopy(bytes, 0, out, 0, at);
        System.arraycopy(insert, 0, out, at, insert.length);
        System.arraycopy(bytes, at, out, at + insert.length, bytes.length - at);
        return out;
    }

    private static String randomText(SplittableRandom r, int length) {
        String alphabet = "abc xyz .,\n\"\\{}[]é中🙂<|end▁of▁sentence|>";
        StringBuilder s = new StringBuilder();
        while (s.length() < length) {
            int cp = alphabet.codePointAt(r.nextInt(alphabet.length()));
            if (Character.isLowSurrogate((char) cp)) continue;
            s.appendCodePoint(cp);
        }
        return s.toString();
    }

    private static <T> T pick(SplittableRandom r, List<T> list) {
        return list.get(r.nextInt(list.size()));
    }

    private static String write(JsonNode node) {
        try {
            return JSON.writeValueAsString(node).replace("\"" + SURROGATE_MARK + "\"", "\"\\ud800x\\udc00\\udc00\"");
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("a JSON tree did not serialize: " + e.getMessage(), e);
        }
    }

    private static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    private static String abbreviate(String s) {
        String line = s.replace("\n", "\\n");
        return line.length() <= 300 ? line : line.substring(0, 300) + "... (" + line.length() + " chars)";
    }

    private static String describe(Probe p) {
        String body = p.body() == null ? "no body" : p.body().length + " bytes";
        return p.method() + " " + abbreviate(p.path()) + " (" + body + ", content type " + p.contentType() + "): "
                + p.what();
    }

    // ---------------------------------------------------------------- a raw HTTP/1.1 exchange

    /** Sends the probe on a fresh connection ({@code Connection: close}) and reads the whole answer. */
    Answer exchange(Probe p) throws IOException {
        int timeout = TIMEOUT_SECONDS * 1000;
        try (Socket socket = new Socket()) {
            socket.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), timeout);
            socket.setSoTimeout(timeout);
            StringBuilder head = new StringBuilder()
                    .append(p.method())
                    .append(' ')
                    .append(p.path())
                    .append(" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
            if (p.contentType() != null)
                head.append("Content-Type: ").append(p.contentType()).append("\r\n");
            if (p.body() != null)
                head.append("Content-Length: ").append(p.body().length).append("\r\n");
            if (p.marker() != null)
                head.append("X-Fuzz-Marker: ").append(p.marker()).append("\r\n");
            head.append("\r\n");
            OutputStream out = socket.getOutputStream();
            try {
                out.write(head.toString().getBytes(StandardCharsets.UTF_8));
                if (p.body() != null) out.write(p.body());
                out.flush();
            } catch (IOException refused) {
                // the server may answer (and close) before reading a body it does not want: read what it said
            }
            return parseAnswer(socket.getInputStream().readAllBytes());
        }
    }

    private static Answer parseAnswer(byte[] raw) throws IOException {
        int end = indexOf(raw, "\r\n\r\n".getBytes(StandardCharsets.US_ASCII), 0);
        if (end < 0) throw new IOException("no complete answer head in " + raw.length + " bytes");
        String[] lines = new String(raw, 0, end, StandardCharsets.ISO_8859_1).split("\r\n");
        String[] statusLine = lines[0].split(" ", 3);
        if (statusLine.length < 2 || !statusLine[0].startsWith("HTTP/1."))
            throw new IOException("not an HTTP status line: " + lines[0]);
        int status = Integer.parseInt(statusLine[1]);
        Map<String, String> headers = new TreeMap<>();
        for (int i = 1; i < lines.length; i++) {
            int colon = lines[i].indexOf(':');
            if (colon > 0)
                headers.put(
                        lines[i].substring(0, colon).trim().toLowerCase(Locale.ROOT),
                        lines[i].substring(colon + 1).trim());
        }
        byte[] body = java.util.Arrays.copyOfRange(raw, end + 4, raw.length);
        if ("chunked".equalsIgnoreCase(headers.getOrDefault("transfer-encoding", ""))) body = dechunk(body);
        return new Answer(status, headers, body);
    }

    private static byte[] dechunk(byte[] body) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        int at = 0;
        while (true) {
            int eol = indexOf(body, new byte[] {'\r', '\n'}, at);
            if (eol < 0) throw new IOException("a chunked body cut short");
            String size = new String(body, at, eol - at, StandardCharsets.US_ASCII);
            int semicolon = size.indexOf(';');
            int n = Integer.parseInt((semicolon < 0 ? size : size.substring(0, semicolon)).trim(), 16);
            if (n == 0) return out.toByteArray();
            if (eol + 2 + n > body.length) throw new IOException("a chunk cut short");
            out.write(body, eol + 2, n);
            at = eol + 2 + n + 2;
        }
    }

    private static int indexOf(byte[] haystack, byte[] needle, int from) {
        outer:
        for (int i = from; i + needle.length <= haystack.length; i++) {
            for (int j = 0; j < needle.length; j++) if (haystack[i + j] != needle[j]) continue outer;
            return i;
        }
        return -1;
    }
}
