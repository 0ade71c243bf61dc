package dev.moe4j.cli;

import dev.moe4j.internal.Json;
import dev.moe4j.model.Checkpoint;
import dev.moe4j.model.ModelConfig;
import dev.moe4j.model.Rope;
import dev.moe4j.model.Safetensors;
import dev.moe4j.routing.Scoring;
import dev.moe4j.tensor.BFloat16;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.Tensor;
import dev.moe4j.tokenizer.Tokenizer;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;

/**
 * {@code make-model}: writes a synthetic checkpoint in Hugging Face's DeepSeek layout (config.json, one safetensors
 * shard per layer, model.safetensors.index.json) with random weights, FP8 with 128x128 {@code weight_scale_inv}
 * blocks like DeepSeek-V3's release (or BF16 with {@code --bf16}). Weights whose input width is not a multiple of
 * 128 (V2-Lite's dense MLP down projection) are written BF16 either way, since FP8 GEMMs tile K by 128. Only the
 * whole model is written: embeddings, the decoder layers, the final norm and the LM head (BF16, as HF ships them),
 * with {@code bos_token_id}/{@code eos_token_id}. With {@code --tokenizer DIR} the tokenizer files are copied in and
 * the vocabulary and special ids come from the tokenizer.
 */
final class MakeModel {
    private MakeModel() {}

    static final String USAGE = "make-model --preset v2-lite|v3 --layers N --out DIR [--experts E --hidden H"
            + " --moe-inter I --inter I --heads N --top-k K --first-dense N --vocab V --tokenizer DIR --seed S --bf16]";

    static final Set<String> VALUED = Set.of(
            "--preset",
            "--layers",
            "--out",
            "--experts",
            "--hidden",
            "--moe-inter",
            "--inter",
            "--heads",
            "--top-k",
            "--first-dense",
            "--vocab",
            "--tokenizer",
            "--seed");
    static final Set<String> FLAGS = Set.of("--bf16");

    static int run(String[] args) {
        Options o = new Options("make-model", args, VALUED, FLAGS);
        ModelConfig c = preset(o);
        Path out = Path.of(o.string("--out"));
        long t0 = System.nanoTime();
        write(c, out, o.positive("--seed", 1));
        if (o.has("--tokenizer")) copyTokenizer(Path.of(o.string("--tokenizer")), out);
        System.out.printf(
                "wrote %s: %s, %d layers, %d routed experts, %s weights, in %.1f s%n",
                out,
                c.modelType(),
                c.numHiddenLayers(),
                c.nRoutedExperts(),
                c.isFp8() ? "FP8" : "BF16",
                (System.nanoTime() - t0) / 1e9);
        return 0;
    }

    /** The config make-model would write for these options (--out and --seed ignored). */
    static ModelConfig preset(String... args) {
        return preset(new Options("make-model", args, VALUED, FLAGS));
    }

    /** The config for these options with a tokenizer already loaded (as --tokenizer would load it). */
    static ModelConfig preset(Tokenizer tokenizer, String... args) {
        return preset(new Options("make-model", args, VALUED, FLAGS), tokenizer);
    }

    static ModelConfig preset(Options o) {
        return preset(o, o.has("--tokenizer") ? Tokenizer.load(Path.of(o.string("--tokenizer"))) : null);
    }

    /** @param tokenizer sizes the vocabulary and gives the BOS/EOS ids, or null for the preset's */
    private static ModelConfig preset(Options o, Tokenizer tokenizer) {
        String preset = o.string("--preset");
        boolean v3 = switch (preset) {
            case "v2-lite" -> false;
            case "v3" -> true;
            default -> throw new IllegalArgumentException("--preset must be v2-lite or v3, got '" + preset + "'");
        };
        int layers = o.positive("--layers", 0);
        if (layers == 0) throw new IllegalArgumentException("make-model needs --layers N");
        int experts = o.positive("--experts", v3 ? 256 : 64);
        int vocab = o.positive("--vocab", v3 ? 129280 : 102400), bos = v3 ? 0 : 100000, eos = v3 ? 1 : 100001;
        if (tokenizer != null) {
            vocab = o.has("--vocab") ? vocab : tokenizer.vocabSize();
            if (vocab < tokenizer.vocabSize())
                throw new IllegalArgumentException(
                        "--vocab " + vocab + " is smaller than the tokenizer's " + tokenizer.vocabSize() + " tokens");
            bos = tokenizer.bosId().orElse(-1);
            eos = tokenizer.eosId().orElse(-1);
        }
        int groups = v3 ? Math.min(8, experts) : 1;
        ModelConfig c = new ModelConfig(
                v3 ? "deepseek_v3" : "deepseek_v2",
                o.positive("--hidden", v3 ? 7168 : 2048),
                o.positive("--inter", v3 ? 18432 : 10944),
                o.positive("--moe-inter", v3 ? 2048 : 1408),
                layers,
                o.positive("--heads", v3 ? 128 : 16),
                experts,
                v3 ? 1 : 2,
                o.positive("--top-k", v3 ? 8 : 6),
                groups,
                v3 ? Math.max(1, groups / 2) : 1,
                v3 ? "noaux_tc" : "greedy",
                v3 ? Scoring.SIGMOID : Scoring.SOFTMAX,
                v3,
                v3 ? 2.5 : 1.0,
                o.has("--first-dense") ? o.integer("--first-dense") : v3 ? 3 : 1,
                1,
                v3 ? 1536 : 0,
                512,
                128,
                64,
                128,
                10000,
                new Rope.Yarn(40, 4096, 32, 1, v3 ? 1 : 0.707, v3 ? 1 : 0.707),
                1e-6,
                163840,
                vocab,
                o.has("--bf16") ? 0 : 128,
                false,
                bos,
                eos < 0 ? List.of() : List.of(eos),
                0);
        // the options must make a checkpoint moe4j can load: the loader's checks, naming the config key
        try {
            ModelConfig.parse(Json.write(c.toJson()));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(
                    "make-model: these options give a config moe4j cannot load: " + e.getMessage()
                            + " (--experts, --top-k and the preset's groups decide the routing)",
                    e);
        }
        return c;
    }

    /** Writes the checkpoint; each layer's tensors are generated, written and freed before the next. */
    static void write(ModelConfig c, Path dir, long seed) {
        try {
            Files.createDirectories(dir);
            Files.writeString(dir.resolve("config.json"), Json.write(c.toJson()));
            Map<String, Object> weightMap = new LinkedHashMap<>();
            for (int layer = 0; layer < c.numHiddenLayers(); layer++) {
                String file = String.format("model-%05d-of-%05d.safetensors", layer + 1, c.numHiddenLayers());
                try (Arena arena = Arena.ofConfined()) {
                    Map<String, Tensor> tensors =
                            layer(c, layer, new SplittableRandom(seed * 1_000_003L + layer), arena);
                    Safetensors.write(dir.resolve(file), tensors, Map.of("format", "pt"));
                    for (String name : tensors.keySet()) weightMap.put(name, file);
                }
            }
            String file = String.format("model-%05d-of-%05d.safetensors", 0, c.numHiddenLayers());
            try (Arena arena = Arena.ofConfined()) {
                Map<String, Tensor> tensors = outer(c, new SplittableRandom(seed * 1_000_003L - 1), arena);
                Safetensors.write(dir.resolve(file), tensors, Map.of("format", "pt"));
                for (String name : tensors.keySet()) weightMap.put(name, file);
            }
            Files.writeString(
                    dir.resolve(Checkpoint.INDEX), Json.write(Map.of("metadata", Map.of(), "weight_map", weightMap)));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the checkpoint to " + dir + ": " + e.getMessage(), e);
        }
    }

    /** Embeddings (unit Gaussians), the final norm and the LM head (outputs of unit variance), BF16. */
    static Map<String, Tensor> outer(ModelConfig c, SplittableRandom random, Arena arena) {
        Map<String, Tensor> t = new LinkedHashMap<>();
        t.put("model.embed_tokens.weight", gaussian(c.vocabSize(), c.hiddenSize(), 1, random, arena));
        norm(t, "model.norm", c.hiddenSize(), random, arena);
        t.put("lm_head.weight", gaussian(c.vocabSize(), c.hiddenSize(), 1 / Math.sqrt(c.hiddenSize()), random, arena));
        return t;
    }

    private static Tensor gaussian(int rows, int cols, double sigma, SplittableRandom r, Arena a) {
        Tensor w = Tensor.allocate(a, DType.BF16, rows, cols);
        MemorySegment s = w.segment();
        for (long i = 0; i < (long) rows * cols; i++)
            s.setAtIndex(ValueLayout.JAVA_SHORT, i, BFloat16.fromFloat((float) (r.nextGaussian() * sigma)));
        return w;
    }

    /** Copies the tokenizer files HF keeps beside a model. */
    static void copyTokenizer(Path from, Path to) {
        try {
            for (String name : List.of("tokenizer.json", "tokenizer_config.json")) {
                Path source = from.resolve(name);
                if (Files.exists(source))
                    Files.copy(source, to.resolve(name), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(
                    "cannot copy the tokenizer from " + from + " to " + to + ": " + e.getMessage(), e);
        }
    }

    static Map<String, Tensor> layer(ModelConfig c, int layer, SplittableRandom random, Arena arena) {
        Map<String, Tensor> t = new LinkedHashMap<>();
        String p = "model.layers." + layer + ".";
        int h = c.hiddenSize(), heads = c.numAttentionHeads(), qHead = c.qkNopeHeadDim() + c.qkRopeHeadDim();
        norm(t, p + "input_layernorm", h, random, arena);
        if (c.qLoraRank() == 0) {
            linear(t, c, p + "self_attn.q_proj", heads * qHead, h, random, arena);
        } else {
            linear(t, c, p + "self_attn.q_a_proj", c.qLoraRank(), h, random, arena);
            norm(t, p + "self_attn.q_a_layernorm", c.qLoraRank(), random, arena);
            linear(t, c, p + "self_attn.q_b_proj", heads * qHead, c.qLoraRank(), random, arena);
        }
        linear(t, c, p + "self_attn.kv_a_proj_with_mqa", c.kvLoraRank() + c.qkRopeHeadDim(), h, random, arena);
        norm(t, p + "self_attn.kv_a_layernorm", c.kvLoraRank(), random, arena);
        linear(
                t,
                c,
                p + "self_attn.kv_b_proj",
                heads * (c.qkNopeHeadDim() + c.vHeadDim()),
                c.kvLoraRank(),
                random,
                arena);
        linear(t, c, p + "self_attn.o_proj", h, heads * c.vHeadDim(), random, arena);
        norm(t, p + "post_attention_layernorm", h, random, arena);
        if (!c.isMoeLayer(layer)) {
            mlp(t, c, p + "mlp.", c.intermediateSize(), h, random, arena);
            return t;
        }
        // gate rows of uneven norms: some experts are favoured, as in trained models
        int experts = c.nRoutedExperts();
        Tensor gate = Tensor.allocate(arena, DType.BF16, experts, h);
        float[] g = new float[experts * h];
        for (int e = 0; e < experts; e++) {
            double norm = Math.exp(0.4 * random.nextGaussian()) / Math.sqrt(h);
            for (int i = 0; i < h; i++) g[e * h + i] = (float) (random.nextGaussian() * norm);
        }
        gate.copyFrom(g);
        t.put(p + "mlp.gate.weight", gate);
        if (c.topkMethod().equals("noaux_tc")) {
            float[] bias = new float[experts];
            for (int e = 0; e < experts; e++) bias[e] = (float) (0.01 * random.nextGaussian());
            t.put(p + "mlp.gate.e_score_correction_bias", Tensor.fromFloats(arena, DType.F32, bias, experts));
        }
        for (int e = 0; e < experts; e++)
            mlp(t, c, p + "mlp.experts." + e + ".", c.moeIntermediateSize(), h, random, arena);
        if (c.nSharedExperts() > 0)
            mlp(t, c, p + "mlp.shared_experts.", c.nSharedExperts() * c.moeIntermediateSize(), h, random, arena);
        return t;
    }

    static void mlp(Map<String, Tensor> t, ModelConfig c, String p, int inter, int h, SplittableRandom r, Arena a) {
        linear(t, c, p + "gate_proj", inter, h, r, a);
        linear(t, c, p + "up_proj", inter, h, r, a);
        linear(t, c, p + "down_proj", h, inter, r, a);
    }

    static void norm(Map<String, Tensor> t, String name, int dim, SplittableRandom random, Arena arena) {
        float[] w = new float[dim];
        for (int i = 0; i < dim; i++) w[i] = (float) (1 + 0.05 * random.nextGaussian());
        t.put(name + ".weight", Tensor.fromFloats(arena, DType.BF16, w, dim));
    }

    /**
     * A weight [out, in] with unit-variance outputs for unit-variance inputs: FP8 codes of magnitude 0.5-3.75 drawn
     * directly (mean square ~4.4) with per-block scales around {@code 1 / sqrt(4.4 in)}, or BF16 Gaussians.
     */
    static void linear(
            Map<String, Tensor> t, ModelConfig c, String name, int out, int in, SplittableRandom r, Arena a) {
        if (!c.isFp8() || in % 128 != 0) {
            t.put(name + ".weight", gaussian(out, in, 1 / Math.sqrt(in), r, a));
            return;
        }
        Tensor w = Tensor.allocate(a, DType.E4M3, out, in);
        MemorySegment s = w.segment();
        for (long i = 0; i < (long) out * in; i += 8) {
            long bits = r.nextLong(), codes = 0;
            for (int b = 0; b < 8; b++) {
                long code = ((bits >>> (6 * b)) & 0x1F) + 0x30 | ((bits >>> (6 * b + 5)) & 1) << 7;
                codes |= code << (8 * b);
            }
            s.set(ValueLayout.JAVA_LONG_UNALIGNED, i, codes); // in is a multiple of 128, so rows fill whole longs
        }
        int ob = (out + 127) / 128, ib = in / 128;
        float[] scales = new float[ob * ib];
        double base = 1 / Math.sqrt(4.4 * in);
        for (int i = 0; i < scales.length; i++) scales[i] = (float) (base * (0.8 + 0.4 * r.nextDouble()));
        t.put(name + ".weight", w);
        t.put(name + ".weight_scale_inv", Tensor.fromFloats(a, DType.F32, scales, ob, ib));
    }
}
