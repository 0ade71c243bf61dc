package dev.moe4j.cli;

import dev.moe4j.internal.Json;
import dev.moe4j.tokenizer.ChatTemplate;
import dev.moe4j.tokenizer.Tokenizer;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * The tokenizer fuzzer ({@code ./moe4j fuzz tokenizer}), on DeepSeek-V3's tokenizer (build/tokenizers/deepseek-v3,
 * fetched by the launcher). Each iteration is one of:
 *
 * <ul>
 *   <li>a mutated tokenizer folder — a small tokenizer.json cut from DeepSeek's (its byte alphabet, its first merges,
 *       its special tokens) truncated, bit-flipped or edited (wrong types, missing or contradicting fields), and
 *       tokenizer_config.json likewise: {@link Tokenizer#load} works or throws {@link IllegalArgumentException} /
 *       {@link UncheckedIOException} naming the file;
 *   <li>a hostile string — random code points across planes, lone surrogates, controls, special-token text,
 *       template syntax, long runs, now and then a megabyte: encoding never fails, and decoding gives the string
 *       back whenever it is well-formed UTF-16; random ids decode or fail with {@link IllegalArgumentException};
 *   <li>a chat rendering: hostile message contents stay literal text (never evaluated as template code), and a
 *       mutated template renders or fails with {@link IllegalArgumentException}.
 * </ul>
 */
final class TokenizerFuzzer implements Fuzzer {
    static final Path FILES = Path.of("build/tokenizers/deepseek-v3");
    private static final int SMALL_MERGES = 2000;
    private static final String[] PIECES = {
        "<｜begin▁of▁sentence｜>",
        "<｜end▁of▁sentence｜>",
        "<｜User｜>",
        "<｜Assistant｜>",
        "{{ 7*7 }}",
        "{% for x in y %}",
        "\u0000",
        "\r\n",
        "\t",
        " ",
        "  ",
        "😀",
        "👩‍👩‍👧",
        "中文",
        "ﬁ",
        "e\u0301",
        "\uFEFF",
        "\u202E",
        "\uD800",
        "\uDC00",
        "12345678901234567890",
        "'s",
        "'ll",
        "...",
        "\\u0041"
    };

    private final Tokenizer real;
    private final ChatTemplate realTemplate;
    private final byte[] smallTokenizer, config;
    private final Map<String, Integer> outcomes = new java.util.TreeMap<>();

    TokenizerFuzzer(Path work) throws IOException {
        if (!Files.isRegularFile(FILES.resolve(Tokenizer.TOKENIZER_FILE)))
            throw new IllegalStateException("fuzz tokenizer needs DeepSeek-V3's tokenizer in " + FILES.toAbsolutePath()
                    + ": run it through ./moe4j fuzz, which fetches it (tools/fetch-tokenizer.sh)");
        real = Tokenizer.load(FILES);
        realTemplate = ChatTemplate.from(FILES);
        config = Files.readAllBytes(FILES.resolve("tokenizer_config.json"));
        smallTokenizer = smallTokenizer(Files.readString(FILES.resolve(Tokenizer.TOKENIZER_FILE)));
    }

    @Override
    public String name() {
        return "tokenizer";
    }

    @Override
    public String outcomes() {
        return outcomes.toString();
    }

    @Override
    public String unit() {
        return "inputs";
    }

    @Override
    public void iteration(SplittableRandom random, Path scratch) throws IOException {
        switch (random.nextInt(5)) {
            case 0, 1 -> files(random, scratch);
            case 2, 3 -> strings(random);
            default -> chat(random);
        }
    }

    /** DeepSeek's tokenizer.json with its vocabulary cut to the single characters and the first merges. */
    @SuppressWarnings("unchecked")
    private static byte[] smallTokenizer(String text) {
        Map<String, Object> root = (Map<String, Object>) Json.parse(text);
        Map<String, Object> model = (Map<String, Object>) root.get("model");
        Map<String, Object> vocab = (Map<String, Object>) model.get("vocab");
        List<Object> merges = (List<Object>) model.get("merges");
        Map<String, Object> kept = new LinkedHashMap<>();
        for (var e : vocab.entrySet())
            if (e.getKey().codePointCount(0, e.getKey().length()) == 1) kept.put(e.getKey(), 0L);
        List<Object> keptMerges = new ArrayList<>();
        for (Object m : merges) {
            String[] pair = m instanceof String s ? s.split(" ", 2) : ((List<String>) m).toArray(String[]::new);
            if (pair.length != 2 || !kept.containsKey(pair[0]) || !kept.containsKey(pair[1])) continue;
            kept.put(pair[0] + pair[1], 0L);
            keptMerges.add(m);
            if (keptMerges.size() == SMALL_MERGES) break;
        }
        long id = 0;
        for (var e : kept.entrySet()) e.setValue(id++);
        for (Object t : (List<Object>) root.get("added_tokens")) ((Map<String, Object>) t).put("id", id++);
        model.put("vocab", kept);
        model.put("merges", keptMerges);
        return Json.write(root).getBytes(StandardCharsets.UTF_8);
    }

    private void files(SplittableRandom random, Path scratch) throws IOException {
        boolean tokenizerFile = random.nextInt(3) > 0;
        byte[] tokenizer = tokenizerFile ? mutate(smallTokenizer, random) : smallTokenizer;
        byte[] cfg = tokenizerFile ? config : mutate(config, random);
        Files.write(scratch.resolve(Tokenizer.TOKENIZER_FILE), tokenizer);
        Files.write(scratch.resolve("tokenizer_config.json"), cfg);
        String file = tokenizerFile ? Tokenizer.TOKENIZER_FILE : "tokenizer_config.json";
        try {
            Tokenizer t = Tokenizer.load(scratch);
            int[] ids = t.encode(randomString(random, 40), true);
            t.decode(ids);
            ChatTemplate.from(scratch).render(List.of(new ChatTemplate.Message("user", "hi")), true);
            outcomes.merge("files loaded", 1, Integer::sum);
        } catch (IllegalArgumentException | UncheckedIOException e) {
            outcomes.merge("files refused", 1, Integer::sum);
            if (!String.valueOf(e.getMessage()).contains(file)
                    && !String.valueOf(e.getMessage()).contains(scratch.toString()))
                throw new Finding("the error does not name " + file + ": " + e.getMessage(), e);
        }
    }

    @SuppressWarnings("unchecked")
    private static byte[] mutate(byte[] json, SplittableRandom random) {
        switch (random.nextInt(4)) {
            case 0 -> {
                return Arrays.copyOf(json, random.nextInt(json.length));
            }
            case 1 -> {
                byte[] b = json.clone();
                for (int i = random.nextInt(1, 6); i > 0; i--)
                    b[random.nextInt(b.length)] ^= (byte) (1 << random.nextInt(8));
                return b;
            }
            default -> {
                Object root = Json.parse(new String(json, StandardCharsets.UTF_8));
                // walk down a random path of objects and lists, then replace, remove or retype what is there
                Object node = root;
                for (int depth = random.nextInt(1, 5); depth > 0; depth--) {
                    Object next = child(node, random);
                    if (next == null || !(next instanceof Map || next instanceof List)) break;
                    node = next;
                }
                if (node instanceof Map<?, ?> m && !m.isEmpty()) {
                    Map<String, Object> map = (Map<String, Object>) m;
                    String key = new ArrayList<>(map.keySet()).get(random.nextInt(map.size()));
                    if (random.nextInt(3) == 0) map.remove(key);
                    else map.put(key, hostileValue(random));
                } else if (node instanceof List<?> l && !l.isEmpty()) {
                    List<Object> list = (List<Object>) l;
                    list.set(random.nextInt(list.size()), hostileValue(random));
                }
                return Json.write(root).getBytes(StandardCharsets.UTF_8);
            }
        }
    }

    private static Object child(Object node, SplittableRandom random) {
        if (node instanceof Map<?, ?> m && !m.isEmpty())
            return new ArrayList<>(m.values()).get(random.nextInt(m.size()));
        if (node instanceof List<?> l && !l.isEmpty()) return l.get(random.nextInt(l.size()));
        return null;
    }

    private static Object hostileValue(SplittableRandom random) {
        return switch (random.nextInt(10)) {
            case 0 -> null;
            case 1 -> "";
            case 2 -> randomString(random, 20);
            case 3 -> random.nextLong();
            case 4 -> -1L;
            case 5 -> Long.MAX_VALUE;
            case 6 -> List.of("a", "b", "c");
            case 7 -> Map.of("type", "Sequence", "pretokenizers", List.of(Map.of("type", "Split")));
            case 8 -> 1e300;
            default -> false;
        };
    }

    private void strings(SplittableRandom random) {
        String s = random.nextInt(500) == 0 ? huge(random) : randomString(random, random.nextInt(0, 400));
        int[] ids = real.encode(s, random.nextBoolean());
        outcomes.merge(s.length() > 100_000 ? "huge strings" : "strings", 1, Integer::sum);
        for (int id : ids)
            if (id < 0 || id >= real.vocabSize())
                throw new Finding("encode gave id " + id + " for " + describe(s), null);
        if (wellFormed(s)) {
            String back = real.decode(real.encode(s, false), false);
            if (!back.equals(s))
                throw new Finding("decode(encode(s)) != s for " + describe(s) + ": " + describe(back), null);
        }
        int[] randomIds =
                random.ints(random.nextInt(1, 50), -5, real.vocabSize() + 5).toArray();
        boolean valid = Arrays.stream(randomIds).allMatch(id -> id >= 0 && id < real.vocabSize());
        try {
            real.decode(randomIds);
            var stream = real.streamDecoder(true);
            for (int id : randomIds) stream.push(id);
            stream.flush();
            if (!valid)
                throw new Finding("decode took ids outside the vocabulary: " + Arrays.toString(randomIds), null);
        } catch (IllegalArgumentException e) {
            if (valid) throw new Finding("decode refused valid ids " + Arrays.toString(randomIds), e);
        }
    }

    private void chat(SplittableRandom random) {
        List<ChatTemplate.Message> messages = new ArrayList<>();
        String[] roles = {"system", "user", "assistant", "user"};
        for (int i = random.nextInt(1, 5); i > 0; i--)
            messages.add(new ChatTemplate.Message(roles[random.nextInt(roles.length)], randomString(random, 60)));
        String marker = "{{ 6*7 }}";
        messages.add(new ChatTemplate.Message("user", marker));
        try {
            String rendered = realTemplate.render(messages, random.nextBoolean());
            if (!rendered.contains(marker)) throw new Finding("message text was evaluated as template code", null);
            real.encode(rendered, false);
            outcomes.merge("chats rendered", 1, Integer::sum);
        } catch (IllegalArgumentException e) {
            outcomes.merge("chats refused by the template", 1, Integer::sum);
            // a template may reject a conversation (raise_exception), e.g. roles out of order: fine
        }
    }

    private static String randomString(SplittableRandom random, int length) {
        StringBuilder sb = new StringBuilder();
        while (sb.length() < length) {
            switch (random.nextInt(6)) {
                case 0 -> sb.append(PIECES[random.nextInt(PIECES.length)]);
                case 1 -> sb.append((char) random.nextInt(0x20, 0x7F));
                case 2 -> sb.appendCodePoint(random.nextInt(0, 0x3000));
                case 3 -> sb.append((char) random.nextInt(0, 0x10000)); // lone surrogates possible
                case 4 -> sb.appendCodePoint(random.nextInt(0x10000, 0x110000));
                default -> sb.append(" ".repeat(random.nextInt(1, 20)));
            }
        }
        return sb.toString();
    }

    /** About a megabyte of one repeated piece or of random text: encoding must stay fast (no quadratic word). */
    private static String huge(SplittableRandom random) {
        return switch (random.nextInt(3)) {
            case 0 -> "a".repeat(1 << 20);
            case 1 -> "😀".repeat(1 << 18);
            default -> randomString(random, 1 << 20);
        };
    }

    private static boolean wellFormed(String s) {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (Character.isHighSurrogate(c)) {
                if (i + 1 >= s.length() || !Character.isLowSurrogate(s.charAt(i + 1))) return false;
                i++;
            } else if (Character.isLowSurrogate(c)) return false;
        }
        return true;
    }

    private static String describe(String s) {
        String head = s.length() > 80 ? s.substring(0, 80) + "… (" + s.length() + " chars)" : s;
        StringBuilder sb = new StringBuilder("\"");
        head.codePoints().forEach(c -> {
            if (c < 0x20 || (c >= 0xD800 && c < 0xE000)) sb.append(String.format("\\u%04x", c));
            else sb.appendCodePoint(c);
        });
        return sb.append('"').toString();
    }
}
