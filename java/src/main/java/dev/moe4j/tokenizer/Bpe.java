package dev.moe4j.tokenizer;

import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * HF's BPE model: a word (one pre-tokenized piece) starts as one symbol per character and the adjacent pair with the
 * lowest merge rank is merged, leftmost first among equal ranks, until no pair has a rank. Immutable apart from a
 * bounded, thread-safe cache of short words.
 */
final class Bpe {
    /** Words at most this long (in chars) are cached, as HF does. */
    private static final int CACHEABLE_LENGTH = 256;

    private static final int CACHE_CAPACITY = 10_000;

    private final Map<String, Integer> vocab;
    /** (left id, right id) packed in a long -> (rank, merged id) packed in a long. */
    private final Map<Long, Long> merges;

    private final int unkId;
    private final boolean fuseUnk;
    private final boolean byteFallback;
    private final boolean ignoreMerges;
    private final ConcurrentHashMap<String, int[]> cache = new ConcurrentHashMap<>();

    /**
     * @param vocab token -> id
     * @param merges pairs of tokens in rank order (rank = index)
     * @param unkToken the unknown token, or null: without it (and without byte fallback) characters missing from the
     *     vocabulary are dropped, as HF does
     * @throws IllegalArgumentException if a merge names a token that is not in the vocabulary, or unkToken is not
     */
    Bpe(
            Map<String, Integer> vocab,
            List<String[]> merges,
            String unkToken,
            boolean fuseUnk,
            boolean byteFallback,
            boolean ignoreMerges) {
        this.vocab = Map.copyOf(vocab);
        this.merges = new HashMap<>(merges.size() * 2);
        for (int rank = 0; rank < merges.size(); rank++) {
            String[] pair = merges.get(rank);
            int left = idOf(pair[0], "merge " + rank);
            int right = idOf(pair[1], "merge " + rank);
            int merged = idOf(pair[0] + pair[1], "merge " + rank);
            // A pair listed twice keeps its first (lowest) rank.
            this.merges.putIfAbsent(pairKey(left, right), ((long) rank << 32) | merged);
        }
        this.unkId = unkToken == null ? -1 : idOf(unkToken, "unk_token");
        this.fuseUnk = fuseUnk;
        this.byteFallback = byteFallback;
        this.ignoreMerges = ignoreMerges;
    }

    private int idOf(String token, String where) {
        Integer id = vocab.get(token);
        if (id == null) throw new IllegalArgumentException(where + ": token '" + token + "' is not in the vocabulary");
        return id;
    }

    /** The id of a vocabulary token, or -1. */
    int id(String token) {
        Integer id = vocab.get(token);
        return id == null ? -1 : id;
    }

    Map<String, Integer> vocab() {
        return vocab;
    }

    /** Appends the ids of one word (already in the model's alphabet, e.g. byte-level characters). */
    void encode(String word, IntList out) {
        if (word.length() > CACHEABLE_LENGTH) {
            out.addAll(merge(word));
            return;
        }
        int[] ids = cache.get(word);
        if (ids == null) {
            ids = merge(word);
            // A simple bound: when full, start over rather than track recency.
            if (cache.size() >= CACHE_CAPACITY) cache.clear();
            cache.put(word, ids);
        }
        out.addAll(ids);
    }

    private int[] merge(String word) {
        if (ignoreMerges) {
            Integer whole = vocab.get(word);
            if (whole != null) return new int[] {whole};
        }
        int[] symbols = initialSymbols(word);
        int n = symbols.length;
        if (n < 2) return symbols;

        // A doubly linked list over the symbol positions; a merged-away position gets id -1.
        int[] next = new int[n];
        int[] prev = new int[n];
        for (int i = 0; i < n; i++) {
            next[i] = i + 1 < n ? i + 1 : -1;
            prev[i] = i - 1;
        }
        LongHeap heap = new LongHeap(n);
        for (int i = 0; i + 1 < n; i++) offer(heap, symbols, i, i + 1);

        while (!heap.isEmpty()) {
            long top = heap.poll();
            int rank = (int) (top >>> 32);
            int pos = (int) top;
            int right = next[pos];
            if (symbols[pos] < 0 || right < 0) continue;
            Long merge = merges.get(pairKey(symbols[pos], symbols[right]));
            // Stale entry: one side has been merged since it was queued.
            if (merge == null || (int) (merge >>> 32) != rank) continue;
            symbols[pos] = (int) (long) merge;
            symbols[right] = -1;
            next[pos] = next[right];
            if (next[right] >= 0) prev[next[right]] = pos;
            if (prev[pos] >= 0) offer(heap, symbols, prev[pos], pos);
            if (next[pos] >= 0) offer(heap, symbols, pos, next[pos]);
        }
        int count = 0;
        for (int s : symbols) if (s >= 0) count++;
        int[] ids = new int[count];
        int k = 0;
        for (int i = 0; i >= 0; i = next[i]) ids[k++] = symbols[i];
        return ids;
    }

    private void offer(LongHeap heap, int[] symbols, int left, int right) {
        Long merge = merges.get(pairKey(symbols[left], symbols[right]));
        // Rank in the high half, position in the low half: the heap yields the lowest rank, then the leftmost.
        if (merge != null) heap.add((merge >>> 32) << 32 | left);
    }

    /** One symbol per character (code point); unknown characters become unk, byte tokens or nothing. */
    private int[] initialSymbols(String word) {
        IntList ids = new IntList(word.length());
        boolean lastWasUnk = false;
        for (int i = 0; i < word.length(); ) {
            int cp = word.codePointAt(i);
            int end = i + Character.charCount(cp);
            String symbol = word.substring(i, end);
            i = end;
            Integer id = vocab.get(symbol);
            if (id != null) {
                ids.add(id);
                lastWasUnk = false;
            } else if (byteFallback && addBytes(symbol, ids)) {
                lastWasUnk = false;
            } else if (unkId >= 0) {
                if (!(fuseUnk && lastWasUnk)) ids.add(unkId);
                lastWasUnk = true;
            }
        }
        return ids.toArray();
    }

    /** Byte fallback: the symbol as {@code <0xXX>} tokens, all or nothing. */
    private boolean addBytes(String symbol, IntList ids) {
        byte[] bytes = symbol.getBytes(java.nio.charset.StandardCharsets.UTF_8);
        int[] byteIds = new int[bytes.length];
        for (int i = 0; i < bytes.length; i++) {
            Integer id = vocab.get(String.format("<0x%02X>", bytes[i] & 0xFF));
            if (id == null) return false;
            byteIds[i] = id;
        }
        ids.addAll(byteIds);
        return true;
    }

    private static long pairKey(int left, int right) {
        return ((long) left << 32) | (right & 0xFFFFFFFFL);
    }

    /** A min-heap of longs, enough for the merge queue without boxing. */
    private static final class LongHeap {
        private long[] items;
        private int size;

        LongHeap(int capacity) {
            items = new long[Math.max(capacity, 4)];
        }

        boolean isEmpty() {
            return size == 0;
        }

        void add(long item) {
            if (size == items.length) items = Arrays.copyOf(items, size * 2);
            int i = size++;
            while (i > 0) {
                int parent = (i - 1) / 2;
                if (items[parent] <= item) break;
                items[i] = items[parent];
                i = parent;
            }
            items[i] = item;
        }

        long poll() {
            long top = items[0];
            long last = items[--size];
            int i = 0;
            while (true) {
                int child = 2 * i + 1;
                if (child >= size) break;
                if (child + 1 < size && items[child + 1] < items[child]) child++;
                if (items[child] >= last) break;
                items[i] = items[child];
                i = child;
            }
            items[i] = last;
            return top;
        }
    }

    /** A growable int array. */
    static final class IntList {
        private int[] items;
        private int size;

        IntList(int capacity) {
            items = new int[Math.max(capacity, 4)];
        }

        void add(int value) {
            if (size == items.length) items = Arrays.copyOf(items, size * 2);
            items[size++] = value;
        }

        void addAll(int[] values) {
            if (size + values.length > items.length) {
                items = Arrays.copyOf(items, Math.max(items.length * 2, size + values.length));
            }
            System.arraycopy(values, 0, items, size, values.length);
            size += values.length;
        }

        int size() {
            return size;
        }

        int[] toArray() {
            return Arrays.copyOf(items, size);
        }
    }
}
