package dev.moe4j.engine;

import dev.moe4j.kernels.Copy;
import dev.moe4j.kernels.Dispatch;
import dev.moe4j.kernels.Fp8Gemm;
import dev.moe4j.kernels.Logits;
import dev.moe4j.kernels.Q8Gemm;
import dev.moe4j.kernels.Quantization;
import dev.moe4j.kernels.ScaleFormat;
import dev.moe4j.model.Checkpoint;
import dev.moe4j.model.DecoderLayer;
import dev.moe4j.model.DeviceStore;
import dev.moe4j.model.Linear;
import dev.moe4j.model.ModelConfig;
import dev.moe4j.model.MoeLayer;
import dev.moe4j.model.PagedLatentCache;
import dev.moe4j.model.RmsNorm;
import dev.moe4j.parallel.DeviceGroup;
import dev.moe4j.parallel.ExpertParallelMoe;
import dev.moe4j.placement.Eplb;
import dev.moe4j.placement.Placement;
import dev.moe4j.routing.Routing;
import dev.moe4j.runtime.Capabilities;
import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.Device;
import dev.moe4j.runtime.Isa;
import dev.moe4j.runtime.NativeLibrary;
import dev.moe4j.runtime.Workspace;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.DeviceEmulation;
import dev.moe4j.tensor.QuantizedGroups;
import dev.moe4j.tensor.QuantizedTensor;
import dev.moe4j.tensor.Tensor;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.BiConsumer;
import java.util.function.Consumer;

/**
 * A whole DeepSeek-V2 / V2-Lite / V3 model loaded from a Hugging Face checkpoint directory, with its KV cache: token
 * ids in, next-token logits out.
 *
 * <p>{@link #load} reads {@code config.json}, the embeddings, every decoder layer (dense before
 * {@code first_k_dense_replace}, MoE after, {@code moe_layer_freq} honoured), the final norm and the LM head (or the
 * tied embedding). Weights whose stored dtype and layout the kernels take (FP8 linear weights with their block
 * scales, BF16 embeddings and LM head, FP8 routed experts wherever each is stored) are used from the checkpoint's memory
 * map; the rest is converted once into memory the model owns ({@link #memory} tells both apart). Multi-token-prediction
 * layers ({@code num_nextn_predict_layers}) are not run and not loaded.
 *
 * <p>A step ({@link #forward}) takes new tokens for several sequences at once — a whole prompt, a chunk of one, or one
 * decode token each — and runs embeddings, all layers, the final norm and the LM head, returning logits of each
 * sequence's last new token (or of every new token). The cache is the model's: one block table per sequence shared by
 * all layers. A step that fails (the cache is full, a token id is out of range, a position is past the context)
 * changes nothing.
 *
 * <p>Batch invariance: the model's context is created {@code reproducible} unless {@link Options#reproducible} says
 * otherwise, so a sequence's logits do not depend on the other sequences in the step or on how its prompt was
 * chunked into chunks of two or more tokens. (A sequence's one new token in a step is attended the absorbed way, over
 * the latent cache; two or more are attended MHA-style, keys and values decompressed per head, which takes a third
 * of the absorbed attention's work for a prompt: see {@link dev.moe4j.model.MlaAttention#forward}. The two differ by
 * rounding, so a prompt fed one token at a time gives other logits than the same prompt in larger chunks; the
 * engine never cuts a prompt that way.)
 *
 * <p>On a GPU ({@link Options#device} a CUDA device; libmoe4j_cuda must be loaded): the layers are loaded and converted
 * on the host as for the CPU, then every weight is copied once to the GPU as it is (FP8 codes with their scales), the KV
 * cache and all per-step scratch live there, and every step runs the same native kernels on the GPU's context. What
 * crosses to the host is what Java decides on — each MoE layer's router logits [tokens, experts] and the returned
 * logits — and what crosses to the GPU is index tables (token ids, cache slots and positions, block tables, routing
 * tables), a copy each. With {@link Options#expertDevices} GPUs, each MoE layer's routed experts are spread over GPUs
 * 0 .. n-1 (the model's GPU among them), tokens dispatched device to device; shared experts stay on the model's GPU.
 *
 * <p>Not thread-safe: one thread drives a model (its steps mutate the cache); {@link Generator} enforces this for
 * generation. Close it to free its memory and unmap the checkpoint.
 */
public final class Model implements AutoCloseable {
    /**
     * The LM head's weight format, chosen at load. Whatever the checkpoint stores (BF16, or the tied embeddings), FP8
     * and Q8 are quantized from it on load; a head whose shape does not allow the format (hidden size not a multiple
     * of 128, for Q8 a vocabulary not a multiple of 16) stays BF16.
     */
    public enum LmHead {
        /** As stored: {@link dev.moe4j.kernels.Gemm#nt} on bf16 activations; twice the bytes of the others. */
        BF16,
        /**
         * E4M3 with 128x128 block scales, run as an FP8 GEMM ({@link dev.moe4j.kernels.Fp8Gemm#nt}): the fast head on
         * GPUs (the tuned FP8 kernels).
         */
        FP8,
        /**
         * Int8 with a scale per vocabulary row, run as {@link dev.moe4j.kernels.Q8Gemm#nt}: the fast head on CPUs (int8
         * dot products, no widening; at the same bytes as FP8 and closer to the bf16 head, see {@code ModelTest}), on
         * GPUs a simple kernel.
         */
        Q8
    }

    /**
     * How to load a model.
     *
     * @param cacheTokens KV cache capacity in tokens summed over all sequences (rounded up to 64-token blocks)
     * @param fp8Cache the FP8 latent cache (656 B per token per layer) instead of bf16 (1152 B)
     * @param reproducible batch-invariant kernels (see the class doc); false trades that for large-batch speed
     * @param quantize quantize BF16 dense weights (input width a multiple of 128) to FP8 on load
     * @param threads CPU threads for the kernels (on a GPU: for the conversions at load), 0 for all
     * @param expertDevices 1: routed experts run on the model's context; more: each MoE layer's experts are spread
     *     over that many devices ({@link ExpertParallelMoe}, 25% redundant slots, EPLB placement), each with its own
     *     context and worker thread: CPU devices for a CPU model, CUDA devices 0 .. expertDevices-1 for a GPU model
     * @param lmHead the LM head's weight format ({@link LmHead}): the largest matrix a decode step reads
     * @param q8Dense for a model on the CPU, the weights every token's row reads outside the routed experts (the
     *     attention projections of the hidden state and of the attention output; the dense layers' MLPs; the MoE layers'
     *     shared experts, which then run as a dense MLP beside the routed experts' call) as int8 with a scale per
     *     row, quantized on load from whatever the checkpoint stores (copies) and run on int8 dot products ({@link
     *     dev.moe4j.kernels.Q8Gemm}, as the int8 LM head): twice the products per instruction of the FP8 GEMM's bf16
     *     dot products, which is what limits those GEMMs at 8 and more rows (batched decode, prefill); at one row they
     *     stream the same bytes. The routed experts stay FP8. Scored against DeepSeek's reference ({@code
     *     ModelTest}) this costs about what the int8 LM head does, less than the FP8 activations of the reference
     *     itself; false keeps the checkpoint's FP8 (or BF16, or with quantize FP8) weights and the reference's
     *     arithmetic. Ignored for a model on a GPU, whose FP8 kernels are the fast ones
     * @param packWeights on an AVX-512 CPU ({@link Isa#hasPackedKernels}), with one device: pack the FP8 weights the FP8 GEMMs
     *     read into panels on load ({@link dev.moe4j.kernels.Fp8Gemm#packWeights}; copies, so FP8 weights are no
     *     longer used from the checkpoint's map): faster kernels at every batch size, and results in another rounding
     *     than unpacked weights give (each as batch-invariant); elsewhere ignored
     * @param device where the model runs: {@link Device#CPU}, or a CUDA device (weights, cache and steps on that GPU)
     */
    public record Options(
            int cacheTokens,
            boolean fp8Cache,
            boolean reproducible,
            boolean quantize,
            int threads,
            int expertDevices,
            LmHead lmHead,
            boolean q8Dense,
            boolean packWeights,
            Device device) {
        public Options {
            if (cacheTokens <= 0)
                throw new IllegalArgumentException("cacheTokens must be positive, got " + cacheTokens);
            if (threads < 0) throw new IllegalArgumentException("threads must be >= 0, got " + threads);
            if (expertDevices < 1)
                throw new IllegalArgumentException("expertDevices must be >= 1, got " + expertDevices);
            Objects.requireNonNull(lmHead, "lmHead");
            Objects.requireNonNull(device, "device");
            if (!device.isCpu() && expertDevices > 1 && device.ordinal() >= expertDevices)
                throw new IllegalArgumentException("the model's GPU " + device + " must be one of the expert devices"
                        + " cuda:0 .. cuda:" + (expertDevices - 1));
        }

        /**
         * 16384 cache tokens, bf16 cache, reproducible, no load-time quantization, all threads, one device, int8 LM
         * head, int8 dense weights, packed weights, on the CPU. For a model on a GPU, {@code withLmHead(LmHead.FP8)} runs the head on the
         * tuned FP8 kernels (the CLI's {@code --gpu} does so).
         */
        public static Options defaults() {
            return new Options(16384, false, true, false, 0, 1, LmHead.Q8, true, true, Device.CPU);
        }

        public Options withCacheTokens(int cacheTokens) {
            return new Options(
                    cacheTokens,
                    fp8Cache,
                    reproducible,
                    quantize,
                    threads,
                    expertDevices,
                    lmHead,
                    q8Dense,
                    packWeights,
                    device);
        }

        public Options withFp8Cache(boolean fp8Cache) {
            return new Options(
                    cacheTokens,
                    fp8Cache,
                    reproducible,
                    quantize,
                    threads,
                    expertDevices,
                    lmHead,
                    q8Dense,
                    packWeights,
                    device);
        }

        public Options withReproducible(boolean reproducible) {
            return new Options(
                    cacheTokens,
                    fp8Cache,
                    reproducible,
                    quantize,
                    threads,
                    expertDevices,
                    lmHead,
                    q8Dense,
                    packWeights,
                    device);
        }

        public Options withQuantize(boolean quantize) {
            return new Options(
                    cacheTokens,
                    fp8Cache,
                    reproducible,
                    quantize,
                    threads,
                    expertDevices,
                    lmHead,
                    q8Dense,
                    packWeights,
                    device);
        }

        public Options withThreads(int threads) {
            return new Options(
                    cacheTokens,
                    fp8Cache,
                    reproducible,
                    quantize,
                    threads,
                    expertDevices,
                    lmHead,
                    q8Dense,
                    packWeights,
                    device);
        }

        public Options withExpertDevices(int expertDevices) {
            return new Options(
                    cacheTokens,
                    fp8Cache,
                    reproducible,
                    quantize,
                    threads,
                    expertDevices,
                    lmHead,
                    q8Dense,
                    packWeights,
                    device);
        }

        public Options withLmHead(LmHead lmHead) {
            return new Options(
                    cacheTokens,
                    fp8Cache,
                    reproducible,
                    quantize,
                    threads,
                    expertDevices,
                    lmHead,
                    q8Dense,
                    packWeights,
                    device);
        }

        public Options withQ8Dense(boolean q8Dense) {
            return new Options(
                    cacheTokens,
                    fp8Cache,
                    reproducible,
                    quantize,
                    threads,
                    expertDevices,
                    lmHead,
                    q8Dense,
                    packWeights,
                    device);
        }

        public Options withPackWeights(boolean packWeights) {
            return new Options(
                    cacheTokens,
                    fp8Cache,
                    reproducible,
                    quantize,
                    threads,
                    expertDevices,
                    lmHead,
                    q8Dense,
                    packWeights,
                    device);
        }

        public Options withDevice(Device device) {
            return new Options(
                    cacheTokens,
                    fp8Cache,
                    reproducible,
                    quantize,
                    threads,
                    expertDevices,
                    lmHead,
                    q8Dense,
                    packWeights,
                    device);
        }
    }

    /**
     * The weight bytes a step reads, for roofline accounting: a step reads {@code everyStep} bytes, one embedding
     * row of {@code perToken} bytes per new token, and {@code perRoutedExpert} bytes for each distinct routed expert
     * of each MoE layer that its tokens are routed to.
     *
     * @param everyStep attention (projections as stored, the BF16 wkv_b parts the absorbed path multiplies with),
     *     dense MLPs, routers, shared experts, norms, the final norm and the LM head
     * @param perToken one embedding row
     * @param perRoutedExpert one routed expert's gate, up and down weights with their scales
     */
    public record WeightBytes(long everyStep, long perToken, long perRoutedExpert) {}

    /**
     * Memory the model holds, in bytes.
     *
     * @param mappedWeights checkpoint bytes used in place through the memory map (resident as the OS pages them in)
     * @param copiedWeights weights converted or copied into the model's own memory at load
     * @param cache the KV cache of all layers (on the model's device)
     * @param deviceWeights weights copied to the model's GPU (0 on the CPU); the host copies they were made from are
     *     counted above too
     */
    public record Memory(long mappedWeights, long copiedWeights, long cache, long deviceWeights) {
        /** Everything, host and device memory. */
        public long total() {
            return mappedWeights + copiedWeights + cache + deviceWeights;
        }
    }

    private final ModelConfig config;
    private final Checkpoint checkpoint;
    private final Arena arena;
    private final Context ctx;
    private final Context host; // ctx on the CPU; a CPU context beside a device's (host-side work between steps)
    private final Tensor embeddings; // BF16 [V, hidden]
    private final List<DecoderLayer> layers;
    private final RmsNorm norm;
    private final Linear lmHead; // [V, hidden], FP8, int8 or BF16
    private final WeightBytes weightBytes;
    private final PagedLatentCache cache;
    private final long copiedBytes, deviceWeightBytes;
    private final DeviceStore store; // the model's device memory; null on the CPU
    private final DeviceGroup group; // null without expert devices
    private final Map<Integer, ExpertParallelMoe> parallel;
    private BiConsumer<Integer, Routing> moeObserver;
    private Routing routing;
    private final ReentrantLock stepLock = new ReentrantLock();

    private Model(
            ModelConfig config,
            Checkpoint checkpoint,
            Arena arena,
            Context ctx,
            Context host,
            Tensor embeddings,
            List<DecoderLayer> layers,
            RmsNorm norm,
            Linear lmHead,
            WeightBytes weightBytes,
            PagedLatentCache cache,
            long copiedBytes,
            long deviceWeightBytes,
            DeviceStore store,
            DeviceGroup group,
            Map<Integer, ExpertParallelMoe> parallel) {
        this.config = config;
        this.checkpoint = checkpoint;
        this.arena = arena;
        this.ctx = ctx;
        this.host = host;
        this.embeddings = embeddings;
        this.layers = layers;
        this.norm = norm;
        this.lmHead = lmHead;
        this.weightBytes = weightBytes;
        this.cache = cache;
        this.copiedBytes = copiedBytes;
        this.deviceWeightBytes = deviceWeightBytes;
        this.store = store;
        this.group = group;
        this.parallel = parallel;
    }

    /**
     * Loads a checkpoint directory.
     *
     * @param progress receives one line per loaded layer (may be null)
     * @throws IllegalArgumentException naming the file and tensor when the config is malformed, a tensor is missing,
     *     or a tensor's dtype or shape contradicts the config
     * @throws IllegalStateException if the options ask for a GPU and the loaded native library has no CUDA backend or
     *     the machine too few CUDA devices (saying which)
     * @throws dev.moe4j.runtime.Moe4jException if a GPU runs out of memory
     */
    public static Model load(Path dir, Options options, Consumer<String> progress) {
        return load(dir, options, progress, false);
    }

    /**
     * {@link #load}, with the model's CPU context {@linkplain DeviceEmulation emulating a device}: the GPU model's code
     * paths (weights copied to device memory, device scratch, the copies of tables and logits) run on the CPU, with
     * the CPU model's results; a test mode for machines without a GPU. Experts on the model's context only.
     */
    static Model loadEmulatingDevice(Path dir, Options options, Consumer<String> progress) {
        if (!options.device().isCpu() || options.expertDevices() > 1)
            throw new IllegalArgumentException("device emulation runs a CPU model with its experts on its own context");
        return load(dir, options, progress, true);
    }

    private static Model load(Path dir, Options options, Consumer<String> progress, boolean emulate) {
        Objects.requireNonNull(options, "options");
        requireDevices(options);
        Checkpoint checkpoint = Checkpoint.open(dir);
        Context ctx = null, loader = null;
        WeightArena arena = null;
        DeviceStore store = null;
        DeviceGroup group = null;
        Map<Integer, ExpertParallelMoe> parallel = new LinkedHashMap<>();
        try {
            ModelConfig c = checkpoint.config();
            if (c.vocabSize() <= 0)
                throw new IllegalArgumentException(
                        dir + "/config.json: vocab_size must be positive, got " + c.vocabSize());
            Device device = options.device();
            Context.Options contextOptions =
                    device.isCpu() ? Context.Options.cpu() : Context.Options.cuda(device.ordinal());
            ctx = Context.create(
                    contextOptions.withThreads(options.threads()).withReproducible(options.reproducible()));
            if (emulate) DeviceEmulation.emulate(ctx);
            boolean onDevice = !device.isCpu() || emulate;
            // the layers are read and converted on the host (a CPU context, kept for host-side work between steps),
            // then
            // copied to the device
            loader = onDevice ? Context.create(Context.Options.cpu().withThreads(options.threads())) : ctx;
            arena = new WeightArena(loader);
            if (onDevice) store = new DeviceStore(ctx);
            Tensor embeddings = bf16Matrix(checkpoint, "model.embed_tokens.weight", c, arena);
            // FP8 weights are packed for the CPU's AVX-512 kernels (faster at every batch size, one sum order for all)
            // where the model runs on that one context: devices (GPUs, expert-parallel CPU devices) take E4M3.
            boolean pack =
                    options.packWeights() && !onDevice && ctx.isa().hasPackedKernels() && options.expertDevices() <= 1;
            boolean q8Dense = options.q8Dense() && !onDevice;
            List<DecoderLayer> layers = new ArrayList<>();
            for (int l = 0; l < c.numHiddenLayers(); l++) {
                layers.add(DecoderLayer.load(checkpoint, l, options.quantize(), q8Dense, pack, loader, arena));
                // the layer's weights were copied or converted; the few still read from the map (router weights,
                // embedding rows) fault back in when used. Otherwise the 27-layer bench model keeps its 16 GB
                // checkpoint resident beside 15.6 GB of copies on a 24 GB machine (bench/RESULTS.md)
                checkpoint.releasePages();
                if (progress != null) progress.accept("layer " + (l + 1) + " of " + c.numHiddenLayers());
            }
            if (progress != null && c.numNextnPredictLayers() > 0)
                progress.accept("skipping " + c.numNextnPredictLayers()
                        + " multi-token-prediction layer(s): not used for generation");
            Tensor normWeight = checkpoint.tensor("model.norm.weight");
            if (!Arrays.equals(normWeight.shape(), new long[] {c.hiddenSize()}))
                throw new IllegalArgumentException("tensor 'model.norm.weight' in " + dir + " is "
                        + Arrays.toString(normWeight.shape()) + ", expected [" + c.hiddenSize() + "]");
            RmsNorm norm = new RmsNorm(normWeight.toFloatArray(), (float) c.rmsNormEps());
            Tensor lmHeadWeight =
                    c.tieWordEmbeddings() ? embeddings : bf16Matrix(checkpoint, "lm_head.weight", c, arena);
            Linear lmHead = lmHead(options.lmHead(), lmHeadWeight, loader, pack, arena);
            checkpoint.releasePages();
            WeightBytes weightBytes = weightBytes(layers, norm, lmHead, c);
            int blocks = PagedLatentCache.blocksFor(options.cacheTokens());
            long weightsCopied = arena.allocated();
            if (options.expertDevices() > 1 && c.nRoutedExperts() > 0) {
                int devices = options.expertDevices();
                group = device.isCpu() ? DeviceGroup.cpu(devices, 1) : DeviceGroup.cuda(devices, 1);
                int replicas = (c.nRoutedExperts() * 5 / 4 + devices - 1) / devices * devices;
                for (int l = 0; l < layers.size(); l++) {
                    if (!(layers.get(l).moe() instanceof MoeLayer local)) continue;
                    Placement start = Eplb.rebalance(new double[1][c.nRoutedExperts()], replicas, 1, 1, devices);
                    // the gate and the shared experts run on the model's context: in its memory
                    ExpertParallelMoe moe = new ExpertParallelMoe(
                            group,
                            store == null ? local.gate() : local.gate().to(store),
                            local.expertGate(),
                            local.expertUp(),
                            local.expertDown(),
                            store == null || local.shared() == null
                                    ? local.shared()
                                    : local.shared().to(store),
                            start,
                            0,
                            1);
                    parallel.put(l, moe);
                    layers.set(l, layers.get(l).withMoe(moe));
                }
            }
            if (store != null) {
                for (int l = 0; l < layers.size(); l++)
                    layers.set(l, layers.get(l).to(store));
                Tensor hostEmbeddings = embeddings;
                embeddings = store.upload(hostEmbeddings);
                norm = norm.to(store);
                lmHead =
                        !lmHead.isBf16() || lmHeadWeight != hostEmbeddings ? lmHead.to(store) : Linear.bf16(embeddings);
            }
            long deviceWeights = store == null ? 0 : store.bytes();
            PagedLatentCache cache = store == null
                    ? new PagedLatentCache(arena, c.numHiddenLayers(), blocks, 1, options.fp8Cache())
                    : new PagedLatentCache(store, c.numHiddenLayers(), blocks, 1, options.fp8Cache());
            return new Model(
                    c,
                    checkpoint,
                    arena,
                    ctx,
                    loader,
                    embeddings,
                    layers,
                    norm,
                    lmHead,
                    weightBytes,
                    cache,
                    weightsCopied,
                    deviceWeights,
                    store,
                    group,
                    parallel);
        } catch (RuntimeException e) {
            for (ExpertParallelMoe moe : parallel.values()) moe.close();
            if (group != null) group.close();
            if (store != null) store.close();
            if (arena != null) arena.close();
            if (loader != null && loader != ctx) loader.close();
            if (ctx != null) ctx.close();
            checkpoint.close();
            throw e;
        }
    }

    /** Says why a GPU model cannot load here, before anything is read. */
    private static void requireDevices(Options options) {
        if (options.device().isCpu()) return;
        Capabilities caps = NativeLibrary.capabilities();
        int needed = Math.max(options.device().ordinal() + 1, options.expertDevices());
        if (!caps.cudaCompiled())
            throw new IllegalStateException("a model on " + options.device() + " needs the CUDA backend, but "
                    + caps.library() + " has none: load libmoe4j_cuda (-Dmoe4j.library=moe4j_cuda)");
        if (caps.cudaDeviceCount() < needed)
            throw new IllegalStateException("a model on " + options.device() + " with experts over "
                    + options.expertDevices() + " GPU(s) needs " + needed + " CUDA device(s), this machine has "
                    + caps.cudaDeviceCount());
    }

    private static QuantizedTensor packed(Context ctx, boolean pack, QuantizedTensor q, Arena arena) {
        return pack && Fp8Gemm.packable(q) ? Fp8Gemm.packWeights(ctx, q, arena) : q;
    }

    /** The LM head in the format asked for where its shape allows it, else BF16 as stored. */
    private static Linear lmHead(LmHead format, Tensor weight, Context loader, boolean pack, Arena arena) {
        return switch (format) {
            case Q8 ->
                Q8Gemm.quantizable(weight)
                        ? Linear.q8(Q8Gemm.quantizeWeights(loader, weight, arena))
                        : Linear.bf16(weight);
            case FP8 ->
                weight.shape(1) % QuantizedTensor.BLOCK == 0
                        ? Linear.fp8(packed(
                                loader, pack, Quantization.perBlock(loader, weight, ScaleFormat.FP32, arena), arena))
                        : Linear.bf16(weight);
            case BF16 -> Linear.bf16(weight);
        };
    }

    private static WeightBytes weightBytes(List<DecoderLayer> layers, RmsNorm norm, Linear lmHead, ModelConfig c) {
        long everyStep = 4L * norm.dim() + lmHead.weightBytes(), perExpert = 0;
        for (DecoderLayer layer : layers) {
            everyStep += layer.attention().weightBytes() + 8L * c.hiddenSize(); // two norms
            if (layer.mlp() != null) everyStep += layer.mlp().weightBytes();
            if (layer.moe() instanceof MoeLayer moe) {
                everyStep += moe.gate().weightBytes()
                        + (moe.shared() == null ? 0 : moe.shared().weightBytes());
                QuantizedGroups[] experts = {moe.expertGate(), moe.expertUp(), moe.expertDown()};
                perExpert = 0;
                for (QuantizedGroups g : experts) perExpert += g.byteSize() / g.count();
            }
        }
        return new WeightBytes(everyStep, 2L * c.hiddenSize(), perExpert);
    }

    /** A [vocab, hidden] matrix as BF16, used from the map when stored so. */
    private static Tensor bf16Matrix(Checkpoint checkpoint, String name, ModelConfig c, Arena arena) {
        Tensor t = checkpoint.tensor(name);
        long[] expected = {c.vocabSize(), c.hiddenSize()};
        if (!Arrays.equals(t.shape(), expected))
            throw new IllegalArgumentException("tensor '" + name + "' in " + checkpoint.dir() + " is "
                    + Arrays.toString(t.shape()) + ", expected " + Arrays.toString(expected)
                    + " (vocab_size, hidden_size)");
        return switch (t.dtype()) {
            case BF16 -> t;
            case F32, F16 -> Tensor.fromFloats(arena, DType.BF16, t.toFloatArray(), expected);
            default ->
                throw new IllegalArgumentException(
                        "tensor '" + name + "' in " + checkpoint.dir() + " is " + t.dtype() + ", expected BF16");
        };
    }

    public ModelConfig config() {
        return config;
    }

    /** The checkpoint directory. */
    public Path dir() {
        return checkpoint.dir();
    }

    public int vocabSize() {
        return config.vocabSize();
    }

    /** The longest sequence the model takes: {@code max_position_embeddings}. */
    public int maxPositions() {
        return config.maxPositionEmbeddings();
    }

    /** The weight bytes a step reads (see {@link WeightBytes}). */
    public WeightBytes weightBytes() {
        return weightBytes;
    }

    public Memory memory() {
        return new Memory(checkpoint.mappedBytes(), copiedBytes, cache.bytes(), deviceWeightBytes);
    }

    /**
     * Whether steps hint each next weight to the context's idle threads ({@link dev.moe4j.kernels.Prefetch}, on
     * unless turned off): the next layer's first projection while the current one finishes, the LM head after the last
     * layer. Results are the same either way; {@code bench generate} alternates it to measure what it gains.
     */
    public void prefetchWeights(boolean on) {
        ctx.enableHints(on);
    }

    /** The context steps run on (tests inject faults and limits through it, between steps). */
    Context context() {
        return ctx;
    }

    /**
     * {@link Logits#stats} of host logits (the rows of a {@link #forward} call) on a CPU context: the model's own, or
     * one of the host's for a model on a device. Called by the thread that runs the steps.
     */
    void logitsStats(Tensor logits, Tensor argmax, Tensor sumExp) {
        Logits.stats(host, logits, argmax, sumExp);
    }

    /** The device the model runs on: the CPU or a GPU. */
    public Device device() {
        return ctx.device();
    }

    /** Whether steps are batch-invariant (the context is reproducible). */
    public boolean reproducible() {
        return ctx.reproducible();
    }

    // ---------------------------------------------------------------- sequences and their cache

    /** Starts an empty sequence; returns its id. */
    public int newSequence() {
        return cache.newSequence();
    }

    /** Frees a sequence's cache blocks; its id is no longer valid. */
    public void freeSequence(int sequence) {
        cache.free(sequence);
    }

    /** Tokens of a sequence in the cache. */
    public int length(int sequence) {
        return cache.length(sequence);
    }

    /** Cache tokens not held by any sequence (whole free blocks). */
    public long freeCacheTokens() {
        return (long) cache.freeBlocks() * PagedLatentCache.BLOCK_TOKENS;
    }

    /** Cache capacity in tokens. */
    public long cacheTokens() {
        return (long) cache.blocks() * PagedLatentCache.BLOCK_TOKENS;
    }

    /** Cache blocks a sequence of this many tokens holds (for admission: compare with free blocks). */
    public static int cacheBlocksFor(long tokens) {
        return PagedLatentCache.blocksFor(tokens);
    }

    public int freeCacheBlocks() {
        return cache.freeBlocks();
    }

    // ---------------------------------------------------------------- the step

    /**
     * Runs new tokens of several sequences through the model and appends them to the cache.
     *
     * @param sequences distinct sequence ids
     * @param tokens tokens[i] are sequence i's new tokens (at least one), ids in [0, vocab)
     * @param allPositions logits of every new token (scoring) instead of each sequence's last one
     * @param arena owns the returned logits
     * @return F32 [rows, vocab]: row i is sequence i's last new token, or with allPositions the rows of sequence 0's
     *     tokens, then sequence 1's, ...
     * @throws IllegalArgumentException if a token id is outside the vocabulary, a sequence is unknown or listed
     *     twice, or a sequence would pass {@link #maxPositions}; nothing changed
     * @throws IllegalStateException if the cache cannot hold the new tokens; nothing changed
     */
    public Tensor forward(int[] sequences, int[][] tokens, boolean allPositions, Arena arena) {
        int[] counts = checkStep(sequences, tokens);
        Objects.requireNonNull(arena, "arena");
        int rows = allPositions ? Arrays.stream(counts).sum() : sequences.length;
        Tensor logits = Tensor.allocate(arena, DType.F32, rows, config.vocabSize());
        step(sequences, tokens, counts, allPositions, logits);
        return logits;
    }

    /**
     * {@link #forward(int[], int[][], boolean, Arena)} into a tensor the caller owns (and reuses from step to step:
     * no allocation per step).
     *
     * @param logits F32 [rows, vocab], contiguous, in host memory: rows = sequences.length, or with allPositions the
     *     total of new tokens
     * @throws IllegalArgumentException as the other form does, and if logits has another shape or dtype; nothing
     *     changed
     */
    public void forward(int[] sequences, int[][] tokens, boolean allPositions, Tensor logits) {
        step(sequences, tokens, checkStep(sequences, tokens), allPositions, logits);
    }

    /** The step, its arguments checked (counts: each sequence's new tokens) but for logits. */
    private void step(int[] sequences, int[][] tokens, int[] counts, boolean allPositions, Tensor logits) {
        int total = Arrays.stream(counts).sum();
        int hidden = config.hiddenSize(), vocab = config.vocabSize();
        int rows = allPositions ? total : sequences.length;
        Objects.requireNonNull(logits, "logits");
        if (logits.dtype() != DType.F32
                || logits.rank() != 2
                || logits.shape(0) != rows
                || logits.shape(1) != vocab
                || !logits.isContiguous()
                || !logits.device().isCpu())
            throw new IllegalArgumentException(
                    "logits must be a contiguous F32 [" + rows + ", " + vocab + "] in host memory, got " + logits);
        if (!stepLock.tryLock())
            throw new IllegalStateException(
                    "the model is running a step on another thread; a model is driven by one" + " thread at a time");
        try (Workspace.Frame step = ctx.workspace().frame()) {
            cache.inStep(step, sequences, counts, reserved -> {
                Tensor ids = Tensor.hostScratch(step, DType.I32, total);
                for (int i = 0, row = 0; i < sequences.length; i++)
                    for (int token : tokens[i]) ids.setInt(token, row++);
                Tensor embedded = Tensor.scratch(step, DType.BF16, total, hidden);
                layers.getFirst().prefetch(ctx);
                Dispatch.gather(ctx, embeddings, Copy.toDevice(step, ids), embedded);
                if (routing == null || routing.maxTokens() < total)
                    routing = new Routing(Math.max(1, config.numExpertsPerTok()), Math.max(total, 256));
                // each layer's output is stream + branch, added by the norm that reads it next
                Tensor stream = Tensor.scratch(step, DType.F32, total, hidden);
                Tensor branch = Tensor.scratch(step, DType.F32, total, hidden);
                Tensor input = embedded, residual = null;
                for (int l = 0; l < layers.size(); l++) {
                    DecoderLayer layer = layers.get(l);
                    layer.forward(ctx, cache, reserved, input, residual, routing, stream, branch);
                    // the next weights to stream: the next layer's, after the last the LM head
                    if (l + 1 < layers.size()) layers.get(l + 1).prefetch(ctx);
                    else lmHead.prefetch(ctx);
                    input = branch;
                    residual = stream;
                    if (moeObserver != null && layer.moe() != null) moeObserver.accept(layer.index(), routing);
                }

                // every position is normalized (a row's norm depends on that row alone), then the ones whose logits
                // are asked for are picked, unless that is all of them (all positions, or one new token each)
                Tensor normedAll = Tensor.scratch(step, DType.BF16, total, hidden);
                norm.apply(ctx, input, residual, null, normedAll);
                Tensor normed = normedAll;
                if (rows != total) {
                    Tensor pick = Tensor.hostScratch(step, DType.I32, rows);
                    for (int i = 0, row = 0; i < rows; i++) {
                        if (allPositions) pick.setInt(i, i);
                        else {
                            row += counts[i];
                            pick.setInt(row - 1, i);
                        }
                    }
                    normed = Tensor.scratch(step, DType.BF16, rows, hidden);
                    Dispatch.gather(ctx, normedAll, Copy.toDevice(step, pick), normed);
                }
                Tensor computed = logits.isInMemoryOf(ctx) ? logits : Tensor.scratch(step, DType.F32, rows, vocab);
                lmHead.apply(ctx, normed, computed);
                if (computed != logits) Copy.apply(ctx, computed, logits);
                return null;
            });
        } finally {
            stepLock.unlock();
        }
    }

    /** Checks a step's arguments (nothing changes when they are wrong); returns each sequence's new token count. */
    private int[] checkStep(int[] sequences, int[][] tokens) {
        Objects.requireNonNull(sequences, "sequences");
        Objects.requireNonNull(tokens, "tokens");
        if (sequences.length != tokens.length)
            throw new IllegalArgumentException(sequences.length + " sequences but " + tokens.length + " token lists");
        int[] counts = new int[sequences.length];
        for (int i = 0; i < sequences.length; i++) {
            if (tokens[i] == null || tokens[i].length == 0)
                throw new IllegalArgumentException("sequence " + sequences[i] + " has no new tokens");
            for (int j = 0; j < tokens[i].length; j++)
                if (tokens[i][j] < 0 || tokens[i][j] >= config.vocabSize())
                    throw new IllegalArgumentException("token id " + tokens[i][j] + " (sequence " + sequences[i]
                            + ", token " + j + ") is outside the vocabulary [0, " + config.vocabSize() + ")");
            long end = (long) cache.length(sequences[i]) + tokens[i].length;
            if (end > config.maxPositionEmbeddings())
                throw new IllegalArgumentException("sequence " + sequences[i] + " would reach " + end
                        + " tokens, past the model's context of " + config.maxPositionEmbeddings()
                        + " (max_position_embeddings)");
            counts[i] = tokens[i].length;
        }
        return counts;
    }

    /** Each MoE layer's experts spread over devices, by layer index (empty with one expert device). */
    public Map<Integer, ExpertParallelMoe> expertParallel() {
        return Collections.unmodifiableMap(parallel);
    }

    /**
     * Calls observer after every MoE layer of every step with the layer index and its routing (valid during the
     * call): for load statistics and live rebalancing. Null removes it.
     */
    public void onMoeLayer(BiConsumer<Integer, Routing> observer) {
        this.moeObserver = observer;
    }

    @Override
    public void close() {
        for (ExpertParallelMoe moe : parallel.values()) moe.close();
        if (group != null) group.close();
        if (store != null) store.close();
        arena.close(); // before the contexts: its large blocks are freed through host
        if (host != ctx) host.close();
        ctx.close();
        checkpoint.close();
    }

    @Override
    public String toString() {
        return "Model[" + config.modelType() + ", " + config.numHiddenLayers() + " layers, hidden "
                + config.hiddenSize() + ", vocab " + config.vocabSize() + ", LM head "
                + (lmHead.isBf16() ? "bf16" : lmHead.isFp8() ? "fp8" : "q8")
                + (layers.getFirst().attention().weights().wo().isQ8() ? ", int8 dense weights" : "") + ", on "
                + ctx.device() + ", " + dir()
                + "]";
    }
}
