package dev.moe4j.server;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.dashboard.Dashboard;
import dev.moe4j.dashboard.Recorder;
import dev.moe4j.engine.Engine;
import dev.moe4j.engine.EngineMetrics;
import dev.moe4j.engine.Result;
import dev.moe4j.engine.Submission;
import dev.moe4j.tokenizer.ChatTemplate;
import dev.moe4j.tokenizer.Tokenizer;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.HexFormat;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import org.eclipse.jetty.http.HttpHeader;
import org.eclipse.jetty.http.HttpStatus;
import org.eclipse.jetty.io.ByteBufferPool;
import org.eclipse.jetty.io.Content;
import org.eclipse.jetty.io.EndPoint;
import org.eclipse.jetty.io.EofException;
import org.eclipse.jetty.server.Handler;
import org.eclipse.jetty.server.HttpConfiguration;
import org.eclipse.jetty.server.HttpConnectionFactory;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.server.Response;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.server.handler.ErrorHandler;
import org.eclipse.jetty.server.handler.GracefulHandler;
import org.eclipse.jetty.util.Blocker;
import org.eclipse.jetty.util.BufferUtil;
import org.eclipse.jetty.util.Callback;
import org.eclipse.jetty.util.VirtualThreads;
import org.eclipse.jetty.util.thread.QueuedThreadPool;
import org.eclipse.jetty.util.thread.ThreadPool;

/**
 * The OpenAI-compatible HTTP API in front of an {@link Engine}, on Jetty 12 with one virtual thread per request.
 *
 * <p>Endpoints: {@code POST /v1/completions}, {@code POST /v1/chat/completions} (OpenAI's request and response bodies;
 * {@code stream: true} answers with server-sent events, one chunk per generated token, ending with {@code data:
 * [DONE]}), {@code GET /v1/models}, {@code GET /health}, {@code GET /metrics} (Prometheus text) and {@code GET
 * /dashboard} (an HTML page of the engine's history, sampled every {@link #DASHBOARD_SAMPLE_SECONDS}: see {@link
 * Dashboard}). Errors are OpenAI
 * error objects: 400 for a malformed request (naming the field) or one larger than the KV cache, 404 for an unknown
 * path, 405 for a wrong method, 413 for a body over {@link #MAX_BODY_BYTES}, 429 when the engine's queue is full, 503
 * while shutting down, 500 when the model fails. A streaming client that disconnects cancels its request (the next
 * write fails), whose KV cache blocks return to the pool; so does a client waiting for a whole answer, noticed within
 * 50 ms (the server reads its connection for the end of stream). A connection that stays silent past {@link
 * Options#idleTimeout} is closed, except while its request waits for the engine (queued, or generating a whole
 * answer); a stream whose client stops reading fails after it.
 *
 * <p>The server drives the engine but does not own the model: {@link #shutdown} ends the engine, the caller closes the
 * model afterwards. Thread-safety: every method may be called from any thread.
 */
public final class OpenAiServer implements AutoCloseable {
    /** The largest request body taken. */
    public static final int MAX_BODY_BYTES = 32 << 20;

    /**
     * How often a connection waiting for a whole answer is checked for a client that has gone: one non-blocking read
     * each time, 20 a second per waiting connection, for KV blocks freed within a few decode steps.
     */
    static final long HANG_UP_PROBE_MILLIS = 50;

    /** How often the dashboard's time series sample the engine, and how often {@code /dashboard} reloads. */
    public static final int DASHBOARD_SAMPLE_SECONDS = 1, DASHBOARD_REFRESH_SECONDS = 2;

    /**
     * @param host the address to listen on (a name or a literal address)
     * @param port the TCP port, 0 for any free one (see {@link #port()})
     * @param servedModelName the name clients give as {@code model}, listed by {@code /v1/models}
     * @param chatMaxTokens {@code max_tokens} of a chat request that gives none, ≥ 1 (completions follow OpenAI: 16)
     * @param idleTimeout how long a connection may stay silent (no request, or a client not reading its stream)
     */
    public record Options(String host, int port, String servedModelName, int chatMaxTokens, Duration idleTimeout) {
        public Options {
            Objects.requireNonNull(host, "host");
            if (port < 0 || port > 65535) throw new IllegalArgumentException("port must be in [0, 65535], got " + port);
            if (servedModelName == null || servedModelName.isBlank())
                throw new IllegalArgumentException("servedModelName is empty");
            if (chatMaxTokens < 1)
                throw new IllegalArgumentException("chatMaxTokens must be ≥ 1, got " + chatMaxTokens);
            if (idleTimeout.isNegative() || idleTimeout.isZero())
                throw new IllegalArgumentException("idleTimeout must be positive, got " + idleTimeout);
        }

        /** 127.0.0.1:8000, chat answers of at most 512 tokens by default, 5 minutes of silence per connection. */
        public static Options defaults(String servedModelName) {
            return new Options("127.0.0.1", 8000, servedModelName, 512, Duration.ofMinutes(5));
        }

        public Options withHost(String host) {
            return new Options(host, port, servedModelName, chatMaxTokens, idleTimeout);
        }

        public Options withPort(int port) {
            return new Options(host, port, servedModelName, chatMaxTokens, idleTimeout);
        }

        public Options withChatMaxTokens(int chatMaxTokens) {
            return new Options(host, port, servedModelName, chatMaxTokens, idleTimeout);
        }

        public Options withIdleTimeout(Duration idleTimeout) {
            return new Options(host, port, servedModelName, chatMaxTokens, idleTimeout);
        }
    }

    private static final System.Logger LOG = System.getLogger(OpenAiServer.class.getName());
    private static final ObjectMapper JSON = JsonMapper.builder()
            .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION)
            .build();
    private static final byte[] DATA = "data: ".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] EVENT_END = "\n\n".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] DONE = "data: [DONE]\n\n".getBytes(StandardCharsets.US_ASCII);

    private final Engine engine;
    private final Options options;
    private final ChatTemplate chatTemplate;
    private final RequestParser parser;
    private final long created = System.currentTimeMillis() / 1000;
    private final Server server;
    private final ServerConnector connector;
    private final int port;
    private final AtomicBoolean closing = new AtomicBoolean();
    private final CountDownLatch stopped = new CountDownLatch(1);
    private final Recorder dashboard;
    private final Thread sampler;

    /**
     * Starts listening; requests are served from now on.
     *
     * @throws UncheckedIOException if the address cannot be bound (the port is taken, for instance)
     */
    public OpenAiServer(Engine engine, Options options) {
        this.engine = Objects.requireNonNull(engine, "engine");
        this.options = Objects.requireNonNull(options, "options");
        Tokenizer tokenizer = engine.tokenizer();
        chatTemplate = tokenizer == null ? null : chatTemplate(tokenizer);
        parser = new RequestParser(
                options.servedModelName(),
                tokenizer,
                chatTemplate,
                engine.model().vocabSize(),
                engine.model().maxPositions(),
                options.chatMaxTokens());

        dashboard = new Recorder("moe4j serve: " + options.servedModelName(), Recorder.DEFAULT_CAPACITY);
        sampler = Thread.ofVirtual().name("moe4j-dashboard-sampler").unstarted(this::sample);

        QueuedThreadPool threads = new QueuedThreadPool();
        threads.setName("moe4j-http");
        threads.setVirtualThreadsExecutor(VirtualThreads.getNamedVirtualThreadsExecutor("moe4j-request-"));
        server = jetty(threads);
        connector = new ServerConnector(server, http());
        connector.setHost(options.host());
        connector.setPort(options.port());
        connector.setIdleTimeout(options.idleTimeout().toMillis());
        server.addConnector(connector);
        server.setHandler(new GracefulHandler(new Api()));
        server.setErrorHandler(new JsonErrors());
        server.setStopTimeout(5_000); // what handlers get to write their last bytes once the engine has ended
        try {
            server.start();
        } catch (IOException e) {
            stopQuietly(e);
            throw new UncheckedIOException(
                    "cannot listen on " + options.host() + ":" + options.port() + ": " + e.getMessage(), e);
        } catch (Exception e) {
            stopQuietly(e);
            throw new IllegalStateException("the HTTP server did not start: " + e.getMessage(), e);
        }
        port = connector.getLocalPort();
        sampler.start();
    }

    /**
     * The Jetty server on these threads, with buffers that are never reused. Jetty 12.1 writes the error answer to a bad
     * request (a request line longer than the header buffer: 414) on another thread while the thread that parsed it
     * still holds its request buffer, and the end of that answer reads the connection again on a third thread, which
     * may take the same buffer. When the parsing thread returns it to the pool while the third thread is reading into
     * it, the rest of the bad request lands in a pooled buffer that another connection takes next: an answer to a later
     * request began with the tail of an earlier request line ({@code ./moe4j fuzz http}, once, on a loaded machine;
     * JettyBuffersTest forces the interleaving). A buffer that is not pooled carries nothing to another connection, and
     * allocating one costs nothing beside a model's step.
     */
    static Server jetty(ThreadPool threads) {
        return new Server(threads, null, new ByteBufferPool.NonPooling());
    }

    /**
     * HTTP/1.1 with Jetty's defaults, but heap buffers: unpooled direct buffers would be freed only when the garbage
     * collector finds them.
     */
    static HttpConnectionFactory http() {
        HttpConfiguration config = new HttpConfiguration();
        config.setUseInputDirectByteBuffers(false);
        config.setUseOutputDirectByteBuffers(false);
        return new HttpConnectionFactory(config);
    }

    /** The dashboard's sampler: the engine's metrics every {@link #DASHBOARD_SAMPLE_SECONDS} until shutdown. */
    private void sample() {
        while (!closing.get()) {
            dashboard.sample(engine.metrics());
            try {
                Thread.sleep(DASHBOARD_SAMPLE_SECONDS * 1000L);
            } catch (InterruptedException e) {
                return;
            }
        }
    }

    /** The {@code /dashboard} page now: the engine's history and its state, reloading itself. */
    private String dashboardPage() {
        EngineMetrics m = engine.metrics();
        dashboard.facts(List.of(
                "model " + options.servedModelName() + ": " + engine.model(),
                String.format(
                        "up %.0f s; requests: %d running, %d waiting, %d finished (%d cancelled), %d failed, %d"
                                + " rejected; %d engine steps",
                        dashboard.seconds(),
                        m.running(),
                        m.queued(),
                        m.finished(),
                        m.cancelled(),
                        m.failed(),
                        m.rejected(),
                        m.steps()),
                String.format(
                        "tokens: %d prompt, %d generated; KV cache: %d of %d blocks in use; %d live rebalances",
                        m.promptTokens(),
                        m.generatedTokens(),
                        m.cacheBlocksUsed(),
                        m.cacheBlocksTotal(),
                        m.rebalances())));
        return Dashboard.html(dashboard.data(), DASHBOARD_REFRESH_SECONDS);
    }

    /** The tokenizer's chat template, or null when its tokenizer_config.json has none (chat is then refused). */
    private static ChatTemplate chatTemplate(Tokenizer tokenizer) {
        try {
            return ChatTemplate.from(tokenizer);
        } catch (IllegalArgumentException noTemplate) {
            return null;
        }
    }

    /** Whether {@code /v1/chat/completions} serves: the model has a tokenizer with a chat template. */
    public boolean servesChat() {
        return chatTemplate != null;
    }

    /** The port the server listens on (the one chosen when {@link Options#port()} was 0), also after shutdown. */
    public int port() {
        return port;
    }

    public Options options() {
        return options;
    }

    /** The engine this server drives. */
    public Engine engine() {
        return engine;
    }

    /**
     * Stops the server: it stops accepting connections, answers new requests on open connections with 503, lets the
     * requests in flight finish for at most {@code grace} (then cancels them: a stream ends with an error event, a
     * whole answer is a 503), ends the engine and closes the connections. Returns when all of that is done.
     * Idempotent; a second call returns at once.
     *
     * @throws InterruptedException if interrupted while waiting for the engine (the shutdown goes on)
     */
    public void shutdown(Duration grace) throws InterruptedException {
        Objects.requireNonNull(grace, "grace");
        if (!closing.compareAndSet(false, true)) return;
        try {
            sampler.interrupt();
            connector.shutdown(); // closes the listening socket: no new connections
            engine.shutdown(grace);
            server.stop();
        } catch (InterruptedException | RuntimeException e) {
            throw e;
        } catch (Exception e) {
            throw new IllegalStateException("the HTTP server did not stop cleanly: " + e.getMessage(), e);
        } finally {
            stopped.countDown();
        }
    }

    /**
     * Waits until a {@link #shutdown} has finished.
     *
     * @throws InterruptedException if interrupted while waiting
     */
    public void awaitShutdown() throws InterruptedException {
        stopped.await();
    }

    /** {@link #shutdown} with no grace. */
    @Override
    public void close() {
        try {
            shutdown(Duration.ZERO);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private void stopQuietly(Exception cause) {
        try {
            server.stop();
        } catch (Exception e) {
            cause.addSuppressed(e);
        }
    }

    // ---------------------------------------------------------------- the handler

    /** Every request, on a virtual thread of its own: blocking reads, writes and waits are fine. */
    private final class Api extends Handler.Abstract {
        @Override
        public boolean handle(Request request, Response response, Callback callback) throws Exception {
            String path = Request.getPathInContext(request);
            try {
                switch (path) {
                    case "/v1/completions" -> {
                        expect(request, response, "POST");
                        generate(request, response, callback, false);
                    }
                    case "/v1/chat/completions" -> {
                        expect(request, response, "POST");
                        generate(request, response, callback, true);
                    }
                    case "/v1/models" -> {
                        expect(request, response, "GET");
                        ObjectNode model = JSON.createObjectNode()
                                .put("id", options.servedModelName())
                                .put("object", "model")
                                .put("created", created)
                                .put("owned_by", "moe4j")
                                .put("max_model_len", engine.model().maxPositions());
                        ObjectNode list = JSON.createObjectNode().put("object", "list");
                        list.putArray("data").add(model);
                        writeJson(response, 200, list, callback);
                    }
                    case "/health" -> {
                        expect(request, response, "GET");
                        boolean up = !closing.get() && engine.accepting();
                        EngineMetrics m = engine.metrics();
                        writeJson(
                                response,
                                up ? 200 : 503,
                                JSON.createObjectNode()
                                        .put("status", up ? "ok" : "shutting down")
                                        .put("model", options.servedModelName())
                                        .put("running", m.running())
                                        .put("queued", m.queued())
                                        .put("kv_blocks_used", m.cacheBlocksUsed())
                                        .put("kv_blocks_total", m.cacheBlocksTotal())
                                        .put("failed_requests", m.failed()),
                                callback);
                    }
                    case "/metrics" -> {
                        expect(request, response, "GET");
                        response.getHeaders().put(HttpHeader.CONTENT_TYPE, PrometheusText.CONTENT_TYPE);
                        byte[] text = PrometheusText.of(engine.metrics()).getBytes(StandardCharsets.UTF_8);
                        response.write(true, ByteBuffer.wrap(text), callback);
                    }
                    case "/dashboard" -> {
                        expect(request, response, "GET");
                        response.getHeaders().put(HttpHeader.CONTENT_TYPE, "text/html; charset=utf-8");
                        byte[] page = dashboardPage().getBytes(StandardCharsets.UTF_8);
                        response.write(true, ByteBuffer.wrap(page), callback);
                    }
                    default ->
                        throw new ApiException(
                                404,
                                "invalid_request_error",
                                null,
                                "invalid URL (" + request.getMethod() + " " + path + ")");
                }
            } catch (ApiException e) {
                if (e.status >= 500) LOG.log(System.Logger.Level.ERROR, path + ": " + e.getMessage(), e.getCause());
                writeJson(response, e.status, Responses.error(e.type, e.param, e.getMessage()), callback);
            } catch (RuntimeException e) {
                // a bug: say so in the API's shape while the answer has not begun, and in the log
                LOG.log(System.Logger.Level.ERROR, path + " failed", e);
                if (response.isCommitted()) throw e;
                writeJson(response, 500, Responses.error("server_error", null, e.toString()), callback);
            }
            return true;
        }
    }

    /**
     * The errors Jetty answers itself, before the API sees a request (a malformed URI or header, a request line too
     * long, an ambiguous path): OpenAI error objects too, for every method, instead of Jetty's HTML page.
     */
    private static final class JsonErrors extends ErrorHandler {
        @Override
        public boolean errorPageForMethod(String method) {
            return true;
        }

        @Override
        protected void generateResponse(
                Request request, Response response, int code, String message, Throwable cause, Callback callback) {
            response.getHeaders().put(HttpHeader.CONTENT_TYPE, "application/json");
            response.write(true, ByteBuffer.wrap(errorBody(code, message)), callback);
        }

        private static byte[] errorBody(int status, String message) {
            String text = message == null || message.isBlank() ? HttpStatus.getMessage(status) : message;
            String type = status >= 500 ? "server_error" : "invalid_request_error";
            return bytes(Responses.error(type, null, "HTTP " + status + ": " + text));
        }
    }

    private static void expect(Request request, Response response, String method) {
        if (request.getMethod().equals(method)) return;
        response.getHeaders().put(HttpHeader.ALLOW, method);
        throw new ApiException(
                405,
                "invalid_request_error",
                null,
                request.getMethod() + " is not allowed on " + Request.getPathInContext(request) + "; use " + method);
    }

    private void generate(Request request, Response response, Callback callback, boolean chat) throws Exception {
        JsonNode body = readJson(request);
        GenerationRequest g = chat ? parser.chat(body) : parser.completion(body);
        Submission submission = submit(g);
        // waiting for the engine (queued, a long answer, a stream held back) is not idleness: no idle timeout fails
        // the request then; a write that stalls (a client not reading) still fails after it, as Jetty asks no
        // listener while a write is pending
        request.addIdleTimeoutListener(timeout -> false);
        // a client that goes away cancels its request: Jetty reports it here, or a write fails (streams)
        AtomicReference<Throwable> gone = new AtomicReference<>();
        request.addFailureListener(failure -> {
            gone.compareAndSet(null, failure);
            submission.cancel();
        });
        String id = (chat ? "chatcmpl-" : "cmpl-")
                + HexFormat.of().toHexDigits(ThreadLocalRandom.current().nextLong());
        Responses answer =
                new Responses(id, System.currentTimeMillis() / 1000, options.servedModelName(), g, engine.tokenizer());
        if (g.stream()) stream(submission, answer, g, response, callback, gone);
        else whole(submission, answer, request, response, callback, gone);
    }

    private static JsonNode readJson(Request request) throws IOException {
        byte[] bytes;
        try (InputStream in = Content.Source.asInputStream(request)) {
            bytes = in.readNBytes(MAX_BODY_BYTES + 1);
        }
        if (bytes.length > MAX_BODY_BYTES)
            throw new ApiException(
                    413, "invalid_request_error", null, "the request body is larger than " + MAX_BODY_BYTES + " bytes");
        try {
            return JSON.readTree(bytes);
        } catch (JsonProcessingException e) {
            throw ApiException.invalid(null, "the body is not valid JSON: " + e.getOriginalMessage());
        }
    }

    private Submission submit(GenerationRequest g) {
        try {
            return engine.submit(g.request(), g.stream());
        } catch (Engine.RejectedException e) {
            throw switch (e.reason()) {
                case QUEUE_FULL -> new ApiException(429, "rate_limit_exceeded", null, e.getMessage());
                case TOO_LARGE ->
                    ApiException.invalid(
                            g.maxTokensParam(),
                            g.maxTokensParam() + " = " + g.request().maxNewTokens()
                                    + " is too many for this prompt and the KV cache: " + e.getMessage());
                case SHUT_DOWN -> new ApiException(503, "service_unavailable", null, e.getMessage());
            };
        } catch (IllegalArgumentException e) {
            throw ApiException.invalid(g.promptParam(), e.getMessage());
        }
    }

    private void whole(
            Submission submission,
            Responses answer,
            Request request,
            Response response,
            Callback callback,
            AtomicReference<Throwable> gone)
            throws InterruptedException {
        Result result;
        try {
            result = awaitWhole(submission, request, response, gone);
        } catch (ExecutionException e) {
            throw new ApiException(
                    500,
                    "server_error",
                    null,
                    "the model failed: " + e.getCause().getMessage(),
                    e);
        }
        if (result.finishReason() == Result.FinishReason.CANCELLED) {
            if (gone.get() != null) {
                callback.failed(gone.get());
                return;
            }
            throw shutDown(result);
        }
        writeJson(response, 200, answer.complete(result, submission.promptTokens()), callback);
    }

    /**
     * Waits for a whole answer while watching the connection. HTTP/1.1 gives no notice of a client that closes its
     * connection while the server is not reading, and Jetty stops reading once the request body is consumed; a client
     * waiting for a whole answer sends nothing meanwhile (RFC 9112 9.3.2: no pipelining after a POST). So every {@link
     * #HANG_UP_PROBE_MILLIS} the connection is read here: end of stream (or a failed read) means the client has gone,
     * and its request is cancelled. Bytes instead mean a client pipelining anyway: they cannot be handed back to Jetty,
     * so the answer closes the connection (the client resends what it pipelined) and the watching stops.
     */
    private static Result awaitWhole(
            Submission submission, Request request, Response response, AtomicReference<Throwable> gone)
            throws InterruptedException, ExecutionException {
        EndPoint endPoint = request.getConnectionMetaData().getConnection().getEndPoint();
        ByteBuffer probe = BufferUtil.allocate(1);
        // Only an HTTP/1 connection carries nothing but this request now (HTTP/2 multiplexes: reading would take
        // another stream's frames); this server's connector speaks HTTP/1.1 only.
        boolean watching = request.getConnectionMetaData().getHttpVersion().getVersion() < 20;
        while (true) {
            Result result = null;
            try {
                result = submission.result().get(HANG_UP_PROBE_MILLIS, TimeUnit.MILLISECONDS);
            } catch (TimeoutException e) {
                // not yet: probe the connection below
            }
            // The connection is probed once more when the answer is ready: bytes that came in meanwhile are a
            // pipelined request whatever the timer's phase, so the close does not hinge on which came first.
            if (watching && gone.get() == null && !endPoint.isFillInterested()) { // else Jetty reads itself
                int read;
                try {
                    BufferUtil.clear(probe);
                    read = endPoint.fill(probe);
                } catch (IOException failure) {
                    read = -1;
                }
                if (read < 0) {
                    gone.compareAndSet(null, new EofException("the client closed its connection"));
                    if (result == null) submission.cancel();
                } else if (read > 0) {
                    response.getHeaders().put(HttpHeader.CONNECTION, "close");
                    watching = false;
                }
            }
            if (result != null) return result;
        }
    }

    private static ApiException shutDown(Result result) {
        return new ApiException(
                503,
                "service_unavailable",
                null,
                "the server is shutting down; the request was cancelled after " + result.completionTokens()
                        + " tokens");
    }

    private void stream(
            Submission submission,
            Responses answer,
            GenerationRequest g,
            Response response,
            Callback callback,
            AtomicReference<Throwable> gone)
            throws InterruptedException {
        response.setStatus(200);
        response.getHeaders().put(HttpHeader.CONTENT_TYPE, "text/event-stream; charset=utf-8");
        response.getHeaders().put(HttpHeader.CACHE_CONTROL, "no-cache");
        try {
            if (g.chat()) send(response, answer.roleChunk());
            while (true) {
                Submission.Event event = submission.next(1, TimeUnit.MINUTES);
                switch (event) {
                    case null -> {} // a request held back or waiting for admission: keep waiting
                    case Submission.Event.Token t -> send(response, answer.tokenChunk(t.choice(), t.text()));
                    case Submission.Event.Finished f -> {
                        Result r = f.result();
                        if (r.finishReason() == Result.FinishReason.CANCELLED) {
                            if (gone.get() != null) {
                                callback.failed(gone.get());
                                return;
                            }
                            ApiException e = shutDown(r);
                            send(response, Responses.error(e.type, null, e.getMessage()));
                        } else {
                            send(response, answer.finishChunk(r.finishReason()));
                            if (g.includeUsage())
                                send(response, answer.usageChunk(submission.promptTokens(), r.completionTokens()));
                        }
                        response.write(true, ByteBuffer.wrap(DONE), callback);
                        return;
                    }
                    case Submission.Event.Failed f -> {
                        LOG.log(System.Logger.Level.ERROR, "the model failed on a streamed request", f.error());
                        send(
                                response,
                                Responses.error(
                                        "server_error",
                                        null,
                                        "the model failed: " + f.error().getMessage()));
                        response.write(true, ByteBuffer.wrap(DONE), callback);
                        return;
                    }
                }
            }
        } catch (IOException e) {
            // the client hung up (or stopped reading past the idle timeout): free its cache blocks
            submission.cancel();
            callback.failed(e);
        }
    }

    /** Writes one server-sent event and waits until it is written. */
    private static void send(Response response, JsonNode data) throws IOException {
        byte[] json = bytes(data);
        ByteBuffer event = ByteBuffer.allocate(json.length + 8)
                .put(DATA)
                .put(json)
                .put(EVENT_END)
                .flip();
        try (Blocker.Callback written = Blocker.callback()) {
            response.write(false, event, written);
            written.block();
        }
    }

    private static void writeJson(Response response, int status, JsonNode body, Callback callback) {
        response.setStatus(status);
        response.getHeaders().put(HttpHeader.CONTENT_TYPE, "application/json");
        response.write(true, ByteBuffer.wrap(bytes(body)), callback);
    }

    private static byte[] bytes(JsonNode node) {
        try {
            return JSON.writeValueAsBytes(node);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("a JSON tree did not serialize: " + e.getMessage(), e); // plain nodes only
        }
    }
}
