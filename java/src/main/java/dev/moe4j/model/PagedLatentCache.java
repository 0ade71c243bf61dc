package dev.moe4j.model;

import dev.moe4j.kernels.Mla;
import dev.moe4j.runtime.Context;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.Tensor;
import java.lang.foreign.Arena;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Deque;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A paged MLA latent cache with its block allocator: sequences grow 64 tokens per block, blocks come from a
 * shared pool and return to it when a sequence is freed. The cache memory is bf16 ({@code [blocks, 64, h_kv, 576]})
 * or the FP8 layout ({@code [blocks, 64, h_kv, 656]} bytes), allocated once in the given arena.
 *
 * <p>Appending never overwrites: when the pool cannot hold a sequence's new tokens the call throws
 * {@link IllegalStateException} naming the sequence and the shortfall, and the cache and every sequence stay as they
 * were. Not thread-safe: one owner (a device's worker thread) drives it.
 */
public final class PagedLatentCache {
    public static final int BLOCK_TOKENS = 64;
    public static final int DIMS = 576;

    private final Tensor cache;
    private final int kvHeads;
    private final int blocks;
    private final Deque<Integer> free = new ArrayDeque<>();
    private final Map<Integer, Sequence> sequences = new HashMap<>();
    private int nextId;

    private static final class Sequence {
        final List<Integer> blocks = new ArrayList<>();
        int length;
    }

    /**
     * @param blocks cache blocks of 64 tokens in the pool
     * @param kvHeads latent kv heads (1 for DeepSeek MLA)
     * @param fp8 the FP8 layout (656 B per token) instead of bf16 (1152 B per token)
     */
    public PagedLatentCache(Arena arena, int blocks, int kvHeads, boolean fp8) {
        if (blocks <= 0) throw new IllegalArgumentException("blocks must be positive, got " + blocks);
        if (kvHeads <= 0) throw new IllegalArgumentException("kvHeads must be positive, got " + kvHeads);
        this.blocks = blocks;
        this.kvHeads = kvHeads;
        this.cache = fp8
                ? Tensor.allocate(arena, DType.U8, blocks, BLOCK_TOKENS, kvHeads, Mla.FP8_TOKEN_BYTES)
                : Tensor.allocate(arena, DType.BF16, blocks, BLOCK_TOKENS, kvHeads, DIMS);
        for (int b = 0; b < blocks; b++) free.add(b);
    }

    /** The cache tensor, as {@link Mla#decode} takes it. */
    public Tensor tensor() {
        return cache;
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

    /** Blocks not held by any sequence. */
    public int freeBlocks() {
        return free.size();
    }

    /**
     * Appends tokens to a sequence: reserves the blocks it needs, then writes the tokens with
     * {@link Mla#appendToCache}.
     *
     * @param kv BF16 [n, h_kv, 576]: the new tokens' latent (512) and RoPE (64) dims
     * @throws IllegalStateException if the pool lacks blocks; nothing is changed then
     */
    public void append(Context ctx, int sequence, Tensor kv) {
        int n = checkKv(kv);
        int[] sequenceOfRow = new int[n];
        Arrays.fill(sequenceOfRow, sequence);
        appendRows(ctx, sequenceOfRow, kv);
    }

    /**
     * Appends one token to each of several distinct sequences (a decode step), all or nothing.
     *
     * @param kv BF16 [sequences.length, h_kv, 576]: row i goes to sequences[i]
     * @throws IllegalStateException if the pool lacks blocks; nothing is changed then
     * @throws IllegalArgumentException if a sequence is unknown or listed twice
     */
    public void appendEach(Context ctx, int[] sequences, Tensor kv) {
        if (checkKv(kv) != sequences.length)
            throw new IllegalArgumentException(
                    "kv has " + kv.shape(0) + " tokens for " + sequences.length + " sequences");
        if (Arrays.stream(sequences).distinct().count() != sequences.length)
            throw new IllegalArgumentException("a sequence appears twice in " + Arrays.toString(sequences));
        appendRows(ctx, sequences, kv);
    }

    private int checkKv(Tensor kv) {
        if (kv.rank() != 3 || kv.shape(1) != kvHeads || kv.shape(2) != DIMS)
            throw new IllegalArgumentException("kv must be [n, " + kvHeads + ", " + DIMS + "], got " + kv);
        return Math.toIntExact(kv.shape(0));
    }

    /** Appends kv row i to sequenceOfRow[i] (rows of one sequence in order); reserves every block first. */
    private void appendRows(Context ctx, int[] sequenceOfRow, Tensor kv) {
        Map<Integer, Integer> added = new LinkedHashMap<>();
        for (int id : sequenceOfRow) added.merge(id, 1, Integer::sum);
        int needed = 0;
        for (var e : added.entrySet()) needed += blocksNeeded(sequence(e.getKey()), e.getValue());
        if (needed > free.size())
            throw new IllegalStateException("cache full: sequences " + added.keySet() + " need " + needed
                    + " more blocks for " + sequenceOfRow.length + " tokens but " + free.size() + " of " + blocks
                    + " are free");
        List<Sequence> grown = new ArrayList<>();
        for (var e : added.entrySet()) {
            Sequence s = sequence(e.getKey());
            for (int i = blocksNeeded(s, e.getValue()); i > 0; i--) {
                s.blocks.add(free.poll());
                grown.add(s);
            }
        }
        int n = sequenceOfRow.length;
        try (Arena call = Arena.ofConfined()) {
            Tensor slots = Tensor.allocate(call, DType.I32, Math.max(n, 1));
            slots.setInt(-1, 0);
            Map<Integer, Integer> next = new HashMap<>();
            for (int i = 0; i < n; i++) {
                Sequence s = sequence(sequenceOfRow[i]);
                int position = s.length + next.merge(sequenceOfRow[i], 1, Integer::sum) - 1;
                slots.setInt(s.blocks.get(position / BLOCK_TOKENS) * BLOCK_TOKENS + position % BLOCK_TOKENS, i);
            }
            if (n > 0) Mla.appendToCache(ctx, kv, slots, cache);
        } catch (RuntimeException e) {
            for (int i = grown.size() - 1; i >= 0; i--)
                free.addFirst(grown.get(i).blocks.removeLast());
            throw e;
        }
        for (var e : added.entrySet()) sequence(e.getKey()).length += e.getValue();
    }

    private static int blocksNeeded(Sequence s, int tokens) {
        return (s.length + tokens + BLOCK_TOKENS - 1) / BLOCK_TOKENS - s.blocks.size();
    }

    /**
     * Drops a sequence's tokens past {@code length} (a rejected speculative draft, a rewound turn) and returns blocks
     * it no longer needs to the pool. The dropped slots keep their stale contents; decode never reads them.
     *
     * @throws IllegalArgumentException if length is negative or beyond the sequence's length
     */
    public void truncate(int sequence, int length) {
        Sequence s = sequence(sequence);
        if (length < 0 || length > s.length)
            throw new IllegalArgumentException(
                    "cannot truncate sequence " + sequence + " of " + s.length + " tokens to " + length);
        s.length = length;
        while (s.blocks.size() > (length + BLOCK_TOKENS - 1) / BLOCK_TOKENS) free.add(s.blocks.removeLast());
    }

    /** Returns a sequence's blocks to the pool; its id is no longer valid. */
    public void free(int sequence) {
        Sequence s = sequences.remove(sequence);
        if (s == null) throw new IllegalArgumentException("unknown sequence " + sequence);
        free.addAll(s.blocks);
    }

    /**
     * The block table and lengths of a batch of sequences, for {@link Mla#decode}: I32 [b, max blocks] (unused
     * entries 0, never read) and I32 [b].
     */
    public Batch batch(Arena arena, int... batchSequences) {
        int maxBlocks = 1;
        for (int id : batchSequences)
            maxBlocks = Math.max(maxBlocks, sequence(id).blocks.size());
        Tensor table = Tensor.allocate(arena, DType.I32, batchSequences.length, maxBlocks);
        Tensor lengths = Tensor.allocate(arena, DType.I32, batchSequences.length);
        for (int i = 0; i < batchSequences.length; i++) {
            Sequence s = sequence(batchSequences[i]);
            lengths.setInt(s.length, i);
            for (int b = 0; b < s.blocks.size(); b++) table.setInt(s.blocks.get(b), i, b);
        }
        return new Batch(table, lengths);
    }

    /** A decode batch: {@code blockTable} I32 [b, max_blocks] and {@code lengths} I32 [b]. */
    public record Batch(Tensor blockTable, Tensor lengths) {}

    private Sequence sequence(int id) {
        Sequence s = sequences.get(id);
        if (s == null) throw new IllegalArgumentException("unknown sequence " + id);
        return s;
    }
}
