package dev.moe4j.testing;

import static org.junit.jupiter.api.Assertions.fail;

import dev.moe4j.internal.Json;
import dev.moe4j.tokenizer.Tokenizer;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/**
 * The real DeepSeek-V3 tokenizer files (fetched once into build/tokenizers/deepseek-v3 by tools/fetch-tokenizer.sh)
 * and the reference outputs recorded from HF tokenizers/transformers (fixtures/tokenizer/deepseek-v3.json).
 */
public final class DeepSeekFiles {
    private static Tokenizer tokenizer;
    private static Map<String, Object> fixture;

    private DeepSeekFiles() {}

    /** Tests run in the java module folder; the repository root is its parent. */
    public static Path repoRoot() {
        return Path.of("..").toAbsolutePath().normalize();
    }

    public static synchronized Path dir() {
        Path dir = repoRoot().resolve("build/tokenizers/deepseek-v3");
        if (Files.isRegularFile(dir.resolve(Tokenizer.TOKENIZER_FILE))) return dir;
        Path script = repoRoot().resolve("tools/fetch-tokenizer.sh");
        try {
            Process p = new ProcessBuilder("bash", script.toString(), dir.toString())
                    .redirectErrorStream(true)
                    .start();
            String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            int status = p.waitFor();
            if (status != 0) fail(script + " " + dir + " failed (exit " + status + "):\n" + output);
        } catch (IOException e) {
            fail("cannot run " + script + ": " + e.getMessage());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            fail("interrupted while fetching the tokenizer");
        }
        return dir;
    }

    public static synchronized Tokenizer tokenizer() {
        if (tokenizer == null) tokenizer = Tokenizer.load(dir());
        return tokenizer;
    }

    @SuppressWarnings("unchecked")
    public static synchronized Map<String, Object> fixture() {
        if (fixture == null) {
            try (InputStream in = DeepSeekFiles.class.getResourceAsStream("/fixtures/tokenizer/deepseek-v3.json")) {
                if (in == null) fail("fixtures/tokenizer/deepseek-v3.json is not on the test class path");
                fixture = (Map<String, Object>) Json.parse(new String(in.readAllBytes(), StandardCharsets.UTF_8));
            } catch (IOException e) {
                fail("cannot read the tokenizer fixture: " + e.getMessage());
            }
        }
        return fixture;
    }

    @SuppressWarnings("unchecked")
    public static List<Map<String, Object>> cases(String section) {
        return (List<Map<String, Object>>) fixture().get(section);
    }

    public static int[] ids(Object json) {
        List<?> list = (List<?>) json;
        int[] ids = new int[list.size()];
        for (int i = 0; i < ids.length; i++) ids[i] = (int) (long) (Long) list.get(i);
        return ids;
    }
}
