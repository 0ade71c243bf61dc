// The FP8 GEMM family and the unquantized GEMM on CUDA. One pair of kernels serves the plain, the grouped-contiguous
// and the grouped-masked layouts: each row of A finds its weight group through RowGroups, from the layout table as
// prepare_rows checked it on the device (the host never reads the table: a bad entry is flagged, and its row zeroed
// or skipped, never used as an index).
//
// Two FP8 kernels, the same arithmetic: per 128-wide K block, the fp32 sum of the FP8 products is promoted into the
// fp32 accumulator with both scales (DeepGEMM's promotion).
//  - simple: one thread per output element, the activation row's K block staged in shared memory. Any device.
//  - tuned (sm_90a): 128x128 output tiles of one weight group, two warpgroups issuing wgmma m64n128k32 over a
//    4-stage cp.async pipeline of 128-byte-swizzled A and B tiles. Chosen on compute capability 9.0 when the
//    context does not ask for the simple kernels and every row is 16-byte aligned (tuned_refusal says why not).
//    A tile is a 128-row window of one group: the plain layout's windows, the masked layout's windows of each group,
//    and for the contiguous layout each (window, group) pair that prepare_rows finds, so that groups of any
//    alignment share no tile.
// Both compute each output row from its own A row with one fixed sequence of operations, so results do not depend on
// how rows are grouped (MOE4J_CONTEXT_REPRODUCIBLE holds for either).
#include <cuda_runtime.h>

#include <algorithm>
#include <string>
#include <vector>

#include "../core/views.h"
#include "async_copy.cuh"
#include "cuda_backend.h"
#include "cuda_state.h"
#include "device_views.cuh"
#include "fp8_device.cuh"
#include "fp8_gemm.cuh"

namespace moe4j::cuda {
namespace {

constexpr int kBlock = kGemmBlock;

// Rows on x (up to 2^31 - 1 blocks), 128-column groups on y.
__global__ void fp8_gemm_kernel(GemmOperands op, RowGroups rg) {
    __shared__ float a_block[kBlock];
    const int64_t row = blockIdx.x;
    const int32_t group = rg.group_of(row);
    if (group == kUntouched) return;  // the whole block
    const int64_t col = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
    char *d = op.d.row(row);
    if (group < 0) {
        if (col < op.n) store_float(d, col, op.d.dtype, 0.0f);
        return;
    }
    const GroupWeights w = op.group(group);
    const auto *a = reinterpret_cast<const uint8_t *>(op.a.row(row));
    const auto *sfa = reinterpret_cast<const float *>(op.sfa.row(row));
    float total = 0.0f;
    for (int64_t kb = 0; kb < op.k / kBlock; ++kb) {
        __syncthreads();
        a_block[threadIdx.x] = e4m3_decode(a[kb * kBlock + threadIdx.x]);
        __syncthreads();
        if (col < op.n) {
            const uint8_t *b = w.b + col * w.ldb + kb * kBlock;
            float part = 0.0f;
            for (int i = 0; i < kBlock; ++i) part = fmaf(a_block[i], e4m3_decode(b[i]), part);
            total =
                fmaf(part, sfa[kb * op.sfa.inner_stride] * w.sfb[(col / kBlock) * w.sfb_stride0 + kb * w.sfb_stride1],
                     total);
        }
    }
    if (col < op.n)
        store_float(d, col, op.d.dtype,
                    (op.has_c ? reinterpret_cast<const float *>(op.c.row(row))[col] : 0.0f) + total);
}

// The contiguous layout's padding rows as zeros, beside the tuned kernel (which writes only its tiles' rows).
__global__ void zero_padding_kernel(GemmOperands op, RowGroups rg) {
    const int64_t row = blockIdx.x;
    if (rg.row_group[row] != -1) return;
    char *d = op.d.row(row);
    for (int64_t col = threadIdx.x; col < op.n; col += blockDim.x) store_float(d, col, op.d.dtype, 0.0f);
}

// One thread per row of the contiguous layout: the row's group checked (outside [-1, G): flagged, then padding),
// the alignment rule checked against the previous row of the block with a group, and, with tiles, the row's
// (window, group) pair recorded when the row is the first of its group in its 128-row window.
__global__ void contiguous_layout_kernel(const int32_t *layout, int64_t stride, int64_t rows, int64_t alignment,
                                         int64_t groups, int32_t *row_group, WindowGroup *tiles, int32_t *tile_count,
                                         int64_t tile_capacity, FaultSink faults) {
    const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    const auto checked = [&](int64_t i) {
        const int32_t g = layout[i * stride];
        return g < -1 || g >= groups ? -1 : g;
    };
    const int32_t raw = layout[r * stride];
    const int32_t g = checked(r);
    if (g != raw) report(faults, Fault::LayoutGroup, r, raw, groups);
    row_group[r] = g;
    if (g < 0) return;
    const int64_t block = r / alignment * alignment;
    for (int64_t p = r - 1; p >= block; --p) {
        const int32_t h = checked(p);
        if (h < 0) continue;
        if (h != g) report(faults, Fault::LayoutMixed, block, alignment, r, g, h);
        break;
    }
    if (tiles == nullptr) return;
    const int64_t window = r / 128;
    for (int64_t p = r - 1; p >= window * 128; --p)
        if (checked(p) == g) return;
    const int32_t slot = atomicAdd(tile_count, 1);
    if (slot < tile_capacity) tiles[slot] = {static_cast<int32_t>(window), g};
}

// One thread per group of the masked layout: its row count checked (outside [0, M_max]: flagged, then 0).
__global__ void masked_counts_kernel(const int32_t *masked_m, int64_t stride, int64_t groups, int64_t m_max,
                                     int32_t *counts, FaultSink faults) {
    const int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (g >= groups) return;
    const int32_t count = masked_m[g * stride];
    const bool valid = count >= 0 && count <= m_max;
    if (!valid) report(faults, Fault::MaskedCount, g, count, m_max);
    counts[g] = valid ? count : 0;
}

// ---- the tuned kernel (sm_90a) ----

constexpr int kTileRows = 128, kTileCols = 128, kStages = 4, kTunedThreads = 256;
constexpr int kTileBytes = kTileRows * kBlock;                   // one 128-byte K block per row
constexpr int kStageBytes = 2 * kTileBytes;                      // A tile, then B tile
constexpr int kTunedSharedBytes = kStages * kStageBytes + 1024;  // + slack to align the tiles to 1024 bytes

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

// One CTA computes one 128x128 tile of D: the rows of one tile (RowGroups::tile), columns n0..n0+127. Every thread
// copies 4 rows' 16-byte chunks of A and of B per stage; warpgroup g multiplies rows 64g..64g+63. Rows past the tile
// and columns past N are zero-filled in shared memory and not stored.
__global__ void __launch_bounds__(kTunedThreads, 1) fp8_gemm_wgmma_kernel(GemmOperands op, RowGroups rg) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ == 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
    extern __shared__ uint8_t shared[];
    const uint32_t base = (shared_address(shared) + 1023) & ~1023u;
    int32_t group = 0;
    int64_t first = 0;
    if (!rg.tile(blockIdx.x, &group, &first)) return;  // the whole block: a tile slot the layout left empty
    const GroupWeights w = op.group(group);
    const int64_t n = op.n, k = op.k;
    const int64_t n0 = static_cast<int64_t>(blockIdx.y) * kTileCols;
    const int tid = threadIdx.x, chunk = tid % 8;

    const uint8_t *a_src[4], *b_src[4];
    bool a_valid[4], b_valid[4];
    uint32_t offset[4];
    for (int i = 0; i < 4; ++i) {
        const int r = tid / 8 + 32 * i;
        a_valid[i] = rg.in_tile(group, first, r);
        b_valid[i] = n0 + r < n;
        a_src[i] = reinterpret_cast<const uint8_t *>(a_valid[i] ? op.a.row(first + r) : op.a.base) + chunk * 16;
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
    const bool valid0 = rg.in_tile(group, first, row0), valid1 = rg.in_tile(group, first, row1);
    const float *sfa0 = valid0 ? reinterpret_cast<const float *>(op.sfa.row(first + row0)) : nullptr;
    const float *sfa1 = valid1 ? reinterpret_cast<const float *>(op.sfa.row(first + row1)) : nullptr;
    const int64_t sfa_step = op.sfa.inner_stride;
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
        const float scale0 = valid0 ? sfa0[kb * sfa_step] * scale_b : 0.0f;
        const float scale1 = valid1 ? sfa1[kb * sfa_step] * scale_b : 0.0f;
        for (int i = 0; i < 64; ++i) total[i] = fmaf(part[i], (i & 2) ? scale1 : scale0, total[i]);
    }

    char *d_rows[2] = {valid0 ? op.d.row(first + row0) : nullptr, valid1 ? op.d.row(first + row1) : nullptr};
    const float *c_rows[2] = {valid0 && op.has_c ? reinterpret_cast<const float *>(op.c.row(first + row0)) : nullptr,
                              valid1 && op.has_c ? reinterpret_cast<const float *>(op.c.row(first + row1)) : nullptr};
    for (int i = 0; i < 64; ++i) {
        const int h = (i & 2) ? 1 : 0;
        const int64_t col = n0 + 8 * (i / 4) + 2 * (lane % 4) + (i % 2);
        if (d_rows[h] != nullptr && col < n)
            store_float(d_rows[h], col, op.d.dtype, (c_rows[h] != nullptr ? c_rows[h][col] : 0.0f) + total[i]);
    }
#else
    __trap();  // the host launches this only where the sm_90a code exists (see tuned_refusal)
#endif
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

int64_t windows_of(int64_t rows) { return (rows + kTileRows - 1) / kTileRows; }

}  // namespace

void LayoutParts::add(Scratch &scratch, const LayoutSpec &spec) {
    if (spec.layout == RowLayout::Masked) counts = scratch.add<int32_t>(spec.groups);
    if (spec.layout != RowLayout::Contiguous) return;
    row_group = scratch.add<int32_t>(spec.rows);
    // (window, group) pairs: at most one per row, at most G per window, and, while no alignment block mixes groups
    // (checked: a layout that does is flagged), at most one per window plus one per alignment block
    const int64_t windows = windows_of(spec.rows);
    tile_capacity = std::min({spec.rows, windows * spec.groups, windows + ceil_div(spec.rows, spec.alignment)});
    tiles = scratch.add<WindowGroup>(tile_capacity);
    tile_count = scratch.add<int32_t>(1);
}

moe4j_status prepare_rows(const Call &call, const LayoutSpec &spec, const Scratch &scratch, const LayoutParts &parts,
                          bool tiles, RowGroups *out) {
    RowGroups rg{};
    rg.layout = spec.layout;
    rg.rows = spec.rows;
    rg.windows = windows_of(spec.layout == RowLayout::Masked ? spec.m_max : spec.rows);
    constexpr int kThreads = 256;
    if (spec.layout == RowLayout::Masked) {
        rg.counts = scratch.at<int32_t>(parts.counts);
        rg.m_max = spec.m_max;
        masked_counts_kernel<<<static_cast<unsigned>(ceil_div(spec.groups, kThreads)), kThreads, 0, stream(call)>>>(
            static_cast<const int32_t *>(spec.masked_m->data), spec.masked_m->strides[0], spec.groups, spec.m_max,
            scratch.at<int32_t>(parts.counts), fault_sink(call));
    } else if (spec.layout == RowLayout::Contiguous) {
        rg.row_group = scratch.at<int32_t>(parts.row_group);
        if (tiles) {
            rg.tiles = scratch.at<WindowGroup>(parts.tiles);
            rg.tile_count = scratch.at<int32_t>(parts.tile_count);
            rg.tile_capacity = parts.tile_capacity;
            if (moe4j_status s = check(call.function(), cudaMemsetAsync(scratch.at<int32_t>(parts.tile_count), 0,
                                                                        sizeof(int32_t), stream(call))))
                return s;
        }
        if (spec.rows > 0)
            contiguous_layout_kernel<<<static_cast<unsigned>(ceil_div(spec.rows, kThreads)), kThreads, 0,
                                       stream(call)>>>(
                static_cast<const int32_t *>(spec.grouped_layout->data), spec.grouped_layout->strides[0], spec.rows,
                spec.alignment, spec.groups, scratch.at<int32_t>(parts.row_group),
                tiles ? scratch.at<WindowGroup>(parts.tiles) : nullptr,
                tiles ? scratch.at<int32_t>(parts.tile_count) : nullptr, parts.tile_capacity, fault_sink(call));
    }
    *out = rg;
    return launched(call);
}

moe4j_status upload_groups(const Call &call, const moe4j_tensor *weights, const moe4j_tensor *scales, int64_t groups,
                           const Scratch &scratch, size_t offset, GemmOperands *op) {
    std::vector<GroupWeights> table(static_cast<size_t>(groups));
    for (int64_t g = 0; g < groups; ++g)
        table[g] = {static_cast<const uint8_t *>(weights[g].data), weights[g].strides[0],
                    static_cast<const float *>(scales[g].data), scales[g].strides[0], scales[g].strides[1]};
    if (groups == 1) {
        op->single = table[0];
        op->groups = nullptr;
        return MOE4J_OK;
    }
    op->groups = scratch.at<GroupWeights>(offset);
    // From pageable memory: CUDA stages the table before returning, so `table` may go when we return.
    return check(call.function(),
                 cudaMemcpyAsync(scratch.at<GroupWeights>(offset), table.data(), table.size() * sizeof(GroupWeights),
                                 cudaMemcpyHostToDevice, stream(call)));
}

std::string tuned_refusal(const Call &call, const moe4j_tensor &a, const char *a_name, const moe4j_tensor *weights,
                          int64_t groups, const char *b_name) {
    const moe4j_context *ctx = call.ctx();
    DeviceState &s = state(call);
    if (ctx->simple_kernels()) return "MOE4J_CONTEXT_SIMPLE_KERNELS";
    if (s.compute_capability != 90)
        return "compute capability " + std::to_string(s.compute_capability / 10) + "." +
               std::to_string(s.compute_capability % 10) + ": the wgmma kernel needs 9.0";
    if (s.gemm_binary_version < 0) {
        // the sm_90a code must be what this device loads (not a PTX or other-architecture build of the kernel)
        cudaFuncAttributes attributes{};
        if (cudaFuncGetAttributes(&attributes, fp8_gemm_wgmma_kernel) != cudaSuccess) {
            cudaGetLastError();
            attributes.binaryVersion = 0;
        }
        s.gemm_binary_version = attributes.binaryVersion;
    }
    if (s.gemm_binary_version != 90)
        return "the library has no sm_90a code for this device (binaryVersion " +
               std::to_string(s.gemm_binary_version) + ")";
    if (s.max_shared_per_block < kTunedSharedBytes)
        return "needs " + std::to_string(kTunedSharedBytes) + " bytes of shared memory per block, the device allows " +
               std::to_string(s.max_shared_per_block);
    // cp.async copies 16 bytes: every row of A and of each weight group 16-byte aligned (K is a multiple of 128)
    bool aligned = reinterpret_cast<uintptr_t>(a.data) % 16 == 0;
    for (int i = 0; i < a.rank - 1; ++i) aligned = aligned && (a.shape[i] <= 1 || a.strides[i] % 16 == 0);
    if (!aligned) return std::string("rows of '") + a_name + "' are not 16-byte aligned";
    for (int64_t g = 0; g < groups; ++g)
        if (reinterpret_cast<uintptr_t>(weights[g].data) % 16 != 0 || weights[g].strides[0] % 16 != 0)
            return std::string("rows of '") + b_name + "' group " + std::to_string(g) + " are not 16-byte aligned";
    return "";
}

moe4j_status launch_fp8_gemm(const Call &call, const GemmOperands &op, const RowGroups &rows, bool tuned) {
    if (rows.rows == 0 || op.n == 0) return MOE4J_OK;
    const unsigned column_blocks = static_cast<unsigned>(ceil_div(op.n, kBlock));
    if (!tuned) {
        fp8_gemm_kernel<<<dim3(static_cast<unsigned>(rows.rows), column_blocks), kBlock, 0, stream(call)>>>(op, rows);
        return launched(call);
    }
    if (moe4j_status s = check(call.function(),
                               cudaFuncSetAttribute(fp8_gemm_wgmma_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                    kTunedSharedBytes)))
        return s;
    int64_t tiles = rows.windows;
    if (rows.layout == RowLayout::Masked) tiles = rows.windows * (rows.rows / std::max<int64_t>(1, rows.m_max));
    if (rows.layout == RowLayout::Contiguous) tiles = rows.tile_capacity;
    if (tiles > 0)
        fp8_gemm_wgmma_kernel<<<dim3(static_cast<unsigned>(tiles), static_cast<unsigned>(ceil_div(op.n, kTileCols))),
                                kTunedThreads, kTunedSharedBytes, stream(call)>>>(op, rows);
    if (rows.layout == RowLayout::Contiguous)
        zero_padding_kernel<<<static_cast<unsigned>(rows.rows), kBlock, 0, stream(call)>>>(op, rows);
    return launched(call);
}

GemmOperands gemm_operands(const moe4j_tensor &a, const moe4j_tensor &sfa, const moe4j_tensor *c, const moe4j_tensor &d,
                           int64_t n, int64_t k) {
    GemmOperands op{};
    op.a = Rows::of(a);
    op.sfa = Rows::of(sfa);
    op.has_c = c != nullptr;
    if (c != nullptr) op.c = Rows::of(*c);
    op.d = Rows::of(d);
    op.n = n;
    op.k = k;
    return op;
}

// Rows of A past CUDA's grid x limit, or columns past its grid y limit (in 128-column blocks), are refused.
static moe4j_status check_grid(const Call &call, int64_t rows, int64_t n) {
    if (rows > 0x7FFFFFFF)
        return fail(MOE4J_ERROR_UNSUPPORTED, std::string(call.function()) + ": " + std::to_string(rows) +
                                                 " rows exceed the CUDA kernels' limit of 2^31 - 1");
    if (ceil_div(n, kBlock) > 65535)
        return fail(MOE4J_ERROR_UNSUPPORTED, std::string(call.function()) + ": N = " + std::to_string(n) +
                                                 " exceeds the CUDA kernels' limit of 65535 x 128 columns");
    return MOE4J_OK;
}

moe4j_status fp8_gemm(const Call &call, const Fp8GemmCall &args) {
    const int64_t rows = RowView(*args.a).rows;
    if (moe4j_status s = check_grid(call, rows, args.n)) return s;
    const LayoutSpec spec{args.layout,
                          rows,
                          args.groups,
                          args.grouped_layout,
                          args.alignment,
                          args.masked_m,
                          args.layout == RowLayout::Masked ? args.a->shape[1] : 0};
    const std::string refusal = tuned_refusal(call, *args.a, "a", args.weights, args.groups, "b");
    const bool tuned = refusal.empty();
    Scratch scratch;
    LayoutParts parts;
    parts.add(scratch, spec);
    const size_t table = args.groups > 1 ? scratch.add<GroupWeights>(args.groups) : 0;
    if (moe4j_status s = scratch.reserve(call)) return s;
    GemmOperands op = gemm_operands(*args.a, *args.sfa, args.c, *args.d, args.n, args.k);
    if (moe4j_status s = upload_groups(call, args.weights, args.scales, args.groups, scratch, table, &op)) return s;
    RowGroups row_groups{};
    if (moe4j_status s = prepare_rows(call, spec, scratch, parts, tuned, &row_groups)) return s;
    if (moe4j_status s = launch_fp8_gemm(call, op, row_groups, tuned)) return s;
    count_variant(call, tuned ? "tuned" : "simple", refusal);
    return MOE4J_OK;
}

moe4j_status gemm_nt(const Call &call, const moe4j_tensor &a, const moe4j_tensor &b, const moe4j_tensor *c,
                     const moe4j_tensor &d) {
    const int rank = a.rank;
    const int64_t batches = rank == 3 ? a.shape[0] : 1;
    const int64_t m = a.shape[rank - 2], n = b.shape[rank - 2], k = a.shape[rank - 1];
    if (batches > 0 && m > 0 && n > 0) {
        if (moe4j_status s = check_grid(call, batches * m, n)) return s;
        const dim3 grid(static_cast<unsigned>(batches * m), static_cast<unsigned>((n + kBlock - 1) / kBlock));
        gemm_kernel<<<grid, kBlock, 0, stream(call)>>>(Rows::of(a), Rows::of(b), c != nullptr ? Rows::of(*c) : Rows{},
                                                       c != nullptr, Rows::of(d), m, n, k);
        if (moe4j_status s = launched(call)) return s;
    }
    count_variant(call, "simple", "");
    return MOE4J_OK;
}

}  // namespace moe4j::cuda
