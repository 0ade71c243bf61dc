// MLA decode over the paged latent cache on CUDA, simple version: one block per (sequence, query, query head), the
// block walking the sequence's visible tokens with an online softmax, each of its 128 threads owning 4 of the 512
// output dims and 4.5 of the 576 score dims; bf16 or FP8 (656-byte) cache. Plus appending tokens to the cache.
#include <cuda_runtime.h>

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
    int64_t s_q, h_q, h_kv, d, dv;
};

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
    const int64_t seq = blockIdx.x, j = blockIdx.y / p.h_q, h = blockIdx.y % p.h_q;
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
        const int32_t block = p.block_table[seq * p.table_stride0 + (t / cpu::kMlaBlockTokens) * p.table_stride1];
        const uint8_t *token =
            p.kcache + block * p.block_stride + (t % cpu::kMlaBlockTokens) * p.slot_stride + kv_head * p.head_stride;
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
    char *out_row = p.out + (seq * p.out_strides[0] + j * p.out_strides[1] + h * p.out_strides[2]) *
                                (p.out_dtype == MOE4J_F32 ? 4 : 2);
    for (int r = 0; r < 4; ++r) {
        const int64_t i = threadIdx.x + r * kThreads;
        if (i < p.dv)
            store_float(out_row, i * p.out_strides[3], p.out_dtype, visible == 0 ? 0.0f : acc[r] / denominator);
    }
    if (threadIdx.x == 0)
        p.lse[seq * p.lse_strides[0] + h * p.lse_strides[1] + j * p.lse_strides[2]] =
            visible == 0 ? INFINITY : max_score + logf(denominator);
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
    p.s_q = a.s_q;
    p.h_q = a.h_q;
    p.h_kv = a.h_kv;
    p.d = a.d;
    p.dv = a.dv;
    const dim3 grid(static_cast<unsigned>(a.batch), static_cast<unsigned>(a.s_q * a.h_q));
    decode_kernel<<<grid, kThreads, 0, ctx->cuda->stream>>>(p);
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
