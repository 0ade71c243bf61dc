package dev.moe4j.runtime;

/** The status codes of the C ABI ({@code enum moe4j_status_code} in moe4j.h). */
public enum Status {
    OK(0),
    INVALID_ARGUMENT(1),
    UNSUPPORTED(2),
    OUT_OF_MEMORY(3),
    BACKEND(4),
    INTERNAL(5),
    /** A code this version of the Java layer does not know; {@link Moe4jException#code()} has the value. */
    UNKNOWN(-1);

    private final int code;

    Status(int code) {
        this.code = code;
    }

    public int code() {
        return code;
    }

    public static Status of(int code) {
        for (Status s : values()) {
            if (s.code == code) return s;
        }
        return UNKNOWN;
    }
}
