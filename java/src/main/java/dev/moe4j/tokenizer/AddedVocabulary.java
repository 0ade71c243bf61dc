package dev.moe4j.tokenizer;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * Finds added tokens in text the way HF's AddedVocabulary does: non-overlapping, leftmost-longest matches, first of
 * the tokens that are not normalized (on the raw text), then of the normalized ones (on the text between). Immutable.
 */
final class AddedVocabulary {
    // Rust's regex \w and \s are Unicode-aware; so are Java's with UNICODE_CHARACTER_CLASS.
    private static final Pattern WORD_CHAR = Pattern.compile("\\w", Pattern.UNICODE_CHARACTER_CLASS);
    private static final Pattern SPACE_CHAR = Pattern.compile("\\s", Pattern.UNICODE_CHARACTER_CLASS);

    /** A stretch of the input: an added token's id, or plain text ({@code id == -1}). */
    record Piece(String text, int id) {
        boolean isToken() {
            return id >= 0;
        }
    }

    private final Map<Character, List<AddedToken>> raw;
    private final Map<Character, List<AddedToken>> normalized;

    AddedVocabulary(List<AddedToken> tokens) {
        raw = index(tokens, false);
        normalized = index(tokens, true);
    }

    /** Tokens by first char, longest first, so the first that matches at a position is the longest. */
    private static Map<Character, List<AddedToken>> index(List<AddedToken> tokens, boolean normalized) {
        Map<Character, List<AddedToken>> byFirst = new HashMap<>();
        for (AddedToken token : tokens) {
            if (token.normalized() != normalized || token.content().isEmpty()) continue;
            byFirst.computeIfAbsent(token.content().charAt(0), c -> new ArrayList<>())
                    .add(token);
        }
        for (List<AddedToken> list : byFirst.values()) {
            list.sort(Comparator.comparingInt((AddedToken t) -> t.content().length())
                    .reversed());
        }
        return byFirst;
    }

    /**
     * Splits text into added tokens and the text between them (in order, no empty text pieces). The normalizer is the
     * identity here (the only kind {@link Tokenizer} accepts), so the normalized pass runs on the raw gaps.
     */
    List<Piece> split(String text) {
        List<Piece> pieces = new ArrayList<>();
        for (Piece piece : split(text, raw)) {
            if (piece.isToken()) pieces.add(piece);
            else pieces.addAll(split(piece.text(), normalized));
        }
        return pieces;
    }

    private static List<Piece> split(String text, Map<Character, List<AddedToken>> tokens) {
        List<Piece> pieces = new ArrayList<>();
        if (tokens.isEmpty()) {
            if (!text.isEmpty()) pieces.add(new Piece(text, -1));
            return pieces;
        }
        int emitted = 0;
        int at = 0;
        while (at < text.length()) {
            AddedToken token = longestAt(text, at, tokens);
            if (token == null) {
                at++;
                continue;
            }
            int start = at;
            int stop = at + token.content().length();
            // Scanning resumes after the raw match, as an Aho-Corasick iterator does, whether or not it is kept.
            at = stop;
            if (token.singleWord() && (endsWithWord(text, start) || startsWithWord(text, stop))) continue;
            if (token.lstrip()) {
                while (start > emitted && isWhitespace(text.codePointBefore(start))) {
                    start -= Character.charCount(text.codePointBefore(start));
                }
            }
            if (token.rstrip()) {
                while (stop < text.length() && isWhitespace(text.codePointAt(stop))) {
                    stop += Character.charCount(text.codePointAt(stop));
                }
                at = stop;
            }
            if (emitted < start) pieces.add(new Piece(text.substring(emitted, start), -1));
            pieces.add(new Piece(text.substring(start, stop), token.id()));
            emitted = stop;
        }
        if (emitted < text.length()) pieces.add(new Piece(text.substring(emitted), -1));
        return pieces;
    }

    private static AddedToken longestAt(String text, int at, Map<Character, List<AddedToken>> tokens) {
        List<AddedToken> candidates = tokens.get(text.charAt(at));
        if (candidates == null) return null;
        for (AddedToken token : candidates) {
            if (text.startsWith(token.content(), at)) return token;
        }
        return null;
    }

    private static boolean endsWithWord(String text, int end) {
        return end > 0 && isWordChar(text.codePointBefore(end));
    }

    private static boolean startsWithWord(String text, int start) {
        return start < text.length() && isWordChar(text.codePointAt(start));
    }

    private static boolean isWordChar(int codePoint) {
        return WORD_CHAR.matcher(Character.toString(codePoint)).matches();
    }

    private static boolean isWhitespace(int codePoint) {
        return SPACE_CHAR.matcher(Character.toString(codePoint)).matches();
    }
}
