package dev.moe4j.tensor;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.lang.foreign.Arena;
import org.junit.jupiter.api.Test;

class QuantizedTensorTest {
    @Test
    void groupsViewTheSameMemory() {
        try (Arena arena = Arena.ofConfined()) {
            Tensor data = Tensor.allocate(arena, DType.E4M3, 3 * 256, 384);
            Tensor scales = Tensor.allocate(arena, DType.F32, 6, 3);
            for (int i = 0; i < 18; i++) scales.setFloat(i, i / 3, i % 3);
            QuantizedTensor stack = new QuantizedTensor(data, scales, 128).asGroups(3);
            assertArrayEquals(new long[] {3, 256, 384}, stack.data().shape());
            assertArrayEquals(new long[] {3, 2, 3}, stack.scales().shape());
            QuantizedTensor second = stack.group(1);
            assertArrayEquals(new long[] {256, 384}, second.data().shape());
            assertEquals(6f, second.scales().getFloat(0, 0)); // scale row 2 of the flat tensor
            assertEquals(
                    256L * 384,
                    second.data().segment().address() - data.segment().address());
            assertThrows(
                    IllegalArgumentException.class,
                    () -> new QuantizedTensor(data, scales, 128).asGroups(5)); // 768 rows do not split in 5
            assertThrows(
                    IllegalArgumentException.class,
                    () -> new QuantizedTensor(data, scales, 128).asGroups(4)); // 192 rows: not whole blocks
            assertThrows(IllegalArgumentException.class, () -> stack.asGroups(1));
            assertThrows(IllegalArgumentException.class, () -> second.group(0));
        }
    }
}
