package dev.moe4j.cli;

import dev.moe4j.engine.Model;
import dev.moe4j.internal.Json;
import dev.moe4j.model.Checkpoint;
import dev.moe4j.model.ModelConfig;
import dev.moe4j.tensor.Tensor;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.stream.Stream;

/**
 * The checkpoint-loading fuzzer ({@code ./moe4j fuzz files}): a tiny make-model checkpoint, then per iteration one of
 * its files (a safetensors shard, config.json or the index) mutated — truncated, bits flipped in the header, the header
 * length, offsets, shapes or dtypes of a tensor changed, names duplicated, keys removed or given values of the wrong
 * type or size — and the checkpoint opened and every tensor read; one iteration in {@link #LOAD_EVERY} also loads the
 * whole model. Each must either work or fail with {@link IllegalArgumentException}, {@link IllegalStateException} or
 * {@link UncheckedIOException} whose message names the file; anything else (another exception, an error, a crash) is a
 * finding.
 */
final class FileFuzzer implements Fuzzer {
    static final int LOAD_EVERY = 50;
    private static final String[] DTYPES = {"F32", "BF16", "F16", "F8_E4M3", "I32", "I64", "F64", "U8", "BOOL", "", "x"
    };
    private static final long[] EXTREMES = {
        0, 1, -1, 2, 127, 128, 129, 4096, Integer.MAX_VALUE, 1L << 32, Long.MAX_VALUE, Long.MIN_VALUE, 1L << 62
    };

    private final Path base;
    private final List<Path> files;
    private final Map<String, Integer> outcomes = new TreeMap<>();

    FileFuzzer(Path work) {
        base = work.resolve("base");
        String tiny = "--preset v3 --layers 2 --experts 16 --top-k 2 --hidden 256 --moe-inter 128 --inter 256 --heads 2"
                + " --vocab 512 --first-dense 1";
        ModelConfig c = MakeModel.preset(tiny.split(" "));
        MakeModel.write(c, base, 1);
        try (Stream<Path> s = Files.list(base)) {
            files = s.sorted().toList();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @Override
    public String name() {
        return "files";
    }

    @Override
    public String outcomes() {
        return outcomes.toString();
    }

    @Override
    public String unit() {
        return "files";
    }

    @Override
    public void iteration(SplittableRandom random, Path scratch) throws IOException {
        Path target = files.get(random.nextInt(files.size()));
        for (Path f : files)
            if (!f.equals(target)) Files.createSymbolicLink(scratch.resolve(f.getFileName()), f.toAbsolutePath());
        byte[] original = Files.readAllBytes(target);
        String name = target.getFileName().toString();
        byte[] mutated =
                name.endsWith(".safetensors") ? mutateSafetensors(original, random) : mutateJson(original, random);
        Path file = scratch.resolve(name);
        Files.write(file, mutated);
        boolean load = random.nextInt(LOAD_EVERY) == 0;
        try (Arena arena = Arena.ofConfined()) {
            try (Checkpoint checkpoint = Checkpoint.open(scratch)) {
                for (String tensor : checkpoint.names()) {
                    Tensor t = checkpoint.tensor(tensor);
                    if (t.elementCount() > 0) t.segment().get(ValueLayout.JAVA_BYTE, 0);
                }
            }
            outcomes.merge("opened", 1, Integer::sum);
            if (load) {
                try (Model model = Model.load(scratch, Model.Options.defaults().withCacheTokens(256), null)) {
                    // as many tokens as the (possibly mutated) context allows, at most 3
                    int[] prompt = Arrays.copyOf(new int[] {1, 2, 3}, Math.min(3, model.maxPositions()));
                    model.forward(new int[] {model.newSequence()}, new int[][] {prompt}, false, arena);
                }
                outcomes.merge("loaded and ran", 1, Integer::sum);
            }
        } catch (IllegalArgumentException | IllegalStateException | UncheckedIOException e) {
            outcomes.merge("refused: " + e.getClass().getSimpleName(), 1, Integer::sum);
            String message = String.valueOf(e.getMessage());
            if (!message.contains(name) && !message.contains(scratch.toString()))
                throw new Finding("the error does not name the file " + name + ": " + message, e);
        }
    }

    private static byte[] mutateSafetensors(byte[] file, SplittableRandom random) {
        long headerLength = ByteBuffer.wrap(file).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        int mode = random.nextInt(6);
        return switch (mode) {
            case 0 -> Arrays.copyOf(file, random.nextInt(file.length)); // truncated
            case 1 -> { // bits flipped in the header
                byte[] b = file.clone();
                for (int i = random.nextInt(1, 9); i > 0; i--) {
                    int at = random.nextInt((int) Math.min(b.length, 8 + headerLength));
                    b[at] ^= (byte) (1 << random.nextInt(8));
                }
                yield b;
            }
            case 2 -> { // the header length
                byte[] b = file.clone();
                long v = random.nextBoolean() ? EXTREMES[random.nextInt(EXTREMES.length)] : random.nextLong();
                ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(0, v);
                yield b;
            }
            default -> { // a structural edit of the header JSON
                String header = new String(file, 8, (int) headerLength, StandardCharsets.UTF_8);
                String edited = mode == 3 ? duplicateName(header, random) : editHeader(header, random);
                byte[] h = edited.getBytes(StandardCharsets.UTF_8);
                byte[] data = Arrays.copyOfRange(file, (int) (8 + headerLength), file.length);
                ByteBuffer out = ByteBuffer.allocate(8 + h.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
                out.putLong(h.length).put(h).put(data);
                yield out.array();
            }
        };
    }

    /** The header with one tensor's entry appearing twice (the second under the same name, other offsets). */
    private static String duplicateName(String header, SplittableRandom random) {
        @SuppressWarnings("unchecked")
        Map<String, Object> map = (Map<String, Object>) Json.parse(header);
        List<String> names = new ArrayList<>(map.keySet());
        names.remove("__metadata__");
        if (names.isEmpty()) return header;
        String name = names.get(random.nextInt(names.size()));
        String entry = Json.write(map.get(name));
        String other = Json.write(map.get(names.get(random.nextInt(names.size()))));
        String key = Json.write(name);
        return header.substring(0, header.length() - 1) + "," + key + ":" + (random.nextBoolean() ? entry : other)
                + "}";
    }

    @SuppressWarnings("unchecked")
    private static String editHeader(String header, SplittableRandom random) {
        Map<String, Object> map = (Map<String, Object>) Json.parse(header);
        List<String> names = new ArrayList<>(map.keySet());
        String name = names.get(random.nextInt(names.size()));
        if (!(map.get(name) instanceof Map<?, ?> entry0)) {
            map.put(name, wrongValue(random));
            return Json.write(map);
        }
        Map<String, Object> entry = (Map<String, Object>) entry0;
        switch (random.nextInt(7)) {
            case 0 -> entry.put("dtype", DTYPES[random.nextInt(DTYPES.length)]);
            case 1 -> entry.put("shape", randomLongs(random, random.nextInt(0, 10)));
            case 2 -> entry.put("data_offsets", randomLongs(random, random.nextInt(0, 4)));
            case 3 -> entry.remove(List.of("dtype", "shape", "data_offsets").get(random.nextInt(3)));
            case 4 -> entry.put(List.of("dtype", "shape", "data_offsets").get(random.nextInt(3)), wrongValue(random));
            case 5 -> { // swap two tensors' shapes: dtype/shape contradictions with valid offsets
                Object other = map.get(names.get(random.nextInt(names.size())));
                if (other instanceof Map<?, ?> o && o.get("shape") != null) entry.put("shape", o.get("shape"));
            }
            default -> map.put(name, wrongValue(random));
        }
        return Json.write(map);
    }

    private static List<Long> randomLongs(SplittableRandom random, int n) {
        List<Long> v = new ArrayList<>();
        for (int i = 0; i < n; i++)
            v.add(random.nextInt(3) == 0 ? EXTREMES[random.nextInt(EXTREMES.length)] : random.nextLong(0, 600_000));
        return v;
    }

    private static Object wrongValue(SplittableRandom random) {
        return switch (random.nextInt(8)) {
            case 0 -> null;
            case 1 -> "text";
            case 2 -> random.nextLong();
            case 3 -> -random.nextDouble() * 1e30;
            case 4 -> List.of();
            case 5 -> Map.of("a", 1L);
            case 6 -> List.of("1", "2");
            default -> true;
        };
    }

    @SuppressWarnings("unchecked")
    private static byte[] mutateJson(byte[] file, SplittableRandom random) {
        int mode = random.nextInt(4);
        if (mode == 0) return Arrays.copyOf(file, random.nextInt(file.length));
        if (mode == 1) {
            byte[] b = file.clone();
            for (int i = random.nextInt(1, 5); i > 0; i--)
                b[random.nextInt(b.length)] ^= (byte) (1 << random.nextInt(8));
            return b;
        }
        Map<String, Object> map = (Map<String, Object>) Json.parse(new String(file, StandardCharsets.UTF_8));
        Map<String, Object> target = map;
        if (map.get("weight_map") instanceof Map<?, ?> wm && random.nextBoolean()) target = (Map<String, Object>) wm;
        List<String> keys = new ArrayList<>(target.keySet());
        if (keys.isEmpty()) return file;
        String key = keys.get(random.nextInt(keys.size()));
        if (mode == 2) target.remove(key);
        else if (random.nextBoolean()) target.put(key, wrongValue(random));
        else target.put(key, EXTREMES[random.nextInt(EXTREMES.length)]);
        return Json.write(map).getBytes(StandardCharsets.UTF_8);
    }
}
