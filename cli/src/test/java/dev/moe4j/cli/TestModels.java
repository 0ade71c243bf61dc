package dev.moe4j.cli;

/** Synthetic checkpoints for the tests of other modules (they reach this class through the library's test jar). */
public final class TestModels {
    private TestModels() {}

    /** Runs {@code make-model} with these arguments (see {@link MakeModel#USAGE}). */
    public static void make(String... args) {
        int status = MakeModel.run(args);
        if (status != 0) throw new IllegalStateException("make-model exited " + status);
    }
}
