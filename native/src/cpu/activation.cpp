// SiLU(gate) * up rows: silu(a) = a / (1 + exp(-a)) with the exp polynomial of core/exp_poly.h, the same operations
// on every path. Compiled with -ffp-contract=off: y·2^n + 1 and silu·up must not become fused multiply-adds.
#include "activation.h"

// GCC 12's AVX-512 headers trip -W(maybe-)uninitialized inside themselves (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <cmath>
#include <cstring>
#include <initializer_list>
#include <vector>

#include "../core/context.h"
#include "../core/exp_poly.h"
#include "../core/views.h"
#include "row_codec.h"

namespace moe4j::cpu {
namespace {

// ---------------------------------------------------------------- scalar reference path

float exp_scalar(float x) {
    x = x > kExpMin ? x : kExpMin;  // NaN -> kExpMin: silu(NaN) is NaN through its numerator anyway
    x = x < kExpMax ? x : kExpMax;
    const float n = std::nearbyint(x * kLog2e);
    float r = std::fma(n, -kLn2High, x);
    r = std::fma(n, -kLn2Low, r);
    float p = kExpP0;
    for (const float c : {kExpP1, kExpP2, kExpP3, kExpP4, kExpP5}) p = std::fma(p, r, c);
    const float y = std::fma(p, r * r, r) + 1.0f;
    const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23;
    float pow2;
    std::memcpy(&pow2, &bits, sizeof pow2);
    return y * pow2;
}

void silu_mul_scalar(const float *gate, const float *up, float *out, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        const float a = gate[i];
        out[i] = a / (1.0f + exp_scalar(-a)) * up[i];
    }
}

// ---------------------------------------------------------------- AVX2: 8 lanes, scalar tail

#pragma GCC push_options
#pragma GCC target("avx2,fma")

__m256 exp_avx2(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(kExpMin)), _mm256_set1_ps(kExpMax));  // max(NaN, m) = m
    const __m256 n =
        _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fmadd_ps(n, _mm256_set1_ps(-kLn2High), x);
    r = _mm256_fmadd_ps(n, _mm256_set1_ps(-kLn2Low), r);
    __m256 p = _mm256_set1_ps(kExpP0);
    for (const float c : {kExpP1, kExpP2, kExpP3, kExpP4, kExpP5}) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
    const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
    const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(bits));
}

void silu_mul_avx2(const float *gate, const float *up, float *out, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 a = _mm256_loadu_ps(gate + i);
        const __m256 silu = _mm256_div_ps(a, _mm256_add_ps(one, exp_avx2(_mm256_xor_ps(a, sign))));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(silu, _mm256_loadu_ps(up + i)));
    }
    silu_mul_scalar(gate + i, up + i, out + i, n - i);
}

#pragma GCC pop_options

// ---------------------------------------------------------------- AVX-512: 16 lanes, scalar tail

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq")

__m512 exp_avx512(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(kExpMin)), _mm512_set1_ps(kExpMax));  // max(NaN, m) = m
    const __m512 n =
        _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(-kLn2High), x);
    r = _mm512_fmadd_ps(n, _mm512_set1_ps(-kLn2Low), r);
    __m512 p = _mm512_set1_ps(kExpP0);
    for (const float c : {kExpP1, kExpP2, kExpP3, kExpP4, kExpP5}) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    const __m512 y = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
    const __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(y, _mm512_castsi512_ps(bits));
}

void silu_mul_avx512(const float *gate, const float *up, float *out, int64_t n) {
    const __m512 one = _mm512_set1_ps(1.0f), sign = _mm512_set1_ps(-0.0f);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 a = _mm512_loadu_ps(gate + i);
        const __m512 silu = _mm512_div_ps(a, _mm512_add_ps(one, exp_avx512(_mm512_xor_ps(a, sign))));
        _mm512_storeu_ps(out + i, _mm512_mul_ps(silu, _mm512_loadu_ps(up + i)));
    }
    silu_mul_scalar(gate + i, up + i, out + i, n - i);
}

#pragma GCC pop_options

using SiluMul = void (*)(const float *gate, const float *up, float *out, int64_t n);

SiluMul silu_mul_path(int isa) {
    switch (isa) {
        case MOE4J_ISA_AVX512_BF16:
        case MOE4J_ISA_AVX512: return silu_mul_avx512;  // AVX-512 F/BW/VL/DQ only
        case MOE4J_ISA_AVX2: return silu_mul_avx2;
        default: return silu_mul_scalar;
    }
}

}  // namespace

void silu_mul(moe4j_context *ctx, const moe4j_tensor &gate_t, const moe4j_tensor &up_t, const moe4j_tensor &out_t) {
    const RowView gate(gate_t), up(up_t), out(out_t);
    const int64_t n = out.length;
    const SiluMul kernel = silu_mul_path(ctx->isa);
    const RowCodec &codec = row_codec(ctx->isa);
    parallel_for(*ctx->pool, out.rows, grain_for(16 * n), [&](int64_t begin, int64_t end) {
        const auto size = static_cast<size_t>(n);
        std::vector<float> g(gate.dtype == MOE4J_BF16 ? size : 0), u(up.dtype == MOE4J_BF16 ? size : 0),
            o(out.dtype == MOE4J_BF16 ? size : 0);
        for (int64_t t = begin; t < end; ++t) {
            const float *gs = gate.row<float>(t), *us = up.row<float>(t);
            if (gate.dtype == MOE4J_BF16) {
                codec.bf16_to_f32(gate.row<uint16_t>(t), n, g.data());
                gs = g.data();
            }
            if (up.dtype == MOE4J_BF16) {
                codec.bf16_to_f32(up.row<uint16_t>(t), n, u.data());
                us = u.data();
            }
            float *os = out.dtype == MOE4J_F32 ? out.row<float>(t) : o.data();
            kernel(gs, us, os, n);
            if (out.dtype == MOE4J_BF16) codec.f32_to_bf16(o.data(), n, out.row<uint16_t>(t));
        }
    });
}

}  // namespace moe4j::cpu
