package dev.moe4j.runtime;

import java.util.Objects;

/**
 * How many calls of one kernel on a {@link Context} ran one variant of it, for one reason ({@code moe4j_kernel_variant}).
 *
 * @param kernel the entry point without its {@code moe4j_} prefix ({@code "fp8_gemm_nt"}, {@code "mla_decode"}),
 *     followed by {@code ":stage"} for a stage of an entry point that runs several kernels whose variants may differ
 *     ({@code "fp8_expert_ffn_contiguous:gate_up"}, {@code "fp8_expert_ffn_contiguous:down"})
 * @param variant on a CUDA context {@code "tuned"} or {@code "simple"} (kernels with one CUDA version count as
 *     simple); on a CPU context the code path that ran, the {@link Isa#nativeName()} of {@code "scalar"},
 *     {@code "avx2"}, {@code "avx512"} or {@code "avx512_bf16"} (a kernel without AVX-512F code of its own runs
 *     {@code "avx2"} on an {@link Isa#AVX512} context)
 * @param reason why a fallback ran where a better variant exists (e.g. {@code "compute capability 8.9: the wgmma
 *     kernel needs 9.0"}, {@code "MOE4J_CONTEXT_SIMPLE_KERNELS"}, {@code "rows of 'a' are not 16-byte aligned"}),
 *     and on the CPU which sub-kernel ran where the path alone does not say ({@code "row kernel"},
 *     {@code "packed-panel kernel"}); empty when there is nothing to add
 * @param calls how many calls, at least 1
 */
public record KernelVariant(String kernel, String variant, String reason, long calls) {
    public KernelVariant {
        Objects.requireNonNull(kernel, "kernel");
        Objects.requireNonNull(variant, "variant");
        Objects.requireNonNull(reason, "reason");
        if (calls < 1) throw new IllegalArgumentException("calls " + calls + " is not positive");
    }

    @Override
    public String toString() {
        return kernel + ": " + variant + (reason.isEmpty() ? "" : " (" + reason + ")") + " x" + calls;
    }
}
