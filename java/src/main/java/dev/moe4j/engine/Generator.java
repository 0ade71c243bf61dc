package dev.moe4j.engine;

import dev.moe4j.model.PagedLatentCache;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.Tensor;
import dev.moe4j.tokenizer.Tokenizer;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
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
     * @param stepTokens the most tokens one model step runs (prompt chunks are cut to fit; a chunk passes it by up to
     *     two tokens rather than hold a single token of a longer prompt, see {@link Model}), ≥ 1
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
            RequestState.checkIds(model, ids, "ids");
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

    private List<Result> run(List<Request> requests, Listener listener) {
        List<RequestState> all = new ArrayList<>();
        for (int i = 0; i < requests.size(); i++)
            all.add(new RequestState(
                    i, Objects.requireNonNull(requests.get(i), "request " + i), model, tokenizer, eosIds));
        long blocks = 0;
        for (RequestState a : all) blocks += a.cacheBlocks();
        if (blocks > model.freeCacheBlocks())
            throw new IllegalStateException(requests.size() + " request(s) need " + blocks + " cache blocks of "
                    + PagedLatentCache.BLOCK_TOKENS + " tokens (each prompt plus its new tokens) but "
                    + model.freeCacheBlocks() + " of " + model.cacheTokens() / PagedLatentCache.BLOCK_TOKENS
                    + " are free; run fewer requests, shorter prompts or fewer new tokens, or load the model with more"
                    + " cache tokens");
        StepRunner runner = new StepRunner(model, tokenizer);
        StepRunner.LogitsSink logits = seesLogits(listener) ? (a, row) -> listener.onLogits(a.index, row) : null;
        RequestState.TokenSink tokens = (a, choice, text) -> {
            if (listener != null) listener.onToken(a.index, choice, text);
        };
        try {
            for (RequestState a : all) a.sequence = model.newSequence();
            while (runner.run(all, stepTokens, a -> true, logits, tokens) != null) {}
        } catch (StepRunner.StepFailedException e) {
            throw e.failure(); // a generator runs its batch as a whole: the model's failure is the call's
        } finally {
            for (RequestState a : all) if (a.sequence >= 0) model.freeSequence(a.sequence);
        }
        List<Result> results = new ArrayList<>();
        for (RequestState a : all) results.add(a.result());
        return results;
    }

    /**
     * Whether the listener overrides {@link Listener#onLogits}: only then are the rows handed to it before sampling
     * (which otherwise takes their statistics from one native call per step).
     */
    private static boolean seesLogits(Listener listener) {
        if (listener == null) return false;
        try {
            return listener.getClass()
                            .getMethod("onLogits", int.class, float[].class)
                            .getDeclaringClass()
                    != Listener.class;
        } catch (NoSuchMethodException e) {
            return true;
        }
    }
}
