package dev.moe4j.tensor;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.moe4j.runtime.Device;
import java.lang.foreign.Arena;
import java.util.List;
import org.junit.jupiter.api.Test;

class QuantizedTensorTest {
    @Test
    void groupsOfAStackViewTheSameMemory() {
        try (Arena arena = Arena.ofConfined()) {
            Tensor data = Tensor.allocate(arena, DType.E4M3, 3, 256, 384);
            Tensor scales = Tensor.allocate(arena, DType.F32, 3, 2, 3);
            for (int i = 0; i < 18; i++) scales.setFloat(i, i / 6, i / 3 % 2, i % 3);
            QuantizedTensor stack = new QuantizedTensor(data, scales, 128);
            QuantizedTensor second = stack.group(1);
            assertArrayEquals(new long[] {256, 384}, second.data().shape());
            assertEquals(6f, second.scales().getFloat(0, 0)); // scale row 2 of the flat tensor
            assertEquals(
                    256L * 384,
                    second.data().segment().address() - data.segment().address());
            assertThrows(IllegalArgumentException.class, () -> second.group(0));

            QuantizedGroups groups = QuantizedGroups.of(stack);
            assertEquals(3, groups.count());
            assertEquals(256, groups.outFeatures());
            assertEquals(384, groups.inFeatures());
            assertEquals(Device.CPU, groups.device());
            assertEquals(3L * (256 * 384 + 4 * 6), groups.byteSize());
            assertEquals(
                    2L * 256 * 384,
                    groups.group(2).data().segment().address() - data.segment().address());
            assertThrows(IllegalArgumentException.class, () -> QuantizedGroups.of(second)); // rank 2 is no stack
        }
    }

    @Test
    void groupsFromSeparateTensorsAreCheckedByGroup() {
        try (Arena arena = Arena.ofConfined()) {
            QuantizedTensor a = weight(arena, 256, 384), b = weight(arena, 256, 384);
            QuantizedGroups groups = QuantizedGroups.of(List.of(a, b));
            assertSame(b, groups.group(1));
            assertEquals(List.of(a, b), groups.groups());

            var empty = assertThrows(IllegalArgumentException.class, () -> QuantizedGroups.of(List.of()));
            assertTrue(empty.getMessage().contains("0 groups"), empty.getMessage());
            var shape = assertThrows(
                    IllegalArgumentException.class, () -> QuantizedGroups.of(List.of(a, b, weight(arena, 128, 384))));
            assertTrue(shape.getMessage().startsWith("group 2: data"), shape.getMessage());
            QuantizedTensor activations = new QuantizedTensor(a.data(), Tensor.allocate(arena, DType.F32, 256, 3), 1);
            var blocks =
                    assertThrows(IllegalArgumentException.class, () -> QuantizedGroups.of(List.of(a, activations)));
            assertTrue(blocks.getMessage().startsWith("group 1: scales cover 1 rows"), blocks.getMessage());
            QuantizedTensor badScales =
                    new QuantizedTensor(b.data(), Tensor.allocate(arena, DType.F32, 2, 2), QuantizedTensor.BLOCK);
            var scales = assertThrows(IllegalArgumentException.class, () -> QuantizedGroups.of(List.of(a, badScales)));
            assertTrue(scales.getMessage().startsWith("group 1: scales"), scales.getMessage());
            Tensor wide = Tensor.allocate(arena, DType.E4M3, 256, 768);
            QuantizedTensor strided = new QuantizedTensor(
                    Tensor.of(wide.segment(), DType.E4M3, new long[] {256, 384}, new long[] {768, 2}),
                    a.scales(),
                    QuantizedTensor.BLOCK);
            var rows = assertThrows(IllegalArgumentException.class, () -> QuantizedGroups.of(List.of(strided)));
            assertTrue(rows.getMessage().contains("group 0: rows"), rows.getMessage());
        }
    }

    private static QuantizedTensor weight(Arena arena, long n, long k) {
        return new QuantizedTensor(
                Tensor.allocate(arena, DType.E4M3, n, k),
                Tensor.allocate(arena, DType.F32, (n + 127) / 128, (k + 127) / 128),
                QuantizedTensor.BLOCK);
    }
}
