package dev.moe4j.runtime;

/**
 * A native moe4j call failed. Carries the status the call returned and the message the native side
 * recorded, which names the function and the offending argument. A call rejected for its arguments wrote no output; a
 * call that ran out of memory ({@link Status#OUT_OF_MEMORY}) or hit an internal error ({@link Status#INTERNAL}) may
 * have written part of its outputs (it can fail inside its parallel part), never its inputs, and the context stays
 * usable. A {@link Workspace} that cannot grow throws this too, with {@link Status#OUT_OF_MEMORY} and the function
 * {@code workspace}. On a CUDA context
 * the failure may belong to an earlier call whose work failed on the device after it returned: the message then reads
 * "an earlier call failed on the device: " followed by that call's name and argument, the outputs of that call are
 * unspecified, and the call that threw did not run its own work.
 */
public final class Moe4jException extends RuntimeException {
    private final Status status;
    private final int code;
    private final String function;
    private final String nativeMessage;

    public Moe4jException(int code, String function, String nativeMessage) {
        super(Status.of(code) + " (" + code + ") from " + function + ": "
                + (nativeMessage.isEmpty() ? "(no message)" : nativeMessage));
        this.status = Status.of(code);
        this.code = code;
        this.function = function;
        this.nativeMessage = nativeMessage;
    }

    public Status status() {
        return status;
    }

    /** The raw status code, meaningful when {@link #status()} is {@link Status#UNKNOWN}. */
    public int code() {
        return code;
    }

    /** The C function that failed, e.g. {@code moe4j_quantize_fp8_per_token}. */
    public String function() {
        return function;
    }

    /** The message recorded by the native side, or "" if it recorded none. */
    public String nativeMessage() {
        return nativeMessage;
    }
}
