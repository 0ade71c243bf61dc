package dev.moe4j.tokenizer;

import java.util.Arrays;

/**
 * Decodes one generated sequence token by token. A token may end inside a UTF-8 sequence (an emoji or CJK character
 * is often split over two or three byte-level tokens); its bytes are held back until the sequence completes, so no
 * U+FFFD appears for a character that is merely split. Bytes that can never become well formed are emitted as U+FFFD
 * at once, exactly where {@link Tokenizer#decode} puts them: the concatenation of every {@link #push} result and the
 * final {@link #flush} equals {@code decode} of all the ids pushed.
 *
 * <p>One per sequence; not thread-safe. Get one from {@link Tokenizer#streamDecoder(boolean)}.
 */
public final class StreamDecoder {
    private final Tokenizer tokenizer;
    private final boolean skipSpecialTokens;
    private byte[] pending = new byte[8];
    private int pendingLength;

    StreamDecoder(Tokenizer tokenizer, boolean skipSpecialTokens) {
        this.tokenizer = tokenizer;
        this.skipSpecialTokens = skipSpecialTokens;
    }

    /**
     * Adds one token.
     *
     * @return the text this token completes (possibly empty, when it ends inside a character)
     * @throws IllegalArgumentException if id is no token, naming it; the decoder is then unchanged
     */
    public String push(int id) {
        byte[] bytes = tokenizer.bytes(id, skipSpecialTokens);
        if (pendingLength + bytes.length > pending.length) {
            pending = Arrays.copyOf(pending, Math.max(pending.length * 2, pendingLength + bytes.length));
        }
        System.arraycopy(bytes, 0, pending, pendingLength, bytes.length);
        pendingLength += bytes.length;
        StringBuilder text = new StringBuilder();
        int decoded = Utf8.decode(pending, 0, pendingLength, text, false);
        // What is left is at most three bytes of a sequence that is well formed so far.
        System.arraycopy(pending, decoded, pending, 0, pendingLength - decoded);
        pendingLength -= decoded;
        return text.toString();
    }

    /**
     * Ends the sequence: a character still incomplete becomes one U+FFFD. The decoder is then empty and may start a
     * new sequence.
     *
     * @return the text held back, possibly empty
     */
    public String flush() {
        StringBuilder text = new StringBuilder();
        Utf8.decode(pending, 0, pendingLength, text, true);
        pendingLength = 0;
        return text.toString();
    }
}
