package dev.moe4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.moe4j.engine.Model;
import dev.moe4j.model.Json;
import dev.moe4j.model.ModelConfig;
import dev.moe4j.model.Safetensors;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** {@code ./moe4j bench generate} on the tiny V3 fixture: its fields, and the decode step's weight bytes. */
class BenchGenerateCommandTest {
    static final String V3 = GenerateCommandTest.V3;

    @Test
    void reportsEveryBatchSizeAndCountsTheBytesOfTheExpertsTouched() throws Exception {
        String old = System.clearProperty("moe4j.bench.harness"); // no harness: ceilings are reported as unmeasured
        String out;
        try {
            out = GenerateCommandTest.capture(() -> BenchGenerateCommand.run(new String[] {
                "--model",
                V3,
                "--batch",
                "1,3",
                "--prompt-tokens",
                "20",
                "--new-tokens",
                "4",
                "--step-tokens",
                "16",
                "--reps",
                "1",
                "--json"
            }));
        } finally {
            if (old != null) System.setProperty("moe4j.bench.harness", old);
        }
        Map<?, ?> json = (Map<?, ?>) Json.parse(out.strip());
        assertNull(json.get("read_bw_gbs"));
        assertNull(json.get("decode_roofline_fraction"));
        List<?> runs = (List<?>) json.get("runs");
        assertEquals(2, runs.size());
        Map<?, ?> one = (Map<?, ?>) runs.get(0), three = (Map<?, ?>) runs.get(1);
        assertEquals(1.0, ((Number) one.get("batch")).doubleValue());
        assertEquals(3.0, ((Number) three.get("batch")).doubleValue());
        assertEquals(one.get("decode_tokens_per_s"), json.get("decode_tokens_per_s"), "top level = first batch size");
        for (Map<?, ?> run : List.of(one, three)) {
            assertTrue(((Number) run.get("prefill_tokens_per_s")).doubleValue() > 0, run.toString());
            assertTrue(((Number) run.get("decode_tokens_per_s")).doubleValue() > 0, run.toString());
        }

        // One expert's bytes, read from the checkpoint file itself; batch 1 touches exactly top-k experts per layer.
        long expertBytes = 0;
        try (Safetensors file = Safetensors.open(Path.of(V3, "model.safetensors"))) {
            for (String name : file.names())
                if (name.matches("model\\.layers\\.\\d+\\.mlp\\.experts\\.0\\.\\w+_proj\\.weight(_scale_inv)?")) {
                    Safetensors.Entry e = file.entry(name);
                    expertBytes += e.end() - e.begin();
                }
        }
        try (Model model = Model.load(Path.of(V3), Model.Options.defaults().withCacheTokens(256), null)) {
            ModelConfig c = model.config();
            int moeLayers = 0;
            for (int l = 0; l < c.numHiddenLayers(); l++) if (c.isMoeLayer(l)) moeLayers++;
            Model.WeightBytes w = model.weightBytes();
            assertEquals(expertBytes / moeLayers, w.perRoutedExpert());
            double routedOne = (double) moeLayers * c.numExpertsPerTok() * w.perRoutedExpert();
            double batchOne = w.everyStep() + w.perToken() + routedOne;
            assertEquals(batchOne, ((Number) one.get("decode_weight_bytes_per_step")).doubleValue(), 0.5);
            double batchThree = ((Number) three.get("decode_weight_bytes_per_step")).doubleValue();
            double fixed = w.everyStep() + 3.0 * w.perToken();
            assertTrue(
                    batchThree >= fixed + routedOne && batchThree <= fixed + 3 * routedOne,
                    "3 sequences touch between k and 3k distinct experts per layer: " + batchThree);
        }
    }

    @Test
    void badBatchListIsNamed() {
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class,
                () -> BenchGenerateCommand.run(new String[] {"--model", V3, "--batch", "2,x"}));
        assertTrue(e.getMessage().contains("--batch"), e.getMessage());
    }
}
