package dev.moe4j.model;

import dev.moe4j.kernels.Activation;
import dev.moe4j.kernels.Copy;
import dev.moe4j.kernels.ExpertFfn;
import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.Workspace;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.QuantizedGroups;
import dev.moe4j.tensor.QuantizedTensor;
import dev.moe4j.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * DeepSeek's gated MLP {@code y = down(SiLU(gate(x)) * up(x))}: the dense layers before {@code first_k_dense_replace}
 * and the shared experts of MoE layers (n_shared experts concatenated into one MLP of n_shared · moe_intermediate).
 *
 * <p>With all three weights FP8 and the intermediate width a multiple of 128 it runs as one fused native call (the
 * routed experts' {@link ExpertFfn} with a single expert), the intermediate never leaving native memory. Otherwise
 * (BF16 weights, or V2-Lite's 10944-wide dense MLP that FP8 blocks cannot tile) it runs three {@link Linear} layers
 * with SiLU·mul applied natively in fp32 between them ({@link Activation#siluMul}). With gate and up stacked into one
 * weight ({@link #stacked}: the int8 dense MLP) the first two are one GEMM.
 *
 * <p>The weights live in host memory or, after {@link #to}, in a device's; {@link #apply} runs on a context of that
 * device with x and out in its memory.
 *
 * <p>Immutable; {@link #apply} may run on several threads at once with their own contexts and outputs.
 */
public final class DenseMlp {
    private final Linear gate, up, down;
    private final QuantizedGroups[] fused; // gate, up, down as one-expert groups, or null
    private final Linear gateUp; // gate and up as one weight, or null

    /**
     * @param gate [I, H] ({@code gate_proj})
     * @param up [I, H] ({@code up_proj})
     * @param down [H, I] ({@code down_proj})
     */
    public DenseMlp(Linear gate, Linear up, Linear down) {
        this(gate, up, down, null);
    }

    private DenseMlp(Linear gate, Linear up, Linear down, Linear gateUp) {
        this.gateUp = gateUp;
        this.gate = Objects.requireNonNull(gate, "gate");
        this.up = Objects.requireNonNull(up, "up");
        this.down = Objects.requireNonNull(down, "down");
        long i = gate.outFeatures(), h = gate.inFeatures();
        if (up.outFeatures() != i || up.inFeatures() != h || down.outFeatures() != h || down.inFeatures() != i)
            throw new IllegalArgumentException("MLP weights must be gate [I, H], up [I, H], down [H, I]; got gate ["
                    + i + ", " + h + "], up [" + up.outFeatures() + ", " + up.inFeatures() + "], down ["
                    + down.outFeatures() + ", " + down.inFeatures() + "]");
        boolean fusable = fusable(gate) && fusable(up) && fusable(down) && i % QuantizedTensor.BLOCK == 0;
        fused = fusable
                ? new QuantizedGroups[] {
                    QuantizedGroups.of(List.of(gate.fp8Weight())),
                    QuantizedGroups.of(List.of(up.fp8Weight())),
                    QuantizedGroups.of(List.of(down.fp8Weight()))
                }
                : null;
    }

    /**
     * An MLP whose gate and up weights are stacked into one [2I, H] (rows 0..I-1 gate, I..2I-1 up; FP8 or int8, as
     * {@link Linear#rows} slices them), down [H, I]: gate and up then take one GEMM.
     */
    static DenseMlp stacked(Linear gateUp, Linear down) {
        long i = gateUp.outFeatures() / 2;
        return new DenseMlp(gateUp.rows(0, i), gateUp.rows(i, i), down, gateUp);
    }

    /** This MLP with its weights copied into store's device memory, for contexts of that device. */
    public DenseMlp to(DeviceStore store) {
        return gateUp != null
                ? stacked(gateUp.to(store), down.to(store))
                : new DenseMlp(gate.to(store), up.to(store), down.to(store));
    }

    /** Whether the weights are in the memory that kernels on ctx take ({@link Tensor#isInMemoryOf}). */
    public boolean isInMemoryOf(Context ctx) {
        return gate.isInMemoryOf(ctx);
    }

    public long hidden() {
        return gate.inFeatures();
    }

    public long intermediate() {
        return gate.outFeatures();
    }

    /**
     * The MLP as {@code parts} experts of width {@code intermediate / parts} (the shared experts of an MoE layer are
     * such a concatenation, and the sum over parts of {@code down_p(SiLU(gate_p x) · up_p x)} is the MLP): gate, up and
     * down slices per part as weight groups, views of this MLP's FP8 weights; null unless the weights are FP8 and each
     * part's width is a multiple of 128.
     */
    QuantizedGroups[] asExperts(int parts) {
        long width = intermediate() / parts;
        if (fused == null || parts <= 0 || intermediate() % parts != 0 || width % QuantizedTensor.BLOCK != 0)
            return null;
        List<QuantizedTensor> g = new ArrayList<>(), u = new ArrayList<>(), d = new ArrayList<>();
        for (int p = 0; p < parts; p++) {
            g.add(gate.fp8Weight().rows(p * width, width));
            u.add(up.fp8Weight().rows(p * width, width));
            QuantizedTensor w = down.fp8Weight();
            long block = QuantizedTensor.BLOCK;
            d.add(new QuantizedTensor(
                    w.data().slice(1, p * width, width), w.scales().slice(1, p * width / block, width / block), 128));
        }
        return new QuantizedGroups[] {QuantizedGroups.of(g), QuantizedGroups.of(u), QuantizedGroups.of(d)};
    }

    /** Bytes of the three weights (with their scales): what one application reads. */
    public long weightBytes() {
        return gate.weightBytes() + up.weightBytes() + down.weightBytes();
    }

    /**
     * Hints that ctx's next parallel call reads this MLP's first weight ({@link dev.moe4j.kernels.Prefetch}): for the
     * caller to give before the small kernels that precede {@link #apply}.
     */
    public void prefetch(Context ctx) {
        (gateUp != null ? gateUp : gate).prefetch(ctx);
    }

    /**
     * @param ctx a context of the device that holds the weights
     * @param x F32 or BF16 [T, H], in the memory of ctx's device
     * @param out F32 or BF16 [T, H], rows contiguous, in the memory of ctx's device
     */
    public void apply(Context ctx, Tensor x, Tensor out) {
        Objects.requireNonNull(x, "x");
        if (x.rank() != 2 || x.shape(1) != hidden())
            throw new IllegalArgumentException("x must be [T, " + hidden() + "], got " + x);
        int t = Math.toIntExact(x.shape(0));
        try (Workspace.Frame scratch = ctx.workspace().frame()) {
            if (fused != null) {
                Tensor layout = Copy.toDevice(scratch, Tensor.allocate(scratch, DType.I32, t)); // zeros: expert 0
                QuantizedTensor xq = Linear.quantizeTokens(ctx, x, scratch);
                ExpertFfn.contiguous(ctx, xq, fused[0], fused[1], fused[2], layout, 1, out);
                return;
            }
            if (gateUp != null) {
                // SiLU·up into the gate half in place: the halves' rows interleave but share no element
                Tensor both = gateUp.apply(ctx, x, DType.F32, scratch);
                down.prefetch(ctx);
                Tensor h = both.slice(1, 0, intermediate());
                Activation.siluMul(ctx, h, both.slice(1, intermediate(), intermediate()), h);
                down.apply(ctx, h, out);
                return;
            }
            Tensor g = gate.apply(ctx, x, DType.F32, scratch), u = up.apply(ctx, x, DType.F32, scratch);
            down.prefetch(ctx);
            Activation.siluMul(ctx, g, u, g);
            down.apply(ctx, g, out);
        }
    }

    private static boolean fusable(Linear w) {
        if (!w.isFp8()) return false;
        Tensor data = w.fp8Weight().data();
        return data.shape(1) <= 1 || data.strides()[1] == 1;
    }
}
