package dev.moe4j.routing;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class CapacityTest {
    @Test
    void overloadedDeviceDropsItsLowestAffinityAssignmentsOnly() {
        // 4 experts on 2 devices (0,1 -> device 0; 2,3 -> device 1); 4 tokens, k = 2; everyone wants device 0
        Routing r = new Routing(2, 4);
        r.reset(4);
        float[][] affinity = {{0.9f, 0.5f}, {0.8f, 0.1f}, {0.7f, 0.6f}, {0.3f, 0.2f}};
        for (int t = 0; t < 4; t++) {
            r.set(t, 0, 0, 1, affinity[t][0]);
            r.set(t, 1, t == 3 ? 2 : 1, 1, affinity[t][1]);
        }
        // capacity = ceil(1.0 · 8 / 2) = 4; device 0 holds 7 -> drop its 3 lowest: 0.1 (t1), 0.3 (t3), 0.5 (t0)
        Capacity cap = new Capacity(new int[] {0, 0, 1, 1}, 2, 1.0, 0.0);
        Capacity.Result result = cap.apply(r, new long[] {0, 1, 2, 3});
        assertEquals(3, result.dropped());
        assertEquals(4, result.capacity());
        assertArrayEquals(new int[] {4, 1}, result.deviceLoad());
        assertEquals(3, r.dropped());
        assertEquals(-1, r.expert(1, 1));
        assertEquals(0f, r.weight(1, 1));
        assertEquals(-1, r.expert(3, 0));
        assertEquals(-1, r.expert(0, 1));
        assertEquals(2, r.expert(3, 1)); // device 1 was not over capacity
        assertEquals(1, r.expert(2, 1));
    }

    @Test
    void protectedSequencesAreNeverDroppedAndAboutTheirShareIsProtected() {
        Capacity cap = new Capacity(new int[] {0, 1}, 2, 0.5, 0.1);
        int protectedCount = 0;
        for (long s = 0; s < 100_000; s++) if (cap.isProtected(s)) protectedCount++;
        assertEquals(0.1, protectedCount / 100_000.0, 0.005);

        SplittableRandom random = new SplittableRandom(3);
        Routing r = new Routing(1, 1000);
        r.reset(1000);
        long[] seq = new long[1000];
        for (int t = 0; t < 1000; t++) {
            seq[t] = t / 10;
            r.set(t, 0, 0, 1, (float) random.nextDouble()); // everything to device 0
        }
        Capacity.Result result = cap.apply(r, seq);
        for (int t = 0; t < 1000; t++)
            if (cap.isProtected(seq[t])) assertEquals(0, r.expert(t, 0), "protected token " + t + " dropped");
        assertTrue(result.dropped() > 0);
        assertEquals(1000 - result.deviceLoad()[0], result.dropped());
    }

    @Test
    void badArgumentsAreRejected() {
        assertThrows(IllegalArgumentException.class, () -> new Capacity(new int[] {0, 2}, 2, 1, 0));
        assertThrows(IllegalArgumentException.class, () -> new Capacity(new int[] {0, 1}, 2, 0, 0));
        assertThrows(IllegalArgumentException.class, () -> new Capacity(new int[] {0, 1}, 2, 1, 1.5));
        Routing r = new Routing(1, 2);
        r.reset(2);
        r.set(0, 0, 5, 1, 1);
        Capacity cap = new Capacity(new int[] {0, 1}, 2, 1, 0);
        assertThrows(IllegalArgumentException.class, () -> cap.apply(r, new long[] {0, 0}));
        assertThrows(IllegalArgumentException.class, () -> cap.apply(r, new long[] {0}));
    }
}
