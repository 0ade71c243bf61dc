package dev.moe4j.tokenizer;

import java.nio.charset.StandardCharsets;

/**
 * GPT-2's byte-level alphabet (HF {@code ByteLevel}): every byte is shown as one printable character, so that BPE
 * works on text with no unknown symbols. Bytes that are printable Latin-1 stand for themselves; the other 68 map, in
 * byte order, to U+0100 and up.
 */
final class ByteLevel {
    private static final char[] BYTE_TO_CHAR = new char[256];
    private static final int[] CHAR_TO_BYTE;

    static {
        int extra = 0;
        for (int b = 0; b < 256; b++) {
            boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            BYTE_TO_CHAR[b] = printable ? (char) b : (char) (256 + extra++);
        }
        CHAR_TO_BYTE = new int[256 + extra];
        java.util.Arrays.fill(CHAR_TO_BYTE, -1);
        for (int b = 0; b < 256; b++) CHAR_TO_BYTE[BYTE_TO_CHAR[b]] = b;
    }

    private ByteLevel() {}

    /** The character standing for a byte (0..255). */
    static char charOf(int b) {
        return BYTE_TO_CHAR[b];
    }

    /** The text's UTF-8 bytes, each written as its byte-level character. */
    static String encode(String text) {
        byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
        char[] chars = new char[bytes.length];
        for (int i = 0; i < bytes.length; i++) chars[i] = BYTE_TO_CHAR[bytes[i] & 0xFF];
        return new String(chars);
    }

    /**
     * The bytes a token stands for, as HF's ByteLevel decoder finds them: each character mapped back to its byte when
     * all of the token's characters belong to the alphabet, else the token's own UTF-8 bytes (added tokens such as
     * {@code <｜User｜>}).
     */
    static byte[] decodeToken(String token) {
        byte[] bytes = new byte[token.length()];
        for (int i = 0; i < token.length(); i++) {
            char c = token.charAt(i);
            if (c >= CHAR_TO_BYTE.length || CHAR_TO_BYTE[c] < 0) return token.getBytes(StandardCharsets.UTF_8);
            bytes[i] = (byte) CHAR_TO_BYTE[c];
        }
        return bytes;
    }
}
