/*
 * moe4j C ABI.
 *
 * Rules every entry point follows:
 *  - Returns a moe4j_status; MOE4J_OK (0) is success.
 *  - Validates every argument (dtypes, ranks, shapes, strides, alignment, buffer sizes, index ranges,
 *    overlap of outputs with inputs) before it touches memory. A rejected call writes no output. (Index tables in
 *    GPU memory are the exception: their kernels check them, see "Execution" below.)
 *  - On failure records a message naming the function, the argument and what was wrong; read it with
 *    moe4j_last_error() on the same thread, before the next moe4j call on that thread.
 *  - Never calls exit/abort on bad input and never throws across the boundary.
 *  - A call that fails while it runs (MOE4J_ERROR_OUT_OF_MEMORY: an allocation failed, in a worker thread too;
 *    MOE4J_ERROR_INTERNAL) may have written part of its outputs, never its inputs; the context stays usable and the
 *    next call runs normally. See moe4j_context_inject_fault to provoke such failures in tests.
 *
 * Threading: a context must not be used by two threads at once; distinct contexts are independent.
 * Error messages are thread-local, so concurrent callers never see each other's messages.
 *
 * Execution (CUDA contexts; a CPU context runs every call to completion before it returns):
 *  - A kernel call validates its descriptors on the host, enqueues its work on the context's stream (the context's
 *    device is made current for the call and the thread's previous device restored after it) and returns without
 *    waiting for the GPU. MOE4J_OK means "validated and enqueued"; a launch failure is returned by the call itself.
 *  - Calls on one context execute in the order they were made. Nothing orders work of different contexts, even of
 *    the same GPU: before another context reads memory that a call on context A writes (or writes memory that it
 *    reads), call moe4j_synchronize(A).
 *  - Index operands in device memory (group layouts, masked_m, block tables, sequence lengths, slot maps, gather and
 *    combine indices, positions) are checked by the kernels themselves. An out-of-range entry is never
 *    dereferenced: the kernel skips or zeroes what it would have addressed and records the first such fault in the
 *    context. Outputs of a call that faults are unspecified.
 *  - Errors that arise after a call returned (those faults, and CUDA errors of running kernels) are reported once
 *    by the next moe4j_synchronize or moe4j_copy to host memory on the context (which wait for the GPU), or, without
 *    waiting, by the first later call on the context that finds the failing work finished; that call then does not
 *    run its own work. The status is MOE4J_ERROR_INVALID_ARGUMENT for a fault, with a message naming the call that
 *    caused it and the argument ("moe4j_synchronize: an earlier call failed on the device: moe4j_gather_rows:
 *    argument 'index': entry 3 is 50, outside [-1, 50) (rows of 'src')"), MOE4J_ERROR_BACKEND for a CUDA error.
 *  - Host memory passed to a call (descriptors, weight-group arrays, the source of a copy) may be reused as soon as
 *    the call returns. Device memory a call writes is readable once a later moe4j_copy to host memory on the same
 *    context returns, or after moe4j_synchronize on it.
 *  - Grow-only scratch: each context keeps device scratch (task tables, intermediates) that calls reuse in stream
 *    order; a call that needs more than any earlier call replaces it (stream-ordered, see docs/ABI.md).
 *
 * Units: shapes and strides count elements, never bytes; size_bytes counts bytes.
 */
#ifndef MOE4J_H
#define MOE4J_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int32_t moe4j_status;

enum moe4j_status_code {
    MOE4J_OK = 0,
    MOE4J_ERROR_INVALID_ARGUMENT = 1, /* an argument is null, malformed, inconsistent or out of range */
    MOE4J_ERROR_UNSUPPORTED = 2,      /* valid request this build or device cannot serve */
    MOE4J_ERROR_OUT_OF_MEMORY = 3,    /* host or device allocation failed */
    MOE4J_ERROR_BACKEND = 4,          /* the CUDA runtime or driver reported an error */
    MOE4J_ERROR_INTERNAL = 5          /* a bug in moe4j: please report the message */
};

enum moe4j_dtype {
    MOE4J_F32 = 0,
    MOE4J_BF16 = 1,
    MOE4J_F16 = 2,
    MOE4J_E4M3 = 3, /* OCP float8 e4m3fn: max 448, no infinities, NaN = 0x7F / 0xFF */
    MOE4J_I32 = 4,
    MOE4J_I64 = 5,
    MOE4J_U8 = 6,
    /* E4M3 weight codes packed in panels of 32 rows (moe4j_pack_fp8_weights): a [.., N, K] tensor with N a multiple
     * of 32 and contiguous strides, whose byte (n / 32) * 32 * K + k * 32 + n % 32 (within each [N, K] matrix) is the
     * code of element (n, k). Accepted by the FP8 GEMMs and the expert FFN wherever E4M3 weights are, on CPU
     * contexts. */
    MOE4J_E4M3_P32 = 7,
    /* Int8 weight codes q in [-127, 127] stored as the byte q + 128, in panels of 16 rows by 4 columns
     * (moe4j_quantize_q8_weights): a [N, K] tensor with N a multiple of 16 and contiguous strides, whose byte
     * (n / 16) * 16 * K + (k / 4) * 64 + (n % 16) * 4 + k % 4 holds element (n, k). Taken by moe4j_q8_gemm_nt on
     * every backend. */
    MOE4J_Q8_P16 = 8
};

enum moe4j_backend { MOE4J_BACKEND_CPU = 0, MOE4J_BACKEND_CUDA = 1 };

/* CPU instruction-set paths, ordered: a context may be capped to any path at or below the detected one.
 * MOE4J_ISA_AVX512 (Skylake-SP, Cascade Lake, Ice Lake: AVX-512 without AVX512_BF16) has its own 16-lane fp32 code
 * in the FP8 GEMMs and the fused expert FFN gate/up pass (e4m3 widened in registers through F16C); RMSNorm, RoPE
 * and SiLU run their AVX-512 code (it needs no BF16); every other kernel (BF16/F32 GEMM, MLA, casts, quantization,
 * dispatch) runs its AVX2 code there. */
enum moe4j_isa {
    MOE4J_ISA_SCALAR = 0,     /* portable C++ reference path */
    MOE4J_ISA_AVX2 = 1,       /* AVX2 + FMA + F16C */
    MOE4J_ISA_AVX512 = 2,     /* AVX-512 F/BW/VL/DQ + FMA + F16C, no AVX512_BF16 */
    MOE4J_ISA_AVX512_BF16 = 3 /* AVX-512 F/BW/VL/DQ/VBMI/VNNI + AVX512_BF16 (Zen 4, Sapphire Rapids and newer) */
};

/* Scale encodings for FP8 quantization. UE8M0 rounds each fp32 scale up to a power of two. */
enum moe4j_scale_format { MOE4J_SCALE_FP32 = 0, MOE4J_SCALE_UE8M0 = 1 };

enum moe4j_limits {
    MOE4J_MAX_RANK = 4,
    MOE4J_HOST_MEMORY = -1,         /* moe4j_tensor.device value for host memory */
    MOE4J_ISA_BEST = -1,            /* moe4j_context_options.max_isa: no cap */
    MOE4J_MAX_WEIGHT_GROUPS = 65536 /* largest moe4j_fp8_weight_groups.count */
};

/* moe4j_context_options.flags */
enum moe4j_context_flags {
    /* Each output row of the FP8 GEMMs and the expert FFN is computed with one fixed sequence of operations,
     * whatever the number of rows in its group: results do not depend on how rows are batched or placed
     * (expert parallelism relies on it). MLA decode splits each sequence's cache at fixed positions (every 512
     * tokens) and merges the splits in order, so a query row's output does not depend on the batch, the
     * sequence's length past the row's last visible token, or s_q (chunked prefill gives the same rows as one
     * pass). Costs large-batch speed on the CPU (no packed-panel kernel) and MLA parallelism on short contexts. */
    MOE4J_CONTEXT_REPRODUCIBLE = 1,
    /* CUDA contexts only: run the simple kernels (one thread per GEMM output element, one thread block per MLA
     * query head) instead of the tuned ones (warpgroup-MMA FP8 GEMM on sm_90a, tensor-core split-KV MLA decode).
     * For checking the tuned kernels against a plain implementation and measuring what they gain. The CPU's
     * plain path is max_isa = MOE4J_ISA_SCALAR; a CPU context rejects this flag. */
    MOE4J_CONTEXT_SIMPLE_KERNELS = 2
};

/*
 * A strided view of memory. Element (i0, i1, ...) lives at
 * data + (i0 * strides[0] + i1 * strides[1] + ...) * element_size. Strides are non-negative element counts;
 * size_bytes is how many bytes are addressable from data, so every reachable element must lie below it. The
 * number of elements (the product of the extents) must fit in int64, zero strides (broadcast views) included.
 * Unused shape/stride slots (index >= rank) are ignored. device is MOE4J_HOST_MEMORY or a CUDA ordinal.
 */
typedef struct moe4j_tensor {
    void *data;
    int64_t size_bytes;
    int32_t dtype;
    int32_t rank;
    int32_t device;
    int32_t reserved; /* must be 0 */
    int64_t shape[4];
    int64_t strides[4];
} moe4j_tensor;

/*
 * The weight matrices of a grouped FP8 GEMM, one per group (expert), each described on its own so that a group may
 * live anywhere: experts used in place from a checkpoint's memory map (spread over shard files, in any order),
 * copied one by one to a device, or rebalanced slot by slot. A stack [G, N, K] with scales [G, ceil(N/128), K/128]
 * is passed as G views of it. count is in [1, MOE4J_MAX_WEIGHT_GROUPS]; weights and scales point to count
 * descriptors each. weights[g] is E4M3 [N, K] with contiguous rows, N and K equal across groups; scales[g] is F32
 * [ceil(N/128), K/128] with any strides (HF weight_scale_inv). All of them live on the call's device. The arrays
 * are read only during the call.
 */
typedef struct moe4j_fp8_weight_groups {
    int64_t count;
    const moe4j_tensor *weights;
    const moe4j_tensor *scales;
} moe4j_fp8_weight_groups;

typedef struct moe4j_context_options {
    int32_t backend; /* enum moe4j_backend */
    int32_t device;  /* CUDA ordinal; must be 0 for the CPU backend */
    int32_t threads; /* CPU worker threads including the caller; 0 = all hardware threads */
    int32_t max_isa; /* enum moe4j_isa cap or MOE4J_ISA_BEST; the MOE4J_MAX_ISA environment variable caps further */
    int32_t flags;   /* enum moe4j_context_flags, or 0 */
} moe4j_context_options;

typedef struct moe4j_context_info {
    int32_t backend;
    int32_t device;
    int32_t threads;
    int32_t isa;   /* the CPU path this context's kernels take */
    int32_t flags; /* as given at creation */
} moe4j_context_info;

typedef struct moe4j_capabilities {
    int32_t abi_version; /* bumped on any incompatible change of this header */
    int32_t version_major;
    int32_t version_minor;
    int32_t version_patch;
    int32_t cpu_isa;           /* best CPU path this machine and build support, after MOE4J_MAX_ISA */
    int32_t cpu_threads;       /* hardware threads available to this process */
    int32_t cuda_compiled;     /* 1 when this library contains the CUDA backend */
    int32_t cuda_device_count; /* CUDA devices usable now; 0 without driver or devices */
} moe4j_capabilities;

/*
 * One entry of a context's kernel-variant counts (moe4j_context_kernel_variants): `calls` calls of `kernel` ran
 * `variant` for `reason`. Strings are NUL-terminated (truncated to fit, which the names below never need).
 *  - kernel: the entry point without its "moe4j_" prefix ("fp8_gemm_nt", "mla_decode"), followed by ":stage" for a
 *    stage of an entry point that runs several kernels whose variants may differ
 *    ("fp8_expert_ffn_contiguous:gate_up", "fp8_expert_ffn_contiguous:down").
 *  - variant: on a CUDA context "tuned" or "simple" (see MOE4J_CONTEXT_SIMPLE_KERNELS; kernels with one CUDA
 *    version count as "simple"); on a CPU context the code path that ran: "scalar", "avx2", "avx512" or
 *    "avx512_bf16" (a kernel without AVX-512F code of its own runs "avx2" on an MOE4J_ISA_AVX512 context).
 *  - reason: why a fallback ran where a better variant exists ("compute capability 8.9: the wgmma kernel needs 9.0",
 *    "MOE4J_CONTEXT_SIMPLE_KERNELS", "rows of 'a' are not 16-byte aligned", ...) and, on the CPU, which sub-kernel
 *    ran where the path alone does not say ("row kernel", "packed-panel kernel: groups of 64 or more rows"); "" when
 *    there is nothing to add.
 */
typedef struct moe4j_kernel_variant {
    char kernel[48];
    char variant[24];
    char reason[96];
    int64_t calls;
} moe4j_kernel_variant;

typedef struct moe4j_context moe4j_context;

/* The calling thread's message for its most recent failed call; "" if none. Valid until the next call. */
const char *moe4j_last_error(void);

moe4j_status moe4j_query_capabilities(moe4j_capabilities *out);

moe4j_status moe4j_context_create(const moe4j_context_options *options, moe4j_context **out);
/* Destroys the context and joins its threads; null is accepted and does nothing. */
moe4j_status moe4j_context_destroy(moe4j_context *ctx);
moe4j_status moe4j_context_query(const moe4j_context *ctx, moe4j_context_info *out);

/*
 * The context's kernel-variant counts since its creation or the last moe4j_context_reset_kernel_variants: one entry
 * per distinct (kernel, variant, reason), in the order each was first seen. A call is counted once it has run (CPU)
 * or been enqueued (CUDA); calls rejected by validation are not counted. *count receives the number of entries;
 * with out null and capacity 0 nothing else is written (ask for the size, then call again). Otherwise out must hold
 * capacity >= that number of entries, or the call fails with MOE4J_ERROR_INVALID_ARGUMENT naming 'capacity' and the
 * number needed, writing nothing. Host bookkeeping only: it never waits for the device, and like every call on a
 * context it must not run concurrently with another call on that context.
 */
moe4j_status moe4j_context_kernel_variants(const moe4j_context *ctx, moe4j_kernel_variant *out, int32_t capacity,
                                           int32_t *count);
/* Forgets the context's kernel-variant counts. */
moe4j_status moe4j_context_reset_kernel_variants(moe4j_context *ctx);

/* What moe4j_context_inject_fault provokes. */
enum moe4j_fault {
    MOE4J_FAULT_NONE = 0, /* disarms the context's faults (n must be 0) */
    /* The n-th allocation the context makes from the call on (n >= 1) fails once, as if memory were exhausted:
     * moe4j_alloc, and the growth of the context's own scratch (a CPU context's host scratch, where CPU kernels stage
     * rows, tiles and intermediates; a CUDA context's device scratch, used by most CUDA kernels). The call that makes
     * it returns MOE4J_ERROR_OUT_OF_MEMORY with a message naming what it was allocating and "(injected fault)". */
    MOE4J_FAULT_ALLOCATION = 1,
    /* CPU contexts only: in the next parallel run of the context's thread pool that has more than n tasks (n >= 0),
     * task n fails as an allocation inside it would (std::bad_alloc) instead of running, once: the entry point returns
     * MOE4J_ERROR_OUT_OF_MEMORY. Which thread runs task n is not fixed. */
    MOE4J_FAULT_TASK_OUT_OF_MEMORY = 2,
    /* As MOE4J_FAULT_TASK_OUT_OF_MEMORY, with an unexpected exception instead: MOE4J_ERROR_INTERNAL. */
    MOE4J_FAULT_TASK_EXCEPTION = 3
};

/*
 * Arms one fault on the context, replacing any armed before: for tests of failure handling (the status a failing
 * call returns, what it leaves behind, and that the context keeps working). A fault fires at most once, then the
 * context behaves normally; MOE4J_FAULT_NONE disarms. A task fault on a CUDA context, whose kernels run no host tasks,
 * is MOE4J_ERROR_UNSUPPORTED. Like every call on a context, not concurrently with another call on it.
 */
moe4j_status moe4j_context_inject_fault(moe4j_context *ctx, int32_t fault, int64_t n);

/*
 * Memory of the context's device: cudaMalloc'd (never managed) for a CUDA context, its contents undefined; zeroed
 * host memory for a CPU context, 64-byte aligned, and from 8 MiB on aligned to 2 MiB and advised for transparent huge
 * pages (model weights that kernels stream), zeroed on as many threads as the context has (the first touch faults
 * the pages in). bytes > 0. Free it with moe4j_free on a context of the same device. May be called while another
 * thread runs a kernel on the context (it uses none of the context's threads).
 */
moe4j_status moe4j_alloc(moe4j_context *ctx, int64_t bytes, void **out);
/* Frees memory from moe4j_alloc; null is accepted and does nothing. */
moe4j_status moe4j_free(moe4j_context *ctx, void *ptr);
/*
 * Copies src into dst: same dtype and shape, both contiguous, each in host memory or on a CUDA device (either side
 * may be another GPU than the context's: device-to-device copies use peer access where the GPUs allow it and are
 * staged through host memory where not). The tensors must not overlap. On a CUDA context the copy is ordered after
 * the context's earlier calls, and:
 *  - to host memory: returns when the data is in dst (it waits for the context's earlier work, and reports its
 *    asynchronous errors, as moe4j_synchronize does);
 *  - from host memory to a GPU: src may be reused when the call returns (pageable memory is staged by CUDA before
 *    the call returns; for page-locked memory, which CUDA would read later, the call waits for the copy);
 *  - between GPUs (or within one): enqueued; dst is written in stream order, like a kernel's output.
 */
moe4j_status moe4j_copy(moe4j_context *ctx, const moe4j_tensor *src, moe4j_tensor *dst);
/*
 * Waits until every call made on the context so far has finished on its device, then reports the first error that
 * arose after an earlier call returned (a device-side argument fault or a CUDA error; see "Execution" above). After
 * it returns, the outputs of those calls may be read by any context or thread. Returns MOE4J_OK at once on a CPU
 * context.
 */
moe4j_status moe4j_synchronize(moe4j_context *ctx);
/*
 * A hint that the context's next parallel call reads t (a weight matrix, say), for the time until it begins: on a CPU
 * context of more than one thread, the worker threads that wait for the next call issue cache prefetches for the
 * start of each thread's share of t's bytes (up to 4 MiB a thread), while the calling thread goes on with small
 * kernels or its own work. The context's next call that runs on more than one thread, or the next moe4j_prefetch,
 * cancels what is left. Only workers still awake take it (they wait awake for 2 ms after a call; a sleeping one is
 * not woken). Returns at once; writes nothing; t's memory may be freed afterwards (a prefetch never faults). t:
 * any dtype, rank 1..4, non-negative strides, in the memory of the context's device; the bytes it spans are the range.
 * On a CPU context of one thread, and on a CUDA context (where no such prefetch is built), it checks t and does
 * nothing more.
 */
moe4j_status moe4j_prefetch(moe4j_context *ctx, const moe4j_tensor *t);

/*
 * Element-wise conversion between F32, BF16 and E4M3, any pair, same shape, rank 1..4, innermost stride 1.
 * Rounds to nearest even; E4M3 saturates to +-448 (infinities too) and encodes NaN as 0x7F.
 */
moe4j_status moe4j_cast(moe4j_context *ctx, const moe4j_tensor *src, moe4j_tensor *dst);

/*
 * Per-token activation quantization (DeepGEMM per_token_cast_to_fp8).
 * x [M, K] F32 or BF16; q [M, K] E4M3; scales [M, ceil(K/128)] F32, any strides (DeepGEMM's
 * column-major layout included). For each row m and 128-wide block kb (the last one may be partial):
 * amax = max(max|x|, 1e-4), s = amax / 448 (rounded up to a power of two for UE8M0),
 * q = e4m3(x * (1/s)), scales[m, kb] = s.
 */
moe4j_status moe4j_quantize_fp8_per_token(moe4j_context *ctx, const moe4j_tensor *x, moe4j_tensor *q,
                                          moe4j_tensor *scales, int32_t scale_format);

/*
 * 128x128 block weight quantization (DeepGEMM per_block_cast_to_fp8). w [N, K] F32 or BF16;
 * q [N, K] E4M3; scale_inv [ceil(N/128), ceil(K/128)] F32. Edge blocks may be partial; their amax
 * covers only the elements that exist. Dequantization is w = q * scale_inv.
 */
moe4j_status moe4j_quantize_fp8_per_block(moe4j_context *ctx, const moe4j_tensor *w, moe4j_tensor *q,
                                          moe4j_tensor *scale_inv, int32_t scale_format);

/*
 * out[r, c] = e4m3_value(q[r, c]) * scales[r / block_rows, c / 128] for block_rows 1 (per-token
 * activations) or 128 (block weights). q [R, C] E4M3; scales [ceil(R/block_rows), ceil(C/128)] F32;
 * out [R, C] F32 or BF16.
 */
moe4j_status moe4j_dequantize_fp8(moe4j_context *ctx, const moe4j_tensor *q, const moe4j_tensor *scales,
                                  int32_t block_rows, moe4j_tensor *out);

/*
 * Packs FP8 weights for the CPU kernels: w [N, K] E4M3 with contiguous rows, N a multiple of 32; packed [N, K]
 * E4M3_P32 (see the dtype), contiguous, not overlapping w. Packed weights give each output of the FP8 GEMMs and the
 * expert FFN from one sequence of operations whatever the row count, on every context (docs/ABI.md, "Packed
 * weights"): the AVX-512 paths sum along K in order per output (the AVX512_BF16 path by element pairs), the
 * scalar and AVX2 paths give the bits of the unpacked weights. CUDA contexts refuse packed weights
 * (MOE4J_ERROR_UNSUPPORTED), this call included.
 */
moe4j_status moe4j_pack_fp8_weights(moe4j_context *ctx, const moe4j_tensor *w, moe4j_tensor *packed);

/*
 * FP8 GEMM "NT" (DeepGEMM fp8_gemm_nt): D[M, N] = C + sum over 128-wide K blocks kb of
 * (sum_k A[m, k] * B[n, k]) * sfa[m, kb] * sfb[n / 128, kb], accumulated in fp32.
 * a [M, K] E4M3; sfa [M, K/128] F32 (any strides); b [N, K] E4M3; sfb [ceil(N/128), K/128] F32 (any
 * strides); c null or [M, N] F32; d [M, N] F32 or BF16. K must be a positive multiple of 128; M and N are
 * arbitrary. d may be the very same F32 tensor as c (accumulate in place) and must not overlap anything else.
 */
moe4j_status moe4j_fp8_gemm_nt(moe4j_context *ctx, const moe4j_tensor *a, const moe4j_tensor *sfa,
                               const moe4j_tensor *b, const moe4j_tensor *sfb, const moe4j_tensor *c, moe4j_tensor *d);

/*
 * Grouped FP8 GEMM, contiguous layout (DeepGEMM m_grouped_fp8_gemm_nt_contiguous). a [S, K] holds the rows
 * of all groups, each group's rows contiguous and padded to a multiple of `alignment` rows; grouped_layout
 * I32 [S] gives each row's group in [0, G), or -1 for a padding row. Every block of `alignment` rows belongs
 * to one group (padding rows aside). b: G = b->count weight groups, each [N, K] with scales [ceil(N/128), K/128];
 * sfa [S, K/128]; d [S, N] F32 or BF16. Row r of d = row r of a times b group grouped_layout[r], transposed;
 * padding rows of d are zero.
 */
moe4j_status moe4j_grouped_fp8_gemm_contiguous(moe4j_context *ctx, const moe4j_tensor *a, const moe4j_tensor *sfa,
                                               const moe4j_fp8_weight_groups *b, const moe4j_tensor *grouped_layout,
                                               int32_t alignment, moe4j_tensor *d);

/*
 * Grouped FP8 GEMM, masked layout (DeepGEMM m_grouped_fp8_gemm_nt_masked). a [G, M_max, K];
 * sfa [G, M_max, K/128]; b: G = b->count weight groups, each [N, K] with scales [ceil(N/128), K/128];
 * masked_m I32 [G] with values in [0, M_max]; d [G, M_max, N] F32 or BF16. For each g, rows i < masked_m[g] get
 * a[g, i] times group g of b, transposed; rows at or past masked_m[g] are neither read nor written.
 */
moe4j_status moe4j_grouped_fp8_gemm_masked(moe4j_context *ctx, const moe4j_tensor *a, const moe4j_tensor *sfa,
                                           const moe4j_fp8_weight_groups *b, const moe4j_tensor *masked_m,
                                           moe4j_tensor *d);

/*
 * Quantizes weights for moe4j_q8_gemm_nt, one scale per row (the LM head's vocabulary entry): with
 * amax = max_k |w[n, k]|, q[n, k] = rint(w[n, k] * (127 / amax)) clamped to [-127, 127] and scales[n] = amax / 127
 * (float operations, rint to nearest even); a row of zeros gets codes 0 and scale 0, a row holding NaN or an infinity
 * codes 0 and scale NaN (its outputs are NaN). w [N, K] F32 or BF16, innermost stride 1, N a multiple of 16 and K a
 * positive multiple of 128; q [N, K] Q8_P16, contiguous; scales F32 [N], contiguous; neither overlaps w or the other.
 */
moe4j_status moe4j_quantize_q8_weights(moe4j_context *ctx, const moe4j_tensor *w, moe4j_tensor *q,
                                       moe4j_tensor *scales);

/*
 * Int8 GEMM "NT" (W8A8 with int32 products, llama.cpp's Q8_0 arithmetic at DeepSeek's 1x128 activation blocks):
 * each row of a is quantized per 128-wide block kb as moe4j_quantize_q8_weights quantizes a row (codes x[m, k],
 * scale sa[m, kb]), then
 *   D[m, n] = sfb[n] * sum over kb, in order, of sa[m, kb] * I(m, n, kb)
 * with I the exact int32 sum of x[m, k] * q[n, k] over the block and the sum one fused multiply-add per block into
 * an fp32 accumulator that starts at 0, then one float product. Every CPU path and CUDA give the same bits, and a row's
 * result depends on nothing but the row (batch invariance). The quantized activations live in the context's scratch.
 * a [M, K] F32 or BF16, innermost stride 1, K a positive multiple of 128; b [N, K] Q8_P16 (N a multiple of 16), as
 * moe4j_quantize_q8_weights writes it; sfb F32 [N], contiguous; d [M, N] F32, innermost stride 1, overlapping none of
 * the inputs. M >= 0.
 */
moe4j_status moe4j_q8_gemm_nt(moe4j_context *ctx, const moe4j_tensor *a, const moe4j_tensor *b, const moe4j_tensor *sfb,
                              moe4j_tensor *d);

/*
 * Unquantized GEMM "NT": D[M, N] = C + A·Bᵀ with fp32 accumulation, for the router gate and bf16
 * projections. a [M, K] and b [N, K] are both F32 or both BF16 (any K >= 1); c null or F32 [M, N];
 * d [M, N] F32 or BF16. bf16 products are exact in fp32, so the BF16 result differs from a float64 product
 * only by fp32 summation. d may be the very same F32 tensor as c and must not overlap anything else.
 * Batched: all operands of rank 3 instead, a [B, M, K], b [B, N, K], c [B, M, N], d [B, M, N] with any strides
 * but the innermost (MLA's per-head absorption: one call for all heads); batch i is the rank-2 product of the
 * i-th matrices, bit for bit what a rank-2 call on them gives.
 */
moe4j_status moe4j_gemm_nt(moe4j_context *ctx, const moe4j_tensor *a, const moe4j_tensor *b, const moe4j_tensor *c,
                           moe4j_tensor *d);

/*
 * Fused FP8 expert FFN over the contiguous layout (DeepSeek MoE experts): for each row r of group
 * g = grouped_layout[r] >= 0, with x_r the dequantized row,
 *   h = SiLU(x_r · w_gate[g]ᵀ) * (x_r · w_up[g]ᵀ)   (fp32),
 *   h is quantized per token (1x128, as moe4j_quantize_fp8_per_token with fp32 scales), and
 *   d[r] = h · w_down[g]ᵀ;
 * padding rows (-1) of d are zero. The intermediate h stays in the context's native scratch memory (host memory on the
 * CPU, device memory on CUDA), kept and reused by later calls, so a context's memory grows to what its largest call
 * needed.
 * x [S, H] E4M3 with sfx [S, H/128]; w_gate and w_up: G weight groups each, [I, H] E4M3 with scales
 * [ceil(I/128), H/128] (HF weight_scale_inv); w_down: G groups [H, I] with scales [ceil(H/128), I/128]; the three
 * have the same count G; H and I multiples of 128; grouped_layout and alignment as in
 * moe4j_grouped_fp8_gemm_contiguous; d [S, H] F32 or BF16.
 */
moe4j_status moe4j_fp8_expert_ffn_contiguous(moe4j_context *ctx, const moe4j_tensor *x, const moe4j_tensor *sfx,
                                             const moe4j_fp8_weight_groups *w_gate, const moe4j_fp8_weight_groups *w_up,
                                             const moe4j_fp8_weight_groups *w_down, const moe4j_tensor *grouped_layout,
                                             int32_t alignment, moe4j_tensor *d);

/*
 * MLA decode over a paged latent cache (FlashMLA flash_mla_with_kvcache semantics).
 * q [b, s_q, h_q, D] BF16; kcache [num_blocks, 64, h_kv, D] BF16, V being the first Dv dims of K (D = 576,
 * Dv = 512 in DeepSeek; any Dv <= D accepted), or the FP8 cache: U8 [num_blocks, 64, h_kv, 656] holding per
 * token 512 e4m3 latent dims, 4 fp32 scales (one per 128 of them) and 64 bf16 RoPE dims (then D = 576,
 * Dv <= 512); block_table I32 [b, max_blocks]; cache_seqlens I32 [b];
 * out [b, s_q, h_q, Dv] BF16 or F32; lse F32 [b, h_q, s_q] (natural log of the softmax denominator).
 * Query head h attends with kv head h / (h_q / h_kv). Token t of sequence i lives in block
 * block_table[i, t / 64], slot t % 64. Scores are softmax_scale * q·k. With causal (s_q > 1), query j of a
 * sequence of length L sees tokens t <= L - s_q + j; otherwise all L. A query that sees no token gets
 * out = 0 and lse = +inf. Cache slots past a sequence's length are never read.
 */
moe4j_status moe4j_mla_decode(moe4j_context *ctx, const moe4j_tensor *q, const moe4j_tensor *kcache,
                              const moe4j_tensor *block_table, const moe4j_tensor *cache_seqlens, float softmax_scale,
                              int32_t causal, moe4j_tensor *out, moe4j_tensor *lse);

/*
 * Writes new tokens' latent vectors into a paged MLA cache. kv [n, h_kv, 576] BF16 (512 latent dims then 64
 * RoPE dims); slot_mapping I32 [n]: the cache slot of each token, block * 64 + offset, or -1 to skip it.
 * kcache BF16 [num_blocks, 64, h_kv, 576] (copied as is) or U8 [num_blocks, 64, h_kv, 656] (FP8 cache:
 * each 128 latent dims quantized with scale = max(amax, 1e-4) / 448, RoPE dims kept in bf16).
 * Two tokens must not share a slot.
 */
moe4j_status moe4j_mla_cache_append(moe4j_context *ctx, const moe4j_tensor *kv, const moe4j_tensor *slot_mapping,
                                    moe4j_tensor *kcache);

/*
 * Expert-parallel dispatch, the gather half (DeepEP dispatch's layout step): dst[r] = src[index[r]], or zeros where
 * index[r] is -1. src [T, C] and dst [R, C] of one dtype (any), innermost stride 1; index I32 [R] with values in
 * [-1, T). Copies bytes: FP8 codes and their F32 scales are gathered by two calls with the same index.
 */
moe4j_status moe4j_gather_rows(moe4j_context *ctx, const moe4j_tensor *src, const moe4j_tensor *index,
                               moe4j_tensor *dst);

/*
 * Expert-parallel combine (DeepEP combine): out[t] = base[t] + sum over j = 0 .. k-1, in that order, of
 * weights[t, j] * rows[index[t, j]], each term one fused multiply-add into an fp32 accumulator; index -1 adds
 * nothing. rows [R, H] BF16 or F32, innermost stride 1; index I32 [T, k] with values in [-1, R); weights F32 [T, k];
 * base null (zeros) or F32 [T, H]; out F32 [T, H], innermost stride 1, overlapping none of the inputs. The fixed
 * order makes the result independent of where the rows were computed.
 */
moe4j_status moe4j_combine_rows(moe4j_context *ctx, const moe4j_tensor *rows, const moe4j_tensor *index,
                                const moe4j_tensor *weights, const moe4j_tensor *base, moe4j_tensor *out);

/*
 * RMSNorm with the residual add before it and the cast after it (DeepSeek's RMSNorm on the residual stream), per
 * row t of [T, D]: s = x[t] (+ residual[t]), y[t] = s * inv * weight with inv = 1 / sqrt(sum(s²) / D + eps), all
 * in fp32. sum(s²) is one fixed sequence of operations on every path and backend: 16 lanes, lane l accumulating
 * s[i]² for i = l, l + 16, ... with fused multiply-adds, then the lanes summed pairwise (l + 8, then + 4, + 2, + 1);
 * inv is computed in double from the float mean and rounded to float. A row's result therefore depends on nothing
 * but the row (batch invariance) and is the same on every CPU path and on CUDA.
 * x [T, D] F32 or BF16; residual null or F32 [T, D]; weight F32 [D] (contiguous); eps > 0 and finite;
 * sum_out null or F32 [T, D]: receives s, and may be the very same tensor as x or residual (in place);
 * y [T, D] F32 or BF16, overlapping nothing. Rows may be strided (e.g. the first 512 dims of [T, 576] rows); the
 * innermost stride of every [T, D] operand is 1.
 */
moe4j_status moe4j_rms_norm(moe4j_context *ctx, const moe4j_tensor *x, const moe4j_tensor *residual,
                            const moe4j_tensor *weight, float eps, moe4j_tensor *sum_out, moe4j_tensor *y);

/*
 * Rotary position embedding of interleaved pairs (DeepSeek's apply_rotary_emb, YaRN frequencies precomputed by the
 * caller): for token t, head h and pair i, with a = float(positions[t]) * freqs[i] (a float product),
 * c = float(cos(double(a))) * rotation_scale and s = float(sin(double(a))) * rotation_scale (float products),
 *   out[t, h, 2i]     = x[t, h, 2i] * c - x[t, h, 2i+1] * s,
 *   out[t, h, 2i + 1] = x[t, h, 2i] * s + x[t, h, 2i+1] * c,
 * every product and sum rounded to float on its own (no fused multiply-add), as Java's float arithmetic does.
 * x [T, H, R] F32 or BF16 (R even); positions I32 [T], values >= 0; freqs F32 [R/2]; out [T, H, R] F32 or BF16,
 * which may be the very same tensor as x (in place) and must not overlap anything else. Innermost strides 1.
 */
moe4j_status moe4j_rope(moe4j_context *ctx, const moe4j_tensor *x, const moe4j_tensor *positions,
                        const moe4j_tensor *freqs, float rotation_scale, moe4j_tensor *out);

/*
 * The gated MLP's activation: out = silu(gate) * up with silu(a) = a / (1 + exp(-a)), in fp32. exp is one fixed
 * polynomial on every path and backend (Cephes expf: n = rint(x·log2 e), r = x - n·ln 2 in two fused steps, a
 * degree-7 polynomial by fused multiply-adds, times 2^n; x clamped to [-87, 88], which changes silu only where
 * |silu| < 1e-35), so results are the same bits on every CPU path and on CUDA; within 2 ulp of the exact exp.
 * gate, up [T, N] F32 or BF16 (each its own); out [T, N] F32 or BF16, which may be the very same tensor as gate
 * or up (in place) and must not overlap anything else. Innermost strides 1.
 */
moe4j_status moe4j_silu_mul(moe4j_context *ctx, const moe4j_tensor *gate, const moe4j_tensor *up, moe4j_tensor *out);

/*
 * What sampling needs of each row of logits (version 9 of the ABI): for row b of logits F32 [B, V] (V >= 1,
 * innermost stride 1),
 *   - a row holding NaN or +Infinity: argmax[b] = the index of the first such logit, sum_exp[b] = NaN;
 *   - a row of -Infinity only: argmax[b] = 0, sum_exp[b] = 0;
 *   - otherwise argmax[b] = the first index of the largest logit m, and sum_exp[b] = S rounded to float, where
 *     S = sum over i of exp(double(logits[b][i]) - m) in double, so that log_softmax = logit - m - log(sum_exp).
 * S is one fixed sequence of operations on every path and backend: 64 lanes, lane l adding the terms of elements
 * l, l + 64, ... in order, the lanes then added pairwise (l + 32, + 16, ..., + 1); exp(x) for x <= 0 is
 * k = rint(x·log2 e), r = x - k·ln 2 by two fused multiply-adds (ln 2 in two parts), the Taylor series of exp(r) to
 * r^13 by fused multiply-adds, times 2^k, and 0 for x < -708. argmax I32 [B] and sum_exp F32 [B] (any stride)
 * overlap nothing. Results depend on nothing but the row.
 */
moe4j_status moe4j_logits_stats(moe4j_context *ctx, const moe4j_tensor *logits, moe4j_tensor *argmax,
                                moe4j_tensor *sum_exp);

#ifdef __cplusplus
}
#endif

#endif /* MOE4J_H */
