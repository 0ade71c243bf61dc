package dev.moe4j.tokenizer;

/** Functions HF transformers gives chat templates, for Jinjava (which calls public static methods). */
final class TemplateFunctions {
    private TemplateFunctions() {}

    /** {@code raise_exception(message)}: a template's way of rejecting its input. */
    public static Object raiseException(String message) {
        throw new IllegalArgumentException(message);
    }
}
