package dev.moe4j.model;

import dev.moe4j.internal.Json;
import dev.moe4j.routing.GateConfig;
import dev.moe4j.routing.Scoring;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The parts of a Hugging Face DeepSeek-V2 / V2-Lite / V3 {@code config.json} that define the decoder layers, under
 * their HF names. Missing optional keys take the HF defaults ({@code scoring_func} softmax, {@code n_group} and
 * {@code topk_group} 1, {@code norm_topk_prob} false, {@code routed_scaling_factor} 1, {@code moe_layer_freq} 1,
 * {@code first_k_dense_replace} 0, {@code q_lora_rank} null = 0, {@code rope_theta} 10000, {@code rms_norm_eps}
 * 1e-6, no {@code rope_scaling}, no {@code quantization_config}).
 *
 * @param weightBlockSize the FP8 checkpoint's {@code quantization_config.weight_block_size} (128) or 0 for a
 *     BF16 checkpoint
 * @param tieWordEmbeddings whether the LM head reuses {@code model.embed_tokens.weight} (no {@code lm_head.weight})
 * @param bosTokenId {@code bos_token_id}, or -1 when absent
 * @param eosTokenIds {@code eos_token_id} (a number or a list in HF configs), empty when absent
 * @param numNextnPredictLayers multi-token-prediction layers stored after the decoder layers (V3: 1); not run
 */
public record ModelConfig(
        String modelType,
        int hiddenSize,
        int intermediateSize,
        int moeIntermediateSize,
        int numHiddenLayers,
        int numAttentionHeads,
        int nRoutedExperts,
        int nSharedExperts,
        int numExpertsPerTok,
        int nGroup,
        int topkGroup,
        String topkMethod,
        Scoring scoringFunc,
        boolean normTopkProb,
        double routedScalingFactor,
        int firstKDenseReplace,
        int moeLayerFreq,
        int qLoraRank,
        int kvLoraRank,
        int qkNopeHeadDim,
        int qkRopeHeadDim,
        int vHeadDim,
        double ropeTheta,
        Rope.Yarn ropeScaling,
        double rmsNormEps,
        int maxPositionEmbeddings,
        int vocabSize,
        int weightBlockSize,
        boolean tieWordEmbeddings,
        int bosTokenId,
        List<Integer> eosTokenIds,
        int numNextnPredictLayers) {

    public ModelConfig {
        eosTokenIds = List.copyOf(eosTokenIds);
    }

    /**
     * @throws IllegalArgumentException naming the file and key when a required key is missing or has the wrong
     *     type, or a value is out of range
     */
    public static ModelConfig read(Path file) {
        String text;
        try {
            text = Files.readString(file);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read model config " + file + ": " + e.getMessage(), e);
        }
        try {
            return parse(text);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(file + ": " + e.getMessage(), e);
        }
    }

    /** Parses config.json text (errors name the key). */
    public static ModelConfig parse(String json) {
        if (!(Json.parse(json) instanceof Map<?, ?> m))
            throw new IllegalArgumentException("config is not a JSON object");
        Keys k = new Keys(m);
        Rope.Yarn yarn = null;
        if (m.get("rope_scaling") instanceof Map<?, ?> rs) {
            Keys r = new Keys(rs);
            String type = r.string("type", r.string("rope_type", "none"));
            if (!type.equals("yarn"))
                throw new IllegalArgumentException("rope_scaling type \"" + type + "\" is not supported (only yarn)");
            yarn = new Rope.Yarn(
                    r.number("factor", null),
                    r.integer("original_max_position_embeddings", null),
                    r.number("beta_fast", 32.0),
                    r.number("beta_slow", 1.0),
                    r.number("mscale", 1.0),
                    r.number("mscale_all_dim", 0.0));
        } else if (m.get("rope_scaling") != null) {
            throw new IllegalArgumentException("rope_scaling must be an object or null");
        }
        int blockSize = 0;
        if (m.get("quantization_config") instanceof Map<?, ?> qc) {
            Keys q = new Keys(qc);
            String fmt = q.string("fmt", "e4m3");
            if (!fmt.equals("e4m3"))
                throw new IllegalArgumentException("quantization_config.fmt \"" + fmt + "\" is not supported (e4m3)");
            if (!(qc.get("weight_block_size") instanceof List<?> bs)
                    || bs.size() != 2
                    || !bs.get(0).equals(128L)
                    || !bs.get(1).equals(128L))
                throw new IllegalArgumentException(
                        "quantization_config.weight_block_size must be [128, 128], got " + qc.get("weight_block_size"));
            blockSize = 128;
        }
        int experts = k.integer("n_routed_experts", 0);
        var c = new ModelConfig(
                k.string("model_type", "deepseek_v2"),
                k.integer("hidden_size", null),
                k.integer("intermediate_size", null),
                k.integer("moe_intermediate_size", experts > 0 ? null : 0),
                k.integer("num_hidden_layers", null),
                k.integer("num_attention_heads", null),
                experts,
                k.integer("n_shared_experts", 0),
                k.integer("num_experts_per_tok", experts > 0 ? null : 0),
                k.integer("n_group", 1),
                k.integer("topk_group", 1),
                k.string("topk_method", "greedy"),
                Scoring.parse(k.string("scoring_func", "softmax")),
                k.bool("norm_topk_prob", false),
                k.number("routed_scaling_factor", 1.0),
                k.integer("first_k_dense_replace", 0),
                k.integer("moe_layer_freq", 1),
                k.integer("q_lora_rank", 0),
                k.integer("kv_lora_rank", null),
                k.integer("qk_nope_head_dim", null),
                k.integer("qk_rope_head_dim", null),
                k.integer("v_head_dim", null),
                k.number("rope_theta", 10000.0),
                yarn,
                k.number("rms_norm_eps", 1e-6),
                k.integer("max_position_embeddings", 4096),
                k.integer("vocab_size", 0),
                blockSize,
                k.bool("tie_word_embeddings", false),
                m.get("bos_token_id") == null ? -1 : k.integer("bos_token_id", null),
                eosIds(m.get("eos_token_id")),
                k.integer("num_nextn_predict_layers", 0));
        positive("hidden_size", c.hiddenSize());
        positive("num_hidden_layers", c.numHiddenLayers());
        positive("num_attention_heads", c.numAttentionHeads());
        positive("max_position_embeddings", c.maxPositionEmbeddings());
        if (!(c.ropeTheta() > 1) || Double.isInfinite(c.ropeTheta()))
            throw new IllegalArgumentException("\"rope_theta\" must be a finite number > 1, got " + c.ropeTheta());
        if (!(c.rmsNormEps() > 0) || Double.isInfinite(c.rmsNormEps()))
            throw new IllegalArgumentException("\"rms_norm_eps\" must be a finite number > 0, got " + c.rmsNormEps());
        if (!(c.routedScalingFactor() > 0) || Double.isInfinite(c.routedScalingFactor()))
            throw new IllegalArgumentException(
                    "\"routed_scaling_factor\" must be a finite number > 0, got " + c.routedScalingFactor());
        c.mla(); // validates the attention dims
        if (experts > 0) c.gate();
        if (c.moeLayerFreq() <= 0) throw new IllegalArgumentException("moe_layer_freq must be positive");
        return c;
    }

    private static void positive(String key, int value) {
        if (value <= 0) throw new IllegalArgumentException("\"" + key + "\" must be positive, got " + value);
    }

    private static List<Integer> eosIds(Object v) {
        if (v == null) return List.of();
        List<?> values = v instanceof List<?> l ? l : List.of(v);
        List<Integer> ids = new ArrayList<>();
        for (Object id : values) {
            if (!(id instanceof Number n) || n.doubleValue() != Math.rint(n.doubleValue()) || n.longValue() < 0)
                throw new IllegalArgumentException("\"eos_token_id\" must be a token id or a list of them, got " + v);
            ids.add(n.intValue());
        }
        return ids;
    }

    /** Typed access to a JSON object's keys with HF defaults; a null default marks a required key. */
    private record Keys(Map<?, ?> map) {
        Object get(String key, Object fallback) {
            Object v = map.get(key);
            if (v == null) {
                if (fallback == null) throw new IllegalArgumentException("missing required key \"" + key + "\"");
                return fallback;
            }
            return v;
        }

        int integer(String key, Integer fallback) {
            Object v = get(key, fallback);
            if (!(v instanceof Number n)
                    || n.doubleValue() != Math.rint(n.doubleValue())
                    || n.longValue() < 0
                    || n.longValue() > Integer.MAX_VALUE)
                throw new IllegalArgumentException("\"" + key + "\" must be a non-negative integer, got " + v);
            return n.intValue();
        }

        double number(String key, Double fallback) {
            if (!(get(key, fallback) instanceof Number n))
                throw new IllegalArgumentException("\"" + key + "\" must be a number, got " + map.get(key));
            return n.doubleValue();
        }

        boolean bool(String key, Boolean fallback) {
            if (!(get(key, fallback) instanceof Boolean b))
                throw new IllegalArgumentException("\"" + key + "\" must be true or false, got " + map.get(key));
            return b;
        }

        String string(String key, String fallback) {
            if (!(get(key, fallback) instanceof String s))
                throw new IllegalArgumentException("\"" + key + "\" must be a string, got " + map.get(key));
            return s;
        }
    }

    /** Whether layer N has routed experts (else a dense MLP of {@code intermediate_size}). */
    public boolean isMoeLayer(int layer) {
        return nRoutedExperts > 0 && layer >= firstKDenseReplace && layer % moeLayerFreq == 0;
    }

    public boolean isFp8() {
        return weightBlockSize > 0;
    }

    public MlaAttention.Config mla() {
        return new MlaAttention.Config(
                hiddenSize,
                numAttentionHeads,
                qLoraRank,
                kvLoraRank,
                qkNopeHeadDim,
                qkRopeHeadDim,
                vHeadDim,
                (float) rmsNormEps,
                ropeTheta,
                ropeScaling);
    }

    public GateConfig gate() {
        return new GateConfig(
                nRoutedExperts, numExpertsPerTok, nGroup, topkGroup, scoringFunc, normTopkProb, routedScalingFactor);
    }

    /** This config as HF config.json keys. */
    public Map<String, Object> toJson() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put(
                "architectures",
                List.of(modelType.equals("deepseek_v3") ? "DeepseekV3ForCausalLM" : "DeepseekV2ForCausalLM"));
        m.put("model_type", modelType);
        m.put("hidden_size", hiddenSize);
        m.put("intermediate_size", intermediateSize);
        m.put("moe_intermediate_size", moeIntermediateSize);
        m.put("num_hidden_layers", numHiddenLayers);
        m.put("num_attention_heads", numAttentionHeads);
        m.put("num_key_value_heads", numAttentionHeads);
        m.put("n_routed_experts", nRoutedExperts);
        m.put("n_shared_experts", nSharedExperts);
        m.put("num_experts_per_tok", numExpertsPerTok);
        m.put("n_group", nGroup);
        m.put("topk_group", topkGroup);
        m.put("topk_method", topkMethod);
        m.put("scoring_func", scoringFunc == Scoring.SIGMOID ? "sigmoid" : "softmax");
        m.put("norm_topk_prob", normTopkProb);
        m.put("routed_scaling_factor", routedScalingFactor);
        m.put("first_k_dense_replace", firstKDenseReplace);
        m.put("moe_layer_freq", moeLayerFreq);
        m.put("q_lora_rank", qLoraRank == 0 ? null : qLoraRank);
        m.put("kv_lora_rank", kvLoraRank);
        m.put("qk_nope_head_dim", qkNopeHeadDim);
        m.put("qk_rope_head_dim", qkRopeHeadDim);
        m.put("v_head_dim", vHeadDim);
        m.put("rope_theta", ropeTheta);
        if (ropeScaling != null) {
            Map<String, Object> rs = new LinkedHashMap<>();
            rs.put("type", "yarn");
            rs.put("factor", ropeScaling.factor());
            rs.put("original_max_position_embeddings", ropeScaling.originalMaxPositions());
            rs.put("beta_fast", ropeScaling.betaFast());
            rs.put("beta_slow", ropeScaling.betaSlow());
            rs.put("mscale", ropeScaling.mscale());
            rs.put("mscale_all_dim", ropeScaling.mscaleAllDim());
            m.put("rope_scaling", rs);
        }
        m.put("rms_norm_eps", rmsNormEps);
        m.put("max_position_embeddings", maxPositionEmbeddings);
        m.put("vocab_size", vocabSize);
        m.put("tie_word_embeddings", tieWordEmbeddings);
        if (bosTokenId >= 0) m.put("bos_token_id", bosTokenId);
        if (!eosTokenIds.isEmpty()) m.put("eos_token_id", eosTokenIds.size() == 1 ? eosTokenIds.get(0) : eosTokenIds);
        if (numNextnPredictLayers > 0) m.put("num_nextn_predict_layers", numNextnPredictLayers);
        m.put("hidden_act", "silu");
        m.put("torch_dtype", "bfloat16");
        if (weightBlockSize > 0) {
            Map<String, Object> q = new LinkedHashMap<>();
            q.put("activation_scheme", "dynamic");
            q.put("fmt", "e4m3");
            q.put("quant_method", "fp8");
            q.put("weight_block_size", List.of(weightBlockSize, weightBlockSize));
            m.put("quantization_config", q);
        }
        return m;
    }
}
