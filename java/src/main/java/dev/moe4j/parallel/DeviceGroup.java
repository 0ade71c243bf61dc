package dev.moe4j.parallel;

import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.NativeLibrary;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Semaphore;
import java.util.function.IntFunction;

/**
 * N devices for expert parallelism, grouped into nodes (devices of one node share a fast interconnect; EPLB keeps
 * expert groups within a node). Each device has its own native context (reproducible, so results do not depend
 * on how tokens are spread) and one worker thread that runs everything submitted to it, in order. CPU devices each
 * get a share of the machine's hardware threads; their memory is host memory. CPU devices never oversubscribe the
 * machine: work submitted to one holds as many of the hardware threads as its context uses while it runs, so with
 * more CPU devices than hardware threads some wait their turn instead of sharing cores.
 *
 * <p>Thread-safety: {@link #submit} may be called from any thread; a device's context is used only on its worker.
 * {@link #close} waits for submitted work, then frees every context.
 */
public final class DeviceGroup implements AutoCloseable {
    private final int nodes;
    private final List<Context> contexts = new ArrayList<>();
    private final List<ExecutorService> workers = new ArrayList<>();
    private final Semaphore cores; // the machine's hardware threads, for CPU devices; null for CUDA devices

    private DeviceGroup(int nodes, Semaphore cores) {
        this.nodes = nodes;
        this.cores = cores;
    }

    /**
     * CPU devices: each with {@code max(1, hardware threads / devices)} threads.
     *
     * @param nodes how many nodes the devices form (devices divide by it)
     */
    public static DeviceGroup cpu(int devices, int nodes) {
        int hardware = NativeLibrary.capabilities().cpuThreads();
        int threads = Math.max(1, hardware / Math.max(1, devices));
        return create(
                devices,
                nodes,
                new Semaphore(hardware, true),
                d -> Context.Options.cpu().withThreads(threads));
    }

    /**
     * CUDA devices 0 .. devices-1 (libmoe4j_cuda must be loaded). Their weights live in GPU memory; tokens reach
     * them and results return by copies.
     *
     * @throws dev.moe4j.runtime.Moe4jException if a device does not exist
     */
    public static DeviceGroup cuda(int devices, int nodes) {
        return create(devices, nodes, null, d -> Context.Options.cuda(d));
    }

    private static DeviceGroup create(int devices, int nodes, Semaphore cores, IntFunction<Context.Options> options) {
        if (devices <= 0 || nodes <= 0 || devices % nodes != 0)
            throw new IllegalArgumentException(
                    "devices (" + devices + ") must be a positive multiple of nodes (" + nodes + ")");
        DeviceGroup group = new DeviceGroup(nodes, cores);
        try {
            for (int d = 0; d < devices; d++) {
                group.contexts.add(Context.create(options.apply(d).withReproducible(true)));
                int index = d;
                group.workers.add(Executors.newSingleThreadExecutor(r -> {
                    Thread t = new Thread(r, "moe4j-device-" + index);
                    t.setDaemon(true);
                    return t;
                }));
            }
        } catch (RuntimeException e) {
            group.close();
            throw e;
        }
        return group;
    }

    public int size() {
        return contexts.size();
    }

    public int nodes() {
        return nodes;
    }

    /** The node of device d. */
    public int nodeOf(int device) {
        return device / (size() / nodes);
    }

    /** Device d's context; use it only in work submitted to device d. */
    public Context context(int device) {
        return contexts.get(device);
    }

    /** Whether the devices are CPU devices (their memory is host memory). */
    public boolean isCpu() {
        return cores != null;
    }

    /**
     * Runs work on device d's worker thread; on a CPU device it first takes as many hardware threads as the device's
     * context uses, and gives them back when the work ends.
     */
    public <T> CompletableFuture<T> submit(int device, Callable<T> work) {
        CompletableFuture<T> result = new CompletableFuture<>();
        int threads = cores == null ? 0 : contexts.get(device).threads();
        workers.get(device).execute(() -> {
            try {
                if (threads > 0) cores.acquire(threads);
                try {
                    result.complete(work.call());
                } finally {
                    if (threads > 0) cores.release(threads);
                }
            } catch (Throwable t) {
                result.completeExceptionally(t);
            }
        });
        return result;
    }

    @Override
    public void close() {
        for (ExecutorService w : workers) w.close(); // waits for submitted work
        for (Context c : contexts) c.close();
        workers.clear();
        contexts.clear();
    }

    @Override
    public String toString() {
        if (!contexts.isEmpty() && !contexts.getFirst().device().isCpu())
            return "DeviceGroup[" + size() + " CUDA devices, " + nodes + " nodes]";
        return "DeviceGroup[" + size() + " CPU devices, " + nodes + " nodes, "
                + (contexts.isEmpty() ? 0 : contexts.getFirst().threads()) + " threads each]";
    }
}
