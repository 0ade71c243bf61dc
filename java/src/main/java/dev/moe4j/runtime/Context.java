package dev.moe4j.runtime;

import dev.moe4j.bindings.moe4j_context_info;
import dev.moe4j.bindings.moe4j_context_options;
import dev.moe4j.bindings.moe4j_h;
import dev.moe4j.bindings.moe4j_kernel_variant;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.lang.ref.Cleaner;
import java.util.ArrayList;
import java.util.List;
import java.util.function.ToIntFunction;

/**
 * A native execution context: one device, its worker threads and (for CUDA) its stream.
 *
 * <p>Thread-safety: a context runs one kernel at a time. Use it from one thread at a time (one context per
 * worker thread is the intended pattern; handing it to another thread between calls is fine); distinct contexts are
 * fully independent. The rule is enforced: while a thread is inside a call on the context ({@link #call}, which every
 * kernel wrapper goes through) or holds a frame of its {@link Workspace} open, a call or frame from another thread
 * throws {@link IllegalStateException} naming the context, the thread using it and the one that tried, and does
 * nothing. The check is one compare-and-set per call. Memory allocation and freeing ({@link
 * dev.moe4j.tensor.DeviceMemory}, and the library's own grow-only buffers) are exempt: they may run on any thread, also while
 * a kernel runs. {@link #close()} is idempotent and fails the same way while another thread uses the context; a
 * context that is not closed is destroyed when it becomes unreachable, but closing it explicitly releases its threads
 * at a known time.
 *
 * <p>Failures: a kernel call that fails throws {@link Moe4jException} with the native status and message and leaves
 * the context usable. Out of memory ({@link Status#OUT_OF_MEMORY}) is such a failure, whether the native side could
 * not allocate (host or device memory, the context's native scratch, or an allocation inside one of the context's
 * worker threads) or the {@link Workspace} could not grow past its {@linkplain Workspace#limit limit}: the failing
 * call's outputs (in-place operands included) are unspecified, since a call that fails inside its parallel part may
 * have written some of them, its inputs are untouched, and the next call on the context runs normally. Errors that
 * are bugs in moe4j arrive as {@link Status#INTERNAL}, with the same guarantees.
 *
 * <p>Execution: on the CPU every kernel call returns complete. On a CUDA device a kernel call validates its
 * descriptors, enqueues its work on the context's stream and returns without waiting; calls on one context run in
 * call order. Device memory a call writes may be read through this context at once (a copy to host memory waits for
 * it), but by another context (another device's, or another context of the same device) only after
 * {@link dev.moe4j.kernels.Copy#synchronize(Context)} on this one. Errors that arise on the device after a call
 * returned (an out-of-range index in a device table, a CUDA fault) are thrown by the next synchronize or copy to host
 * memory, or by a later call on this context once the failing work has finished, as a {@link Moe4jException} whose
 * message names the earlier call and its argument.
 */
public final class Context implements AutoCloseable {
    private static final Cleaner CLEANER = Cleaner.create();

    /**
     * How to create a context.
     *
     * @param device the device the kernels run on
     * @param threads CPU worker threads including the caller; 0 means all hardware threads
     * @param maxIsa the highest CPU path to use, or null for the best the machine supports
     * @param reproducible compute each output row of the FP8 GEMMs and the expert FFN by one fixed sequence of
     *     operations, whatever the other rows of its group, so that results do not depend on how rows are batched
     *     or which device runs them (expert parallelism needs this); MLA decode splits each sequence's cache at
     *     fixed 512-token positions, so a query row's output does not depend on the batch or on how a prompt was
     *     chunked (batch-invariant generation needs this); costs large-batch speed on the CPU
     * @param simpleKernels CUDA devices only: run the simple kernels (one thread per GEMM output, one thread block
     *     per MLA query head) instead of the tuned ones, to check the tuned ones or measure what they gain (the
     *     CPU's plain path is {@code maxIsa = Isa.SCALAR})
     */
    public record Options(Device device, int threads, Isa maxIsa, boolean reproducible, boolean simpleKernels) {
        public Options {
            if (device == null) throw new IllegalArgumentException("device is null");
            if (threads < 0) throw new IllegalArgumentException("threads " + threads + " is negative");
            if (simpleKernels && device.isCpu())
                throw new IllegalArgumentException(
                        "simpleKernels is for CUDA devices; the CPU's plain path is maxIsa = Isa.SCALAR");
        }

        /** The CPU with all hardware threads and the best ISA path. */
        public static Options cpu() {
            return new Options(Device.CPU, 0, null, false, false);
        }

        /** CUDA device {@code ordinal} with the tuned kernels. */
        public static Options cuda(int ordinal) {
            return new Options(Device.cuda(ordinal), 0, null, false, false);
        }

        public Options withThreads(int threads) {
            return new Options(device, threads, maxIsa, reproducible, simpleKernels);
        }

        public Options withMaxIsa(Isa maxIsa) {
            return new Options(device, threads, maxIsa, reproducible, simpleKernels);
        }

        public Options withReproducible(boolean reproducible) {
            return new Options(device, threads, maxIsa, reproducible, simpleKernels);
        }

        public Options withSimpleKernels(boolean simpleKernels) {
            return new Options(device, threads, maxIsa, reproducible, simpleKernels);
        }
    }

    private final MemorySegment handle;
    private final Cleaner.Cleanable cleanable;
    private final Device device;
    private final int threads;
    private final Isa isa;
    private final int flags;
    private final Workspace workspace;
    private final Object lifecycle = new Object();
    private volatile boolean closed;
    private volatile boolean hints = true;
    // The thread inside a call on this context or holding a workspace frame open; null when none. Set by a
    // compare-and-set from null, so two threads can never both hold it.
    private volatile Thread user;
    // How many calls and frames the user has open (nested: a kernel call inside a frame); only the user touches it.
    private int userDepth;

    private static final VarHandle USER;

    static {
        try {
            USER = MethodHandles.lookup().findVarHandle(Context.class, "user", Thread.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private Context(MemorySegment handle, Device device, int threads, Isa isa, int flags) {
        this.handle = handle;
        this.device = device;
        this.threads = threads;
        this.isa = isa;
        this.flags = flags;
        this.workspace = new Workspace(this);
        long address = handle.address();
        this.cleanable = CLEANER.register(this, () -> moe4j_h.moe4j_context_destroy(MemorySegment.ofAddress(address)));
    }

    /** A CPU context with all hardware threads and the best ISA path. */
    public static Context create() {
        return create(Options.cpu());
    }

    /**
     * Creates a context.
     *
     * @throws Moe4jException if the native side rejects the options (e.g. a CUDA device that does not
     *     exist, or the CUDA backend requested from the CPU-only library)
     * @throws UnsatisfiedLinkError if the native library cannot be loaded
     */
    public static Context create(Options options) {
        NativeLibrary.capabilities();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment opts = moe4j_context_options.allocate(arena);
            moe4j_context_options.backend(opts, options.device().backend().code());
            moe4j_context_options.device(opts, options.device().ordinal());
            moe4j_context_options.threads(opts, options.threads());
            moe4j_context_options.max_isa(
                    opts,
                    options.maxIsa() == null
                            ? moe4j_h.MOE4J_ISA_BEST()
                            : options.maxIsa().code());
            moe4j_context_options.flags(
                    opts,
                    (options.reproducible() ? moe4j_h.MOE4J_CONTEXT_REPRODUCIBLE() : 0)
                            | (options.simpleKernels() ? moe4j_h.MOE4J_CONTEXT_SIMPLE_KERNELS() : 0));
            MemorySegment out = arena.allocate(ValueLayout.ADDRESS);
            NativeLibrary.check(moe4j_h.moe4j_context_create(opts, out), "moe4j_context_create");
            MemorySegment handle = out.get(ValueLayout.ADDRESS, 0);
            MemorySegment info = moe4j_context_info.allocate(arena);
            int status = moe4j_h.moe4j_context_query(handle, info);
            if (status != moe4j_h.MOE4J_OK()) {
                Moe4jException failure = new Moe4jException(status, "moe4j_context_query", NativeLibrary.lastError());
                moe4j_h.moe4j_context_destroy(handle);
                throw failure;
            }
            return new Context(
                    handle,
                    options.device(),
                    moe4j_context_info.threads(info),
                    Isa.of(moe4j_context_info.isa(info)),
                    moe4j_context_info.flags(info));
        }
    }

    /**
     * Makes a native call on this context: marks the calling thread as the context's user for the call's duration,
     * hands {@code nativeCall} the native {@code moe4j_context*}, and {@linkplain NativeLibrary#check checks} the
     * status it returns (timed when a {@link Profiler} is active). For kernel wrappers: every call of a kernel on a
     * context goes through here, its argument descriptors built before (a profiler times what nativeCall does as the
     * native call's).
     *
     * @param function the C function called, for messages
     * @param nativeCall makes the downcall with the handle and returns its status
     * @throws IllegalStateException if the context is closed, or another thread is using it (see the class doc)
     * @throws Moe4jException if the native call fails
     */
    public void call(String function, ToIntFunction<MemorySegment> nativeCall) {
        acquire(function);
        try {
            MemorySegment ctx = handle();
            // a CPU context's calls have no device work to wait for: no second look at the thread's profiler
            Profiler profiler = device.isCpu() ? null : Profiler.current();
            boolean wait = profiler != null && profiler.waitsForDevice();
            NativeLibrary.call(function, () -> {
                int status = nativeCall.applyAsInt(ctx);
                return wait && status == moe4j_h.MOE4J_OK() ? moe4j_h.moe4j_synchronize(ctx) : status;
            });
        } finally {
            release();
        }
    }

    /**
     * Marks the calling thread as this context's user (again, when it is already: calls nest inside frames), or throws
     * if another thread is. Every acquire is paired with one {@link #release} on the same thread.
     */
    void acquire(String what) {
        Thread me = Thread.currentThread();
        if (user == me) {
            userDepth++;
            return;
        }
        if (!USER.compareAndSet(this, null, me)) throw inUse(what, me);
        userDepth = 1;
    }

    void release() {
        if (--userDepth == 0) user = null;
    }

    private IllegalStateException inUse(String what, Thread me) {
        Thread other = user;
        String by = other == null ? "another thread (which has just let it go)" : describe(other);
        return new IllegalStateException(this + " is in use by " + by + " while " + describe(me) + " tried " + what
                + ": a context is used by one thread at a time (see Context's thread-safety)");
    }

    private static String describe(Thread t) {
        return "thread \"" + t.getName() + "\" (id " + t.threadId() + ")";
    }

    /** The native {@code moe4j_context*}, for kernel wrappers (prefer {@link #call}, which checks the thread rule). */
    public MemorySegment handle() {
        if (closed) throw new IllegalStateException("context on " + device + " is closed");
        return handle;
    }

    public Device device() {
        return device;
    }

    /** Worker threads including the caller. */
    public int threads() {
        return threads;
    }

    /** The CPU path this context's kernels take. */
    public Isa isa() {
        return isa;
    }

    /**
     * Whether {@link dev.moe4j.kernels.Prefetch} hints given on this context reach its worker threads: true unless
     * {@link #enableHints} turned them off, when they return at once. Results are the same either way.
     */
    public boolean hintsEnabled() {
        return hints;
    }

    /**
     * Turns {@link dev.moe4j.kernels.Prefetch} hints on this context on or off, for measuring what they gain (bench
     * generate alternates them step by step) or to keep idle threads idle. Any thread may call it; calls on the context
     * made after it returns see it.
     */
    public void enableHints(boolean on) {
        hints = on;
    }

    /** Whether results are independent of batching (see {@link Options#reproducible}). */
    public boolean reproducible() {
        return (flags & moe4j_h.MOE4J_CONTEXT_REPRODUCIBLE()) != 0;
    }

    /** Whether this CUDA context runs the simple kernels (see {@link Options#simpleKernels}). */
    public boolean simpleKernels() {
        return (flags & moe4j_h.MOE4J_CONTEXT_SIMPLE_KERNELS()) != 0;
    }

    /**
     * Which kernel variant this context's calls ran since its creation or the last {@link #resetKernelVariants()}:
     * one entry per distinct (kernel, variant, reason), in the order each was first seen. A call counts once it has
     * run (CPU) or been enqueued (CUDA); calls rejected by validation do not count. Observability for tests, reports
     * and logs: a CUDA context that fell back from its tuned kernels says so here, with the reason.
     *
     * <p>Thread-safety: like a kernel call on this context, not concurrently with another call on it. Host
     * bookkeeping only: it never waits for the device.
     *
     * @return an immutable list, empty when nothing ran
     * @throws IllegalStateException if the context is closed
     * @throws Moe4jException if the native call fails (it does not for a valid context)
     */
    public List<KernelVariant> kernelVariants() {
        MemorySegment ctx = handle();
        acquire("moe4j_context_kernel_variants");
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment count = arena.allocate(ValueLayout.JAVA_INT);
            NativeLibrary.check(
                    moe4j_h.moe4j_context_kernel_variants(ctx, MemorySegment.NULL, 0, count),
                    "moe4j_context_kernel_variants");
            int n = count.get(ValueLayout.JAVA_INT, 0);
            if (n == 0) return List.of();
            MemorySegment out = moe4j_kernel_variant.allocateArray(n, arena);
            NativeLibrary.check(
                    moe4j_h.moe4j_context_kernel_variants(ctx, out, n, count), "moe4j_context_kernel_variants");
            List<KernelVariant> variants = new ArrayList<>(n);
            for (int i = 0; i < count.get(ValueLayout.JAVA_INT, 0); i++) {
                MemorySegment v = moe4j_kernel_variant.asSlice(out, i);
                variants.add(new KernelVariant(
                        moe4j_kernel_variant.kernel(v).getString(0),
                        moe4j_kernel_variant.variant(v).getString(0),
                        moe4j_kernel_variant.reason(v).getString(0),
                        moe4j_kernel_variant.calls(v)));
            }
            return List.copyOf(variants);
        } finally {
            release();
        }
    }

    /**
     * Forgets the counts {@link #kernelVariants()} reports. Thread-safety as for {@link #kernelVariants()}.
     *
     * @throws IllegalStateException if the context is closed
     */
    public void resetKernelVariants() {
        call("moe4j_context_reset_kernel_variants", moe4j_h::moe4j_context_reset_kernel_variants);
    }

    /** This context's scratch memory (see {@link Workspace}); used by kernel wrappers and layers. */
    public Workspace workspace() {
        if (closed) throw new IllegalStateException("context on " + device + " is closed");
        return workspace;
    }

    public boolean isClosed() {
        return closed;
    }

    /**
     * Runs action with the native handle if this context is open, holding off {@link #close} until it returns: for
     * cleanup that another thread does through the context (a cleaner freeing forgotten device memory).
     *
     * @return whether the context was open and action ran
     */
    public boolean whileOpen(java.util.function.Consumer<MemorySegment> action) {
        synchronized (lifecycle) {
            if (closed) return false;
            action.accept(handle);
            return true;
        }
    }

    /**
     * Arms a fault on the native context ({@code moe4j_context_inject_fault}): for tests of failure handling only, so
     * not public; tests reach it through their own helper in this package.
     *
     * @param fault a {@code moe4j_fault} value
     * @param n the allocation (from 1) or task (from 0) it hits; 0 with {@code MOE4J_FAULT_NONE}
     */
    void injectFault(int fault, long n) {
        call("moe4j_context_inject_fault", h -> moe4j_h.moe4j_context_inject_fault(h, fault, n));
    }

    /**
     * Destroys the native context and joins its threads; later calls throw {@link IllegalStateException}. Idempotent.
     *
     * @throws IllegalStateException if another thread is using the context (nothing is closed then)
     */
    @Override
    public void close() {
        synchronized (lifecycle) {
            if (closed) return;
            acquire("to close it");
            try {
                workspace.release(); // device chunks are freed through the context, so before it goes
                closed = true;
                cleanable.clean();
            } finally {
                release();
            }
        }
    }

    @Override
    public String toString() {
        return "Context[" + device + ", threads=" + threads + ", isa=" + isa.nativeName()
                + (reproducible() ? ", reproducible" : "") + (simpleKernels() ? ", simple kernels" : "")
                + (closed ? ", closed" : "") + "]";
    }
}
