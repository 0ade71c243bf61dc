// The FP8 GEMM family and the unquantized GEMM on CUDA. Layouts arrive as the API layer's groups of rows; each row
// becomes a task (its A, scale, C and D row pointers and its weight group), so one kernel serves the plain, the
// grouped-contiguous and the grouped-masked layouts.
//
// Two FP8 kernels, the same arithmetic: per 128-wide K block, the fp32 sum of the FP8 products is promoted into the
// fp32 accumulator with both scales (DeepGEMM's promotion).
//  - simple: one thread per output element, the activation row's K block staged in shared memory. Any device.
//  - tuned (sm_90a): 128x128 output tiles of one weight group, two warpgroups issuing wgmma m64n128k32 over a
//    4-stage cp.async pipeline of 128-byte-swizzled A and B tiles. Chosen on compute capability 9.0 when the
//    context does not ask for the simple kernels and every row is 16-byte aligned.
// Both compute each output row from its own A row with one fixed sequence of operations, so results do not depend on
// how rows are grouped (MOE4J_CONTEXT_REPRODUCIBLE holds for either).
#include <cuda_runtime.h>

#include <string>
#include <vector>

#include "../core/views.h"
#include "async_copy.cuh"
#include "cuda_backend.h"
#include "cuda_state.h"
#include "device_views.cuh"
#include "fp8_device.cuh"

namespace moe4j::cuda {
namespace {

constexpr int kBlock = 128;

struct RowTask {
    const uint8_t *a;  // e4m3 [K]
    const float *sfa;  // sfa[kb * sfa_step]
    int64_t sfa_step;
    char *d;         // F32 or BF16 [N]
    const float *c;  // F32 [N] or null
    int32_t group;   // -1: a padding row, written as zeros
};

struct GroupWeights {
    const uint8_t *b;
    int64_t ldb;
    const float *sfb;
    int64_t sfb_stride0, sfb_stride1;
};

__global__ void fp8_gemm_kernel(const RowTask *tasks, const GroupWeights *groups, int64_t n, int64_t k,
                                int32_t d_dtype) {
    __shared__ float a_block[kBlock];
    // rows on x (up to 2^31 - 1 blocks), 128-column groups on y
    const RowTask t = tasks[blockIdx.x];
    const int64_t col = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
    if (t.group < 0) {
        if (col < n) store_float(t.d, col, d_dtype, 0.0f);
        return;
    }
    const GroupWeights w = groups[t.group];
    float total = 0.0f;
    for (int64_t kb = 0; kb < k / kBlock; ++kb) {
        __syncthreads();
        a_block[threadIdx.x] = e4m3_decode(t.a[kb * kBlock + threadIdx.x]);
        __syncthreads();
        if (col < n) {
            const uint8_t *b = w.b + col * w.ldb + kb * kBlock;
            float part = 0.0f;
            for (int i = 0; i < kBlock; ++i) part = fmaf(a_block[i], e4m3_decode(b[i]), part);
            total =
                fmaf(part, t.sfa[kb * t.sfa_step] * w.sfb[(col / kBlock) * w.sfb_stride0 + kb * w.sfb_stride1], total);
        }
    }
    if (col < n) store_float(t.d, col, d_dtype, (t.c != nullptr ? t.c[col] : 0.0f) + total);
}

// ---- the tuned kernel (sm_90a) ----

constexpr int kTileRows = 128, kTileCols = 128, kStages = 4, kTunedThreads = 256;
constexpr int kTileBytes = kTileRows * kBlock;                   // one 128-byte K block per row
constexpr int kStageBytes = 2 * kTileBytes;                      // A tile, then B tile
constexpr int kTunedSharedBytes = kStages * kStageBytes + 1024;  // + slack to align the tiles to 1024 bytes

// Up to 128 consecutive tasks of one group: one tile row of the output.
struct Tile {
    int32_t first_task, rows, group;
};

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ == 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
// wgmma's shared-memory matrix descriptor for a K-major tile of 128-byte rows in the 128-byte swizzle (16-byte
// chunk c of row r stored at chunk c ^ (r % 8); the tile 1024-byte aligned): 8-row groups 1024 bytes apart, the
// leading-dimension offset unused.
__device__ inline uint64_t swizzled_tile(uint32_t address) {
    return static_cast<uint64_t>((address & 0x3FFFF) >> 4) | (static_cast<uint64_t>(1024 >> 4) << 32) | (1ull << 62);
}

// d (+)= A[64 x 32] * B[128 x 32]^T, e4m3 inputs, fp32 accumulators in wgmma's fragment layout.
__device__ inline void wgmma_m64n128k32(float (&d)[64], uint64_t a, uint64_t b, int accumulate) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, "
        "%23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, "
        "%45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, "
        "1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),
          "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]),
          "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]),
          "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]),
          "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]),
          "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]),
          "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]),
          "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "l"(a), "l"(b), "r"(accumulate));
}

// Keeps the compiler from moving accumulator reads or writes across the asynchronous MMAs.
__device__ inline void fence_accumulators(float (&d)[64]) {
    for (float &v : d) asm volatile("" : "+f"(v)::"memory");
}
#endif

// One CTA computes one 128x128 tile of D: rows of one Tile, columns n0..n0+127. Every thread copies 4 rows' 16-byte
// chunks of A and of B per stage; warpgroup g multiplies rows 64g..64g+63. Rows past the tile and columns past N are
// zero-filled in shared memory and not stored.
__global__ void __launch_bounds__(kTunedThreads, 1)
    fp8_gemm_wgmma_kernel(const RowTask *tasks, const Tile *tiles, const GroupWeights *groups, int64_t n, int64_t k,
                          int32_t d_dtype) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ == 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
    extern __shared__ uint8_t shared[];
    const uint32_t base = (shared_address(shared) + 1023) & ~1023u;
    const Tile tile = tiles[blockIdx.x];
    const GroupWeights w = groups[tile.group];
    const int64_t n0 = static_cast<int64_t>(blockIdx.y) * kTileCols;
    const int tid = threadIdx.x, chunk = tid % 8;

    const uint8_t *a_src[4], *b_src[4];
    bool a_valid[4], b_valid[4];
    uint32_t offset[4];
    for (int i = 0; i < 4; ++i) {
        const int r = tid / 8 + 32 * i;
        a_valid[i] = r < tile.rows;
        b_valid[i] = n0 + r < n;
        a_src[i] = tasks[tile.first_task + (a_valid[i] ? r : 0)].a + chunk * 16;
        b_src[i] = w.b + (b_valid[i] ? n0 + r : 0) * w.ldb + chunk * 16;
        offset[i] = r * kBlock + ((chunk ^ (r % 8)) * 16);
    }
    const auto load_stage = [&](int stage, int64_t kb) {
        const uint32_t a_tile = base + stage * kStageBytes, b_tile = a_tile + kTileBytes;
        for (int i = 0; i < 4; ++i) {
            copy_16_async(a_tile + offset[i], a_src[i] + kb * kBlock, a_valid[i]);
            copy_16_async(b_tile + offset[i], b_src[i] + kb * kBlock, b_valid[i]);
        }
    };

    // This thread's accumulator rows (wgmma's layout): row0 and row0 + 8 of its warp's 16.
    const int warpgroup = tid / 128, lane = tid % 32;
    const int row0 = warpgroup * 64 + (tid % 128) / 32 * 16 + lane / 4, row1 = row0 + 8;
    const RowTask *t0 = row0 < tile.rows ? &tasks[tile.first_task + row0] : nullptr;
    const RowTask *t1 = row1 < tile.rows ? &tasks[tile.first_task + row1] : nullptr;
    const float *sfb = w.sfb + (n0 / kBlock) * w.sfb_stride0;

    float total[64], part[64];
    for (int i = 0; i < 64; ++i) total[i] = part[i] = 0.0f;
    const int64_t k_blocks = k / kBlock;
    for (int s = 0; s < kStages - 1; ++s) {
        if (s < k_blocks) load_stage(s, s);
        commit_copies();
    }
    for (int64_t kb = 0; kb < k_blocks; ++kb) {
        wait_copies<kStages - 2>();
        // cp.async writes through the generic proxy, wgmma reads through the async proxy
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
        __syncthreads();  // stage kb is complete, and every warpgroup is done with the stage refilled next
        if (kb + kStages - 1 < k_blocks) load_stage(static_cast<int>((kb + kStages - 1) % kStages), kb + kStages - 1);
        commit_copies();

        const uint32_t a_tile = base + static_cast<uint32_t>(kb % kStages) * kStageBytes;
        const uint32_t a_rows = a_tile + warpgroup * 64 * kBlock, b_rows = a_tile + kTileBytes;
        fence_accumulators(part);
        asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
        for (int s = 0; s < kBlock / 32; ++s)
            wgmma_m64n128k32(part, swizzled_tile(a_rows + s * 32), swizzled_tile(b_rows + s * 32), s);
        asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
        asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
        fence_accumulators(part);

        const float scale_b = sfb[kb * w.sfb_stride1];
        const float scale0 = t0 != nullptr ? t0->sfa[kb * t0->sfa_step] * scale_b : 0.0f;
        const float scale1 = t1 != nullptr ? t1->sfa[kb * t1->sfa_step] * scale_b : 0.0f;
        for (int i = 0; i < 64; ++i) total[i] = fmaf(part[i], (i & 2) ? scale1 : scale0, total[i]);
    }

    for (int i = 0; i < 64; ++i) {
        const RowTask *t = (i & 2) ? t1 : t0;
        const int64_t col = n0 + 8 * (i / 4) + 2 * (lane % 4) + (i % 2);
        if (t != nullptr && col < n) store_float(t->d, col, d_dtype, (t->c != nullptr ? t->c[col] : 0.0f) + total[i]);
    }
#else
    __trap();  // the host launches this only where the sm_90a code exists (see tuned_fits)
#endif
}

// Whether the tuned kernel can take these operands: 16-byte aligned rows of A and B (cp.async copies 16 bytes).
bool tuned_fits(const moe4j_context *ctx, const std::vector<RowTask> &tasks, const std::vector<GroupWeights> &groups) {
    if (ctx->simple_kernels() || ctx->cuda->compute_capability != 90 ||
        ctx->cuda->max_shared_per_block < kTunedSharedBytes)
        return false;
    // the sm_90a code must be what this device loads (not a PTX or other-architecture build of the kernel)
    cudaFuncAttributes attributes{};
    if (cudaFuncGetAttributes(&attributes, fp8_gemm_wgmma_kernel) != cudaSuccess || attributes.binaryVersion != 90) {
        cudaGetLastError();
        return false;
    }
    for (const RowTask &t : tasks)
        if (t.group >= 0 && reinterpret_cast<uintptr_t>(t.a) % 16 != 0) return false;
    for (const GroupWeights &g : groups)
        if (reinterpret_cast<uintptr_t>(g.b) % 16 != 0 || g.ldb % 16 != 0) return false;
    return true;
}

moe4j_status launch_tuned(const char *fn, moe4j_context *ctx, const std::vector<RowTask> &tasks, size_t row_tasks,
                          const RowTask *device_tasks, const GroupWeights *device_groups, int64_t n, int64_t k,
                          int32_t d_dtype) {
    std::vector<Tile> tiles;
    for (size_t first = 0; first < row_tasks;) {
        size_t end = first;
        while (end < row_tasks && end - first < kTileRows && tasks[end].group == tasks[first].group) ++end;
        tiles.push_back({static_cast<int32_t>(first), static_cast<int32_t>(end - first), tasks[first].group});
        first = end;
    }
    DeviceBuffer device_tiles;
    if (moe4j_status s = device_tiles.upload(fn, ctx->cuda->stream, tiles)) return s;
    if (moe4j_status s =
            check(fn, cudaFuncSetAttribute(fp8_gemm_wgmma_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           kTunedSharedBytes)))
        return s;
    const dim3 grid(static_cast<unsigned>(tiles.size()), static_cast<unsigned>((n + kTileCols - 1) / kTileCols));
    fp8_gemm_wgmma_kernel<<<grid, kTunedThreads, kTunedSharedBytes, ctx->cuda->stream>>>(
        device_tasks, device_tiles.as<Tile>(), device_groups, n, k, d_dtype);
    return finish(fn, ctx);
}

// Row `row` of a (and c, d) flattened over [B, M]: batch row / m, whose b rows start at (row / m) * n.
__global__ void gemm_kernel(Rows a, Rows b, Rows c, bool has_c, Rows d, int64_t m, int64_t n, int64_t k) {
    __shared__ float a_chunk[kBlock];
    const int64_t row = blockIdx.x, col = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
    float sum = 0.0f;
    for (int64_t k0 = 0; k0 < k; k0 += kBlock) {
        __syncthreads();
        if (k0 + threadIdx.x < k) a_chunk[threadIdx.x] = load_float(a.row(row), k0 + threadIdx.x, a.dtype);
        __syncthreads();
        if (col < n) {
            const char *brow = b.row((row / m) * n + col);
            const int64_t end = k - k0 < kBlock ? k - k0 : kBlock;
            for (int64_t i = 0; i < end; ++i) sum = fmaf(a_chunk[i], load_float(brow, k0 + i, b.dtype), sum);
        }
    }
    if (col < n)
        store_float(d.row(row), col, d.dtype, (has_c ? reinterpret_cast<const float *>(c.row(row))[col] : 0.0f) + sum);
}

}  // namespace

moe4j_status fp8_gemm(const char *fn, moe4j_context *ctx, const cpu::Fp8GemmArgs &args) {
    const RowView a(*args.a), sfa(*args.sfa), d(*args.d);
    const int64_t sfa_step = args.sfa->strides[args.sfa->rank - 1];
    std::vector<RowTask> tasks;
    std::vector<GroupWeights> groups;
    for (size_t g = 0; g < args.groups.size(); ++g) {
        const cpu::GemmGroup &group = args.groups[g];
        groups.push_back({group.b, group.ldb, group.sfb, group.sfb_stride0, group.sfb_stride1});
        for (int64_t r : group.rows)
            tasks.push_back({a.row<uint8_t>(r), sfa.row<float>(r), sfa_step, d.row<char>(r),
                             args.c != nullptr ? RowView(*args.c).row<float>(r) : nullptr, static_cast<int32_t>(g)});
    }
    const size_t row_tasks = tasks.size();  // then the padding rows
    for (int64_t r : args.zero_rows) tasks.push_back({nullptr, nullptr, 0, d.row<char>(r), nullptr, -1});
    if (tasks.empty() || args.n == 0) return MOE4J_OK;
    cudaStream_t stream = ctx->cuda->stream;
    DeviceBuffer device_tasks, device_groups;
    if (moe4j_status s = device_tasks.upload(fn, stream, tasks)) return s;
    if (moe4j_status s = device_groups.upload(fn, stream, groups)) return s;
    const int64_t column_blocks = (args.n + kBlock - 1) / kBlock;
    if (column_blocks > 65535)  // CUDA's grid y limit
        return fail(MOE4J_ERROR_UNSUPPORTED, std::string(fn) + ": N = " + std::to_string(args.n) +
                                                 " exceeds the CUDA kernels' limit of 65535 x 128 columns");
    size_t simple_first = 0;  // the tasks the simple kernel takes
    if (row_tasks > 0 && tuned_fits(ctx, tasks, groups)) {
        if (moe4j_status s = launch_tuned(fn, ctx, tasks, row_tasks, device_tasks.as<RowTask>(),
                                          device_groups.as<GroupWeights>(), args.n, args.k, args.d->dtype))
            return s;
        simple_first = row_tasks;
    }
    if (simple_first == tasks.size()) return MOE4J_OK;
    const dim3 grid(static_cast<unsigned>(tasks.size() - simple_first), static_cast<unsigned>(column_blocks));
    fp8_gemm_kernel<<<grid, kBlock, 0, stream>>>(device_tasks.as<RowTask>() + simple_first,
                                                 device_groups.as<GroupWeights>(), args.n, args.k, args.d->dtype);
    return finish(fn, ctx);
}

moe4j_status gemm_nt(const char *fn, moe4j_context *ctx, const moe4j_tensor &a, const moe4j_tensor &b,
                     const moe4j_tensor *c, const moe4j_tensor &d) {
    const int rank = a.rank;
    const int64_t batches = rank == 3 ? a.shape[0] : 1;
    const int64_t m = a.shape[rank - 2], n = b.shape[rank - 2], k = a.shape[rank - 1];
    if (batches == 0 || m == 0 || n == 0) return MOE4J_OK;
    const dim3 grid(static_cast<unsigned>(batches * m), static_cast<unsigned>((n + kBlock - 1) / kBlock));
    gemm_kernel<<<grid, kBlock, 0, ctx->cuda->stream>>>(Rows::of(a), Rows::of(b), c != nullptr ? Rows::of(*c) : Rows{},
                                                        c != nullptr, Rows::of(d), m, n, k);
    return finish(fn, ctx);
}

}  // namespace moe4j::cuda
