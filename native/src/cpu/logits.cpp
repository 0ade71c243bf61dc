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

// What the first pass over a range of a row finds: its largest logit and that logit's first index, unless the range
// holds a NaN or +Infinity.
struct Scan {
    float max;
    int64_t argmax;
    bool invalid;
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

Scan scan_scalar(const float *x, int64_t begin, int64_t end) {
    if (first_invalid(x, begin, end) < end) return {0.0f, begin, true};
    int64_t best = begin;
    for (int64_t i = begin + 1; i < end; ++i)
        if (x[i] > x[best]) best = i;
    return {x[best], best, false};
}

// lanes[l] for l in [lane, lane + count): the sum, from +0 in order, of exp(x[i] - max) over i = l, l + 64, ... < n.
void sum_lanes_scalar(const float *x, int64_t n, float max, int lane, int count, double *lanes) {
    for (int l = lane; l < lane + count; ++l) {
        double sum = 0.0;
        for (int64_t i = l; i < n; i += kSumLanes) sum = sum + exp_nonpositive(static_cast<double>(x[i]) - max);
        lanes[l] = sum;
    }
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

Scan scan_avx2(const float *x, int64_t begin, int64_t end) {
    const __m256 inf = _mm256_set1_ps(kInf);
    __m256 vmax = _mm256_set1_ps(-kInf), bad = _mm256_setzero_ps();
    int64_t i = begin;
    for (; i + 8 <= end; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        bad = _mm256_or_ps(bad, _mm256_or_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q), _mm256_cmp_ps(v, inf, _CMP_EQ_OQ)));
        vmax = _mm256_max_ps(vmax, v);
    }
    if (_mm256_movemask_ps(bad) != 0 || first_invalid(x, i, end) < end) return {0.0f, begin, true};
    float lanes8[8];
    _mm256_storeu_ps(lanes8, vmax);
    float max = -kInf;
    for (const float v : lanes8) max = v > max ? v : max;
    for (int64_t j = i; j < end; ++j) max = x[j] > max ? x[j] : max;
    if (max == -kInf) return {max, begin, false};
    const __m256 vm = _mm256_set1_ps(max);
    for (i = begin; i + 8 <= end; i += 8)
        if (_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i), vm, _CMP_EQ_OQ)) != 0) break;
    while (x[i] != max) ++i;  // within the first block holding the max, or the tail
    return {max, i, false};
}

// sum_lanes_scalar's sums, four lanes a register (lane and count multiples of 4); the tail past the last whole 64
// elements by the scalar exponential, which gives the same bits.
void sum_lanes_avx2(const float *x, int64_t n, float max, int lane, int count, double *lanes) {
    __m256d acc[kSumLanes / 4];
    for (__m256d &a : acc) a = _mm256_setzero_pd();
    const __m256d m = _mm256_set1_pd(max);
    int64_t i = 0;
    for (; i + kSumLanes <= n; i += kSumLanes)
        for (int j = lane / 4; j < (lane + count) / 4; ++j) {
            const __m256d v = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4 * j));
            acc[j] = _mm256_add_pd(acc[j], exp_nonpositive_avx2(_mm256_sub_pd(v, m)));
        }
    for (int j = lane / 4; j < (lane + count) / 4; ++j) _mm256_storeu_pd(lanes + 4 * j, acc[j]);
    for (int l = lane; l < lane + count && i + l < n; ++l)
        lanes[l] = lanes[l] + exp_nonpositive(static_cast<double>(x[i + l]) - max);
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

Scan scan_avx512(const float *x, int64_t begin, int64_t end) {
    const __m512 inf = _mm512_set1_ps(kInf);
    __m512 vmax = _mm512_set1_ps(-kInf);
    __mmask16 bad = 0;
    for (int64_t i = begin; i < end; i += 16) {
        const __mmask16 valid = end - i >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << (end - i)) - 1u);
        const __m512 v = _mm512_mask_loadu_ps(_mm512_set1_ps(-kInf), valid, x + i);
        bad |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(v, inf, _CMP_EQ_OQ);
        vmax = _mm512_max_ps(vmax, v);
    }
    if (bad != 0) return {0.0f, begin, true};
    const float max = _mm512_reduce_max_ps(vmax);
    if (max == -kInf) return {max, begin, false};
    const __m512 vm = _mm512_set1_ps(max);
    for (int64_t i = begin; i < end; i += 16) {
        const __mmask16 valid = end - i >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << (end - i)) - 1u);
        const __mmask16 hit = _mm512_mask_cmp_ps_mask(valid, _mm512_maskz_loadu_ps(valid, x + i), vm, _CMP_EQ_OQ);
        if (hit != 0) return {max, i + __builtin_ctz(hit), false};
    }
    return {max, begin, false};  // not reached: the max is one of the range's logits
}

// sum_lanes_scalar's sums, eight lanes a register (lane and count multiples of 8).
void sum_lanes_avx512(const float *x, int64_t n, float max, int lane, int count, double *lanes) {
    __m512d acc[kSumLanes / 8];
    for (__m512d &a : acc) a = _mm512_setzero_pd();
    const __m512d m = _mm512_set1_pd(max);
    for (int64_t i = 0; i < n; i += kSumLanes)
        for (int j = lane / 8; j < (lane + count) / 8; ++j) {
            const int64_t left = n - i - 8 * j;
            if (left <= 0) break;
            // Lanes past the row add nothing (a masked add leaves them as they are).
            const __mmask8 valid = left >= 8 ? __mmask8(0xFF) : static_cast<__mmask8>((1u << left) - 1u);
            const __m512d v = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(valid, x + i + 8 * j));
            acc[j] = _mm512_mask_add_pd(acc[j], valid, acc[j], exp_nonpositive_avx512(_mm512_sub_pd(v, m)));
        }
    for (int j = lane / 8; j < (lane + count) / 8; ++j) _mm512_storeu_pd(lanes + 8 * j, acc[j]);
}

#pragma GCC pop_options

// One path's two passes over a row.
struct RowKernels {
    Scan (*scan)(const float *x, int64_t begin, int64_t end);
    void (*sum_lanes)(const float *x, int64_t n, float max, int lane, int count, double *lanes);
};

RowKernels row_kernels(int isa) {
    switch (isa) {
        case MOE4J_ISA_AVX512_BF16:
        case MOE4J_ISA_AVX512: return {scan_avx512, sum_lanes_avx512};  // AVX-512 F/BW/VL/DQ only
        case MOE4J_ISA_AVX2: return {scan_avx2, sum_lanes_avx2};
        default: return {scan_scalar, sum_lanes_scalar};
    }
}

// A row cut into `parts` pieces for as many threads: the first pass by element ranges, the sum by groups of lanes
// (each lane's terms stay one sequence, so the bits are those of one piece). The parts' scans merge into the row's:
// the first NaN or +Infinity of the row if a part holds one, else the largest maximum at its first index.
struct RowWork {
    static constexpr int kMaxParts = 8;  // lane groups of at least 8 lanes, one AVX-512 register
    const float *x = nullptr;
    int64_t n = 0;
    int parts = 1;
    Scan scans[kMaxParts] = {};
    double lanes[kSumLanes] = {};
    float max = 0.0f;
    int32_t argmax = 0;
    float sum_exp = 0.0f;
    bool summed = false;  // whether the sum pass is to run (a valid row whose max is finite)

    int64_t part_begin(int p) const { return n * p / parts; }

    void merge_scans() {
        Scan best = scans[0];
        for (int p = 1; p < parts; ++p) {
            best.invalid |= scans[p].invalid;
            if (scans[p].max > best.max) best = {scans[p].max, scans[p].argmax, best.invalid};
        }
        summed = false;
        if (best.invalid) {
            argmax = static_cast<int32_t>(first_invalid(x, 0, n));
            sum_exp = std::numeric_limits<float>::quiet_NaN();
        } else if (best.max == -kInf) {
            argmax = 0;
            sum_exp = 0.0f;
        } else {
            max = best.max;
            argmax = static_cast<int32_t>(best.argmax);
            summed = true;
        }
    }
};

// Rows a call splits at most (their work lives on the stack).
constexpr int64_t kMaxSplitRows = 8;

// How many parts to cut each of `rows` rows of n logits into: one where the rows keep every thread busy or a part
// would be too short to be worth a thread's wake-up, else up to the threads per row (a power of two, at most 8).
int parts_per_row(int threads, int64_t rows, int64_t n) {
    int parts = 1;
    if (rows > kMaxSplitRows) return parts;
    while (parts * 2 <= RowWork::kMaxParts && rows * parts * 2 <= threads && 32 * n / (parts * 2) >= (int64_t{1} << 20))
        parts *= 2;
    return parts;
}

}  // namespace

void logits_stats(moe4j_context *ctx, const moe4j_tensor &logits_t, const moe4j_tensor &argmax_t,
                  const moe4j_tensor &sum_exp_t) {
    const RowView logits(logits_t);
    const RowKernels kernels = row_kernels(ctx->isa);
    auto *argmax = static_cast<int32_t *>(argmax_t.data);
    auto *sum_exp = static_cast<float *>(sum_exp_t.data);
    const int64_t argmax_stride = argmax_t.strides[0], sum_stride = sum_exp_t.strides[0], n = logits.length;
    const int parts = parts_per_row(ctx->pool->size(), logits.rows, n);
    const auto start = [&](int64_t b) {
        RowWork row;
        row.x = logits.row<float>(b);
        row.n = n;
        row.parts = parts;
        return row;
    };
    const auto write = [&](int64_t b, RowWork &row) {
        if (row.summed) row.sum_exp = static_cast<float>(add_lanes(row.lanes));
        argmax[b * argmax_stride] = row.argmax;
        sum_exp[b * sum_stride] = row.sum_exp;
    };
    if (parts == 1) {
        parallel_for(*ctx->pool, logits.rows, grain_for(32 * n), [&](int64_t begin, int64_t end) {
            for (int64_t b = begin; b < end; ++b) {
                RowWork row = start(b);
                row.scans[0] = kernels.scan(row.x, 0, n);
                row.merge_scans();
                if (row.summed) kernels.sum_lanes(row.x, n, row.max, 0, kSumLanes, row.lanes);
                write(b, row);
            }
        });
        return;
    }
    // Fewer rows than threads: each row's two passes split over `parts` tasks.
    RowWork rows[kMaxSplitRows];
    for (int64_t b = 0; b < logits.rows; ++b) rows[b] = start(b);
    ctx->pool->run(logits.rows * parts, [&](int64_t task) {
        RowWork &row = rows[task / parts];
        const int p = static_cast<int>(task % parts);
        row.scans[p] = kernels.scan(row.x, row.part_begin(p), row.part_begin(p + 1));
    });
    for (int64_t b = 0; b < logits.rows; ++b) rows[b].merge_scans();
    ctx->pool->run(logits.rows * parts, [&](int64_t task) {
        RowWork &row = rows[task / parts];
        const int count = kSumLanes / parts;
        if (row.summed) kernels.sum_lanes(row.x, n, row.max, static_cast<int>(task % parts) * count, count, row.lanes);
    });
    for (int64_t b = 0; b < logits.rows; ++b) write(b, rows[b]);
}

}  // namespace moe4j::cpu
