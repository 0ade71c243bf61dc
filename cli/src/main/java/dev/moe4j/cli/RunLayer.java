package dev.moe4j.cli;

import dev.moe4j.model.Checkpoint;
import dev.moe4j.model.DecoderLayer;
import dev.moe4j.model.PagedLatentCache;
import dev.moe4j.model.Safetensors;
import dev.moe4j.routing.Routing;
import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.Workspace;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.Tensor;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/**
 * {@code run-layer}: runs one part of one decoder layer of a checkpoint on hidden states from a safetensors file and
 * writes the result, for parity checks against a PyTorch reference. The T input tokens form one sequence at
 * positions 0..T-1 (attention and layer start from an empty cache).
 *
 * <ul>
 *   <li>{@code attention}: the MLA block alone (its input is what {@code self_attn} receives, after input_layernorm);
 *   <li>{@code moe}: the layer's MLP part alone (after post_attention_layernorm): routed plus shared experts, or the
 *       dense MLP of a layer before {@code first_k_dense_replace};
 *   <li>{@code layer}: the whole decoder layer, norms and residuals included.
 * </ul>
 *
 * Output: {@code hidden_states} F32 [T, hidden], plus {@code topk_idx} I32 [T, k] and {@code topk_weight} F32 [T, k]
 * when the layer routes (moe and layer parts of an MoE layer).
 */
final class RunLayer {
    private RunLayer() {}

    static final String USAGE = "run-layer --model DIR --layer N --part moe|attention|layer --input IN.safetensors"
            + " --output OUT.safetensors [--quantize]";

    static int run(String[] args) {
        Options o = new Options(
                "run-layer", args, Set.of("--model", "--layer", "--part", "--input", "--output"), Set.of("--quantize"));
        String part = o.string("--part");
        if (!Set.of("moe", "attention", "layer").contains(part))
            throw new IllegalArgumentException("--part must be moe, attention or layer, got '" + part + "'");
        Path input = Path.of(o.string("--input")), output = Path.of(o.string("--output"));
        try (Checkpoint checkpoint = Checkpoint.open(Path.of(o.string("--model")));
                Safetensors in = Safetensors.open(input);
                Arena arena = Arena.ofConfined();
                Context ctx = Context.create()) {
            int hidden = checkpoint.config().hiddenSize();
            Tensor states = in.tensor("hidden_states");
            if (states.rank() != 2
                    || states.shape(1) != hidden
                    || (states.dtype() != DType.F32 && states.dtype() != DType.BF16))
                throw new IllegalArgumentException(
                        "'hidden_states' in " + input + " must be F32 or BF16 [T, " + hidden + "], got " + states);
            int t = Math.toIntExact(states.shape(0));
            Tensor x = Tensor.fromFloats(arena, DType.F32, states.toFloatArray(), t, hidden);
            DecoderLayer layer =
                    DecoderLayer.load(checkpoint, o.integer("--layer"), o.has("--quantize"), false, false, ctx, arena);
            Tensor out = Tensor.allocate(arena, DType.F32, t, hidden);
            Routing routing = layer.moe() == null
                    ? null
                    : new Routing(layer.moe().gate().config().topK(), t);
            long t0 = System.nanoTime();
            switch (part) {
                case "attention" ->
                    layer.attention().step(ctx, cache(arena, 1, t), 0, new int[] {0}, new int[] {t}, x, out);
                case "moe" -> {
                    if (layer.moe() != null) layer.moe().forward(ctx, x, routing, out);
                    else layer.mlp().apply(ctx, x, out);
                }
                default -> {
                    PagedLatentCache cache = cache(arena, layer.index() + 1, t);
                    Tensor sum = Tensor.allocate(arena, DType.F32, t, hidden);
                    try (Workspace.Frame frame = ctx.workspace().frame()) {
                        cache.inStep(frame, new int[] {0}, new int[] {t}, step -> {
                            layer.forward(ctx, cache, step, x, null, routing, sum, out);
                            return null;
                        });
                    }
                    // the layer leaves its output as two terms (see DecoderLayer.forward); a one-off add of the
                    // fixture's rows, as fp32 adds like the kernels'
                    float[] a = sum.toFloatArray(), b = out.toFloatArray();
                    for (int i = 0; i < a.length; i++) a[i] += b[i];
                    out.copyFrom(a);
                }
            }
            long t1 = System.nanoTime();
            Map<String, Tensor> result = new LinkedHashMap<>();
            result.put("hidden_states", out);
            if (routing != null && !part.equals("attention")) {
                int k = routing.k();
                Tensor idx = Tensor.allocate(arena, DType.I32, t, k), weight = Tensor.allocate(arena, DType.F32, t, k);
                for (int i = 0; i < t; i++)
                    for (int j = 0; j < k; j++) {
                        idx.setInt(routing.expert(i, j), i, j);
                        weight.setFloat(routing.weight(i, j), i, j);
                    }
                result.put("topk_idx", idx);
                result.put("topk_weight", weight);
            }
            Safetensors.write(output, result, Map.of("moe4j_part", part, "moe4j_layer", String.valueOf(layer.index())));
            System.out.printf(
                    "layer %d %s: %d tokens in %.1f ms -> %s (%s)%n",
                    layer.index(), part, t, (t1 - t0) / 1e6, output, String.join(", ", result.keySet()));
        }
        return 0;
    }

    /** A cache of {@code layers} layers with one empty sequence (id 0) of room for t tokens. */
    private static PagedLatentCache cache(Arena arena, int layers, int t) {
        PagedLatentCache cache = new PagedLatentCache(arena, layers, PagedLatentCache.blocksFor(t), 1, false);
        cache.newSequence();
        return cache;
    }
}
