package dev.moe4j.kernels;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * The wrappers build their argument descriptors before {@code Context.call}, never inside its lambda: a
 * {@link dev.moe4j.runtime.Profiler} times the lambda as the native call, so descriptors built there would count Java
 * as native time (the benchmark's share of Java in a decode step would read low).
 */
class KernelCallsTest {
    @Test
    void descriptorsAreBuiltBeforeTheTimedCall() throws IOException {
        List<Path> sources;
        try (Stream<Path> files = Files.list(Path.of("src/main/java/dev/moe4j/kernels"))) {
            sources = files.filter(p -> p.toString().endsWith(".java")).toList();
        }
        assertTrue(sources.size() > 10, "found the wrappers' sources");
        List<String> inside = new ArrayList<>();
        int calls = 0;
        for (Path source : sources) {
            String text = Files.readString(source);
            for (int at = text.indexOf(".call("); at >= 0; at = text.indexOf(".call(", at + 1)) {
                calls++;
                String call = text.substring(at, closingParenthesis(text, at + ".call".length()) + 1);
                if (call.contains(".descriptor(")) inside.add(source.getFileName() + ": " + call);
            }
        }
        assertTrue(calls > 15, "found the wrappers' calls");
        assertTrue(inside.isEmpty(), "descriptors built inside the timed call: " + inside);
    }

    /** The index of the parenthesis that closes the one at {@code open}. */
    private static int closingParenthesis(String text, int open) {
        int depth = 0;
        for (int i = open; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c == '(') depth++;
            else if (c == ')' && --depth == 0) return i;
        }
        throw new AssertionError("unbalanced parentheses after " + open);
    }
}
