package dev.moe4j.runtime;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.MemorySegment;
import org.junit.jupiter.api.Test;

/** A context's workspace: frames nest, memory is reused, growth settles into one chunk between steps. */
class WorkspaceTest {
    @Test
    void sameSizedStepsReuseTheSameMemoryWithoutGrowing() {
        try (Context ctx = Context.create()) {
            Workspace w = ctx.workspace();
            step(w); // the first step grows the workspace; it settles into one chunk when the step ends
            long[] first = step(w);
            long capacity = w.capacity();
            for (int i = 0; i < 3; i++) {
                long[] again = step(w);
                assertEquals(first[0], again[0], "outer buffer at the same address");
                assertEquals(first[1], again[1], "nested buffer at the same address");
            }
            assertEquals(capacity, w.capacity(), "no growth for same-sized steps");
        }
    }

    /** One step: a frame with 3 MB and a nested one with 5 MB (more than the first chunk): addresses used. */
    private static long[] step(Workspace w) {
        try (Workspace.Frame outer = w.frame()) {
            MemorySegment a = outer.device(3 << 20);
            try (Workspace.Frame inner = w.frame()) {
                MemorySegment b = inner.device(5 << 20);
                assertTrue(
                        b.address() >= a.address() + a.byteSize() || b.address() + b.byteSize() <= a.address(),
                        "nested memory does not overlap the outer frame's");
                b.fill((byte) 1);
                return new long[] {a.address(), b.address()};
            }
        }
    }

    @Test
    void growthWithinAStepSettlesIntoOneChunkLargeEnoughForIt() {
        try (Context ctx = Context.create()) {
            Workspace w = ctx.workspace();
            try (Workspace.Frame f = w.frame()) {
                f.device(100_000);
            }
            long small = w.capacity();
            try (Workspace.Frame f = w.frame()) {
                for (int i = 0; i < 10; i++) f.device(1 << 20); // outgrows the first chunk several times
            }
            long grown = w.capacity();
            assertTrue(grown >= 10 << 20 && grown > small, "capacity " + grown);
            try (Workspace.Frame f = w.frame()) {
                MemorySegment first = f.device(1 << 20);
                for (int i = 1; i < 10; i++) {
                    MemorySegment next = f.device(1 << 20);
                    assertEquals(first.address() + ((long) i << 20), next.address(), "one chunk: contiguous");
                }
            }
            assertEquals(grown, w.capacity());
        }
    }

    @Test
    void descriptorsAreZeroedAlignedAndAClosedFrameRefuses() {
        try (Context ctx = Context.create()) {
            Workspace.Frame f = ctx.workspace().frame();
            f.host(256, 64).fill((byte) 7);
            f.close();
            Workspace.Frame g = ctx.workspace().frame();
            MemorySegment d = g.allocate(256, 128);
            assertEquals(0, d.address() % 128);
            for (long i = 0; i < 256; i++) assertEquals(0, d.get(java.lang.foreign.ValueLayout.JAVA_BYTE, i));
            g.close();
            assertThrows(IllegalStateException.class, () -> g.device(16));
            assertNotEquals(0, ctx.workspace().capacity());
        }
    }
}
