package dev.moe4j.engine;

import dev.moe4j.tokenizer.StreamDecoder;
import dev.moe4j.tokenizer.Tokenizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * One request's progress through the model, for {@link Generator} and {@link Engine}: its prompt (tokenized), how
 * much of it the cache holds, the token sampled but not yet fed back, the output so far and its text, with stop
 * strings held back until they can no longer match. Not thread-safe: one scheduling thread drives it.
 */
final class RequestState {
    /** Receives each chosen token with the text it releases (null without a tokenizer). */
    interface TokenSink {
        void accept(RequestState state, Sampler.Choice choice, String text);
    }

    final int index;
    final Request request;
    final int[] prompt;
    final int limit; // new tokens it may generate
    final Sampler sampler;
    private final StreamDecoder decoder;
    private final Set<Integer> stops;
    private final List<Integer> output = new ArrayList<>();
    private final List<Sampler.Choice> choices = new ArrayList<>();
    private final StringBuilder text = new StringBuilder(); // decoded so far, stop strings not yet cut
    private int emitted; // chars of text released
    private boolean cut; // the text was cut at a stop string
    int sequence = -1;
    int read; // prompt tokens in the cache
    int next = -1; // the sampled token not yet in the cache
    Result.FinishReason finish;

    /**
     * @throws IllegalArgumentException if the prompt is text without a tokenizer, empty, has an id outside the
     *     vocabulary, or leaves no room for a new token in the model's context
     */
    RequestState(int index, Request request, Model model, Tokenizer tokenizer, Set<Integer> eosIds) {
        this.index = index;
        this.request = request;
        String who = "request " + index;
        if (request.inputIds() != null) {
            prompt = request.inputIds();
            checkIds(model, prompt, who + " inputIds");
        } else {
            if (tokenizer == null)
                throw new IllegalArgumentException(
                        who + " has a text prompt but the model has no tokenizer (tokenizer.json); give inputIds");
            prompt = tokenizer.encode(request.prompt(), true);
            if (prompt.length == 0) throw new IllegalArgumentException(who + "'s prompt is empty");
        }
        if (prompt.length >= model.maxPositions())
            throw new IllegalArgumentException(who + "'s prompt has " + prompt.length
                    + " tokens, leaving no room in the model's context of " + model.maxPositions());
        limit = Math.min(request.maxNewTokens(), model.maxPositions() - prompt.length);
        stops = new HashSet<>(eosIds);
        stops.addAll(request.stopTokenIds());
        sampler = new Sampler(request.sampling(), model.vocabSize(), prompt);
        decoder = tokenizer == null ? null : tokenizer.streamDecoder(true);
    }

    static void checkIds(Model model, int[] ids, String what) {
        for (int i = 0; i < ids.length; i++)
            if (ids[i] < 0 || ids[i] >= model.vocabSize())
                throw new IllegalArgumentException(
                        what + "[" + i + "] = " + ids[i] + " is outside the vocabulary [0, " + model.vocabSize() + ")");
    }

    /** Cache blocks this request may hold: the prompt and every new token but the last, never fed back. */
    int cacheBlocks() {
        return Model.cacheBlocksFor(prompt.length + limit - 1);
    }

    boolean done() {
        return finish != null;
    }

    boolean readingPrompt() {
        return read < prompt.length;
    }

    /** Whether the request has a sampled token to feed back (it is past its prompt and not finished). */
    boolean decoding() {
        return !done() && !readingPrompt() && next >= 0;
    }

    int generated() {
        return output.size();
    }

    /** The tokens this request brings to the next step: its decode token, or the next prompt chunk of about budget. */
    int[] nextTokens(int budget) {
        if (readingPrompt()) {
            int n = promptChunk(prompt.length - read, budget);
            return Arrays.copyOfRange(prompt, read, read + n);
        }
        return new int[] {next};
    }

    /**
     * The length of the next chunk of a prompt with {@code remaining} tokens left, for a step with room for
     * {@code budget} more: all of them if they fit, else about budget, but never one token of a longer prompt nor
     * leaving one behind. The model attends a sequence's single new token another way than several (Model#forward),
     * and a prompt's outputs must not depend on how it is chunked; such a chunk passes the budget by up to two tokens.
     */
    static int promptChunk(int remaining, int budget) {
        int n = Math.min(remaining, Math.max(budget, 2));
        if (remaining - n == 1) n = n >= 3 ? n - 1 : n + 1;
        return n;
    }

    void consumed(int n) {
        if (readingPrompt()) read += n;
        else next = -1;
    }

    void accept(Sampler.Choice choice, TokenSink sink) {
        int token = choice.token();
        output.add(token);
        choices.add(choice);
        next = token;
        String delta = null;
        if (stops.contains(token)) {
            finish = Result.FinishReason.STOP;
        } else if (decoder != null) {
            text.append(decoder.push(token));
            cutAtStopString();
        }
        if (finish == null && output.size() >= limit) finish = Result.FinishReason.LENGTH;
        if (decoder != null) {
            if (finish != null && !cut) text.append(decoder.flush()); // bytes of an unfinished character
            delta = releasable();
        }
        sink.accept(this, choice, delta);
    }

    /** Ends the request early (cancelled by its caller or the engine). */
    void cancel() {
        if (finish == null) finish = Result.FinishReason.CANCELLED;
    }

    private void cutAtStopString() {
        int at = -1;
        for (String stop : request.stopStrings()) {
            int i = text.indexOf(stop, Math.max(0, emitted - stop.length() + 1));
            if (i >= 0 && (at < 0 || i < at)) at = i;
        }
        if (at >= 0) {
            text.setLength(at);
            cut = true;
            finish = Result.FinishReason.STOP;
        }
    }

    /** Text that no stop string can still claim: all of it once finished, else up to a possible stop's start. */
    private String releasable() {
        int end = text.length();
        if (finish == null) {
            for (String stop : request.stopStrings())
                for (int k = Math.min(stop.length() - 1, text.length()); k > 0; k--)
                    if (text.length() - k >= emitted
                            && text.substring(text.length() - k).equals(stop.substring(0, k))) {
                        end = Math.min(end, text.length() - k);
                        break;
                    }
        }
        String delta = text.substring(emitted, Math.max(emitted, end));
        emitted = Math.max(emitted, end);
        return delta;
    }

    Result result() {
        int[] ids = output.stream().mapToInt(Integer::intValue).toArray();
        return new Result(prompt, ids, decoder == null ? null : text.substring(0, emitted), finish, choices);
    }
}
