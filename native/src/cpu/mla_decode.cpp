#include "mla_decode.h"

// GCC 12's AVX-512 headers trip -W(maybe-)uninitialized inside themselves (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "../core/context.h"
#include "../core/fp8.h"
#include "row_codec.h"

namespace moe4j::cpu {
namespace {

// ---------------------------------------------------------------- vector primitives per path

struct ScalarOps {
    static float dot(const float *a, const float *b, int64_t n) {
        float s = 0.0f;
        for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
        return s;
    }
    // y = y * c + p * x
    static void scale_add(float *y, float c, float p, const float *x, int64_t n) {
        for (int64_t i = 0; i < n; ++i) y[i] = y[i] * c + p * x[i];
    }
};

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

struct Avx2Ops {
    static float dot(const float *a, const float *b, int64_t n) {
        __m256 acc = _mm256_setzero_ps();
        int64_t i = 0;
        for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
        __m128 r = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
        r = _mm_add_ps(r, _mm_movehl_ps(r, r));
        r = _mm_add_ss(r, _mm_shuffle_ps(r, r, 1));
        float s = _mm_cvtss_f32(r);
        for (; i < n; ++i) s += a[i] * b[i];
        return s;
    }
    static void scale_add(float *y, float c, float p, const float *x, int64_t n) {
        const __m256 cv = _mm256_set1_ps(c), pv = _mm256_set1_ps(p);
        int64_t i = 0;
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(y + i,
                             _mm256_fmadd_ps(pv, _mm256_loadu_ps(x + i), _mm256_mul_ps(_mm256_loadu_ps(y + i), cv)));
        for (; i < n; ++i) y[i] = y[i] * c + p * x[i];
    }
};

#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq")

struct Avx512Ops {
    static __mmask16 mask(int64_t remaining) {
        return remaining >= 16 ? __mmask16{0xFFFF} : static_cast<__mmask16>((1u << remaining) - 1u);
    }
    static float dot(const float *a, const float *b, int64_t n) {
        __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
        int64_t i = 0;
        for (; i + 32 <= n; i += 32) {
            acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
            acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), acc1);
        }
        for (; i < n; i += 16) {
            const __mmask16 k = mask(n - i);
            acc0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, a + i), _mm512_maskz_loadu_ps(k, b + i), acc0);
        }
        return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
    }
    static void scale_add(float *y, float c, float p, const float *x, int64_t n) {
        const __m512 cv = _mm512_set1_ps(c), pv = _mm512_set1_ps(p);
        for (int64_t i = 0; i < n; i += 16) {
            const __mmask16 k = mask(n - i);
            const __m512 v = _mm512_fmadd_ps(pv, _mm512_maskz_loadu_ps(k, x + i),
                                             _mm512_mul_ps(_mm512_maskz_loadu_ps(k, y + i), cv));
            _mm512_mask_storeu_ps(y + i, k, v);
        }
    }
};

#pragma GCC pop_options

// ---------------------------------------------------------------- the decode itself

int32_t read_i32(const moe4j_tensor &t, int64_t i, int64_t j) {
    return static_cast<const int32_t *>(t.data)[i * t.strides[0] + j * t.strides[1]];
}

// The softmax state of one query row over the tokens seen so far.
struct RowState {
    float max = -std::numeric_limits<float>::infinity();
    float sum = 0.0f;
};

// One unit of work: sequence `seq`, kv head `head`, cache blocks [block_begin, block_end).
struct Task {
    int64_t seq, head, split, block_begin, block_end;
};

template <typename Ops>
struct Decoder {
    const MlaDecodeArgs &a;
    const RowCodec &codec;
    int64_t heads_per_kv, rows;  // rows of one task: s_q * heads_per_kv, row r = (query r / hpk, head r % hpk)
    int64_t splits;
    std::vector<float> partial_out;  // [seq][head][split][row][dv], partial_lse [seq][head][split][row]
    std::vector<float> partial_lse;

    Decoder(const MlaDecodeArgs &args, const RowCodec &codec, int64_t splits)
        : a(args),
          codec(codec),
          heads_per_kv(args.h_q / args.h_kv),
          rows(args.s_q * (args.h_q / args.h_kv)),
          splits(splits) {
        partial_out.resize(static_cast<size_t>(a.batch * a.h_kv * splits * rows * a.dv));
        partial_lse.resize(static_cast<size_t>(a.batch * a.h_kv * splits * rows));
    }

    int64_t length(int64_t seq) const {
        return static_cast<const int32_t *>(a.seqlens->data)[seq * a.seqlens->strides[0]];
    }

    // Tokens query j of a sequence of length len may see.
    int64_t visible(int64_t len, int64_t j) const {
        if (!a.causal) return len;
        return std::clamp<int64_t>(len - a.s_q + j + 1, 0, len);
    }

    const uint16_t *q_row(int64_t seq, int64_t j, int64_t h) const {
        const auto *base = static_cast<const uint16_t *>(a.q->data);
        return base + seq * a.q->strides[0] + j * a.q->strides[1] + h * a.q->strides[2];
    }

    const uint16_t *k_row(int64_t block, int64_t slot, int64_t head) const {
        const auto *base = static_cast<const uint16_t *>(a.kcache->data);
        return base + block * a.kcache->strides[0] + slot * a.kcache->strides[1] + head * a.kcache->strides[2];
    }

    void run(const Task &task, std::vector<float> &scratch) {
        const int64_t d = a.d, dv = a.dv, len = length(task.seq);
        // scratch: q rows [rows][d], k block [64][d], scores [64], accumulators [rows][dv]
        float *q = scratch.data(), *k = q + rows * d, *scores = k + kMlaBlockTokens * d,
              *acc = scores + kMlaBlockTokens;
        std::vector<RowState> state(static_cast<size_t>(rows));
        std::fill_n(acc, rows * dv, 0.0f);
        for (int64_t r = 0; r < rows; ++r)
            codec.bf16_to_f32(q_row(task.seq, r / heads_per_kv, task.head * heads_per_kv + r % heads_per_kv), d,
                              q + r * d);

        for (int64_t blk = task.block_begin; blk < task.block_end; ++blk) {
            const int64_t first = blk * kMlaBlockTokens, count = std::min(kMlaBlockTokens, len - first);
            const int64_t id = read_i32(*a.block_table, task.seq, blk);
            for (int64_t t = 0; t < count; ++t) codec.bf16_to_f32(k_row(id, t, task.head), d, k + t * d);
            for (int64_t r = 0; r < rows; ++r) {
                const int64_t seen = std::min(count, visible(len, r / heads_per_kv) - first);
                if (seen <= 0) continue;
                float block_max = -std::numeric_limits<float>::infinity();
                for (int64_t t = 0; t < seen; ++t) {
                    scores[t] = a.softmax_scale * Ops::dot(q + r * d, k + t * d, d);
                    block_max = std::max(block_max, scores[t]);
                }
                RowState &s = state[static_cast<size_t>(r)];
                const float new_max = std::max(s.max, block_max);
                float correction = std::exp(s.max - new_max);  // 0 when nothing was seen before
                s.sum *= correction;
                for (int64_t t = 0; t < seen; ++t) {
                    const float p = std::exp(scores[t] - new_max);
                    s.sum += p;
                    Ops::scale_add(acc + r * dv, correction, p, k + t * d, dv);  // V = the first dv dims of K
                    correction = 1.0f;
                }
                s.max = new_max;
            }
        }

        const int64_t slot = ((task.seq * a.h_kv + task.head) * splits + task.split) * rows;
        for (int64_t r = 0; r < rows; ++r) {
            const RowState &s = state[static_cast<size_t>(r)];
            float *out = partial_out.data() + (slot + r) * dv;
            const float inv = s.sum > 0.0f ? 1.0f / s.sum : 0.0f;
            for (int64_t i = 0; i < dv; ++i) out[i] = acc[r * dv + i] * inv;
            partial_lse[static_cast<size_t>(slot + r)] =
                s.sum > 0.0f ? s.max + std::log(s.sum) : std::numeric_limits<float>::infinity();
        }
    }

    // Merges the splits of every row with their log-sum-exps and writes out and lse.
    void combine(int64_t seq, int64_t head) const {
        for (int64_t r = 0; r < rows; ++r) {
            const int64_t j = r / heads_per_kv, h = head * heads_per_kv + r % heads_per_kv;
            const int64_t base = (seq * a.h_kv + head) * splits * rows + r;
            float best = -std::numeric_limits<float>::infinity();
            for (int64_t s = 0; s < splits; ++s) {
                const float l = partial_lse[static_cast<size_t>(base + s * rows)];
                if (l != std::numeric_limits<float>::infinity()) best = std::max(best, l);
            }
            float total = 0.0f;
            std::vector<float> weights(static_cast<size_t>(splits), 0.0f);
            for (int64_t s = 0; s < splits; ++s) {
                const float l = partial_lse[static_cast<size_t>(base + s * rows)];
                if (l == std::numeric_limits<float>::infinity()) continue;
                weights[static_cast<size_t>(s)] = std::exp(l - best);
                total += weights[static_cast<size_t>(s)];
            }
            const float lse = total > 0.0f ? best + std::log(total) : std::numeric_limits<float>::infinity();
            static_cast<float *>(a.lse->data)[seq * a.lse->strides[0] + h * a.lse->strides[1] + j * a.lse->strides[2]] =
                lse;
            char *out_row = static_cast<char *>(a.out->data) +
                            (seq * a.out->strides[0] + j * a.out->strides[1] + h * a.out->strides[2]) *
                                (a.out->dtype == MOE4J_F32 ? 4 : 2);
            for (int64_t i = 0; i < a.dv; ++i) {
                float v = 0.0f;
                for (int64_t s = 0; s < splits; ++s)
                    if (weights[static_cast<size_t>(s)] != 0.0f)
                        v += weights[static_cast<size_t>(s)] / total *
                             partial_out[static_cast<size_t>((base + s * rows) * a.dv + i)];
                if (a.out->dtype == MOE4J_F32)
                    reinterpret_cast<float *>(out_row)[i] = v;
                else
                    reinterpret_cast<uint16_t *>(out_row)[i] = bf16_encode(v);
            }
        }
    }

    void execute(ThreadPool &pool) {
        std::vector<Task> tasks;
        for (int64_t seq = 0; seq < a.batch; ++seq) {
            const int64_t blocks = (length(seq) + kMlaBlockTokens - 1) / kMlaBlockTokens;
            for (int64_t head = 0; head < a.h_kv; ++head)
                for (int64_t s = 0; s < splits; ++s)
                    tasks.push_back({seq, head, s, blocks * s / splits, blocks * (s + 1) / splits});
        }
        const int64_t scratch_floats = rows * a.d + kMlaBlockTokens * a.d + kMlaBlockTokens + rows * a.dv;
        parallel_for(pool, static_cast<int64_t>(tasks.size()), 1, [&](int64_t begin, int64_t end) {
            std::vector<float> scratch(static_cast<size_t>(scratch_floats));
            for (int64_t i = begin; i < end; ++i) run(tasks[static_cast<size_t>(i)], scratch);
        });
        parallel_for(pool, a.batch * a.h_kv, 1, [&](int64_t begin, int64_t end) {
            for (int64_t i = begin; i < end; ++i) combine(i / a.h_kv, i % a.h_kv);
        });
    }
};

template <typename Ops>
void run_path(moe4j_context *ctx, const MlaDecodeArgs &args) {
    // Split long sequences so every thread gets work even for a single sequence; the splits merge by lse.
    const int64_t units = args.batch * args.h_kv, threads = ctx->pool->size();
    const int64_t splits = units >= 2 * threads ? 1 : (2 * threads + units - 1) / units;
    Decoder<Ops>(args, row_codec(ctx->isa), splits).execute(*ctx->pool);
}

}  // namespace

void mla_decode(moe4j_context *ctx, const MlaDecodeArgs &args) {
    switch (ctx->isa) {
        case MOE4J_ISA_AVX512_BF16: return run_path<Avx512Ops>(ctx, args);
        case MOE4J_ISA_AVX2: return run_path<Avx2Ops>(ctx, args);
        default: return run_path<ScalarOps>(ctx, args);
    }
}

}  // namespace moe4j::cpu
