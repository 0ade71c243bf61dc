package dev.moe4j.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.cli.ModelLoading;
import dev.moe4j.cli.Options;
import dev.moe4j.engine.Engine;
import dev.moe4j.engine.Model;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;

/**
 * {@code bench serve}: a bounded load generator over real HTTP. {@code --clients} clients each send one streaming
 * completion at a time (random token-id prompts, greedy or sampled at {@code --temperature} with a seed per request,
 * {@code max_tokens} new tokens) until {@code --requests} have
 * been sent, and the run reports throughput (requests/s, generated tokens/s over all clients), time to first token and
 * time per output token (p50/p90/p99, measured at the client from the chunks) and errors. Every {@code --long-every}-th
 * request may carry a long prompt; TPOT is then reported over the short requests, which shows what chunked prefill
 * does to decoding. With {@code --baseline} the same run first measures one client (for the aggregate speed-up) and,
 * when long prompts are mixed in, the same clients without them (decode-only TPOT).
 *
 * <p>Without {@code --url} the server runs in this process on a loopback port, over the model {@code --model} names.
 */
final class ServeBenchmark {
    private ServeBenchmark() {}

    static final String USAGE = "bench serve (--model DIR | --url URL) --clients N --requests M [--prompt-tokens P"
            + " --max-tokens T --long-prompt-tokens L --long-every K --baseline --vocab V --seed S --json]";

    private static final ObjectMapper JSON = new ObjectMapper();

    /** What the clients send. */
    record Load(
            String model,
            int vocab,
            int promptTokens,
            int maxTokens,
            int longPromptTokens,
            int longEvery,
            double temperature,
            long seed) {
        boolean isLong(int request) {
            return longEvery > 0 && (request + 1) % longEvery == 0;
        }

        Load decodeOnly() {
            return new Load(model, vocab, promptTokens, maxTokens, longPromptTokens, 0, temperature, seed);
        }

        Load withMaxTokens(int maxTokens) {
            return new Load(model, vocab, promptTokens, maxTokens, longPromptTokens, longEvery, temperature, seed);
        }
    }

    /** One request as the client saw it; times in nanoseconds, first/last token -1 when none came. */
    record Sample(boolean longPrompt, long sent, long firstToken, long lastToken, int tokens, String error) {}

    /** Percentiles in milliseconds; NaN when there were no samples. */
    record Percentiles(int count, double p50, double p90, double p99) {
        static Percentiles of(List<Double> values) {
            double[] v =
                    values.stream().mapToDouble(Double::doubleValue).sorted().toArray();
            if (v.length == 0) return new Percentiles(0, Double.NaN, Double.NaN, Double.NaN);
            return new Percentiles(v.length, rank(v, 0.50), rank(v, 0.90), rank(v, 0.99));
        }

        private static double rank(double[] sorted, double q) {
            return sorted[Math.min(sorted.length - 1, (int) Math.ceil(q * sorted.length) - 1)];
        }

        ObjectNode json() {
            return JSON.createObjectNode().put("p50", p50).put("p90", p90).put("p99", p99);
        }

        String text() {
            return String.format("%7.1f %7.1f %7.1f", p50, p90, p99);
        }
    }

    /** One run of the load. */
    record Pass(
            String name,
            int clients,
            int requests,
            int errors,
            double seconds,
            long tokens,
            Percentiles ttft,
            Percentiles tpot,
            Percentiles longTtft,
            List<String> firstErrors) {
        double requestsPerSecond() {
            return (requests - errors) / seconds;
        }

        double tokensPerSecond() {
            return tokens / seconds;
        }
    }

    static int run(String[] args) throws InterruptedException {
        Set<String> valued = new HashSet<>(ModelLoading.VALUED);
        valued.addAll(Set.of(
                "--url",
                "--clients",
                "--requests",
                "--prompt-tokens",
                "--max-tokens",
                "--long-prompt-tokens",
                "--long-every",
                "--vocab",
                "--seed",
                "--temperature",
                "--max-batch-tokens",
                "--max-queue"));
        Set<String> flags = new HashSet<>(ModelLoading.FLAGS);
        flags.addAll(Set.of("--json", "--baseline"));
        Options o = new Options("bench serve", args, valued, flags);
        if (o.has("--url") == o.has("--model"))
            throw new IllegalArgumentException("bench serve needs exactly one of --model (a server in this process)"
                    + " and --url (a running server)");
        int clients = o.positive("--clients", 0), requests = o.positive("--requests", 0);
        if (clients == 0 || requests == 0)
            throw new IllegalArgumentException("bench serve needs --clients and --requests");
        int longEvery = o.positive("--long-every", Integer.MAX_VALUE);
        if (o.has("--long-prompt-tokens") != o.has("--long-every"))
            throw new IllegalArgumentException("--long-prompt-tokens and --long-every go together");
        HttpClient http = HttpClient.newBuilder()
                .version(HttpClient.Version.HTTP_1_1)
                .connectTimeout(Duration.ofSeconds(10))
                .build();
        Model model = null;
        OpenAiServer server = null;
        try {
            URI base;
            int vocab;
            if (o.has("--model")) {
                model = ModelLoading.load(o, 0);
                Engine engine = new Engine(model, ModelLoading.tokenizer(model.dir()), ServeCommand.engineOptions(o));
                server = new OpenAiServer(
                        engine, OpenAiServer.Options.defaults("bench").withPort(0));
                base = URI.create("http://127.0.0.1:" + server.port() + "/v1/");
                vocab = model.vocabSize();
            } else {
                base = URI.create(o.string("--url").replaceAll("/*$", "/"));
                vocab = o.positive("--vocab", 32000);
            }
            Load load = new Load(
                    servedModel(http, base),
                    vocab,
                    o.positive("--prompt-tokens", 128),
                    o.positive("--max-tokens", 64),
                    o.positive("--long-prompt-tokens", 0),
                    longEvery == Integer.MAX_VALUE ? 0 : longEvery,
                    temperature(o),
                    o.has("--seed") ? o.integer("--seed") : 1);
            Sample warmUp = send(http, base, load.withMaxTokens(Math.min(8, load.maxTokens())), -1, false);
            if (warmUp.error() != null)
                throw new IllegalStateException("the warm-up request failed: " + warmUp.error());
            List<Pass> passes = new ArrayList<>();
            if (o.has("--baseline")) {
                passes.add(pass("1 client", http, base, load.decodeOnly(), 1, Math.max(3, requests / clients)));
                if (load.longEvery() > 0)
                    passes.add(pass(
                            clients + " clients, no long prompts", http, base, load.decodeOnly(), clients, requests));
            }
            passes.add(pass(clients + (clients == 1 ? " client" : " clients"), http, base, load, clients, requests));
            if (o.has("--json")) System.out.println(json(load, passes).toPrettyString());
            else print(load, passes);
            return passes.stream().anyMatch(p -> p.errors() > 0) ? 1 : 0;
        } finally {
            if (server != null) server.close();
            if (model != null) model.close();
        }
    }

    private static String servedModel(HttpClient http, URI base) throws InterruptedException {
        HttpRequest get = HttpRequest.newBuilder(base.resolve("models")).GET().build();
        try {
            HttpResponse<String> r = http.send(get, HttpResponse.BodyHandlers.ofString());
            if (r.statusCode() != 200)
                throw new IllegalStateException("GET " + get.uri() + " answered " + r.statusCode() + ": " + r.body());
            return JSON.readTree(r.body()).path("data").path(0).path("id").asText();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot reach " + get.uri() + ": " + e.getMessage(), e);
        }
    }

    /** N clients, each sending its next request when the previous one has ended, until M are sent. */
    private static Pass pass(String name, HttpClient http, URI base, Load load, int clients, int requests)
            throws InterruptedException {
        AtomicInteger next = new AtomicInteger();
        ConcurrentLinkedQueue<Sample> samples = new ConcurrentLinkedQueue<>();
        long start = System.nanoTime();
        List<Thread> threads = new ArrayList<>();
        for (int c = 0; c < clients; c++)
            threads.add(Thread.ofVirtual().start(() -> {
                for (int i = next.getAndIncrement(); i < requests; i = next.getAndIncrement())
                    samples.add(send(http, base, load, i, load.isLong(i)));
            }));
        for (Thread t : threads) t.join();
        double seconds = (System.nanoTime() - start) / 1e9;
        List<Double> ttft = new ArrayList<>(), tpot = new ArrayList<>(), longTtft = new ArrayList<>();
        List<String> errors = new ArrayList<>();
        long tokens = 0;
        for (Sample s : samples) {
            if (s.error() != null) {
                errors.add(s.error());
                continue;
            }
            tokens += s.tokens();
            if (s.tokens() == 0) continue;
            (s.longPrompt() ? longTtft : ttft).add((s.firstToken() - s.sent()) / 1e6);
            if (!s.longPrompt() && s.tokens() > 1) tpot.add((s.lastToken() - s.firstToken()) / 1e6 / (s.tokens() - 1));
        }
        return new Pass(
                name,
                clients,
                requests,
                errors.size(),
                seconds,
                tokens,
                Percentiles.of(ttft),
                Percentiles.of(tpot),
                Percentiles.of(longTtft),
                errors.stream().distinct().limit(3).toList());
    }

    /** One streaming completion; every chunk without a finish reason is one token. */
    private static Sample send(HttpClient http, URI base, Load load, int index, boolean longPrompt) {
        SplittableRandom random = new SplittableRandom(load.seed() * 1_000_003L + index);
        ObjectNode body = JSON.createObjectNode()
                .put("model", load.model())
                .put("max_tokens", load.maxTokens())
                .put("temperature", load.temperature())
                .put("stream", true);
        if (load.temperature() > 0) body.put("seed", random.nextInt(1 << 30));
        ArrayNode prompt = body.putArray("prompt");
        for (int i = 0; i < (longPrompt ? load.longPromptTokens() : load.promptTokens()); i++)
            prompt.add(random.nextInt(load.vocab()));
        HttpRequest request = HttpRequest.newBuilder(base.resolve("completions"))
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body.toString()))
                .build();
        long sent = System.nanoTime(), first = -1, last = -1;
        int tokens = 0;
        try {
            HttpResponse<Stream<String>> response = http.send(request, HttpResponse.BodyHandlers.ofLines());
            try (Stream<String> lines = response.body()) {
                if (response.statusCode() != 200)
                    return failed(
                            longPrompt, sent, "HTTP " + response.statusCode() + ": " + String.join("", lines.toList()));
                for (Iterator<String> it = lines.iterator(); it.hasNext(); ) {
                    String line = it.next();
                    if (!line.startsWith("data: ")) continue;
                    String data = line.substring(6);
                    if (data.equals("[DONE]")) return new Sample(longPrompt, sent, first, last, tokens, null);
                    JsonNode chunk = JSON.readTree(data);
                    if (chunk.has("error"))
                        return failed(
                                longPrompt,
                                sent,
                                chunk.get("error").path("message").asText());
                    if (chunk.path("choices").path(0).path("finish_reason").isNull()) {
                        last = System.nanoTime();
                        if (tokens++ == 0) first = last;
                    }
                }
                return failed(longPrompt, sent, "the stream ended without [DONE]");
            }
        } catch (IOException e) {
            return failed(longPrompt, sent, e.toString());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return failed(longPrompt, sent, "interrupted");
        }
    }

    private static Sample failed(boolean longPrompt, long sent, String error) {
        return new Sample(longPrompt, sent, -1, -1, 0, error);
    }

    /** --temperature: 0 (greedy, the default) or a positive temperature; sampled requests get a seed each. */
    private static double temperature(Options o) {
        double t = o.number("--temperature", 0);
        if (t < 0) throw new IllegalArgumentException("--temperature must be >= 0, got " + t);
        return t;
    }

    private static void print(Load load, List<Pass> passes) {
        System.out.printf(
                "bench serve: %s, prompts of %d token ids%s, %d new tokens each, %s, streamed%n",
                load.model(),
                load.promptTokens(),
                load.longEvery() > 0 ? " (every " + load.longEvery() + "th: " + load.longPromptTokens() + ")" : "",
                load.maxTokens(),
                load.temperature() > 0 ? "sampled at temperature " + load.temperature() : "greedy");
        System.out.printf(
                "%-30s %8s %6s %8s %10s   %-23s   %-23s%s%n",
                "",
                "requests",
                "errors",
                "req/s",
                "out tok/s",
                "TTFT ms p50/p90/p99",
                "TPOT ms p50/p90/p99",
                load.longEvery() > 0 ? "   long-prompt TTFT ms p50/p90/p99" : "");
        for (Pass p : passes) {
            System.out.printf(
                    "%-30s %8d %6d %8.2f %10.1f   %s   %s%s%n",
                    p.name(),
                    p.requests(),
                    p.errors(),
                    p.requestsPerSecond(),
                    p.tokensPerSecond(),
                    p.ttft().text(),
                    p.tpot().text(),
                    p.longTtft().count() > 0 ? "   " + p.longTtft().text() : "");
            for (String e : p.firstErrors()) System.out.println("    error: " + e);
        }
        if (passes.size() >= 2)
            System.out.printf(
                    "generated tokens/s, %s over %s: %.2fx%n",
                    passes.getLast().name(), passes.getFirst().name(), speedUp(passes));
        if (passes.size() == 3)
            System.out.printf(
                    "short-request TPOT p50 with long prompts mixed in over %s: %.2fx%n",
                    passes.get(1).name(), tpotRatio(passes));
    }

    /** Generated tokens/s of the main pass (the last) over the one-client baseline's (the first); NaN without it. */
    private static double speedUp(List<Pass> passes) {
        return passes.size() < 2
                ? Double.NaN
                : passes.getLast().tokensPerSecond() / passes.getFirst().tokensPerSecond();
    }

    /** Short-request TPOT p50 of the main pass over the decode-only pass's; NaN without long prompts or baselines. */
    private static double tpotRatio(List<Pass> passes) {
        return passes.size() < 3
                ? Double.NaN
                : passes.getLast().tpot().p50() / passes.get(1).tpot().p50();
    }

    private static ObjectNode json(Load load, List<Pass> passes) {
        ObjectNode root = JSON.createObjectNode()
                .put("model", load.model())
                .put("prompt_tokens", load.promptTokens())
                .put("max_tokens", load.maxTokens())
                .put("long_prompt_tokens", load.longEvery() > 0 ? load.longPromptTokens() : 0)
                .put("long_every", load.longEvery())
                .put("temperature", load.temperature());
        ArrayNode list = root.putArray("passes");
        for (Pass p : passes) {
            ObjectNode pass = list.addObject()
                    .put("name", p.name())
                    .put("clients", p.clients())
                    .put("requests", p.requests())
                    .put("errors", p.errors())
                    .put("seconds", p.seconds())
                    .put("generated_tokens", p.tokens())
                    .put("requests_per_second", p.requestsPerSecond())
                    .put("generated_tokens_per_second", p.tokensPerSecond());
            pass.set("ttft_ms", p.ttft().json());
            pass.set("tpot_ms", p.tpot().json());
            if (p.longTtft().count() > 0)
                pass.set("long_prompt_ttft_ms", p.longTtft().json());
            ArrayNode errors = pass.putArray("first_errors");
            p.firstErrors().forEach(errors::add);
        }
        if (passes.size() >= 2) root.put("speed_up_over_one_client", speedUp(passes));
        if (passes.size() == 3) root.put("tpot_over_decode_only", tpotRatio(passes));
        return root;
    }
}
