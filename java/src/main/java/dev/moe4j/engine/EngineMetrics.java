package dev.moe4j.engine;

import java.util.List;

/**
 * A snapshot of an {@link Engine}'s state and counters, taken by {@link Engine#metrics()}.
 *
 * @param queued requests waiting for admission
 * @param running requests admitted (holding cache blocks), streaming or not
 * @param cacheBlocksUsed cache blocks reserved by running requests (each reserves its prompt plus its new tokens)
 * @param cacheBlocksTotal the model's cache blocks
 * @param promptTokens prompt tokens run since the engine started
 * @param generatedTokens tokens generated since the engine started
 * @param promptTokensPerSecond prompt tokens per second over the last {@link #RATE_WINDOW_SECONDS} seconds
 * @param generatedTokensPerSecond generated tokens per second over the same window
 * @param finished requests that ended with a result (stop, length or cancelled)
 * @param cancelled of those, the ones cancelled
 * @param failed requests that failed in the model
 * @param rejected requests refused at submission (queue full, larger than the cache, engine shut down)
 * @param steps model steps run
 * @param timeToFirstToken seconds from submission to the first token, over the last requests
 * @param timePerOutputToken seconds between a request's tokens after the first (its mean), over the last requests
 * @param expertLoad per MoE layer, tokens routed to each expert since the engine started (k per token)
 * @param deviceBalance per MoE layer spread over several devices, mean over max of the last step's per-device work (1
 *     is perfect); empty with one expert device
 * @param rebalances expert placements changed by live rebalancing
 * @param recentRebalances the last live rebalances (at most {@link #RECENT_REBALANCES}), oldest first
 */
public record EngineMetrics(
        int queued,
        int running,
        long cacheBlocksUsed,
        long cacheBlocksTotal,
        long promptTokens,
        long generatedTokens,
        double promptTokensPerSecond,
        double generatedTokensPerSecond,
        long finished,
        long cancelled,
        long failed,
        long rejected,
        long steps,
        Percentiles timeToFirstToken,
        Percentiles timePerOutputToken,
        List<LayerLoad> expertLoad,
        List<LayerBalance> deviceBalance,
        long rebalances,
        List<Rebalance> recentRebalances) {
    /** The most rebalances {@link #recentRebalances} keeps. */
    public static final int RECENT_REBALANCES = 64;

    /** The window of the per-second rates. */
    public static final int RATE_WINDOW_SECONDS = 10;

    /**
     * Percentiles of the last samples (at most {@link #SAMPLES}); NaN when there are none.
     *
     * @param count samples ever taken
     * @param sum their sum (seconds), over all of them
     */
    public record Percentiles(int count, double sum, double p50, double p90, double p99, double max) {
        public static final int SAMPLES = 1024;
    }

    /** Tokens routed to each expert of one MoE layer. */
    public record LayerLoad(int layer, long[] tokensPerExpert) {
        public LayerLoad {
            tokensPerExpert = tokensPerExpert.clone();
        }

        @Override
        public long[] tokensPerExpert() {
            return tokensPerExpert.clone();
        }
    }

    /** The last step's balance of one expert-parallel MoE layer. */
    public record LayerBalance(int layer, double balance) {}

    /**
     * One live rebalance of one MoE layer.
     *
     * @param step the layer's step count when it took effect
     * @param balanceBefore mean over max of the per-device load under the old placement (1 is perfect)
     * @param balanceAfter the same under the new placement
     */
    public record Rebalance(int layer, int step, double balanceBefore, double balanceAfter) {}

    public EngineMetrics {
        expertLoad = List.copyOf(expertLoad);
        deviceBalance = List.copyOf(deviceBalance);
        recentRebalances = List.copyOf(recentRebalances);
    }
}
