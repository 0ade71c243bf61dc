package dev.moe4j.routing;

/**
 * What a DeepSeek gate selects: {@code topK} of {@code experts} routed experts per token, from at most
 * {@code topkGroups} of {@code groups} equal expert groups.
 *
 * @param experts routed experts ({@code n_routed_experts})
 * @param topK experts per token ({@code num_experts_per_tok})
 * @param groups expert groups ({@code n_group}); 1 turns group-limited routing off
 * @param topkGroups groups a token may use ({@code topk_group})
 * @param scoring softmax (V2) or sigmoid (V3)
 * @param normTopkProb renormalize the chosen weights to sum 1 ({@code norm_topk_prob}; always done for sigmoid)
 * @param routedScalingFactor multiplies the final weights ({@code routed_scaling_factor})
 */
public record GateConfig(
        int experts,
        int topK,
        int groups,
        int topkGroups,
        Scoring scoring,
        boolean normTopkProb,
        double routedScalingFactor) {
    public GateConfig {
        if (experts <= 0) throw new IllegalArgumentException("experts must be positive, got " + experts);
        if (groups <= 0 || experts % groups != 0)
            throw new IllegalArgumentException(
                    "groups (n_group) must be positive and divide the " + experts + " experts, got " + groups);
        if (topkGroups <= 0 || topkGroups > groups)
            throw new IllegalArgumentException(
                    "topkGroups (topk_group) must be in 1.." + groups + ", got " + topkGroups);
        if (topK <= 0 || topK > topkGroups * (experts / groups))
            throw new IllegalArgumentException("topK (num_experts_per_tok) must be in 1.."
                    + topkGroups * (experts / groups) + " (the experts of " + topkGroups + " groups), got " + topK);
        if (scoring == null) throw new IllegalArgumentException("scoring must not be null");
        if (!(routedScalingFactor > 0))
            throw new IllegalArgumentException("routedScalingFactor must be positive, got " + routedScalingFactor);
    }

    /** Experts per group. */
    public int groupSize() {
        return experts / groups;
    }
}
