package dev.moe4j.engine;

import java.util.List;

/**
 * A finished request.
 *
 * @param promptIds the prompt as the model saw it (BOS included when the tokenizer adds one)
 * @param outputIds the generated tokens, a stop token included
 * @param text the generated text (null without a tokenizer), cut before a stop string
 * @param finishReason why generation ended
 * @param choices each generated token's log-probabilities (and alternatives when {@link SamplingParams#logprobs} > 0)
 */
public record Result(
        int[] promptIds, int[] outputIds, String text, FinishReason finishReason, List<Sampler.Choice> choices) {
    /**
     * Why a request ended: a stop token or string ({@code STOP}), its token limit or the context ({@code LENGTH}), or
     * its caller or the engine's shutdown ended it early ({@code CANCELLED}, only from an {@link Engine}).
     */
    public enum FinishReason {
        STOP,
        LENGTH,
        CANCELLED;

        /** The OpenAI API's name: {@code "stop"} or {@code "length"}. */
        public String apiName() {
            return name().toLowerCase(java.util.Locale.ROOT);
        }
    }

    public Result {
        promptIds = promptIds.clone();
        outputIds = outputIds.clone();
        choices = List.copyOf(choices);
    }

    public int promptTokens() {
        return promptIds.length;
    }

    public int completionTokens() {
        return outputIds.length;
    }

    @Override
    public int[] promptIds() {
        return promptIds.clone();
    }

    @Override
    public int[] outputIds() {
        return outputIds.clone();
    }
}
