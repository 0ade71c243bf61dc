package dev.moe4j.tensor;

/** Element types of tensors, with the codes of {@code enum moe4j_dtype}. */
public enum DType {
    F32(0, 4),
    BF16(1, 2),
    F16(2, 2),
    /** OCP float8 e4m3fn: max 448, no infinities, NaN 0x7F/0xFF. */
    E4M3(3, 1),
    I32(4, 4),
    I64(5, 8),
    U8(6, 1),
    /**
     * E4M3 weight codes packed in panels of 32 rows ({@link dev.moe4j.kernels.Fp8Gemm#packWeights}): an [.., N, K]
     * tensor, N a multiple of 32, contiguous, whose byte {@code (n / 32) * 32 * K + k * 32 + n % 32} of each [N, K]
     * matrix is element (n, k). Elements are not addressable one by one; the FP8 kernels of CPU contexts read it.
     */
    E4M3_P32(7, 1),
    /**
     * Int8 weight codes in panels of 16 rows by 4 columns ({@link dev.moe4j.kernels.Q8Gemm#quantizeWeights}): an [N,
     * K] tensor, N a multiple of 16, contiguous, whose byte {@code (n / 16) * 16 * K + (k / 4) * 64 + (n % 16) * 4 + k
     * % 4} holds code(n, k) + 128, the code in [-127, 127]. Elements are not addressable one by one; {@link
     * dev.moe4j.kernels.Q8Gemm#nt} reads it.
     */
    Q8_P16(8, 1);

    private final int code;
    private final int byteSize;

    DType(int code, int byteSize) {
        this.code = code;
        this.byteSize = byteSize;
    }

    public int code() {
        return code;
    }

    public int byteSize() {
        return byteSize;
    }

    public boolean isFloatingPoint() {
        return this == F32 || this == BF16 || this == F16 || this == E4M3;
    }
}
