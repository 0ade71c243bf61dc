// MLA decode over the paged latent cache on CUDA, and appending tokens to the cache. Two decode kernels:
//  - simple: one thread block per (sequence, query, query head) walking the sequence's visible tokens with an online
//    softmax, each of its 128 threads owning 4 of the 512 output dims; fp32 throughout. Any device, D <= 576.
//  - tuned (sm_80 and newer; FlashMLA's scheme on mma.sync): one thread block per (KV split, sequence, kv head, 64
//    query rows). The rows sharing a kv head (s_q x h_q / h_kv of them) read each 32-token tile of the cache once from
//    shared memory; bf16 tensor-core products with fp32 accumulation; the FP8 cache is dequantized to bf16 in shared
//    memory. Long sequences are split over thread blocks and the partial results merged by their log-sum-exp.
//    Like FlashMLA it rounds the softmax weights (and FP8 values) to bf16 before the P.V product.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>

#include "async_copy.cuh"
#include "cuda_backend.h"
#include "cuda_state.h"
#include "fp8_device.cuh"

namespace moe4j::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kMaxDims = 576;

struct DecodeParams {
    const uint16_t *q;  // [b, s_q, h_q, d] bf16
    int64_t q_strides[4];
    const uint8_t *kcache;                           // token records: bf16 [d] or the FP8 record
    int64_t block_stride, slot_stride, head_stride;  // bytes
    const int32_t *block_table;
    int64_t table_stride0, table_stride1;
    const int32_t *seqlens;
    int64_t seqlens_stride;
    char *out;  // [b, s_q, h_q, dv] F32 or BF16
    int64_t out_strides[4];
    int32_t out_dtype;
    float *lse;  // [b, h_q, s_q]
    int64_t lse_strides[3];
    float softmax_scale;
    bool causal, fp8;
    int64_t batch, s_q, h_q, h_kv, d, dv;
    // tuned kernel: the cache split into `splits` ranges of tiles_per_split 32-token tiles; with more than one split,
    // each writes its normalized output and log-sum-exp to partial_out [splits, b, h_q, s_q, dv] and partial_lse
    int64_t rows;  // query rows per kv head: s_q * h_q / h_kv
    int64_t splits, tiles_per_split;
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
    const int64_t len = p.seqlens[seq * p.seqlens_stride];
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

constexpr int kRowsPerBlock = 64, kTileTokens = 32, kTunedThreads = 256, kMaxSplits = 64;
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

    const int64_t split = blockIdx.x % p.splits, seq = blockIdx.x / p.splits;
    const int64_t row_blocks = (p.rows + kRowsPerBlock - 1) / kRowsPerBlock;
    const int64_t kv_head = blockIdx.y / row_blocks, first_row = (blockIdx.y % row_blocks) * kRowsPerBlock;
    const int64_t ratio = p.h_q / p.h_kv;
    const int64_t len = p.seqlens[seq * p.seqlens_stride];
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, group = warp % 4, half = warp / 4;

    // visibility grows with the query index, so the block's last row sees the most
    const int64_t last_row = (p.rows < first_row + kRowsPerBlock ? p.rows : first_row + kRowsPerBlock) - 1;
    const int64_t begin = split * p.tiles_per_split * kTileTokens;
    const int64_t split_end = begin + p.tiles_per_split * kTileTokens, block_visible = visible_tokens(p, last_row, len);
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
                if (p.splits == 1)
                    store_float(out_row, dim * p.out_strides[3], p.out_dtype, v);
                else
                    p.partial_out[(split * p.batch * p.h_q * p.s_q + index) * p.dv + dim] = v;
            }
        if (half != 0 || lane % 4 != 0) continue;
        if (p.splits == 1)
            p.lse_at(seq, j, h) = lse == -INFINITY ? INFINITY : lse;
        else
            p.partial_lse[split * p.batch * p.h_q * p.s_q + index] = lse;
    }
}

// Merges the splits of one (sequence, query head, query): weights exp(lse_s - lse), lse = log sum exp(lse_s).
__global__ void combine_kernel(DecodeParams p) {
    const int64_t index = blockIdx.x, count = p.batch * p.h_q * p.s_q;  // index over [b, h_q, s_q]
    const int64_t seq = index / (p.h_q * p.s_q), h = index / p.s_q % p.h_q, j = index % p.s_q;
    float max_lse = -INFINITY;
    for (int64_t s = 0; s < p.splits; ++s) max_lse = fmaxf(max_lse, p.partial_lse[s * count + index]);
    float acc[4] = {0, 0, 0, 0}, total = 0.0f;
    if (max_lse != -INFINITY)
        for (int64_t s = 0; s < p.splits; ++s) {
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

// One block of 128 threads per (token, kv head): copies the bf16 record or quantizes the latent dims per 128.
__global__ void append_kernel(const uint16_t *kv, int64_t kv_stride0, int64_t kv_stride1, const int32_t *slots,
                              int64_t slot_stride, uint8_t *kcache, int64_t block_stride, int64_t slot_bytes,
                              int64_t head_stride, int64_t heads, bool fp8) {
    const int64_t token = blockIdx.x / heads, head = blockIdx.x % heads;
    const int32_t slot = slots[token * slot_stride];
    if (slot < 0) return;
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

// The tuned kernel needs tensor cores (sm_80), D and Dv in whole 16-wide MMA steps, 16-byte aligned cache records
// (cp.async), a grid within CUDA's limits and the shared memory it asks for.
bool tuned_fits(const moe4j_context *ctx, const cpu::MlaDecodeArgs &a) {
    const int64_t element = a.fp8_cache ? 1 : 2;
    const bool aligned = reinterpret_cast<uintptr_t>(a.kcache->data) % 16 == 0 &&
                         a.kcache->strides[0] * element % 16 == 0 && a.kcache->strides[1] * element % 16 == 0 &&
                         a.kcache->strides[2] * element % 16 == 0;
    const int64_t row_blocks = (a.s_q * (a.h_q / a.h_kv) + kRowsPerBlock - 1) / kRowsPerBlock;
    return !ctx->simple_kernels() && ctx->cuda->compute_capability >= 80 && a.d % 16 == 0 && a.dv % 16 == 0 &&
           aligned && a.h_kv * row_blocks <= 65535 && a.batch * kMaxSplits <= 0x7FFFFFFF &&
           tuned_shared_bytes(a.d) + sizeof(float) * 4 * kRowsPerBlock <=  // + the static row maxima and sums
               static_cast<size_t>(ctx->cuda->max_shared_per_block);
}

}  // namespace

moe4j_status mla_decode(const char *fn, moe4j_context *ctx, const cpu::MlaDecodeArgs &a) {
    if (a.d > kMaxDims || a.dv > 4 * kThreads)
        return fail(MOE4J_ERROR_UNSUPPORTED, std::string(fn) + ": the CUDA kernel takes D <= 576 and Dv <= 512");
    if (a.batch == 0 || a.s_q == 0 || a.h_q == 0) return MOE4J_OK;
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
    p.seqlens = static_cast<const int32_t *>(a.seqlens->data);
    p.seqlens_stride = a.seqlens->strides[0];
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
    cudaStream_t stream = ctx->cuda->stream;
    if (!tuned_fits(ctx, a)) {
        decode_kernel<<<static_cast<unsigned>(a.batch * a.s_q * a.h_q), kThreads, 0, stream>>>(p);
        return finish(fn, ctx);
    }

    // Enough splits to give every multiprocessor a block, none shorter than one tile.
    const int64_t row_blocks = (p.rows + kRowsPerBlock - 1) / kRowsPerBlock;
    const int64_t blocks = a.batch * a.h_kv * row_blocks;
    const int64_t max_tiles = std::max<int64_t>(1, (a.max_seqlen + kTileTokens - 1) / kTileTokens);
    const int64_t wanted = std::clamp<int64_t>((ctx->cuda->multiprocessors + blocks - 1) / blocks, 1,
                                               std::min<int64_t>(kMaxSplits, max_tiles));
    p.tiles_per_split = (max_tiles + wanted - 1) / wanted;
    p.splits = (max_tiles + p.tiles_per_split - 1) / p.tiles_per_split;
    const int64_t outputs = a.batch * a.h_q * a.s_q;
    if (p.splits > 1) {
        const size_t floats = static_cast<size_t>(p.splits * outputs * (a.dv + 1));
        if (moe4j_status s = ctx->cuda->workspace.reserve(fn, floats * sizeof(float))) return s;
        p.partial_out = ctx->cuda->workspace.as<float>();
        p.partial_lse = p.partial_out + p.splits * outputs * a.dv;
    }
    const size_t shared = tuned_shared_bytes(a.d);
    if (moe4j_status s =
            check(fn, cudaFuncSetAttribute(decode_tuned_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(shared))))
        return s;
    const dim3 grid(static_cast<unsigned>(a.batch * p.splits), static_cast<unsigned>(a.h_kv * row_blocks));
    decode_tuned_kernel<<<grid, kTunedThreads, shared, stream>>>(p);
    if (p.splits > 1) combine_kernel<<<static_cast<unsigned>(outputs), kThreads, 0, stream>>>(p);
    return finish(fn, ctx);
}

moe4j_status mla_cache_append(const char *fn, moe4j_context *ctx, const moe4j_tensor &kv,
                              const moe4j_tensor &slot_mapping, const moe4j_tensor &kcache) {
    const int64_t tokens = kv.shape[0], heads = kv.shape[1];
    if (tokens == 0) return MOE4J_OK;
    const bool fp8 = kcache.dtype == MOE4J_U8;
    const int64_t element = fp8 ? 1 : 2;
    append_kernel<<<static_cast<unsigned>(tokens * heads), kThreads, 0, ctx->cuda->stream>>>(
        static_cast<const uint16_t *>(kv.data), kv.strides[0], kv.strides[1],
        static_cast<const int32_t *>(slot_mapping.data), slot_mapping.strides[0], static_cast<uint8_t *>(kcache.data),
        kcache.strides[0] * element, kcache.strides[1] * element, kcache.strides[2] * element, heads, fp8);
    return finish(fn, ctx);
}

}  // namespace moe4j::cuda
