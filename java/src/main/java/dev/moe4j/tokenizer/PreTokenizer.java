package dev.moe4j.tokenizer;

import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * HF's pre-tokenization for byte-level BPE: a sequence of steps, each cutting every piece from the step before into
 * smaller pieces. The steps are {@code Split} (a regex whose matches and the text between them become pieces) and
 * {@code ByteLevel} (optional prefix space, optional GPT-2 split, then each byte written as its byte-level character).
 * Each step sees one piece at a time, so a lookahead cannot see past the end of its piece. Immutable.
 */
final class PreTokenizer {
    /** GPT-2's split, used by ByteLevel when its use_regex is set. */
    private static final String GPT2_PATTERN =
            "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

    private static final Pattern GPT2 = compile(GPT2_PATTERN);

    /** One step. */
    sealed interface Step permits Split, ByteLevelStep {}

    /** A regex split with HF's "Isolated" behaviour: every match is a piece, and so is the text between matches. */
    record Split(Pattern pattern) implements Step {}

    record ByteLevelStep(boolean addPrefixSpace, boolean useRegex) implements Step {}

    private final List<Step> steps;

    PreTokenizer(List<Step> steps) {
        this.steps = List.copyOf(steps);
    }

    /**
     * Compiles a pattern from tokenizer.json for Java. HF compiles with Oniguruma, whose {@code \s}, {@code \w},
     * {@code \d} and case folding are Unicode-aware; Java's are ASCII unless UNICODE_CHARACTER_CLASS is set. Java
     * matches by code point, so supplementary characters (emoji, CJK extension B) are single characters as in Oniguruma.
     *
     * @throws IllegalArgumentException if Java cannot compile it
     */
    static Pattern compile(String regex) {
        try {
            return Pattern.compile(regex, Pattern.UNICODE_CHARACTER_CLASS);
        } catch (java.util.regex.PatternSyntaxException e) {
            throw new IllegalArgumentException("pre-tokenizer regex does not compile in Java: " + e.getMessage(), e);
        }
    }

    static Split splitStep(String regex) {
        return new Split(compile(regex));
    }

    /** The words of one stretch of text (no added tokens in it), in order, none empty. */
    List<String> split(String text) {
        List<String> pieces = new ArrayList<>();
        if (!text.isEmpty()) pieces.add(text);
        for (Step step : steps) {
            List<String> next = new ArrayList<>(pieces.size() * 2);
            for (String piece : pieces) {
                switch (step) {
                    case Split s -> isolate(piece, s.pattern(), next);
                    case ByteLevelStep b -> {
                        String p = b.addPrefixSpace() && !piece.startsWith(" ") ? " " + piece : piece;
                        if (b.useRegex()) {
                            List<String> parts = new ArrayList<>();
                            isolate(p, GPT2, parts);
                            for (String part : parts) next.add(ByteLevel.encode(part));
                        } else {
                            next.add(ByteLevel.encode(p));
                        }
                    }
                }
            }
            pieces = next;
        }
        return pieces;
    }

    private static void isolate(String piece, Pattern pattern, List<String> out) {
        Matcher m = pattern.matcher(piece);
        int emitted = 0;
        while (m.find()) {
            if (m.start() == m.end()) continue;
            if (emitted < m.start()) out.add(piece.substring(emitted, m.start()));
            out.add(piece.substring(m.start(), m.end()));
            emitted = m.end();
        }
        if (emitted < piece.length()) out.add(piece.substring(emitted));
    }
}
