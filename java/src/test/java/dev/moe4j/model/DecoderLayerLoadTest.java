package dev.moe4j.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.moe4j.runtime.Context;
import dev.moe4j.tensor.QuantizedGroups;
import dev.moe4j.tensor.QuantizedTensor;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/** A MoE layer loaded from a checkpoint runs its FP8 routed experts where the checkpoint's memory map holds them. */
class DecoderLayerLoadTest {
    @Test
    void fp8ExpertsAreTheCheckpointsOwnTensors() {
        Path dir = Path.of("src/test/resources/fixtures/model/v3-tiny");
        try (Checkpoint checkpoint = Checkpoint.open(dir);
                Context ctx = Context.create();
                Arena arena = Arena.ofConfined()) {
            DecoderLayer layer = DecoderLayer.load(checkpoint, 1, false, false, false, ctx, arena);
            MoeLayer moe = (MoeLayer) layer.moe();
            String[] projections = {"gate_proj", "up_proj", "down_proj"};
            QuantizedGroups[] groups = {moe.expertGate(), moe.expertUp(), moe.expertDown()};
            for (int p = 0; p < projections.length; p++) {
                assertEquals(16, groups[p].count());
                for (int e = 0; e < groups[p].count(); e++) {
                    String name = "model.layers.1.mlp.experts." + e + "." + projections[p] + ".weight";
                    QuantizedTensor w = groups[p].group(e);
                    assertEquals(
                            checkpoint.tensor(name).segment().address(),
                            w.data().segment().address(),
                            name + " is used in place");
                    assertTrue(
                            w.data().segment().byteSize() >= w.data().elementCount(), name + " covers its own bytes");
                }
            }
        }
    }
}
