package dev.moe4j.parallel;

/** A device failed its part of a step; the step produced no output. */
public final class DeviceException extends RuntimeException {
    private final int device;

    public DeviceException(int device, Throwable cause) {
        super("device " + device + " failed: " + cause, cause);
        this.device = device;
    }

    /** The index of the failed device in its group. */
    public int device() {
        return device;
    }
}
