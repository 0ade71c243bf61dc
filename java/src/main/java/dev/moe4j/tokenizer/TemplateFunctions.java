package dev.moe4j.tokenizer;

/** Functions HF transformers gives chat templates, for Jinjava (which calls public static methods). */
final class TemplateFunctions {
    private TemplateFunctions() {}

    /** {@code raise_exception(message)}: a template's way of rejecting its input. */
    public static Object raiseException(String message) {
        throw new Raised(message);
    }

    /** What raise_exception throws, told apart from Jinjava's own errors by ChatTemplate. */
    static final class Raised extends RuntimeException {
        Raised(String message) {
            super(message);
        }
    }
}
