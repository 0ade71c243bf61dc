package dev.moe4j.parallel;

import dev.moe4j.internal.Buffers;
import dev.moe4j.kernels.Copy;
import dev.moe4j.kernels.Dispatch;
import dev.moe4j.kernels.ExpertFfn;
import dev.moe4j.kernels.Quantization;
import dev.moe4j.kernels.ScaleFormat;
import dev.moe4j.model.DenseMlp;
import dev.moe4j.model.MoeBlock;
import dev.moe4j.placement.Placement;
import dev.moe4j.routing.Gate;
import dev.moe4j.routing.Routing;
import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.Device;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.DeviceMemory;
import dev.moe4j.tensor.QuantizedGroups;
import dev.moe4j.tensor.QuantizedTensor;
import dev.moe4j.tensor.Tensor;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.function.Supplier;

/**
 * One MoE layer with its routed experts spread over a {@link DeviceGroup} by a {@link Placement}.
 *
 * <p>A step: the gate routes on the caller's context; the tokens are quantized to FP8 once (per-token scales, as
 * DeepEP's FP8 dispatch sends them) in the memory of the caller's device, the step's home; a {@link DispatchPlan}
 * assigns every (token, expert) pair to a replica, each expert's pairs split evenly over its replicas; the home
 * gathers each device's rows ({@link Dispatch#gather}) and one copy per operand moves them to the device unless it
 * shares the home's memory (device to device between GPUs); every device runs all its experts in one fused FFN call,
 * concurrently, and returns bf16 rows into one home buffer; meanwhile the shared experts run on the home GPU (or,
 * with CPU devices and a CPU home, on the CPU device with the fewest rows, so the cores are not oversubscribed);
 * then {@link Dispatch#combine} adds, per token, the shared output and the routed outputs weighted by rank order.
 * Device contexts are reproducible and the combine order is fixed, so the output is the same bits for any device
 * count and placement. Each device context and the caller's have their own stream: work handed from one to another
 * waits for the producer's stream first (a synchronization per device and step where a GPU is involved).
 *
 * <p>{@link #rebalance} installs a new placement between steps, copying only the expert weights that a device did
 * not hold before; a step always sees one whole placement. A device that fails fails the step with a
 * {@link DeviceException} naming it, and {@code out} is left untouched.
 *
 * <p>Not thread-safe: one thread drives steps and rebalances.
 */
public final class ExpertParallelMoe implements MoeBlock, AutoCloseable {
    /**
     * What one step did.
     *
     * @param tokensPerDevice distinct tokens dispatched to each device
     * @param rowsPerDevice expert rows each device computed (one per assignment, plus alignment padding)
     * @param nanosPerDevice time each device spent on its rows (copies in and out, and the FFN)
     * @param bytesDispatched FP8 activations and scales sent to devices (a token counts once per device)
     * @param bytesReturned bf16 rows sent back
     * @param balance mean over max of the assignments per device (1 is perfect)
     * @param waitNanos time the calling thread spent waiting for devices (after its own share of the work)
     * @param nanos the step's wall time
     */
    public record StepStats(
            int[] tokensPerDevice,
            int[] rowsPerDevice,
            long[] nanosPerDevice,
            long bytesDispatched,
            long bytesReturned,
            double balance,
            long waitNanos,
            long nanos) {}

    /**
     * What a rebalance moved.
     *
     * @param movedExperts expert copies written to a device that did not hold them
     * @param movedBytes their FP8 weights and scales
     */
    public record RebalanceReport(int movedExperts, long movedBytes) {}

    /** The weights of one device's slots, in memory of that device. */
    private record DeviceWeights(
            QuantizedGroups gate, QuantizedGroups up, QuantizedGroups down, List<DeviceMemory> memory) {
        void close() {
            for (DeviceMemory m : memory) m.close();
        }
    }

    private record State(Placement placement, int layer, DeviceWeights[] devices) {}

    private final DeviceGroup group;
    private final Gate gate;
    private final QuantizedGroups hostGate, hostUp, hostDown;
    private final DenseMlp shared;
    private final int alignment, hidden;
    // Per device: its own buffers (slots 0-3: gathered codes, scales, grouped layout, output rows), in host memory for
    // a CPU device, else in its GPU's memory, where slots from DEVICE_SLOTS on serve a step whose home is that GPU.
    // Home slots: x quantized (codes, scales), shared output, every device's output rows, the combine's index and
    // weights, then per device its gathered codes, scales and gather index. Host tables: the combine's index and
    // weights, then per device the gather index and the grouped layout.
    private static final int DEVICE_SLOTS = 4;
    private final Buffers[] deviceBuffers;
    private final Buffers hostBuffers, tables;
    private volatile State state;
    private StepStats lastStep;
    private CompletableFuture<Staged> pending; // a rebalance being staged (the driving thread's)
    private long lastSwitchNanos;
    private final Context[] staging;
    private ExecutorService stager;

    /**
     * @param hostGate every logical expert's gate_proj, one group per expert, E4M3 [I, H] with block scales, in host
     *     memory (the source the devices' copies are made from, expert by expert; a checkpoint's memory map, say)
     * @param hostUp like hostGate
     * @param hostDown one group per expert, E4M3 [H, I] with block scales
     * @param shared the shared experts, run on the home (their weights in its memory: host memory for a CPU home, the
     *     home GPU's for a GPU home, see {@link DenseMlp#to}), or null
     * @param placement the initial placement; {@code layer} selects its row
     */
    public ExpertParallelMoe(
            DeviceGroup group,
            Gate gate,
            QuantizedGroups hostGate,
            QuantizedGroups hostUp,
            QuantizedGroups hostDown,
            DenseMlp shared,
            Placement placement,
            int layer,
            int alignment) {
        this.group = Objects.requireNonNull(group, "group");
        this.gate = Objects.requireNonNull(gate, "gate");
        this.hostGate = Objects.requireNonNull(hostGate, "hostGate");
        this.hostUp = Objects.requireNonNull(hostUp, "hostUp");
        this.hostDown = Objects.requireNonNull(hostDown, "hostDown");
        this.shared = shared;
        if (alignment <= 0) throw new IllegalArgumentException("alignment must be positive, got " + alignment);
        this.alignment = alignment;
        int experts = gate.config().experts();
        for (QuantizedGroups w : List.of(hostGate, hostUp, hostDown))
            if (w.count() != experts)
                throw new IllegalArgumentException("expert weights must hold " + experts + " experts, got " + w);
        hidden = Math.toIntExact(hostGate.inFeatures());
        int devices = group.size(), homeSlots = 6 + 3 * devices;
        hostBuffers = new Buffers(homeSlots);
        tables = new Buffers(2 + 2 * devices);
        deviceBuffers = new Buffers[devices];
        for (int d = 0; d < devices; d++) deviceBuffers[d] = new Buffers(group.context(d), DEVICE_SLOTS + homeSlots);
        staging = new Context[devices];
        state = install(placement, layer);
    }

    /** The placement steps use now. */
    public Placement placement() {
        return state.placement();
    }

    /** The row of {@link #placement()} this layer uses. */
    public int layer() {
        return state.layer();
    }

    /** Statistics of the last completed step, or null before the first. */
    public StepStats lastStep() {
        return lastStep;
    }

    @Override
    public Gate gate() {
        return gate;
    }

    /**
     * Routes and runs T tokens.
     *
     * @param x F32 or BF16 [T, hidden]
     * @param out F32 [T, hidden], contiguous; untouched if the step fails
     * @throws DeviceException if a device fails
     */
    @Override
    public void forward(Context ctx, Tensor x, Routing routing, Tensor out) {
        gate.route(ctx, x, routing);
        forwardRouted(ctx, x, routing, out);
    }

    /**
     * Runs T tokens with routing already decided (possibly edited by a capacity limit). x and out live in the memory
     * of ctx's device, the step's home: host memory for a CPU context, or a CUDA device of the group. With a CUDA
     * home the dispatch and the combine stay on the GPUs (device-to-device copies, peer-to-peer where the GPUs
     * allow it), and the shared experts run on the home GPU.
     *
     * @throws IllegalArgumentException if x or out is not in the home memory, the home GPU is not in the group, or
     *     the shared experts' weights are not in the home memory
     */
    public void forwardRouted(Context ctx, Tensor x, Routing routing, Tensor out) {
        Objects.requireNonNull(x, "x");
        int t = routing.tokens(), k = routing.k();
        if (x.rank() != 2 || x.shape(0) != t || x.shape(1) != hidden)
            throw new IllegalArgumentException("x must be [" + t + ", " + hidden + "], got " + x);
        if (out.dtype() != DType.F32 || !Arrays.equals(out.shape(), x.shape()) || !out.isContiguous())
            throw new IllegalArgumentException(
                    "out must be a contiguous F32 " + Arrays.toString(x.shape()) + ", got " + out);
        Device home = ctx.device();
        if (!x.device().equals(home) || !out.device().equals(home))
            throw new IllegalArgumentException("x and out must be in the memory of " + home + " (ctx's device), got "
                    + x.device() + " and " + out.device());
        int homeMember = home.isCpu() ? -1 : member(home);
        if (shared != null && !shared.isInMemoryOf(ctx))
            throw new IllegalArgumentException("the shared experts run on the step's home, " + home
                    + ", but their weights are not in its memory (weights in host memory need a CPU home; for a GPU"
                    + " home copy them there with DenseMlp.to)");
        long start = System.nanoTime();
        switchIfStaged();
        State s = state;
        int scaleCols = hidden / QuantizedTensor.BLOCK;
        QuantizedTensor xq = new QuantizedTensor(
                home(homeMember, 0, DType.E4M3, t, hidden), home(homeMember, 1, DType.F32, t, scaleCols), 1);
        Quantization.perToken(ctx, x, xq.data(), xq.scales(), ScaleFormat.FP32);
        DispatchPlan plan = new DispatchPlan(routing, s.placement(), s.layer(), alignment);

        // every device's output rows, one after another, in home memory
        int devices = group.size();
        int[] offset = new int[devices + 1];
        for (int d = 0; d < devices; d++) offset[d + 1] = offset[d] + plan.rows(d);
        Tensor rows = home(homeMember, 3, DType.BF16, Math.max(1, offset[devices]), hidden);

        // dispatch: gather each device's rows at home (into the device's own buffers when they share the memory),
        // then hand the device its work; gathering device d + 1 overlaps device d's experts
        List<CompletableFuture<Void>> results = new ArrayList<>();
        long[] nanos = new long[devices];
        for (int d = 0; d < devices; d++) {
            int rowCount = plan.rows(d);
            if (rowCount == 0) {
                results.add(CompletableFuture.completedFuture(null));
                continue;
            }
            Tensor tokens = tables.tensor(2 + 2 * d, DType.I32, rowCount),
                    layout = tables.tensor(3 + 2 * d, DType.I32, rowCount);
            for (int r = 0; r < rowCount; r++) {
                tokens.segment().setAtIndex(ValueLayout.JAVA_INT, r, plan.rowToken(d, r));
                layout.segment().setAtIndex(ValueLayout.JAVA_INT, r, plan.rowSlot(d, r));
            }
            boolean atHome = group.context(d).device().equals(home);
            QuantizedTensor gathered = new QuantizedTensor(
                    atHome
                            ? local(d, 0, DType.E4M3, rowCount, hidden)
                            : home(homeMember, 6 + 3 * d, DType.E4M3, rowCount, hidden),
                    atHome
                            ? local(d, 1, DType.F32, rowCount, scaleCols)
                            : home(homeMember, 7 + 3 * d, DType.F32, rowCount, scaleCols),
                    1);
            Tensor index = toHome(ctx, homeMember, tokens, 8 + 3 * d);
            Dispatch.gather(ctx, xq.data(), index, gathered.data());
            Dispatch.gather(ctx, xq.scales(), index, gathered.scales());
            // Device d's context reads the gathered rows and (below) writes into home memory: on a GPU home, the home
            // context's work so far (these gathers, the previous step's combine) must be done first, since nothing
            // orders two contexts' streams. A no-op for a CPU home.
            Copy.synchronize(ctx);
            Tensor target = rows.slice(0, offset[d], rowCount);
            int device = d;
            DeviceWeights weights = s.devices()[d];
            results.add(group.submit(d, () -> {
                runDevice(device, gathered, layout, target, weights, nanos);
                return null;
            }));
        }
        Tensor sharedOut = null;
        RuntimeException sharedFailure = null;
        CompletableFuture<Void> sharedOnDevice = null;
        if (shared != null) {
            Tensor sharedTarget = sharedOut = home(homeMember, 2, DType.F32, t, hidden);
            if (home.isCpu() && group.isCpu()) {
                // CPU devices hold the machine's cores: the shared experts (host weights, readable from any CPU
                // context) queue behind the routed rows of the device with the fewest, rather than running on the
                // caller's threads beside the devices and oversubscribing the cores
                int lightest = 0;
                for (int d = 1; d < devices; d++) if (plan.rows(d) < plan.rows(lightest)) lightest = d;
                Context device = group.context(lightest);
                sharedOnDevice = group.submit(lightest, () -> {
                    shared.apply(device, x, sharedTarget);
                    return null;
                });
            } else {
                try {
                    shared.apply(ctx, x, sharedOut);
                } catch (RuntimeException e) {
                    sharedFailure = e;
                }
            }
        }
        long waitStart = System.nanoTime();
        DeviceException failure = null;
        for (int d = 0; d < devices; d++) {
            try {
                results.get(d).get();
            } catch (ExecutionException e) {
                if (failure == null) failure = new DeviceException(d, e.getCause());
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted while waiting for device " + d, e);
            }
        }
        if (sharedOnDevice != null) {
            try {
                sharedOnDevice.get();
            } catch (ExecutionException e) {
                sharedFailure =
                        e.getCause() instanceof RuntimeException r ? r : new IllegalStateException(e.getCause());
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted while waiting for the shared experts", e);
            }
        }
        long waited = System.nanoTime() - waitStart;
        if (failure != null) throw failure;
        if (sharedFailure != null) throw sharedFailure;

        // combine: out[t] = shared[t] + Σ_j weight[t, j] · rows[row of (t, j)], ranks in order, at home
        Tensor index = tables.tensor(0, DType.I32, t, k), weights = tables.tensor(1, DType.F32, t, k);
        for (int i = 0; i < t; i++)
            for (int j = 0; j < k; j++) {
                int d = plan.device(i, j);
                index.segment()
                        .setAtIndex(ValueLayout.JAVA_INT, (long) i * k + j, d < 0 ? -1 : offset[d] + plan.row(i, j));
                weights.segment().setAtIndex(ValueLayout.JAVA_FLOAT, (long) i * k + j, routing.weight(i, j));
            }
        Dispatch.combine(
                ctx, rows, toHome(ctx, homeMember, index, 4), toHome(ctx, homeMember, weights, 5), sharedOut, out);

        int[] rowsPerDevice = new int[devices];
        long dispatched = 0, returned = 0;
        int[] tokensPerDevice = plan.tokensPerDevice();
        double maxRows = 0, sumRows = 0;
        for (int d = 0; d < devices; d++) {
            rowsPerDevice[d] = plan.rows(d);
            dispatched += (long) tokensPerDevice[d] * (hidden + 4L * scaleCols);
            returned += 2L * rowsPerDevice[d] * hidden;
            maxRows = Math.max(maxRows, rowsPerDevice[d]);
            sumRows += rowsPerDevice[d];
        }
        lastStep = new StepStats(
                tokensPerDevice,
                rowsPerDevice,
                nanos,
                dispatched,
                returned,
                maxRows == 0 ? 1 : sumRows / devices / maxRows,
                waited,
                System.nanoTime() - start);
    }

    /** The group member whose device is home; a GPU home must be one of the group's devices. */
    private int member(Device home) {
        for (int d = 0; d < group.size(); d++) if (group.context(d).device().equals(home)) return d;
        throw new IllegalArgumentException(home + " (the step's home: ctx's device) is not in the device group");
    }

    /** Scratch in the step's home memory: host buffers, or slots of the home GPU's scratch beside the device's own. */
    private Tensor home(int homeMember, int slot, DType dtype, long... shape) {
        return homeMember < 0
                ? hostBuffers.tensor(slot, dtype, shape)
                : deviceBuffers[homeMember].tensor(DEVICE_SLOTS + slot, dtype, shape);
    }

    /** Scratch in device d's memory (slots below DEVICE_SLOTS). */
    private Tensor local(int d, int slot, DType dtype, long... shape) {
        return deviceBuffers[d].tensor(slot, dtype, shape);
    }

    /** A host table in home memory: itself for a CPU home, else copied into home slot {@code slot}. */
    private Tensor toHome(Context ctx, int homeMember, Tensor table, int slot) {
        if (homeMember < 0) return table;
        Tensor t = home(homeMember, slot, table.dtype(), table.shape());
        Copy.apply(ctx, table, t);
        return t;
    }

    /**
     * On device d's worker: bring the gathered rows and the grouped layout into the device's memory (unless they are
     * there), run its experts, and leave the bf16 output rows in {@code target} (home memory) by one copy, or
     * directly where the device's memory is home.
     */
    private void runDevice(
            int d, QuantizedTensor gathered, Tensor layout, Tensor target, DeviceWeights w, long[] nanos) {
        long t0 = System.nanoTime();
        Context ctx = group.context(d);
        Device device = ctx.device();
        int rowCount = Math.toIntExact(layout.shape(0)), scaleCols = hidden / QuantizedTensor.BLOCK;
        QuantizedTensor xs = gathered;
        if (!gathered.data().device().equals(device)) {
            xs = new QuantizedTensor(
                    local(d, 0, DType.E4M3, rowCount, hidden), local(d, 1, DType.F32, rowCount, scaleCols), 1);
            Copy.apply(ctx, gathered.data(), xs.data());
            Copy.apply(ctx, gathered.scales(), xs.scales());
        }
        Tensor deviceLayout = layout;
        if (!layout.device().equals(device)) {
            deviceLayout = local(d, 2, DType.I32, rowCount);
            Copy.apply(ctx, layout, deviceLayout);
        }
        Tensor ys = target.device().equals(device) ? target : local(d, 3, DType.BF16, rowCount, hidden);
        ExpertFfn.contiguous(ctx, xs, w.gate(), w.up(), w.down(), deviceLayout, alignment, ys);
        if (ys != target) Copy.apply(ctx, ys, target);
        Copy.synchronize(ctx); // the home context reads target next: the device's work must be done
        nanos[d] = System.nanoTime() - t0;
    }

    /**
     * Switches to a new placement between steps (call it from the thread that drives the steps, never during
     * one). Every device slot whose expert changes is rewritten in place: from another slot of the same device when
     * the device already held that expert (staged first if that slot changes too), otherwise from the host weights,
     * which counts as moved. The next step sees the whole new placement.
     */
    public RebalanceReport rebalance(Placement next, int layer) {
        check(next, layer);
        if (pending != null) throw new IllegalStateException("a rebalance is being staged (rebalanceAsync)");
        State old = state;
        int per = next.slotsPerDevice(), moved = 0;
        long bytes = 0;
        List<DeviceWeights> stagedAll = new ArrayList<>();
        try {
            for (int d = 0; d < group.size(); d++) {
                Context ctx = group.context(d);
                DeviceWeights w = old.devices()[d];
                int[] before = Arrays.copyOfRange(old.placement().phy2log()[old.layer()], d * per, (d + 1) * per);
                int[] after = Arrays.copyOfRange(next.phy2log()[layer], d * per, (d + 1) * per);
                // stage the old contents of changing slots that another slot will copy from
                DeviceWeights[] staged = new DeviceWeights[per];
                for (int s = 0; s < per; s++) {
                    if (after[s] == before[s]) continue;
                    int source = indexOf(before, after[s], per);
                    if (source < 0 || after[source] == before[source] || staged[source] != null) continue;
                    staged[source] = weights(ctx, 1);
                    stagedAll.add(staged[source]);
                    copyExpert(ctx, w, source, staged[source], 0);
                }
                for (int s = 0; s < per; s++) {
                    if (after[s] == before[s]) continue;
                    int rewritten = indexOfChanged(after, before, after[s], s);
                    int source = indexOf(before, after[s], per);
                    if (rewritten >= 0) {
                        copyExpert(ctx, w, rewritten, w, s); // a second new replica: copy the first
                    } else if (source >= 0) {
                        if (after[source] == before[source]) copyExpert(ctx, w, source, w, s);
                        else copyExpert(ctx, staged[source], 0, w, s);
                    } else {
                        bytes += copy(ctx, hostGate, after[s], w.gate(), s)
                                + copy(ctx, hostUp, after[s], w.up(), s)
                                + copy(ctx, hostDown, after[s], w.down(), s);
                        moved++;
                    }
                }
            }
        } finally {
            for (DeviceWeights w : stagedAll) w.close();
        }
        state = new State(next, layer, old.devices());
        return new RebalanceReport(moved, bytes);
    }

    private static int indexOf(int[] experts, int e, int limit) {
        for (int i = 0; i < limit; i++) if (experts[i] == e) return i;
        return -1;
    }

    /** A slot below limit that this rebalance rewrote to expert e, or -1. */
    private static int indexOfChanged(int[] after, int[] before, int e, int limit) {
        for (int i = 0; i < limit; i++) if (after[i] == e && after[i] != before[i]) return i;
        return -1;
    }

    /**
     * Rebalances in the background: {@code next} is computed (on a staging thread) and the new placement's weights
     * are staged in a second copy of every device's slots — from the device's current slots where it already holds
     * an expert, from the host weights otherwise (which counts as moved) — through staging contexts of their own,
     * while steps go on with the current placement. The first step that starts after the staging is done switches to
     * the new placement and frees the old slots: a step runs wholly on one placement, bitwise as it would after
     * {@link #rebalance}. Call it from the thread that drives the steps; one at a time.
     *
     * <p>Memory: each device holds two copies of its slots while a rebalance is staged.
     *
     * @param next supplies the new placement (run on the staging thread: computing it does not stall steps either)
     * @return completes with what moved once the new placement is staged (it is switched to at the next step), or
     *     exceptionally if staging failed (the current placement stays)
     * @throws IllegalStateException if a rebalance is being staged already
     */
    public CompletableFuture<RebalanceReport> rebalanceAsync(Supplier<Placement> next, int layer) {
        Objects.requireNonNull(next, "next");
        if (pending != null) throw new IllegalStateException("a rebalance is being staged already");
        State old = state;
        pending = CompletableFuture.supplyAsync(() -> stage(old, next.get(), layer), stager());
        return pending.thenApply(Staged::report);
    }

    /** Whether a rebalance is being staged and not yet switched to. */
    public boolean rebalancing() {
        return pending != null;
    }

    /** At the start of a step: switches to a staged placement once its staging is done. */
    private void switchIfStaged() {
        CompletableFuture<Staged> f = pending;
        if (f == null || !f.isDone()) return;
        long t0 = System.nanoTime();
        pending = null;
        if (f.isCompletedExceptionally()) return; // the caller's future reports it; the old placement stays
        State old = state;
        state = f.join().state();
        // no step uses the old slots any more: the staging thread frees them (a large free is not free)
        stager().execute(() -> {
            for (DeviceWeights w : old.devices()) w.close();
        });
        lastSwitchNanos = System.nanoTime() - t0;
    }

    /** How long the last switch to a staged placement held the step that made it. */
    public long lastSwitchNanos() {
        return lastSwitchNanos;
    }

    private record Staged(State state, RebalanceReport report) {}

    private Staged stage(State old, Placement next, int layer) {
        check(next, layer);
        int per = next.slotsPerDevice(), moved = 0;
        long bytes = 0;
        DeviceWeights[] devices = new DeviceWeights[group.size()];
        try {
            for (int d = 0; d < group.size(); d++) {
                Context ctx = stagingContext(d);
                devices[d] = weights(ctx, per);
                int[] before = Arrays.copyOfRange(old.placement().phy2log()[old.layer()], d * per, (d + 1) * per);
                int[] after = Arrays.copyOfRange(next.phy2log()[layer], d * per, (d + 1) * per);
                for (int s = 0; s < per; s++) {
                    int e = after[s], source = indexOf(before, e, per), earlier = indexOf(after, e, s);
                    if (source >= 0) {
                        copyExpert(ctx, old.devices()[d], source, devices[d], s);
                    } else if (earlier >= 0) {
                        copyExpert(ctx, devices[d], earlier, devices[d], s); // a second new replica: copy the first
                    } else {
                        bytes += copy(ctx, hostGate, e, devices[d].gate(), s)
                                + copy(ctx, hostUp, e, devices[d].up(), s)
                                + copy(ctx, hostDown, e, devices[d].down(), s);
                        moved++;
                    }
                }
                Copy.synchronize(ctx); // the step contexts read these next
            }
        } catch (RuntimeException e) {
            for (DeviceWeights w : devices) if (w != null) w.close();
            throw e;
        }
        return new Staged(new State(next, layer, devices), new RebalanceReport(moved, bytes));
    }

    // The staging thread's contexts, one per device (a context is used by one thread at a time: the device's worker
    // has its own), and the thread itself; made at the first rebalanceAsync.
    private Context stagingContext(int d) {
        synchronized (staging) {
            if (staging[d] == null) {
                Device device = group.context(d).device();
                staging[d] =
                        Context.create((device.isCpu() ? Context.Options.cpu() : Context.Options.cuda(device.ordinal()))
                                .withThreads(1)
                                .withReproducible(true));
            }
            return staging[d];
        }
    }

    private synchronized ExecutorService stager() {
        if (stager == null)
            stager = Executors.newSingleThreadExecutor(r -> {
                Thread t = new Thread(r, "moe4j-rebalance-layer-" + state.layer());
                t.setDaemon(true);
                return t;
            });
        return stager;
    }

    private static void copyExpert(Context ctx, DeviceWeights from, int fromSlot, DeviceWeights to, int toSlot) {
        copy(ctx, from.gate(), fromSlot, to.gate(), toSlot);
        copy(ctx, from.up(), fromSlot, to.up(), toSlot);
        copy(ctx, from.down(), fromSlot, to.down(), toSlot);
    }

    private void check(Placement p, int layer) {
        int experts = gate.config().experts();
        if (p.devices() != group.size())
            throw new IllegalArgumentException(
                    "the placement is for " + p.devices() + " devices, the group has " + group.size());
        if (p.experts() != experts)
            throw new IllegalArgumentException(
                    "the placement is for " + p.experts() + " experts, the gate has " + experts);
        if (layer < 0 || layer >= p.layers())
            throw new IllegalArgumentException("layer " + layer + " outside the placement's " + p.layers());
        if (state != null && p.replicas() != state.placement().replicas())
            throw new IllegalArgumentException("the placement has " + p.replicas() + " slots, this layer's devices "
                    + state.placement().replicas());
    }

    /** Device weights for a placement's layer, copied from the host weights. */
    private State install(Placement p, int layer) {
        check(p, layer);
        int per = p.slotsPerDevice();
        DeviceWeights[] devices = new DeviceWeights[group.size()];
        try {
            for (int d = 0; d < group.size(); d++) {
                Context ctx = group.context(d);
                devices[d] = weights(ctx, per);
                for (int s = 0; s < per; s++) {
                    int e = p.phy2log()[layer][d * per + s];
                    copy(ctx, hostGate, e, devices[d].gate(), s);
                    copy(ctx, hostUp, e, devices[d].up(), s);
                    copy(ctx, hostDown, e, devices[d].down(), s);
                }
            }
        } catch (RuntimeException e) {
            for (DeviceWeights w : devices) if (w != null) w.close();
            throw e;
        }
        return new State(p, layer, devices);
    }

    /** Uninitialized weights for {@code slots} experts in the memory of ctx's device (one stack per projection). */
    private DeviceWeights weights(Context ctx, int slots) {
        List<DeviceMemory> memory = new ArrayList<>();
        try {
            return new DeviceWeights(
                    stack(ctx, hostGate, slots, memory),
                    stack(ctx, hostUp, slots, memory),
                    stack(ctx, hostDown, slots, memory),
                    memory);
        } catch (RuntimeException e) {
            for (DeviceMemory m : memory) m.close(); // what was allocated before the failure
            throw e;
        }
    }

    private static QuantizedGroups stack(Context ctx, QuantizedGroups like, int slots, List<DeviceMemory> owner) {
        long[] shape = like.group(0).data().shape(),
                scaleShape = like.group(0).scales().shape();
        DeviceMemory data = DeviceMemory.allocate(ctx, slots * shape[0] * shape[1]);
        owner.add(data);
        DeviceMemory scales = DeviceMemory.allocate(ctx, 4L * slots * scaleShape[0] * scaleShape[1]);
        owner.add(scales);
        return QuantizedGroups.of(new QuantizedTensor(
                data.tensor(DType.E4M3, slots, shape[0], shape[1]),
                scales.tensor(DType.F32, slots, scaleShape[0], scaleShape[1]),
                QuantizedTensor.BLOCK));
    }

    /**
     * Copies group {@code from} of src into group {@code to} of dst (data and scales) with ctx (host to device,
     * or within a device); returns the bytes.
     */
    private static long copy(Context ctx, QuantizedGroups src, int from, QuantizedGroups dst, int to) {
        QuantizedTensor s = src.group(from), d = dst.group(to);
        Copy.apply(ctx, s.data(), d.data());
        Copy.apply(ctx, s.scales(), d.scales());
        return s.data().elementCount() + 4 * s.scales().elementCount();
    }

    /**
     * Frees this layer's weights and buffers on the devices (the device group stays open). Every device is
     * attempted; the first failure (a device whose context was closed first, say) is thrown after.
     */
    @Override
    public void close() {
        RuntimeException first = null;
        if (pending != null) {
            // let the staging finish (it reads the current slots), then drop what it staged
            try {
                for (DeviceWeights w : pending.join().state().devices()) w.close();
            } catch (RuntimeException e) {
                // staging failed: it freed what it had made
            }
            pending = null;
        }
        synchronized (this) {
            if (stager != null) {
                stager.shutdown(); // runs what was queued (frees of replaced slots) first
                try {
                    stager.awaitTermination(1, java.util.concurrent.TimeUnit.MINUTES);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        }
        for (int d = 0; d < group.size(); d++) {
            try {
                state.devices()[d].close();
                deviceBuffers[d].close();
                if (staging[d] != null) staging[d].close(); // after the slots it may have allocated
            } catch (RuntimeException e) {
                if (first == null) first = new DeviceException(d, e);
            }
        }
        if (first != null) throw first;
    }
}
