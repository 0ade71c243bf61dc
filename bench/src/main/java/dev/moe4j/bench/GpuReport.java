package dev.moe4j.bench;

import dev.moe4j.kernels.Copy;
import dev.moe4j.kernels.Fp8Gemm;
import dev.moe4j.kernels.Gemm;
import dev.moe4j.kernels.Mla;
import dev.moe4j.runtime.Capabilities;
import dev.moe4j.runtime.Context;
import dev.moe4j.runtime.NativeLibrary;
import dev.moe4j.tensor.DType;
import dev.moe4j.tensor.DeviceMemory;
import dev.moe4j.tensor.QuantizedTensor;
import dev.moe4j.tensor.Tensor;
import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.List;

/**
 * The GPU speed table of {@code bench/gpu.sh}: on CUDA device 0, the measured device-to-device copy bandwidth and the
 * rate of a large bf16 matrix product (this library's own GEMM: no cuBLAS is linked), then FP8 GEMMs on DeepGEMM's
 * shapes (TFLOP/s) and MLA decode on FlashMLA's (GB/s of cache read, TFLOP/s), each beside those baselines. Device
 * memory holds uninitialized values: the timings do not depend on them. Run with -Dmoe4j.library=moe4j_cuda.
 */
public final class GpuReport {
    private final Context ctx;
    private final List<DeviceMemory> memory = new ArrayList<>();

    private GpuReport(Context ctx) {
        this.ctx = ctx;
    }

    public static void main(String[] args) {
        Capabilities caps = NativeLibrary.capabilities();
        if (!caps.cudaCompiled() || caps.cudaDeviceCount() == 0) {
            System.err.println("no CUDA device: "
                    + (caps.cudaCompiled() ? "the driver reports none" : "run with -Dmoe4j.library=moe4j_cuda"));
            System.exit(2);
        }
        try (Context ctx = Context.create(Context.Options.cuda(0))) {
            new GpuReport(ctx).run();
        }
    }

    Tensor device(DType dtype, long... shape) {
        long bytes = dtype.byteSize();
        for (long s : shape) bytes *= s;
        DeviceMemory m = DeviceMemory.allocate(ctx, bytes);
        memory.add(m);
        return m.tensor(dtype, shape);
    }

    /** Median of reps timed runs after one warm-up, in seconds. */
    static double time(int reps, Runnable r) {
        r.run();
        double[] t = new double[reps];
        for (int i = 0; i < reps; i++) {
            long t0 = System.nanoTime();
            r.run();
            t[i] = (System.nanoTime() - t0) / 1e9;
        }
        java.util.Arrays.sort(t);
        return t[reps / 2];
    }

    void run() {
        long bytes = 1L << 30;
        Tensor src = device(DType.U8, bytes), dst = device(DType.U8, bytes);
        double copy = 2.0 * bytes / time(5, () -> Copy.apply(ctx, src, dst)) / 1e9;
        Tensor a = device(DType.BF16, 4096, 4096),
                b = device(DType.BF16, 4096, 4096),
                c = device(DType.F32, 4096, 4096);
        double bf16 = 2.0 * 4096 * 4096 * 4096 / time(3, () -> Gemm.nt(ctx, a, b, null, c)) / 1e12;
        System.out.printf(
                "device-to-device copy: %.0f GB/s; bf16 GEMM 4096^3 (moe4j's own kernel): %.1f TFLOP/s%n%n",
                copy, bf16);
        free();

        System.out.printf("%-34s %10s %10s %9s%n", "FP8 GEMM (DeepGEMM shapes)", "ms", "TFLOP/s", "vs bf16");
        int[][] shapes = {
            {64, 2112, 7168}, {128, 7168, 16384}, {4096, 4096, 7168}, {4096, 7168, 2048}, {4096, 7168, 16384}
        };
        for (int[] s : shapes) {
            int m = s[0], n = s[1], k = s[2];
            QuantizedTensor qa = new QuantizedTensor(device(DType.E4M3, m, k), device(DType.F32, m, k / 128), 1);
            QuantizedTensor qb =
                    new QuantizedTensor(device(DType.E4M3, n, k), device(DType.F32, (n + 127) / 128, k / 128), 128);
            Tensor d = device(DType.BF16, m, n);
            double seconds = time(3, () -> Fp8Gemm.nt(ctx, qa, qb, null, d));
            double tflops = 2.0 * m * n * k / seconds / 1e12;
            System.out.printf(
                    "%-34s %10.3f %10.1f %8.2fx%n",
                    "M=" + m + " N=" + n + " K=" + k, seconds * 1e3, tflops, tflops / bf16);
            free();
        }

        System.out.printf("%n%-34s %10s %10s %9s%n", "MLA decode (FlashMLA shapes)", "ms", "GB/s", "vs copy");
        for (int[] s : new int[][] {{64, 1, 4096, 16}, {64, 1, 4096, 128}, {128, 2, 4096, 128}}) {
            int batch = s[0], sq = s[1], sk = s[2], hq = s[3], blocks = sk / 64;
            Tensor q = device(DType.BF16, batch, sq, hq, 576);
            Tensor cache = device(DType.BF16, (long) batch * blocks, 64, 1, 576);
            try (Arena arena = Arena.ofConfined()) {
                Tensor table = Tensor.allocate(arena, DType.I32, batch, blocks),
                        lengths = Tensor.allocate(arena, DType.I32, batch);
                for (int i = 0; i < batch; i++) {
                    lengths.setInt(sk, i);
                    for (int j = 0; j < blocks; j++) table.setInt(i * blocks + j, i, j);
                }
                Tensor dTable = device(DType.I32, batch, blocks), dLengths = device(DType.I32, batch);
                Copy.apply(ctx, table, dTable);
                Copy.apply(ctx, lengths, dLengths);
                Tensor out = device(DType.BF16, batch, sq, hq, 512), lse = device(DType.F32, batch, hq, sq);
                double seconds =
                        time(3, () -> Mla.decode(ctx, q, cache, dTable, dLengths, Mla.DEFAULT_SCALE, sq > 1, out, lse));
                double gbs = (double) batch * sk * 576 * 2 / seconds / 1e9;
                System.out.printf(
                        "%-34s %10.3f %10.1f %8.2fx%n",
                        "b=" + batch + " s_q=" + sq + " s_k=" + sk + " h_q=" + hq, seconds * 1e3, gbs, gbs / copy);
            }
            free();
        }
    }

    void free() {
        for (DeviceMemory m : memory) m.close();
        memory.clear();
    }
}
