package dev.moe4j.cli;

import dev.moe4j.engine.Model;
import dev.moe4j.tokenizer.Tokenizer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;

/** The options every verb that loads a model shares, and loading the model with its tokenizer. */
final class ModelLoading {
    private ModelLoading() {}

    static final Set<String> VALUED = Set.of("--model", "--cache-tokens", "--threads", "--devices");
    static final Set<String> FLAGS = Set.of("--fp8-cache", "--quantize", "--fast");
    static final String USAGE = "--model DIR [--cache-tokens N --fp8-cache --quantize --threads N --devices D --fast]";

    static Model load(Options o, int minCacheTokens) {
        Model.Options options = Model.Options.defaults()
                .withCacheTokens(Math.max(minCacheTokens, o.positive("--cache-tokens", 16384)))
                .withFp8Cache(o.has("--fp8-cache"))
                .withQuantize(o.has("--quantize"))
                .withReproducible(!o.has("--fast"))
                .withThreads(o.positive("--threads", 0))
                .withExpertDevices(o.positive("--devices", 1));
        return Model.load(Path.of(o.string("--model")), options, null);
    }

    /** The tokenizer beside the model's weights, or null when the directory has no tokenizer.json. */
    static Tokenizer tokenizer(Path dir) {
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
