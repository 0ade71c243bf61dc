package dev.moe4j.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.moe4j.internal.Json;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.Tensor;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SafetensorsTest {
    @TempDir
    Path dir;

    @Test
    void writesAndReadsEveryDtype() {
        try (Arena arena = Arena.ofConfined()) {
            Map<String, Tensor> tensors = new LinkedHashMap<>();
            tensors.put("a.f32", Tensor.fromFloats(arena, DType.F32, new float[] {1.5f, -2, 3, 4, 5, 6}, 2, 3));
            tensors.put("b.bf16", Tensor.fromFloats(arena, DType.BF16, new float[] {0.5f, -1, 7}, 3));
            tensors.put("c.f16", Tensor.fromFloats(arena, DType.F16, new float[] {0.25f, 8}, 1, 2));
            tensors.put("d.e4m3", Tensor.fromFloats(arena, DType.E4M3, new float[] {448, -0.5f, 1, 2, 3}, 5));
            Tensor ints = Tensor.allocate(arena, DType.I32, 2, 2);
            for (int i = 0; i < 4; i++) ints.setInt(i * 7 - 3, i / 2, i % 2);
            tensors.put("e.i32", ints);
            tensors.put("f.i64", Tensor.allocate(arena, DType.I64, 3));
            Path file = dir.resolve("x.safetensors");
            Safetensors.write(file, tensors, Map.of("format", "pt"));
            try (Safetensors s = Safetensors.open(file)) {
                assertEquals(List.copyOf(tensors.keySet()), List.copyOf(s.names()));
                assertEquals("pt", s.metadata().get("format"));
                for (var e : tensors.entrySet()) {
                    Tensor got = s.tensor(e.getKey());
                    assertEquals(e.getValue().dtype(), got.dtype(), e.getKey());
                    assertArrayEquals(e.getValue().shape(), got.shape(), e.getKey());
                    if (got.dtype() != DType.I32 && got.dtype() != DType.I64)
                        assertArrayEquals(e.getValue().toFloatArray(), got.toFloatArray(), e.getKey());
                }
                assertEquals(18, s.tensor("e.i32").getInt(1, 1));
                var missing = assertThrows(IllegalArgumentException.class, () -> s.tensor("nope"));
                assertTrue(missing.getMessage().contains("has no tensor 'nope'"), missing.getMessage());
            }
        }
    }

    @Test
    void tensorsStayReadableAfterTheirPagesAreReleased() {
        try (Arena arena = Arena.ofConfined()) {
            float[] values = new float[1 << 20]; // 4 MiB: whole pages to give back
            for (int i = 0; i < values.length; i++) values[i] = i % 1000 - 500;
            Path file = dir.resolve("big.safetensors");
            Safetensors.write(file, Map.of("w", Tensor.fromFloats(arena, DType.F32, values, 1024, 1024)), Map.of());
            try (Safetensors s = Safetensors.open(file)) {
                Tensor before = s.tensor("w");
                assertArrayEquals(values, before.toFloatArray());
                s.releasePages();
                assertArrayEquals(values, before.toFloatArray(), "a tensor taken before the release");
                assertArrayEquals(values, s.tensor("w").toFloatArray(), "a tensor taken after it");
                s.releasePages(); // again, with the pages back in
                assertEquals(values[12345], s.tensor("w").getFloat(12, 57));
            }
        }
    }

    /** A file from a raw header and data, for malformed cases. */
    Path raw(String header, int dataBytes) throws IOException {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(8 + h.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(h.length).put(h);
        Path file = dir.resolve("bad" + header.hashCode() + ".safetensors");
        Files.write(file, b.array());
        return file;
    }

    void rejects(Path file, String... fragments) {
        var e = assertThrows(
                IllegalArgumentException.class, () -> Safetensors.open(file).close());
        assertTrue(e.getMessage().contains(file.toString()), e.getMessage());
        for (String f : fragments) assertTrue(e.getMessage().contains(f), e.getMessage());
    }

    @Test
    void malformedFilesAreRejectedWithTheFileAndTensorNamed() throws IOException {
        rejects(raw("{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]", 8), "bad header");
        rejects(
                raw("{\"w\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}}", 8),
                "'w'",
                "outside the 8 data bytes");
        rejects(
                raw(
                        "{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                                + " \"v\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
                        12),
                "'w' and 'v' overlap");
        rejects(
                raw("{\"w\": {\"dtype\": \"Q4_K\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 8),
                "'w'",
                "unknown dtype \"Q4_K\"");
        rejects(raw("{\"w\": {\"dtype\": \"F64\", \"shape\": [1], \"data_offsets\": [0, 8]}}", 8), "'w'", "F64");
        rejects(
                raw("{\"w\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}}", 8),
                "'w'",
                "12 bytes, but its data_offsets span 8");
        rejects(
                raw("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}", 8),
                "bytes 0..4",
                "belong to no tensor");
        rejects(raw("{\"w\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 8]}}", 8), "'w'", "shape");
        rejects(raw("[1, 2]", 0), "not a JSON object");

        Path tiny = dir.resolve("tiny.safetensors");
        Files.write(tiny, new byte[] {1, 2, 3});
        rejects(tiny, "too short");
        Path longHeader = dir.resolve("long.safetensors");
        Files.write(
                longHeader,
                ByteBuffer.allocate(16)
                        .order(ByteOrder.LITTLE_ENDIAN)
                        .putLong(1000)
                        .array());
        rejects(longHeader, "header length 1000 does not fit");
    }

    @Test
    void misalignedTensorsAreCopiedToAlignedMemory() throws IOException {
        // a bf16 scalar at offset 0 and an f32 pair at offset 2: not 4-byte aligned in the mapping
        String header = "{\"s\": {\"dtype\": \"BF16\", \"shape\": [], \"data_offsets\": [0, 2]},"
                + " \"v\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [2, 10]}}";
        while ((header.length()) % 8 != 0) header += " ";
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(8 + h.length + 10).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(h.length).put(h).putShort((short) 0x3FC0).putFloat(2.5f).putFloat(-1f);
        Path file = dir.resolve("misaligned.safetensors");
        Files.write(file, b.array());
        try (Safetensors s = Safetensors.open(file)) {
            assertEquals(1.5f, s.tensor("s").getFloat(0));
            assertArrayEquals(new float[] {2.5f, -1f}, s.tensor("v").toFloatArray());
        }
    }

    static final String V2_LITE = """
            {"architectures": ["DeepseekV2ForCausalLM"], "model_type": "deepseek_v2", "hidden_size": 2048,
             "intermediate_size": 10944, "moe_intermediate_size": 1408, "num_hidden_layers": 27,
             "num_attention_heads": 16, "num_key_value_heads": 16, "n_routed_experts": 64, "n_shared_experts": 2,
             "num_experts_per_tok": 6, "n_group": 1, "topk_group": 1, "topk_method": "greedy",
             "norm_topk_prob": false, "routed_scaling_factor": 1.0, "scoring_func": "softmax",
             "first_k_dense_replace": 1, "moe_layer_freq": 1, "q_lora_rank": null, "kv_lora_rank": 512,
             "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128, "rope_theta": 10000,
             "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 0.707,
               "mscale_all_dim": 0.707, "original_max_position_embeddings": 4096, "type": "yarn"},
             "rms_norm_eps": 1e-06, "max_position_embeddings": 163840, "vocab_size": 102400}
            """;

    @Test
    void readsV2LiteAndV3Configs() throws IOException {
        ModelConfig c = ModelConfig.parse(V2_LITE);
        assertEquals(2048, c.hiddenSize());
        assertEquals(0, c.qLoraRank());
        assertEquals(64, c.gate().experts());
        assertEquals(6, c.gate().topK());
        assertEquals(0.707, c.ropeScaling().mscaleAllDim());
        assertTrue(!c.isMoeLayer(0) && c.isMoeLayer(1));
        assertTrue(!c.isFp8());

        String v3 = V2_LITE.replace("\"deepseek_v2\"", "\"deepseek_v3\"")
                .replace("\"scoring_func\": \"softmax\"", "\"scoring_func\": \"sigmoid\"")
                .replace("\"q_lora_rank\": null", "\"q_lora_rank\": 1536")
                .replace("\"n_group\": 1, \"topk_group\": 1", "\"n_group\": 8, \"topk_group\": 4")
                .replace("\"routed_scaling_factor\": 1.0", "\"routed_scaling_factor\": 2.5")
                .replace("\"n_routed_experts\": 64", "\"n_routed_experts\": 256")
                .replace("\"num_experts_per_tok\": 6", "\"num_experts_per_tok\": 8")
                .replace(
                        "\"vocab_size\": 102400}",
                        "\"vocab_size\": 129280, \"quantization_config\":"
                                + " {\"activation_scheme\": \"dynamic\", \"fmt\": \"e4m3\", \"quant_method\": \"fp8\","
                                + " \"weight_block_size\": [128, 128]}}");
        ModelConfig c3 = ModelConfig.parse(v3);
        assertEquals(1536, c3.qLoraRank());
        assertEquals(8, c3.gate().groups());
        assertTrue(c3.isFp8());
        // config.json written back reads the same
        assertEquals(c3, ModelConfig.parse(Json.write(c3.toJson())));

        var missing = assertThrows(
                IllegalArgumentException.class, () -> ModelConfig.parse(V2_LITE.replace("\"hidden_size\": 2048,", "")));
        assertTrue(missing.getMessage().contains("\"hidden_size\""), missing.getMessage());
        var rope = assertThrows(
                IllegalArgumentException.class,
                () -> ModelConfig.parse(V2_LITE.replace("\"type\": \"yarn\"", "\"type\": \"linear\"")));
        assertTrue(rope.getMessage().contains("linear"), rope.getMessage());
        var groups = assertThrows(
                IllegalArgumentException.class,
                () -> ModelConfig.parse(V2_LITE.replace("\"n_group\": 1", "\"n_group\": 5")));
        assertTrue(groups.getMessage().contains("n_group"), groups.getMessage());
        Path file = dir.resolve("config.json");
        Files.writeString(file, "{\"hidden_size\": \"big\"}");
        var typed = assertThrows(IllegalArgumentException.class, () -> ModelConfig.read(file));
        assertTrue(typed.getMessage().contains(file.toString())
                && typed.getMessage().contains("hidden_size"));
    }

    @Test
    void shardedCheckpointsResolveThroughTheIndex() throws IOException {
        Files.writeString(dir.resolve("config.json"), V2_LITE);
        try (Arena arena = Arena.ofConfined()) {
            Safetensors.write(
                    dir.resolve("model-00001-of-00002.safetensors"),
                    Map.of("x.weight", Tensor.fromFloats(arena, DType.F32, new float[] {1, 2}, 2)),
                    null);
            Safetensors.write(
                    dir.resolve("model-00002-of-00002.safetensors"),
                    Map.of("y.weight", Tensor.fromFloats(arena, DType.BF16, new float[] {3}, 1)),
                    null);
        }
        Files.writeString(
                dir.resolve(Checkpoint.INDEX),
                "{\"metadata\": {}, \"weight_map\": {"
                        + "\"x.weight\": \"model-00001-of-00002.safetensors\", \"y.weight\": \"model-00002-of-00002.safetensors\","
                        + " \"z.weight\": \"model-00002-of-00002.safetensors\", \"w.weight\": \"model-00003-of-00002.safetensors\"}}");
        try (Checkpoint c = Checkpoint.open(dir)) {
            assertEquals(2048, c.config().hiddenSize());
            assertArrayEquals(new float[] {1, 2}, c.tensor("x.weight").toFloatArray());
            assertArrayEquals(new float[] {3}, c.tensor("y.weight").toFloatArray());
            Tensor x = c.tensor("x.weight");
            c.releasePages(); // both shards open: their tensors stay readable
            assertArrayEquals(new float[] {1, 2}, x.toFloatArray());
            assertArrayEquals(new float[] {3}, c.tensor("y.weight").toFloatArray());
            var absent = assertThrows(IllegalArgumentException.class, () -> c.tensor("q.weight"));
            assertTrue(absent.getMessage().contains("no tensor 'q.weight'"), absent.getMessage());
            var wrongShard = assertThrows(IllegalArgumentException.class, () -> c.tensor("z.weight"));
            assertTrue(wrongShard.getMessage().contains("does not contain it"), wrongShard.getMessage());
            var missingShard = assertThrows(IllegalArgumentException.class, () -> c.tensor("w.weight"));
            assertTrue(missingShard.getMessage().contains("model-00003-of-00002.safetensors, which is missing"));
        }
    }

    @Test
    void jsonRoundTripsAndReportsErrors() {
        Object v = Json.parse("{\"a\": [1, 2.5, -3e2, true, null, \"q\\\"\\u00e9\\n\"], \"b\": {}}");
        assertEquals("{\"a\":[1,2.5,-300.0,true,null,\"q\\\"é\\n\"],\"b\":{}}", Json.write(v));
        for (String bad : new String[] {"{", "[1,]", "{\"a\" 1}", "tru", "\"x", "1 2", "{\"a\": 01x}"})
            assertThrows(IllegalArgumentException.class, () -> Json.parse(bad), bad);
    }
}
