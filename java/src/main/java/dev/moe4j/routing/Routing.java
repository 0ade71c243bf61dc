package dev.moe4j.routing;

/**
 * A gate's decisions for a batch of tokens, in reusable buffers: for token {@code t} and rank {@code j < k}, the
 * chosen expert, its combine weight and its affinity (the unbiased score, before renormalization and scaling),
 * ranks ordered by selection score, best first. An assignment dropped by {@link Capacity} has expert {@code -1} and
 * weight 0.
 *
 * <p>Sized once for up to {@code maxTokens} tokens so that routing a step allocates nothing. Not thread-safe.
 */
public final class Routing {
    private final int k, maxTokens;
    private final int[] experts;
    private final float[] weights, affinities;
    private int tokens, dropped;

    public Routing(int k, int maxTokens) {
        if (k <= 0 || maxTokens <= 0)
            throw new IllegalArgumentException("k and maxTokens must be positive, got " + k + " and " + maxTokens);
        this.k = k;
        this.maxTokens = maxTokens;
        experts = new int[k * maxTokens];
        weights = new float[k * maxTokens];
        affinities = new float[k * maxTokens];
    }

    public int k() {
        return k;
    }

    public int maxTokens() {
        return maxTokens;
    }

    /** Tokens routed by the last call that filled this object. */
    public int tokens() {
        return tokens;
    }

    public int expert(int token, int rank) {
        return experts[index(token, rank)];
    }

    public float weight(int token, int rank) {
        return weights[index(token, rank)];
    }

    public float affinity(int token, int rank) {
        return affinities[index(token, rank)];
    }

    /** Assignments dropped since the last {@link #reset}. */
    public int dropped() {
        return dropped;
    }

    /**
     * Fills this object with routing decided elsewhere (a recorded trace, another router): token t's rank j goes
     * to {@code experts[t·k + j]} (-1: none) with {@code weights[t·k + j]}, which also serves as its affinity.
     *
     * @throws IllegalArgumentException if the arrays do not hold tokens·k entries or tokens exceeds maxTokens
     */
    public void assign(int tokens, int[] experts, float[] weights) {
        if (experts.length != tokens * k || weights.length != tokens * k)
            throw new IllegalArgumentException("experts and weights must hold " + tokens + " x " + k + " entries, got "
                    + experts.length + " and " + weights.length);
        reset(tokens);
        for (int i = 0; i < tokens * k; i++) {
            if (experts[i] < -1)
                throw new IllegalArgumentException("expert " + experts[i] + " at " + i + " is below -1");
            set(i / k, i % k, experts[i], weights[i], weights[i]);
            if (experts[i] < 0) dropped++;
        }
    }

    /** Starts a batch of tokens; ranks are then written with {@link #set}. */
    void reset(int tokens) {
        if (tokens < 0 || tokens > maxTokens)
            throw new IllegalArgumentException(
                    "tokens " + tokens + " outside 0.." + maxTokens + " (this Routing's size)");
        this.tokens = tokens;
        dropped = 0;
    }

    void set(int token, int rank, int expert, float weight, float affinity) {
        int i = token * k + rank;
        experts[i] = expert;
        weights[i] = weight;
        affinities[i] = affinity;
    }

    void drop(int token, int rank) {
        int i = index(token, rank);
        if (experts[i] < 0) return;
        experts[i] = -1;
        weights[i] = 0;
        dropped++;
    }

    private int index(int token, int rank) {
        if (token < 0 || token >= tokens || rank < 0 || rank >= k)
            throw new IndexOutOfBoundsException(
                    "token " + token + ", rank " + rank + " outside " + tokens + " tokens x " + k + " ranks");
        return token * k + rank;
    }
}
