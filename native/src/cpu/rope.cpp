// RoPE rows. Per token, cos and sin of every pair's angle are computed once (in double, rounded to float, times the
// rotation scale) into tables laid out like the row: cos[2i] = cos[2i + 1] = c, sin[2i] = -s, sin[2i + 1] = s. A
// row is then out = x * cos + swap_pairs(x) * sin, which rounds exactly like re·c - im·s and re·s + im·c (negation
// is exact, a + (-b) is a - b). This file is compiled with -ffp-contract=off: a fused multiply-add would round once
// where the contract rounds twice.
#include "rope.h"

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

// ---------------------------------------------------------------- scalar reference path

void rotate_scalar(const float *x, const float *cos, const float *sin, float *out, int64_t r) {
    for (int64_t i = 0; i < r; i += 2) {
        const float re = x[i], im = x[i + 1], c = cos[i], s = sin[i + 1];
        out[i] = re * c - im * s;
        out[i + 1] = re * s + im * c;
    }
}

// ---------------------------------------------------------------- AVX2: 4 pairs per step

#pragma GCC push_options
#pragma GCC target("avx2")

void rotate_avx2(const float *x, const float *cos, const float *sin, float *out, int64_t r) {
    int64_t i = 0;
    for (; i + 8 <= r; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i), swapped = _mm256_permute_ps(v, 0xB1);
        _mm256_storeu_ps(out + i, _mm256_add_ps(_mm256_mul_ps(v, _mm256_loadu_ps(cos + i)),
                                                _mm256_mul_ps(swapped, _mm256_loadu_ps(sin + i))));
    }
    rotate_scalar(x + i, cos + i, sin + i, out + i, r - i);
}

#pragma GCC pop_options

// ---------------------------------------------------------------- AVX-512: 8 pairs per step

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq")

void rotate_avx512(const float *x, const float *cos, const float *sin, float *out, int64_t r) {
    int64_t i = 0;
    for (; i + 16 <= r; i += 16) {
        const __m512 v = _mm512_loadu_ps(x + i), swapped = _mm512_permute_ps(v, 0xB1);
        _mm512_storeu_ps(out + i, _mm512_add_ps(_mm512_mul_ps(v, _mm512_loadu_ps(cos + i)),
                                                _mm512_mul_ps(swapped, _mm512_loadu_ps(sin + i))));
    }
    rotate_scalar(x + i, cos + i, sin + i, out + i, r - i);
}

#pragma GCC pop_options

using Rotate = void (*)(const float *x, const float *cos, const float *sin, float *out, int64_t r);

Rotate rotate_path(int isa) {
    switch (isa) {
        case MOE4J_ISA_AVX512_BF16:
        case MOE4J_ISA_AVX512: return rotate_avx512;  // AVX-512 F/BW/VL/DQ only
        case MOE4J_ISA_AVX2: return rotate_avx2;
        default: return rotate_scalar;
    }
}

}  // namespace

void rope(moe4j_context *ctx, const moe4j_tensor &x_t, const moe4j_tensor &positions, const moe4j_tensor &freqs_t,
          float rotation_scale, const moe4j_tensor &out_t) {
    const RowView x(x_t), out(out_t);
    const int64_t tokens = x_t.shape[0], heads = x_t.shape[1], r = x_t.shape[2];
    const auto *pos = static_cast<const int32_t *>(positions.data);
    const auto *freqs = static_cast<const float *>(freqs_t.data);
    const Rotate rotate = rotate_path(ctx->isa);
    const RowCodec &codec = row_codec(ctx->isa);
    // per thread: a token's cos and sin per dim, a BF16 row as floats, a rotated row before its BF16 encoding
    const auto scratch = ctx->worker_scratch_for(static_cast<size_t>(4 * r), "RoPE's rows as floats");
    parallel_for(*ctx->pool, tokens, grain_for(heads * r * 4), [&](int64_t begin, int64_t end, int worker) {
        float *const cos = scratch.of(worker), *const sin = cos + r, *const in = sin + r, *const rotated = in + r;
        for (int64_t t = begin; t < end; ++t) {
            const auto position = static_cast<float>(pos[t * positions.strides[0]]);
            for (int64_t i = 0; i < r / 2; ++i) {
                const float angle = position * freqs[i * freqs_t.strides[0]];
                const float c = static_cast<float>(std::cos(static_cast<double>(angle))) * rotation_scale;
                const float s = static_cast<float>(std::sin(static_cast<double>(angle))) * rotation_scale;
                cos[2 * i] = cos[2 * i + 1] = c;
                sin[2 * i] = -s;
                sin[2 * i + 1] = s;
            }
            for (int64_t h = 0; h < heads; ++h) {
                const int64_t row = t * heads + h;
                const float *xs = x.row<float>(row);
                if (x.dtype == MOE4J_BF16) {
                    codec.bf16_to_f32(x.row<uint16_t>(row), r, in);
                    xs = in;
                }
                float *ys = out.dtype == MOE4J_F32 ? out.row<float>(row) : rotated;
                rotate(xs, cos, sin, ys, r);
                if (out.dtype == MOE4J_BF16) codec.f32_to_bf16(rotated, r, out.row<uint16_t>(row));
            }
        }
    });
}

}  // namespace moe4j::cpu
