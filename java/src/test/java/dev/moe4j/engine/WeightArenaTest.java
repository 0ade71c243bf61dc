package dev.moe4j.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.moe4j.runtime.Context;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.junit.jupiter.api.Test;

class WeightArenaTest {
    private static final long MIB = 1L << 20;

    /** No byte of s is non-zero. */
    private static void assertZeroed(MemorySegment s) {
        assertEquals(-1, s.mismatch(MemorySegment.ofArray(new byte[Math.toIntExact(s.byteSize())])), "zeroed");
    }

    @Test
    void smallAllocationsShareASlabAndLargeOnesGetTheirOwnBlock() {
        try (Context ctx = Context.create(Context.Options.cpu().withThreads(2))) {
            WeightArena arena = new WeightArena(ctx); // closed below, before the context
            MemorySegment a = arena.allocate(3 * MIB, 64);
            MemorySegment b = arena.allocate(100, 4096);
            MemorySegment c = arena.allocate(3 * MIB, 64);
            // one after another in the slab, each at its alignment
            assertEquals(a.address() + 3 * MIB, b.address());
            assertEquals(0, b.address() % 4096);
            assertEquals(b.address() + 128, c.address(), "c at the next 64-byte boundary after b");
            assertEquals(0, a.address() % (2 * MIB), "a slab starts on a 2 MiB page");

            MemorySegment big = arena.allocate(WeightArena.SLAB_BYTES / 4, 64);
            assertEquals(0, big.address() % (2 * MIB), "a block of its own, on a 2 MiB page");
            assertTrue(big.address() + big.byteSize() <= a.address() || big.address() >= c.address() + c.byteSize());

            // the rest of the first slab holds d, e and f, not g
            MemorySegment d = arena.allocate(WeightArena.SLAB_BYTES / 4 - 1, 64);
            MemorySegment e = arena.allocate(WeightArena.SLAB_BYTES / 4 - 1, 64);
            MemorySegment f = arena.allocate(WeightArena.SLAB_BYTES / 4 - 1, 64);
            MemorySegment g = arena.allocate(WeightArena.SLAB_BYTES / 4 - 1, 64);
            assertEquals(0, g.address() % (2 * MIB), "g starts the second slab");
            assertEquals(e.address() - d.address(), f.address() - e.address(), "d, e, f one after another");

            MemorySegment wide = arena.allocate(10, 1L << 16);
            assertEquals(0, wide.address() % (1L << 16), "an alignment above a page is kept too");

            for (MemorySegment s : new MemorySegment[] {a, b, c, big, d, e, f, g, wide}) {
                assertZeroed(s);
                assertEquals(arena.scope(), s.scope(), "tied to the arena");
            }
            assertEquals(
                    6 * MIB + 100 + WeightArena.SLAB_BYTES / 4 + 4 * (WeightArena.SLAB_BYTES / 4 - 1) + 10,
                    arena.allocated());

            a.set(ValueLayout.JAVA_BYTE, 0, (byte) 7);
            assertEquals(0, b.get(ValueLayout.JAVA_BYTE, 0), "allocations do not overlap");
            arena.close();
            assertThrows(IllegalStateException.class, () -> a.get(ValueLayout.JAVA_BYTE, 0), "freed with the arena");
            assertThrows(IllegalStateException.class, () -> big.get(ValueLayout.JAVA_BYTE, 0));
            assertThrows(IllegalStateException.class, () -> arena.allocate(WeightArena.SLAB_BYTES, 64), "closed");
        }
    }

    @Test
    void badArgumentsAreNamed() {
        try (Context ctx = Context.create(Context.Options.cpu().withThreads(1));
                WeightArena arena = new WeightArena(ctx)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> arena.allocate(16, 3));
            assertTrue(e.getMessage().contains("byteAlignment must be a power of two, got 3"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> arena.allocate(-1, 8));
            assertTrue(e.getMessage().contains("byteSize must not be negative, got -1"), e.getMessage());
            assertEquals(0, arena.allocated());
        }
    }
}
