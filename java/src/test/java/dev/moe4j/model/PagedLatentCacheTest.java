package dev.moe4j.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.moe4j.kernels.Mla;
import dev.moe4j.runtime.Context;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.Tensor;
import dev.moe4j.testing.TestSupport;
import java.lang.foreign.Arena;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class PagedLatentCacheTest {
    static Tensor tokens(Arena arena, SplittableRandom random, int n) {
        return Tensor.fromFloats(
                arena,
                DType.BF16,
                TestSupport.wideFloats(random, n * PagedLatentCache.DIMS),
                n,
                1,
                PagedLatentCache.DIMS);
    }

    @Test
    void appendsAcrossBlocksAndDecodesLikeOneShot() {
        SplittableRandom random = TestSupport.random(TestSupport.freshSeed());
        try (Arena arena = Arena.ofConfined();
                Context ctx = Context.create()) {
            PagedLatentCache cache = new PagedLatentCache(arena, 1, 8, 1, false);
            int a = cache.newSequence(), b = cache.newSequence();
            Tensor all = tokens(arena, random, 150);
            // a grows in uneven steps across block boundaries, interleaved with b
            int[] steps = {1, 62, 3, 70, 14};
            int done = 0;
            for (int step : steps) {
                Tensor part = Tensor.of(
                        all.segment().asSlice(2L * done * PagedLatentCache.DIMS, 2L * step * PagedLatentCache.DIMS),
                        DType.BF16,
                        step,
                        1,
                        PagedLatentCache.DIMS);
                cache.append(ctx, 0, a, part);
                cache.append(ctx, 0, b, tokens(arena, random, 5));
                done += step;
            }
            assertEquals(150, cache.length(a));
            assertEquals(25, cache.length(b));
            assertEquals(8 - 3 - 1, cache.freeBlocks());

            // Every token of a sits where its block table says.
            PagedLatentCache.Batch batch = cache.batch(arena, a, b);
            for (int t = 0; t < 150; t++) {
                int block = batch.blockTable().getInt(0, t / 64);
                for (int d = 0; d < PagedLatentCache.DIMS; d += 37)
                    assertEquals(
                            all.getFloat(t, 0, d),
                            cache.tensor(0).getFloat(block, t % 64, 0, d),
                            "token " + t + " dim " + d);
            }

            // Decode through the fragmented tables equals decode over a cache filled in one append per sequence.
            PagedLatentCache oneShot = new PagedLatentCache(arena, 1, 8, 1, false);
            int a2 = oneShot.newSequence(), b2 = oneShot.newSequence();
            oneShot.append(ctx, 0, a2, all);
            Tensor bTokens = Tensor.allocate(arena, DType.BF16, 25, 1, PagedLatentCache.DIMS);
            PagedLatentCache.Batch bBatch = cache.batch(arena, b);
            for (int t = 0; t < 25; t++)
                for (int d = 0; d < PagedLatentCache.DIMS; d++)
                    bTokens.setFloat(
                            cache.tensor(0).getFloat(bBatch.blockTable().getInt(0, t / 64), t % 64, 0, d), t, 0, d);
            oneShot.append(ctx, 0, b2, bTokens);
            Tensor q = Tensor.allocate(arena, DType.BF16, 2, 1, 16, 576);
            q.copyFrom(TestSupport.wideFloats(random, 2 * 16 * 576));
            Tensor out = Tensor.allocate(arena, DType.F32, 2, 1, 16, 512),
                    lse = Tensor.allocate(arena, DType.F32, 2, 16, 1);
            Tensor out2 = Tensor.allocate(arena, DType.F32, 2, 1, 16, 512),
                    lse2 = Tensor.allocate(arena, DType.F32, 2, 16, 1);
            Mla.decode(
                    ctx, q, cache.tensor(0), batch.blockTable(), batch.lengths(), Mla.DEFAULT_SCALE, false, out, lse);
            PagedLatentCache.Batch batch2 = oneShot.batch(arena, a2, b2);
            Mla.decode(
                    ctx,
                    q,
                    oneShot.tensor(0),
                    batch2.blockTable(),
                    batch2.lengths(),
                    Mla.DEFAULT_SCALE,
                    false,
                    out2,
                    lse2);
            assertEquals(-1L, out.segment().mismatch(out2.segment()), "same tokens, same result, whatever the blocks");
            assertEquals(-1L, lse.segment().mismatch(lse2.segment()));
        }
    }

    @Test
    void capacityErrorsChangeNothingAndFreedBlocksAreReused() {
        SplittableRandom random = TestSupport.random(3);
        try (Arena arena = Arena.ofConfined();
                Context ctx = Context.create()) {
            PagedLatentCache cache = new PagedLatentCache(arena, 1, 3, 1, true);
            int a = cache.newSequence(), b = cache.newSequence();
            cache.append(ctx, 0, a, tokens(arena, random, 100)); // 2 blocks
            byte[] before = cache.tensor(0).segment().toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
            IllegalStateException full =
                    assertThrows(IllegalStateException.class, () -> cache.append(ctx, 0, b, tokens(arena, random, 65)));
            System.out.println("rejected: " + full.getMessage());
            assertEquals(
                    "cache full: sequences [1] need 2 more blocks for 65 tokens but 1 of 3 are free",
                    full.getMessage());
            assertEquals(0, cache.length(b));
            assertEquals(1, cache.freeBlocks());
            assertArrayEquals(
                    before,
                    cache.tensor(0).segment().toArray(java.lang.foreign.ValueLayout.JAVA_BYTE),
                    "cache untouched");
            cache.free(a);
            assertEquals(3, cache.freeBlocks());
            cache.append(ctx, 0, b, tokens(arena, random, 65));
            assertEquals(65, cache.length(b));
            assertThrows(IllegalArgumentException.class, () -> cache.length(a));
            assertThrows(
                    IllegalArgumentException.class,
                    () -> cache.append(ctx, 0, b, Tensor.allocate(arena, DType.BF16, 1, 2, 576)));
        }
    }

    @Test
    void truncateFreesWholeBlocksAndKeepsTheRest() {
        SplittableRandom random = TestSupport.random(TestSupport.freshSeed());
        try (Arena arena = Arena.ofConfined();
                Context ctx = Context.create()) {
            PagedLatentCache cache = new PagedLatentCache(arena, 1, 4, 1, false);
            int a = cache.newSequence();
            Tensor kv = tokens(arena, random, 150);
            cache.append(ctx, 0, a, kv);
            assertEquals(1, cache.freeBlocks());
            cache.truncate(a, 65); // 2 blocks still needed
            assertEquals(65, cache.length(a));
            assertEquals(2, cache.freeBlocks());
            assertThrows(IllegalArgumentException.class, () -> cache.truncate(a, 66));
            assertThrows(IllegalArgumentException.class, () -> cache.truncate(a, -1));
            cache.append(ctx, 0, a, tokens(arena, random, 3));
            PagedLatentCache.Batch batch = cache.batch(arena, a);
            assertEquals(68, batch.lengths().getInt(0));
            // tokens before the cut are untouched
            for (int t = 0; t < 65; t += 7)
                assertEquals(
                        kv.getFloat(t, 0, 5),
                        cache.tensor(0).getFloat(batch.blockTable().getInt(0, t / 64), t % 64, 0, 5));
            cache.truncate(a, 0);
            assertEquals(4, cache.freeBlocks());
        }
    }
}
