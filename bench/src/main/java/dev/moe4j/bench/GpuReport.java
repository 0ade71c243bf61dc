package dev.moe4j.bench;

import dev.moe4j.kernels.Copy;
import dev.moe4j.kernels.Fp8Gemm;
import dev.moe4j.kernels.Gemm;
import dev.moe4j.kernels.Mla;
import dev.moe4j.runtime.Capabilities;
import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.KernelVariant;
import dev.moe4j.runtime.NativeLibrary;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.DeviceMemory;
import dev.moe4j.tensor.QuantizedTensor;
import dev.moe4j.tensor.Tensor;
import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.stream.Collectors;

/**
 * The GPU speed table of {@code bench/gpu.sh}, on CUDA device 0. Baselines from the same run: the measured
 * device-to-device copy bandwidth and a large bf16 matrix product's rate (cuBLAS, loaded at run time; moe4j's own
 * simple GEMM where cuBLAS is missing, and the table says which). Then FP8 GEMMs on DeepGEMM's shapes (TFLOP/s) and
 * MLA decode on FlashMLA's (GB/s of cache read, TFLOP/s), each with the tuned kernels and the simple ones
 * ({@link Context.Options#simpleKernels}) and against the targets (80% of DeepGEMM's and FlashMLA's published
 * H800 numbers). Device memory holds zeros: the timings do not depend on the values. Each row says which variant the
 * "tuned" context actually ran, from its kernel-variant counts (a fallback to the simple kernel prints its reason).
 * CUDA calls return before their work is done, so every timed run ends with a synchronization. Run with
 * -Dmoe4j.library=moe4j_cuda.
 */
public final class GpuReport {
    /** DeepGEMM's published H800 rate for M=4096 N=7168 K=16384, and FlashMLA's memory- and compute-bound rates. */
    private static final double DEEPGEMM_TFLOPS = 1426, FLASHMLA_GBS = 3000, FLASHMLA_TFLOPS = 660;

    private final Context tuned, simple;
    private final List<DeviceMemory> memory = new ArrayList<>();

    private GpuReport(Context tuned, Context simple) {
        this.tuned = tuned;
        this.simple = simple;
    }

    public static void main(String[] args) {
        Capabilities caps = NativeLibrary.capabilities();
        if (!caps.cudaCompiled() || caps.cudaDeviceCount() == 0) {
            System.err.println("no CUDA device: "
                    + (caps.cudaCompiled() ? "the driver reports none" : "run with -Dmoe4j.library=moe4j_cuda"));
            System.exit(2);
        }
        try (Context tuned = Context.create(Context.Options.cuda(0));
                Context simple = Context.create(Context.Options.cuda(0).withSimpleKernels(true))) {
            new GpuReport(tuned, simple).run();
        }
    }

    /** A zero-filled device tensor. */
    Tensor device(DType dtype, long... shape) {
        long bytes = dtype.byteSize();
        for (long s : shape) bytes *= s;
        DeviceMemory m = DeviceMemory.allocate(tuned, bytes);
        memory.add(m);
        Tensor asBytes = m.tensor(DType.U8, bytes);
        try (Arena arena = Arena.ofConfined()) {
            long chunk = Math.min(bytes, 1L << 26);
            Tensor zeros = Tensor.allocate(arena, DType.U8, chunk);
            for (long offset = 0; offset < bytes; offset += chunk) {
                long n = Math.min(chunk, bytes - offset);
                Copy.apply(tuned, zeros.slice(0, 0, n), asBytes.slice(0, offset, n));
            }
        }
        Copy.synchronize(tuned); // the simple context uses it too, and nothing orders the two contexts
        return m.tensor(dtype, shape);
    }

    /** Median of reps timed runs after one warm-up, in seconds; each run waits for ctx's work to finish. */
    static double time(Context ctx, int reps, Runnable r) {
        r.run();
        Copy.synchronize(ctx);
        double[] t = new double[reps];
        for (int i = 0; i < reps; i++) {
            long t0 = System.nanoTime();
            r.run();
            Copy.synchronize(ctx);
            t[i] = (System.nanoTime() - t0) / 1e9;
        }
        Arrays.sort(t);
        return t[reps / 2];
    }

    /** What ctx ran for kernel since its counts were last reset ("tuned", or "simple: why"); then resets them. */
    static String ran(Context ctx, String kernel) {
        String ran = ctx.kernelVariants().stream()
                .filter(v -> v.kernel().equals(kernel))
                .map(GpuReport::describe)
                .distinct()
                .collect(Collectors.joining(", "));
        ctx.resetKernelVariants();
        return ran.isEmpty() ? "(not counted)" : ran;
    }

    static String describe(KernelVariant v) {
        return v.reason().isEmpty() ? v.variant() : v.variant() + ": " + v.reason();
    }

    void run() {
        long bytes = 1L << 30;
        Tensor src = device(DType.U8, bytes), dst = device(DType.U8, bytes);
        double copy = 2.0 * bytes / time(tuned, 5, () -> Copy.apply(tuned, src, dst)) / 1e9;
        free();
        int big = 8192;
        Tensor a = device(DType.BF16, big, big), b = device(DType.BF16, big, big), c = device(DType.BF16, big, big);
        Optional<CublasBaseline> cublas = CublasBaseline.open();
        double seconds = cublas.isPresent()
                ? time(tuned, 5, () -> cublas.get().gemmNt(a, b, c))
                : time(tuned, 1, () -> Gemm.nt(tuned, a, b, null, c));
        double bf16 = 2.0 * big * big * big / seconds / 1e12;
        cublas.ifPresent(CublasBaseline::close);
        System.out.printf(
                "device-to-device copy: %.0f GB/s; bf16 GEMM %d^3 (%s): %.1f TFLOP/s%n%n",
                copy, big, cublas.isPresent() ? "cuBLAS" : "moe4j's simple kernel: cuBLAS not found", bf16);
        free();

        System.out.printf(
                "%-30s %9s %9s %9s %9s %8s  %s%n",
                "FP8 GEMM (DeepGEMM shapes)", "tuned ms", "TFLOP/s", "simple ms", "speedup", "vs bf16", "tuned ran");
        int[][] shapes = {
            {64, 2112, 7168}, {128, 7168, 16384}, {4096, 4096, 7168}, {4096, 7168, 2048}, {4096, 7168, 16384}
        };
        double bigShape = 0;
        for (int[] s : shapes) {
            int m = s[0], n = s[1], k = s[2];
            QuantizedTensor qa = new QuantizedTensor(device(DType.E4M3, m, k), device(DType.F32, m, k / 128), 1);
            QuantizedTensor qb =
                    new QuantizedTensor(device(DType.E4M3, n, k), device(DType.F32, (n + 127) / 128, k / 128), 128);
            Tensor d = device(DType.BF16, m, n);
            tuned.resetKernelVariants();
            double fast = time(tuned, 5, () -> Fp8Gemm.nt(tuned, qa, qb, null, d));
            String ran = ran(tuned, "fp8_gemm_nt");
            double slow = time(simple, 1, () -> Fp8Gemm.nt(simple, qa, qb, null, d));
            double tflops = 2.0 * m * n * k / fast / 1e12;
            if (m == 4096 && k == 16384) bigShape = tflops;
            System.out.printf(
                    "%-30s %9.3f %9.1f %9.3f %8.1fx %7.2fx  %s%n",
                    "M=" + m + " N=" + n + " K=" + k, fast * 1e3, tflops, slow * 1e3, slow / fast, tflops / bf16, ran);
            free();
        }
        System.out.printf(
                "target: >= 80%% of DeepGEMM's %.0f TFLOP/s (H800) at M=4096 N=7168 K=16384: %.0f%% of it%n",
                DEEPGEMM_TFLOPS, 100 * bigShape / DEEPGEMM_TFLOPS);

        System.out.printf(
                "%n%-36s %9s %8s %8s %9s %8s  %s%n",
                "MLA decode (FlashMLA shapes)", "tuned ms", "GB/s", "TFLOP/s", "simple ms", "speedup", "tuned ran");
        double bestGbs = 0, bestTflops = 0;
        for (int[] s :
                new int[][] {{64, 1, 4096, 16, 0}, {64, 1, 4096, 128, 0}, {128, 2, 4096, 128, 0}, {64, 1, 4096, 128, 1}
                }) {
            int batch = s[0], sq = s[1], sk = s[2], hq = s[3], blocks = sk / 64;
            boolean fp8 = s[4] == 1;
            Tensor q = device(DType.BF16, batch, sq, hq, 576);
            Tensor cache = fp8
                    ? device(DType.U8, (long) batch * blocks, 64, 1, Mla.FP8_TOKEN_BYTES)
                    : device(DType.BF16, (long) batch * blocks, 64, 1, 576);
            try (Arena arena = Arena.ofConfined()) {
                Tensor table = Tensor.allocate(arena, DType.I32, batch, blocks),
                        lengths = Tensor.allocate(arena, DType.I32, batch);
                for (int i = 0; i < batch; i++) {
                    lengths.setInt(sk, i);
                    for (int j = 0; j < blocks; j++) table.setInt(i * blocks + j, i, j);
                }
                Tensor dTable = device(DType.I32, batch, blocks), dLengths = device(DType.I32, batch);
                Copy.apply(tuned, table, dTable);
                Copy.apply(tuned, lengths, dLengths);
                Copy.synchronize(tuned);
                Tensor out = device(DType.BF16, batch, sq, hq, 512), lse = device(DType.F32, batch, hq, sq);
                tuned.resetKernelVariants();
                double fast = time(
                        tuned,
                        5,
                        () -> Mla.decode(tuned, q, cache, dTable, dLengths, Mla.DEFAULT_SCALE, sq > 1, out, lse));
                String ran = ran(tuned, "mla_decode");
                double slow = time(
                        simple,
                        1,
                        () -> Mla.decode(simple, q, cache, dTable, dLengths, Mla.DEFAULT_SCALE, sq > 1, out, lse));
                double gbs =
                        (double) batch * sk * cache.shape()[3] * cache.dtype().byteSize() / fast / 1e9;
                double tflops = 2.0 * batch * sq * hq * sk * (576 + 512) / fast / 1e12;
                bestGbs = Math.max(bestGbs, gbs);
                bestTflops = Math.max(bestTflops, tflops);
                System.out.printf(
                        "%-36s %9.3f %8.0f %8.1f %9.3f %7.1fx  %s%n",
                        "b=" + batch + " s_q=" + sq + " s_k=" + sk + " h_q=" + hq + (fp8 ? " fp8" : ""),
                        fast * 1e3,
                        gbs,
                        tflops,
                        slow * 1e3,
                        slow / fast,
                        ran);
            }
            free();
        }
        System.out.printf(
                "copy bandwidth %.0f GB/s; target: >= 80%% of FlashMLA's %.0f GB/s and %.0f TFLOP/s (H800): best"
                        + " %.0f%% and %.0f%% of them%n",
                copy, FLASHMLA_GBS, FLASHMLA_TFLOPS, 100 * bestGbs / FLASHMLA_GBS, 100 * bestTflops / FLASHMLA_TFLOPS);
    }

    void free() {
        for (DeviceMemory m : memory) m.close();
        memory.clear();
    }
}
