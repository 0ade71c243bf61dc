package dev.moe4j.runtime;

/**
 * A device kernels run on: the CPU (ordinal 0) or a CUDA GPU by ordinal.
 *
 * @param backend the backend
 * @param ordinal 0 for the CPU; the CUDA device ordinal for GPUs
 */
public record Device(Backend backend, int ordinal) {
    /** The host CPU. Host memory belongs to it. */
    public static final Device CPU = new Device(Backend.CPU, 0);

    public Device {
        if (backend == null) throw new IllegalArgumentException("backend is null");
        if (ordinal < 0) throw new IllegalArgumentException("device ordinal " + ordinal + " is negative");
        if (backend == Backend.CPU && ordinal != 0)
            throw new IllegalArgumentException("the CPU backend has only device 0, got " + ordinal);
    }

    /** Whether this is host memory and CPU compute. */
    public boolean isCpu() {
        return backend == Backend.CPU;
    }

    public static Device cuda(int ordinal) {
        return new Device(Backend.CUDA, ordinal);
    }

    @Override
    public String toString() {
        return backend == Backend.CPU ? "cpu" : "cuda:" + ordinal;
    }
}
