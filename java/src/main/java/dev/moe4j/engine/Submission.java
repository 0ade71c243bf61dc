package dev.moe4j.engine;

import java.util.ArrayDeque;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * A request handed to an {@link Engine}: its result, its stream of tokens (when submitted streaming), and a way to
 * cancel it.
 *
 * <p>Streaming: {@link #next} hands out the request's events in order — a {@link Event.Token} per generated token,
 * then exactly one terminal event, {@link Event.Finished} or {@link Event.Failed}, which every later call returns
 * again. The buffer holds a bounded number of tokens (the engine's {@code streamCapacity}); while it is full the engine
 * does not run this request (backpressure: a slow reader slows its own request, never the others). A non-streaming
 * submission buffers no tokens; read {@link #result}.
 *
 * <p>Thread-safety: every method may be called from any thread; events go to one reader at a time in order.
 */
public final class Submission {
    /** What a streaming reader receives. */
    public sealed interface Event {
        /** Whether this event ends the stream. */
        default boolean terminal() {
            return false;
        }

        /**
         * One generated token.
         *
         * @param text the text it releases (may be empty while UTF-8 bytes or a possible stop string are held back;
         *     null without a tokenizer)
         */
        record Token(Sampler.Choice choice, String text) implements Event {}

        /** The request ended; {@code result.finishReason()} says why ({@code CANCELLED} after {@link #cancel}). */
        record Finished(Result result) implements Event {
            @Override
            public boolean terminal() {
                return true;
            }
        }

        /** The request failed in the model (a native error); its cache blocks were freed. */
        record Failed(RuntimeException error) implements Event {
            @Override
            public boolean terminal() {
                return true;
            }
        }
    }

    final long id;
    final RequestState state;
    final boolean streaming;
    final long submittedNanos;
    private final int capacity;
    private final Runnable onDrain;
    private final ArrayDeque<Event> tokens = new ArrayDeque<>();
    private final CompletableFuture<Result> result = new CompletableFuture<>();
    private Event terminal;
    private volatile boolean cancelRequested;
    // set by the engine's thread
    long firstTokenNanos = -1, lastTokenNanos = -1;

    Submission(long id, RequestState state, boolean streaming, int capacity, Runnable onDrain) {
        this.id = id;
        this.state = state;
        this.streaming = streaming;
        this.capacity = capacity;
        this.onDrain = onDrain;
        this.submittedNanos = System.nanoTime();
    }

    /** The engine's id of this request (unique per engine, increasing). */
    public long id() {
        return id;
    }

    /** The prompt's length in tokens (BOS included when the tokenizer adds one). */
    public int promptTokens() {
        return state.prompt.length;
    }

    /** Completes with the request's result (also when cancelled), or exceptionally when it failed. */
    public CompletableFuture<Result> result() {
        return result;
    }

    /**
     * Asks the engine to end the request: a waiting one never starts, a running one stops before its next step and
     * its cache blocks return to the pool. Its result then has finish reason {@code CANCELLED}, unless it finished
     * first. Idempotent.
     */
    public void cancel() {
        cancelRequested = true;
        onDrain.run();
    }

    /** Whether {@link #cancel} was called. */
    public boolean cancelRequested() {
        return cancelRequested;
    }

    /**
     * The next event, waiting up to timeout for it.
     *
     * @return the event, or null if none came in time
     * @throws IllegalStateException if the request was not submitted streaming
     * @throws InterruptedException if the thread was interrupted while waiting
     */
    public Event next(long timeout, TimeUnit unit) throws InterruptedException {
        if (!streaming) throw new IllegalStateException("request " + id + " was not submitted streaming");
        Objects.requireNonNull(unit, "unit");
        long deadline = System.nanoTime() + unit.toNanos(timeout);
        Event e;
        boolean wasFull;
        synchronized (this) {
            while (tokens.isEmpty() && terminal == null) {
                long left = deadline - System.nanoTime();
                if (left <= 0) return null;
                TimeUnit.NANOSECONDS.timedWait(this, left);
            }
            wasFull = tokens.size() >= capacity;
            e = tokens.isEmpty() ? terminal : tokens.poll();
        }
        if (wasFull) onDrain.run(); // the engine may be holding this request back
        return e;
    }

    // ---- the engine's side

    /** Whether the stream has room for one more token (non-streaming submissions always do). */
    synchronized boolean hasRoom() {
        return !streaming || tokens.size() < capacity;
    }

    synchronized void pushToken(Sampler.Choice choice, String text) {
        if (streaming) {
            tokens.add(new Event.Token(choice, text));
            notifyAll();
        }
    }

    void finish(Result r) {
        synchronized (this) {
            terminal = new Event.Finished(r);
            notifyAll();
        }
        result.complete(r);
    }

    void fail(RuntimeException error) {
        synchronized (this) {
            terminal = new Event.Failed(error);
            notifyAll();
        }
        result.completeExceptionally(error);
    }
}
