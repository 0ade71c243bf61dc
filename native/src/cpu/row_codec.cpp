#include "row_codec.h"

// GCC 12's AVX-512 headers self-initialise "undefined" registers and trip -W(maybe-)uninitialized inside
// the headers themselves (GCC bug 105593); the pragmas must precede the include to cover them.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <cmath>
#include <limits>

#include "../core/fp8.h"
#include "moe4j.h"

namespace moe4j::cpu {
namespace {

// ---------------------------------------------------------------- scalar reference path

inline float load_scalar(const float *x, int64_t i) { return x[i]; }
inline float load_scalar(const uint16_t *x, int64_t i) { return bf16_decode(x[i]); }

template <typename T>
float amax_scalar(const T *x, int64_t n) {
    float m = 0.0f;
    for (int64_t i = 0; i < n; ++i) {
        const float a = std::fabs(load_scalar(x, i));
        if (std::isnan(a)) return std::numeric_limits<float>::quiet_NaN();
        m = a > m ? a : m;
    }
    return m;
}

template <typename T>
void encode_scalar(const T *x, int64_t n, float mul, uint8_t *q) {
    for (int64_t i = 0; i < n; ++i) q[i] = e4m3_encode(load_scalar(x, i) * mul);
}

void decode_f32_scalar(const uint8_t *q, int64_t n, float scale, float *out) {
    for (int64_t i = 0; i < n; ++i) out[i] = e4m3_decode(q[i]) * scale;
}

void decode_bf16_scalar(const uint8_t *q, int64_t n, float scale, uint16_t *out) {
    for (int64_t i = 0; i < n; ++i) out[i] = bf16_encode(e4m3_decode(q[i]) * scale);
}

void f32_to_bf16_scalar(const float *x, int64_t n, uint16_t *out) {
    for (int64_t i = 0; i < n; ++i) out[i] = bf16_encode(x[i]);
}

void bf16_to_f32_scalar(const uint16_t *x, int64_t n, float *out) {
    for (int64_t i = 0; i < n; ++i) out[i] = bf16_decode(x[i]);
}

// ---------------------------------------------------------------- AVX2 path (8 lanes; tails go scalar)

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

inline __m256 load8(const float *x) { return _mm256_loadu_ps(x); }
inline __m256 load8(const uint16_t *x) {
    const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i *>(x)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
}

template <typename T>
float amax_avx2(const T *x, int64_t n) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    __m256 m = _mm256_setzero_ps();
    __m256 nan = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 a = _mm256_and_ps(load8(x + i), abs_mask);
        nan = _mm256_or_ps(nan, _mm256_cmp_ps(a, a, _CMP_UNORD_Q));
        m = _mm256_max_ps(m, a);
    }
    if (_mm256_movemask_ps(nan) != 0) return std::numeric_limits<float>::quiet_NaN();
    __m128 r = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    r = _mm_max_ps(r, _mm_movehl_ps(r, r));
    r = _mm_max_ss(r, _mm_shuffle_ps(r, r, 1));
    const float tail = amax_scalar(x + i, n - i);
    if (std::isnan(tail)) return tail;
    const float head = _mm_cvtss_f32(r);
    return tail > head ? tail : head;
}

// Eight e4m3 codes (one per 32-bit lane) for v, exactly as e4m3_encode computes them.
inline __m256i e4m3_codes8(__m256 v) {
    const __m256i bits = _mm256_castps_si256(v);
    const __m256i sign = _mm256_and_si256(_mm256_srli_epi32(bits, 24), _mm256_set1_epi32(0x80));
    __m256 a = _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF)));
    const __m256 nan = _mm256_cmp_ps(a, a, _CMP_UNORD_Q);
    a = _mm256_min_ps(a, _mm256_set1_ps(kE4m3Max));
    const __m256 subnormal = _mm256_cmp_ps(a, _mm256_set1_ps(kE4m3MinNormal), _CMP_LT_OQ);
    const __m256i u = _mm256_castps_si256(a);
    const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(u, 20), _mm256_set1_epi32(1));
    __m256i normal = _mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7FFFF), odd));
    normal = _mm256_sub_epi32(_mm256_srli_epi32(normal, 20), _mm256_set1_epi32(120 << 3));
    const __m256i small = _mm256_cvtps_epi32(_mm256_mul_ps(a, _mm256_set1_ps(512.0f)));
    __m256i code = _mm256_blendv_epi8(normal, small, _mm256_castps_si256(subnormal));
    code = _mm256_or_si256(code, sign);
    return _mm256_blendv_epi8(code, _mm256_set1_epi32(kE4m3NaN), _mm256_castps_si256(nan));
}

// Low byte of each 32-bit lane, packed into 8 bytes.
inline void store_low_bytes8(__m256i codes, uint8_t *q) {
    const __m256i pick = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,  //
                                          0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m256i packed =
        _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(codes, pick), _mm256_setr_epi32(0, 4, 1, 1, 1, 1, 1, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i *>(q), _mm256_castsi256_si128(packed));
}

template <typename T>
void encode_avx2(const T *x, int64_t n, float mul, uint8_t *q) {
    const __m256 m = _mm256_set1_ps(mul);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) store_low_bytes8(e4m3_codes8(_mm256_mul_ps(load8(x + i), m)), q + i);
    encode_scalar(x + i, n - i, mul, q + i);
}

inline __m256 e4m3_values8(const uint8_t *q) {
    const __m256i code = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i *>(q)));
    const __m256i sign = _mm256_slli_epi32(_mm256_and_si256(code, _mm256_set1_epi32(0x80)), 24);
    const __m256i exponent = _mm256_and_si256(_mm256_srli_epi32(code, 3), _mm256_set1_epi32(0x0F));
    const __m256i mantissa = _mm256_and_si256(code, _mm256_set1_epi32(0x07));
    const __m256i normal = _mm256_or_si256(_mm256_slli_epi32(_mm256_add_epi32(exponent, _mm256_set1_epi32(120)), 23),
                                           _mm256_slli_epi32(mantissa, 20));
    const __m256i small =
        _mm256_castps_si256(_mm256_mul_ps(_mm256_cvtepi32_ps(mantissa), _mm256_set1_ps(0.001953125f)));
    __m256i bits = _mm256_blendv_epi8(normal, small, _mm256_cmpeq_epi32(exponent, _mm256_setzero_si256()));
    const __m256i nan = _mm256_cmpeq_epi32(_mm256_and_si256(code, _mm256_set1_epi32(0x7F)), _mm256_set1_epi32(0x7F));
    bits = _mm256_blendv_epi8(bits, _mm256_set1_epi32(0x7FC00000), nan);
    return _mm256_castsi256_ps(_mm256_or_si256(bits, sign));
}

// Eight bf16 values (one per 32-bit lane, low half) rounded to nearest even, NaN quieted.
inline __m256i bf16_bits8(__m256 v) {
    const __m256i u = _mm256_castps_si256(v);
    const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    const __m256i rounded =
        _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7FFF), odd)), 16);
    const __m256i magnitude = _mm256_and_si256(u, _mm256_set1_epi32(0x7FFFFFFF));
    const __m256i nan = _mm256_cmpgt_epi32(magnitude, _mm256_set1_epi32(0x7F800000));
    const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x0040));
    return _mm256_blendv_epi8(rounded, quiet, nan);
}

inline void store_bf16x8(__m256i lanes, uint16_t *out) {
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(lanes, lanes), 0x08);
    _mm_storeu_si128(reinterpret_cast<__m128i *>(out), _mm256_castsi256_si128(packed));
}

void decode_f32_avx2(const uint8_t *q, int64_t n, float scale, float *out) {
    const __m256 s = _mm256_set1_ps(scale);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _mm256_mul_ps(e4m3_values8(q + i), s));
    decode_f32_scalar(q + i, n - i, scale, out + i);
}

void decode_bf16_avx2(const uint8_t *q, int64_t n, float scale, uint16_t *out) {
    const __m256 s = _mm256_set1_ps(scale);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) store_bf16x8(bf16_bits8(_mm256_mul_ps(e4m3_values8(q + i), s)), out + i);
    decode_bf16_scalar(q + i, n - i, scale, out + i);
}

void f32_to_bf16_avx2(const float *x, int64_t n, uint16_t *out) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) store_bf16x8(bf16_bits8(_mm256_loadu_ps(x + i)), out + i);
    f32_to_bf16_scalar(x + i, n - i, out + i);
}

void bf16_to_f32_avx2(const uint16_t *x, int64_t n, float *out) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, load8(x + i));
    bf16_to_f32_scalar(x + i, n - i, out + i);
}

#pragma GCC pop_options

// ---------------------------------------------------------------- AVX-512 path (16 lanes; masked tails)

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")

inline __mmask16 tail_mask(int64_t remaining) {
    return remaining >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << remaining) - 1u);
}

inline __m512 load16(const float *x, __mmask16 k) { return _mm512_maskz_loadu_ps(k, x); }
inline __m512 load16(const uint16_t *x, __mmask16 k) {
    const __m512i wide = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k, x));
    return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
}

// amax as an unsigned max of the magnitude bits: for non-negative floats the integer order is the numeric
// order, and every NaN pattern sorts above infinity, so NaN propagates without compares.
float amax_avx512(const float *x, int64_t n) {
    const __m512i magnitude = _mm512_set1_epi32(0x7FFFFFFF);
    __m512i m = _mm512_setzero_si512();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) m = _mm512_max_epu32(m, _mm512_and_si512(_mm512_loadu_si512(x + i), magnitude));
    if (i < n) m = _mm512_max_epu32(m, _mm512_and_si512(_mm512_maskz_loadu_epi32(tail_mask(n - i), x + i), magnitude));
    const uint32_t bits = _mm512_reduce_max_epu32(m);
    return bits > 0x7F800000u ? std::numeric_limits<float>::quiet_NaN() : bits_float(bits);
}

float amax_avx512(const uint16_t *x, int64_t n) {
    const __m512i magnitude = _mm512_set1_epi16(0x7FFF);
    __m512i m = _mm512_setzero_si512();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) m = _mm512_max_epu16(m, _mm512_and_si512(_mm512_loadu_si512(x + i), magnitude));
    if (i < n) {
        const __mmask32 k = static_cast<__mmask32>((uint64_t{1} << (n - i)) - 1);
        m = _mm512_max_epu16(m, _mm512_and_si512(_mm512_maskz_loadu_epi16(k, x + i), magnitude));
    }
    m = _mm512_max_epu16(m, _mm512_srli_epi32(m, 16));  // each 32-bit lane's low half: max of its pair
    const uint32_t bits = _mm512_reduce_max_epu32(_mm512_and_si512(m, _mm512_set1_epi32(0xFFFF)));
    return bits > 0x7F80u ? std::numeric_limits<float>::quiet_NaN() : bf16_decode(static_cast<uint16_t>(bits));
}

inline __m512i e4m3_codes16(__m512 v) {
    const __m512i bits = _mm512_castps_si512(v);
    const __m512i sign = _mm512_and_si512(_mm512_srli_epi32(bits, 24), _mm512_set1_epi32(0x80));
    __m512 a = _mm512_abs_ps(v);
    const __mmask16 nan = _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q);
    a = _mm512_min_ps(a, _mm512_set1_ps(kE4m3Max));
    const __mmask16 subnormal = _mm512_cmp_ps_mask(a, _mm512_set1_ps(kE4m3MinNormal), _CMP_LT_OQ);
    const __m512i u = _mm512_castps_si512(a);
    const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 20), _mm512_set1_epi32(1));
    __m512i normal = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7FFFF), odd));
    normal = _mm512_sub_epi32(_mm512_srli_epi32(normal, 20), _mm512_set1_epi32(120 << 3));
    const __m512i small = _mm512_cvtps_epi32(_mm512_mul_ps(a, _mm512_set1_ps(512.0f)));
    __m512i code = _mm512_or_si512(_mm512_mask_blend_epi32(subnormal, normal, small), sign);
    return _mm512_mask_blend_epi32(nan, code, _mm512_set1_epi32(kE4m3NaN));
}

inline __m512 load16(const float *x) { return _mm512_loadu_ps(x); }
inline __m512 load16(const uint16_t *x) {
    const __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(x)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
}

// Four vectors of codes (one per 32-bit lane, values 0..255) into 64 bytes in element order. The unsigned
// saturating packs interleave 128-bit lanes; the final permutation undoes that.
inline __m512i pack_codes64(__m512i c0, __m512i c1, __m512i c2, __m512i c3) {
    const __m512i bytes = _mm512_packus_epi16(_mm512_packus_epi32(c0, c1), _mm512_packus_epi32(c2, c3));
    return _mm512_permutexvar_epi32(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), bytes);
}

template <typename T>
void encode_avx512(const T *x, int64_t n, float mul, uint8_t *q) {
    const __m512 m = _mm512_set1_ps(mul);
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        const __m512i c0 = e4m3_codes16(_mm512_mul_ps(load16(x + i), m));
        const __m512i c1 = e4m3_codes16(_mm512_mul_ps(load16(x + i + 16), m));
        const __m512i c2 = e4m3_codes16(_mm512_mul_ps(load16(x + i + 32), m));
        const __m512i c3 = e4m3_codes16(_mm512_mul_ps(load16(x + i + 48), m));
        _mm512_storeu_si512(q + i, pack_codes64(c0, c1, c2, c3));
    }
    for (; i < n; i += 16) {
        const __mmask16 k = tail_mask(n - i);
        _mm512_mask_cvtepi32_storeu_epi8(q + i, k, e4m3_codes16(_mm512_mul_ps(load16(x + i, k), m)));
    }
}

inline __m512 e4m3_values16(const uint8_t *q, __mmask16 k) {
    const __m512i code = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(k, q));
    const __m512i sign = _mm512_slli_epi32(_mm512_and_si512(code, _mm512_set1_epi32(0x80)), 24);
    const __m512i exponent = _mm512_and_si512(_mm512_srli_epi32(code, 3), _mm512_set1_epi32(0x0F));
    const __m512i mantissa = _mm512_and_si512(code, _mm512_set1_epi32(0x07));
    const __m512i normal = _mm512_or_si512(_mm512_slli_epi32(_mm512_add_epi32(exponent, _mm512_set1_epi32(120)), 23),
                                           _mm512_slli_epi32(mantissa, 20));
    const __m512i small =
        _mm512_castps_si512(_mm512_mul_ps(_mm512_cvtepi32_ps(mantissa), _mm512_set1_ps(0.001953125f)));
    __m512i bits = _mm512_mask_blend_epi32(_mm512_cmpeq_epi32_mask(exponent, _mm512_setzero_si512()), normal, small);
    const __mmask16 nan =
        _mm512_cmpeq_epi32_mask(_mm512_and_si512(code, _mm512_set1_epi32(0x7F)), _mm512_set1_epi32(0x7F));
    bits = _mm512_mask_blend_epi32(nan, bits, _mm512_set1_epi32(0x7FC00000));
    return _mm512_castsi512_ps(_mm512_or_si512(bits, sign));
}

inline __m256i bf16_bits16(__m512 v) {
    const __m512i u = _mm512_castps_si512(v);
    const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    const __m512i rounded =
        _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7FFF), odd)), 16);
    const __mmask16 nan =
        _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7FFFFFFF)), _mm512_set1_epi32(0x7F800000));
    const __m512i quiet = _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x0040));
    return _mm512_cvtepi32_epi16(_mm512_mask_blend_epi32(nan, rounded, quiet));
}

void decode_f32_avx512(const uint8_t *q, int64_t n, float scale, float *out) {
    const __m512 s = _mm512_set1_ps(scale);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = tail_mask(n - i);
        _mm512_mask_storeu_ps(out + i, k, _mm512_mul_ps(e4m3_values16(q + i, k), s));
    }
}

void decode_bf16_avx512(const uint8_t *q, int64_t n, float scale, uint16_t *out) {
    const __m512 s = _mm512_set1_ps(scale);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = tail_mask(n - i);
        _mm256_mask_storeu_epi16(out + i, k, bf16_bits16(_mm512_mul_ps(e4m3_values16(q + i, k), s)));
    }
}

void f32_to_bf16_avx512(const float *x, int64_t n, uint16_t *out) {
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = tail_mask(n - i);
        _mm256_mask_storeu_epi16(out + i, k, bf16_bits16(_mm512_maskz_loadu_ps(k, x + i)));
    }
}

void bf16_to_f32_avx512(const uint16_t *x, int64_t n, float *out) {
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = tail_mask(n - i);
        _mm512_mask_storeu_ps(out + i, k, load16(x + i, k));
    }
}

#pragma GCC pop_options

constexpr RowCodec kScalar{amax_scalar<float>, amax_scalar<uint16_t>, encode_scalar<float>, encode_scalar<uint16_t>,
                           decode_f32_scalar,  decode_bf16_scalar,    f32_to_bf16_scalar,   bf16_to_f32_scalar};
constexpr RowCodec kAvx2{amax_avx2<float>, amax_avx2<uint16_t>, encode_avx2<float>, encode_avx2<uint16_t>,
                         decode_f32_avx2,  decode_bf16_avx2,    f32_to_bf16_avx2,   bf16_to_f32_avx2};
constexpr RowCodec kAvx512{amax_avx512,       amax_avx512,        encode_avx512<float>, encode_avx512<uint16_t>,
                           decode_f32_avx512, decode_bf16_avx512, f32_to_bf16_avx512,   bf16_to_f32_avx512};

}  // namespace

const RowCodec &row_codec(int isa) {
    switch (isa) {
        case MOE4J_ISA_AVX512_BF16: return kAvx512;
        case MOE4J_ISA_AVX512:  // no AVX-512F code of its own: the AVX2 path
        case MOE4J_ISA_AVX2: return kAvx2;
        default: return kScalar;
    }
}

}  // namespace moe4j::cpu
