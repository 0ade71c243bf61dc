package dev.moe4j.model;

import dev.moe4j.kernels.Copy;
import dev.moe4j.kernels.Dispatch;
import dev.moe4j.kernels.ExpertFfn;
import dev.moe4j.kernels.Quantization;
import dev.moe4j.kernels.ScaleFormat;
import dev.moe4j.routing.Gate;
import dev.moe4j.routing.Routing;
import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.Workspace;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.QuantizedGroups;
import dev.moe4j.tensor.QuantizedTensor;
import dev.moe4j.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * A DeepSeek MoE layer: {@code y[t] = shared(x[t]) + Σ_j weight[t, j] · FFN_{expert[t, j]}(x[t])} with the experts
 * chosen by a {@link Gate}.
 *
 * <p>One forward pass: route; gather each (token, expert) pair's row into the contiguous grouped layout (each
 * expert's rows together, padded to {@code alignment}) and quantize the rows per token to FP8; run every routed expert's
 * FFN in one fused native call ({@link ExpertFfn}); then combine ({@link Dispatch#combine}) per token, shared experts
 * first and the routed ones by rank, so the fp32 summation order is fixed whatever the expert placement. Dropped
 * assignments (expert -1, see {@link dev.moe4j.routing.Capacity}) are skipped.
 *
 * <p>Shared experts whose weights are FP8 run in the same native call as the routed ones: n_shared experts of
 * moe_intermediate width each are concatenated in the checkpoint, and each becomes one more group (views of the
 * stored weights) that every token goes to with weight 1. One call then streams all of a step's expert weights over
 * all threads, with no second pass for the shared experts (the down projection sums per shared expert; the rounding
 * differs from one 2·moe_intermediate-wide product, not the arithmetic).
 *
 * <p>Java-side work is per call, proportional to T·k (the routing tables); the row gathers and the combine are native.
 * Scratch comes from the context's {@link Workspace}: nothing is allocated once steps of a size have run. On a device
 * ({@link #to}) the weights, x, out and the scratch are in the device's memory; the router logits come to the host for
 * the gate's decision and the four routing tables go back, one copy each.
 * Not thread-safe (the gate's state is per layer): one layer instance per thread.
 */
public final class MoeLayer implements MoeBlock {
    private final Gate gate;
    private final QuantizedGroups expertGate, expertUp, expertDown;
    private final DenseMlp shared;
    // The groups the fused call runs: the routed experts, then the shared experts' parts when they run in the same
    // call (sharedParts > 0: every token also goes to each part, with weight 1), so that one call streams all the
    // layer's expert weights over all threads.
    private final QuantizedGroups runGate, runUp, runDown;
    private final int sharedParts;
    private final int alignment;
    private final int hidden, experts;

    /**
     * @param expertGate E groups (one per expert, each anywhere in memory), E4M3 [I, H] with block scales
     *     [ceil(I/128), H/128] (every expert's {@code gate_proj})
     * @param expertUp like expertGate ({@code up_proj})
     * @param expertDown E groups, E4M3 [H, I] with block scales [ceil(H/128), I/128] ({@code down_proj})
     * @param shared the shared experts as one MLP, or null
     * @param alignment rows per expert block in the grouped layout: 1 on CPUs (no padding), 128 for DeepGEMM-style
     *     GPU kernels
     */
    public MoeLayer(
            Gate gate,
            QuantizedGroups expertGate,
            QuantizedGroups expertUp,
            QuantizedGroups expertDown,
            DenseMlp shared,
            int alignment) {
        this.gate = Objects.requireNonNull(gate, "gate");
        this.expertGate = Objects.requireNonNull(expertGate, "expertGate");
        this.expertUp = Objects.requireNonNull(expertUp, "expertUp");
        this.expertDown = Objects.requireNonNull(expertDown, "expertDown");
        this.shared = shared;
        if (alignment <= 0) throw new IllegalArgumentException("alignment must be positive, got " + alignment);
        this.alignment = alignment;
        experts = gate.config().experts();
        if (expertGate.count() != experts)
            throw new IllegalArgumentException(
                    "expertGate must hold " + experts + " experts [I, H], got " + expertGate);
        hidden = Math.toIntExact(expertGate.inFeatures());
        long inter = expertGate.outFeatures();
        if (expertUp.count() != experts || expertUp.outFeatures() != inter || expertUp.inFeatures() != hidden)
            throw new IllegalArgumentException(
                    "expertUp must be shaped like expertGate " + expertGate + ", got " + expertUp);
        if (expertDown.count() != experts || expertDown.outFeatures() != hidden || expertDown.inFeatures() != inter)
            throw new IllegalArgumentException(
                    "expertDown must hold " + experts + " experts [" + hidden + ", " + inter + "], got " + expertDown);
        if (shared != null && shared.hidden() != hidden)
            throw new IllegalArgumentException(
                    "shared experts take " + shared.hidden() + " features, the routed " + hidden);
        QuantizedGroups[] parts = shared == null || shared.intermediate() % inter != 0
                ? null
                : shared.asExperts(Math.toIntExact(shared.intermediate() / inter));
        if (parts != null && experts + parts[0].count() <= QuantizedGroups.MAX_GROUPS) {
            sharedParts = parts[0].count();
            runGate = concat(expertGate, parts[0]);
            runUp = concat(expertUp, parts[1]);
            runDown = concat(expertDown, parts[2]);
        } else {
            sharedParts = 0;
            runGate = expertGate;
            runUp = expertUp;
            runDown = expertDown;
        }
    }

    /**
     * This layer with the gate's weight, every routed expert (one stack per projection) and the shared experts copied
     * into store's device memory, for contexts of that device; the gate's selection bias is shared with this layer's.
     */
    public MoeLayer to(DeviceStore store) {
        return new MoeLayer(
                gate.to(store),
                store.upload(expertGate),
                store.upload(expertUp),
                store.upload(expertDown),
                shared == null ? null : shared.to(store),
                alignment);
    }

    private static QuantizedGroups concat(QuantizedGroups a, QuantizedGroups b) {
        List<QuantizedTensor> all = new ArrayList<>(a.groups());
        all.addAll(b.groups());
        return QuantizedGroups.of(all);
    }

    @Override
    public Gate gate() {
        return gate;
    }

    /** Every expert's gate_proj [I, H] (FP8, block scales), one group per expert. */
    public QuantizedGroups expertGate() {
        return expertGate;
    }

    /** Every expert's up_proj [I, H], one group per expert. */
    public QuantizedGroups expertUp() {
        return expertUp;
    }

    /** Every expert's down_proj [H, I], one group per expert. */
    public QuantizedGroups expertDown() {
        return expertDown;
    }

    /** The shared experts, or null. */
    public DenseMlp shared() {
        return shared;
    }

    public int hidden() {
        return hidden;
    }

    /**
     * Routes and runs T tokens.
     *
     * @param ctx a context of the device that holds the weights
     * @param x F32 or BF16 [T, hidden], in the memory of ctx's device
     * @param routing receives the gate's decisions (its k must be the gate's topK, its size ≥ T)
     * @param out F32 [T, hidden], contiguous, in the memory of ctx's device
     */
    @Override
    public void forward(Context ctx, Tensor x, Routing routing, Tensor out) {
        Objects.requireNonNull(x, "x");
        Objects.requireNonNull(out, "out");
        if (x.rank() != 2 || x.shape(1) != hidden)
            throw new IllegalArgumentException("x must be [T, " + hidden + "], got " + x);
        if (out.dtype() != DType.F32 || !Arrays.equals(out.shape(), x.shape()) || !out.isContiguous())
            throw new IllegalArgumentException(
                    "out must be a contiguous F32 " + Arrays.toString(x.shape()) + ", got " + out);
        gate.route(ctx, x, routing);
        forwardRouted(ctx, x, routing, out);
    }

    /**
     * Runs T tokens with routing decided already (by {@link #forward}'s gate, possibly edited by
     * {@link dev.moe4j.routing.Capacity}).
     */
    public void forwardRouted(Context ctx, Tensor x, Routing routing, Tensor out) {
        int t = routing.tokens(), k = routing.k();
        if (x.shape(0) != t || out.shape(0) != t)
            throw new IllegalArgumentException(
                    "routing covers " + t + " tokens, x has " + x.shape(0) + ", out " + out.shape(0));
        // rows of each group in the grouped layout: routed experts, then the shared parts (every token)
        int groups = experts + sharedParts;
        int[] count = new int[groups], first = new int[groups];
        for (int i = 0; i < t; i++)
            for (int j = 0; j < k; j++) {
                int e = routing.expert(i, j);
                if (e >= 0) count[e]++;
            }
        for (int p = 0; p < sharedParts; p++) count[experts + p] = t;
        int rows = 0;
        for (int e = 0; e < groups; e++) {
            first[e] = rows;
            rows += (count[e] + alignment - 1) / alignment * alignment;
        }
        try (Workspace.Frame frame = ctx.workspace().frame()) {
            run(ctx, frame, x, routing, first, count, rows, out);
        }
    }

    /**
     * Runs the experts (rows of them in the grouped layout) and the shared ones, and combines: per token the shared
     * parts first (weight 1), then the routed experts by rank.
     */
    private void run(
            Context ctx,
            Workspace.Frame frame,
            Tensor x,
            Routing routing,
            int[] first,
            int[] count,
            int rows,
            Tensor out) {
        int t = routing.tokens(), k = routing.k(), terms = sharedParts + k;
        // the grouped-layout row of each (token, term), and the token of each row (-1: padding)
        Tensor rowOf = Tensor.hostScratch(frame, DType.I32, t, terms);
        Tensor weights = Tensor.hostScratch(frame, DType.F32, t, terms);
        Tensor tokenOf = Tensor.hostScratch(frame, DType.I32, Math.max(rows, 1));
        MemorySegment rowSeg = rowOf.segment(), tokenSeg = tokenOf.segment(), weightSeg = weights.segment();
        tokenSeg.fill((byte) 0xFF);
        int[] next = first.clone();
        for (int i = 0; i < t; i++)
            for (int j = 0; j < terms; j++) {
                boolean sharedTerm = j < sharedParts;
                int e = sharedTerm ? experts + j : routing.expert(i, j - sharedParts), r = e >= 0 ? next[e]++ : -1;
                rowSeg.setAtIndex(ValueLayout.JAVA_INT, (long) i * terms + j, r);
                weightSeg.setAtIndex(
                        ValueLayout.JAVA_FLOAT,
                        (long) i * terms + j,
                        sharedTerm ? 1f : routing.weight(i, j - sharedParts));
                if (r >= 0) tokenSeg.setAtIndex(ValueLayout.JAVA_INT, r, i);
            }
        Tensor ys = rows > 0
                ? runExperts(ctx, frame, x, Copy.toDevice(frame, tokenOf), first, count, rows)
                : Tensor.scratch(frame, DType.F32, 1, hidden);

        Tensor sharedOut = null;
        if (shared != null && sharedParts == 0)
            shared.apply(ctx, x, sharedOut = Tensor.scratch(frame, DType.F32, t, hidden));
        Dispatch.combine(ctx, ys, Copy.toDevice(frame, rowOf), Copy.toDevice(frame, weights), sharedOut, out);
    }

    /**
     * Gathers the token rows into the grouped layout, quantizes them per token (each row's codes and scale depend on
     * that row alone, so this is what gathering quantized rows gives, in one call fewer) and runs the fused expert
     * FFN: F32 [rows, H].
     */
    private Tensor runExperts(
            Context ctx, Workspace.Frame frame, Tensor x, Tensor tokenOf, int[] first, int[] count, int rows) {
        int scaleCols = hidden / QuantizedTensor.BLOCK;
        Tensor rowsOfX = Tensor.scratch(frame, x.dtype(), rows, hidden);
        Dispatch.gather(ctx, x, tokenOf.slice(0, 0, rows), rowsOfX);
        QuantizedTensor grouped = new QuantizedTensor(
                Tensor.scratch(frame, DType.E4M3, rows, hidden), Tensor.scratch(frame, DType.F32, rows, scaleCols), 1);
        Quantization.perToken(ctx, rowsOfX, grouped.data(), grouped.scales(), ScaleFormat.FP32);
        Tensor layout = Tensor.hostScratch(frame, DType.I32, rows);
        MemorySegment lay = layout.segment();
        lay.fill((byte) 0xFF);
        for (int e = 0; e < first.length; e++)
            for (int r = first[e]; r < first[e] + count[e]; r++) lay.setAtIndex(ValueLayout.JAVA_INT, r, e);
        Tensor ys = Tensor.scratch(frame, DType.F32, rows, hidden);
        ExpertFfn.contiguous(ctx, grouped, runGate, runUp, runDown, Copy.toDevice(frame, layout), alignment, ys);
        return ys;
    }
}
