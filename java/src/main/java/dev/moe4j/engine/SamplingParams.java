package dev.moe4j.engine;

/**
 * How a {@link Sampler} turns one step's logits into a token: the parameters of an OpenAI/vLLM completion request.
 *
 * <p>The operations run in vLLM's order, each on what the previous one left:
 *
 * <ol>
 *   <li><b>Penalties</b> on the logits {@code l}. First the repetition penalty {@code r} (Hugging Face / vLLM
 *       semantics) on every token that occurs in the prompt or among the generated tokens: {@code l > 0 ? l / r : l ·
 *       r}. Then the presence and frequency penalties (OpenAI semantics, over the generated tokens only, as vLLM
 *       does): {@code l -= frequency · count + presence · [count > 0]}, where {@code count} is how often the sampler
 *       has produced the token. A penalised logit is kept within the finite float range, so an extreme penalty can
 *       neither produce an infinity nor erase a token.
 *   <li><b>Temperature</b> {@code T}: the distribution becomes {@code softmax(l / T)}. {@code T = 0} is greedy: the
 *       token with the highest penalised logit, ties to the lower token id; the filters below are skipped because
 *       none of them can remove that token, and no random number is drawn.
 *   <li><b>Top-k</b>: keep the {@code k} tokens with the highest logits (ties to the lower id); 0 = off.
 *   <li><b>Top-p</b> (nucleus): renormalise what is left and keep the smallest set of highest-probability tokens
 *       whose mass is ≥ {@code p}, the token that reaches {@code p} included (ties to the lower id); 1 = off.
 *   <li><b>Min-p</b>: keep the tokens whose probability is ≥ {@code minP} times the highest probability; 0 = off.
 *   <li><b>Sample</b> one of the remaining tokens in proportion to its probability.
 * </ol>
 *
 * <p>At least one token always survives the filters: each keeps the most probable token. Instances are immutable and
 * thread-safe.
 *
 * @param temperature T ≥ 0 and finite; 0 = greedy
 * @param topK number of tokens top-k keeps, ≥ 0; 0 = off (as does any value ≥ the vocabulary size)
 * @param topP nucleus mass, in (0, 1]; 1 = off
 * @param minP minimum probability relative to the most probable token, in [0, 1); 0 = off
 * @param repetitionPenalty r > 0 and finite, applied to prompt and generated tokens; 1 = off
 * @param presencePenalty subtracted once from the logit of every token generated at least once; finite, 0 = off
 *     (negative values encourage repetition)
 * @param frequencyPenalty subtracted from a token's logit once per time it was generated; finite, 0 = off
 * @param seed seed of the sampler's random generator: the same seed, parameters, prompt and logits give the same
 *     tokens on any JVM
 * @param logprobs number of most probable alternatives each {@link Sampler.Choice} reports, in [0, 20]
 */
public record SamplingParams(
        double temperature,
        int topK,
        double topP,
        double minP,
        double repetitionPenalty,
        double presencePenalty,
        double frequencyPenalty,
        long seed,
        int logprobs) {

    /** The largest {@link #logprobs} a request may ask for (OpenAI's limit). */
    public static final int MAX_LOGPROBS = 20;

    /** @throws IllegalArgumentException naming the first parameter outside its range and its value */
    public SamplingParams {
        if (!(temperature >= 0 && Double.isFinite(temperature)))
            throw new IllegalArgumentException("temperature must be finite and >= 0, got " + temperature);
        if (topK < 0) throw new IllegalArgumentException("topK must be >= 0 (0 = off), got " + topK);
        if (!(topP > 0 && topP <= 1)) throw new IllegalArgumentException("topP must be in (0, 1], got " + topP);
        if (!(minP >= 0 && minP < 1)) throw new IllegalArgumentException("minP must be in [0, 1), got " + minP);
        if (!(repetitionPenalty > 0 && Double.isFinite(repetitionPenalty)))
            throw new IllegalArgumentException(
                    "repetitionPenalty must be finite and > 0 (1 = off), got " + repetitionPenalty);
        if (!Double.isFinite(presencePenalty))
            throw new IllegalArgumentException("presencePenalty must be finite, got " + presencePenalty);
        if (!Double.isFinite(frequencyPenalty))
            throw new IllegalArgumentException("frequencyPenalty must be finite, got " + frequencyPenalty);
        if (logprobs < 0 || logprobs > MAX_LOGPROBS)
            throw new IllegalArgumentException("logprobs must be in [0, " + MAX_LOGPROBS + "], got " + logprobs);
    }

    /** Temperature 1, every filter and penalty off, seed 0, no alternatives reported. */
    public static SamplingParams defaults() {
        return new SamplingParams(1, 0, 1, 0, 1, 0, 0, 0, 0);
    }

    /** {@link #defaults()} with temperature 0: always the most probable token after penalties. */
    public static SamplingParams greedy() {
        return defaults().withTemperature(0);
    }

    /** Whether this is greedy decoding (temperature 0). */
    public boolean isGreedy() {
        return temperature == 0;
    }

    /** A copy with {@code temperature} replaced; validated as in the constructor. */
    public SamplingParams withTemperature(double temperature) {
        return new SamplingParams(
                temperature, topK, topP, minP, repetitionPenalty, presencePenalty, frequencyPenalty, seed, logprobs);
    }

    /** A copy with {@code topK} replaced; validated as in the constructor. */
    public SamplingParams withTopK(int topK) {
        return new SamplingParams(
                temperature, topK, topP, minP, repetitionPenalty, presencePenalty, frequencyPenalty, seed, logprobs);
    }

    /** A copy with {@code topP} replaced; validated as in the constructor. */
    public SamplingParams withTopP(double topP) {
        return new SamplingParams(
                temperature, topK, topP, minP, repetitionPenalty, presencePenalty, frequencyPenalty, seed, logprobs);
    }

    /** A copy with {@code minP} replaced; validated as in the constructor. */
    public SamplingParams withMinP(double minP) {
        return new SamplingParams(
                temperature, topK, topP, minP, repetitionPenalty, presencePenalty, frequencyPenalty, seed, logprobs);
    }

    /** A copy with {@code repetitionPenalty} replaced; validated as in the constructor. */
    public SamplingParams withRepetitionPenalty(double repetitionPenalty) {
        return new SamplingParams(
                temperature, topK, topP, minP, repetitionPenalty, presencePenalty, frequencyPenalty, seed, logprobs);
    }

    /** A copy with {@code presencePenalty} replaced; validated as in the constructor. */
    public SamplingParams withPresencePenalty(double presencePenalty) {
        return new SamplingParams(
                temperature, topK, topP, minP, repetitionPenalty, presencePenalty, frequencyPenalty, seed, logprobs);
    }

    /** A copy with {@code frequencyPenalty} replaced; validated as in the constructor. */
    public SamplingParams withFrequencyPenalty(double frequencyPenalty) {
        return new SamplingParams(
                temperature, topK, topP, minP, repetitionPenalty, presencePenalty, frequencyPenalty, seed, logprobs);
    }

    /** A copy with {@code seed} replaced. */
    public SamplingParams withSeed(long seed) {
        return new SamplingParams(
                temperature, topK, topP, minP, repetitionPenalty, presencePenalty, frequencyPenalty, seed, logprobs);
    }

    /** A copy with {@code logprobs} replaced; validated as in the constructor. */
    public SamplingParams withLogprobs(int logprobs) {
        return new SamplingParams(
                temperature, topK, topP, minP, repetitionPenalty, presencePenalty, frequencyPenalty, seed, logprobs);
    }
}
