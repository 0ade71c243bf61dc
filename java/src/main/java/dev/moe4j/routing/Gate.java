package dev.moe4j.routing;

import dev.moe4j.kernels.Copy;
import dev.moe4j.model.DeviceStore;
import dev.moe4j.model.Linear;
import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.Workspace;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.Objects;

/**
 * DeepSeek's MoE gate (V3 reference {@code Gate.forward}, HF {@code MoEGate}): logits {@code x·Wᵀ} natively in fp32,
 * then per token in Java:
 *
 * <ol>
 *   <li>scores = softmax(logits) or sigmoid(logits);
 *   <li>selection scores = scores + e_score_correction_bias (when the gate has one; selection only);
 *   <li>with {@code groups > 1}: each group's score is the sum of its two best selection scores when there is a
 *       bias (V3, {@code noaux_tc}), else its best one (V2, {@code group_limited_greedy}); only the
 *       {@code topkGroups} best groups stay eligible;
 *   <li>the {@code topK} best eligible selection scores choose the experts;
 *   <li>weights = the unbiased scores of the chosen experts, divided by their sum for sigmoid or
 *       {@code normTopkProb}, times {@code routedScalingFactor}.
 * </ol>
 *
 * <p>Ties (equal scores, equal group scores) go to the lower index, so routing is deterministic. A NaN logit is an
 * error ({@link IllegalArgumentException} naming the token) rather than an arbitrary choice.
 *
 * <p>The router weight lives in host memory or, after {@link #to}, in a device's; the logits come to the host (one copy
 * of [T, experts] floats from a device) and the decisions are Java's.
 *
 * <p>Thread-safety: {@link #route} keeps per-call scratch in this object; use one gate per thread, and do not call
 * {@link #adjustBias} while another thread routes (a gate and its {@link #to} copy share the bias).
 */
public final class Gate {
    private final GateConfig config;
    private final Linear weight;
    private final float[] bias;
    // per-token scratch, reused
    private final float[] scores, selection, groupScores;
    private final boolean[] groupKept;
    private final int[] bestExperts;
    private final float[] bestValues;

    /**
     * @param weight BF16 [experts, hidden] ({@code mlp.gate.weight})
     * @param bias {@code e_score_correction_bias} (copied), or null
     */
    public Gate(GateConfig config, Linear weight, float[] bias) {
        this.config = Objects.requireNonNull(config, "config");
        this.weight = Objects.requireNonNull(weight, "weight");
        if (weight.outFeatures() != config.experts())
            throw new IllegalArgumentException(
                    "gate weight has " + weight.outFeatures() + " rows for " + config.experts() + " experts");
        if (bias != null && bias.length != config.experts())
            throw new IllegalArgumentException(
                    "bias has " + bias.length + " entries for " + config.experts() + " experts");
        this.bias = bias == null ? null : bias.clone();
        scores = new float[config.experts()];
        selection = new float[config.experts()];
        groupScores = new float[config.groups()];
        groupKept = new boolean[config.groups()];
        bestExperts = new int[Math.max(config.topK(), config.topkGroups())];
        bestValues = new float[bestExperts.length];
    }

    private Gate(Gate host, Linear weight) {
        this.config = host.config;
        this.weight = weight;
        this.bias = host.bias;
        scores = new float[config.experts()];
        selection = new float[config.experts()];
        groupScores = new float[config.groups()];
        groupKept = new boolean[config.groups()];
        bestExperts = new int[host.bestExperts.length];
        bestValues = new float[bestExperts.length];
    }

    /**
     * This gate with its weight copied into store's device memory, for contexts of that device; the selection bias is
     * shared with this gate ({@link #adjustBias} on either changes both).
     */
    public Gate to(DeviceStore store) {
        return new Gate(this, weight.to(store));
    }

    /** Bytes of the router's weight and bias: what routing a step reads. */
    public long weightBytes() {
        return weight.weightBytes() + (bias == null ? 0 : 4L * bias.length);
    }

    public GateConfig config() {
        return config;
    }

    /** A copy of the current selection bias, or null. */
    public float[] bias() {
        return bias == null ? null : bias.clone();
    }

    /**
     * Hints that ctx's next parallel call reads the router's weight ({@link dev.moe4j.kernels.Prefetch}): for the
     * caller to give before the small kernels that precede {@link #route}.
     */
    public void prefetch(Context ctx) {
        weight.prefetch(ctx);
    }

    /**
     * Routes T tokens.
     *
     * @param ctx a context of the device that holds the weight
     * @param x F32 or BF16 [T, hidden], in the memory of ctx's device
     * @param out receives the decisions; T ≤ {@code out.maxTokens()}, {@code out.k()} = topK
     */
    public void route(Context ctx, Tensor x, Routing out) {
        Objects.requireNonNull(x, "x");
        Objects.requireNonNull(out, "out");
        if (out.k() != config.topK())
            throw new IllegalArgumentException(
                    "out holds " + out.k() + " experts per token, the gate picks " + config.topK());
        int t = Math.toIntExact(x.shape(0));
        out.reset(t);
        try (Workspace.Frame scratch = ctx.workspace().frame()) {
            Tensor logits = Copy.toHost(scratch, weight.apply(ctx, x, DType.F32, scratch));
            MemorySegment rows = logits.segment();
            for (int i = 0; i < t; i++) {
                MemorySegment.copy(
                        rows, ValueLayout.JAVA_FLOAT, (long) i * config.experts() * 4, scores, 0, scores.length);
                routeToken(i, out);
            }
        }
    }

    /** Routes one token whose logits are in {@code scores}. */
    private void routeToken(int token, Routing out) {
        int e = config.experts();
        score(token);
        for (int i = 0; i < e; i++) selection[i] = bias == null ? scores[i] : scores[i] + bias[i];
        if (config.groups() > 1) maskGroups();
        int k = config.topK();
        topK(selection, k);
        double sum = 0;
        for (int j = 0; j < k; j++) sum += scores[bestExperts[j]];
        boolean normalize = config.scoring() == Scoring.SIGMOID || config.normTopkProb();
        for (int j = 0; j < k; j++) {
            float affinity = scores[bestExperts[j]];
            double w = normalize ? affinity / (sum + 1e-20) : affinity;
            out.set(token, j, bestExperts[j], (float) (w * config.routedScalingFactor()), affinity);
        }
    }

    private void score(int token) {
        int e = config.experts();
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < e; i++) {
            if (Float.isNaN(scores[i]))
                throw new IllegalArgumentException("token " + token + " has a NaN gate logit (expert " + i + ")");
            max = Math.max(max, scores[i]);
        }
        if (config.scoring() == Scoring.SIGMOID) {
            for (int i = 0; i < e; i++) scores[i] = (float) (1 / (1 + Math.exp(-scores[i])));
            return;
        }
        double sum = 0;
        for (int i = 0; i < e; i++) sum += scores[i] = (float) Math.exp(scores[i] - max);
        for (int i = 0; i < e; i++) scores[i] = (float) (scores[i] / sum);
    }

    /** Sets the selection score of every expert outside the best topkGroups groups to -inf. */
    private void maskGroups() {
        int size = config.groupSize();
        for (int g = 0; g < config.groups(); g++) {
            float first = Float.NEGATIVE_INFINITY, second = Float.NEGATIVE_INFINITY;
            for (int i = g * size; i < (g + 1) * size; i++) {
                float s = selection[i];
                if (s > first) {
                    second = first;
                    first = s;
                } else if (s > second) {
                    second = s;
                }
            }
            groupScores[g] = bias != null && size >= 2 ? first + second : first;
        }
        topK(groupScores, config.topkGroups());
        Arrays.fill(groupKept, false);
        for (int j = 0; j < config.topkGroups(); j++) groupKept[bestExperts[j]] = true;
        for (int g = 0; g < config.groups(); g++)
            if (!groupKept[g]) Arrays.fill(selection, g * size, (g + 1) * size, Float.NEGATIVE_INFINITY);
    }

    /** The k largest values' indices into bestExperts, best first, ties to the lower index. */
    private void topK(float[] values, int k) {
        int filled = 0;
        for (int i = 0; i < values.length; i++) {
            float v = values[i];
            if (filled == k && !(v > bestValues[k - 1])) continue;
            int p = Math.min(filled, k - 1);
            while (p > 0 && v > bestValues[p - 1]) {
                bestValues[p] = bestValues[p - 1];
                bestExperts[p] = bestExperts[p - 1];
                p--;
            }
            bestValues[p] = v;
            bestExperts[p] = i;
            if (filled < k) filled++;
        }
    }

    /**
     * The auxiliary-loss-free balancing step of DeepSeek-V3: {@code bias[i] += gamma · sign(mean − load[i])}, which
     * raises under-loaded experts' selection scores and lowers over-loaded ones'.
     *
     * @param load tokens per expert over the last step or window
     * @throws IllegalStateException if the gate has no bias
     */
    public void adjustBias(long[] load, float gamma) {
        if (bias == null) throw new IllegalStateException("this gate has no e_score_correction_bias to adjust");
        if (load.length != config.experts())
            throw new IllegalArgumentException(
                    "load has " + load.length + " entries for " + config.experts() + " experts");
        double mean = 0;
        for (long l : load) mean += l;
        mean /= load.length;
        for (int i = 0; i < load.length; i++) bias[i] += gamma * (float) Math.signum(mean - load[i]);
    }
}
