// The FP8 GEMM family and the unquantized GEMM on CUDA, simple version: one thread per output element, the
// activation row's current 128-wide K block staged in shared memory, fp32 sums per K block promoted with the two
// scales into an fp32 accumulator (DeepGEMM's promotion). Layouts arrive as the API layer's row groups.
#include <cuda_runtime.h>

#include <vector>

#include "../core/views.h"
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

__global__ void gemm_kernel(Rows a, Rows b, Rows c, bool has_c, Rows d, int64_t k) {
    __shared__ float a_chunk[kBlock];
    const int64_t row = blockIdx.x, col = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
    float sum = 0.0f;
    for (int64_t k0 = 0; k0 < k; k0 += kBlock) {
        __syncthreads();
        if (k0 + threadIdx.x < k) a_chunk[threadIdx.x] = load_float(a.row(row), k0 + threadIdx.x, a.dtype);
        __syncthreads();
        if (col < b.rows) {
            const char *brow = b.row(col);
            const int64_t end = k - k0 < kBlock ? k - k0 : kBlock;
            for (int64_t i = 0; i < end; ++i) sum = fmaf(a_chunk[i], load_float(brow, k0 + i, b.dtype), sum);
        }
    }
    if (col < b.rows)
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
    for (int64_t r : args.zero_rows) tasks.push_back({nullptr, nullptr, 0, d.row<char>(r), nullptr, -1});
    if (tasks.empty() || args.n == 0) return MOE4J_OK;
    DeviceBuffer device_tasks, device_groups;
    if (moe4j_status s = device_tasks.upload(fn, tasks)) return s;
    if (moe4j_status s = device_groups.upload(fn, groups)) return s;
    const dim3 grid(static_cast<unsigned>(tasks.size()), static_cast<unsigned>((args.n + kBlock - 1) / kBlock));
    fp8_gemm_kernel<<<grid, kBlock, 0, ctx->cuda->stream>>>(
        device_tasks.as<RowTask>(), device_groups.as<GroupWeights>(), args.n, args.k, args.d->dtype);
    return finish(fn, ctx);
}

moe4j_status gemm_nt(const char *fn, moe4j_context *ctx, const moe4j_tensor &a, const moe4j_tensor &b,
                     const moe4j_tensor *c, const moe4j_tensor &d) {
    const int64_t m = a.shape[0], n = b.shape[0], k = a.shape[1];
    if (m == 0 || n == 0) return MOE4J_OK;
    const dim3 grid(static_cast<unsigned>(m), static_cast<unsigned>((n + kBlock - 1) / kBlock));
    gemm_kernel<<<grid, kBlock, 0, ctx->cuda->stream>>>(Rows::of(a), Rows::of(b), c != nullptr ? Rows::of(*c) : Rows{},
                                                        c != nullptr, Rows::of(d), k);
    return finish(fn, ctx);
}

}  // namespace moe4j::cuda
