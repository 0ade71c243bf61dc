package dev.moe4j.routing;

/** How a gate turns logits into expert scores ({@code scoring_func} in DeepSeek configs). */
public enum Scoring {
    /** Softmax over all experts (DeepSeek-V2, V2-Lite). */
    SOFTMAX,
    /** Independent sigmoid per expert (DeepSeek-V3). */
    SIGMOID;

    /** Parses a config's {@code scoring_func} ("softmax" or "sigmoid"). */
    public static Scoring parse(String name) {
        return switch (name) {
            case "softmax" -> SOFTMAX;
            case "sigmoid" -> SIGMOID;
            default ->
                throw new IllegalArgumentException(
                        "scoring_func must be \"softmax\" or \"sigmoid\", got \"" + name + "\"");
        };
    }
}
