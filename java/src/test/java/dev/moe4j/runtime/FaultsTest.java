package dev.moe4j.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.moe4j.kernels.Cast;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.DeviceMemory;
import dev.moe4j.tensor.Tensor;
import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Failures a context must survive, injected: an allocation that fails inside a worker task or in moe4j_alloc, an
 * exception in a task, a workspace that cannot grow, and a second thread using a context while a call on it runs.
 */
@Timeout(120)
class FaultsTest {
    static final int ROWS = 256, COLS = 4096; // a cast of this size spreads over the pool in 16 tasks

    /** F32 [ROWS, COLS] of values bf16 holds exactly, so a cast's result is known bit for bit. */
    static Tensor source(Arena arena) {
        float[] values = new float[ROWS * COLS];
        for (int i = 0; i < values.length; i++) values[i] = (i % 128) * 0.5f - 20;
        return Tensor.fromFloats(arena, DType.F32, values, ROWS, COLS);
    }

    static void assertCastRight(Tensor src, Tensor dst, String what) {
        for (int r = 0; r < ROWS; r += 17)
            for (int c = 0; c < COLS; c += 61)
                assertEquals(src.getFloat(r, c), dst.getFloat(r, c), what + " at [" + r + ", " + c + "]");
    }

    @Test
    void anAllocationFailingInAWorkerTaskFailsThatCallOnly() {
        try (Arena arena = Arena.ofConfined();
                Context ctx = Context.create(Context.Options.cpu().withThreads(4))) {
            Tensor src = source(arena), dst = Tensor.allocate(arena, DType.BF16, ROWS, COLS);
            float[] before = src.toFloatArray();
            for (int task : new int[] {0, 5, 15}) {
                TestFaults.failTask(ctx, task);
                Moe4jException e = assertThrows(Moe4jException.class, () -> Cast.apply(ctx, src, dst));
                assertEquals(Status.OUT_OF_MEMORY, e.status());
                assertEquals("moe4j_cast", e.function());
                assertTrue(
                        e.nativeMessage().startsWith("moe4j_cast: out of host memory: an allocation in task " + task),
                        e.nativeMessage());
                assertTrue(e.nativeMessage().contains("injected fault"), e.nativeMessage());
                assertArrayEquals(before, src.toFloatArray(), "the failed call's input is untouched");
                // the context goes on: the next call runs completely
                dst.segment().fill((byte) 0xFF);
                Cast.apply(ctx, src, dst);
                assertCastRight(src, dst, "the call after task " + task + " failed");
            }
            TestFaults.throwInTask(ctx, 3);
            Moe4jException internal = assertThrows(Moe4jException.class, () -> Cast.apply(ctx, src, dst));
            assertEquals(Status.INTERNAL, internal.status());
            assertTrue(internal.nativeMessage().contains("an exception in task 3"), internal.nativeMessage());
            Cast.apply(ctx, src, dst);
            assertCastRight(src, dst, "the call after an internal error");

            TestFaults.failTask(ctx, 1);
            TestFaults.clear(ctx);
            Cast.apply(ctx, src, dst); // disarmed: runs
        }
    }

    @Test
    void theNthAllocationFailsOnceAndNamesWhatItAllocated() {
        try (Context ctx = Context.create(Context.Options.cpu().withThreads(2))) {
            TestFaults.failAllocation(ctx, 2);
            try (DeviceMemory first = DeviceMemory.allocate(ctx, 4096)) {
                assertEquals(4096, first.byteSize());
            }
            Moe4jException e = assertThrows(Moe4jException.class, () -> DeviceMemory.allocate(ctx, 4096));
            assertEquals(Status.OUT_OF_MEMORY, e.status());
            assertEquals("moe4j_alloc: cannot allocate 4096 bytes of host memory (injected fault)", e.nativeMessage());
            try (DeviceMemory third = DeviceMemory.allocate(ctx, 4096)) {
                assertEquals(4096, third.byteSize());
            }
            Moe4jException bad = assertThrows(Moe4jException.class, () -> TestFaults.failAllocation(ctx, 0));
            assertEquals(Status.INVALID_ARGUMENT, bad.status());
            assertTrue(bad.nativeMessage().contains("argument 'n': 0 is not positive"), bad.nativeMessage());
        }
    }

    @Test
    void aWorkspaceThatCannotGrowFailsTheRequestAndWorksAfterwards() {
        try (Context ctx = Context.create(Context.Options.cpu().withThreads(1))) {
            Workspace workspace = ctx.workspace();
            workspace.limit(1 << 20);
            try (Workspace.Frame frame = workspace.frame()) {
                frame.host(200_000, 64);
                Moe4jException e = assertThrows(Moe4jException.class, () -> frame.host(2 << 20, 64));
                assertEquals(Status.OUT_OF_MEMORY, e.status());
                assertEquals("workspace", e.function());
                assertTrue(e.nativeMessage().contains("host workspace of " + ctx), e.nativeMessage());
                assertTrue(e.nativeMessage().contains("limit is 1048576"), e.nativeMessage());
                frame.host(500_000, 64); // what fits still comes
            }
            assertTrue(workspace.capacity() <= 1 << 20, "capacity " + workspace.capacity() + " within the limit");
            try (Workspace.Frame frame = workspace.frame()) {
                frame.host(900_000, 64).fill((byte) 1);
            }
            assertThrows(IllegalArgumentException.class, () -> workspace.limit(0));
        }
    }

    @Test
    void aSecondThreadIsRefusedWhileTheFirstHoldsTheContext() throws Exception {
        try (Arena arena = Arena.ofShared();
                Context ctx = Context.create(Context.Options.cpu().withThreads(2));
                ExecutorService other = Executors.newSingleThreadExecutor(r -> new Thread(r, "second-user"))) {
            Tensor src = source(arena), dst = Tensor.allocate(arena, DType.BF16, ROWS, COLS);
            CountDownLatch opened = new CountDownLatch(1), tried = new CountDownLatch(1);
            Future<?> holder = other.submit(() -> {
                try (Workspace.Frame frame = ctx.workspace().frame()) {
                    opened.countDown();
                    tried.await(30, TimeUnit.SECONDS);
                    Cast.apply(ctx, src, dst); // the holder's own calls nest inside its frame
                }
                return null;
            });
            assertTrue(opened.await(30, TimeUnit.SECONDS));
            String me = "thread \"" + Thread.currentThread().getName() + "\"";
            IllegalStateException call = assertThrows(IllegalStateException.class, ctx::resetKernelVariants);
            assertTrue(call.getMessage().startsWith(ctx + " is in use by thread \"second-user\""), call.getMessage());
            assertTrue(
                    call.getMessage()
                            .contains(me + " (id " + Thread.currentThread().threadId()
                                    + ") tried moe4j_context_reset_kernel_variants"),
                    call.getMessage());
            // a kernel wrapper opens a workspace frame for its descriptors first
            IllegalStateException kernel = assertThrows(IllegalStateException.class, () -> Cast.apply(ctx, src, dst));
            assertTrue(kernel.getMessage().contains(me), kernel.getMessage());
            IllegalStateException frame = assertThrows(
                    IllegalStateException.class, () -> ctx.workspace().frame());
            assertTrue(frame.getMessage().contains("tried to open a workspace frame"), frame.getMessage());
            IllegalStateException close = assertThrows(IllegalStateException.class, ctx::close);
            assertTrue(close.getMessage().contains("tried to close it"), close.getMessage());
            assertTrue(!ctx.isClosed(), "a refused close closes nothing");
            tried.countDown();
            holder.get(30, TimeUnit.SECONDS);
            assertCastRight(src, dst, "the holder's call");
            // handed over: the context is this thread's now
            dst.segment().fill((byte) 0);
            Cast.apply(ctx, src, dst);
            assertCastRight(src, dst, "after the other thread let go");
        }
    }

    /**
     * Two threads calling kernels on one context at once: every call either runs completely or is refused with
     * {@link IllegalStateException} before it touches anything; the process survives and the results are right.
     */
    @Test
    void concurrentCallsAreRefusedNotRaced() throws Exception {
        try (Arena arena = Arena.ofShared();
                Context ctx = Context.create(Context.Options.cpu().withThreads(2));
                ExecutorService threads = Executors.newFixedThreadPool(2)) {
            Tensor src = source(arena);
            AtomicInteger refused = new AtomicInteger(), ran = new AtomicInteger();
            CountDownLatch start = new CountDownLatch(1);
            List<Future<?>> results = new ArrayList<>();
            for (int t = 0; t < 2; t++)
                results.add(threads.submit(() -> {
                    Tensor dst = Tensor.allocate(arena, DType.BF16, ROWS, COLS);
                    start.await();
                    for (int i = 0; i < 40; i++) {
                        dst.segment().fill((byte) 0xFF);
                        try {
                            Cast.apply(ctx, src, dst);
                        } catch (IllegalStateException e) {
                            assertTrue(e.getMessage().contains("is in use by"), e.getMessage());
                            refused.incrementAndGet();
                            continue;
                        }
                        assertCastRight(src, dst, "a call that ran");
                        ran.incrementAndGet();
                    }
                    return null;
                }));
            start.countDown();
            for (Future<?> f : results) f.get(60, TimeUnit.SECONDS);
            assertEquals(80, refused.get() + ran.get());
            assertTrue(ran.get() > 0, "no call ran");
        }
    }

    @Test
    void theGuardIsReentrantOnOneThreadAndReleasedAfterFailures() throws Exception {
        try (Arena arena = Arena.ofShared();
                Context ctx = Context.create(Context.Options.cpu().withThreads(2));
                ExecutorService other = Executors.newSingleThreadExecutor()) {
            Tensor src = source(arena), dst = Tensor.allocate(arena, DType.BF16, ROWS, COLS);
            try (Workspace.Frame outer = ctx.workspace().frame();
                    Workspace.Frame inner = ctx.workspace().frame()) {
                assertSame(ctx, inner.context());
                Cast.apply(ctx, src, dst);
            }
            // a call that fails (bad argument, injected fault) lets go of the context too
            Tensor wrong = Tensor.allocate(arena, DType.BF16, ROWS, COLS + 1);
            assertThrows(Moe4jException.class, () -> Cast.apply(ctx, src, wrong));
            TestFaults.failTask(ctx, 0);
            assertThrows(Moe4jException.class, () -> Cast.apply(ctx, src, dst));
            dst.segment().fill((byte) 0xFF);
            other.submit(() -> Cast.apply(ctx, src, dst)).get(30, TimeUnit.SECONDS);
            assertCastRight(src, dst, "another thread after failures");
        }
    }
}
