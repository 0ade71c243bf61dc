package dev.moe4j.cli;

import dev.moe4j.model.Checkpoint;
import dev.moe4j.model.DecoderLayer;
import dev.moe4j.model.ModelConfig;
import dev.moe4j.model.PagedLatentCache;
import dev.moe4j.routing.ExpertLoad;
import dev.moe4j.routing.Routing;
import dev.moe4j.runtime.Capabilities;
import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.NativeLibrary;
import dev.moe4j.runtime.Profiler;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.Tensor;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;

/**
 * The demo: a DeepSeek-V2-Lite-shaped model (synthetic FP8 weights written by make-model, a few layers) loaded from
 * its checkpoint, then prefill of a batch of prompts and batched decode steps on the CPU. Prints tokens/s, where the
 * time went per kernel family (and in Java), and each MoE layer's expert load with MaxVio.
 *
 * <p>The model has no embeddings or LM head: each token enters as a random hidden state, so the numbers measure the
 * decoder layers, which is where a DeepSeek model spends its time.
 */
final class Demo {
    private Demo() {}

    static final String USAGE = "demo [--layers N --prompt T --batch B --decode S --model-dir DIR]";

    static int run(String[] args) {
        Options o = new Options(
                "demo", args, Set.of("--layers", "--prompt", "--batch", "--decode", "--model-dir"), Set.of());
        int layers = o.positive("--layers", 4), prompt = o.positive("--prompt", 256);
        int batch = o.positive("--batch", 4), steps = o.positive("--decode", 32);
        Path dir = Path.of(o.string("--model-dir", "build/demo-model/v2-lite-" + layers + "-layers"));
        Capabilities caps = NativeLibrary.capabilities();
        System.out.printf(
                "moe4j %s demo: native library %s, CPU path %s, %d threads%n%n",
                caps.version(), caps.library(), caps.cpuIsa().nativeName(), caps.cpuThreads());

        ModelConfig config = MakeModel.preset("--preset", "v2-lite", "--layers", String.valueOf(layers));
        ensureCheckpoint(config, dir);

        try (Checkpoint checkpoint = Checkpoint.open(dir);
                Arena arena = Arena.ofConfined();
                Context ctx = Context.create()) {
            List<DecoderLayer> model = new ArrayList<>();
            long t0 = System.nanoTime();
            for (int l = 0; l < layers; l++) {
                progress("loading layers", l, layers);
                model.add(DecoderLayer.load(checkpoint, l, false, ctx, arena));
            }
            progress("loading layers", layers, layers);
            System.out.printf(" %.1f s%n", (System.nanoTime() - t0) / 1e9);

            int hidden = config.hiddenSize(), k = config.numExpertsPerTok();
            int blocksPerSequence = (prompt + steps + 63) / 64;
            PagedLatentCache[] caches = new PagedLatentCache[layers];
            for (int l = 0; l < layers; l++)
                caches[l] = new PagedLatentCache(arena, batch * blocksPerSequence, 1, false);
            int[] sequences = new int[batch];
            for (int b = 0; b < batch; b++) {
                for (PagedLatentCache c : caches) sequences[b] = c.newSequence();
            }
            Map<Integer, ExpertLoad> load = new LinkedHashMap<>();
            for (DecoderLayer layer : model)
                if (layer.moe() != null)
                    load.put(layer.index(), new ExpertLoad(config.nRoutedExperts(), batch + steps));
            Routing routing = new Routing(k, Math.max(prompt, batch));
            SplittableRandom random = new SplittableRandom(7);

            try (Profiler profiler = Profiler.start()) {
                // prefill: each prompt through every layer
                long p0 = System.nanoTime();
                for (int b = 0; b < batch; b++) {
                    Tensor x = hiddenStates(arena, random, prompt, hidden);
                    for (DecoderLayer layer : model) {
                        progress(
                                "prefill " + batch + " x " + prompt + " tokens",
                                b * layers + layer.index(),
                                batch * layers);
                        layer.prefill(ctx, caches[layer.index()], sequences[b], x, routing, x);
                        if (layer.moe() != null) load.get(layer.index()).record(routing);
                    }
                }
                long p1 = System.nanoTime();
                progress("prefill " + batch + " x " + prompt + " tokens", 1, 1);
                System.out.printf(" %.2f s, %.0f tokens/s%n", (p1 - p0) / 1e9, batch * prompt / ((p1 - p0) / 1e9));
                Map<String, Profiler.Entry> prefillKernels = profiler.entries();
                long prefillNative = profiler.totalNanos();
                profiler.reset();

                // decode: one token per sequence per step
                long d0 = System.nanoTime();
                for (int s = 0; s < steps; s++) {
                    progress("decode " + steps + " steps, batch " + batch, s, steps);
                    Tensor x = hiddenStates(arena, random, batch, hidden);
                    for (DecoderLayer layer : model) {
                        layer.decode(ctx, caches[layer.index()], sequences, x, routing, x);
                        if (layer.moe() != null) load.get(layer.index()).record(routing);
                    }
                }
                long d1 = System.nanoTime();
                progress("decode " + steps + " steps, batch " + batch, 1, 1);
                System.out.printf(
                        " %.2f s, %.1f ms/step, %.0f tokens/s%n%n",
                        (d1 - d0) / 1e9, (d1 - d0) / 1e6 / steps, batch * steps / ((d1 - d0) / 1e9));

                timeShare("prefill", prefillKernels, prefillNative, p1 - p0);
                timeShare("decode", profiler.entries(), profiler.totalNanos(), d1 - d0);
            }
            loadReport(load, config.nRoutedExperts());
        }
        return 0;
    }

    /** Writes the synthetic checkpoint unless dir already holds one with this config. */
    private static void ensureCheckpoint(ModelConfig config, Path dir) {
        try {
            Path json = dir.resolve("config.json");
            if (Files.exists(json)
                    && Files.exists(dir.resolve(Checkpoint.INDEX))
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
        System.out.printf("written in %.1f s%n", (System.nanoTime() - t0) / 1e9);
    }

    private static Tensor hiddenStates(Arena arena, SplittableRandom random, int tokens, int hidden) {
        float[] v = new float[tokens * hidden];
        for (int i = 0; i < v.length; i++) v[i] = (float) random.nextGaussian();
        return Tensor.fromFloats(arena, DType.F32, v, tokens, hidden);
    }

    private static void timeShare(String phase, Map<String, Profiler.Entry> kernels, long nativeNanos, long wallNanos) {
        System.out.printf("time share, %s (%.2f s wall):%n", phase, wallNanos / 1e9);
        Map<String, Long> families = new LinkedHashMap<>();
        kernels.forEach((fn, e) -> families.merge(family(fn), e.nanos(), Long::sum));
        families.put("Java (routing selection, norms, RoPE, gather/combine)", wallNanos - nativeNanos);
        families.entrySet().stream()
                .sorted((a, b) -> Long.compare(b.getValue(), a.getValue()))
                .forEach(e -> System.out.printf(
                        "  %-56s %6.1f%%  %8.1f ms%n",
                        e.getKey(), 100.0 * e.getValue() / wallNanos, e.getValue() / 1e6));
        System.out.println();
    }

    private static String family(String function) {
        return switch (function) {
            case "moe4j_fp8_expert_ffn_contiguous" -> "expert FFN, routed + shared (FP8, fused)";
            case "moe4j_fp8_gemm_nt" -> "FP8 GEMM (attention projections)";
            case "moe4j_gemm_nt" -> "BF16 GEMM (gate, per-head absorption)";
            case "moe4j_mla_decode" -> "MLA attention over the latent cache";
            case "moe4j_quantize_fp8_per_token", "moe4j_quantize_fp8_per_block" -> "FP8 quantization of activations";
            case "moe4j_mla_cache_append" -> "latent cache append";
            default -> function;
        };
    }

    private static void loadReport(Map<Integer, ExpertLoad> load, int experts) {
        System.out.println("expert load (tokens routed to each expert, all steps):");
        for (var e : load.entrySet()) {
            long[] counts = e.getValue().window();
            System.out.printf(
                    "  layer %d: MaxVio %.2f (max %d, mean %.1f)%n",
                    e.getKey(),
                    ExpertLoad.maxVio(counts),
                    java.util.Arrays.stream(counts).max().orElse(0),
                    java.util.Arrays.stream(counts).average().orElse(0));
        }
        var first = load.entrySet().stream().findFirst();
        if (first.isEmpty()) return;
        long[] counts = first.get().getValue().window();
        long max = Math.max(1, java.util.Arrays.stream(counts).max().orElse(1));
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
