package dev.moe4j.bench;

import dev.moe4j.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;

/**
 * cuBLAS's bf16 GEMM as the GPU report's baseline, loaded at run time through the FFM API (moe4j itself never links
 * cuBLAS). {@link #open} returns empty, saying why, where the toolkit's libcublas and libcudart are not found.
 * cuBLAS runs on the legacy default stream; each product is followed by {@code cudaDeviceSynchronize}, so a timed
 * call includes its completion, like moe4j's own calls.
 */
final class CublasBaseline implements AutoCloseable {
    private static final int CUDA_R_16BF = 14, CUBLAS_COMPUTE_32F = 68, CUBLAS_GEMM_DEFAULT = -1;
    private static final int CUBLAS_OP_N = 0, CUBLAS_OP_T = 1;
    private static final List<String> DIRECTORIES = List.of(
            "", "/usr/local/cuda/lib64/", "/usr/local/cuda/targets/x86_64-linux/lib/", "/usr/lib/x86_64-linux-gnu/");

    private final Arena arena = Arena.ofConfined();
    private final MethodHandle gemmEx, synchronize, destroy;
    private final MemorySegment handle, alpha, beta;

    private CublasBaseline(SymbolLookup cublas, SymbolLookup cudart) throws Throwable {
        Linker linker = Linker.nativeLinker();
        var I = ValueLayout.JAVA_INT;
        var P = ValueLayout.ADDRESS;
        MethodHandle create = linker.downcallHandle(cublas.findOrThrow("cublasCreate_v2"), FunctionDescriptor.of(I, P));
        destroy = linker.downcallHandle(cublas.findOrThrow("cublasDestroy_v2"), FunctionDescriptor.of(I, P));
        gemmEx = linker.downcallHandle(
                cublas.findOrThrow("cublasGemmEx"),
                FunctionDescriptor.of(I, P, I, I, I, I, I, P, P, I, I, P, I, I, P, P, I, I, I, I));
        synchronize = linker.downcallHandle(cudart.findOrThrow("cudaDeviceSynchronize"), FunctionDescriptor.of(I));
        MemorySegment out = arena.allocate(P);
        check((int) create.invokeExact(out), "cublasCreate_v2");
        handle = out.get(P, 0);
        alpha = arena.allocateFrom(ValueLayout.JAVA_FLOAT, 1f);
        beta = arena.allocateFrom(ValueLayout.JAVA_FLOAT, 0f);
    }

    /** cuBLAS on the current CUDA device, or empty with the reason printed to stderr. */
    static Optional<CublasBaseline> open() {
        Optional<SymbolLookup> cublas = find("libcublas.so", "libcublas.so.13", "libcublas.so.12");
        Optional<SymbolLookup> cudart = find("libcudart.so", "libcudart.so.13", "libcudart.so.12");
        if (cublas.isEmpty() || cudart.isEmpty()) {
            System.err.println("cuBLAS baseline: libcublas or libcudart not found (install the CUDA toolkit's"
                    + " libraries or add them to LD_LIBRARY_PATH)");
            return Optional.empty();
        }
        try {
            return Optional.of(new CublasBaseline(cublas.get(), cudart.get()));
        } catch (Throwable t) {
            System.err.println("cuBLAS baseline unavailable: " + t);
            return Optional.empty();
        }
    }

    private static Optional<SymbolLookup> find(String... names) {
        for (String directory : DIRECTORIES)
            for (String name : names) {
                String path = directory + name;
                if (!directory.isEmpty() && !Files.exists(Path.of(path))) continue;
                try {
                    return Optional.of(SymbolLookup.libraryLookup(path, Arena.global()));
                } catch (IllegalArgumentException notFound) {
                    // next candidate
                }
            }
        return Optional.empty();
    }

    /** d [M, N] (bf16) = a [M, K] . b [N, K]^T, a and b bf16 row-major device tensors; returns when complete. */
    void gemmNt(Tensor a, Tensor b, Tensor d) {
        int m = Math.toIntExact(a.shape()[0]), k = Math.toIntExact(a.shape()[1]), n = Math.toIntExact(b.shape()[0]);
        try {
            // row-major D = A.B^T is column-major D^T = B^T' . A' with both operands stored K-major
            int status = (int) gemmEx.invokeExact(
                    handle,
                    CUBLAS_OP_T,
                    CUBLAS_OP_N,
                    n,
                    m,
                    k,
                    alpha,
                    b.segment(),
                    CUDA_R_16BF,
                    k,
                    a.segment(),
                    CUDA_R_16BF,
                    k,
                    beta,
                    d.segment(),
                    CUDA_R_16BF,
                    n,
                    CUBLAS_COMPUTE_32F,
                    CUBLAS_GEMM_DEFAULT);
            check(status, "cublasGemmEx");
            check((int) synchronize.invokeExact(), "cudaDeviceSynchronize");
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    private static void check(int status, String function) {
        if (status != 0) throw new IllegalStateException(function + " returned " + status);
    }

    @Override
    public void close() {
        try {
            int ignored = (int) destroy.invokeExact(handle);
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        } finally {
            arena.close();
        }
    }
}
