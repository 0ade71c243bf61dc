package dev.moe4j.engine;

import dev.moe4j.model.PagedLatentCache;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.Tensor;
import dev.moe4j.tokenizer.StreamDecoder;
import dev.moe4j.tokenizer.Tokenizer;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.locks.ReentrantLock;

/**
 * Generation over a {@link Model}: runs a list of requests together, one model step at a time, each step mixing the
 * requests' single decode tokens with chunks of the prompts still being read (at most {@code stepTokens} tokens per
 * step). Results are the same whichever requests share the batch and however prompts are chunked, when the model is
 * {@linkplain Model#reproducible reproducible}.
 *
 * <p>With a tokenizer whose vocabulary is smaller than the model's (DeepSeek-V3 pads 128815 tokens to 129280 logits),
 * the padding ids are never chosen.
 *
 * <p>Admission: the whole batch's cache need (each prompt plus its new tokens, up to the context) must fit in the
 * model's free cache before anything runs; otherwise {@link IllegalStateException} names the need and what is free.
 *
 * <p>Thread-safety: a generator runs one call at a time on the calling thread. A call from another thread while one
 * runs, or from a listener inside a call, throws {@link IllegalStateException}; nothing is done then.
 */
public final class Generator {
    /** Receives tokens as they are chosen (on the generating thread). */
    public interface Listener {
        /**
         * @param request the request's index in the list given to {@link #generate(List, Listener)}
         * @param choice the token chosen, with its log-probabilities
         * @param text the text this token completes (may be empty while UTF-8 or a possible stop string is held back;
         *     null without a tokenizer)
         */
        default void onToken(int request, Sampler.Choice choice, String text) {}

        /** The logits the request's next token is chosen from (the array is reused after the call returns). */
        default void onLogits(int request, float[] logits) {}
    }

    private final Model model;
    private final Tokenizer tokenizer;
    private final int stepTokens;
    private final Set<Integer> eosIds = new HashSet<>();
    private final ReentrantLock lock = new ReentrantLock();

    /**
     * @param tokenizer encodes text prompts and decodes outputs; may be null (then requests must bring token ids and
     *     results have no text)
     * @param stepTokens the most tokens one model step runs (prompt chunks are cut to fit), ≥ 1
     */
    public Generator(Model model, Tokenizer tokenizer, int stepTokens) {
        this.model = Objects.requireNonNull(model, "model");
        this.tokenizer = tokenizer;
        if (stepTokens < 1) throw new IllegalArgumentException("stepTokens must be ≥ 1, got " + stepTokens);
        this.stepTokens = stepTokens;
        eosIds.addAll(model.config().eosTokenIds());
        if (tokenizer != null) tokenizer.eosId().ifPresent(eosIds::add);
    }

    public Model model() {
        return model;
    }

    /** The tokenizer, or null. */
    public Tokenizer tokenizer() {
        return tokenizer;
    }

    /** One request, run alone. */
    public Result generate(Request request) {
        return generate(List.of(request), null).get(0);
    }

    /**
     * Runs requests together until each one stops.
     *
     * @param listener receives tokens as they are chosen (may be null)
     * @return one result per request, in order
     * @throws IllegalArgumentException if a prompt is text but there is no tokenizer, a token id is outside the
     *     vocabulary, or a prompt does not leave room for one new token in the model's context
     * @throws IllegalStateException if the batch does not fit in the free cache, or the generator is in use
     */
    public List<Result> generate(List<Request> requests, Listener listener) {
        Objects.requireNonNull(requests, "requests");
        if (requests.isEmpty()) throw new IllegalArgumentException("requests is empty");
        acquire();
        try {
            return run(requests, listener);
        } finally {
            lock.unlock();
        }
    }

    /**
     * The next-token logits at every position of a sequence: row t is the distribution of token t + 1 given tokens
     * 0..t. Runs the sequence in chunks of {@code stepTokens} through a fresh cache sequence, freed afterwards.
     *
     * @return F32 [ids.length, vocab] in arena
     */
    public Tensor score(int[] ids, Arena arena) {
        Objects.requireNonNull(ids, "ids");
        if (ids.length == 0) throw new IllegalArgumentException("ids is empty");
        acquire();
        try {
            checkIds(ids, "ids");
            if (ids.length > model.maxPositions())
                throw new IllegalArgumentException(
                        ids.length + " tokens exceed the model's context of " + model.maxPositions());
            int blocks = Model.cacheBlocksFor(ids.length);
            if (blocks > model.freeCacheBlocks())
                throw new IllegalStateException("scoring " + ids.length + " tokens needs " + blocks
                        + " cache blocks but " + model.freeCacheBlocks() + " are free");
            Tensor out = Tensor.allocate(arena, DType.F32, ids.length, model.vocabSize());
            long rowBytes = (long) model.vocabSize() * 4;
            int sequence = model.newSequence();
            try {
                for (int start = 0; start < ids.length; start += stepTokens) {
                    int n = Math.min(stepTokens, ids.length - start);
                    int[] chunk = Arrays.copyOfRange(ids, start, start + n);
                    try (Arena step = Arena.ofConfined()) {
                        Tensor logits = model.forward(new int[] {sequence}, new int[][] {chunk}, true, step);
                        MemorySegment.copy(logits.segment(), 0, out.segment(), start * rowBytes, n * rowBytes);
                    }
                }
            } finally {
                model.freeSequence(sequence);
            }
            return out;
        } finally {
            lock.unlock();
        }
    }

    private void acquire() {
        if (lock.isHeldByCurrentThread())
            throw new IllegalStateException("the generator was called again from inside one of its calls (a listener)");
        if (!lock.tryLock())
            throw new IllegalStateException("the generator is in use by another thread; it runs one call at a time");
    }

    private void checkIds(int[] ids, String what) {
        for (int i = 0; i < ids.length; i++)
            if (ids[i] < 0 || ids[i] >= model.vocabSize())
                throw new IllegalArgumentException(
                        what + "[" + i + "] = " + ids[i] + " is outside the vocabulary [0, " + model.vocabSize() + ")");
    }

    /** One request's progress. */
    private final class Active {
        final int index;
        final Request request;
        final int[] prompt;
        final int limit; // new tokens it may generate
        final Sampler sampler;
        final StreamDecoder decoder;
        final Set<Integer> stops = new HashSet<>(eosIds);
        final List<Integer> output = new ArrayList<>();
        final List<Sampler.Choice> choices = new ArrayList<>();
        final StringBuilder text = new StringBuilder(); // decoded so far, stop strings not yet cut
        int emitted; // chars of text given to the listener
        boolean cut; // the text was cut at a stop string
        int sequence = -1;
        int read; // prompt tokens in the cache
        int next = -1; // the sampled token not yet in the cache
        Result.FinishReason finish;

        Active(int index, Request request) {
            this.index = index;
            this.request = request;
            if (request.inputIds() != null) {
                prompt = request.inputIds();
                checkIds(prompt, "request " + index + " inputIds");
            } else {
                if (tokenizer == null)
                    throw new IllegalArgumentException("request " + index
                            + " has a text prompt but the model has no tokenizer (tokenizer.json); give inputIds");
                prompt = tokenizer.encode(request.prompt(), true);
                if (prompt.length == 0) throw new IllegalArgumentException("request " + index + "'s prompt is empty");
            }
            if (prompt.length >= model.maxPositions())
                throw new IllegalArgumentException("request " + index + "'s prompt has " + prompt.length
                        + " tokens, leaving no room in the model's context of " + model.maxPositions());
            limit = Math.min(request.maxNewTokens(), model.maxPositions() - prompt.length);
            stops.addAll(request.stopTokenIds());
            sampler = new Sampler(request.sampling(), model.vocabSize(), prompt);
            decoder = tokenizer == null ? null : tokenizer.streamDecoder(true);
        }

        /** Cache tokens this request may hold: the prompt and every new token but the last, never fed back. */
        int cacheNeed() {
            return prompt.length + limit - 1;
        }

        boolean done() {
            return finish != null;
        }

        /** The tokens this request brings to the next step, at most budget of them. */
        int[] nextTokens(int budget) {
            if (read < prompt.length) {
                int n = Math.min(budget, prompt.length - read);
                return Arrays.copyOfRange(prompt, read, read + n);
            }
            return new int[] {next};
        }

        void consumed(int n) {
            if (read < prompt.length) read += n;
            else next = -1;
        }

        void accept(Sampler.Choice choice, Listener listener) {
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
            if (listener != null) listener.onToken(index, choice, delta);
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
            return new Result(prompt, ids, decoder == null ? null : text.toString(), finish, choices);
        }
    }

    private List<Result> run(List<Request> requests, Listener listener) {
        List<Active> all = new ArrayList<>();
        for (int i = 0; i < requests.size(); i++)
            all.add(new Active(i, Objects.requireNonNull(requests.get(i), "request " + i)));
        long blocks = 0;
        for (Active a : all) blocks += Model.cacheBlocksFor(a.cacheNeed());
        if (blocks > model.freeCacheBlocks())
            throw new IllegalStateException(requests.size() + " request(s) need " + blocks + " cache blocks of "
                    + PagedLatentCache.BLOCK_TOKENS + " tokens (each prompt plus its new tokens) but "
                    + model.freeCacheBlocks() + " of " + model.cacheTokens() / PagedLatentCache.BLOCK_TOKENS
                    + " are free; run fewer requests, shorter prompts or fewer new tokens, or load the model with more"
                    + " cache tokens");
        float[] row = new float[model.vocabSize()];
        int textVocab = tokenizer == null ? row.length : Math.min(row.length, tokenizer.vocabSize());
        long rowBytes = (long) model.vocabSize() * 4;
        try {
            for (Active a : all) a.sequence = model.newSequence();
            while (true) {
                // decode tokens first (one each), then prompt chunks in request order with what is left
                List<Active> step = new ArrayList<>();
                List<int[]> tokens = new ArrayList<>();
                int budget = stepTokens;
                for (Active a : all)
                    if (!a.done() && a.read == a.prompt.length && a.next >= 0) {
                        step.add(a);
                        tokens.add(a.nextTokens(1));
                        budget--;
                    }
                for (Active a : all)
                    if (!a.done() && a.read < a.prompt.length && budget > 0) {
                        int[] chunk = a.nextTokens(budget);
                        step.add(a);
                        tokens.add(chunk);
                        budget -= chunk.length;
                    }
                if (step.isEmpty()) break;
                int[] sequences = step.stream().mapToInt(a -> a.sequence).toArray();
                try (Arena arena = Arena.ofConfined()) {
                    Tensor logits = model.forward(sequences, tokens.toArray(int[][]::new), false, arena);
                    for (int i = 0; i < step.size(); i++) {
                        Active a = step.get(i);
                        a.consumed(tokens.get(i).length);
                        if (a.read < a.prompt.length) continue; // mid-prompt: no token yet
                        MemorySegment.copy(logits.segment(), ValueLayout.JAVA_FLOAT, i * rowBytes, row, 0, row.length);
                        if (listener != null) listener.onLogits(a.index, row);
                        // ids past the tokenizer's (a vocabulary padded for the GEMMs, as V3's 129280 over 128815)
                        // have no text: never chosen
                        for (int v = textVocab; v < row.length; v++) row[v] = Float.NEGATIVE_INFINITY;
                        a.accept(a.sampler.sample(row), listener);
                    }
                }
            }
        } finally {
            for (Active a : all) if (a.sequence >= 0) model.freeSequence(a.sequence);
        }
        List<Result> results = new ArrayList<>();
        for (Active a : all) results.add(a.result());
        return results;
    }
}
