package dev.moe4j.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.cli.TestModels;
import dev.moe4j.engine.EngineMetrics;
import dev.moe4j.testing.DeepSeekFiles;
import dev.moe4j.tokenizer.Tokenizer;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.function.Predicate;
import java.util.function.Supplier;
import java.util.stream.Stream;

/** The server tests' checkpoint and HTTP plumbing. */
final class TestServers {
    private TestServers() {}

    static final ObjectMapper JSON = new ObjectMapper();
    static final HttpClient HTTP = HttpClient.newBuilder()
            .version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(10))
            .build();
    /** The checkpoint's context (config.json's max_position_embeddings, lowered from make-model's 163840). */
    static final int CONTEXT = 2048;

    private static Path checkpoint;

    /**
     * A tiny V3-shaped checkpoint with DeepSeek-V3's tokenizer and chat template, made once per test JVM in
     * target/test-model: what {@code make-model --tokenizer} writes, without loading the tokenizer a second time (the
     * preset's BOS and EOS ids are the tokenizer's).
     */
    static synchronized Path checkpoint() {
        if (checkpoint != null) return checkpoint;
        Tokenizer tokenizer = DeepSeekFiles.tokenizer();
        assertEquals(0, tokenizer.bosId().orElse(-1), "the preset's BOS id is the tokenizer's");
        assertEquals(1, tokenizer.eosId().orElse(-1), "the preset's EOS id is the tokenizer's");
        Path dir = Path.of("target/test-model").toAbsolutePath();
        try {
            if (Files.exists(dir))
                try (Stream<Path> files = Files.walk(dir)) {
                    for (Path p : files.sorted(Comparator.reverseOrder()).toList()) Files.delete(p);
                }
            TestModels.make(
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
                    dir.toString(),
                    "--vocab",
                    String.valueOf(tokenizer.vocabSize()));
            for (String file : List.of(Tokenizer.TOKENIZER_FILE, "tokenizer_config.json"))
                Files.copy(DeepSeekFiles.dir().resolve(file), dir.resolve(file));
            Path config = dir.resolve("config.json");
            ObjectNode json = (ObjectNode) JSON.readTree(config.toFile());
            json.put("max_position_embeddings", CONTEXT);
            JSON.writeValue(config.toFile(), json);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        checkpoint = dir;
        return dir;
    }

    /** The checkpoint's tokenizer, loaded once per test JVM. */
    static Tokenizer tokenizer() {
        return DeepSeekFiles.tokenizer();
    }

    static URI uri(OpenAiServer server, String path) {
        return URI.create("http://127.0.0.1:" + server.port() + path);
    }

    static HttpResponse<String> post(OpenAiServer server, String path, String body) {
        return send(HttpRequest.newBuilder(uri(server, path))
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body))
                .build());
    }

    static HttpResponse<String> get(OpenAiServer server, String path) {
        return send(HttpRequest.newBuilder(uri(server, path)).GET().build());
    }

    static HttpResponse<String> send(HttpRequest request) {
        try {
            return HTTP.send(request, HttpResponse.BodyHandlers.ofString());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    static JsonNode json(String text) {
        try {
            return JSON.readTree(text);
        } catch (IOException e) {
            throw new UncheckedIOException("not JSON: " + text, e);
        }
    }

    /** The data of a server-sent event stream, checked to end with [DONE] (not included). */
    static List<JsonNode> events(String stream) {
        List<JsonNode> events = new ArrayList<>();
        List<String> data = stream.lines().filter(l -> !l.isEmpty()).toList();
        for (String line : data) assertTrue(line.startsWith("data: "), "not an event line: " + line);
        assertEquals("data: [DONE]", data.getLast(), "the stream ends with [DONE]");
        for (String line : data.subList(0, data.size() - 1)) events.add(json(line.substring(6)));
        return events;
    }

    /** The error object of an error answer, checked for the OpenAI shape. */
    static JsonNode error(HttpResponse<String> response, int status) {
        assertEquals(status, response.statusCode(), response.body());
        assertTrue(response.headers().firstValue("Content-Type").orElse("").startsWith("application/json"));
        JsonNode error = json(response.body()).get("error");
        assertTrue(
                error != null
                        && error.get("message").isTextual()
                        && error.get("type").isTextual(),
                response.body());
        assertTrue(error.has("param") && error.has("code") && error.get("code").isNull(), response.body());
        return error;
    }

    /** Opens a raw connection and posts a request to /v1/completions on it; the answer is left unread. */
    static Socket post(OpenAiServer server, String body) throws IOException {
        Socket socket = new Socket("127.0.0.1", server.port());
        socket.getOutputStream().write(completionRequest(body));
        return socket;
    }

    /** The bytes of an HTTP/1.1 POST of {@code body} to /v1/completions. */
    static byte[] completionRequest(String body) {
        byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
        byte[] head = ("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                        + "Content-Length: " + bytes.length + "\r\n\r\n")
                .getBytes(StandardCharsets.US_ASCII);
        byte[] request = Arrays.copyOf(head, head.length + bytes.length);
        System.arraycopy(bytes, 0, request, head.length, bytes.length);
        return request;
    }

    /** Opens a raw connection, posts a streaming request and returns once {@code events} events have come. */
    static Socket streamAndRead(OpenAiServer server, String body, int events) throws IOException {
        // a small receive window: once the client stops reading, the stream's backpressure holds the sequence soon
        Socket socket = new Socket();
        socket.setReceiveBufferSize(4096);
        socket.connect(new InetSocketAddress("127.0.0.1", server.port()));
        socket.getOutputStream().write(completionRequest(body));
        BufferedReader in = new BufferedReader(new InputStreamReader(socket.getInputStream(), StandardCharsets.UTF_8));
        int seen = 0;
        for (String line = in.readLine(); line != null && seen < events; line = in.readLine())
            if (line.startsWith("data: ")) seen++;
        assertEquals(events, seen, "the stream ended early");
        return socket;
    }

    /** Waits up to 30 s for the engine's metrics to satisfy the condition. */
    static EngineMetrics await(Supplier<EngineMetrics> metrics, Predicate<EngineMetrics> condition, String what)
            throws InterruptedException {
        long deadline = System.nanoTime() + 30_000_000_000L;
        EngineMetrics m = metrics.get();
        while (!condition.test(m)) {
            if (System.nanoTime() > deadline) throw new AssertionError("not within 30 s: " + what + "; " + m);
            Thread.sleep(10);
            m = metrics.get();
        }
        return m;
    }
}
