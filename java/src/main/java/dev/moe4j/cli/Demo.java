package dev.moe4j.cli;

import dev.moe4j.model.Checkpoint;
import dev.moe4j.model.DecoderLayer;
import dev.moe4j.model.ModelConfig;
import dev.moe4j.model.MoeLayer;
import dev.moe4j.model.PagedLatentCache;
import dev.moe4j.parallel.DeviceGroup;
import dev.moe4j.parallel.ExpertParallelMoe;
import dev.moe4j.parallel.LiveBalancer;
import dev.moe4j.placement.Eplb;
import dev.moe4j.placement.Placement;
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
import java.util.Arrays;
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

    static final String USAGE =
            "demo [--layers N --prompt T --batch B --decode S --devices D --rebalance-every K --model-dir DIR]";

    static int run(String[] args) {
        Options o = new Options(
                "demo",
                args,
                Set.of("--layers", "--prompt", "--batch", "--decode", "--devices", "--rebalance-every", "--model-dir"),
                Set.of());
        int layers = o.positive("--layers", 4), prompt = o.positive("--prompt", 256);
        int batch = o.positive("--batch", 4), steps = o.positive("--decode", 32);
        int devices = o.positive("--devices", 4), rebalanceEvery = o.positive("--rebalance-every", 16);
        Path dir = Path.of(o.string("--model-dir", "build/demo-model/v2-lite-" + layers + "-layers"));
        Capabilities caps = NativeLibrary.capabilities();
        System.out.printf(
                "moe4j %s demo: native library %s, CPU path %s, %d threads%n%n",
                caps.version(), caps.library(), caps.cpuIsa().nativeName(), caps.cpuThreads());

        ModelConfig config = MakeModel.preset("--preset", "v2-lite", "--layers", String.valueOf(layers));
        ensureCheckpoint(config, dir);

        try (Checkpoint checkpoint = Checkpoint.open(dir);
                Arena arena = Arena.ofConfined();
                Context ctx = Context.create();
                DeviceGroup group = DeviceGroup.cpu(devices, 1)) {
            List<DecoderLayer> model = new ArrayList<>();
            long t0 = System.nanoTime();
            for (int l = 0; l < layers; l++) {
                progress("loading layers", l, layers);
                model.add(DecoderLayer.load(checkpoint, l, false, ctx, arena));
            }
            progress("loading layers", layers, layers);
            System.out.printf(" %.1f s%n", (System.nanoTime() - t0) / 1e9);

            // each MoE layer's experts spread over the devices, 25% redundant slots, rebalanced from observed load
            int replicas = (config.nRoutedExperts() * 5 / 4 + devices - 1) / devices * devices;
            Map<Integer, ExpertParallelMoe> parallel = new LinkedHashMap<>();
            Map<Integer, LiveBalancer> balancers = new LinkedHashMap<>();
            for (int l = 0; l < layers; l++) {
                if (!(model.get(l).moe() instanceof MoeLayer local)) continue;
                Placement start = Eplb.rebalance(new double[1][config.nRoutedExperts()], replicas, 1, 1, devices);
                ExpertParallelMoe moe = new ExpertParallelMoe(
                        group,
                        local.gate(),
                        local.expertGate(),
                        local.expertUp(),
                        local.expertDown(),
                        local.shared(),
                        start,
                        0,
                        1);
                parallel.put(l, moe);
                balancers.put(l, new LiveBalancer(moe, 64, rebalanceEvery, 1, 1, Eplb.Policy.REFINED, true));
                model.set(l, model.get(l).withMoe(moe));
            }
            System.out.printf(
                    "%s; %d expert slots per MoE layer (%d experts), refined EPLB with minimal moves every"
                            + " %d steps%n",
                    group, replicas, config.nRoutedExperts(), rebalanceEvery);
            List<LiveBalancer.Report> rebalances = new ArrayList<>();
            long[] waitNanos = new long[2]; // [0] waiting for devices, [1] live rebalancing

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
                        afterMoe(layer, routing, load, parallel, balancers, rebalances, waitNanos);
                    }
                }
                long p1 = System.nanoTime();
                progress("prefill " + batch + " x " + prompt + " tokens", 1, 1);
                System.out.printf(" %.2f s, %.0f tokens/s%n", (p1 - p0) / 1e9, batch * prompt / ((p1 - p0) / 1e9));
                Map<String, Profiler.Entry> prefillKernels = profiler.entries();
                long prefillNative = profiler.totalNanos(), prefillWait = waitNanos[0], prefillMoves = waitNanos[1];
                profiler.reset();
                waitNanos[0] = waitNanos[1] = 0;

                // decode: one token per sequence per step
                long d0 = System.nanoTime();
                for (int s = 0; s < steps; s++) {
                    progress("decode " + steps + " steps, batch " + batch, s, steps);
                    Tensor x = hiddenStates(arena, random, batch, hidden);
                    for (DecoderLayer layer : model) {
                        layer.decode(ctx, caches[layer.index()], sequences, x, routing, x);
                        afterMoe(layer, routing, load, parallel, balancers, rebalances, waitNanos);
                    }
                }
                long d1 = System.nanoTime();
                progress("decode " + steps + " steps, batch " + batch, 1, 1);
                System.out.printf(
                        " %.2f s, %.1f ms/step, %.0f tokens/s%n%n",
                        (d1 - d0) / 1e9, (d1 - d0) / 1e6 / steps, batch * steps / ((d1 - d0) / 1e9));

                timeShare("prefill", prefillKernels, prefillNative, prefillWait, prefillMoves, p1 - p0);
                timeShare("decode", profiler.entries(), profiler.totalNanos(), waitNanos[0], waitNanos[1], d1 - d0);
            }
            stepReport(parallel, rebalances);
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
                "Java (routing selection, norms, RoPE, dispatch tables)",
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
            case "moe4j_fp8_expert_ffn_contiguous" -> "shared experts and dense MLP (FP8, fused)";
            case "moe4j_fp8_gemm_nt" -> "FP8 GEMM (attention projections)";
            case "moe4j_gemm_nt" -> "BF16 GEMM (gate, per-head absorption)";
            case "moe4j_mla_decode" -> "MLA attention over the latent cache";
            case "moe4j_quantize_fp8_per_token", "moe4j_quantize_fp8_per_block" -> "FP8 quantization of activations";
            case "moe4j_mla_cache_append" -> "latent cache append";
            case "moe4j_gather_rows", "moe4j_combine_rows" -> "dispatch gather and combine";
            default -> function;
        };
    }

    /** Records an MoE layer's routing: load statistics, live rebalancing, time spent waiting for devices. */
    private static void afterMoe(
            DecoderLayer layer,
            Routing routing,
            Map<Integer, ExpertLoad> load,
            Map<Integer, ExpertParallelMoe> parallel,
            Map<Integer, LiveBalancer> balancers,
            List<LiveBalancer.Report> rebalances,
            long[] waitNanos) {
        ExpertParallelMoe moe = parallel.get(layer.index());
        if (moe == null) return;
        load.get(layer.index()).record(routing);
        waitNanos[0] += moe.lastStep().waitNanos();
        LiveBalancer.Report r;
        try (Profiler ownCalls = Profiler.start()) { // the weight copies count as rebalancing, not twice
            r = balancers.get(layer.index()).afterStep(routing);
        }
        if (r != null) {
            rebalances.add(r);
            waitNanos[1] += r.nanos();
        }
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
            double before = 0, after = 0, mb = 0;
            for (LiveBalancer.Report r : rebalances) {
                before += r.balanceBefore();
                after += r.balanceAfter();
                mb += r.movedBytes() / 1e6;
            }
            System.out.printf(
                    "%d live rebalances: balance (mean/max device load) %.3f -> %.3f on average, %.1f MB of"
                            + " expert weights moved per rebalance%n",
                    rebalances.size(), before / rebalances.size(), after / rebalances.size(), mb / rebalances.size());
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
