#include "machine_kernels.h"

// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized inside themselves (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

namespace bench {

namespace {

// Multiplier and addend of the FMA chains: each chain converges to 1 and never goes denormal.
constexpr float kChainMul = 0.999999f;
constexpr float kChainAdd = 1e-6f;

// ---------------------------------------------------------------- scalar (portable) path

float sum_scalar(const float *p, size_t n) {
    float acc[8] = {};
    for (size_t i = 0; i < n; i += 8)
        for (int j = 0; j < 8; ++j) acc[j] += p[i + j];
    float total = 0;
    for (float a : acc) total += a;
    return total;
}

uint64_t xor_scalar(const void *p, size_t bytes) {
    const auto *w = static_cast<const uint64_t *>(p);
    uint64_t acc[8] = {};
    for (size_t i = 0; i < bytes / 8; i += 8)
        for (int j = 0; j < 8; ++j) acc[j] ^= w[i + j];
    uint64_t total = 0;
    for (uint64_t a : acc) total ^= a;
    return total;
}

// Kept out of the vectorizer so that it measures one lane, as its name says.
#pragma GCC push_options
#pragma GCC optimize("no-tree-vectorize")

float fma_scalar(int64_t rounds) {
    float acc[kFmaChains];
    for (int j = 0; j < kFmaChains; ++j) acc[j] = 0.01f * static_cast<float>(j);
    for (int64_t r = 0; r < rounds; ++r)
        for (int j = 0; j < kFmaChains; ++j) acc[j] = acc[j] * kChainMul + kChainAdd;
    float total = 0;
    for (float a : acc) total += a;
    return total;
}

#pragma GCC pop_options

// ---------------------------------------------------------------- AVX2 path (8 lanes)

#pragma GCC push_options
#pragma GCC target("avx2,fma")

float reduce_avx2(__m256 v) {
    __m128 r = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_shuffle_ps(r, r, 1));
    return _mm_cvtss_f32(r);
}

float sum_avx2(const float *p, size_t n) {
    __m256 acc[8];
    for (__m256 &a : acc) a = _mm256_setzero_ps();
    for (size_t i = 0; i < n; i += 64)
        for (int j = 0; j < 8; ++j) acc[j] = _mm256_add_ps(acc[j], _mm256_load_ps(p + i + 8 * j));
    for (int j = 1; j < 8; ++j) acc[0] = _mm256_add_ps(acc[0], acc[j]);
    return reduce_avx2(acc[0]);
}

uint64_t xor_avx2(const void *p, size_t bytes) {
    const auto *c = static_cast<const char *>(p);
    __m256i acc[8];
    for (__m256i &a : acc) a = _mm256_setzero_si256();
    for (size_t i = 0; i < bytes; i += 256)
        for (int j = 0; j < 8; ++j)
            acc[j] = _mm256_xor_si256(acc[j], _mm256_load_si256(reinterpret_cast<const __m256i *>(c + i + 32 * j)));
    for (int j = 1; j < 8; ++j) acc[0] = _mm256_xor_si256(acc[0], acc[j]);
    alignas(32) uint64_t lanes[4];
    _mm256_store_si256(reinterpret_cast<__m256i *>(lanes), acc[0]);
    return lanes[0] ^ lanes[1] ^ lanes[2] ^ lanes[3];
}

float fma_avx2(int64_t rounds) {
    const __m256 mul = _mm256_set1_ps(kChainMul), add = _mm256_set1_ps(kChainAdd);
    __m256 acc[kFmaChains];
    for (int j = 0; j < kFmaChains; ++j) acc[j] = _mm256_set1_ps(0.01f * static_cast<float>(j));
    for (int64_t r = 0; r < rounds; ++r)
        for (int j = 0; j < kFmaChains; ++j) acc[j] = _mm256_fmadd_ps(acc[j], mul, add);
    for (int j = 1; j < kFmaChains; ++j) acc[0] = _mm256_add_ps(acc[0], acc[j]);
    return reduce_avx2(acc[0]);
}

#pragma GCC pop_options

// ---------------------------------------------------------------- AVX-512 path (16 lanes)

#pragma GCC push_options
#pragma GCC target("avx512f")

// Through memory: _mm512_reduce_add_ps trips -Wuninitialized inside the GCC 12 headers, and this runs once per call.
float reduce_avx512(__m512 v) {
    float lanes[16];
    _mm512_storeu_ps(lanes, v);
    float total = 0;
    for (float lane : lanes) total += lane;
    return total;
}

float sum_avx512(const float *p, size_t n) {
    __m512 acc[8];
    for (__m512 &a : acc) a = _mm512_setzero_ps();
    for (size_t i = 0; i < n; i += 128)
        for (int j = 0; j < 8; ++j) acc[j] = _mm512_add_ps(acc[j], _mm512_load_ps(p + i + 16 * j));
    for (int j = 1; j < 8; ++j) acc[0] = _mm512_add_ps(acc[0], acc[j]);
    return reduce_avx512(acc[0]);
}

uint64_t xor_avx512(const void *p, size_t bytes) {
    const auto *c = static_cast<const char *>(p);
    __m512i acc[8];
    for (__m512i &a : acc) a = _mm512_setzero_si512();
    for (size_t i = 0; i < bytes; i += 512)
        for (int j = 0; j < 8; ++j) acc[j] = _mm512_xor_si512(acc[j], _mm512_load_si512(c + i + 64 * j));
    for (int j = 1; j < 8; ++j) acc[0] = _mm512_xor_si512(acc[0], acc[j]);
    alignas(64) uint64_t lanes[8];
    _mm512_store_si512(lanes, acc[0]);
    uint64_t total = 0;
    for (uint64_t lane : lanes) total ^= lane;
    return total;
}

float fma_avx512(int64_t rounds) {
    const __m512 mul = _mm512_set1_ps(kChainMul), add = _mm512_set1_ps(kChainAdd);
    __m512 acc[kFmaChains];
    for (int j = 0; j < kFmaChains; ++j) acc[j] = _mm512_set1_ps(0.01f * static_cast<float>(j));
    for (int64_t r = 0; r < rounds; ++r)
        for (int j = 0; j < kFmaChains; ++j) acc[j] = _mm512_fmadd_ps(acc[j], mul, add);
    for (int j = 1; j < kFmaChains; ++j) acc[0] = _mm512_add_ps(acc[0], acc[j]);
    return reduce_avx512(acc[0]);
}

#pragma GCC pop_options

// ---------------------------------------------------------------- AVX-512 BF16 (vdpbf16ps)

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bf16")

float bf16_dot_avx512(int64_t rounds) {
    // Pairs of bf16 1.0 (0x3f80) against pairs of a tiny value: each chain grows slowly and stays finite.
    const __m512bh ones = reinterpret_cast<__m512bh>(_mm512_set1_epi16(0x3f80));
    const __m512bh tiny = reinterpret_cast<__m512bh>(_mm512_set1_epi16(0x3380));  // 2^-24
    __m512 acc[kFmaChains];
    for (int j = 0; j < kFmaChains; ++j) acc[j] = _mm512_set1_ps(0.01f * static_cast<float>(j));
    for (int64_t r = 0; r < rounds; ++r)
        for (int j = 0; j < kFmaChains; ++j) acc[j] = _mm512_dpbf16_ps(acc[j], ones, tiny);
    for (int j = 1; j < kFmaChains; ++j) acc[0] = _mm512_add_ps(acc[0], acc[j]);
    return reduce_avx512(acc[0]);
}

#pragma GCC pop_options

// ---------------------------------------------------------------- AVX-512 VNNI (vpdpbusd)

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vnni")

int32_t int8_dot_avx512(int64_t rounds) {
    // Bytes 1 against bytes 1: each lane grows by 4 a round, wrapping harmlessly.
    const __m512i ones = _mm512_set1_epi8(1);
    __m512i acc[kFmaChains];
    for (int j = 0; j < kFmaChains; ++j) acc[j] = _mm512_set1_epi32(j);
    for (int64_t r = 0; r < rounds; ++r)
        for (int j = 0; j < kFmaChains; ++j) acc[j] = _mm512_dpbusd_epi32(acc[j], ones, ones);
    for (int j = 1; j < kFmaChains; ++j) acc[0] = _mm512_add_epi32(acc[0], acc[j]);
    alignas(64) int32_t lanes[16];
    _mm512_store_si512(lanes, acc[0]);
    int32_t sum = 0;
    for (const int32_t lane : lanes) sum += lane;
    return sum;
}

#pragma GCC pop_options

}  // namespace

bool has_int8_dot() {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512f");
#else
    return false;
#endif
}

int32_t int8_dot_chains(int64_t rounds) { return int8_dot_avx512(rounds); }

double int8_dot_chain_ops(int64_t rounds) { return 2.0 * 64 * static_cast<double>(rounds) * kFmaChains; }

bool has_bf16_dot() {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16");
#else
    return false;
#endif
}

float bf16_dot_chains(int64_t rounds) { return bf16_dot_avx512(rounds); }

double bf16_dot_chain_flops(int64_t rounds) { return 2.0 * 32 * static_cast<double>(rounds) * kFmaChains; }

const char *simd_name(SimdWidth width) {
    switch (width) {
        case SimdWidth::Avx512: return "avx512";
        case SimdWidth::Avx2: return "avx2";
        case SimdWidth::Scalar: break;
    }
    return "scalar";
}

int simd_lanes(SimdWidth width) {
    switch (width) {
        case SimdWidth::Avx512: return 16;
        case SimdWidth::Avx2: return 8;
        case SimdWidth::Scalar: break;
    }
    return 1;
}

std::vector<SimdWidth> supported_simd_widths() {
    std::vector<SimdWidth> widths{SimdWidth::Scalar};
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) widths.push_back(SimdWidth::Avx2);
    if (__builtin_cpu_supports("avx512f")) widths.push_back(SimdWidth::Avx512);
#endif
    return widths;
}

SimdWidth widest_simd_width() { return supported_simd_widths().back(); }

float sum_floats(SimdWidth width, const float *p, size_t n) {
    switch (width) {
        case SimdWidth::Avx512: return sum_avx512(p, n);
        case SimdWidth::Avx2: return sum_avx2(p, n);
        case SimdWidth::Scalar: break;
    }
    return sum_scalar(p, n);
}

uint64_t xor_bytes(SimdWidth width, const void *p, size_t bytes) {
    switch (width) {
        case SimdWidth::Avx512: return xor_avx512(p, bytes);
        case SimdWidth::Avx2: return xor_avx2(p, bytes);
        case SimdWidth::Scalar: break;
    }
    return xor_scalar(p, bytes);
}

float fma_chains(SimdWidth width, int64_t rounds) {
    switch (width) {
        case SimdWidth::Avx512: return fma_avx512(rounds);
        case SimdWidth::Avx2: return fma_avx2(rounds);
        case SimdWidth::Scalar: break;
    }
    return fma_scalar(rounds);
}

double fma_chain_flops(SimdWidth width, int64_t rounds) {
    return 2.0 * static_cast<double>(rounds) * kFmaChains * simd_lanes(width);
}

}  // namespace bench
