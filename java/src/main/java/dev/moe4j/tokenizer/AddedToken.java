package dev.moe4j.tokenizer;

/**
 * One entry of tokenizer.json's {@code added_tokens}: text matched as a whole before pre-tokenization.
 *
 * @param singleWord match only where no word character touches either end
 * @param lstrip the match takes the whitespace on its left
 * @param rstrip the match takes the whitespace on its right
 * @param normalized matched in the normalized text rather than the raw input
 * @param special a control token: skipped by decoding when asked to skip special tokens
 */
record AddedToken(
        String content,
        int id,
        boolean special,
        boolean singleWord,
        boolean lstrip,
        boolean rstrip,
        boolean normalized) {}
