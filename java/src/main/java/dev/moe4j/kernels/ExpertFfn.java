package dev.moe4j.kernels;

import dev.moe4j.bindings.moe4j_h;
import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.Workspace;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.QuantizedGroups;
import dev.moe4j.tensor.QuantizedTensor;
import dev.moe4j.tensor.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.ref.Reference;
import java.util.Objects;

/**
 * The fused FP8 expert FFN of DeepSeek MoE layers ({@code moe4j_fp8_expert_ffn_contiguous}): for every row of
 * group {@code g}, {@code h = SiLU(x·gate[g]ᵀ) * (x·up[g]ᵀ)} in fp32, re-quantized per token to FP8, then
 * {@code d = h·down[g]ᵀ}. The intermediate never leaves native memory. Rows are laid out as for
 * {@link Fp8Gemm#groupedContiguous}; padding rows of {@code d} are zero. Errors as in {@link Fp8Gemm}.
 */
public final class ExpertFfn {
    private ExpertFfn() {}

    /**
     * @param x E4M3 [S, H] with per-token scales [S, H/128]
     * @param gate G weight groups, each E4M3 [I, H] with block scales [ceil(I/128), H/128] ({@code gate_proj}),
     *     anywhere in memory (a checkpoint's memory map, say)
     * @param up like {@code gate} ({@code up_proj})
     * @param down G weight groups, each E4M3 [H, I] with block scales [ceil(H/128), I/128] ({@code down_proj})
     * @param groupedLayout I32 [S]: each row's expert, -1 for padding rows
     * @param alignment rows per block of one expert
     * @param d F32 or BF16 [S, H]
     */
    public static void contiguous(
            Context ctx,
            QuantizedTensor x,
            QuantizedGroups gate,
            QuantizedGroups up,
            QuantizedGroups down,
            Tensor groupedLayout,
            int alignment,
            Tensor d) {
        Objects.requireNonNull(ctx, "ctx");
        Args.quantized(x, "x", 2, 1);
        Objects.requireNonNull(gate, "gate");
        Objects.requireNonNull(up, "up");
        Objects.requireNonNull(down, "down");
        Args.tensor(groupedLayout, "groupedLayout", 1, DType.I32);
        Args.output(d, 2);
        try (Workspace.Frame call = ctx.workspace().frame()) {
            MemorySegment xDesc = x.data().descriptor(call, "x");
            MemorySegment sfxDesc = x.scales().descriptor(call, "sfx");
            MemorySegment wGateDesc = gate.descriptor(call, "w_gate");
            MemorySegment wUpDesc = up.descriptor(call, "w_up");
            MemorySegment wDownDesc = down.descriptor(call, "w_down");
            MemorySegment groupedLayoutDesc = groupedLayout.descriptor(call, "grouped_layout");
            MemorySegment dDesc = d.descriptor(call, "d");
            ctx.call(
                    "moe4j_fp8_expert_ffn_contiguous",
                    ptr -> moe4j_h.moe4j_fp8_expert_ffn_contiguous(
                            ptr, xDesc, sfxDesc, wGateDesc, wUpDesc, wDownDesc, groupedLayoutDesc, alignment, dDesc));
        } finally {
            Reference.reachabilityFence(gate); // their descriptor arrays live as long as they do
            Reference.reachabilityFence(up);
            Reference.reachabilityFence(down);
        }
    }
}
