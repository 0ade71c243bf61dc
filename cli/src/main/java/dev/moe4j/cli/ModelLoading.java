package dev.moe4j.cli;

import dev.moe4j.engine.Model;
import dev.moe4j.runtime.Device;
import dev.moe4j.tokenizer.Tokenizer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;

/**
 * The options every verb that loads a model shares, and loading the model with its tokenizer. Public for the verbs that
 * live in other modules (the server's {@code serve}), so that every verb reads a checkpoint the same way.
 */
public final class ModelLoading {
    private ModelLoading() {}

    /** The model options that take a value. */
    public static final Set<String> VALUED =
            Set.of("--model", "--cache-tokens", "--threads", "--devices", "--lm-head", "--dense");

    /** The model options that take none. */
    public static final Set<String> FLAGS = Set.of("--fp8-cache", "--quantize", "--fast", "--unpacked", "--gpu");

    /** The model options as a usage line. */
    public static final String USAGE = "--model DIR [--cache-tokens N --fp8-cache --quantize --threads N --devices D"
            + " --fast --lm-head q8|fp8|bf16 --dense q8|stored --unpacked --gpu]";

    /**
     * {@code --gpu}: the model on CUDA device 0 (libmoe4j_cuda, which the launcher loads for this flag); then
     * {@code --devices D} spreads the routed experts over GPUs 0 .. D-1 instead of D CPU devices.
     */
    static Device device(Options o) {
        return o.has("--gpu") ? Device.cuda(0) : Device.CPU;
    }

    /**
     * {@code --lm-head}: the LM head's format; by default int8 on the CPU (int8 dot products) and FP8 on a GPU (the
     * tuned FP8 kernels).
     */
    static Model.LmHead lmHead(Options o) {
        String given = o.has("--lm-head") ? o.string("--lm-head") : o.has("--gpu") ? "fp8" : "q8";
        return switch (given) {
            case "q8" -> Model.LmHead.Q8;
            case "fp8" -> Model.LmHead.FP8;
            case "bf16" -> Model.LmHead.BF16;
            default -> throw new IllegalArgumentException("--lm-head must be q8, fp8 or bf16, got '" + given + "'");
        };
    }

    /**
     * {@code --dense}: the attention projections and dense MLPs as int8 ({@code q8}, the default; a CPU model only) or
     * as the checkpoint stores them ({@code stored}; FP8 with {@code --quantize}).
     */
    static boolean q8Dense(Options o) {
        String given = o.has("--dense") ? o.string("--dense") : "q8";
        return switch (given) {
            case "q8" -> true;
            case "stored" -> false;
            default -> throw new IllegalArgumentException("--dense must be q8 or stored, got '" + given + "'");
        };
    }

    /**
     * Loads {@code --model} with the options given (16384 cache tokens unless {@code --cache-tokens} says otherwise),
     * and says on standard error what it loaded and the memory it took.
     *
     * @param minCacheTokens the fewest cache tokens to allocate, whatever {@code --cache-tokens} says
     * @throws IllegalArgumentException if {@code --model} is missing, an option is malformed or the checkpoint is
     *     invalid
     * @throws java.io.UncheckedIOException if the checkpoint cannot be read
     */
    public static Model load(Options o, int minCacheTokens) {
        Model.Options options = Model.Options.defaults()
                .withCacheTokens(Math.max(minCacheTokens, o.positive("--cache-tokens", 16384)))
                .withFp8Cache(o.has("--fp8-cache"))
                .withQuantize(o.has("--quantize"))
                .withReproducible(!o.has("--fast"))
                .withThreads(o.positive("--threads", 0))
                .withExpertDevices(o.positive("--devices", 1))
                .withLmHead(lmHead(o))
                .withQ8Dense(q8Dense(o))
                .withPackWeights(!o.has("--unpacked"))
                .withDevice(device(o));
        long t0 = System.nanoTime();
        Model model = Model.load(Path.of(o.string("--model")), options, null);
        Model.Memory m = model.memory();
        System.err.printf(
                "loaded %s in %.1f s: %.0f MB of weights used from the map, %.0f MB copied or converted,%s %.0f MB KV"
                        + " cache (%d tokens), process resident %.0f MB (%.0f MB in 2 MiB pages)%n",
                model,
                (System.nanoTime() - t0) / 1e9,
                m.mappedWeights() / 1e6,
                m.copiedWeights() / 1e6,
                model.device().isCpu() ? "" : String.format(" %.0f MB on %s,", m.deviceWeights() / 1e6, model.device()),
                m.cache() / 1e6,
                model.cacheTokens(),
                residentBytes() / 1e6,
                procBytes("smaps_rollup", "AnonHugePages:") / 1e6);
        return model;
    }

    /** VmRSS of this process from /proc/self/status, or 0 where there is none. */
    static long residentBytes() {
        return procBytes("status", "VmRSS:");
    }

    /**
     * The {@code key: N kB} line of /proc/self/file in bytes, or 0 where there is none (another OS, an older kernel):
     * the model's weights in 2 MiB pages are {@code AnonHugePages} of {@code smaps_rollup}.
     */
    static long procBytes(String file, String key) {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self", file)))
                if (line.startsWith(key)) return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
        } catch (IOException | NumberFormatException e) {
            return 0;
        }
        return 0;
    }

    /** The tokenizer beside the model's weights, or null when the directory has no tokenizer.json. */
    public static Tokenizer tokenizer(Path dir) {
        return Files.exists(dir.resolve("tokenizer.json")) ? Tokenizer.load(dir) : null;
    }

    /** Comma-separated token ids. */
    static int[] ids(String list) {
        String[] parts = list.split(",");
        int[] ids = new int[parts.length];
        for (int i = 0; i < parts.length; i++) {
            try {
                ids[i] = Integer.parseInt(parts[i].trim());
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(
                        "--input-ids must be comma-separated integers, got '" + parts[i] + "'");
            }
        }
        return ids;
    }
}
