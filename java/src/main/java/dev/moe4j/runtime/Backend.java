package dev.moe4j.runtime;

/** Where a context runs its kernels ({@code enum moe4j_backend}). */
public enum Backend {
    CPU(0),
    CUDA(1);

    private final int code;

    Backend(int code) {
        this.code = code;
    }

    public int code() {
        return code;
    }
}
