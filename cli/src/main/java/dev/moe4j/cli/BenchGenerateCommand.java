package dev.moe4j.cli;

import dev.moe4j.dashboard.Recorder;
import dev.moe4j.engine.Model;
import dev.moe4j.internal.Json;
import dev.moe4j.kernels.Logits;
import dev.moe4j.model.ModelConfig;
import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.Profiler;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.Tensor;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.io.Writer;
import java.lang.foreign.Arena;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.function.DoubleSupplier;

/**
 * {@code ./moe4j bench generate}: what {@code llama-bench} and {@code llama-batched-bench} measure, for a whole
 * model: prompt processing and decode tokens/s per batch size, set against the machine's ceilings measured in the
 * same run (read bandwidth and bf16 dot-product peak, by the native harness {@code moe4j_bench machine}).
 *
 * <p>Per batch size B: B sequences of P random prompt tokens are prefilled in steps of up to {@code --step-tokens}
 * tokens, then decode N tokens each, one token per sequence per step, each step fed the previous step's argmax.
 * Timed are the model steps alone (the argmax between steps is not, as llama-bench times no sampling). The weight
 * bytes of each decode step are counted from its actual routing: the weights every step reads, one embedding row per
 * token, and each distinct routed expert of each MoE layer once ({@link Model#weightBytes}). The roofline fraction
 * is those bytes over the bytes the machine could have read meanwhile: the decode steps run in chunks of
 * {@link #PROBE_EVERY_STEPS}, the read bandwidth is measured between every two chunks (and before the first, by a
 * {@code moe4j_bench machine --read-bw-per-line} that runs beside the model), and each chunk's time counts at the
 * higher of the two readings around it. A row is flagged when in more than a quarter of the decode time those two
 * differ by more than 15%. On machines whose bandwidth moves from second to second (VMs sharing a host: 30 and 60
 * GB/s on one), readings at the start and end of a run, or even of one repetition, say little about the steps. The
 * prefill fraction is the model FLOPs per second (matrix products and attention, causal) over the bf16 dot peak;
 * beside it the ceiling fraction counts the operations of int8 GEMMs (int8 weights: dense projections and the LM head
 * on the CPU) at the int8 dot peak (vpdpbusd, twice the bf16 one), since they run on that instruction. Java time is a
 * step's time outside native calls ({@link Profiler}).
 */
final class BenchGenerateCommand {
    private BenchGenerateCommand() {}

    /** Decode steps of one sequence run before the measured ones, for the JIT. */
    private static final int WARM_UP_DECODE_STEPS = 1000;

    static final String USAGE = "bench generate --model DIR [--batch B[,B..]] [--prompt-tokens P] [--new-tokens N]"
            + " [--step-tokens S] [--reps R] [--seed S] [--json] [--profile] [--report FILE.html]";

    /** The machine's ceilings as {@code moe4j_bench machine --brief} measures them, or null values when absent. */
    record Machine(double readGbs, double bf16DotGflops, String bf16Dot, double int8DotGops) {
        static final Machine UNKNOWN = new Machine(Double.NaN, Double.NaN, "unmeasured", Double.NaN);
    }

    /**
     * One batch size's result (times in seconds, means over the repetitions). {@code decodeReadGbs} is the read
     * bandwidth beside the decode steps (each chunk of steps at the higher of the readings around it, weighted by the
     * chunk's time; NaN when unmeasured), {@code decodeUnsteadyShare} the share of the decode time in chunks whose two
     * readings differ by more than {@link #UNSTEADY_BANDWIDTH} (see {@link #spread}).
     */
    record Run(
            int batch,
            int promptTokens,
            int newTokens,
            double prefillSeconds,
            double prefillFlops,
            double prefillInt8Ops,
            double decodeSeconds,
            int decodeSteps,
            double decodeBytesPerStep,
            double decodeReadGbs,
            double decodeUnsteadyShare,
            double decodeJavaShare,
            HintComparison hints,
            DecodeProfile decodeProfile,
            Map<String, Profiler.Entry> prefillKernels) {
        double prefillTokensPerS() {
            return batch * promptTokens / prefillSeconds;
        }

        /**
         * The prefill's time at the machine's peaks over its measured time: int8 GEMMs' operations at the int8 dot
         * peak, the rest at the bf16 dot peak (NaN where a peak is unmeasured).
         */
        double prefillCeilingFraction(Machine m) {
            double bf16 = prefillFlops - prefillInt8Ops;
            double ideal = bf16 / (m.bf16DotGflops() * 1e9)
                    + (prefillInt8Ops > 0 ? prefillInt8Ops / (m.int8DotGops() * 1e9) : 0);
            return ideal / prefillSeconds;
        }

        double decodeTokensPerS() {
            return batch * decodeSteps / decodeSeconds;
        }

        double decodeGbs() {
            return decodeBytesPerStep * decodeSteps / decodeSeconds / 1e9;
        }

        /** The decode steps' bytes per second over the bandwidth read beside them (NaN when unmeasured). */
        double decodeRooflineFraction() {
            return decodeGbs() / decodeReadGbs;
        }
    }

    /**
     * Decode steps after the timed ones, alternately with and without the model's prefetch hints ({@link
     * Model#prefetchWeights}): {@code steps} of each, in seconds per step; NaN where none ran (a GPU, one thread).
     */
    record HintComparison(int steps, double hintedSeconds, double unhintedSeconds) {
        static final HintComparison NONE = new HintComparison(0, Double.NaN, Double.NaN);

        double speedup() {
            return unhintedSeconds / hintedSeconds;
        }
    }

    /**
     * Time per native function over {@code steps} decode steps that took {@code seconds}: the timed steps' own, or,
     * for a model on a GPU with {@code --profile}, {@link #DEVICE_PROFILE_STEPS} more steps after them in which every
     * call waited for the GPU ({@link Profiler#startWaitingForDevice}), so that each kernel's entry is its device time
     * (and one host-device round trip).
     */
    record DecodeProfile(Map<String, Profiler.Entry> kernels, int steps, double seconds, boolean waitedForDevice) {}

    /** Decode steps profiled with device waits after the timed ones, on a GPU with --profile. */
    static final int DEVICE_PROFILE_STEPS = 8;

    static int run(String[] args) {
        Set<String> valued = new HashSet<>(ModelLoading.VALUED);
        valued.addAll(
                Set.of("--batch", "--prompt-tokens", "--new-tokens", "--step-tokens", "--reps", "--seed", "--report"));
        Set<String> flags = new HashSet<>(ModelLoading.FLAGS);
        flags.add("--json");
        flags.add("--profile");
        Options o = new Options("bench generate", args, valued, flags);
        int[] batches = batchSizes(o.string("--batch", "1"));
        int prompt = o.positive("--prompt-tokens", 128), decode = o.positive("--new-tokens", 32);
        int stepTokens = o.positive("--step-tokens", 512), reps = o.positive("--reps", 2);
        long seed = o.positive("--seed", 1);
        int maxBatch = Arrays.stream(batches).max().orElseThrow();
        int threads = o.positive("--threads", 0);

        // the ceilings measured here are the CPU's: a model on a GPU is reported without them
        boolean onCpu = ModelLoading.device(o).isCpu();
        if (!onCpu)
            System.err.println("bench generate --gpu: the CPU's bandwidth and peak are not the GPU's ceilings;"
                    + " they are left out (bench/gpu.sh measures the GPU's)");
        Machine before = onCpu ? measureMachine(threads) : Machine.UNKNOWN;
        boolean deviceProfile = o.has("--profile") && !onCpu;
        int profileSteps = deviceProfile ? DEVICE_PROFILE_STEPS : 0;
        List<Run> runs = new ArrayList<>();
        String description;
        Recorder report = new Recorder("moe4j bench generate", Recorder.DEFAULT_CAPACITY);
        // after the timed decode steps as many again, alternately with and without prefetch hints (a CPU context of
        // one thread has no idle worker to take them)
        int hintSteps = onCpu && threads != 1 ? 2 * Math.max(1, decode / 2) : 0;
        int tokens = prompt + decode + hintSteps + profileSteps;
        // the weights int8 GEMMs multiply with, on the CPU (vpdpbusd, the int8 dot peak measured)
        Int8Weights int8 =
                new Int8Weights(onCpu && ModelLoading.q8Dense(o), onCpu && ModelLoading.lmHead(o) == Model.LmHead.Q8);
        try (ReadProbe probe = onCpu && harness() != null ? ReadProbe.start(harness(), threads) : null;
                Model model = ModelLoading.load(o, Math.max(maxBatch * tokens, 16 + WARM_UP_DECODE_STEPS))) {
            DoubleSupplier readBandwidth = probe != null ? probe::read : () -> Double.NaN;
            if (tokens > model.maxPositions())
                throw new IllegalArgumentException("--prompt-tokens + --new-tokens is " + (prompt + decode)
                        + (hintSteps > 0 ? " (+ " + hintSteps + " steps with and without prefetch hints)" : "")
                        + (profileSteps > 0 ? " (+ " + profileSteps + " device-profiled steps)" : "")
                        + ", past the model's context of " + model.maxPositions());
            description = model + (model.reproducible() ? ", reproducible" : ", --fast");
            Random random = new Random(seed);
            // warm-up (as llama-bench's): weights paged in, Java compiled, and the workspace grown to the largest
            // prefill step of the runs. Twice: after one pass the JIT still compiles the step's code while the next
            // runs (measured: the first 512-token prefill after a single warm-up took 15-30% longer than the ones
            // after it). The embedding rows of each run's random prompt are still read from the checkpoint's memory
            // map when first touched: after the page cache lost the file, from disk.
            // Then a thousand decode steps, toward the steady state a server reaches: C2 compiles a method after
            // thousands of calls (5000 by default), and a step calls most of its Java once per layer or once per step.
            // `./moe4j bench generate` starts the JVM with -XX:CompileThresholdScaling=0.1, so that these steps are
            // enough: with it the last of the step's methods (Model.step) reached C2 after about 600 of them. Measured
            // at batch 1 on a Zen 4, 4 layers: Java 3.1% of a 19 ms step after them with the default thresholds, 2.0%
            // with the flag, 1.9% over 1500 timed steps without it.
            int warmUpPrompt = (int) Math.min(Math.min(stepTokens, (long) maxBatch * prompt), model.maxPositions() - 8);
            for (int pass = 0; pass < 2; pass++)
                measure(
                        model,
                        int8,
                        1,
                        warmUpPrompt,
                        8,
                        0,
                        0,
                        stepTokens,
                        random,
                        new Recorder("warm-up", 2),
                        () -> Double.NaN);
            int warmUpSteps = Math.max(1, Math.min(WARM_UP_DECODE_STEPS, model.maxPositions() - 16));
            measure(
                    model,
                    int8,
                    1,
                    16,
                    warmUpSteps,
                    0,
                    0,
                    stepTokens,
                    random,
                    new Recorder("warm-up", 2),
                    () -> Double.NaN);
            for (int b : batches) {
                List<Run> each = new ArrayList<>();
                for (int r = 0; r < reps; r++)
                    each.add(measure(
                            model,
                            int8,
                            b,
                            prompt,
                            decode,
                            hintSteps,
                            profileSteps,
                            stepTokens,
                            random,
                            report,
                            readBandwidth));
                runs.add(mean(each));
            }
        }
        Machine after = onCpu ? measureMachine(threads) : Machine.UNKNOWN;
        if (o.has("--json")) System.out.println(Json.write(toJson(description, before, after, runs)));
        else print(description, before, after, runs);
        if (o.has("--profile")) for (Run r : runs) printProfile(r);
        if (o.has("--report")) {
            report.facts(List.of("model: " + description, machineLine(before, after)));
            for (Run r : runs) {
                report.roofline("decode, batch " + r.batch() + ": of the read bandwidth", r.decodeRooflineFraction());
                report.roofline(
                        "prefill, batch " + r.batch() + ": of the bf16 peak",
                        r.prefillFlops() / r.prefillSeconds() / 1e9 / before.bf16DotGflops());
            }
            // beside --json on stdout, the path goes to stderr
            (o.has("--json") ? System.err : System.out)
                    .println("report: " + report.write(Path.of(o.string("--report"))));
        }
        return 0;
    }

    /** Decode steps between two readings of the read bandwidth (about 80 ms at batch 1 on the 4-layer model). */
    static final int PROBE_EVERY_STEPS = 4;

    /**
     * A spread of two bandwidth readings above which a chunk of decode steps counts as unsteady: some machines (VMs
     * sharing a host) move between bandwidth levels (33 and 52 GB/s on one) from second to second.
     */
    private static final double UNSTEADY_BANDWIDTH = 0.15;

    /** The share of the decode time in unsteady chunks above which a row's roofline fraction is flagged. */
    private static final double UNSTEADY_SHARE = 0.25;

    /** How much higher the higher of two bandwidth readings is than the lower (0.2 = 20%), NaN when one is missing. */
    private static double spread(double a, double b) {
        return Math.max(a, b) / Math.min(a, b) - 1;
    }

    /** The higher of two measurements, either of which may be missing (NaN). */
    private static double higher(double a, double b) {
        return Double.isNaN(a) ? b : Double.isNaN(b) ? a : Math.max(a, b);
    }

    /** Comma-separated batch sizes, each a positive integer. */
    private static int[] batchSizes(String list) {
        return Arrays.stream(list.split(","))
                .mapToInt(part -> Options.parsePositive("--batch", part.trim()))
                .toArray();
    }

    /**
     * Prefill and decode of b sequences, then {@code hintSteps} decode steps with and without prefetch hints in turn
     * (see {@link HintComparison}), then {@code profileSteps} decode steps profiled with device waits (see {@link
     * DecodeProfile}); their cache is freed afterwards.
     */
    private static Run measure(
            Model model,
            Int8Weights int8,
            int b,
            int prompt,
            int decode,
            int hintSteps,
            int profileSteps,
            int stepTokens,
            Random random,
            Recorder report,
            DoubleSupplier readBandwidth) {
        ModelConfig c = model.config();
        int[] sequences = new int[b];
        int[][] prompts = new int[b][prompt];
        for (int i = 0; i < b; i++) {
            sequences[i] = model.newSequence();
            for (int j = 0; j < prompt; j++) prompts[i][j] = random.nextInt(c.vocabSize());
        }
        Model.WeightBytes bytes = model.weightBytes();
        long[] expertsTouched = {0};
        BitSet seen = new BitSet(c.nRoutedExperts());
        try (Arena arena = Arena.ofConfined();
                Context host = Context.create(Context.Options.cpu().withThreads(1))) {
            Tensor pick = Tensor.allocate(arena, DType.I32, b), pickSumExp = Tensor.allocate(arena, DType.F32, b);
            // prefill: prompts packed into steps of up to stepTokens tokens, a prompt split across steps as needed
            int[] next = new int[b];
            int[] last = new int[b];
            long prefillNanos = 0;
            Map<String, Profiler.Entry> prefillKernels;
            try (Profiler profiler = Profiler.start()) {
                for (int done = 0; done < b; ) {
                    List<Integer> ids = new ArrayList<>();
                    List<int[]> chunks = new ArrayList<>();
                    int budget = stepTokens;
                    for (int i = done; i < b && budget > 0; i++) {
                        int n = Math.min(budget, prompt - next[i]);
                        ids.add(i);
                        chunks.add(Arrays.copyOfRange(prompts[i], next[i], next[i] + n));
                        budget -= n;
                    }
                    int[] seqs = ids.stream().mapToInt(i -> sequences[i]).toArray();
                    long t0 = System.nanoTime();
                    Tensor logits = model.forward(seqs, chunks.toArray(int[][]::new), false, arena);
                    long stepNanos = System.nanoTime() - t0;
                    prefillNanos += stepNanos;
                    int stepTokensRun =
                            chunks.stream().mapToInt(chunk -> chunk.length).sum();
                    report.record(
                            Recorder.THROUGHPUT, "tokens/s", "prefill, batch " + b, stepTokensRun / (stepNanos / 1e9));
                    argmax(host, logits, pick, pickSumExp);
                    for (int k = 0; k < ids.size(); k++) {
                        int i = ids.get(k);
                        next[i] += chunks.get(k).length;
                        if (next[i] == prompt) {
                            last[i] = pick.getInt(k);
                            done++;
                        }
                    }
                }
                prefillKernels = profiler.entries();
            }

            // decode: every sequence one token per step
            model.onMoeLayer((layer, routing) -> {
                seen.clear();
                for (int t = 0; t < routing.tokens(); t++)
                    for (int r = 0; r < routing.k(); r++) {
                        int e = routing.expert(t, r);
                        if (e >= 0) seen.set(e);
                    }
                expertsTouched[0] += seen.cardinality();
                report.routed(layer, routing, c.nRoutedExperts());
            });
            long decodeNanos = 0, nativeNanos = 0;
            Map<String, Profiler.Entry> kernels;
            Tensor logits = Tensor.allocate(arena, DType.F32, b, model.vocabSize()); // every step's, as a server keeps
            // the chunks' time at the bandwidth read around them (seconds x GB/s), and the time of unsteady ones
            double readBefore = readBandwidth.getAsDouble(), capacity = 0, unsteadySeconds = 0;
            long chunkNanos = 0;
            try (Profiler profiler = Profiler.start()) {
                for (int s = 0; s < decode; s++) {
                    int[][] tokens = oneEach(last);
                    long t0 = System.nanoTime();
                    model.forward(sequences, tokens, false, logits);
                    long stepNanos = System.nanoTime() - t0;
                    decodeNanos += stepNanos;
                    report.record(Recorder.THROUGHPUT, "tokens/s", "decode, batch " + b, b / (stepNanos / 1e9));
                    report.record(Recorder.LATENCY, "ms", "decode step, batch " + b, stepNanos / 1e6);
                    report.record(
                            Recorder.KV_CACHE,
                            "% of tokens in use",
                            "used",
                            100.0 * (1 - (double) model.freeCacheTokens() / model.cacheTokens()));
                    greedy(host, logits, pick, pickSumExp, last);
                    chunkNanos += stepNanos;
                    if ((s + 1) % PROBE_EVERY_STEPS == 0 || s + 1 == decode) {
                        double readAfter = readBandwidth.getAsDouble();
                        capacity += chunkNanos / 1e9 * higher(readBefore, readAfter);
                        if (spread(readBefore, readAfter) > UNSTEADY_BANDWIDTH) unsteadySeconds += chunkNanos / 1e9;
                        readBefore = readAfter;
                        chunkNanos = 0;
                    }
                }
                nativeNanos = profiler.totalNanos();
                kernels = profiler.entries();
            } finally {
                model.onMoeLayer(null);
            }
            double readGbs = capacity / (decodeNanos / 1e9);
            DecodeProfile profile = new DecodeProfile(kernels, decode, decodeNanos / 1e9, false);
            long[] hinted = new long[2]; // [0] without, [1] with
            try {
                for (int s = 0; s < hintSteps; s++) {
                    boolean on = s % 2 == 0;
                    model.prefetchWeights(on);
                    long t0 = System.nanoTime();
                    model.forward(sequences, oneEach(last), false, logits);
                    hinted[on ? 1 : 0] += System.nanoTime() - t0;
                    greedy(host, logits, pick, pickSumExp, last);
                }
            } finally {
                model.prefetchWeights(true);
            }
            HintComparison hints = hintSteps == 0
                    ? HintComparison.NONE
                    : new HintComparison(
                            hintSteps / 2, hinted[1] / 1e9 / (hintSteps / 2), hinted[0] / 1e9 / (hintSteps / 2));
            if (profileSteps > 0) {
                long t0 = System.nanoTime();
                try (Profiler profiler = Profiler.startWaitingForDevice()) {
                    for (int s = 0; s < profileSteps; s++) {
                        model.forward(sequences, oneEach(last), false, logits);
                        greedy(host, logits, pick, pickSumExp, last);
                    }
                    profile = new DecodeProfile(profiler.entries(), profileSteps, (System.nanoTime() - t0) / 1e9, true);
                }
            }
            PrefillFlops flops = prefillFlops(c, prompt, int8);
            double bytesPerStep = bytes.everyStep()
                    + (double) b * bytes.perToken()
                    + (double) expertsTouched[0] / decode * bytes.perRoutedExpert();
            return new Run(
                    b,
                    prompt,
                    decode,
                    prefillNanos / 1e9,
                    b * flops.total(),
                    b * flops.int8(),
                    decodeNanos / 1e9,
                    decode,
                    bytesPerStep,
                    readGbs,
                    Double.isNaN(readGbs) ? Double.NaN : unsteadySeconds / (decodeNanos / 1e9),
                    Math.max(0, 1 - (double) nativeNanos / decodeNanos),
                    hints,
                    profile,
                    prefillKernels);
        } finally {
            for (int s : sequences) model.freeSequence(s);
        }
    }

    /** A decode step's tokens: each sequence's last one. */
    private static int[][] oneEach(int[] last) {
        int[][] tokens = new int[last.length][];
        for (int i = 0; i < last.length; i++) tokens[i] = new int[] {last[i]};
        return tokens;
    }

    /** A decode step's greedy tokens into last: each sequence's argmax of its logits row. */
    private static void greedy(Context host, Tensor logits, Tensor argmax, Tensor sumExp, int[] last) {
        argmax(host, logits, argmax, sumExp);
        for (int i = 0; i < last.length; i++) last[i] = argmax.getInt(i);
    }

    /**
     * The greedy pick of every row of logits into the first rows of {@code argmax} (I32, {@code sumExp} F32 beside
     * it), natively: {@code moe4j_logits_stats} on the one-thread context {@code host}. A Java copy of each row
     * allocated 400 KB a step, and the young collections that caused (one every ~300 steps, 6-10 ms) fell into timed
     * steps. The call is kept out of the step profiler around it (a profiler of its own takes it), since it is not part
     * of a step.
     */
    private static void argmax(Context host, Tensor logits, Tensor argmax, Tensor sumExp) {
        long rows = logits.shape(0);
        try (Profiler aside = Profiler.start()) {
            Logits.stats(host, logits, argmax.slice(0, 0, rows), sumExp.slice(0, 0, rows));
        }
    }

    /**
     * Which weights int8 GEMMs multiply with ({@code moe4j_q8_gemm_nt}, vpdpbusd): the attention projections but wkv_b,
     * the dense MLPs and the shared experts ({@code denseProjections}), the LM head ({@code lmHead}).
     */
    record Int8Weights(boolean denseProjections, boolean lmHead) {
        static final Int8Weights NONE = new Int8Weights(false, false);
    }

    /** A prefill's operations: all of them, and those int8 GEMMs do (the rest are bf16 dot products). */
    record PrefillFlops(double total, double int8) {}

    /**
     * Model FLOPs of prefilling one prompt of p tokens: 2 per weight a token multiplies with (projections, wkv_b's
     * per-head key and value parts, dense MLPs, router, shared and top-k routed experts), the LM head once, and causal
     * attention as a prompt is attended (MHA-style, see {@code MlaAttention#forward}): per head, scores over
     * qk_nope + qk_rope dims and values over v dims at each earlier position. The absorbed attention's 576 + 512 dims
     * per position, which decode tokens use, would count work a prompt no longer does. Of them, int8 GEMMs do those of
     * the weights int8 names.
     */
    static PrefillFlops prefillFlops(ModelConfig c, int p, Int8Weights int8) {
        double h = c.hiddenSize(), heads = c.numAttentionHeads();
        var m = c.mla();
        double qHead = m.qkNopeHeadDim() + m.qkRopeHeadDim();
        double projections =
                (m.qLoraRank() == 0 ? h * heads * qHead : h * m.qLoraRank() + m.qLoraRank() * heads * qHead)
                        + h * (m.kvLoraRank() + m.qkRopeHeadDim())
                        + heads * m.vHeadDim() * h;
        double wkvB = heads * m.kvLoraRank() * (m.qkNopeHeadDim() + m.vHeadDim());
        double perToken = 0, int8PerToken = 0;
        for (int l = 0; l < c.numHiddenLayers(); l++) {
            double dense = projections
                    + (c.isMoeLayer(l)
                            ? 3 * h * c.moeIntermediateSize() * c.nSharedExperts()
                            : 3 * h * c.intermediateSize());
            double rest = wkvB
                    + (c.isMoeLayer(l)
                            ? h * c.nRoutedExperts() + 3 * h * c.moeIntermediateSize() * c.numExpertsPerTok()
                            : 0);
            perToken += dense + rest;
            if (int8.denseProjections()) int8PerToken += dense;
        }
        double causalPositions = (double) p * (p + 1) / 2;
        double attentionScores = c.numHiddenLayers() * heads * (2.0 * qHead + 2.0 * m.vHeadDim()) * causalPositions;
        double head = 2 * h * c.vocabSize();
        return new PrefillFlops(
                2 * perToken * p + head + attentionScores, 2 * int8PerToken * p + (int8.lmHead() ? head : 0));
    }

    private static Run mean(List<Run> runs) {
        Run f = runs.get(0);
        double ps = 0, ds = 0, bytes = 0, readGbs = 0, unsteady = 0, java = 0, hinted = 0, unhinted = 0;
        for (Run r : runs) {
            ps += r.prefillSeconds();
            ds += r.decodeSeconds();
            bytes += r.decodeBytesPerStep();
            readGbs += r.decodeReadGbs();
            unsteady += r.decodeUnsteadyShare();
            java += r.decodeJavaShare();
            hinted += r.hints().hintedSeconds();
            unhinted += r.hints().unhintedSeconds();
        }
        int n = runs.size();
        return new Run(
                f.batch(),
                f.promptTokens(),
                f.newTokens(),
                ps / n,
                f.prefillFlops(),
                f.prefillInt8Ops(),
                ds / n,
                f.decodeSteps(),
                bytes / n,
                readGbs / n,
                unsteady / n,
                java / n,
                new HintComparison(f.hints().steps() * n, hinted / n, unhinted / n),
                runs.get(n - 1).decodeProfile(),
                runs.get(n - 1).prefillKernels());
    }

    /**
     * The native harness (its path in the system property {@code moe4j.bench.harness}, which the launcher sets), or
     * null when there is none.
     */
    private static String harness() {
        String harness = System.getProperty("moe4j.bench.harness");
        return harness != null && Files.isExecutable(Path.of(harness)) ? harness : null;
    }

    /** Runs the native harness's machine measurement, or says why there is none. */
    private static Machine measureMachine(int threads) {
        if (harness() == null) {
            String harness = System.getProperty("moe4j.bench.harness");
            System.err.println("bench generate: the native harness (moe4j_bench) was not found"
                    + (harness == null ? "" : " at " + harness)
                    + "; read bandwidth and peak are not measured (build with MOE4J_BENCH=ON, run via ./moe4j)");
            return Machine.UNKNOWN;
        }
        Map<String, String> kv = machine(threads, "--brief");
        double int8 = Double.parseDouble(kv.getOrDefault("int8_dot_peak_gops", "NaN"));
        return new Machine(
                Double.parseDouble(kv.getOrDefault("read_bw_gbs", "NaN")),
                Double.parseDouble(kv.getOrDefault("bf16_dot_peak_gflops", "NaN")),
                kv.getOrDefault("bf16_dot", "unknown"),
                int8 > 0 ? int8 : Double.NaN);
    }

    /** The key=value fields that {@code moe4j_bench machine <mode>} prints. */
    private static Map<String, String> machine(int threads, String mode) {
        String harness = harness();
        List<String> command = new ArrayList<>(List.of(harness, "machine", mode));
        if (threads > 0) command.addAll(List.of("--threads", Integer.toString(threads)));
        try {
            Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (!p.waitFor(120, TimeUnit.SECONDS) || p.exitValue() != 0)
                throw new IllegalStateException("moe4j_bench machine " + mode + " failed: " + out.strip());
            Map<String, String> kv = new LinkedHashMap<>();
            for (String field : out.strip().split("\\s+")) {
                int eq = field.indexOf('=');
                if (eq > 0) kv.put(field.substring(0, eq), field.substring(eq + 1));
            }
            return kv;
        } catch (IOException e) {
            throw new UncheckedIOException("could not run " + harness, e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while measuring the machine", e);
        }
    }

    /** The ceilings measured at the start of the run, and the bandwidth again at its end. */
    private static String machineLine(Machine before, Machine after) {
        if (Double.isNaN(before.readGbs()) && Double.isNaN(before.bf16DotGflops()))
            return "machine: the CPU's ceilings are not measured on a GPU run (bench/gpu.sh reports the GPU's)";
        return String.format(
                "machine: read bandwidth %s GB/s at the start, %s at the end; bf16 dot peak %s GFLOP/s (%s),"
                        + " int8 dot peak %s GOP/s (vpdpbusd)",
                orDash("%.1f", before.readGbs()),
                orDash("%.1f", after.readGbs()),
                orDash("%.0f", before.bf16DotGflops()),
                before.bf16Dot(),
                orDash("%.0f", before.int8DotGops()));
    }

    /** The value formatted, or "-" where it was not measured (NaN). */
    private static String orDash(String format, double value) {
        return Double.isNaN(value) ? "-" : String.format(format, value);
    }

    private static void print(String model, Machine before, Machine after, List<Run> runs) {
        System.out.println("model: " + model);
        System.out.println(machineLine(before, after));
        System.out.printf(
                "%5s %6s %4s | %13s %8s %6s %6s | %12s %8s %8s %6s %7s %9s %6s%n",
                "batch",
                "prompt",
                "new",
                "prefill tok/s",
                "GFLOP/s",
                "%peak",
                "%ceil",
                "decode tok/s",
                "ms/step",
                "MB/step",
                "GB/s",
                "read bw",
                "%roofline",
                "%java");
        boolean unsteady = false;
        for (Run r : runs) {
            double gflops = r.prefillFlops() / r.prefillSeconds() / 1e9;
            boolean flagged = r.decodeUnsteadyShare() > UNSTEADY_SHARE;
            unsteady |= flagged;
            System.out.printf(
                    "%5d %6d %4d | %13.1f %8.1f %6s %6s | %12.2f %8.2f %8.1f %6.1f %7s %9s%s %5.1f%%%n",
                    r.batch(),
                    r.promptTokens(),
                    r.newTokens(),
                    r.prefillTokensPerS(),
                    gflops,
                    orDash("%.1f%%", 100 * gflops / before.bf16DotGflops()),
                    orDash("%.1f%%", 100 * r.prefillCeilingFraction(before)),
                    r.decodeTokensPerS(),
                    1e3 * r.decodeSeconds() / r.decodeSteps(),
                    r.decodeBytesPerStep() / 1e6,
                    r.decodeGbs(),
                    orDash("%.1f", r.decodeReadGbs()),
                    orDash("%.1f%%", 100 * r.decodeRooflineFraction()),
                    flagged ? "*" : " ",
                    100 * r.decodeJavaShare());
        }
        if (unsteady)
            System.out.printf(
                    "*: in more than %.0f%% of the decode time the read bandwidth moved more than %.0f%% between the two"
                            + " readings around a chunk of %d steps; %%roofline (against the higher) is uncertain%n",
                    100 * UNSTEADY_SHARE, 100 * UNSTEADY_BANDWIDTH, PROBE_EVERY_STEPS);
        System.out.println("%peak: the prefill's GFLOP/s over the bf16 dot peak; %ceil: its time at the peaks of the"
                + " instructions that ran it (int8 GEMMs at the int8 dot peak, the rest at the bf16 one) over its"
                + " time");
        for (Run r : runs) {
            HintComparison h = r.hints();
            if (h.steps() > 0)
                System.out.printf(
                        "prefetch hints, batch %d: %.2f ms/step with them, %.2f without (%d decode steps each after the"
                                + " timed ones, alternating): %.3fx%n",
                        r.batch(), 1e3 * h.hintedSeconds(), 1e3 * h.unhintedSeconds(), h.steps(), h.speedup());
        }
    }

    /** Time per native function in the last repetition's decode steps, largest first, as shares of the step. */
    private static void printProfile(Run r) {
        System.out.printf(
                "prefill profile, batch %d (%d tokens each, %.1f ms in all):%n",
                r.batch(), r.promptTokens(), 1e3 * r.prefillSeconds());
        printKernels(r.prefillKernels(), r.prefillSeconds(), 1, "");
        DecodeProfile d = r.decodeProfile();
        if (d.waitedForDevice())
            System.out.printf(
                    "decode profile, batch %d (%d steps after the timed ones, each native call waiting for the GPU: the"
                            + " kernels' device times, launches serialized; %.2f ms per step):%n",
                    r.batch(), d.steps(), 1e3 * d.seconds() / d.steps());
        else
            System.out.printf(
                    "decode profile, batch %d (%d steps, %.2f ms per step):%n",
                    r.batch(), d.steps(), 1e3 * d.seconds() / d.steps());
        printKernels(d.kernels(), d.seconds(), d.steps(), "/step");
        System.out.printf(
                "  %-40s %6.1f%%%s%n",
                "Java (outside native calls)",
                100 * r.decodeJavaShare(),
                d.waitedForDevice() ? " (of the timed steps)" : "");
    }

    /** Time per native function, largest first: its share of {@code seconds}, per step over {@code steps} steps. */
    private static void printKernels(Map<String, Profiler.Entry> kernels, double seconds, int steps, String unit) {
        kernels.entrySet().stream()
                .sorted((a, b) ->
                        Long.compare(b.getValue().nanos(), a.getValue().nanos()))
                .forEach(e -> System.out.printf(
                        "  %-40s %6.1f%% %8.3f ms%s %6.1f calls%s%n",
                        e.getKey(),
                        100.0 * e.getValue().nanos() / 1e9 / seconds,
                        e.getValue().nanos() / 1e6 / steps,
                        unit,
                        (double) e.getValue().calls() / steps,
                        unit));
    }

    private static Map<String, Object> toJson(String model, Machine before, Machine after, List<Run> runs) {
        List<Map<String, Object>> rows = new ArrayList<>();
        for (Run r : runs) {
            Map<String, Object> m = new LinkedHashMap<>();
            double gflops = r.prefillFlops() / r.prefillSeconds() / 1e9;
            m.put("batch", r.batch());
            m.put("prompt_tokens", r.promptTokens());
            m.put("new_tokens", r.newTokens());
            m.put("prefill_tokens_per_s", num(r.prefillTokensPerS()));
            m.put("prefill_gflops", num(gflops));
            m.put("prefill_peak_fraction", num(gflops / before.bf16DotGflops()));
            m.put("prefill_int8_ops_fraction", num(r.prefillInt8Ops() / r.prefillFlops()));
            m.put("prefill_ceiling_fraction", num(r.prefillCeilingFraction(before)));
            m.put("decode_tokens_per_s", num(r.decodeTokensPerS()));
            m.put("decode_ms_per_step", num(1e3 * r.decodeSeconds() / r.decodeSteps()));
            m.put("decode_weight_bytes_per_step", num(r.decodeBytesPerStep()));
            m.put("decode_gbs", num(r.decodeGbs()));
            m.put("read_bw_gbs", num(r.decodeReadGbs()));
            m.put("read_bw_unsteady_fraction", num(r.decodeUnsteadyShare()));
            m.put("decode_roofline_fraction", num(r.decodeRooflineFraction()));
            m.put("decode_java_fraction", num(r.decodeJavaShare()));
            m.put("decode_prefetch_hint_speedup", num(r.hints().speedup()));
            rows.add(m);
        }
        Map<String, Object> top = new LinkedHashMap<>();
        top.put("model", model);
        top.put("read_bw_gbs_before", num(before.readGbs())); // at the start and end of the whole run
        top.put("read_bw_gbs_after", num(after.readGbs()));
        top.put("bf16_dot_peak_gflops", num(before.bf16DotGflops()));
        top.put("bf16_dot", before.bf16Dot());
        top.put("int8_dot_peak_gops", num(before.int8DotGops()));
        top.putAll(rows.get(0)); // the first batch size's fields at the top level, read_bw_gbs among them
        top.put("runs", rows);
        return top;
    }

    /** A finite number, or null (JSON has no NaN: a ceiling that was not measured). */
    private static Object num(double v) {
        return Double.isFinite(v) ? v : null;
    }

    /**
     * {@code moe4j_bench machine --read-bw-per-line}, running beside the model for the whole run: a reading of the
     * read bandwidth (about 25 ms) whenever asked, from memory it allocated and touched once.
     */
    private static final class ReadProbe implements AutoCloseable {
        private final Process process;
        private final BufferedReader out;
        private final Writer in;

        private ReadProbe(Process process) {
            this.process = process;
            this.out = process.inputReader(StandardCharsets.UTF_8);
            this.in = process.outputWriter(StandardCharsets.UTF_8);
        }

        static ReadProbe start(String harness, int threads) {
            List<String> command = new ArrayList<>(List.of(harness, "machine", "--read-bw-per-line"));
            if (threads > 0) command.addAll(List.of("--threads", Integer.toString(threads)));
            try {
                ReadProbe probe = new ReadProbe(
                        new ProcessBuilder(command).redirectErrorStream(true).start());
                probe.answer("ready");
                return probe;
            } catch (IOException e) {
                throw new UncheckedIOException("could not run " + harness, e);
            }
        }

        /** A reading in GB/s. */
        double read() {
            try {
                in.write('\n');
                in.flush();
            } catch (IOException e) {
                throw new UncheckedIOException("the read-bandwidth probe (moe4j_bench) stopped", e);
            }
            String line = answer("read_bw_gbs=");
            return Double.parseDouble(line.substring("read_bw_gbs=".length()).strip());
        }

        /** The probe's next line, which must start with prefix. */
        private String answer(String prefix) {
            try {
                String line = out.readLine();
                if (line == null || !line.startsWith(prefix))
                    throw new IllegalStateException("the read-bandwidth probe (moe4j_bench machine --read-bw-per-line)"
                            + " answered " + (line == null ? "nothing" : "'" + line + "'") + ", expected " + prefix
                            + "...");
                return line;
            } catch (IOException e) {
                throw new UncheckedIOException("the read-bandwidth probe (moe4j_bench) stopped", e);
            }
        }

        @Override
        public void close() {
            try {
                in.close();
                if (!process.waitFor(10, TimeUnit.SECONDS)) process.destroyForcibly();
            } catch (IOException e) {
                process.destroyForcibly();
            } catch (InterruptedException e) {
                process.destroyForcibly();
                Thread.currentThread().interrupt();
            }
        }
    }
}
