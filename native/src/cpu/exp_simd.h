// The exp polynomial of core/exp_poly.h on each CPU path: the same operations, so the same bits, in scalar code (with
// std::fma), 8 AVX2 lanes and 16 AVX-512 lanes. For kernels that take exp of many values (SiLU, MLA's softmax).
#pragma once

#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>

#include "../core/exp_poly.h"

namespace moe4j::cpu {

// exp(x) for x clamped to [kExpMin, kExpMax]; a NaN becomes kExpMin.
inline float exp_scalar(float x) {
    x = x > kExpMin ? x : kExpMin;
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

#pragma GCC push_options
#pragma GCC target("avx2,fma")

inline __m256 exp_avx2(__m256 x) {
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

#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq")

inline __m512 exp_avx512(__m512 x) {
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

#pragma GCC pop_options

}  // namespace moe4j::cpu
