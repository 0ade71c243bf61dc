package dev.moe4j.runtime;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.moe4j.bindings.moe4j_h;
import dev.moe4j.bindings.moe4j_tensor;
import dev.moe4j.kernels.Cast;
import dev.moe4j.kernels.Quantization;
import dev.moe4j.kernels.ScaleFormat;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.QuantizedTensor;
import dev.moe4j.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.function.Consumer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Bad input, straight through the bindings with hand-made descriptors: every rejection returns the right
 * status and a message naming the argument, and the outputs stay exactly as they were (poisoned).
 */
class BadInputTest {
    private static final int M = 4, K = 256;

    private Arena arena;
    private Context ctx;
    private Tensor x, q, scales;
    private MemorySegment xd, qd, sd;

    @BeforeEach
    void setUp() {
        arena = Arena.ofConfined();
        ctx = Context.create(Context.Options.cpu().withThreads(1));
        x = Tensor.fromFloats(arena, DType.F32, new float[M * K], M, K);
        for (int i = 0; i < M * K; i++) x.setFloat(i * 0.01f - 3, i / K, i % K);
        q = Tensor.allocate(arena, DType.E4M3, M, K);
        scales = Tensor.allocate(arena, DType.F32, M, K / 128);
        q.segment().fill((byte) 0x55);
        scales.segment().fill((byte) 0x55);
        xd = x.descriptor(arena, "x");
        qd = q.descriptor(arena, "q");
        sd = scales.descriptor(arena, "scales");
    }

    @AfterEach
    void tearDown() {
        ctx.close();
        arena.close();
    }

    /** Runs the per-token quantizer after mutating one descriptor; expects a rejection mentioning every fragment. */
    private void rejects(MemorySegment descriptor, Consumer<MemorySegment> mutation, String... fragments) {
        mutation.accept(descriptor);
        int status = moe4j_h.moe4j_quantize_fp8_per_token(ctx.handle(), xd, qd, sd, moe4j_h.MOE4J_SCALE_FP32());
        expectRejected(status, moe4j_h.MOE4J_ERROR_INVALID_ARGUMENT(), fragments);
    }

    private void expectRejected(int status, int expectedStatus, String... fragments) {
        String message = NativeLibrary.lastError();
        System.out.println("rejected: " + message);
        assertEquals(expectedStatus, status, message);
        for (String f : fragments) assertTrue(message.contains(f), "message '" + message + "' lacks '" + f + "'");
        for (long i = 0; i < q.segment().byteSize(); i++)
            assertEquals(
                    (byte) 0x55, q.segment().getAtIndex(java.lang.foreign.ValueLayout.JAVA_BYTE, i), "q was written");
        for (long i = 0; i < scales.segment().byteSize(); i++)
            assertEquals(
                    (byte) 0x55,
                    scales.segment().getAtIndex(java.lang.foreign.ValueLayout.JAVA_BYTE, i),
                    "scales were written");
    }

    @Test
    void nullContext() {
        int status = moe4j_h.moe4j_quantize_fp8_per_token(MemorySegment.NULL, xd, qd, sd, 0);
        expectRejected(status, moe4j_h.MOE4J_ERROR_INVALID_ARGUMENT(), "moe4j_quantize_fp8_per_token", "'ctx' is null");
    }

    @Test
    void nullDescriptor() {
        int status = moe4j_h.moe4j_quantize_fp8_per_token(ctx.handle(), MemorySegment.NULL, qd, sd, 0);
        expectRejected(status, moe4j_h.MOE4J_ERROR_INVALID_ARGUMENT(), "'x' is null");
    }

    @Test
    void nullDataPointer() {
        rejects(xd, d -> moe4j_tensor.data(d, MemorySegment.NULL), "'x'", "data pointer is null");
    }

    @Test
    void wrongDtype() {
        rejects(xd, d -> moe4j_tensor.dtype(d, DType.I32.code()), "'x'", "dtype I32", "expected F32, BF16");
        rejects(xd, d -> moe4j_tensor.dtype(d, 99), "'x'", "dtype unknown (99)");
    }

    @Test
    void wrongRank() {
        rejects(qd, d -> moe4j_tensor.rank(d, 3), "'q'", "rank 3, expected 2");
    }

    @Test
    void wrongShape() {
        rejects(qd, d -> moe4j_tensor.shape(d, 1, K - 128), "'q'", "shape [4, 128] but expected [4, 256]");
    }

    @Test
    void wrongScaleShape() {
        rejects(sd, d -> moe4j_tensor.shape(d, 1, 1), "'scales'", "shape [4, 1] but expected [4, 2]", "128 columns");
    }

    @Test
    void misalignedData() {
        rejects(
                xd,
                d -> moe4j_tensor.data(d, MemorySegment.ofAddress(x.segment().address() + 2)),
                "'x'",
                "not aligned",
                "4-byte F32");
    }

    @Test
    void bufferTooShort() {
        rejects(
                xd,
                d -> moe4j_tensor.size_bytes(d, 4L * M * K - 4),
                "'x'",
                "buffer holds 4092 bytes",
                "reaches 4096 bytes");
    }

    @Test
    void negativeOrNonUnitInnerStride() {
        rejects(qd, d -> moe4j_tensor.strides(d, 0, -K), "'q'", "negative stride");
        setUp();
        rejects(qd, d -> moe4j_tensor.strides(d, 1, 2), "'q'", "innermost stride is 2");
    }

    @Test
    void negativeExtent() {
        rejects(xd, d -> moe4j_tensor.shape(d, 0, -1), "'x'", "negative extent");
    }

    @Test
    void stridesThatOverflow() {
        rejects(xd, d -> moe4j_tensor.strides(d, 0, Long.MAX_VALUE / 2), "'x'", "overflow");
    }

    @Test
    void reservedFieldSet() {
        rejects(xd, d -> moe4j_tensor.reserved(d, 1), "'x'", "reserved field");
    }

    @Test
    void deviceMemoryOnACpuContext() {
        rejects(qd, d -> moe4j_tensor.device(d, 0), "'q'", "lives in CUDA device 0", "runs on host memory");
    }

    @Test
    void outputOverlapsInput() {
        // scales placed inside x's bytes
        rejects(sd, d -> moe4j_tensor.data(d, x.segment()), "output 'scales' overlaps 'x'");
    }

    @Test
    void badScaleFormat() {
        int status = moe4j_h.moe4j_quantize_fp8_per_token(ctx.handle(), xd, qd, sd, 7);
        expectRejected(status, moe4j_h.MOE4J_ERROR_INVALID_ARGUMENT(), "'scale_format': 7");
    }

    @Test
    void badBlockRowsForDequantize() {
        Tensor out = Tensor.allocate(arena, DType.F32, M, K);
        int status = moe4j_h.moe4j_dequantize_fp8(ctx.handle(), qd, sd, 64, out.descriptor(arena, "out"));
        expectRejected(status, moe4j_h.MOE4J_ERROR_INVALID_ARGUMENT(), "moe4j_dequantize_fp8", "'block_rows': 64");
    }

    @Test
    void perBlockScaleShapeExplainsTheBlocks() {
        int status = moe4j_h.moe4j_quantize_fp8_per_block(ctx.handle(), xd, qd, sd, 0);
        expectRejected(
                status, moe4j_h.MOE4J_ERROR_INVALID_ARGUMENT(), "'scale_inv'", "expected [1, 2]", "128x128 block");
    }

    @Test
    void castRankOutOfRange() {
        moe4j_tensor.rank(xd, 5);
        int status = moe4j_h.moe4j_cast(ctx.handle(), xd, qd);
        expectRejected(status, moe4j_h.MOE4J_ERROR_INVALID_ARGUMENT(), "moe4j_cast", "'src': rank 5");
    }

    @Test
    void javaApiRejectsClosedTensorsClosedContextsAndNulls() {
        Arena other = Arena.ofConfined();
        Tensor gone = Tensor.allocate(other, DType.F32, M, K);
        other.close();
        IllegalStateException closed = assertThrows(
                IllegalStateException.class, () -> Quantization.perToken(ctx, gone, q, scales, ScaleFormat.FP32));
        System.out.println("rejected: " + closed.getMessage());
        assertTrue(closed.getMessage().contains("tensor 'x'")
                && closed.getMessage().contains("arena"));

        NullPointerException nul = assertThrows(
                NullPointerException.class, () -> Quantization.perToken(ctx, x, null, scales, ScaleFormat.FP32));
        assertEquals("q", nul.getMessage());

        Context done = Context.create();
        done.close();
        done.close(); // idempotent
        IllegalStateException closedContext = assertThrows(IllegalStateException.class, () -> Cast.apply(done, x, q));
        System.out.println("rejected: " + closedContext.getMessage());
        assertTrue(closedContext.getMessage().contains("closed"));
    }

    @Test
    void javaApiSurfacesNativeRejectionsAsMoe4jException() {
        Tensor wrong = Tensor.allocate(arena, DType.F32, M, 3);
        Moe4jException e =
                assertThrows(Moe4jException.class, () -> Quantization.perToken(ctx, x, q, wrong, ScaleFormat.FP32));
        System.out.println("rejected: " + e.getMessage());
        assertEquals(Status.INVALID_ARGUMENT, e.status());
        assertEquals("moe4j_quantize_fp8_per_token", e.function());
        assertTrue(
                e.nativeMessage().contains("argument 'scales': shape [4, 3] but expected [4, 2]"), e.nativeMessage());
        QuantizedTensor bad = new QuantizedTensor(q, wrong, 1);
        assertThrows(Moe4jException.class, () -> Quantization.dequantize(ctx, bad, DType.F32, arena));
        expectRejected(
                moe4j_h.MOE4J_ERROR_INVALID_ARGUMENT(), moe4j_h.MOE4J_ERROR_INVALID_ARGUMENT(), "moe4j_dequantize_fp8");
    }

    @Test
    void aSuccessfulCallClearsTheLastError() {
        moe4j_h.moe4j_quantize_fp8_per_token(ctx.handle(), xd, qd, sd, 7);
        assertTrue(!NativeLibrary.lastError().isEmpty());
        assertEquals(0, moe4j_h.moe4j_quantize_fp8_per_token(ctx.handle(), xd, qd, sd, 0));
        assertEquals("", NativeLibrary.lastError());
    }
}
