package dev.moe4j.tokenizer;

import dev.moe4j.internal.Json;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * What moe4j uses of HF's tokenizer_config.json.
 *
 * @param specialTokens the named special tokens present ({@code bos_token}, {@code eos_token}, {@code pad_token},
 *     {@code unk_token}) as their text: the variables a chat template sees
 * @param chatTemplate the Jinja chat template, or null when the file has none
 */
record TokenizerConfig(
        boolean addBosToken,
        boolean addEosToken,
        String bosToken,
        String eosToken,
        Map<String, String> specialTokens,
        String chatTemplate) {

    static final String FILE = "tokenizer_config.json";

    private static final List<String> NAMED = List.of("bos_token", "eos_token", "pad_token", "unk_token");

    static TokenizerConfig empty() {
        return new TokenizerConfig(false, false, null, null, Map.of(), null);
    }

    /**
     * @throws UncheckedIOException if the file cannot be read
     * @throws IllegalArgumentException naming the file if it is not valid JSON or a field has the wrong type
     */
    static TokenizerConfig read(Path file) {
        String text;
        try {
            text = Files.readString(file);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file + ": " + e.getMessage(), e);
        }
        try {
            return parse(Json.parse(text));
        } catch (IllegalArgumentException | ClassCastException e) {
            throw new IllegalArgumentException("bad tokenizer config " + file + ": " + e.getMessage(), e);
        }
    }

    private static TokenizerConfig parse(Object json) {
        if (!(json instanceof Map<?, ?> root)) throw new IllegalArgumentException("the top level is not an object");
        Map<String, String> special = new LinkedHashMap<>();
        for (String name : NAMED) {
            String content = tokenText(root.get(name), name);
            if (content != null) special.put(name, content);
        }
        return new TokenizerConfig(
                flag(root, "add_bos_token"),
                flag(root, "add_eos_token"),
                special.get("bos_token"),
                special.get("eos_token"),
                Map.copyOf(special),
                template(root.get("chat_template")));
    }

    private static boolean flag(Map<?, ?> root, String name) {
        Object value = root.get(name);
        if (value == null) return false;
        if (value instanceof Boolean b) return b;
        throw new IllegalArgumentException(name + " is not a boolean: " + value);
    }

    /** A special token is written either as its text or as an AddedToken object with a "content" field. */
    private static String tokenText(Object value, String name) {
        return switch (value) {
            case null -> null;
            case String s -> s;
            case Map<?, ?> m when m.get("content") instanceof String s -> s;
            default -> throw new IllegalArgumentException(name + " is neither a string nor an object with content");
        };
    }

    /** A single template, or HF's list of named templates, of which moe4j uses the one named "default". */
    private static String template(Object value) {
        return switch (value) {
            case null -> null;
            case String s -> s;
            case List<?> list -> {
                for (Object entry : list) {
                    if (entry instanceof Map<?, ?> m
                            && "default".equals(m.get("name"))
                            && m.get("template") instanceof String s) yield s;
                }
                throw new IllegalArgumentException("chat_template lists no template named 'default'");
            }
            default -> throw new IllegalArgumentException("chat_template is neither a string nor a list");
        };
    }
}
