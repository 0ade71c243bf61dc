package dev.moe4j.tokenizer;

/**
 * Lossy UTF-8 decoding the way Rust's {@code String::from_utf8_lossy} does it (what HF tokenizers' decoders use):
 * each maximal ill-formed subpart becomes one U+FFFD, per the Unicode "substitution of maximal subparts" practice.
 */
final class Utf8 {
    static final char REPLACEMENT = '\uFFFD';

    private Utf8() {}

    /**
     * Decodes {@code bytes[from, to)} into {@code out}.
     *
     * @param endOfInput whether no more bytes follow; when false, a trailing sequence that is well formed so far but
     *     incomplete is left undecoded
     * @return the index of the first byte not decoded ({@code to} unless a trailing sequence was held back)
     */
    static int decode(byte[] bytes, int from, int to, StringBuilder out, boolean endOfInput) {
        int i = from;
        while (i < to) {
            int lead = bytes[i] & 0xFF;
            if (lead < 0x80) {
                out.append((char) lead);
                i++;
                continue;
            }
            int length = sequenceLength(lead);
            if (length == 0) {
                out.append(REPLACEMENT);
                i++;
                continue;
            }
            int codePoint = lead & (0xFF >> (length + 1));
            int k = 1;
            while (k < length && i + k < to && accepts(lead, k, bytes[i + k] & 0xFF)) {
                codePoint = (codePoint << 6) | (bytes[i + k] & 0x3F);
                k++;
            }
            if (k == length) {
                out.appendCodePoint(codePoint);
            } else if (i + k == to && !endOfInput) {
                return i;
            } else {
                out.append(REPLACEMENT);
            }
            i += k;
        }
        return to;
    }

    /** The length of the sequence a lead byte starts, 0 for a byte that never starts one. */
    private static int sequenceLength(int lead) {
        if (lead >= 0xC2 && lead <= 0xDF) return 2;
        if (lead >= 0xE0 && lead <= 0xEF) return 3;
        if (lead >= 0xF0 && lead <= 0xF4) return 4;
        return 0;
    }

    /** Whether {@code b} may stand at position {@code k} (1-based after the lead) of a sequence led by {@code lead}. */
    private static boolean accepts(int lead, int k, int b) {
        if (k == 1) {
            // The second byte's range excludes overlong forms, surrogates and code points above U+10FFFF.
            return switch (lead) {
                case 0xE0 -> b >= 0xA0 && b <= 0xBF;
                case 0xED -> b >= 0x80 && b <= 0x9F;
                case 0xF0 -> b >= 0x90 && b <= 0xBF;
                case 0xF4 -> b >= 0x80 && b <= 0x8F;
                default -> b >= 0x80 && b <= 0xBF;
            };
        }
        return b >= 0x80 && b <= 0xBF;
    }
}
