package dev.moe4j.runtime;

/**
 * The CPU instruction-set paths of the kernels, ordered from the portable reference upwards
 * ({@code enum moe4j_isa}). A context runs the best path the machine supports unless capped.
 */
public enum Isa {
    /** Portable C++ reference path. */
    SCALAR(0, "scalar"),
    /** AVX2 + FMA + F16C. */
    AVX2(1, "avx2"),
    /**
     * AVX-512 F/BW/VL/DQ without AVX512_BF16 (Skylake-SP, Cascade Lake, Ice Lake): 16-lane fp32 FP8 GEMMs and
     * expert gate/up pass, AVX-512 RMSNorm, RoPE and SiLU; the other kernels run their AVX2 code.
     */
    AVX512(2, "avx512"),
    /** AVX-512 F/BW/VL/DQ/VBMI/VNNI with AVX512_BF16: FP8 GEMMs and the expert FFN on bf16 dot products, the Q8 GEMM on int8 ones. */
    AVX512_BF16(3, "avx512_bf16");

    private final int code;
    private final String nativeName;

    Isa(int code, String nativeName) {
        this.code = code;
        this.nativeName = nativeName;
    }

    public int code() {
        return code;
    }

    /** The name the native side uses, also accepted by the MOE4J_MAX_ISA environment variable. */
    public String nativeName() {
        return nativeName;
    }

    /**
     * Whether this path's FP8 GEMMs have kernels of their own for packed weights ({@code E4M3_P32}, from {@link
     * dev.moe4j.kernels.Fp8Gemm#packWeights}), which sum in one order at every row count: the AVX-512 paths. The
     * others unpack packed weights a block at a time, giving the bits of the unpacked weights.
     */
    public boolean hasPackedKernels() {
        return this == AVX512 || this == AVX512_BF16;
    }

    public static Isa of(int code) {
        for (Isa isa : values()) {
            if (isa.code == code) return isa;
        }
        throw new IllegalArgumentException("unknown ISA code " + code);
    }

    public static Isa parse(String name) {
        for (Isa isa : values()) {
            if (isa.nativeName.equals(name) || isa.name().equalsIgnoreCase(name)) return isa;
        }
        throw new IllegalArgumentException("unknown ISA '" + name + "': expected scalar, avx2, avx512 or avx512_bf16");
    }
}
