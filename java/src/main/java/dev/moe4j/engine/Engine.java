package dev.moe4j.engine;

import dev.moe4j.model.PagedLatentCache;
import dev.moe4j.parallel.ExpertParallelMoe;
import dev.moe4j.parallel.LiveBalancer;
import dev.moe4j.placement.Eplb;
import dev.moe4j.routing.Routing;
import dev.moe4j.tokenizer.Tokenizer;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.IdentityHashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;

/**
 * Serves many requests at once over one {@link Model}: continuous batching on a scheduler thread of its own.
 *
 * <p>Each model step runs one decode token of every running request (unless its stream is full: see {@link
 * Submission}) and then chunks of the prompts still being read, in admission order, up to {@code maxBatchTokens}
 * tokens (a chunk passes it by up to two tokens rather than hold a single token of a longer prompt, or leave one
 * behind: see {@link Model}'s batch invariance) — chunked prefill: a long prompt is read over several steps while the
 * others keep decoding. A request is admitted when its whole cache need (prompt plus {@code maxNewTokens}, up to the
 * context) fits beside the running ones, so an admitted request never waits for memory; until then it waits in a
 * bounded queue, first come first served. With a {@linkplain Model#reproducible reproducible} model a request's
 * tokens are the same whatever runs beside it (batch invariance): the same as {@link Generator} gives it alone.
 *
 * <p>Failures: when the model fails a step (a native error such as {@link dev.moe4j.runtime.Status#OUT_OF_MEMORY}: a
 * workspace that cannot grow past its {@linkplain dev.moe4j.runtime.Workspace#limit limit}, a native allocation that
 * fails, a KV cache that cannot take the step's tokens), the step changes nothing, and the engine runs each of its
 * requests again alone. A request that fails alone fails: its result completes exceptionally with the model's exception
 * (a {@link dev.moe4j.runtime.Moe4jException} naming the status and what could not be had), its cache blocks return to
 * the pool, and {@link EngineMetrics#failed} counts it. The others go on (with a reproducible model, with the tokens
 * they get alone), and so does the engine: a failure that passes (one allocation that fails once) costs no request. A
 * step too large for the memory whose requests each fit alone therefore runs as one step per request, slower but
 * whole. A failure after the model ran (in sampling, say) fails the requests of that step's batch. Only a bug in the
 * engine itself ends it, failing every request.
 *
 * <p>The engine owns the model while it runs: nothing else may call the model (its {@code forward} fails on a second
 * thread), and the engine installs the model's MoE observer ({@link Model#onMoeLayer}) for its metrics.
 *
 * <p>Thread-safety: {@link #submit}, {@link #metrics} and {@link #shutdown} may be called from any thread.
 */
public final class Engine implements AutoCloseable {
    /**
     * @param maxBatchTokens the most tokens one model step runs (decode tokens and prompt chunks together; a prompt
     *     chunk may pass it by up to two tokens, see above), ≥ 1
     * @param maxQueue the most requests waiting for admission; a submission beyond it is rejected, ≥ 0
     * @param streamCapacity tokens a streaming request's buffer holds before the engine holds the request back, ≥ 1
     * @param rebalanceEvery with experts spread over several devices, steps between live rebalances of the expert
     *     placement (0: never)
     */
    public record Options(int maxBatchTokens, int maxQueue, int streamCapacity, int rebalanceEvery) {
        public Options {
            if (maxBatchTokens < 1)
                throw new IllegalArgumentException("maxBatchTokens must be ≥ 1, got " + maxBatchTokens);
            if (maxQueue < 0) throw new IllegalArgumentException("maxQueue must be ≥ 0, got " + maxQueue);
            if (streamCapacity < 1)
                throw new IllegalArgumentException("streamCapacity must be ≥ 1, got " + streamCapacity);
            if (rebalanceEvery < 0)
                throw new IllegalArgumentException("rebalanceEvery must be ≥ 0, got " + rebalanceEvery);
        }

        /** 256 tokens per step, 64 waiting requests, 64 buffered tokens per stream, no rebalancing. */
        public static Options defaults() {
            return new Options(256, 64, 64, 0);
        }

        public Options withMaxBatchTokens(int maxBatchTokens) {
            return new Options(maxBatchTokens, maxQueue, streamCapacity, rebalanceEvery);
        }

        public Options withMaxQueue(int maxQueue) {
            return new Options(maxBatchTokens, maxQueue, streamCapacity, rebalanceEvery);
        }

        public Options withStreamCapacity(int streamCapacity) {
            return new Options(maxBatchTokens, maxQueue, streamCapacity, rebalanceEvery);
        }

        public Options withRebalanceEvery(int rebalanceEvery) {
            return new Options(maxBatchTokens, maxQueue, streamCapacity, rebalanceEvery);
        }
    }

    /** A submission the engine did not take; nothing of it runs. */
    public static final class RejectedException extends RuntimeException {
        /** Why: the queue is full (try again later), the request can never fit, or the engine is shutting down. */
        public enum Reason {
            QUEUE_FULL,
            TOO_LARGE,
            SHUT_DOWN
        }

        private final Reason reason;

        RejectedException(Reason reason, String message) {
            super(message);
            this.reason = reason;
        }

        public Reason reason() {
            return reason;
        }
    }

    private final Model model;
    private final Tokenizer tokenizer;
    private final Options options;
    private final Set<Integer> eosIds = new HashSet<>();
    private final StepRunner runner;
    private final long totalBlocks;
    private final Thread thread;

    // guarded by lock: the intake and the shutdown state
    private final Object lock = new Object();
    private final ArrayDeque<Submission> waiting = new ArrayDeque<>();
    private long nextId;
    private boolean accepting = true;
    private long deadlineNanos = Long.MAX_VALUE; // after shutdown: when unfinished requests are cancelled
    private boolean wake; // a submission, cancellation, drained stream or shutdown since the thread last looked
    private int admitted; // requests holding cache blocks
    private long reservedBlocks; // their blocks

    // the scheduler thread's own
    private final List<Submission> running = new ArrayList<>();
    private final List<RequestState> runningStates = new ArrayList<>();
    private final Map<RequestState, Submission> byState = new IdentityHashMap<>();
    private final Map<Integer, LiveBalancer> balancers = new TreeMap<>();

    // guarded by stats
    private final Object stats = new Object();
    private final Map<Integer, long[]> expertLoad = new TreeMap<>();
    private long promptTokens, generatedTokens, finished, cancelled, failed, rejected, steps, rebalances;
    private final double[] ttft = new double[EngineMetrics.Percentiles.SAMPLES];
    private final double[] tpot = new double[EngineMetrics.Percentiles.SAMPLES];
    private long ttftCount, tpotCount;
    private double ttftSum, tpotSum; // seconds, over all requests (Prometheus summaries' _sum)
    private final ArrayDeque<EngineMetrics.Rebalance> recentRebalances = new ArrayDeque<>();
    private final ArrayDeque<long[]> rateWindow = new ArrayDeque<>(); // {nanos, prompt tokens, generated tokens}

    /**
     * Starts the engine's scheduler thread.
     *
     * @param tokenizer encodes text prompts and decodes outputs; may be null (then requests must bring token ids)
     */
    public Engine(Model model, Tokenizer tokenizer, Options options) {
        this.model = Objects.requireNonNull(model, "model");
        this.tokenizer = tokenizer;
        this.options = Objects.requireNonNull(options, "options");
        eosIds.addAll(model.config().eosTokenIds());
        if (tokenizer != null) tokenizer.eosId().ifPresent(eosIds::add);
        runner = new StepRunner(model, tokenizer);
        totalBlocks = model.cacheTokens() / PagedLatentCache.BLOCK_TOKENS;
        if (options.rebalanceEvery() > 0)
            for (Map.Entry<Integer, ExpertParallelMoe> e :
                    model.expertParallel().entrySet())
                balancers.put(
                        e.getKey(),
                        new LiveBalancer(
                                e.getValue(), 64, options.rebalanceEvery(), 1, 1, Eplb.Policy.REFINED, true, true));
        model.onMoeLayer(this::observeMoe);
        thread = Thread.ofPlatform().name("moe4j-engine").daemon(true).unstarted(this::loop);
        thread.start();
    }

    public Model model() {
        return model;
    }

    /** The tokenizer, or null. */
    public Tokenizer tokenizer() {
        return tokenizer;
    }

    public Options options() {
        return options;
    }

    /**
     * Hands a request to the engine. The prompt is tokenized and checked on the calling thread.
     *
     * @param stream whether the caller reads tokens as they come ({@link Submission#next}); otherwise only the result
     * @throws IllegalArgumentException if the prompt is text but there is no tokenizer, a token id is outside the
     *     vocabulary, or the prompt leaves no room for a new token in the model's context
     * @throws RejectedException if the queue is full, the request needs more cache than the model has, or the engine
     *     is shutting down
     */
    public Submission submit(Request request, boolean stream) {
        Objects.requireNonNull(request, "request");
        long id;
        synchronized (lock) {
            id = nextId++;
        }
        RequestState state = new RequestState((int) id, request, model, tokenizer, eosIds);
        Submission s = new Submission(id, state, stream, options.streamCapacity(), this::wakeUp);
        RejectedException no = null;
        synchronized (lock) {
            if (!accepting)
                no = new RejectedException(RejectedException.Reason.SHUT_DOWN, "the engine is shutting down");
            else if (state.cacheBlocks() > totalBlocks)
                no = new RejectedException(
                        RejectedException.Reason.TOO_LARGE,
                        "the request needs " + state.cacheBlocks() + " cache blocks of " + PagedLatentCache.BLOCK_TOKENS
                                + " tokens (a prompt of " + state.prompt.length + " tokens plus " + state.limit
                                + " new ones) but the model's cache holds " + totalBlocks
                                + "; ask for fewer new tokens or load the model with more cache tokens");
            else if (waiting.size() >= options.maxQueue())
                no = new RejectedException(
                        RejectedException.Reason.QUEUE_FULL,
                        "the queue is full (" + options.maxQueue() + " requests waiting); try again later");
            else {
                waiting.add(s);
                wake = true;
                lock.notifyAll();
            }
        }
        if (no != null) {
            synchronized (stats) {
                rejected++;
            }
            throw no;
        }
        return s;
    }

    /** The engine's state and counters now. */
    public EngineMetrics metrics() {
        int queued, runningNow;
        long reserved;
        synchronized (lock) {
            queued = waiting.size();
            runningNow = admitted;
            reserved = reservedBlocks;
        }
        synchronized (stats) {
            long now = System.nanoTime();
            trimWindow(now);
            long promptIn = 0, generatedIn = 0;
            for (long[] r : rateWindow) {
                promptIn += r[1];
                generatedIn += r[2];
            }
            double seconds = EngineMetrics.RATE_WINDOW_SECONDS;
            List<EngineMetrics.LayerLoad> loads = new ArrayList<>();
            for (Map.Entry<Integer, long[]> e : expertLoad.entrySet())
                loads.add(new EngineMetrics.LayerLoad(e.getKey(), e.getValue()));
            List<EngineMetrics.LayerBalance> balance = new ArrayList<>();
            for (Map.Entry<Integer, ExpertParallelMoe> e : new TreeMap<>(model.expertParallel()).entrySet()) {
                ExpertParallelMoe.StepStats last = e.getValue().lastStep();
                if (last != null) balance.add(new EngineMetrics.LayerBalance(e.getKey(), last.balance()));
            }
            return new EngineMetrics(
                    queued,
                    runningNow,
                    reserved,
                    totalBlocks,
                    promptTokens,
                    generatedTokens,
                    promptIn / seconds,
                    generatedIn / seconds,
                    finished,
                    cancelled,
                    failed,
                    rejected,
                    steps,
                    percentiles(ttft, ttftCount, ttftSum),
                    percentiles(tpot, tpotCount, tpotSum),
                    loads,
                    balance,
                    rebalances,
                    List.copyOf(recentRebalances));
        }
    }

    /** Whether {@link #submit} takes requests: false once {@link #shutdown} or {@link #close} began. */
    public boolean accepting() {
        synchronized (lock) {
            return accepting;
        }
    }

    /**
     * Stops taking requests and lets the admitted and queued ones finish for at most {@code grace}; those still
     * unfinished then are cancelled (result {@code CANCELLED}). Returns when the scheduler thread has ended. Idempotent.
     *
     * @throws InterruptedException if interrupted while waiting (the shutdown goes on)
     */
    public void shutdown(Duration grace) throws InterruptedException {
        Objects.requireNonNull(grace, "grace");
        synchronized (lock) {
            accepting = false;
            long deadline = System.nanoTime() + Math.max(0, grace.toNanos());
            deadlineNanos = Math.min(deadlineNanos, deadline);
            wake = true;
            lock.notifyAll();
        }
        thread.join();
    }

    /** {@link #shutdown} with no grace: unfinished requests are cancelled. The model stays open (its owner closes it). */
    @Override
    public void close() {
        try {
            shutdown(Duration.ZERO);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private void wakeUp() {
        synchronized (lock) {
            wake = true;
            lock.notifyAll();
        }
    }

    // ---------------------------------------------------------------- the scheduler thread

    private void loop() {
        try {
            while (true) {
                List<Submission> admitted = new ArrayList<>();
                List<Submission> dropped = new ArrayList<>();
                boolean cancelAll;
                synchronized (lock) {
                    // sleep until there is something to do: a runnable request, news from another thread (a
                    // submission, a cancellation, a drained stream, the shutdown) or the shutdown's deadline
                    while (!wake && !anyRunnable()) {
                        long left = deadlineNanos - System.nanoTime();
                        if (deadlineNanos != Long.MAX_VALUE && left <= 0) break;
                        waitOn(lock, deadlineNanos == Long.MAX_VALUE ? 0 : Math.max(1, left / 1_000_000));
                    }
                    wake = false;
                    cancelAll = System.nanoTime() - deadlineNanos >= 0;
                    for (Iterator<Submission> it = waiting.iterator(); it.hasNext(); ) {
                        Submission s = it.next();
                        if (s.cancelRequested() || cancelAll) {
                            it.remove();
                            dropped.add(s);
                        }
                    }
                    while (!waiting.isEmpty()
                            && reservedBlocks + waiting.peek().state.cacheBlocks() <= totalBlocks) {
                        Submission s = waiting.poll();
                        reservedBlocks += s.state.cacheBlocks();
                        this.admitted++;
                        admitted.add(s);
                    }
                    if (!accepting && waiting.isEmpty() && running.isEmpty() && admitted.isEmpty()) {
                        for (Submission s : dropped) end(s);
                        return;
                    }
                }
                for (Submission s : dropped) end(s);
                for (Submission s : admitted) {
                    s.state.sequence = model.newSequence();
                    running.add(s);
                    runningStates.add(s.state);
                    byState.put(s.state, s);
                }
                for (Submission s : running) if (s.cancelRequested() || cancelAll) s.state.cancel();
                retireFinished();
                if (running.isEmpty()) continue;
                step();
                retireFinished();
            }
        } catch (Throwable t) {
            // a bug in the engine itself: fail everything rather than leave callers waiting forever
            RuntimeException e = t instanceof RuntimeException r ? r : new IllegalStateException(t);
            List<Submission> all;
            synchronized (lock) {
                accepting = false;
                all = new ArrayList<>(waiting);
                waiting.clear();
            }
            all.addAll(running);
            for (Submission s : all) s.fail(e);
            throw t;
        }
    }

    /** Whether some running request can take part in a step now (lock held or on the scheduler thread). */
    private boolean anyRunnable() {
        for (Submission s : running) if (!s.state.done() && (s.state.readingPrompt() || s.hasRoom())) return true;
        return false;
    }

    private static void waitOn(Object monitor, long millis) {
        try {
            monitor.wait(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private void step() {
        long t0 = System.nanoTime();
        StepRunner.Step step;
        try {
            step = runner.run(runningStates, options.maxBatchTokens(), this::mayDecode, null, this::onToken);
        } catch (StepRunner.StepFailedException e) {
            isolate(e);
            return;
        } catch (RuntimeException e) {
            // a failure after the model ran (sampling, streaming): the requests' states are unknown, so they end;
            // waiting requests and later ones run normally
            for (Submission s : running) if (!s.state.done()) fail(s, e);
            return;
        }
        count(step, t0);
    }

    /**
     * After the model failed a step, which changed nothing: runs each of its requests again, alone (a step of one
     * request too). One that fails alone fails (its blocks are freed when it is retired); the others take their step,
     * so a request that the memory cannot serve (a workspace or cache that cannot grow) fails alone and a passing fault
     * costs no request.
     */
    private void isolate(StepRunner.StepFailedException failure) {
        for (RequestState state : failure.states()) {
            long t0 = System.nanoTime();
            try {
                count(runner.run(List.of(state), options.maxBatchTokens(), this::mayDecode, null, this::onToken), t0);
            } catch (StepRunner.StepFailedException e) {
                fail(submissionOf(state), e.failure());
            } catch (RuntimeException e) {
                fail(submissionOf(state), e);
            }
        }
    }

    private void fail(Submission s, RuntimeException e) {
        s.state.cancel();
        s.fail(e);
        synchronized (stats) {
            failed++;
        }
    }

    private void count(StepRunner.Step step, long t0) {
        if (step == null) return;
        synchronized (stats) {
            steps++;
            promptTokens += step.promptTokens();
            int generated = 0;
            for (RequestState s : step.states()) if (!s.readingPrompt()) generated++;
            generatedTokens += generated;
            rateWindow.add(new long[] {System.nanoTime(), step.promptTokens(), generated});
            trimWindow(t0);
        }
    }

    private boolean mayDecode(RequestState state) {
        return submissionOf(state).hasRoom();
    }

    private Submission submissionOf(RequestState state) {
        return byState.get(state);
    }

    private void onToken(RequestState state, Sampler.Choice choice, String text) {
        Submission s = submissionOf(state);
        long now = System.nanoTime();
        if (s.firstTokenNanos < 0) {
            s.firstTokenNanos = now;
            synchronized (stats) {
                double seconds = (now - s.submittedNanos) / 1e9;
                ttft[(int) (ttftCount++ % ttft.length)] = seconds;
                ttftSum += seconds;
            }
        }
        s.lastTokenNanos = now;
        s.pushToken(choice, text);
    }

    /** Ends the finished running requests: frees their cache, completes them. */
    private void retireFinished() {
        for (int i = running.size() - 1; i >= 0; i--) {
            Submission s = running.get(i);
            if (s.result().isDone()) {
                release(i);
                continue;
            }
            if (!s.state.done()) continue;
            release(i);
            end(s);
        }
    }

    private void release(int i) {
        Submission s = running.remove(i);
        runningStates.remove(i);
        byState.remove(s.state);
        model.freeSequence(s.state.sequence);
        synchronized (lock) {
            reservedBlocks -= s.state.cacheBlocks();
            admitted--;
            wake = true; // the freed blocks may admit a waiting request: the loop must look before it sleeps
        }
    }

    /** Completes a request that will not run again: its result (cancelled if it had not finished). */
    private void end(Submission s) {
        s.state.cancel(); // no-op when it finished
        Result r = s.state.result();
        synchronized (stats) {
            finished++;
            if (r.finishReason() == Result.FinishReason.CANCELLED) cancelled++;
            int n = r.completionTokens();
            if (n > 1) {
                double seconds = (s.lastTokenNanos - s.firstTokenNanos) / 1e9 / (n - 1);
                tpot[(int) (tpotCount++ % tpot.length)] = seconds;
                tpotSum += seconds;
            }
        }
        s.finish(r);
    }

    private void observeMoe(int layer, Routing routing) {
        synchronized (stats) {
            long[] counts = expertLoad.computeIfAbsent(
                    layer, l -> new long[model.config().nRoutedExperts()]);
            for (int t = 0; t < routing.tokens(); t++)
                for (int r = 0; r < routing.k(); r++) {
                    int e = routing.expert(t, r);
                    if (e >= 0 && e < counts.length) counts[e]++;
                }
        }
        LiveBalancer balancer = balancers.get(layer);
        LiveBalancer.Report report = balancer == null ? null : balancer.afterStep(routing);
        if (report != null) {
            synchronized (stats) {
                rebalances++;
                if (recentRebalances.size() == EngineMetrics.RECENT_REBALANCES) recentRebalances.pollFirst();
                recentRebalances.add(new EngineMetrics.Rebalance(
                        layer, report.step(), report.balanceBefore(), report.balanceAfter()));
            }
        }
    }

    private void trimWindow(long now) {
        long window = EngineMetrics.RATE_WINDOW_SECONDS * 1_000_000_000L;
        while (!rateWindow.isEmpty() && now - rateWindow.peekFirst()[0] > window) rateWindow.pollFirst();
    }

    private static EngineMetrics.Percentiles percentiles(double[] ring, long count, double sum) {
        int n = (int) Math.min(count, ring.length);
        if (n == 0) return new EngineMetrics.Percentiles(0, 0, Double.NaN, Double.NaN, Double.NaN, Double.NaN);
        double[] v = Arrays.copyOf(ring, n);
        Arrays.sort(v);
        return new EngineMetrics.Percentiles((int) count, sum, rank(v, 0.50), rank(v, 0.90), rank(v, 0.99), v[n - 1]);
    }

    private static double rank(double[] sorted, double q) {
        return sorted[Math.min(sorted.length - 1, (int) Math.ceil(q * sorted.length) - 1)];
    }
}
