#include "mla.h"

// GCC 12's AVX-512 headers trip -W(maybe-)uninitialized inside themselves (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <type_traits>

#include "../core/context.h"
#include "../core/fp8.h"
#include "exp_simd.h"
#include "reduce_avx512.h"
#include "row_codec.h"

namespace moe4j::cpu {
namespace {

// ---------------------------------------------------------------- vector primitives per path

constexpr int kTile = 4;  // rows (query heads) and tokens per register tile

// f(std::integral_constant<int, n>{}) for a register tile's row or token count n (1 .. kTile) as a constant.
template <typename F>
void with_count(int n, F &&f) {
    switch (n) {
        case 4: return f(std::integral_constant<int, 4>{});
        case 3: return f(std::integral_constant<int, 3>{});
        case 2: return f(std::integral_constant<int, 2>{});
        default: return f(std::integral_constant<int, 1>{});
    }
}

// The two small matrix products of a cache block, for up to kTile rows, and the softmax's exponentials:
//   scores: s[m][t] = q_m · k_t for up to kTile tokens, d dims;
//   pv:     acc_m += sum_{t < count} p_m[t] * v_t over dv dims, v_t = row t of the block (first dv of ld dims);
//   exps:   p[t] = exp(p[t] - max) for t < count, exp_simd.h's polynomial: the same bits on every path.
struct ScalarOps {
    static constexpr bool kBf16Tokens = false;  // scores of a bf16 cache on bf16 dot products (Avx512Bf16Ops)
    static void exps(float *p, int64_t count, float max) {
        for (int64_t t = 0; t < count; ++t) p[t] = exp_scalar(p[t] - max);
    }
    static void scores(int rows, int tokens, const float *const *q, const float *const *k, int64_t d,
                       float (*s)[kTile]) {
        for (int m = 0; m < rows; ++m)
            for (int t = 0; t < tokens; ++t) {
                float sum = 0.0f;
                for (int64_t i = 0; i < d; ++i) sum += q[m][i] * k[t][i];
                s[m][t] = sum;
            }
    }
    static void pv(int rows, float *const *acc, const float *const *p, const float *v, int64_t ld, int64_t count,
                   int64_t dv) {
        for (int m = 0; m < rows; ++m)
            for (int64_t t = 0; t < count; ++t)
                for (int64_t i = 0; i < dv; ++i) acc[m][i] += p[m][t] * v[t * ld + i];
    }
};

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

struct Avx2Ops {
    static constexpr bool kBf16Tokens = false;
    static void exps(float *p, int64_t count, float max) {
        int64_t t = 0;
        for (; t + 8 <= count; t += 8)
            _mm256_storeu_ps(p + t, exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(p + t), _mm256_set1_ps(max))));
        ScalarOps::exps(p + t, count - t, max);
    }
    static void scores(int rows, int tokens, const float *const *q, const float *const *k, int64_t d,
                       float (*s)[kTile]) {
        for (int m = 0; m < rows; ++m)
            for (int t = 0; t < tokens; ++t) {
                __m256 acc = _mm256_setzero_ps();
                int64_t i = 0;
                for (; i + 8 <= d; i += 8)
                    acc = _mm256_fmadd_ps(_mm256_loadu_ps(q[m] + i), _mm256_loadu_ps(k[t] + i), acc);
                __m128 r = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
                r = _mm_add_ps(r, _mm_movehl_ps(r, r));
                r = _mm_add_ss(r, _mm_shuffle_ps(r, r, 1));
                float sum = _mm_cvtss_f32(r);
                for (; i < d; ++i) sum += q[m][i] * k[t][i];
                s[m][t] = sum;
            }
    }
    static void pv(int rows, float *const *acc, const float *const *p, const float *v, int64_t ld, int64_t count,
                   int64_t dv) {
        for (int m = 0; m < rows; ++m)
            for (int64_t t = 0; t < count; ++t) {
                const __m256 pm = _mm256_set1_ps(p[m][t]);
                const float *vt = v + t * ld;
                int64_t i = 0;
                for (; i + 8 <= dv; i += 8)
                    _mm256_storeu_ps(acc[m] + i,
                                     _mm256_fmadd_ps(pm, _mm256_loadu_ps(vt + i), _mm256_loadu_ps(acc[m] + i)));
                for (; i < dv; ++i) acc[m][i] += p[m][t] * vt[i];
            }
    }
};

#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq")

struct Avx512Ops {
    static constexpr bool kBf16Tokens = false;
    static __mmask16 mask(int64_t remaining) {
        return remaining >= 16 ? __mmask16{0xFFFF} : static_cast<__mmask16>((1u << remaining) - 1u);
    }

    static void exps(float *p, int64_t count, float max) {
        for (int64_t t = 0; t < count; t += 16) {
            const __mmask16 m = mask(count - t);
            const __m512 x = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, p + t), _mm512_set1_ps(max));
            _mm512_mask_storeu_ps(p + t, m, exp_avx512(x));
        }
    }

    // A rows x tokens tile of dot products with lanes over d: each q and k load feeds up to 4 FMAs.
    template <int MR, int NT>
    static void scores_tile(const float *const *q, const float *const *k, int64_t d, float (*s)[kTile]) {
        __m512 acc[MR][NT];
        for (int m = 0; m < MR; ++m)
            for (int t = 0; t < NT; ++t) acc[m][t] = _mm512_setzero_ps();
        for (int64_t i = 0; i < d; i += 16) {
            const __mmask16 km = mask(d - i);
            __m512 kv[NT];
            for (int t = 0; t < NT; ++t) kv[t] = _mm512_maskz_loadu_ps(km, k[t] + i);
            for (int m = 0; m < MR; ++m) {
                const __m512 qv = _mm512_maskz_loadu_ps(km, q[m] + i);
                for (int t = 0; t < NT; ++t) acc[m][t] = _mm512_fmadd_ps(qv, kv[t], acc[m][t]);
            }
        }
        store_sums<MR, NT>(acc, 1.0f, s);
    }

    // s[m][t] = the sum of acc[m][t]'s lanes times scale (exact for 1).
    template <int MR, int NT>
    static void store_sums(const __m512 (&acc)[MR][NT], float scale, float (*s)[kTile]) {
        if constexpr (MR * NT == 16) {  // a full tile: its 16 sums at once, in the same order
            __m512 all[16];
            for (int m = 0; m < MR; ++m)
                for (int t = 0; t < NT; ++t) all[m * NT + t] = acc[m][t];
            alignas(64) float sums[16];
            _mm512_store_ps(sums, reduce16_avx512(all));
            for (int m = 0; m < MR; ++m)
                for (int t = 0; t < NT; ++t) s[m][t] = sums[m * NT + t] * scale;
        } else {
            for (int m = 0; m < MR; ++m)
                for (int t = 0; t < NT; ++t) s[m][t] = _mm512_reduce_add_ps(acc[m][t]) * scale;
        }
    }

    static void scores(int rows, int tokens, const float *const *q, const float *const *k, int64_t d,
                       float (*s)[kTile]) {
        with_count(rows, [&](auto mr) {
            with_count(tokens, [&](auto nt) { scores_tile<decltype(mr)::value, decltype(nt)::value>(q, k, d, s); });
        });
    }

    // Sixteen V elements as floats: fp32 loaded, bf16 widened exactly.
    static __m512 load16(__mmask16 m, const float *v) { return _mm512_maskz_loadu_ps(m, v); }
    static __m512 load16(__mmask16 m, const uint16_t *v) {
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, v)), 16));
    }

    // acc rows += p·V, 64 output dims at a time held in registers across all tokens of the block; V rows fp32 (a
    // widened block) or bf16 (the cache itself), the same floats and FMAs either way.
    template <int MR, typename T>
    static void pv_tile(float *const *acc, const float *const *p, const T *v, int64_t ld, int64_t count, int64_t dv) {
        for (int64_t i0 = 0; i0 < dv; i0 += 64) {
            __mmask16 km[4];
            __m512 a[MR][4];
            for (int c = 0; c < 4; ++c) km[c] = i0 + 16 * c < dv ? mask(dv - i0 - 16 * c) : __mmask16{0};
            for (int m = 0; m < MR; ++m)
                for (int c = 0; c < 4; ++c) a[m][c] = _mm512_maskz_loadu_ps(km[c], acc[m] + i0 + 16 * c);
            for (int64_t t = 0; t < count; ++t) {
                __m512 vv[4];
                for (int c = 0; c < 4; ++c) vv[c] = load16(km[c], v + t * ld + i0 + 16 * c);
                for (int m = 0; m < MR; ++m) {
                    const __m512 pm = _mm512_set1_ps(p[m][t]);
                    for (int c = 0; c < 4; ++c) a[m][c] = _mm512_fmadd_ps(pm, vv[c], a[m][c]);
                }
            }
            for (int m = 0; m < MR; ++m)
                for (int c = 0; c < 4; ++c) _mm512_mask_storeu_ps(acc[m] + i0 + 16 * c, km[c], a[m][c]);
        }
    }

    template <typename T>
    static void pv(int rows, float *const *acc, const float *const *p, const T *v, int64_t ld, int64_t count,
                   int64_t dv) {
        with_count(rows, [&](auto mr) { pv_tile<decltype(mr)::value>(acc, p, v, ld, count, dv); });
    }
};

#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")

// The AVX-512 path with a bf16 cache read where it lies, as FlashMLA reads it: the scores on bf16 dot products (q and
// the cached token as stored; every product exact in fp32, lanes summing pairs of dims along d), scaled after the
// sum; P·V on bf16 dot products too, the probabilities rounded to bf16 as FlashMLA rounds them (the row sums stay
// those of the fp32 probabilities), lanes summing pairs of tokens. An FP8 cache takes the Avx512Ops functions.
struct Avx512Bf16Ops : Avx512Ops {
    static constexpr bool kBf16Tokens = true;
    using Avx512Ops::pv;

    // acc rows += p·V on vdpbf16ps, V the bf16 cache rows themselves: 64 output dims at a time held in registers
    // across the block's tokens taken two by two, each pair's rows interleaved dim by dim (vpermt2w) against the
    // pair's two probabilities broadcast. An odd last token pairs with zeros (the slot after it may hold anything).
    template <int MR>
    static void pv_pairs(float *const *acc, const float *const *p, const uint16_t *v, int64_t ld, int64_t count,
                         int64_t dv) {
        alignas(64) uint16_t pb[MR][kMlaBlockTokens];  // the probabilities in bf16, pairs of tokens as 32-bit words
        for (int m = 0; m < MR; ++m)
            for (int64_t t = 0; t < count; t += 16) {
                const __mmask16 km = mask(count - t);
                const __m256bh rounded = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(km, p[m] + t));
                _mm256_store_si256(reinterpret_cast<__m256i *>(pb[m] + t), (__m256i)rounded);
            }
        // word 2j picks dim j of the first row (index j), word 2j + 1 dim j of the second (index 32 + j)
        const __m512i low =
            _mm512_add_epi32(_mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                                _mm512_set1_epi32(0x10001)),
                             _mm512_set1_epi32(32 << 16));
        const __m512i high = _mm512_add_epi16(low, _mm512_set1_epi16(16));
        for (int64_t i0 = 0; i0 < dv; i0 += 64) {
            __mmask16 km[4];
            __m512 a[MR][4];
            for (int c = 0; c < 4; ++c) km[c] = i0 + 16 * c < dv ? mask(dv - i0 - 16 * c) : __mmask16{0};
            const __mmask32 k_lo = static_cast<__mmask32>(km[0]) | (static_cast<__mmask32>(km[1]) << 16);
            const __mmask32 k_hi = static_cast<__mmask32>(km[2]) | (static_cast<__mmask32>(km[3]) << 16);
            for (int m = 0; m < MR; ++m)
                for (int c = 0; c < 4; ++c) a[m][c] = _mm512_maskz_loadu_ps(km[c], acc[m] + i0 + 16 * c);
            for (int64_t t = 0; t < count; t += 2) {
                const uint16_t *r0 = v + t * ld + i0, *r1 = r0 + ld;
                const bool pair = t + 1 < count;
                const __m512i x0 = _mm512_maskz_loadu_epi16(k_lo, r0), x1 = _mm512_maskz_loadu_epi16(k_hi, r0 + 32);
                const __m512i y0 = _mm512_maskz_loadu_epi16(pair ? k_lo : 0, r1);
                const __m512i y1 = _mm512_maskz_loadu_epi16(pair ? k_hi : 0, r1 + 32);
                const __m512bh vv[4] = {(__m512bh)_mm512_permutex2var_epi16(x0, low, y0),
                                        (__m512bh)_mm512_permutex2var_epi16(x0, high, y0),
                                        (__m512bh)_mm512_permutex2var_epi16(x1, low, y1),
                                        (__m512bh)_mm512_permutex2var_epi16(x1, high, y1)};
                for (int m = 0; m < MR; ++m) {
                    uint32_t word;
                    std::memcpy(&word, pb[m] + t, sizeof word);  // pb[m][t + 1] past an odd end: multiplies zeros
                    const __m512bh pm = (__m512bh)_mm512_set1_epi32(static_cast<int>(word));
                    for (int c = 0; c < 4; ++c) a[m][c] = _mm512_dpbf16_ps(a[m][c], pm, vv[c]);
                }
            }
            for (int m = 0; m < MR; ++m)
                for (int c = 0; c < 4; ++c) _mm512_mask_storeu_ps(acc[m] + i0 + 16 * c, km[c], a[m][c]);
        }
    }

    static void pv(int rows, float *const *acc, const float *const *p, const uint16_t *v, int64_t ld, int64_t count,
                   int64_t dv) {
        with_count(rows, [&](auto mr) { pv_pairs<decltype(mr)::value>(acc, p, v, ld, count, dv); });
    }

    template <int MR, int NT>
    static void scores_tile(const uint16_t *const *q, const uint16_t *const *k, int64_t d, float scale,
                            float (*s)[kTile], int64_t ahead) {
        __m512 acc[MR][NT];
        for (int m = 0; m < MR; ++m)
            for (int t = 0; t < NT; ++t) acc[m][t] = _mm512_setzero_ps();
        for (int64_t i = 0; i < d; i += 32) {
            const __mmask32 km = d - i >= 32 ? ~__mmask32{0} : static_cast<__mmask32>((uint64_t{1} << (d - i)) - 1);
            __m512bh kv[NT];
            for (int t = 0; t < NT; ++t) {
                _mm_prefetch(reinterpret_cast<const char *>(k[t] + i) + ahead, _MM_HINT_T1);
                kv[t] = (__m512bh)_mm512_maskz_loadu_epi16(km, k[t] + i);
            }
            for (int m = 0; m < MR; ++m) {
                const __m512bh qv = (__m512bh)_mm512_maskz_loadu_epi16(km, q[m] + i);
                for (int t = 0; t < NT; ++t) acc[m][t] = _mm512_dpbf16_ps(acc[m][t], qv, kv[t]);
            }
        }
        store_sums<MR, NT>(acc, scale, s);
    }

    // s[m][t] = (q_m · k_t) * scale, q and k bf16. Also prefetches, into L2, what lies `ahead` bytes past each
    // element of k it reads (0: nothing ahead).
    static void scores_bf16(int rows, int tokens, const uint16_t *const *q, const uint16_t *const *k, int64_t d,
                            float scale, float (*s)[kTile], int64_t ahead) {
        with_count(rows, [&](auto mr) {
            with_count(tokens, [&](auto nt) {
                scores_tile<decltype(mr)::value, decltype(nt)::value>(q, k, d, scale, s, ahead);
            });
        });
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

// One unit of work: sequence `seq`, kv head `head`, cache blocks [block_begin, block_end), the task's rows
// [row_begin, row_end) (query rows of that kv head; all of them unless a task per kv head and split would leave
// threads idle).
struct Task {
    int64_t seq, head, split, block_begin, block_end, row_begin, row_end;
};

template <typename Ops>
struct Decoder {
    const MlaDecodeArgs &a;
    const RowCodec &codec;
    int64_t heads_per_kv, rows;  // rows of one task: s_q * heads_per_kv, row r = (query r / hpk, head r % hpk)
    int64_t splits;
    int64_t split_blocks;  // > 0: split s covers blocks [s * split_blocks, (s + 1) * split_blocks); 0: even splits
    // With several splits, in the context's scratch (taken by execute): partial_out [seq][head][split][row][dv],
    // partial_lse [seq][head][split][row].
    float *partial_out = nullptr;
    float *partial_lse = nullptr;

    Decoder(const MlaDecodeArgs &args, const RowCodec &codec, int64_t splits, int64_t split_blocks)
        : a(args),
          codec(codec),
          heads_per_kv(args.h_q / args.h_kv),
          rows(args.s_q * (args.h_q / args.h_kv)),
          splits(splits),
          split_blocks(split_blocks) {}

    // Row r of (seq, kv head) in out (bf16 or f32: row_out writes it) and lse.
    char *out_row(int64_t seq, int64_t head, int64_t r) const {
        const int64_t j = r / heads_per_kv, h = head * heads_per_kv + r % heads_per_kv;
        return static_cast<char *>(a.out->data) +
               (seq * a.out->strides[0] + j * a.out->strides[1] + h * a.out->strides[2]) *
                   (a.out->dtype == MOE4J_F32 ? 4 : 2);
    }
    float &lse(int64_t seq, int64_t head, int64_t r) const {
        const int64_t j = r / heads_per_kv, h = head * heads_per_kv + r % heads_per_kv;
        return static_cast<float *>(
            a.lse->data)[seq * a.lse->strides[0] + h * a.lse->strides[1] + j * a.lse->strides[2]];
    }
    void row_out(const float *values, char *row) const {
        if (a.out->dtype == MOE4J_F32)
            std::memcpy(row, values, sizeof(float) * static_cast<size_t>(a.dv));
        else
            codec.f32_to_bf16(values, a.dv, reinterpret_cast<uint16_t *>(row));
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

    const void *k_token(int64_t block, int64_t slot, int64_t head) const {
        const int64_t element =
            block * a.kcache->strides[0] + slot * a.kcache->strides[1] + head * a.kcache->strides[2];
        return static_cast<const char *>(a.kcache->data) + element * (a.fp8_cache ? 1 : 2);
    }

    const uint16_t *q_row(const Task &task, int64_t r) const {
        return q_row(task.seq, r / heads_per_kv, task.head * heads_per_kv + r % heads_per_kv);
    }

    // A bf16 cache on a path with bf16 dot products is read where it lies; otherwise each block's tokens are widened.
    bool direct() const { return Ops::kBf16Tokens && !a.fp8_cache; }

    // Floats of a task's scratch: q rows [rows][d] (pre-scaled) and the widened k block [64][d] unless direct, then
    // probabilities [rows][64], accumulators [rows][dv] and the rows' softmax states.
    int64_t scratch_floats() const {
        return (direct() ? 0 : rows * a.d + kMlaBlockTokens * a.d) + rows * kMlaBlockTokens + rows * a.dv +
               rows * static_cast<int64_t>(sizeof(RowState) / sizeof(float));
    }

    void run(const Task &task, float *scratch) {
        const int64_t d = a.d, dv = a.dv, len = length(task.seq);
        const bool direct = this->direct();
        float *q = scratch, *k = q + (direct ? 0 : rows * d), *p = k + (direct ? 0 : kMlaBlockTokens * d);
        float *acc = p + rows * kMlaBlockTokens;
        const int64_t r_begin = task.row_begin, r_end = task.row_end;
        RowState *const state = reinterpret_cast<RowState *>(acc + rows * dv);
        std::uninitialized_fill_n(state, rows, RowState{});
        std::fill_n(acc, rows * dv, 0.0f);
        if (!direct)
            for (int64_t r = r_begin; r < r_end; ++r) {
                float *qr = q + r * d;
                codec.bf16_to_f32(q_row(task, r), d, qr);
                for (int64_t i = 0; i < d; ++i) qr[i] *= a.softmax_scale;
            }

        for (int64_t blk = task.block_begin; blk < task.block_end; ++blk) {
            const int64_t first = blk * kMlaBlockTokens, count = std::min(kMlaBlockTokens, len - first);
            const int64_t id = read_i32(*a.block_table, task.seq, blk);
            const auto *tokens = static_cast<const uint16_t *>(k_token(id, 0, task.head));  // bf16 cache only
            const int64_t token_stride = a.kcache->strides[1];
            if (!direct)
                for (int64_t t = 0; t < count; ++t)
                    mla_load_token(codec, k_token(id, t, task.head), a.fp8_cache, d, k + t * d);
            // The first row tile's scores also prefetch the task's next block, token for token: blocks lie anywhere in
            // the cache, so each is a new stream to the hardware prefetcher, and the tiles step several tokens along d
            // at once.
            int64_t next_block = 0;
            if (direct && blk + 1 < task.block_end)
                next_block =
                    static_cast<const char *>(k_token(read_i32(*a.block_table, task.seq, blk + 1), 0, task.head)) -
                    reinterpret_cast<const char *>(tokens);
            // Scores of every row against every token of the block, one register tile at a time.
            for (int64_t r0 = r_begin; r0 < r_end; r0 += kTile) {
                const int tile_rows = static_cast<int>(std::min<int64_t>(kTile, r_end - r0));
                for (int64_t t0 = 0; t0 < count; t0 += kTile) {
                    const int tile_tokens = static_cast<int>(std::min<int64_t>(kTile, count - t0));
                    float s[kTile][kTile];
                    if constexpr (Ops::kBf16Tokens) {
                        if (direct) {
                            const uint16_t *q_rows[kTile], *k_rows[kTile];
                            for (int m = 0; m < tile_rows; ++m) q_rows[m] = q_row(task, r0 + m);
                            for (int t = 0; t < tile_tokens; ++t) k_rows[t] = tokens + (t0 + t) * token_stride;
                            Ops::scores_bf16(tile_rows, tile_tokens, q_rows, k_rows, d, a.softmax_scale, s,
                                             r0 == r_begin ? next_block : 0);
                        }
                    }
                    if (!direct) {
                        const float *q_rows[kTile], *k_rows[kTile];
                        for (int m = 0; m < tile_rows; ++m) q_rows[m] = q + (r0 + m) * d;
                        for (int t = 0; t < tile_tokens; ++t) k_rows[t] = k + (t0 + t) * d;
                        Ops::scores(tile_rows, tile_tokens, q_rows, k_rows, d, s);
                    }
                    for (int m = 0; m < tile_rows; ++m)
                        for (int t = 0; t < tile_tokens; ++t) p[(r0 + m) * kMlaBlockTokens + t0 + t] = s[m][t];
                }
            }
            // Online softmax: rescale each row once per block, turn its visible scores into probabilities
            // (tokens a causal row may not see get 0; their V rows are real data, so 0 * V stays 0).
            for (int64_t r = r_begin; r < r_end; ++r) {
                float *pr = p + r * kMlaBlockTokens;
                const int64_t seen = std::clamp<int64_t>(visible(len, r / heads_per_kv) - first, 0, count);
                RowState &st = state[r];
                float block_max = -std::numeric_limits<float>::infinity();
                for (int64_t t = 0; t < seen; ++t) block_max = std::max(block_max, pr[t]);
                const float new_max = std::max(st.max, block_max);
                if (seen > 0 && new_max != st.max) {
                    const float correction = std::exp(st.max - new_max);  // 0 when nothing was seen before
                    st.sum *= correction;
                    for (int64_t i = 0; i < dv; ++i) acc[r * dv + i] *= correction;
                    st.max = new_max;
                }
                Ops::exps(pr, seen, st.max);
                for (int64_t t = 0; t < count; ++t) {
                    if (t >= seen) pr[t] = 0.0f;
                    st.sum += pr[t];
                }
            }
            for (int64_t r0 = r_begin; r0 < r_end; r0 += kTile) {
                const int tile_rows = static_cast<int>(std::min<int64_t>(kTile, r_end - r0));
                float *acc_rows[kTile];
                const float *p_rows[kTile];
                for (int m = 0; m < tile_rows; ++m) {
                    acc_rows[m] = acc + (r0 + m) * dv;
                    p_rows[m] = p + (r0 + m) * kMlaBlockTokens;
                }
                // V = the first dv dims of each K row
                if constexpr (Ops::kBf16Tokens) {
                    if (direct) Ops::pv(tile_rows, acc_rows, p_rows, tokens, token_stride, count, dv);
                }
                if (!direct) Ops::pv(tile_rows, acc_rows, p_rows, k, d, count, dv);
            }
        }

        // One split: the rows are final (the merge of one split would scale by exactly 1); else the split's partial
        // rows and lses, for combine().
        const int64_t slot = ((task.seq * a.h_kv + task.head) * splits + task.split) * rows;
        for (int64_t r = r_begin; r < r_end; ++r) {
            const RowState &s = state[r];
            float *row = acc + r * dv;
            const float inv = s.sum > 0.0f ? 1.0f / s.sum : 0.0f;
            for (int64_t i = 0; i < dv; ++i) row[i] *= inv;
            const float row_lse = s.sum > 0.0f ? s.max + std::log(s.sum) : std::numeric_limits<float>::infinity();
            if (splits == 1) {
                row_out(row, out_row(task.seq, task.head, r));
                lse(task.seq, task.head, r) = row_lse;
            } else {
                std::copy(row, row + dv, partial_out + (slot + r) * dv);
                partial_lse[slot + r] = row_lse;
            }
        }
    }

    // Merges the splits of every row with their log-sum-exps and writes out and lse; scratch holds dv + splits floats.
    void combine(int64_t seq, int64_t head, float *scratch) const {
        float *const row = scratch, *const weights = scratch + a.dv;
        for (int64_t r = 0; r < rows; ++r) {
            const int64_t base = (seq * a.h_kv + head) * splits * rows + r;
            float best = -std::numeric_limits<float>::infinity();
            for (int64_t s = 0; s < splits; ++s) {
                const float l = partial_lse[base + s * rows];
                if (l != std::numeric_limits<float>::infinity()) best = std::max(best, l);
            }
            float total = 0.0f;
            std::fill_n(weights, splits, 0.0f);
            for (int64_t s = 0; s < splits; ++s) {
                const float l = partial_lse[base + s * rows];
                if (l == std::numeric_limits<float>::infinity()) continue;
                weights[s] = std::exp(l - best);
                total += weights[s];
            }
            lse(seq, head, r) = total > 0.0f ? best + std::log(total) : std::numeric_limits<float>::infinity();
            // each element sums its splits in split order, the same as one element at a time
            std::fill_n(row, a.dv, 0.0f);
            for (int64_t s = 0; s < splits; ++s) {
                const float w = weights[s];
                if (w == 0.0f) continue;
                const float share = w / total;
                const float *part = partial_out + (base + s * rows) * a.dv;
                for (int64_t i = 0; i < a.dv; ++i) row[i] += share * part[i];
            }
            row_out(row, out_row(seq, head, r));
        }
    }

    void execute(moe4j_context *ctx) {
        ThreadPool &pool = *ctx->pool;
        // Fewer (sequence, kv head, split) units than threads: each unit's rows go to several tasks, each reading
        // the unit's cache blocks itself. Groups are whole register tiles, so every row's operations are the same
        // as in one task (results do not depend on the grouping, nor on the thread count that chooses it).
        const int64_t units = a.batch * a.h_kv * splits, tiles = (rows + kTile - 1) / kTile;
        const int64_t groups = std::clamp<int64_t>((pool.size() + units - 1) / units, 1, tiles);
        const int64_t group_rows = (tiles + groups - 1) / groups * kTile;
        const int64_t partial_floats = splits > 1 ? units * rows * (a.dv + 1) : 0;
        const auto scratch = ctx->worker_scratch_for(static_cast<size_t>(std::max(scratch_floats(), a.dv + splits)),
                                                     "MLA decode's per-thread rows and split partials",
                                                     static_cast<size_t>(partial_floats));
        partial_out = scratch.shared;
        partial_lse = scratch.shared + units * rows * a.dv;
        // Task i: (sequence, kv head, split, row group) in that nesting, the row group innermost.
        const int64_t row_groups = (rows + group_rows - 1) / group_rows;
        const auto task_of = [&](int64_t i) {
            const int64_t r = i % row_groups * group_rows, s = i / row_groups % splits;
            const int64_t head = i / row_groups / splits % a.h_kv, seq = i / row_groups / splits / a.h_kv;
            const int64_t blocks = (length(seq) + kMlaBlockTokens - 1) / kMlaBlockTokens;
            const int64_t begin = split_blocks > 0 ? std::min(blocks, s * split_blocks) : blocks * s / splits;
            const int64_t end = split_blocks > 0 ? std::min(blocks, (s + 1) * split_blocks) : blocks * (s + 1) / splits;
            return Task{seq, head, s, begin, end, r, std::min(rows, r + group_rows)};
        };
        parallel_for(pool, units * row_groups, 1, [&](int64_t begin, int64_t end, int worker) {
            for (int64_t i = begin; i < end; ++i) run(task_of(i), scratch.of(worker));
        });
        if (splits == 1) return;
        parallel_for(pool, a.batch * a.h_kv, 1, [&](int64_t begin, int64_t end, int worker) {
            for (int64_t i = begin; i < end; ++i) combine(i / a.h_kv, i % a.h_kv, scratch.of(worker));
        });
    }
};

template <typename Ops>
void run_path(moe4j_context *ctx, const MlaDecodeArgs &args) {
    if (ctx->reproducible()) {
        // Splits at fixed cache positions: a query row then meets the same splits, merged in the same order,
        // whatever the batch, the sequence's length or the query chunk; splits a row cannot see add nothing.
        int64_t splits = 1;
        for (int64_t seq = 0; seq < args.batch; ++seq) {
            const int64_t len = static_cast<const int32_t *>(args.seqlens->data)[seq * args.seqlens->strides[0]];
            const int64_t blocks = (len + kMlaBlockTokens - 1) / kMlaBlockTokens;
            splits = std::max(splits, (blocks + kMlaReproducibleSplitBlocks - 1) / kMlaReproducibleSplitBlocks);
        }
        Decoder<Ops>(args, row_codec(ctx->isa), splits, kMlaReproducibleSplitBlocks).execute(ctx);
        return;
    }
    // Split long sequences so every thread gets work even for a single sequence; the splits merge by lse.
    const int64_t units = args.batch * args.h_kv, threads = ctx->pool->size();
    const int64_t splits = units >= 2 * threads ? 1 : (2 * threads + units - 1) / units;
    Decoder<Ops>(args, row_codec(ctx->isa), splits, 0).execute(ctx);
}

}  // namespace

void mla_load_token(const RowCodec &codec, const void *token, bool fp8, int64_t d, float *out) {
    if (!fp8) return codec.bf16_to_f32(static_cast<const uint16_t *>(token), d, out);
    const auto *bytes = static_cast<const uint8_t *>(token);
    for (int64_t g = 0; g < kMlaLatentDims / kMlaScaleGroup; ++g) {
        float scale;
        std::memcpy(&scale, bytes + kMlaFp8ScalesOffset + 4 * g, sizeof scale);
        codec.decode_f32(bytes + g * kMlaScaleGroup, kMlaScaleGroup, scale, out + g * kMlaScaleGroup);
    }
    uint16_t rope[kMlaRopeDims];
    std::memcpy(rope, bytes + kMlaFp8RopeOffset, sizeof rope);
    codec.bf16_to_f32(rope, kMlaRopeDims, out + kMlaLatentDims);
}

void mla_store_token(const RowCodec &codec, const uint16_t *kv, bool fp8, void *token) {
    if (!fp8) {
        std::memcpy(token, kv, (kMlaLatentDims + kMlaRopeDims) * sizeof(uint16_t));
        return;
    }
    auto *bytes = static_cast<uint8_t *>(token);
    for (int64_t g = 0; g < kMlaLatentDims / kMlaScaleGroup; ++g) {
        const float scale = fp8_scale(codec.amax_bf16(kv + g * kMlaScaleGroup, kMlaScaleGroup), false);
        codec.encode_bf16(kv + g * kMlaScaleGroup, kMlaScaleGroup, 1.0f / scale, bytes + g * kMlaScaleGroup);
        std::memcpy(bytes + kMlaFp8ScalesOffset + 4 * g, &scale, sizeof scale);
    }
    std::memcpy(bytes + kMlaFp8RopeOffset, kv + kMlaLatentDims, kMlaRopeDims * sizeof(uint16_t));
}

void mla_cache_append(moe4j_context *ctx, const moe4j_tensor &kv, const moe4j_tensor &slot_mapping,
                      const moe4j_tensor &kcache) {
    const RowCodec &codec = row_codec(ctx->isa);
    const bool fp8 = kcache.dtype == MOE4J_U8;
    const int64_t tokens = kv.shape[0], heads = kv.shape[1], element_bytes = fp8 ? 1 : 2;
    parallel_for(*ctx->pool, tokens * heads, grain_for(kMlaLatentDims * 4), [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
            const int64_t token = i / heads, head = i % heads;
            const int32_t slot = static_cast<const int32_t *>(slot_mapping.data)[token * slot_mapping.strides[0]];
            if (slot < 0) continue;
            const auto *src = static_cast<const uint16_t *>(kv.data) + token * kv.strides[0] + head * kv.strides[1];
            const int64_t element = (slot / kMlaBlockTokens) * kcache.strides[0] +
                                    (slot % kMlaBlockTokens) * kcache.strides[1] + head * kcache.strides[2];
            mla_store_token(codec, src, fp8, static_cast<char *>(kcache.data) + element * element_bytes);
        }
    });
}

void mla_decode(moe4j_context *ctx, const MlaDecodeArgs &args) {
    switch (ctx->isa) {
        case MOE4J_ISA_AVX512_BF16: return run_path<Avx512Bf16Ops>(ctx, args);
        case MOE4J_ISA_AVX512: return run_path<Avx512Ops>(ctx, args);
        case MOE4J_ISA_AVX2: return run_path<Avx2Ops>(ctx, args);
        default: return run_path<ScalarOps>(ctx, args);
    }
}

}  // namespace moe4j::cpu
