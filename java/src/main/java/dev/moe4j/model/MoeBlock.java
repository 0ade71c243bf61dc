package dev.moe4j.model;

import dev.moe4j.routing.Gate;
import dev.moe4j.routing.Routing;
import dev.moe4j.runtime.Context;
import dev.moe4j.tensor.Tensor;

/**
 * The MoE part of a decoder layer: routes T tokens and returns {@code shared(x) + Σ weight · expert(x)}. Implemented
 * on one context by {@link MoeLayer} and across devices by {@link dev.moe4j.parallel.ExpertParallelMoe}.
 */
public interface MoeBlock {
    /**
     * @param x F32 or BF16 [T, hidden]
     * @param routing receives the gate's decisions (k = the gate's topK, size ≥ T)
     * @param out F32 [T, hidden], contiguous
     */
    void forward(Context ctx, Tensor x, Routing routing, Tensor out);

    Gate gate();
}
