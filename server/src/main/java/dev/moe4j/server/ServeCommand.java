package dev.moe4j.server;

import dev.moe4j.cli.ModelLoading;
import dev.moe4j.cli.Options;
import dev.moe4j.engine.Engine;
import dev.moe4j.engine.Model;
import dev.moe4j.tokenizer.Tokenizer;
import java.time.Duration;
import java.util.HashSet;
import java.util.Set;

/**
 * {@code serve}: loads a checkpoint and serves it over HTTP ({@link OpenAiServer}) until SIGTERM or SIGINT, which stop
 * it gracefully: no new connections, requests in flight finish within {@code --grace-seconds} or are cancelled, then
 * the process exits 0.
 */
final class ServeCommand {
    private ServeCommand() {}

    static final String USAGE = "serve --model DIR [--host H --port P --max-batch-tokens N --max-queue N"
            + " --served-model-name NAME --grace-seconds S --default-max-tokens N] [model options as for generate]";

    static int run(String[] args) throws InterruptedException {
        Set<String> valued = new HashSet<>(ModelLoading.VALUED);
        valued.addAll(Set.of(
                "--host",
                "--port",
                "--max-batch-tokens",
                "--max-queue",
                "--served-model-name",
                "--grace-seconds",
                "--default-max-tokens"));
        Options o = new Options("serve", args, valued, ModelLoading.FLAGS);
        Engine.Options engineOptions = engineOptions(o);
        double graceSeconds = o.number("--grace-seconds", 10);
        if (graceSeconds < 0)
            throw new IllegalArgumentException("--grace-seconds must be ≥ 0, got " + o.string("--grace-seconds"));
        Duration grace = Duration.ofMillis(Math.round(graceSeconds * 1000));
        int port = o.has("--port") ? o.integer("--port") : 8000;

        Model model = ModelLoading.load(o, 0);
        Tokenizer tokenizer = ModelLoading.tokenizer(model.dir());
        Engine engine = new Engine(model, tokenizer, engineOptions);
        OpenAiServer server;
        try {
            String name =
                    o.string("--served-model-name", model.dir().getFileName().toString());
            server = new OpenAiServer(
                    engine,
                    OpenAiServer.Options.defaults(name)
                            .withHost(o.string("--host", "127.0.0.1"))
                            .withPort(port)
                            .withChatMaxTokens(o.positive("--default-max-tokens", 512)));
        } catch (RuntimeException e) {
            engine.close();
            model.close();
            throw e;
        }
        Runtime.getRuntime()
                .addShutdownHook(
                        Thread.ofPlatform().name("moe4j-serve-shutdown").unstarted(() -> stop(server, model, grace)));
        System.out.printf(
                "moe4j serve: %s at http://%s:%d/v1 (%s; queue %d, %d tokens per step)%n",
                server.options().servedModelName(),
                server.options().host(),
                server.port(),
                server.servesChat()
                        ? "completions and chat"
                        : "completions only: " + (tokenizer == null ? "no tokenizer.json" : "no chat template"),
                engineOptions.maxQueue(),
                engineOptions.maxBatchTokens());
        System.out.flush();
        server.awaitShutdown();
        return 0;
    }

    static Engine.Options engineOptions(Options o) {
        Engine.Options e = Engine.Options.defaults();
        e = e.withMaxBatchTokens(o.positive("--max-batch-tokens", e.maxBatchTokens()));
        if (o.has("--max-queue")) e = e.withMaxQueue(o.integer("--max-queue"));
        return e;
    }

    /** The shutdown hook: SIGTERM or SIGINT, or the JVM exiting otherwise. */
    private static void stop(OpenAiServer server, Model model, Duration grace) {
        System.err.printf("moe4j serve: stopping (requests in flight get %.1f s)%n", grace.toMillis() / 1e3);
        int status = 0;
        try {
            server.shutdown(grace);
            model.close();
            System.err.println("moe4j serve: stopped");
        } catch (InterruptedException | RuntimeException e) {
            System.err.println("moe4j serve: the shutdown failed: " + e);
            status = 1;
        }
        // a JVM ended by a signal exits 128 + its number even when every hook succeeded; the server did stop as asked
        Runtime.getRuntime().halt(status);
    }
}
