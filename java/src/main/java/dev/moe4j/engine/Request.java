package dev.moe4j.engine;

import java.util.List;
import java.util.Objects;

/**
 * One generation request: a prompt (token ids, or text the {@link Generator}'s tokenizer encodes with its BOS rule),
 * how to sample, and when to stop.
 *
 * @param inputIds the prompt's token ids, or null when {@code prompt} is given
 * @param prompt the prompt's text, or null when {@code inputIds} is given
 * @param sampling how each token is chosen
 * @param maxNewTokens the most tokens to generate (≥ 1); fewer when the model's context ends first
 * @param stopTokenIds tokens that end the request (kept in the output ids, not in the text); the model's EOS tokens
 *     always do
 * @param stopStrings texts that end the request; the text is cut before the first one found, which is not returned
 */
public record Request(
        int[] inputIds,
        String prompt,
        SamplingParams sampling,
        int maxNewTokens,
        List<Integer> stopTokenIds,
        List<String> stopStrings) {
    public Request {
        if ((inputIds == null) == (prompt == null))
            throw new IllegalArgumentException("a request has either inputIds or prompt, not both or neither");
        if (inputIds != null && inputIds.length == 0) throw new IllegalArgumentException("inputIds is empty");
        Objects.requireNonNull(sampling, "sampling");
        if (maxNewTokens < 1) throw new IllegalArgumentException("maxNewTokens must be ≥ 1, got " + maxNewTokens);
        stopTokenIds = List.copyOf(stopTokenIds);
        stopStrings = List.copyOf(stopStrings);
        for (String s : stopStrings)
            if (s.isEmpty()) throw new IllegalArgumentException("stopStrings holds an empty string");
        inputIds = inputIds == null ? null : inputIds.clone();
    }

    /** Token ids in, greedy, 16 new tokens. */
    public static Request ofIds(int... inputIds) {
        return new Request(inputIds, null, SamplingParams.greedy(), 16, List.of(), List.of());
    }

    /** Text in, greedy, 16 new tokens. */
    public static Request ofText(String prompt) {
        return new Request(
                null, Objects.requireNonNull(prompt, "prompt"), SamplingParams.greedy(), 16, List.of(), List.of());
    }

    public Request withSampling(SamplingParams sampling) {
        return new Request(inputIds, prompt, sampling, maxNewTokens, stopTokenIds, stopStrings);
    }

    public Request withMaxNewTokens(int maxNewTokens) {
        return new Request(inputIds, prompt, sampling, maxNewTokens, stopTokenIds, stopStrings);
    }

    public Request withStopTokenIds(List<Integer> stopTokenIds) {
        return new Request(inputIds, prompt, sampling, maxNewTokens, stopTokenIds, stopStrings);
    }

    public Request withStopStrings(List<String> stopStrings) {
        return new Request(inputIds, prompt, sampling, maxNewTokens, stopTokenIds, stopStrings);
    }

    @Override
    public int[] inputIds() {
        return inputIds == null ? null : inputIds.clone();
    }
}
