package dev.moe4j.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.moe4j.bindings.moe4j_fp8_weight_groups;
import dev.moe4j.bindings.moe4j_h;
import dev.moe4j.bindings.moe4j_tensor;
import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.NativeLibrary;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.QuantizedGroups;
import dev.moe4j.tensor.QuantizedTensor;
import dev.moe4j.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Malformed {@code moe4j_fp8_weight_groups} arguments, written through the raw bindings (QuantizedGroups refuses to
 * build them): every grouped entry point rejects them with a message naming the argument and the group, and writes
 * nothing.
 */
class WeightGroupsTest {
    private static final int G = 3, N = 256, K = 256, ROWS = 8;

    private Arena arena;
    private Context ctx;
    private MemorySegment a, sfa, layout, x3, sfx3, masked, d, d3;
    private Tensor out, out3;
    private QuantizedGroups weights, down;

    @BeforeEach
    void setUp() {
        arena = Arena.ofConfined();
        ctx = Context.create(Context.Options.cpu().withThreads(1));
        Tensor at = Tensor.allocate(arena, DType.E4M3, ROWS, K);
        Tensor sfat = Tensor.allocate(arena, DType.F32, ROWS, K / 128);
        Tensor layoutT = Tensor.allocate(arena, DType.I32, ROWS);
        for (int r = 0; r < ROWS; r++) layoutT.setInt(r % G, r);
        Tensor a3 = Tensor.allocate(arena, DType.E4M3, G, 2, K);
        Tensor sfa3 = Tensor.allocate(arena, DType.F32, G, 2, K / 128);
        Tensor maskedT = Tensor.allocate(arena, DType.I32, G);
        out = Tensor.allocate(arena, DType.F32, ROWS, N);
        out3 = Tensor.allocate(arena, DType.F32, G, 2, N);
        out.segment().fill((byte) 0xFF);
        out3.segment().fill((byte) 0xFF);
        a = at.descriptor(arena, "a");
        sfa = sfat.descriptor(arena, "sfa");
        layout = layoutT.descriptor(arena, "grouped_layout");
        x3 = a3.descriptor(arena, "a");
        sfx3 = sfa3.descriptor(arena, "sfa");
        masked = maskedT.descriptor(arena, "masked_m");
        d = out.descriptor(arena, "d");
        d3 = out3.descriptor(arena, "d");
        weights = groups(N, K);
        down = groups(K, N);
    }

    @AfterEach
    void tearDown() {
        ctx.close();
        arena.close();
    }

    private QuantizedGroups groups(int n, int k) {
        List<QuantizedTensor> list = new ArrayList<>();
        for (int g = 0; g < G; g++)
            list.add(new QuantizedTensor(
                    Tensor.allocate(arena, DType.E4M3, n, k),
                    Tensor.allocate(arena, DType.F32, (n + 127) / 128, k / 128),
                    QuantizedTensor.BLOCK));
        return QuantizedGroups.of(list);
    }

    /**
     * The descriptor of {@code groups} after {@code mutation} of the struct; the descriptor arrays are copies (the
     * groups' own are written once and shared by every call).
     */
    private MemorySegment broken(QuantizedGroups groups, Consumer<MemorySegment> mutation) {
        MemorySegment shared = groups.descriptor(arena, "b");
        MemorySegment struct = moe4j_fp8_weight_groups.allocate(arena);
        moe4j_fp8_weight_groups.count(struct, G);
        moe4j_fp8_weight_groups.weights(struct, copyOf(moe4j_fp8_weight_groups.weights(shared)));
        moe4j_fp8_weight_groups.scales(struct, copyOf(moe4j_fp8_weight_groups.scales(shared)));
        mutation.accept(struct);
        return struct;
    }

    private MemorySegment copyOf(MemorySegment descriptors) {
        long bytes = G * moe4j_tensor.sizeof();
        return arena.allocate(bytes, 8).copyFrom(descriptors.reinterpret(bytes));
    }

    @Test
    void descriptorArraysAreWrittenOnceAndClosedMemoryIsStillRefused() {
        MemorySegment first = weights.descriptor(arena, "b"), second = weights.descriptor(arena, "b");
        assertEquals(moe4j_fp8_weight_groups.weights(first), moe4j_fp8_weight_groups.weights(second));
        assertEquals(moe4j_fp8_weight_groups.scales(first), moe4j_fp8_weight_groups.scales(second));
        Arena own = Arena.ofConfined();
        List<QuantizedTensor> list = new ArrayList<>();
        for (int g = 0; g < G; g++)
            list.add(new QuantizedTensor(
                    Tensor.allocate(own, DType.E4M3, N, K),
                    Tensor.allocate(own, DType.F32, N / 128, K / 128),
                    QuantizedTensor.BLOCK));
        QuantizedGroups closing = QuantizedGroups.of(list);
        closing.descriptor(arena, "b");
        own.close();
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> closing.descriptor(arena, "w_gate"));
        assertTrue(e.getMessage().contains("'w_gate group 0'") && e.getMessage().contains("closed"), e.getMessage());
    }

    private static MemorySegment weightsOf(MemorySegment struct, int g) {
        return moe4j_tensor.asSlice(moe4j_fp8_weight_groups.weights(struct).reinterpret(G * moe4j_tensor.sizeof()), g);
    }

    private static MemorySegment scalesOf(MemorySegment struct, int g) {
        return moe4j_tensor.asSlice(moe4j_fp8_weight_groups.scales(struct).reinterpret(G * moe4j_tensor.sizeof()), g);
    }

    /** The contiguous GEMM, the masked GEMM and the FFN (as its w_gate) with b; each must fail naming fragments. */
    private void rejectedEverywhere(MemorySegment b, String... fragments) {
        MemorySegment good = weights.descriptor(arena, "w_up"), goodDown = down.descriptor(arena, "w_down");
        expect(moe4j_h.moe4j_grouped_fp8_gemm_contiguous(ctx.handle(), a, sfa, b, layout, 1, d), out, "'b'", fragments);
        expect(moe4j_h.moe4j_grouped_fp8_gemm_masked(ctx.handle(), x3, sfx3, b, masked, d3), out3, "'b'", fragments);
        expect(
                moe4j_h.moe4j_fp8_expert_ffn_contiguous(ctx.handle(), a, sfa, b, good, goodDown, layout, 1, d),
                out,
                "'w_gate'",
                fragments);
    }

    private static void expect(int status, Tensor written, String argument, String... fragments) {
        String message = NativeLibrary.lastError();
        System.out.println("rejected: " + message);
        assertEquals(moe4j_h.MOE4J_ERROR_INVALID_ARGUMENT(), status, message);
        assertTrue(message.contains("argument " + argument) || message.contains("overlaps " + argument), message);
        for (String f : fragments) assertTrue(message.contains(f), "message '" + message + "' lacks '" + f + "'");
        MemorySegment bytes = written.segment();
        for (long i = 0; i < bytes.byteSize(); i++)
            assertEquals((byte) 0xFF, bytes.get(ValueLayout.JAVA_BYTE, i), "d was written");
    }

    @Test
    void nullGroupsAndCountsOutOfRange() {
        rejectedEverywhere(MemorySegment.NULL, "' is null");
        rejectedEverywhere(broken(weights, s -> moe4j_fp8_weight_groups.count(s, 0)), "count 0 is outside [1, 65536]");
        rejectedEverywhere(
                broken(weights, s -> moe4j_fp8_weight_groups.count(s, 65537)), "count 65537 is outside [1, 65536]");
        rejectedEverywhere(
                broken(weights, s -> moe4j_fp8_weight_groups.weights(s, MemorySegment.NULL)),
                "'weights' array is null");
        rejectedEverywhere(
                broken(weights, s -> moe4j_fp8_weight_groups.scales(s, MemorySegment.NULL)), "'scales' array is null");
    }

    @Test
    void aGroupOfAnotherShapeDtypeOrPlace() {
        rejectedEverywhere(
                broken(weights, s -> moe4j_tensor.shape(weightsOf(s, 2), 0, 128)),
                "group 2: shape [128, 256] but expected [256, 256]");
        rejectedEverywhere(
                broken(weights, s -> moe4j_tensor.dtype(weightsOf(s, 1), DType.BF16.code())), "group 1: dtype BF16");
        rejectedEverywhere(
                broken(weights, s -> moe4j_tensor.data(weightsOf(s, 2), MemorySegment.NULL)),
                "group 2: data pointer is null");
        rejectedEverywhere(
                broken(weights, s -> moe4j_tensor.strides(weightsOf(s, 1), 1, 2)), "group 1: innermost stride is 2");
        rejectedEverywhere(
                broken(weights, s -> moe4j_tensor.device(weightsOf(s, 1), 0)),
                "group 1: lives in CUDA device 0 but this call runs on host memory");
        rejectedEverywhere(
                broken(weights, s -> moe4j_tensor.shape(scalesOf(s, 1), 1, 1)),
                "group 1 scales: shape [2, 1] but expected [2, 2]");
        rejectedEverywhere(
                broken(weights, s -> moe4j_tensor.rank(scalesOf(s, 0), 3)), "group 0 scales: rank 3, expected 2");
    }

    @Test
    void countsMustAgreeAndOutputsMustNotOverlapAGroup() {
        // masked: G comes from 'a'
        MemorySegment two = broken(weights, s -> moe4j_fp8_weight_groups.count(s, 2));
        expect(
                moe4j_h.moe4j_grouped_fp8_gemm_masked(ctx.handle(), x3, sfx3, two, masked, d3),
                out3,
                "'b'",
                "count 2 differs from the 3 groups");
        // expert FFN: w_up and w_down must have w_gate's count and shapes
        MemorySegment gate = weights.descriptor(arena, "w_gate"), downs = down.descriptor(arena, "w_down");
        MemorySegment twoUp = broken(weights, s -> moe4j_fp8_weight_groups.count(s, 2));
        expect(
                moe4j_h.moe4j_fp8_expert_ffn_contiguous(ctx.handle(), a, sfa, gate, twoUp, downs, layout, 1, d),
                out,
                "'w_up'",
                "count 2 differs from the 3 groups");
        MemorySegment narrowDown = broken(down, s -> moe4j_tensor.shape(weightsOf(s, 1), 0, 128));
        expect(
                moe4j_h.moe4j_fp8_expert_ffn_contiguous(ctx.handle(), a, sfa, gate, gate, narrowDown, layout, 1, d),
                out,
                "'w_down'",
                "group 1: shape [128, 256] but expected [256, 256]");
        // d in group 1's memory
        Tensor inGroup = Tensor.of(weights.group(1).data().segment().asSlice(0, 4L * ROWS * N), DType.F32, ROWS, N);
        inGroup.segment().fill((byte) 0xFF);
        expect(
                moe4j_h.moe4j_grouped_fp8_gemm_contiguous(
                        ctx.handle(),
                        a,
                        sfa,
                        weights.descriptor(arena, "b"),
                        layout,
                        1,
                        inGroup.descriptor(arena, "d")),
                inGroup,
                "'b'",
                "output 'd' overlaps 'b' (group 1) in memory");
    }
}
