package dev.moe4j.model;

import dev.moe4j.kernels.Copy;
import dev.moe4j.kernels.Mla;
import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.Workspace;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.SegmentAllocator;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Deque;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.function.BiFunction;
import java.util.function.Function;

/**
 * The paged MLA latent cache of a whole model, with its block allocator: one pool of 64-token blocks, one block
 * table per sequence, shared by every layer. Layer l's cache memory is bf16 ({@code [blocks, 64, h_kv, 576]}) or the
 * FP8 layout ({@code [blocks, 64, h_kv, 656]} bytes), allocated once in host memory (an arena) or a device's
 * ({@link DeviceStore}); a block id names the same slot range in every layer. The block allocator and the sequences'
 * block lists are Java's, on the host; a step's tables go to the cache's memory once per step.
 *
 * <p>A model step appends tokens through {@link #inStep}: it reserves the blocks the step's new tokens need (all or
 * nothing) and hands the body a {@link Step} with their cache slots and the batch's block table; each layer writes
 * its latent rows with {@link #write} and attends through the step's table; when the body returns the tokens become
 * part of their sequences, and when it throws the reserved blocks go back and the sequences stay as they were.
 *
 * <p>Appending never overwrites: when the pool cannot hold a step's new tokens, {@link #inStep} throws
 * {@link IllegalStateException} naming the sequences and the shortfall, and nothing changes. Not thread-safe: one
 * owner (the model's step thread) drives it.
 */
public final class PagedLatentCache {
    public static final int BLOCK_TOKENS = 64;
    public static final int DIMS = 576;

    private final Tensor[] layers;
    private final int kvHeads;
    private final int blocks;
    private final boolean fp8;
    private final Deque<Integer> free = new ArrayDeque<>();
    private final Map<Integer, Sequence> sequences = new HashMap<>();
    private Step pending;
    private int nextId;

    private static final class Sequence {
        final List<Integer> blocks = new ArrayList<>();
        int length;
    }

    /**
     * A cache in host memory, zeroed.
     *
     * @param layers decoder layers sharing the block tables (each gets its own cache memory)
     * @param blocks cache blocks of 64 tokens in the pool
     * @param kvHeads latent kv heads (1 for DeepSeek MLA)
     * @param fp8 the FP8 layout (656 B per token) instead of bf16 (1152 B per token)
     */
    public PagedLatentCache(Arena arena, int layers, int blocks, int kvHeads, boolean fp8) {
        this(
                (dtype, shape) -> Tensor.allocate(Objects.requireNonNull(arena, "arena"), dtype, shape),
                layers,
                blocks,
                kvHeads,
                fp8);
    }

    /**
     * A cache in the memory of store's device, not initialized (slots past a sequence's length are never read); steps
     * run on contexts of that device. Parameters as for the host cache.
     */
    public PagedLatentCache(DeviceStore store, int layers, int blocks, int kvHeads, boolean fp8) {
        this(Objects.requireNonNull(store, "store")::allocate, layers, blocks, kvHeads, fp8);
    }

    private PagedLatentCache(
            BiFunction<DType, long[], Tensor> allocate, int layers, int blocks, int kvHeads, boolean fp8) {
        if (layers <= 0) throw new IllegalArgumentException("layers must be positive, got " + layers);
        if (blocks <= 0) throw new IllegalArgumentException("blocks must be positive, got " + blocks);
        if (kvHeads <= 0) throw new IllegalArgumentException("kvHeads must be positive, got " + kvHeads);
        this.blocks = blocks;
        this.kvHeads = kvHeads;
        this.fp8 = fp8;
        this.layers = new Tensor[layers];
        for (int l = 0; l < layers; l++)
            this.layers[l] = fp8
                    ? allocate.apply(DType.U8, new long[] {blocks, BLOCK_TOKENS, kvHeads, Mla.FP8_TOKEN_BYTES})
                    : allocate.apply(DType.BF16, new long[] {blocks, BLOCK_TOKENS, kvHeads, DIMS});
        for (int b = 0; b < blocks; b++) free.add(b);
    }

    /** Layer l's cache tensor, as {@link Mla#decode} takes it. */
    public Tensor tensor(int layer) {
        if (layer < 0 || layer >= layers.length)
            throw new IllegalArgumentException("layer " + layer + " outside 0.." + (layers.length - 1));
        return layers[layer];
    }

    /** Whether the cache holds the FP8 layout (else bf16). */
    public boolean fp8() {
        return fp8;
    }

    /** Cache memory of all layers, in bytes. */
    public long bytes() {
        long bytesPerToken = kvHeads * (fp8 ? Mla.FP8_TOKEN_BYTES : DIMS * 2L);
        return layers.length * (long) blocks * BLOCK_TOKENS * bytesPerToken;
    }

    /** Starts an empty sequence and returns its id. */
    public int newSequence() {
        int id = nextId++;
        sequences.put(id, new Sequence());
        return id;
    }

    public int length(int sequence) {
        return sequence(sequence).length;
    }

    /** Blocks in the pool. */
    public int blocks() {
        return blocks;
    }

    /** Blocks not held by any sequence. */
    public int freeBlocks() {
        return free.size();
    }

    /** Blocks a sequence of {@code tokens} tokens holds. */
    public static int blocksFor(long tokens) {
        return Math.toIntExact((tokens + BLOCK_TOKENS - 1) / BLOCK_TOKENS);
    }

    /**
     * One model step's new tokens: {@code counts[i]} tokens of {@code sequences[i]}, at positions {@code starts[i] ..};
     * token rows are ordered by sequence, then position. The tables are in the memory of the step's context's device
     * (for its kernels), the arrays on the host (for Java).
     *
     * @param slots I32 [tokens]: each new token's cache slot (block · 64 + offset)
     * @param blockTable I32 [sequences, max blocks] (unused entries 0, never read)
     * @param lengths I32 [sequences]: each sequence's length once the step's tokens are in
     * @param positions I32 [tokens]: each token row's position in its sequence
     * @param contextSlots I32: for each sequence with more than one new token, in step order, the slots of all its
     *     tokens (positions 0 .. its length once the step's tokens are in), what an attention that reads a sequence's
     *     whole context at once gathers; null when every sequence has one new token
     */
    public record Step(
            int[] sequences,
            int[] starts,
            int[] counts,
            Tensor slots,
            Tensor blockTable,
            Tensor lengths,
            Tensor positions,
            Tensor contextSlots) {
        /** New tokens in the step. */
        public int tokens() {
            return Math.toIntExact(slots.shape(0));
        }
    }

    /**
     * Runs one step over new tokens of several sequences: reserves their blocks, lays out their slots, positions and
     * the batch's block table in the frame's device memory (one copy each where that is not host memory), runs body
     * with the step, then makes the tokens part of their sequences.
     * When body throws, the reserved blocks go back and every sequence stays as it was. No step may start inside
     * another.
     *
     * @param sequences distinct sequence ids
     * @param counts new tokens per sequence, each ≥ 1
     * @return what body returns
     * @throws IllegalStateException if the pool lacks blocks (nothing changed) or a step is running
     * @throws IllegalArgumentException if a sequence is unknown or listed twice, or a count is not positive
     */
    public <T> T inStep(Workspace.Frame frame, int[] sequences, int[] counts, Function<Step, T> body) {
        Step step = reserve(frame, sequences, counts);
        T result;
        try {
            result = body.apply(step);
        } catch (RuntimeException e) {
            giveBack(step.sequences());
            throw e;
        }
        commit(step);
        return result;
    }

    private Step reserve(Workspace.Frame frame, int[] sequences, int[] counts) {
        if (pending != null) throw new IllegalStateException("a step is already running on this cache");
        if (sequences.length != counts.length)
            throw new IllegalArgumentException(sequences.length + " sequences but " + counts.length + " token counts");
        if (sequences.length == 0) throw new IllegalArgumentException("a step needs at least one sequence");
        for (int i = 1; i < sequences.length; i++)
            for (int j = 0; j < i; j++)
                if (sequences[i] == sequences[j])
                    throw new IllegalArgumentException("a sequence appears twice in " + Arrays.toString(sequences));
        int needed = 0, tokens = 0;
        for (int i = 0; i < sequences.length; i++) {
            if (counts[i] <= 0)
                throw new IllegalArgumentException(
                        "sequence " + sequences[i] + " has " + counts[i] + " new tokens, expected at least 1");
            needed += blocksNeeded(sequence(sequences[i]), counts[i]);
            tokens += counts[i];
        }
        if (needed > free.size())
            throw new IllegalStateException("cache full: sequences " + Arrays.toString(sequences) + " need " + needed
                    + " more blocks for " + tokens + " tokens but " + free.size() + " of " + blocks + " are free");
        int[] starts = new int[sequences.length];
        for (int i = 0; i < sequences.length; i++) {
            Sequence s = sequence(sequences[i]);
            for (int n = blocksNeeded(s, counts[i]); n > 0; n--) s.blocks.add(free.poll());
            starts[i] = s.length;
        }
        try {
            pending = layOut(frame, sequences.clone(), starts, counts.clone(), tokens);
        } catch (RuntimeException e) { // a copy to the device failed
            giveBack(sequences);
            throw e;
        }
        return pending;
    }

    /** The step's tables, written on the host and copied to the frame's device memory. */
    private Step layOut(Workspace.Frame frame, int[] sequences, int[] starts, int[] counts, int tokens) {
        Tensor slots = Tensor.hostScratch(frame, DType.I32, tokens);
        Tensor positions = Tensor.hostScratch(frame, DType.I32, tokens);
        Tensor lengths = Tensor.hostScratch(frame, DType.I32, sequences.length);
        int contextTokens = 0;
        for (int i = 0, row = 0; i < sequences.length; i++) {
            Sequence s = sequence(sequences[i]);
            for (int t = 0; t < counts[i]; t++, row++) {
                int position = starts[i] + t;
                slots.setInt(slot(s, position), row);
                positions.setInt(position, row);
            }
            lengths.setInt(starts[i] + counts[i], i);
            if (counts[i] > 1) contextTokens += starts[i] + counts[i];
        }
        Tensor contexts = null;
        if (contextTokens > 0) {
            contexts = Tensor.hostScratch(frame, DType.I32, contextTokens);
            for (int i = 0, row = 0; i < sequences.length; i++) {
                if (counts[i] == 1) continue;
                Sequence s = sequence(sequences[i]);
                for (int position = 0; position < starts[i] + counts[i]; position++)
                    contexts.setInt(slot(s, position), row++);
            }
            contexts = Copy.toDevice(frame, contexts);
        }
        return new Step(
                sequences,
                starts,
                counts,
                Copy.toDevice(frame, slots),
                Copy.toDevice(frame, blockTable(frame, sequences)),
                Copy.toDevice(frame, lengths),
                Copy.toDevice(frame, positions),
                contexts);
    }

    private static int slot(Sequence s, int position) {
        return s.blocks.get(position / BLOCK_TOKENS) * BLOCK_TOKENS + position % BLOCK_TOKENS;
    }

    /**
     * Writes layer l's latent rows of the running step's new tokens into their slots.
     *
     * @param ctx a context of the cache's device (the step's)
     * @param kv BF16 [step tokens, h_kv, 576]: the latent (512) and RoPE (64) dims, rows in step order, in the
     *     cache's memory
     */
    public void write(Context ctx, int layer, Step step, Tensor kv) {
        if (step == null || step != pending) throw new IllegalStateException("step is not this cache's running step");
        if (kv.rank() != 3 || kv.shape(0) != step.tokens() || kv.shape(1) != kvHeads || kv.shape(2) != DIMS)
            throw new IllegalArgumentException(
                    "kv must be [" + step.tokens() + ", " + kvHeads + ", " + DIMS + "], got " + kv);
        Mla.appendToCache(ctx, kv, step.slots(), tensor(layer));
    }

    /**
     * Appends one sequence's tokens to one layer outright (reserve, write, commit), for a cache that layer alone
     * uses (a benchmark's or a test's); a model step goes through {@link #inStep} for all its layers.
     *
     * @param kv BF16 [n, h_kv, 576]
     * @throws IllegalStateException if the pool lacks blocks; nothing is changed then
     */
    public void append(Context ctx, int layer, int sequence, Tensor kv) {
        try (Workspace.Frame call = ctx.workspace().frame()) {
            inStep(call, new int[] {sequence}, new int[] {Math.toIntExact(kv.shape(0))}, step -> {
                write(ctx, layer, step, kv);
                return null;
            });
        }
    }

    private void commit(Step step) {
        for (int i = 0; i < step.sequences().length; i++) sequence(step.sequences()[i]).length += step.counts()[i];
        pending = null;
    }

    /** Returns a step's reserved blocks; the sequences stay as they were before it. */
    private void giveBack(int[] stepSequences) {
        for (int i = stepSequences.length - 1; i >= 0; i--) {
            Sequence s = sequences.get(stepSequences[i]);
            if (s == null) continue;
            while (s.blocks.size() > blocksFor(s.length)) free.addFirst(s.blocks.removeLast());
        }
        pending = null;
    }

    private static int blocksNeeded(Sequence s, int tokens) {
        return blocksFor(s.length + (long) tokens) - s.blocks.size();
    }

    /**
     * Drops a sequence's tokens past {@code length} (a rejected speculative draft, a rewound turn) and returns blocks
     * it no longer needs to the pool. The dropped slots keep their stale contents; decode never reads them.
     *
     * @throws IllegalArgumentException if length is negative or beyond the sequence's length
     */
    public void truncate(int sequence, int length) {
        Sequence s = sequence(sequence);
        if (pending != null) throw new IllegalStateException("a step is running on this cache");
        if (length < 0 || length > s.length)
            throw new IllegalArgumentException(
                    "cannot truncate sequence " + sequence + " of " + s.length + " tokens to " + length);
        s.length = length;
        while (s.blocks.size() > blocksFor(length)) free.add(s.blocks.removeLast());
    }

    /** Returns a sequence's blocks to the pool; its id is no longer valid. */
    public void free(int sequence) {
        if (pending != null && Arrays.stream(pending.sequences()).anyMatch(id -> id == sequence))
            throw new IllegalStateException("sequence " + sequence + " is in the running step");
        Sequence s = sequences.remove(sequence);
        if (s == null) throw new IllegalArgumentException("unknown sequence " + sequence);
        free.addAll(s.blocks);
    }

    /**
     * The block table and lengths of sequences as they stand (between steps), for {@link Mla#decode}: I32
     * [b, max blocks] (unused entries 0, never read) and I32 [b], in host memory from arena.
     */
    public Batch batch(SegmentAllocator arena, int... batchSequences) {
        Tensor lengths = Tensor.allocate(arena, DType.I32, batchSequences.length);
        for (int i = 0; i < batchSequences.length; i++) lengths.setInt(sequence(batchSequences[i]).length, i);
        return new Batch(blockTable(arena, batchSequences), lengths);
    }

    /** The sequences' blocks as I32 [b, max blocks] in host memory, unused entries 0. */
    private Tensor blockTable(SegmentAllocator arena, int[] ids) {
        int maxBlocks = 1;
        for (int id : ids) maxBlocks = Math.max(maxBlocks, sequence(id).blocks.size());
        Tensor table = Tensor.allocate(arena, DType.I32, ids.length, maxBlocks);
        for (int i = 0; i < ids.length; i++) {
            List<Integer> blocksOf = sequence(ids[i]).blocks;
            for (int b = 0; b < blocksOf.size(); b++) table.setInt(blocksOf.get(b), i, b);
        }
        return table;
    }

    /** A batch's {@code blockTable} I32 [b, max_blocks] and {@code lengths} I32 [b]. */
    public record Batch(Tensor blockTable, Tensor lengths) {}

    private Sequence sequence(int id) {
        Sequence s = sequences.get(id);
        if (s == null) throw new IllegalArgumentException("unknown sequence " + id);
        return s;
    }
}
