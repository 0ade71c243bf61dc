package dev.moe4j.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.moe4j.runtime.Device;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The GPU model's code paths on the CPU ({@link Model#loadEmulatingDevice}): weights copied to (emulated) device
 * memory, scratch there, router logits and the returned logits copied back, index tables copied in, and any Java
 * access to device data or host tensor handed to a kernel an error. The results must be the CPU model's bit for bit,
 * for batches that mix prompt chunks and decode tokens.
 */
class EmulatedDeviceModelTest {
    @ParameterizedTest
    @CsvSource({"v2lite-tiny, false, FP8", "v3-tiny, true, BF16", "v2lite-tiny, true, Q8"})
    void deviceCodePathsGiveTheCpuModelsBits(String name, boolean fp8Cache, Model.LmHead lmHead) {
        Path dir = ModelTest.FIXTURES.resolve(name);
        Model.Options options = Model.Options.defaults()
                .withCacheTokens(2048)
                .withFp8Cache(fp8Cache)
                .withLmHead(lmHead);
        // The device paths take unpacked FP8 weights, whose rounding the CPU model gives with packing off, and keep
        // the dense weights as stored (int8 ones are for CPU models).
        try (Model cpu = Model.load(dir, options.withPackWeights(false).withQ8Dense(false), null);
                Model emulated = Model.loadEmulatingDevice(dir, options, null);
                Arena arena = Arena.ofConfined()) {
            assertEquals(Device.CPU, emulated.device());
            assertTrue(
                    emulated.memory().deviceWeights() > 0, "weights were copied to the device: " + emulated.memory());
            assertEquals(0, cpu.memory().deviceWeights());
            List<Request> requests = Generations.requests(dir, cpu.vocabSize(), true);
            // whole prompts in a step (the long one attended in two causal query chunks), or cut into 13-token chunks
            for (int stepTokens : new int[] {1024, 13}) {
                Generations want = Generations.of(cpu, requests, stepTokens);
                Generations got = Generations.of(emulated, requests, stepTokens);
                for (int r = 0; r < requests.size(); r++) {
                    String where = name + " request " + r + ", " + stepTokens + " tokens per step";
                    assertArrayEquals(want.ids().get(r), got.ids().get(r), where);
                    assertEquals(
                            want.logits().get(r).size(), got.logits().get(r).size(), where);
                    for (int s = 0; s < want.logits().get(r).size(); s++)
                        assertArrayEquals(
                                want.logits().get(r).get(s), got.logits().get(r).get(s), where + ", step " + s);
                }
            }
            int[] prompt = requests.getFirst().inputIds();
            assertArrayEquals(
                    new Generator(cpu, null, 16).score(prompt, arena).toFloatArray(),
                    new Generator(emulated, null, 16).score(prompt, arena).toFloatArray(),
                    name + ": scoring logits");
        }
    }

    @org.junit.jupiter.api.Test
    void emulationIsForAModelWithItsExpertsOnItsOwnContext() {
        Path dir = ModelTest.FIXTURES.resolve("v3-tiny");
        assertThrows(
                IllegalArgumentException.class,
                () -> Model.loadEmulatingDevice(dir, Model.Options.defaults().withExpertDevices(2), null));
    }
}
