package dev.moe4j.kernels;

/** How FP8 block scales are encoded ({@code enum moe4j_scale_format}). */
public enum ScaleFormat {
    /** Plain fp32 scales: amax / 448. */
    FP32(0),
    /** fp32 scales rounded up to a power of two (DeepGEMM's UE8M0 recipe). */
    UE8M0(1);

    private final int code;

    ScaleFormat(int code) {
        this.code = code;
    }

    public int code() {
        return code;
    }
}
