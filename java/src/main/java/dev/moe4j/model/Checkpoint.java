package dev.moe4j.model;

import dev.moe4j.internal.Json;
import dev.moe4j.tensor.Tensor;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * A Hugging Face checkpoint directory: {@code config.json} plus one {@code model.safetensors} or shards listed by
 * {@code model.safetensors.index.json} ({@code weight_map}: tensor name → shard file). Shards are mapped when first
 * needed and stay mapped until {@link #close} ({@link #releasePages} gives their pages back meanwhile). Errors name
 * the directory, file and tensor involved.
 *
 * <p>Thread-safety: {@link #tensor} may be called from several threads only after every shard it needs was opened;
 * a loader thread should open what it needs first.
 */
public final class Checkpoint implements AutoCloseable {
    public static final String INDEX = "model.safetensors.index.json", SINGLE = "model.safetensors";

    private final Path dir;
    private final ModelConfig config;
    private final Map<String, String> weightMap; // tensor -> file name
    private final Map<String, Safetensors> open = new LinkedHashMap<>();

    private Checkpoint(Path dir, ModelConfig config, Map<String, String> weightMap) {
        this.dir = dir;
        this.config = config;
        this.weightMap = weightMap;
    }

    /**
     * @throws IllegalArgumentException if config.json, the index or a shard header is missing or malformed
     */
    public static Checkpoint open(Path dir) {
        if (!Files.isDirectory(dir)) throw new IllegalArgumentException("checkpoint " + dir + " is not a directory");
        if (!Files.isRegularFile(dir.resolve("config.json")))
            throw new IllegalArgumentException("checkpoint " + dir + " has no config.json");
        ModelConfig config = ModelConfig.read(dir.resolve("config.json"));
        Map<String, String> weightMap = new LinkedHashMap<>();
        Path index = dir.resolve(INDEX);
        if (Files.exists(index)) {
            Object parsed;
            try {
                parsed = Json.parse(Files.readString(index));
            } catch (IOException e) {
                throw new UncheckedIOException("cannot read " + index + ": " + e.getMessage(), e);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(index + ": " + e.getMessage(), e);
            }
            if (!(parsed instanceof Map<?, ?> m) || !(m.get("weight_map") instanceof Map<?, ?> wm))
                throw new IllegalArgumentException(index + " has no \"weight_map\" object");
            for (var e : wm.entrySet()) {
                if (!(e.getValue() instanceof String f) || f.contains("/") || f.contains(".."))
                    throw new IllegalArgumentException(
                            index + " maps '" + e.getKey() + "' to " + e.getValue() + ", not a file in " + dir);
                weightMap.put((String) e.getKey(), f);
            }
        } else if (Files.exists(dir.resolve(SINGLE))) {
            Checkpoint c = new Checkpoint(dir, config, weightMap);
            for (String name : c.shard(SINGLE).names()) weightMap.put(name, SINGLE);
            return c;
        } else {
            throw new IllegalArgumentException("checkpoint " + dir + " has neither " + INDEX + " nor " + SINGLE);
        }
        return new Checkpoint(dir, config, weightMap);
    }

    public Path dir() {
        return dir;
    }

    public ModelConfig config() {
        return config;
    }

    public boolean has(String name) {
        return weightMap.containsKey(name);
    }

    /** Every tensor name, sorted. */
    public Set<String> names() {
        return Collections.unmodifiableSet(new TreeSet<>(weightMap.keySet()));
    }

    /**
     * A tensor by its HF name (e.g. {@code model.layers.3.mlp.experts.7.up_proj.weight}).
     *
     * @throws IllegalArgumentException if the checkpoint lacks it or its shard is malformed
     */
    public Tensor tensor(String name) {
        String file = weightMap.get(name);
        if (file == null) throw new IllegalArgumentException("checkpoint " + dir + " has no tensor '" + name + "'");
        Safetensors s = shard(file);
        if (s.entry(name) == null)
            throw new IllegalArgumentException(
                    INDEX + " of " + dir + " puts '" + name + "' in " + file + ", which does not contain it");
        return s.tensor(name);
    }

    /** Bytes of the shard files opened so far (the memory-mapped weights). */
    public synchronized long mappedBytes() {
        long total = 0;
        for (Safetensors s : open.values()) total += s.byteSize();
        return total;
    }

    private synchronized Safetensors shard(String file) {
        Safetensors s = open.get(file);
        if (s == null) {
            Path path = dir.resolve(file);
            if (!Files.exists(path))
                throw new IllegalArgumentException("checkpoint " + dir + " lists shard " + file + ", which is missing");
            s = Safetensors.open(path);
            open.put(file, s);
        }
        return s;
    }

    /**
     * Gives the mapped pages of every shard opened so far back to the operating system ({@link
     * Safetensors#releasePages}); tensors from this checkpoint stay valid. A loader that copies or converts most
     * weights calls it as it goes: otherwise the mapped file stays in the process's resident memory beside its copies,
     * and on a machine that does not hold both the kernel keeps evicting pages the model still reads.
     */
    public synchronized void releasePages() {
        for (Safetensors s : open.values()) s.releasePages();
    }

    /** Unmaps every shard; tensors from this checkpoint become unusable. */
    @Override
    public synchronized void close() {
        for (Safetensors s : open.values()) s.close();
        open.clear();
    }
}
