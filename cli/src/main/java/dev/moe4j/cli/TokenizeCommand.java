package dev.moe4j.cli;

import dev.moe4j.internal.Json;
import dev.moe4j.tokenizer.Tokenizer;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * {@code tokenize}: token ids of texts as HF {@code tokenizers} computes them with {@code add_special_tokens=False}
 * (special tokens written in the text are recognised), one {@code {"ids": [...], "decoded": "..."}} line per text.
 */
final class TokenizeCommand {
    private TokenizeCommand() {}

    static final String USAGE = "tokenize --tokenizer DIR (--text TEXT | --jsonl FILE)";

    static int run(String[] args) {
        Options o = new Options("tokenize", args, Set.of("--tokenizer", "--text", "--jsonl"), Set.of());
        if (o.has("--text") == o.has("--jsonl"))
            throw new IllegalArgumentException("tokenize needs exactly one of --text and --jsonl");
        Tokenizer tokenizer = Tokenizer.load(Path.of(o.string("--tokenizer")));
        if (o.has("--text")) {
            print(tokenizer, o.string("--text"));
            return 0;
        }
        Path file = Path.of(o.string("--jsonl"));
        List<String> lines;
        try {
            lines = Files.readAllLines(file);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read --jsonl " + file + ": " + e.getMessage(), e);
        }
        for (int n = 0; n < lines.size(); n++) {
            if (lines.get(n).isBlank()) continue;
            if (!(Json.parse(lines.get(n)) instanceof Map<?, ?> m) || !(m.get("text") instanceof String text))
                throw new IllegalArgumentException(file + " line " + (n + 1) + ": expected {\"text\": \"...\"}");
            print(tokenizer, text);
        }
        return 0;
    }

    private static void print(Tokenizer tokenizer, String text) {
        int[] ids = tokenizer.encode(text, false);
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("ids", GenerateCommand.idList(ids));
        m.put("decoded", tokenizer.decode(ids));
        System.out.println(Json.write(m));
    }
}
