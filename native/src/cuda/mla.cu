// MLA decode over the paged latent cache on CUDA, and appending tokens to the cache. Two decode kernels:
//  - simple: one thread block per (sequence, query, query head) walking the sequence's visible tokens with an online
//    softmax, each of its 128 threads owning 4 of the 512 output dims; fp32 throughout. Any device, D <= 576.
//  - tuned (sm_80 and newer; FlashMLA's scheme on mma.sync): one thread block per (KV split, sequence, kv head, 64
//    query rows). The rows sharing a kv head (s_q x h_q / h_kv of them) read each 32-token tile of the cache once from
//    shared memory; bf16 tensor-core products with fp32 accumulation; the FP8 cache is dequantized to bf16 in shared
//    memory. Long sequences are split over thread blocks and the partial results merged by their log-sum-exp.
//    Like FlashMLA it rounds the softmax weights (and FP8 values) to bf16 before the P.V product.
// The block table and the lengths stay in device memory: check_sequences_kernel checks them first (a sequence with a
// bad length or block id is flagged and decoded as empty) and leaves the checked lengths and their maximum in the
// context's scratch, from which the tuned kernel derives its split of the cache on the device.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include "async_copy.cuh"
#include "cuda_backend.h"
#include "cuda_state.h"
#include "device_checks.cuh"
#include "fp8_device.cuh"

namespace moe4j::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kMaxDims = 576;
constexpr int kRowsPerBlock = 64, kTileTokens = 32, kTunedThreads = 256, kMaxSplits = 64;  // the tuned kernel

struct DecodeParams {
    const uint16_t *q;  // [b, s_q, h_q, d] bf16
    int64_t q_strides[4];
    const uint8_t *kcache;                           // token records: bf16 [d] or the FP8 record
    int64_t block_stride, slot_stride, head_stride;  // bytes
    const int32_t *block_table;
    int64_t table_stride0, table_stride1;
    const int32_t *lengths;     // [b]: checked by check_sequences_kernel (0 for a flagged sequence)
    const int32_t *max_length;  // the longest checked length
    char *out;                  // [b, s_q, h_q, dv] F32 or BF16
    int64_t out_strides[4];
    int32_t out_dtype;
    float *lse;  // [b, h_q, s_q]
    int64_t lse_strides[3];
    float softmax_scale;
    bool causal, fp8;
    int64_t batch, s_q, h_q, h_kv, d, dv;
    // tuned kernel: the cache split into ranges of 32-token tiles (schedule()); with more than one split, each writes
    // its normalized output and log-sum-exp to partial_out [splits, b, h_q, s_q, dv] and partial_lse. The grid holds
    // grid_splits blocks per sequence, at least the splits schedule() picks; the rest exit.
    int64_t rows;  // query rows per kv head: s_q * h_q / h_kv
    int64_t grid_splits;
    int64_t multiprocessors, blocks_per_split;  // blocks_per_split: b * h_kv * row blocks
    float *partial_out, *partial_lse;

    // The output row of (sequence seq, query j, query head h), and its lse entry.
    __device__ char *out_row(int64_t seq, int64_t j, int64_t h) const {
        return out +
               (seq * out_strides[0] + j * out_strides[1] + h * out_strides[2]) * (out_dtype == MOE4J_F32 ? 4 : 2);
    }
    __device__ float &lse_at(int64_t seq, int64_t j, int64_t h) const {
        return lse[seq * lse_strides[0] + h * lse_strides[1] + j * lse_strides[2]];
    }
};

struct Schedule {
    int64_t splits, tiles_per_split;
};

// Enough splits to give every multiprocessor a block, none shorter than one tile of the longest sequence (max_tiles
// 32-token tiles); `blocks` thread blocks per split. The kernels compute it from the longest checked length; the host
// sizes the grid by the same rule for the longest length the block table can hold, which never gives fewer splits.
__host__ __device__ inline Schedule schedule(int64_t max_tiles, int64_t multiprocessors, int64_t blocks) {
    const int64_t cap = kMaxSplits < max_tiles ? kMaxSplits : max_tiles;
    int64_t wanted = (multiprocessors + blocks - 1) / blocks;
    wanted = wanted < 1 ? 1 : (wanted > cap ? cap : wanted);
    Schedule s{};
    s.tiles_per_split = (max_tiles + wanted - 1) / wanted;
    s.splits = (max_tiles + s.tiles_per_split - 1) / s.tiles_per_split;
    return s;
}

__device__ inline Schedule schedule(const DecodeParams &p) {
    const int64_t max_tiles = (*p.max_length + kTileTokens - 1) / kTileTokens;
    return schedule(max_tiles < 1 ? 1 : max_tiles, p.multiprocessors, p.blocks_per_split);
}

// One block per sequence: its length within [0, 64 * max_blocks] and the block ids it reaches within
// [0, num_blocks); a sequence that fails is flagged and decoded as empty. Leaves the checked lengths and their maximum.
__global__ void check_sequences_kernel(const int32_t *seqlens, int64_t seqlens_stride, const int32_t *table,
                                       int64_t table_stride0, int64_t table_stride1, int64_t max_blocks,
                                       int64_t num_blocks, int32_t *lengths, int32_t *max_length, FaultSink faults) {
    __shared__ int bad;
    const int64_t seq = blockIdx.x;
    const int32_t len = seqlens[seq * seqlens_stride];
    if (threadIdx.x == 0) bad = 0;
    __syncthreads();
    if (len < 0) {
        if (threadIdx.x == 0) {
            report(faults, Fault::SeqlenNegative, seq, len);
            bad = 1;
        }
    } else if ((len + cpu::kMlaBlockTokens - 1) / cpu::kMlaBlockTokens > max_blocks) {
        if (threadIdx.x == 0) {
            report(faults, Fault::SeqlenTooLong, seq, len, max_blocks);
            bad = 1;
        }
    } else {
        for (int64_t b = threadIdx.x; b < (len + cpu::kMlaBlockTokens - 1) / cpu::kMlaBlockTokens; b += blockDim.x) {
            const int32_t id = table[seq * table_stride0 + b * table_stride1];
            if (id < 0 || id >= num_blocks) {
                report(faults, Fault::BlockId, seq, b, id, num_blocks);
                atomicOr(&bad, 1);
            }
        }
    }
    __syncthreads();
    if (threadIdx.x != 0) return;
    const int32_t checked = bad ? 0 : len;
    lengths[seq] = checked;
    atomicMax(max_length, checked);
}

// The cache record of token t of sequence seq, kv head kv_head.
__device__ inline const uint8_t *token_record(const DecodeParams &p, int64_t seq, int64_t t, int64_t kv_head) {
    const int32_t block = p.block_table[seq * p.table_stride0 + (t / cpu::kMlaBlockTokens) * p.table_stride1];
    return p.kcache + block * p.block_stride + (t % cpu::kMlaBlockTokens) * p.slot_stride + kv_head * p.head_stride;
}

// Element i of a cache token record, as float.
__device__ float token_value(const uint8_t *token, int64_t i, bool fp8) {
    if (!fp8) return bf16_decode(reinterpret_cast<const uint16_t *>(token)[i]);
    if (i < cpu::kMlaLatentDims) {
        const float scale = reinterpret_cast<const float *>(token + cpu::kMlaFp8ScalesOffset)[i / cpu::kMlaScaleGroup];
        return e4m3_decode(token[i]) * scale;
    }
    return bf16_decode(reinterpret_cast<const uint16_t *>(token + cpu::kMlaFp8RopeOffset)[i - cpu::kMlaLatentDims]);
}

__device__ float block_sum(float v) {
    __shared__ float partial[kThreads / 32];
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xFFFFFFFFu, v, offset);
    if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = v;
    __syncthreads();
    float total = 0.0f;
    for (int w = 0; w < kThreads / 32; ++w) total += partial[w];
    __syncthreads();
    return total;
}

__global__ void decode_kernel(DecodeParams p) {
    const int64_t seq = blockIdx.x / (p.s_q * p.h_q), j = blockIdx.x / p.h_q % p.s_q, h = blockIdx.x % p.h_q;
    const int64_t kv_head = h / (p.h_q / p.h_kv);
    const int64_t len = p.lengths[seq];
    int64_t visible = len;
    if (p.causal) {
        visible = len - p.s_q + j + 1;
        visible = visible < 0 ? 0 : (visible > len ? len : visible);
    }
    __shared__ float q[kMaxDims];
    const uint16_t *q_row = p.q + seq * p.q_strides[0] + j * p.q_strides[1] + h * p.q_strides[2];
    for (int64_t i = threadIdx.x; i < p.d; i += kThreads) q[i] = bf16_decode(q_row[i * p.q_strides[3]]);
    __syncthreads();

    float acc[4] = {0, 0, 0, 0};
    float max_score = -INFINITY, denominator = 0.0f;
    for (int64_t t = 0; t < visible; ++t) {
        const uint8_t *token = token_record(p, seq, t, kv_head);
        float partial = 0.0f;
        for (int64_t i = threadIdx.x; i < p.d; i += kThreads)
            partial = fmaf(q[i], token_value(token, i, p.fp8), partial);
        const float score = block_sum(partial) * p.softmax_scale;
        const float new_max = fmaxf(max_score, score);
        const float correction = expf(max_score - new_max), weight = expf(score - new_max);
        denominator = denominator * correction + weight;
        for (int r = 0; r < 4; ++r) {
            const int64_t i = threadIdx.x + r * kThreads;
            acc[r] = acc[r] * correction + (i < p.dv ? weight * token_value(token, i, p.fp8) : 0.0f);
        }
        max_score = new_max;
    }
    char *out_row = p.out_row(seq, j, h);
    for (int r = 0; r < 4; ++r) {
        const int64_t i = threadIdx.x + r * kThreads;
        if (i < p.dv)
            store_float(out_row, i * p.out_strides[3], p.out_dtype, visible == 0 ? 0.0f : acc[r] / denominator);
    }
    if (threadIdx.x == 0) p.lse_at(seq, j, h) = visible == 0 ? INFINITY : max_score + logf(denominator);
}

// ---- the tuned decode (sm_80 and newer) ----

constexpr int kPPitch = kTileTokens + 8;  // bf16 per row of P: the 8 spread ldmatrix's rows over the banks
constexpr float kLog2e = 1.4426950408889634f, kLn2 = 0.6931471805599453f;

// Q and K rows are d + 8 bf16 apart for the same reason (d is a multiple of 16).
size_t tuned_shared_bytes(int64_t d) {
    return static_cast<size_t>((kRowsPerBlock + 2 * kTileTokens) * (d + 8) * 2 + kRowsPerBlock * kPPitch * 2);
}

// Four 8x8 bf16 matrices from shared memory, lane i giving the address of row i % 8 of matrix i / 8.
__device__ inline void load_matrices(uint32_t (&r)[4], uint32_t address) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(address)
                 : "memory");
}

// The same, each matrix transposed.
__device__ inline void load_matrices_transposed(uint32_t (&r)[4], uint32_t address) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(address)
                 : "memory");
}

// d += A[16 x 16] * B[16 x 8], bf16 in mma.sync's fragment layouts, fp32 accumulators.
__device__ inline void mma_16x8x16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ inline uint32_t pack_bf16(float lo, float hi) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t *>(&v);
}

// 8 e4m3 codes times their scale, as 8 bf16.
__device__ inline uint4 dequantize_8(uint2 codes, float scale) {
    uint32_t words[2] = {codes.x, codes.y}, out[4];
    for (int i = 0; i < 4; ++i) {
        const uint32_t w = words[i / 2] >> (16 * (i % 2));
        out[i] =
            pack_bf16(e4m3_decode(static_cast<uint8_t>(w)) * scale, e4m3_decode(static_cast<uint8_t>(w >> 8)) * scale);
    }
    return {out[0], out[1], out[2], out[3]};
}

// Visible tokens of query row r (of s_q * h_q / h_kv rows per kv head) in a sequence of len tokens.
__device__ inline int64_t visible_tokens(const DecodeParams &p, int64_t r, int64_t len) {
    if (r >= p.rows) return 0;
    if (!p.causal) return len;
    const int64_t v = len - p.s_q + r / (p.h_q / p.h_kv) + 1;
    return v < 0 ? 0 : (v > len ? len : v);
}

// One block: 64 query rows of one kv head of one sequence, over one split of the cache. Warp w holds rows
// 16 * (w % 4) .. + 15; for S = Q.K^T it takes tokens 16 * (w / 4) .. + 15 of each 32-token tile, for O = P.V dims
// 256 * (w / 4) .. + 255. The row maxima and sums of the two halves meet in shared memory, and so does P.
__global__ void __launch_bounds__(kTunedThreads, 1) decode_tuned_kernel(DecodeParams p) {
    extern __shared__ __align__(16) uint8_t shared_bytes[];
    __shared__ float half_max[2][kRowsPerBlock], half_sum[2][kRowsPerBlock];
    const int64_t pitch = p.d + 8;
    uint16_t *q_tile = reinterpret_cast<uint16_t *>(shared_bytes);  // [64][pitch]
    uint16_t *k_tiles = q_tile + kRowsPerBlock * pitch;             // [2][32][pitch], double-buffered
    uint16_t *p_tile = k_tiles + 2 * kTileTokens * pitch;           // [64][kPPitch]

    const Schedule sched = schedule(p);
    const int64_t split = blockIdx.x % p.grid_splits, seq = blockIdx.x / p.grid_splits;
    if (split >= sched.splits) return;  // the whole block: the sequences are shorter than the grid allowed for
    const int64_t row_blocks = (p.rows + kRowsPerBlock - 1) / kRowsPerBlock;
    const int64_t kv_head = blockIdx.y / row_blocks, first_row = (blockIdx.y % row_blocks) * kRowsPerBlock;
    const int64_t ratio = p.h_q / p.h_kv;
    const int64_t len = p.lengths[seq];
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, group = warp % 4, half = warp / 4;

    // visibility grows with the query index, so the block's last row sees the most
    const int64_t last_row = (p.rows < first_row + kRowsPerBlock ? p.rows : first_row + kRowsPerBlock) - 1;
    const int64_t begin = split * sched.tiles_per_split * kTileTokens;
    const int64_t split_end = begin + sched.tiles_per_split * kTileTokens,
                  block_visible = visible_tokens(p, last_row, len);
    const int64_t end = split_end < block_visible ? split_end : block_visible;
    const int64_t tiles = end > begin ? (end - begin + kTileTokens - 1) / kTileTokens : 0;

    for (int64_t i = tid; i < kRowsPerBlock * p.d; i += kTunedThreads) {
        const int64_t row = i / p.d, dim = i % p.d, r = first_row + row;
        uint16_t v = 0;
        if (r < p.rows)
            v = p.q[seq * p.q_strides[0] + (r / ratio) * p.q_strides[1] +
                    (kv_head * ratio + r % ratio) * p.q_strides[2] + dim * p.q_strides[3]];
        q_tile[row * pitch + dim] = v;
    }

    // Tokens past `end` become zeros: their weights are 0, and 0 * garbage could be NaN.
    const auto load_tile = [&](int buffer, int64_t index) {
        uint16_t *tile = k_tiles + buffer * kTileTokens * pitch;
        const int64_t first = begin + index * kTileTokens, chunks = p.d / 8;  // 16-byte chunks of bf16 per token
        for (int64_t i = tid; i < kTileTokens * chunks; i += kTunedThreads) {
            const int64_t token = i / chunks, c = i % chunks, t = first + token;
            uint16_t *to = tile + token * pitch + c * 8;
            const bool valid = t < end;
            const uint8_t *record = valid ? token_record(p, seq, t, kv_head) : p.kcache;
            if (!p.fp8) {
                copy_16_async(shared_address(to), record + c * 16, valid);
                continue;
            }
            uint4 v = {0, 0, 0, 0};
            if (valid && c < cpu::kMlaLatentDims / 8) {
                const float scale =
                    reinterpret_cast<const float *>(record + cpu::kMlaFp8ScalesOffset)[c * 8 / cpu::kMlaScaleGroup];
                v = dequantize_8(*reinterpret_cast<const uint2 *>(record + c * 8), scale);
            } else if (valid) {
                v = reinterpret_cast<const uint4 *>(record + cpu::kMlaFp8RopeOffset)[c - cpu::kMlaLatentDims / 8];
            }
            *reinterpret_cast<uint4 *>(to) = v;
        }
    };

    // This thread's accumulators: rows r0 and r0 + 8 of the block; S columns (tokens) and O columns (dims)
    // 8 * tile + 2 * (lane % 4) + {0, 1}, mma.sync's layout.
    const int r0 = 16 * group + lane / 4;
    const int64_t visible[2] = {visible_tokens(p, first_row + r0, len), visible_tokens(p, first_row + r0 + 8, len)};
    const float scale_log2 = p.softmax_scale * kLog2e;
    float o[32][4];
#pragma unroll
    for (auto &tile : o)
        for (float &v : tile) v = 0.0f;
    float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.0f, 0.0f};

    if (tiles > 0) load_tile(0, 0);
    commit_copies();
    for (int64_t i = 0; i < tiles; ++i) {
        if (i + 1 < tiles) load_tile(static_cast<int>((i + 1) % 2), i + 1);
        commit_copies();
        wait_copies<1>();
        __syncthreads();  // tile i (and Q) are in shared memory
        const uint16_t *k_tile = k_tiles + (i % 2) * kTileTokens * pitch;
        const int64_t first = begin + i * kTileTokens;

        float s[2][4] = {};
        for (int64_t k0 = 0; k0 < p.d; k0 += 16) {
            uint32_t a[4], b[4];
            load_matrices(a, shared_address(q_tile + (16 * group + lane % 16) * pitch + k0 + (lane / 16) * 8));
            load_matrices(b, shared_address(k_tile + (16 * half + (lane / 16) * 8 + lane % 8) * pitch + k0 +
                                            ((lane / 8) % 2) * 8));
            mma_16x8x16(s[0], a, b[0], b[1]);
            mma_16x8x16(s[1], a, b[2], b[3]);
        }

        // scores in log2 units, invisible tokens -inf; the tile's row maxima over both halves
        float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
        for (int n = 0; n < 2; ++n)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int64_t t = first + 16 * half + 8 * n + 2 * (lane % 4) + e % 2;
                s[n][e] = t < visible[e / 2] ? s[n][e] * scale_log2 : -INFINITY;
                tile_max[e / 2] = fmaxf(tile_max[e / 2], s[n][e]);
            }
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xFFFFFFFFu, tile_max[r], 1));
            tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xFFFFFFFFu, tile_max[r], 2));
            if (lane % 4 == 0) half_max[half][r0 + 8 * r] = tile_max[r];
        }
        __syncthreads();

        // P = 2^(s - max) in bf16, and its row sums (of the rounded values, so that P.V / sum stays a convex
        // combination); a row that has seen nothing yet keeps max -inf and weights 0
        float rescale[2], tile_sum[2] = {0.0f, 0.0f};
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const float new_max = fmaxf(row_max[r], fmaxf(half_max[0][r0 + 8 * r], half_max[1][r0 + 8 * r]));
            const float reference = new_max == -INFINITY ? 0.0f : new_max;
            rescale[r] = exp2f(row_max[r] - reference);
            row_max[r] = new_max;
#pragma unroll
            for (int n = 0; n < 2; ++n) {
                const uint32_t packed = pack_bf16(exp2f(s[n][2 * r] - reference), exp2f(s[n][2 * r + 1] - reference));
                tile_sum[r] +=
                    bf16_decode(static_cast<uint16_t>(packed)) + bf16_decode(static_cast<uint16_t>(packed >> 16));
                *reinterpret_cast<uint32_t *>(p_tile + (r0 + 8 * r) * kPPitch + 16 * half + 8 * n + 2 * (lane % 4)) =
                    packed;
            }
            tile_sum[r] += __shfl_xor_sync(0xFFFFFFFFu, tile_sum[r], 1);
            tile_sum[r] += __shfl_xor_sync(0xFFFFFFFFu, tile_sum[r], 2);
            if (lane % 4 == 0) half_sum[half][r0 + 8 * r] = tile_sum[r];
        }
        __syncthreads();  // P and the sums are complete
#pragma unroll
        for (int r = 0; r < 2; ++r)
            row_sum[r] = row_sum[r] * rescale[r] + half_sum[0][r0 + 8 * r] + half_sum[1][r0 + 8 * r];
#pragma unroll
        for (auto &tile : o) {
            tile[0] *= rescale[0];
            tile[1] *= rescale[0];
            tile[2] *= rescale[1];
            tile[3] *= rescale[1];
        }

#pragma unroll
        for (int k0 = 0; k0 < kTileTokens; k0 += 16) {
            uint32_t a[4];
            load_matrices(a, shared_address(p_tile + (16 * group + lane % 16) * kPPitch + k0 + (lane / 16) * 8));
#pragma unroll
            for (int pair = 0; pair < 16; ++pair) {
                const int64_t dim = 256 * half + 16 * pair;
                if (dim >= p.dv) continue;
                uint32_t b[4];
                load_matrices_transposed(b, shared_address(k_tile + (k0 + lane % 16) * pitch + dim + (lane / 16) * 8));
                mma_16x8x16(o[2 * pair], a, b[0], b[1]);
                mma_16x8x16(o[2 * pair + 1], a, b[2], b[3]);
            }
        }
        __syncthreads();  // the next iteration refills this tile's buffer, P and the half maxima
    }

#pragma unroll
    for (int r = 0; r < 2; ++r) {
        const int64_t row = first_row + r0 + 8 * r;
        if (row >= p.rows) continue;
        const int64_t j = row / ratio, h = kv_head * ratio + row % ratio;
        const float inverse = row_sum[r] > 0.0f ? 1.0f / row_sum[r] : 0.0f;
        const float lse = row_sum[r] > 0.0f ? (row_max[r] + log2f(row_sum[r])) * kLn2 : -INFINITY;
        const int64_t index = (seq * p.h_q + h) * p.s_q + j;  // over [b, h_q, s_q]
        char *out_row = p.out_row(seq, j, h);
#pragma unroll
        for (int n = 0; n < 32; ++n)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                const int64_t dim = 256 * half + 8 * n + 2 * (lane % 4) + e;
                if (dim >= p.dv) continue;
                const float v = o[n][2 * r + e] * inverse;
                if (sched.splits == 1)
                    store_float(out_row, dim * p.out_strides[3], p.out_dtype, v);
                else
                    p.partial_out[(split * p.batch * p.h_q * p.s_q + index) * p.dv + dim] = v;
            }
        if (half != 0 || lane % 4 != 0) continue;
        if (sched.splits == 1)
            p.lse_at(seq, j, h) = lse == -INFINITY ? INFINITY : lse;
        else
            p.partial_lse[split * p.batch * p.h_q * p.s_q + index] = lse;
    }
}

// Merges the splits of one (sequence, query head, query): weights exp(lse_s - lse), lse = log sum exp(lse_s).
// Launched when the grid allows several splits; with one, decode_tuned_kernel wrote the output itself.
__global__ void combine_kernel(DecodeParams p) {
    const Schedule sched = schedule(p);
    if (sched.splits == 1) return;
    const int64_t index = blockIdx.x, count = p.batch * p.h_q * p.s_q;  // index over [b, h_q, s_q]
    const int64_t seq = index / (p.h_q * p.s_q), h = index / p.s_q % p.h_q, j = index % p.s_q;
    float max_lse = -INFINITY;
    for (int64_t s = 0; s < sched.splits; ++s) max_lse = fmaxf(max_lse, p.partial_lse[s * count + index]);
    float acc[4] = {0, 0, 0, 0}, total = 0.0f;
    if (max_lse != -INFINITY)
        for (int64_t s = 0; s < sched.splits; ++s) {
            const float weight = expf(p.partial_lse[s * count + index] - max_lse);
            total += weight;
            for (int r = 0; r < 4; ++r) {
                const int64_t dim = threadIdx.x + r * kThreads;
                if (dim < p.dv) acc[r] = fmaf(weight, p.partial_out[(s * count + index) * p.dv + dim], acc[r]);
            }
        }
    char *out_row = p.out_row(seq, j, h);
    for (int r = 0; r < 4; ++r) {
        const int64_t dim = threadIdx.x + r * kThreads;
        if (dim < p.dv) store_float(out_row, dim * p.out_strides[3], p.out_dtype, total > 0.0f ? acc[r] / total : 0.0f);
    }
    if (threadIdx.x == 0) p.lse_at(seq, j, h) = total > 0.0f ? max_lse + logf(total) : INFINITY;
}

// One block of 128 threads per (token, kv head): copies the bf16 record or quantizes the latent dims per 128. The
// slot is checked first: outside [-1, slots) it is flagged and the token skipped; head 0's block also compares it with
// every earlier token's slot and flags a slot given twice (both tokens still write their own, valid, slot).
__global__ void append_kernel(const uint16_t *kv, int64_t kv_stride0, int64_t kv_stride1, const int32_t *slots,
                              int64_t slot_stride, uint8_t *kcache, int64_t block_stride, int64_t slot_bytes,
                              int64_t head_stride, int64_t heads, bool fp8, int64_t cache_slots, FaultSink faults) {
    const int64_t token = blockIdx.x / heads, head = blockIdx.x % heads;
    const int32_t slot = slots[token * slot_stride];
    if (slot < -1 || slot >= cache_slots) {
        if (head == 0 && threadIdx.x == 0) report(faults, Fault::SlotRange, token, slot, cache_slots);
        return;
    }
    if (slot < 0) return;
    if (head == 0)
        for (int64_t earlier = threadIdx.x; earlier < token; earlier += kThreads)
            if (slots[earlier * slot_stride] == slot) report(faults, Fault::SlotTwice, slot, earlier, token);
    const uint16_t *src = kv + token * kv_stride0 + head * kv_stride1;
    uint8_t *dst = kcache + (slot / cpu::kMlaBlockTokens) * block_stride + (slot % cpu::kMlaBlockTokens) * slot_bytes +
                   head * head_stride;
    const int64_t dims = cpu::kMlaLatentDims + cpu::kMlaRopeDims;
    if (!fp8) {
        for (int64_t i = threadIdx.x; i < dims; i += kThreads) reinterpret_cast<uint16_t *>(dst)[i] = src[i];
        return;
    }
    __shared__ float amax[cpu::kMlaLatentDims / cpu::kMlaScaleGroup];
    if (threadIdx.x < cpu::kMlaLatentDims / cpu::kMlaScaleGroup) amax[threadIdx.x] = 0.0f;
    __syncthreads();
    if (threadIdx.x < cpu::kMlaLatentDims / cpu::kMlaScaleGroup) {
        float m = 0.0f;  // one thread per group keeps the CPU's NaN-propagating maximum simple
        for (int64_t i = 0; i < cpu::kMlaScaleGroup; ++i)
            m = nan_max(m, fabsf(bf16_decode(src[threadIdx.x * cpu::kMlaScaleGroup + i])));
        amax[threadIdx.x] = m;
    }
    __syncthreads();
    for (int64_t i = threadIdx.x; i < cpu::kMlaLatentDims; i += kThreads) {
        const float scale = fp8_scale(amax[i / cpu::kMlaScaleGroup], false);
        dst[i] = e4m3_encode(bf16_decode(src[i]) * (1.0f / scale));
    }
    if (threadIdx.x < cpu::kMlaLatentDims / cpu::kMlaScaleGroup)
        reinterpret_cast<float *>(dst + cpu::kMlaFp8ScalesOffset)[threadIdx.x] = fp8_scale(amax[threadIdx.x], false);
    for (int64_t i = threadIdx.x; i < cpu::kMlaRopeDims; i += kThreads)
        reinterpret_cast<uint16_t *>(dst + cpu::kMlaFp8RopeOffset)[i] = src[cpu::kMlaLatentDims + i];
}

// "" where the tuned kernel can take the call: tensor cores (sm_80), D and Dv in whole 16-wide MMA steps, 16-byte
// aligned cache records (cp.async), a grid within CUDA's limits and the shared memory it asks for; otherwise why not.
std::string tuned_refusal(const moe4j_context *ctx, const cpu::MlaDecodeArgs &a) {
    const DeviceState &s = *ctx->cuda;
    if (ctx->simple_kernels()) return "MOE4J_CONTEXT_SIMPLE_KERNELS";
    if (s.compute_capability < 80)
        return "compute capability " + std::to_string(s.compute_capability / 10) + "." +
               std::to_string(s.compute_capability % 10) + ": the tensor-core kernel needs 8.0";
    if (a.d % 16 != 0 || a.dv % 16 != 0)
        return "D = " + std::to_string(a.d) + " or Dv = " + std::to_string(a.dv) + " is not a multiple of 16";
    const int64_t element = a.fp8_cache ? 1 : 2;
    const bool aligned = reinterpret_cast<uintptr_t>(a.kcache->data) % 16 == 0 &&
                         a.kcache->strides[0] * element % 16 == 0 && a.kcache->strides[1] * element % 16 == 0 &&
                         a.kcache->strides[2] * element % 16 == 0;
    if (!aligned) return "cache records of 'kcache' are not 16-byte aligned";
    const int64_t row_blocks = (a.s_q * (a.h_q / a.h_kv) + kRowsPerBlock - 1) / kRowsPerBlock;
    if (a.h_kv * row_blocks > 65535 || a.batch * kMaxSplits > 0x7FFFFFFF)
        return "the grid exceeds CUDA's limits (h_kv x query row blocks > 65535 or b x 64 splits > 2^31 - 1)";
    const size_t shared = tuned_shared_bytes(a.d) + sizeof(float) * 4 * kRowsPerBlock;  // + the static maxima and sums
    if (shared > static_cast<size_t>(s.max_shared_per_block))
        return "needs " + std::to_string(shared) + " bytes of shared memory per block, the device allows " +
               std::to_string(s.max_shared_per_block);
    return "";
}

}  // namespace

moe4j_status mla_decode(const Call &call, const cpu::MlaDecodeArgs &a) {
    const char *fn = call.function();
    if (a.d > kMaxDims || a.dv > 4 * kThreads)
        return fail(MOE4J_ERROR_UNSUPPORTED, std::string(fn) + ": the CUDA kernel takes D <= 576 and Dv <= 512");
    if (a.batch * a.s_q * a.h_q > 0x7FFFFFFF)
        return fail(MOE4J_ERROR_UNSUPPORTED,
                    std::string(fn) + ": b x s_q x h_q exceeds the CUDA kernels' limit of 2^31 - 1 thread blocks");
    DecodeParams p{};
    p.q = static_cast<const uint16_t *>(a.q->data);
    for (int i = 0; i < 4; ++i) {
        p.q_strides[i] = a.q->strides[i];
        p.out_strides[i] = a.out->strides[i];
    }
    const int64_t element = a.fp8_cache ? 1 : 2;
    p.kcache = static_cast<const uint8_t *>(a.kcache->data);
    p.block_stride = a.kcache->strides[0] * element;
    p.slot_stride = a.kcache->strides[1] * element;
    p.head_stride = a.kcache->strides[2] * element;
    p.block_table = static_cast<const int32_t *>(a.block_table->data);
    p.table_stride0 = a.block_table->strides[0];
    p.table_stride1 = a.block_table->strides[1];
    p.out = static_cast<char *>(a.out->data);
    p.out_dtype = a.out->dtype;
    p.lse = static_cast<float *>(a.lse->data);
    for (int i = 0; i < 3; ++i) p.lse_strides[i] = a.lse->strides[i];
    p.softmax_scale = a.softmax_scale;
    p.causal = a.causal;
    p.fp8 = a.fp8_cache;
    p.batch = a.batch;
    p.s_q = a.s_q;
    p.h_q = a.h_q;
    p.h_kv = a.h_kv;
    p.d = a.d;
    p.dv = a.dv;
    p.rows = a.s_q * (a.h_q / a.h_kv);
    const std::string refusal = tuned_refusal(call.ctx(), a);
    const bool tuned = refusal.empty();

    // The grid's splits: the schedule of the longest sequence the block table can hold; the kernels pick theirs
    // (never more) from the longest checked length.
    const int64_t row_blocks = (p.rows + kRowsPerBlock - 1) / kRowsPerBlock;
    p.multiprocessors = state(call).multiprocessors;
    p.blocks_per_split = std::max<int64_t>(1, a.batch * a.h_kv * row_blocks);
    const int64_t max_blocks = a.block_table->shape[1];
    const int64_t bound_tiles = std::max<int64_t>(1, max_blocks * cpu::kMlaBlockTokens / kTileTokens);
    p.grid_splits = tuned
                        ? std::min<int64_t>(
                              {kMaxSplits, bound_tiles,
                               std::max<int64_t>(1, (p.multiprocessors + p.blocks_per_split - 1) / p.blocks_per_split)})
                        : 1;
    const int64_t outputs = a.batch * a.h_q * a.s_q;

    Scratch scratch;
    const size_t lengths = scratch.add<int32_t>(a.batch), max_length = scratch.add<int32_t>(1);
    const size_t partials = tuned && p.grid_splits > 1 ? scratch.add<float>(p.grid_splits * outputs * (a.dv + 1)) : 0;
    if (moe4j_status s = scratch.reserve(call)) return s;
    p.lengths = scratch.at<int32_t>(lengths);
    p.max_length = scratch.at<int32_t>(max_length);
    if (tuned && p.grid_splits > 1) {
        p.partial_out = scratch.at<float>(partials);
        p.partial_lse = p.partial_out + p.grid_splits * outputs * a.dv;
    }

    cudaStream_t stream = cuda::stream(call);
    if (a.batch > 0) {
        if (moe4j_status s = check(fn, cudaMemsetAsync(scratch.at<int32_t>(max_length), 0, sizeof(int32_t), stream)))
            return s;
        check_sequences_kernel<<<static_cast<unsigned>(a.batch), kThreads, 0, stream>>>(
            static_cast<const int32_t *>(a.seqlens->data), a.seqlens->strides[0], p.block_table, p.table_stride0,
            p.table_stride1, max_blocks, a.kcache->shape[0], scratch.at<int32_t>(lengths),
            scratch.at<int32_t>(max_length), fault_sink(call));
        if (moe4j_status s = launched(call)) return s;
    }
    if (outputs > 0) {
        if (!tuned) {
            decode_kernel<<<static_cast<unsigned>(outputs), kThreads, 0, stream>>>(p);
        } else {
            const size_t shared = tuned_shared_bytes(a.d);
            if (moe4j_status s =
                    check(fn, cudaFuncSetAttribute(decode_tuned_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                   static_cast<int>(shared))))
                return s;
            const dim3 grid(static_cast<unsigned>(a.batch * p.grid_splits), static_cast<unsigned>(a.h_kv * row_blocks));
            decode_tuned_kernel<<<grid, kTunedThreads, shared, stream>>>(p);
            if (p.grid_splits > 1) combine_kernel<<<static_cast<unsigned>(outputs), kThreads, 0, stream>>>(p);
        }
        if (moe4j_status s = launched(call)) return s;
    }
    count_variant(call, tuned ? "tuned" : "simple", refusal);
    return MOE4J_OK;
}

moe4j_status mla_cache_append(const Call &call, const moe4j_tensor &kv, const moe4j_tensor &slot_mapping,
                              const moe4j_tensor &kcache) {
    const int64_t tokens = kv.shape[0], heads = kv.shape[1];
    if (tokens * heads > 0x7FFFFFFF)
        return fail(
            MOE4J_ERROR_UNSUPPORTED,
            std::string(call.function()) + ": n x h_kv exceeds the CUDA kernel's limit of 2^31 - 1 thread blocks");
    if (tokens > 0 && heads > 0) {
        const bool fp8 = kcache.dtype == MOE4J_U8;
        const int64_t element = fp8 ? 1 : 2;
        append_kernel<<<static_cast<unsigned>(tokens * heads), kThreads, 0, stream(call)>>>(
            static_cast<const uint16_t *>(kv.data), kv.strides[0], kv.strides[1],
            static_cast<const int32_t *>(slot_mapping.data), slot_mapping.strides[0],
            static_cast<uint8_t *>(kcache.data), kcache.strides[0] * element, kcache.strides[1] * element,
            kcache.strides[2] * element, heads, fp8, kcache.shape[0] * cpu::kMlaBlockTokens, fault_sink(call));
        if (moe4j_status s = launched(call)) return s;
    }
    count_variant(call, "simple", "");
    return MOE4J_OK;
}

}  // namespace moe4j::cuda
