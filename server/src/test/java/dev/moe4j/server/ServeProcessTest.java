package dev.moe4j.server;

import static dev.moe4j.server.TestServers.HTTP;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** {@code serve} as a process of its own: it prints its port, and SIGTERM stops it cleanly with exit status 0. */
@Timeout(120)
class ServeProcessTest {
    private static final Pattern LISTENING = Pattern.compile("at http://127\\.0\\.0\\.1:(\\d+)/v1");
    private static final int GRACE_SECONDS = 2;

    @Test
    void sigtermEndsInFlightRequestsCleanlyWithinTheGraceAndExitsZero() throws Exception {
        Path model = TestServers.checkpoint();
        String java = ProcessHandle.current().info().command().orElseThrow();
        Path log = Path.of("target/serve-process.log"); // a file, not a pipe: nothing is lost when the process ends
        Process server = new ProcessBuilder(
                        java,
                        "--enable-native-access=ALL-UNNAMED",
                        "-Dmoe4j.library.path=" + System.getProperty("moe4j.library.path"),
                        "-cp",
                        System.getProperty("java.class.path"),
                        Main.class.getName(),
                        "serve",
                        "--model",
                        model.toString(),
                        "--port",
                        "0",
                        "--cache-tokens",
                        "1024",
                        "--served-model-name",
                        "tiny",
                        "--grace-seconds",
                        String.valueOf(GRACE_SECONDS))
                .redirectErrorStream(true)
                .redirectOutput(log.toFile())
                .start();
        try {
            int port = -1;
            long deadline = System.nanoTime() + 60_000_000_000L;
            while (port < 0) {
                assertTrue(server.isAlive(), "the server ended: " + Files.readString(log));
                assertTrue(System.nanoTime() < deadline, "no port within 60 s: " + Files.readString(log));
                Matcher m = LISTENING.matcher(Files.readString(log));
                if (m.find()) port = Integer.parseInt(m.group(1));
                else Thread.sleep(50);
            }
            // a long stream in flight: it finishes within the grace or is cancelled then, and ends cleanly either way
            HttpRequest request = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/v1/completions"))
                    .POST(HttpRequest.BodyPublishers.ofString("{\"model\": \"tiny\", \"prompt\": [5, 6, 7],"
                            + " \"max_tokens\": 1000, \"temperature\": 0, \"stream\": true}"))
                    .build();
            HttpResponse<Stream<String>> response = HTTP.send(request, HttpResponse.BodyHandlers.ofLines());
            assertEquals(200, response.statusCode());
            List<String> events = new ArrayList<>();
            long stopping;
            try (Stream<String> body = response.body()) {
                Iterator<String> it = body.iterator();
                while (events.size() < 2) {
                    String line = it.next();
                    if (!line.isEmpty()) events.add(line);
                }
                server.destroy(); // SIGTERM
                stopping = System.nanoTime();
                it.forEachRemaining(line -> {
                    if (!line.isEmpty()) events.add(line);
                });
            }
            assertTrue(server.waitFor(GRACE_SECONDS + 20, TimeUnit.SECONDS), "the server exits");
            double seconds = (System.nanoTime() - stopping) / 1e9;
            String lines = Files.readString(log);
            assertEquals(0, server.exitValue(), "exit status; output: " + lines);
            assertTrue(seconds < GRACE_SECONDS + 10, "stopped in " + seconds + " s");
            assertEquals("data: [DONE]", events.getLast());
            JsonNode end = TestServers.json(events.get(events.size() - 2).substring("data: ".length()));
            if (end.has("error"))
                assertEquals("service_unavailable", end.get("error").get("type").asText());
            else
                assertEquals(
                        "length", end.get("choices").get(0).get("finish_reason").asText(), end.toString());
            assertTrue(lines.contains("moe4j serve: stopped"), lines);
        } finally {
            server.destroyForcibly();
        }
    }
}
