package dev.moe4j.cli;

import java.nio.file.Path;
import java.util.SplittableRandom;

/** One fuzzer of {@code ./moe4j fuzz}: an iteration tries one mutated input and throws on a finding. */
interface Fuzzer {
    /** A failure the fuzzer detected itself (e.g. an error message that does not name its file). */
    final class Finding extends RuntimeException {
        Finding(String message, Throwable cause) {
            super(message, cause);
        }
    }

    String name();

    /** What an iteration tries: "files", "strings", "calls". */
    String unit();

    /**
     * Tries one input drawn from random, with an empty scratch folder of its own. Returns normally when the code
     * under test behaved (worked, or failed the documented way); throws anything else.
     */
    void iteration(SplittableRandom random, Path scratch) throws Exception;

    /** What the iterations did so far (how many inputs worked, how many were refused, how), for the final report. */
    String outcomes();
}
