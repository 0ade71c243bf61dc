package dev.moe4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.moe4j.engine.Model;
import dev.moe4j.internal.Json;
import dev.moe4j.model.ModelConfig;
import dev.moe4j.model.Safetensors;
import dev.moe4j.testing.Chromium;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code ./moe4j bench generate} on the tiny V3 fixture: its fields, and the decode step's weight bytes. */
class BenchGenerateCommandTest {
    static final String V3 = GenerateCommandTest.V3;

    @Test
    void reportsEveryBatchSizeAndCountsTheBytesOfTheExpertsTouched() throws Exception {
        String out = withoutHarness(
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
                "--json");
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

    /**
     * The operations a prefill runs on int8 GEMMs, counted from the checkpoint's own weight shapes: 2 per element of
     * every attention projection but kv_b_proj, every dense MLP and shared expert matrix, per token; the LM head's once.
     */
    @Test
    void int8OperationsAreThoseOfTheDenseProjectionsAndTheLmHead() throws Exception {
        ModelConfig c = ModelConfig.read(Path.of(V3, "config.json"));
        int p = 7;
        double dense = 0, head = 0;
        try (Safetensors file = Safetensors.open(Path.of(V3, "model.safetensors"))) {
            String dense2d = "model\\.layers\\.\\d+\\.(self_attn\\.(q_proj|q_a_proj|q_b_proj|kv_a_proj_with_mqa|o_proj)"
                    + "|mlp\\.(shared_experts\\.)?(gate|up|down)_proj)\\.weight";
            for (String name : file.names()) {
                long[] shape = file.entry(name).shape();
                if (name.equals("lm_head.weight")) head = 2.0 * shape[0] * shape[1];
                else if (name.matches(dense2d)) dense += 2.0 * shape[0] * shape[1] * p;
            }
        }
        assertTrue(dense > 0 && head > 0, "the fixture has both kinds");
        var none = BenchGenerateCommand.prefillFlops(c, p, BenchGenerateCommand.Int8Weights.NONE);
        var both = BenchGenerateCommand.prefillFlops(c, p, new BenchGenerateCommand.Int8Weights(true, true));
        assertEquals(0, none.int8());
        assertEquals(none.total(), both.total(), "the total does not depend on the weights' format");
        assertEquals(dense + head, both.int8(), 1e-6 * both.int8());
        assertEquals(
                head,
                BenchGenerateCommand.prefillFlops(c, p, new BenchGenerateCommand.Int8Weights(false, true))
                        .int8());
        assertTrue(both.int8() < both.total(), "routed experts, wkv_b and attention stay bf16");
    }

    /**
     * The roofline fraction is taken against the bandwidth read around each chunk of decode steps, not against the
     * readings at the run's start and end. A stand-in harness answers each probe with a higher bandwidth than the last:
     * 10, 20, 30... GB/s, from one process for the whole run.
     */
    @Test
    void theRooflineIsTakenAgainstTheBandwidthReadAroundEachChunkOfSteps(@TempDir Path dir) throws Exception {
        // 3 new tokens: one chunk per repetition, read before and after; batch 1: readings 10 and 20, then 30 and
        // 40 (each chunk at the higher); batch 2: 50 and 60, then 70 and 80. Every pair but the last (+14%) differs by
        // more than 15%.
        Map<?, ?> json = withProbe(dir, "3");
        assertEquals(5.0, number(json, "read_bw_gbs_before"));
        assertEquals(5.0, number(json, "read_bw_gbs_after"));
        List<?> runs = (List<?>) json.get("runs");
        double[] expected = {(20 + 40) / 2.0, (60 + 80) / 2.0}, unsteady = {1, 0.5};
        for (int i = 0; i < 2; i++) {
            Map<?, ?> run = (Map<?, ?>) runs.get(i);
            assertEquals(expected[i], number(run, "read_bw_gbs"), 1e-9, run.toString());
            assertEquals(unsteady[i], number(run, "read_bw_unsteady_fraction"), 1e-9, run.toString());
            assertEquals(number(run, "decode_gbs") / expected[i], number(run, "decode_roofline_fraction"), 1e-9);
            assertEquals(number(run, "prefill_gflops") / 200.0, number(run, "prefill_peak_fraction"), 1e-9);
            double int8Share = number(run, "prefill_int8_ops_fraction");
            assertTrue(int8Share > 0 && int8Share < 1, "dense projections and the LM head are int8 on the CPU");
            assertEquals(
                    number(run, "prefill_gflops") * ((1 - int8Share) / 200.0 + int8Share / 400.0),
                    number(run, "prefill_ceiling_fraction"),
                    1e-9);
        }
        assertEquals(20 + 40, 2 * number(json, "read_bw_gbs"), 1e-9, "top level = first batch size");
    }

    /**
     * Decode steps past {@link BenchGenerateCommand#PROBE_EVERY_STEPS} run in chunks, each read around: with 9 steps,
     * chunks of 4, 4 and 1 at 20, 30 and 40 GB/s (the first repetition), weighted by their time.
     */
    @Test
    void longerDecodesAreReadEveryFewSteps(@TempDir Path dir) throws Exception {
        assertEquals(4, BenchGenerateCommand.PROBE_EVERY_STEPS, "the chunks below");
        Map<?, ?> json = withProbe(dir, "9");
        Map<?, ?> first = (Map<?, ?>) ((List<?>) json.get("runs")).get(0);
        // repetition 1 reads 10..40, repetition 2 reads 40..70: its chunks at 50, 60, 70
        double read = number(first, "read_bw_gbs");
        assertTrue(read > (20 + 50) / 2.0 && read < (40 + 70) / 2.0, "a time-weighted mean of the chunks: " + read);
        assertEquals(number(first, "decode_gbs") / read, number(first, "decode_roofline_fraction"), 1e-9);
    }

    /** bench generate --json on the V3-shaped model with a stand-in harness that counts its bandwidth readings. */
    private static Map<?, ?> withProbe(Path dir, String newTokens) throws Exception {
        Path harness = dir.resolve("moe4j_bench");
        Files.writeString(harness, """
                #!/bin/sh
                case "$2" in
                  --brief) echo "read_bw_gbs=5.00 fma_peak_gflops=100.0 bf16_dot_peak_gflops=200.0 bf16_dot=vdpbf16ps int8_dot_peak_gops=400.0" ;;
                  --read-bw-per-line) echo "ready threads=2"; n=0
                             while read line; do n=$((n + 1)); echo "read_bw_gbs=${n}0.00"; done ;;
                  *) exit 2 ;;
                esac
                """);
        Files.setPosixFilePermissions(harness, PosixFilePermissions.fromString("rwx------"));
        String old = System.setProperty("moe4j.bench.harness", harness.toString());
        try {
            String out = GenerateCommandTest.capture(() -> BenchGenerateCommand.run(new String[] {
                "--model",
                V3,
                "--batch",
                "1,2",
                "--prompt-tokens",
                "8",
                "--new-tokens",
                newTokens,
                "--reps",
                "2",
                "--json"
            }));
            return (Map<?, ?>) Json.parse(out.strip());
        } finally {
            if (old == null) System.clearProperty("moe4j.bench.harness");
            else System.setProperty("moe4j.bench.harness", old);
        }
    }

    private static double number(Map<?, ?> json, String key) {
        return ((Number) json.get(key)).doubleValue();
    }

    /** --report writes a page that renders in headless Chromium with every part the run has data for. */
    @Test
    void writesAnHtmlReportThatRendersInChromium() throws Exception {
        Chromium.require();
        Path report = Path.of("target/dashboard/bench-generate.html").toAbsolutePath();
        String out = withoutHarness(
                "--model",
                V3,
                "--batch",
                "1,2",
                "--prompt-tokens",
                "12",
                "--new-tokens",
                "5",
                "--step-tokens",
                "8",
                "--reps",
                "1",
                "--report",
                report.toString());
        assertTrue(out.contains("report: " + report), out);
        ModelConfig c = ModelConfig.read(Path.of(V3, "config.json"));
        int moeLayers = 0;
        for (int l = 0; l < c.numHiddenLayers(); l++) if (c.isMoeLayer(l)) moeLayers++;

        Chromium.Page page =
                Chromium.render(report.toUri().toString(), Path.of("target/dashboard/bench-generate.png"), 1400, 1600);
        System.out.println("bench generate report screenshot: " + page.screenshot());
        assertTrue(Chromium.colours(page.screenshot()) > 10, "the screenshot is (nearly) one colour");
        assertEquals(moeLayers * c.nRoutedExperts(), Chromium.count(page.dom(), "cell"), "a heatmap cell per expert");
        // per batch size: prefill and decode tokens/s, decode step time; and the KV cache in use
        assertEquals(2 * 3 + 1, Chromium.count(page.dom(), "series"), "a path per time series");
        assertEquals(2 * 2, Chromium.count(page.dom(), "roofline"), "decode and prefill fractions per batch size");
        assertEquals(0, Chromium.count(page.dom(), "bar before"), "bench generate does not rebalance");
    }

    /** Runs bench generate without the native harness: the ceilings are reported as unmeasured. */
    private static String withoutHarness(String... args) throws Exception {
        String old = System.clearProperty("moe4j.bench.harness");
        try {
            return GenerateCommandTest.capture(() -> BenchGenerateCommand.run(args));
        } finally {
            if (old != null) System.setProperty("moe4j.bench.harness", old);
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
