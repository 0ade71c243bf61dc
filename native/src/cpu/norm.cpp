// RMSNorm rows. Every path sums the squares in the same 16-lane order (lane l takes elements l, l + 16, ... by
// fused multiply-adds; the lanes are then added pairwise by one scalar routine), so all paths give the same bits
// and a row's result never depends on the other rows.
#include "norm.h"

// GCC 12's AVX-512 headers trip -W(maybe-)uninitialized inside themselves (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <cmath>
#include <vector>

#include "../core/context.h"
#include "../core/views.h"
#include "row_codec.h"

namespace moe4j::cpu {
namespace {

constexpr int kLanes = 16;

// lanes[0] + ... + lanes[15] as lanes[l] + lanes[l + 8], then + 4, + 2, + 1.
float reduce_lanes(float *lanes) {
    for (int width = kLanes / 2; width >= 1; width /= 2)
        for (int l = 0; l < width; ++l) lanes[l] += lanes[l + width];
    return lanes[0];
}

// Elements from `from` on, into lanes already holding the vector part's partial sums.
float finish_squares(const float *x, const float *r, float *s, int64_t from, int64_t d, float *lanes) {
    for (int64_t i = from; i < d; ++i) {
        const float v = r != nullptr ? x[i] + r[i] : x[i];
        s[i] = v;
        lanes[(i - from) % kLanes] = std::fma(v, v, lanes[(i - from) % kLanes]);
    }
    return reduce_lanes(lanes);
}

// ---------------------------------------------------------------- scalar reference path

// s = x (+ r); returns the sum of s² in the 16-lane order.
float sum_squares_scalar(const float *x, const float *r, float *s, int64_t d) {
    float lanes[kLanes] = {};
    return finish_squares(x, r, s, 0, d, lanes);
}

void scale_scalar(const float *s, float inv, const float *w, float *y, int64_t d) {
    for (int64_t i = 0; i < d; ++i) y[i] = s[i] * inv * w[i];
}

// ---------------------------------------------------------------- AVX2: two 8-lane accumulators = 16 lanes

#pragma GCC push_options
#pragma GCC target("avx2,fma")

float sum_squares_avx2(const float *x, const float *r, float *s, int64_t d) {
    __m256 low = _mm256_setzero_ps(), high = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + kLanes <= d; i += kLanes) {
        __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
        if (r != nullptr) {
            a = _mm256_add_ps(a, _mm256_loadu_ps(r + i));
            b = _mm256_add_ps(b, _mm256_loadu_ps(r + i + 8));
        }
        _mm256_storeu_ps(s + i, a);
        _mm256_storeu_ps(s + i + 8, b);
        low = _mm256_fmadd_ps(a, a, low);
        high = _mm256_fmadd_ps(b, b, high);
    }
    float lanes[kLanes];
    _mm256_storeu_ps(lanes, low);
    _mm256_storeu_ps(lanes + 8, high);
    return finish_squares(x, r, s, i, d, lanes);
}

void scale_avx2(const float *s, float inv, const float *w, float *y, int64_t d) {
    const __m256 scale = _mm256_set1_ps(inv);
    int64_t i = 0;
    for (; i + 8 <= d; i += 8)
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(s + i), scale), _mm256_loadu_ps(w + i)));
    scale_scalar(s + i, inv, w + i, y + i, d - i);
}

#pragma GCC pop_options

// ---------------------------------------------------------------- AVX-512: one 16-lane accumulator

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq")

float sum_squares_avx512(const float *x, const float *r, float *s, int64_t d) {
    __m512 acc = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + kLanes <= d; i += kLanes) {
        __m512 a = _mm512_loadu_ps(x + i);
        if (r != nullptr) a = _mm512_add_ps(a, _mm512_loadu_ps(r + i));
        _mm512_storeu_ps(s + i, a);
        acc = _mm512_fmadd_ps(a, a, acc);
    }
    float lanes[kLanes];
    _mm512_storeu_ps(lanes, acc);
    return finish_squares(x, r, s, i, d, lanes);
}

void scale_avx512(const float *s, float inv, const float *w, float *y, int64_t d) {
    const __m512 scale = _mm512_set1_ps(inv);
    int64_t i = 0;
    for (; i + 16 <= d; i += 16)
        _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_mul_ps(_mm512_loadu_ps(s + i), scale), _mm512_loadu_ps(w + i)));
    scale_scalar(s + i, inv, w + i, y + i, d - i);
}

#pragma GCC pop_options

struct NormPath {
    float (*sum_squares)(const float *x, const float *r, float *s, int64_t d);
    void (*scale)(const float *s, float inv, const float *w, float *y, int64_t d);
};

NormPath norm_path(int isa) {
    switch (isa) {
        case MOE4J_ISA_AVX512_BF16:
        case MOE4J_ISA_AVX512: return {sum_squares_avx512, scale_avx512};  // AVX-512 F/BW/VL/DQ only
        case MOE4J_ISA_AVX2: return {sum_squares_avx2, scale_avx2};
        default: return {sum_squares_scalar, scale_scalar};
    }
}

}  // namespace

void rms_norm(moe4j_context *ctx, const moe4j_tensor &x_t, const moe4j_tensor *residual_t, const moe4j_tensor &weight_t,
              float eps, const moe4j_tensor *sum_out_t, const moe4j_tensor &y_t) {
    const RowView x(x_t), y(y_t);
    const RowView residual(residual_t != nullptr ? *residual_t : x_t), sum_out(sum_out_t != nullptr ? *sum_out_t : y_t);
    const auto *weight = static_cast<const float *>(weight_t.data);
    const int64_t rows = x.rows, d = x.length;
    const NormPath path = norm_path(ctx->isa);
    const RowCodec &codec = row_codec(ctx->isa);
    // per thread: in, x as floats (BF16 x only); sum, s when sum_out is not given; out, y before its BF16 encoding
    const auto scratch = ctx->worker_scratch_for(static_cast<size_t>(3 * d), "RMSNorm's rows as floats");
    parallel_for(*ctx->pool, rows, grain_for(4 * d), [&](int64_t begin, int64_t end, int worker) {
        float *const in = scratch.of(worker), *const sum = in + d, *const out = sum + d;
        for (int64_t t = begin; t < end; ++t) {
            const float *xs = x.row<float>(t);
            if (x.dtype == MOE4J_BF16) {
                codec.bf16_to_f32(x.row<uint16_t>(t), d, in);
                xs = in;
            }
            const float *r = residual_t != nullptr ? residual.row<float>(t) : nullptr;
            float *s = sum_out_t != nullptr ? sum_out.row<float>(t) : sum;
            const float squares = path.sum_squares(xs, r, s, d);
            const float inv = static_cast<float>(1.0 / std::sqrt(static_cast<double>(squares / d + eps)));
            float *ys = y.dtype == MOE4J_F32 ? y.row<float>(t) : out;
            path.scale(s, inv, weight, ys, d);
            if (y.dtype == MOE4J_BF16) codec.f32_to_bf16(out, d, y.row<uint16_t>(t));
        }
    });
}

}  // namespace moe4j::cpu
