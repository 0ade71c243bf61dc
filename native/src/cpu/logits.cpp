// Per-row logits statistics for sampling (moe4j_logits_stats): the first NaN or +Infinity, else the first argmax m
// and sum_i exp(x_i - m) in double over 64 lanes (core/exp_double.h), the same operations on every path. Compiled
// with -ffp-contract=off: only the fused multiply-adds written as such may be fused.
#include "logits.h"

// GCC 12's AVX-512 headers trip -W(maybe-)uninitialized inside themselves (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <limits>

#include "../core/context.h"
#include "../core/exp_double.h"
#include "../core/views.h"

namespace moe4j::cpu {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

struct RowStats {
    int32_t argmax;
    float sum_exp;
};

// ---------------------------------------------------------------- scalar reference path

double exp_nonpositive(double x) {
    if (!(x >= kExpdMin)) return 0.0;
    const double k = std::nearbyint(x * kExpdLog2e);
    double r = std::fma(-k, kExpdLn2High, x);
    r = std::fma(-k, kExpdLn2Low, r);
    double p = kExpd13;
    for (const double c : {kExpd12, kExpd11, kExpd10, kExpd9, kExpd8, kExpd7, kExpd6, kExpd5, kExpd4, kExpd3, kExpd2})
        p = std::fma(p, r, c);
    p = std::fma(p, r, 1.0);
    p = std::fma(p, r, 1.0);
    const uint64_t bits = static_cast<uint64_t>(static_cast<int64_t>(k) + 1023) << 52;
    double pow2;
    std::memcpy(&pow2, &bits, sizeof pow2);
    return p * pow2;
}

// lanes[l] += lanes[l + s] for s = 32, 16, ..., 1: lanes[0] holds the sum.
double add_lanes(double (&lanes)[kSumLanes]) {
    for (int s = kSumLanes / 2; s >= 1; s /= 2)
        for (int l = 0; l < s; ++l) lanes[l] = lanes[l] + lanes[l + s];
    return lanes[0];
}

// The first NaN or +Infinity at or after `from` (n if none).
int64_t first_invalid(const float *x, int64_t from, int64_t n) {
    for (int64_t i = from; i < n; ++i)
        if (std::isnan(x[i]) || x[i] == kInf) return i;
    return n;
}

RowStats row_stats_scalar(const float *x, int64_t n) {
    const int64_t bad = first_invalid(x, 0, n);
    if (bad < n) return {static_cast<int32_t>(bad), std::numeric_limits<float>::quiet_NaN()};
    int64_t best = 0;
    for (int64_t i = 1; i < n; ++i)
        if (x[i] > x[best]) best = i;
    const float max = x[best];
    if (max == -kInf) return {0, 0.0f};
    double lanes[kSumLanes] = {};
    for (int64_t i = 0; i < n; ++i)
        lanes[i % kSumLanes] = lanes[i % kSumLanes] + exp_nonpositive(static_cast<double>(x[i]) - max);
    return {static_cast<int32_t>(best), static_cast<float>(add_lanes(lanes))};
}

// ---------------------------------------------------------------- AVX2: 16 registers of 4 lanes

#pragma GCC push_options
#pragma GCC target("avx2,fma")

__m256d exp_nonpositive_avx2(__m256d x) {
    const __m256d live = _mm256_cmp_pd(x, _mm256_set1_pd(kExpdMin), _CMP_GE_OQ);
    const __m256d k =
        _mm256_round_pd(_mm256_mul_pd(x, _mm256_set1_pd(kExpdLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256d r = _mm256_fnmadd_pd(k, _mm256_set1_pd(kExpdLn2High), x);
    r = _mm256_fnmadd_pd(k, _mm256_set1_pd(kExpdLn2Low), r);
    __m256d p = _mm256_set1_pd(kExpd13);
    for (const double c : {kExpd12, kExpd11, kExpd10, kExpd9, kExpd8, kExpd7, kExpd6, kExpd5, kExpd4, kExpd3, kExpd2})
        p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(c));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0));
    // 2^k: k + 1023 in the low mantissa bits of k + 2^52 + 1023, moved into the exponent field.
    const __m256i biased = _mm256_castpd_si256(_mm256_add_pd(k, _mm256_set1_pd(4503599627370496.0 + 1023.0)));
    const __m256d pow2 = _mm256_castsi256_pd(_mm256_slli_epi64(biased, 52));
    return _mm256_and_pd(_mm256_mul_pd(p, pow2), live);
}

RowStats row_stats_avx2(const float *x, int64_t n) {
    const __m256 inf = _mm256_set1_ps(kInf);
    __m256 vmax = _mm256_set1_ps(-kInf), bad = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        bad = _mm256_or_ps(bad, _mm256_or_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q), _mm256_cmp_ps(v, inf, _CMP_EQ_OQ)));
        vmax = _mm256_max_ps(vmax, v);
    }
    const int64_t tail_bad = first_invalid(x, i, n);
    if (_mm256_movemask_ps(bad) != 0 || tail_bad < n) {
        const int64_t first = first_invalid(x, 0, n);
        return {static_cast<int32_t>(first), std::numeric_limits<float>::quiet_NaN()};
    }
    float lanes8[8];
    _mm256_storeu_ps(lanes8, vmax);
    float max = -kInf;
    for (const float v : lanes8) max = v > max ? v : max;
    for (int64_t j = i; j < n; ++j) max = x[j] > max ? x[j] : max;
    if (max == -kInf) return {0, 0.0f};
    int64_t best;
    const __m256 vm = _mm256_set1_ps(max);
    for (i = 0; i + 8 <= n; i += 8) {
        const int hit = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i), vm, _CMP_EQ_OQ));
        if (hit != 0) break;
    }
    best = i;  // the first block holding the max, or the tail
    while (x[best] != max) ++best;
    __m256d acc[kSumLanes / 4];
    for (__m256d &a : acc) a = _mm256_setzero_pd();
    const __m256d m = _mm256_set1_pd(max);
    for (i = 0; i + kSumLanes <= n; i += kSumLanes)
        for (int j = 0; j < kSumLanes / 4; ++j) {
            const __m256d v = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4 * j));
            acc[j] = _mm256_add_pd(acc[j], exp_nonpositive_avx2(_mm256_sub_pd(v, m)));
        }
    double lanes[kSumLanes];
    for (int j = 0; j < kSumLanes / 4; ++j) _mm256_storeu_pd(lanes + 4 * j, acc[j]);
    for (int64_t j = i; j < n; ++j) lanes[j - i] = lanes[j - i] + exp_nonpositive(static_cast<double>(x[j]) - max);
    return {static_cast<int32_t>(best), static_cast<float>(add_lanes(lanes))};
}

#pragma GCC pop_options

// ---------------------------------------------------------------- AVX-512: 8 registers of 8 lanes

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq")

__m512d exp_nonpositive_avx512(__m512d x) {
    const __mmask8 live = _mm512_cmp_pd_mask(x, _mm512_set1_pd(kExpdMin), _CMP_GE_OQ);
    const __m512d k = _mm512_roundscale_pd(_mm512_mul_pd(x, _mm512_set1_pd(kExpdLog2e)),
                                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512d r = _mm512_fnmadd_pd(k, _mm512_set1_pd(kExpdLn2High), x);
    r = _mm512_fnmadd_pd(k, _mm512_set1_pd(kExpdLn2Low), r);
    __m512d p = _mm512_set1_pd(kExpd13);
    for (const double c : {kExpd12, kExpd11, kExpd10, kExpd9, kExpd8, kExpd7, kExpd6, kExpd5, kExpd4, kExpd3, kExpd2})
        p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(c));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0));
    const __m512i biased = _mm512_castpd_si512(_mm512_add_pd(k, _mm512_set1_pd(4503599627370496.0 + 1023.0)));
    return _mm512_maskz_mul_pd(live, p, _mm512_castsi512_pd(_mm512_slli_epi64(biased, 52)));
}

RowStats row_stats_avx512(const float *x, int64_t n) {
    const __m512 inf = _mm512_set1_ps(kInf);
    __m512 vmax = _mm512_set1_ps(-kInf);
    __mmask16 bad = 0;
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 valid = n - i >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << (n - i)) - 1u);
        const __m512 v = _mm512_mask_loadu_ps(_mm512_set1_ps(-kInf), valid, x + i);
        bad |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(v, inf, _CMP_EQ_OQ);
        vmax = _mm512_max_ps(vmax, v);
    }
    if (bad != 0) return {static_cast<int32_t>(first_invalid(x, 0, n)), std::numeric_limits<float>::quiet_NaN()};
    const float max = _mm512_reduce_max_ps(vmax);
    if (max == -kInf) return {0, 0.0f};
    int64_t best = 0;
    const __m512 vm = _mm512_set1_ps(max);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 valid = n - i >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << (n - i)) - 1u);
        const __mmask16 hit = _mm512_mask_cmp_ps_mask(valid, _mm512_maskz_loadu_ps(valid, x + i), vm, _CMP_EQ_OQ);
        if (hit != 0) {
            best = i + __builtin_ctz(hit);
            break;
        }
    }
    __m512d acc[kSumLanes / 8];
    for (__m512d &a : acc) a = _mm512_setzero_pd();
    const __m512d m = _mm512_set1_pd(max);
    for (int64_t i = 0; i < n; i += kSumLanes)
        for (int j = 0; j < kSumLanes / 8; ++j) {
            const int64_t left = n - i - 8 * j;
            if (left <= 0) break;
            // Lanes past the row add nothing (a masked add leaves them as they are).
            const __mmask8 valid = left >= 8 ? __mmask8(0xFF) : static_cast<__mmask8>((1u << left) - 1u);
            const __m512d v = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(valid, x + i + 8 * j));
            acc[j] = _mm512_mask_add_pd(acc[j], valid, acc[j], exp_nonpositive_avx512(_mm512_sub_pd(v, m)));
        }
    // lanes[l] + lanes[l + s], s = 32, 16, 8 across registers, then 4, 2, 1 within one.
    for (int s = kSumLanes / 16; s >= 1; s /= 2)
        for (int j = 0; j < s; ++j) acc[j] = _mm512_add_pd(acc[j], acc[j + s]);
    __m512d a = acc[0];
    a = _mm512_add_pd(a, _mm512_shuffle_f64x2(a, a, _MM_SHUFFLE(1, 0, 3, 2)));
    a = _mm512_add_pd(a, _mm512_shuffle_f64x2(a, a, _MM_SHUFFLE(2, 3, 0, 1)));
    a = _mm512_add_pd(a, _mm512_permute_pd(a, 0x55));
    return {static_cast<int32_t>(best), static_cast<float>(_mm512_cvtsd_f64(a))};
}

#pragma GCC pop_options

using RowKernel = RowStats (*)(const float *x, int64_t n);

RowKernel row_kernel(int isa) {
    switch (isa) {
        case MOE4J_ISA_AVX512_BF16:
        case MOE4J_ISA_AVX512: return row_stats_avx512;  // AVX-512 F/BW/VL/DQ only
        case MOE4J_ISA_AVX2: return row_stats_avx2;
        default: return row_stats_scalar;
    }
}

}  // namespace

void logits_stats(moe4j_context *ctx, const moe4j_tensor &logits_t, const moe4j_tensor &argmax_t,
                  const moe4j_tensor &sum_exp_t) {
    const RowView logits(logits_t);
    const RowKernel kernel = row_kernel(ctx->isa);
    auto *argmax = static_cast<int32_t *>(argmax_t.data);
    auto *sum_exp = static_cast<float *>(sum_exp_t.data);
    const int64_t argmax_stride = argmax_t.strides[0], sum_stride = sum_exp_t.strides[0];
    parallel_for(*ctx->pool, logits.rows, grain_for(32 * logits.length), [&](int64_t begin, int64_t end) {
        for (int64_t b = begin; b < end; ++b) {
            const RowStats s = kernel(logits.row<float>(b), logits.length);
            argmax[b * argmax_stride] = s.argmax;
            sum_exp[b * sum_stride] = s.sum_exp;
        }
    });
}

}  // namespace moe4j::cpu
