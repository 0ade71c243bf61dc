package dev.moe4j.engine;

import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.Tensor;
import dev.moe4j.tokenizer.Tokenizer;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.ForkJoinTask;
import java.util.function.Predicate;

/**
 * One model step over a set of requests, shared by {@link Generator} and {@link Engine}: decode tokens first (one per
 * request that has one), then prompt chunks in the given order with what is left of the token budget (a prompt split
 * across steps as needed); then each request past its prompt samples its next token. Not thread-safe.
 */
final class StepRunner {
    /** Receives each logits row before sampling (the array is reused). */
    interface LogitsSink {
        void accept(RequestState state, float[] logits);
    }

    /** What a step ran: its requests and how many tokens each brought. */
    record Step(List<RequestState> states, int[] tokens, int promptTokens, int decodeTokens) {}

    /**
     * The model failed a step ({@link Model#forward} threw {@link #failure}): nothing of it happened, neither in the
     * cache nor in the requests' states, so each of {@link #states} may run again (alone, to find which one fails).
     */
    static final class StepFailedException extends RuntimeException {
        private final transient List<RequestState> states;
        private final RuntimeException failure;

        StepFailedException(List<RequestState> states, RuntimeException failure) {
            super("a model step over " + states.size() + " request(s) failed: " + failure.getMessage(), failure);
            this.states = List.copyOf(states);
            this.failure = failure;
        }

        /** The requests the step would have run, in step order. */
        List<RequestState> states() {
            return states;
        }

        /** What the model threw. */
        RuntimeException failure() {
            return failure;
        }
    }

    /** Helpers that draw beside the stepping thread: one per other CPU. */
    private static final int HELPERS = Math.min(
            ForkJoinPool.getCommonPoolParallelism(), Runtime.getRuntime().availableProcessors() - 1);

    private final Model model;
    private final float[] row;
    private final float[][] helperRows = new float[Math.max(HELPERS, 0)][];
    private final int textVocab;
    // [most sequences of a step so far, vocab], and per row the first argmax and Σ exp(logit - max) over the text
    // vocabulary (moe4j_logits_stats): reused by every step (grow-only)
    private Tensor logits, argmax, sumExp;

    StepRunner(Model model, Tokenizer tokenizer) {
        this.model = model;
        row = new float[model.vocabSize()];
        textVocab = tokenizer == null ? row.length : Math.min(row.length, tokenizer.vocabSize());
    }

    /**
     * Runs one step over the unfinished requests of {@code states}.
     *
     * @param budget the most tokens the step runs, ≥ 1
     * @param mayDecode whether a request past its prompt takes part in this step (false holds it back, e.g. while
     *     its reader is behind)
     * @return what ran, or null when no request had anything to run
     * @throws StepFailedException if the model failed the step; no request's state changed then
     */
    Step run(
            List<RequestState> states,
            int budget,
            Predicate<RequestState> mayDecode,
            LogitsSink logitsSink,
            RequestState.TokenSink tokenSink) {
        List<RequestState> step = new ArrayList<>();
        List<int[]> tokens = new ArrayList<>();
        int decode = 0, prompt = 0;
        for (RequestState s : states)
            if (s.decoding() && budget > 0 && mayDecode.test(s)) {
                step.add(s);
                tokens.add(s.nextTokens(1));
                budget--;
                decode++;
            }
        for (RequestState s : states)
            if (!s.done() && s.readingPrompt() && budget > 0) {
                int[] chunk = s.nextTokens(budget);
                step.add(s);
                tokens.add(chunk);
                budget -= chunk.length;
                prompt += chunk.length;
            }
        if (step.isEmpty()) return null;
        int[] sequences = step.stream().mapToInt(s -> s.sequence).toArray();
        int n = sequences.length;
        if (logits == null || logits.shape(0) < n) {
            Arena arena = Arena.ofAuto();
            logits = Tensor.allocate(arena, DType.F32, n, row.length);
            argmax = Tensor.allocate(arena, DType.I32, n);
            sumExp = Tensor.allocate(arena, DType.F32, n);
        }
        try {
            model.forward(sequences, tokens.toArray(int[][]::new), false, logits.slice(0, 0, n));
        } catch (RuntimeException e) {
            throw new StepFailedException(step, e);
        }
        // What sampling needs of each row, in one native call; the sampler's own loops give the same choices where a
        // listener sees (and may change) the rows first
        boolean summarized = logitsSink == null && summarize(n);
        if (!summarized) {
            for (int i = 0; i < step.size(); i++) {
                RequestState s = step.get(i);
                s.consumed(tokens.get(i).length);
                if (s.readingPrompt()) continue; // mid-prompt: no token yet
                copyRow(i, row);
                if (logitsSink != null) logitsSink.accept(s, row);
                s.accept(s.sampler.sample(row), tokenSink);
            }
        } else {
            for (int i = 0; i < step.size(); i++) step.get(i).consumed(tokens.get(i).length);
            Sampler.Choice[] choices = new Sampler.Choice[step.size()];
            RuntimeException[] failures = new RuntimeException[step.size()];
            drawAll(step, choices, failures);
            for (int i = 0; i < step.size(); i++) {
                if (failures[i] != null) throw failures[i];
                if (choices[i] != null) step.get(i).accept(choices[i], tokenSink);
            }
        }
        return new Step(step, tokens.stream().mapToInt(t -> t.length).toArray(), prompt, decode);
    }

    /** Row i of the step's logits into buffer, the ids past the text vocabulary masked. */
    private void copyRow(int i, float[] buffer) {
        MemorySegment.copy(
                logits.segment(),
                ValueLayout.JAVA_FLOAT,
                (long) i * buffer.length * Float.BYTES,
                buffer,
                0,
                buffer.length);
        // ids past the tokenizer's (a vocabulary padded for the GEMMs, as V3's 129280 over 128815) have no text: never
        // chosen, and outside the distribution
        for (int v = textVocab; v < buffer.length; v++) buffer[v] = Float.NEGATIVE_INFINITY;
    }

    /**
     * The next token of every request of the step past its prompt, from the summarized rows: greedy choices (one logit
     * each) on this thread, draws that read whole rows spread over this thread and helpers of the common
     * {@link ForkJoinPool} (at most one per CPU, none for a single draw). Between steps the kernels' threads are idle,
     * and each sampler is one request's own, so the choices are the same whoever draws them. A sampler's exception is
     * kept for its request (the step's caller sees the first, in step order).
     */
    private void drawAll(List<RequestState> step, Sampler.Choice[] choices, RuntimeException[] failures) {
        int[] draws = new int[step.size()];
        int count = 0;
        for (int i = 0; i < step.size(); i++) {
            RequestState s = step.get(i);
            if (s.readingPrompt()) continue; // mid-prompt: no token yet
            if (s.sampler.readsEveryLogit()) {
                draws[count++] = i;
                continue;
            }
            int best = argmax.segment().getAtIndex(ValueLayout.JAVA_INT, i);
            // a greedy choice reads one logit: not worth copying the row (V floats) for
            row[best] = logits.segment().getAtIndex(ValueLayout.JAVA_FLOAT, (long) i * row.length + best);
            try {
                choices[i] = s.sampler.sample(row, 0, best, sumExp.segment().getAtIndex(ValueLayout.JAVA_FLOAT, i));
            } catch (RuntimeException e) {
                failures[i] = e;
            }
        }
        int workers = Math.min(count, HELPERS + 1);
        ForkJoinTask<?>[] helpers = new ForkJoinTask<?>[Math.max(workers - 1, 0)];
        for (int w = 1; w < workers; w++) {
            int worker = w, stride = workers, total = count;
            helpers[w - 1] = ForkJoinPool.commonPool()
                    .submit(() -> draw(step, draws, worker, stride, total, buffer(worker), choices, failures));
        }
        draw(step, draws, 0, Math.max(workers, 1), count, row, choices, failures);
        for (ForkJoinTask<?> helper : helpers) helper.join();
    }

    /** Draws draws[j] for j = first, first + stride, ... below count, each row copied into buffer first. */
    private void draw(
            List<RequestState> step,
            int[] draws,
            int first,
            int stride,
            int count,
            float[] buffer,
            Sampler.Choice[] choices,
            RuntimeException[] failures) {
        for (int j = first; j < count; j += stride) {
            int i = draws[j];
            try {
                copyRow(i, buffer);
                choices[i] = step.get(i)
                        .sampler
                        .sample(
                                buffer,
                                0,
                                argmax.segment().getAtIndex(ValueLayout.JAVA_INT, i),
                                sumExp.segment().getAtIndex(ValueLayout.JAVA_FLOAT, i));
            } catch (RuntimeException e) {
                failures[i] = e;
            }
        }
    }

    /** Helper w's row buffer (allocated on first use, kept). */
    private float[] buffer(int w) {
        synchronized (helperRows) {
            if (helperRows[w - 1] == null) helperRows[w - 1] = new float[row.length];
            return helperRows[w - 1];
        }
    }

    /**
     * moe4j_logits_stats over the step's n rows, restricted to the text vocabulary. False if the call failed: the step
     * has happened by then (its tokens are in the cache), and the sampler's own loops give the same choices, so the
     * step goes on without it; a context that really broke fails the next step.
     */
    private boolean summarize(int n) {
        try {
            model.logitsStats(
                    logits.slice(0, 0, n).slice(1, 0, textVocab), argmax.slice(0, 0, n), sumExp.slice(0, 0, n));
            return true;
        } catch (RuntimeException e) {
            return false;
        }
    }
}
