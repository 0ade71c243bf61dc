// The numeric codecs of core/fp8.h for device code, bit for bit: e4m3 (round half to even, saturating, NaN ->
// 0x7F), bf16 (round half to even, quiet NaN), DeepGEMM's scale and the block-wide amax scales come from. The GPU
// tests compare against the CPU path.
#pragma once

#include <cstdint>

namespace moe4j::cuda {

constexpr float kE4m3Max = 448.0f;
constexpr float kE4m3MinNormal = 0.015625f;

__device__ inline uint8_t e4m3_encode(float x) {
    const uint32_t bits = __float_as_uint(x);
    const uint8_t sign = static_cast<uint8_t>((bits >> 24) & 0x80);
    float a = fabsf(x);
    if (isnan(a)) return 0x7F;
    if (a > kE4m3Max) a = kE4m3Max;
    if (a < kE4m3MinNormal) return sign | static_cast<uint8_t>(nearbyintf(a * 512.0f));
    uint32_t u = __float_as_uint(a);
    u += 0x7FFFFu + ((u >> 20) & 1u);
    return sign | static_cast<uint8_t>((u >> 20) - (120u << 3));
}

__device__ inline float e4m3_decode(uint8_t code) {
    const uint32_t sign = static_cast<uint32_t>(code & 0x80) << 24;
    const uint32_t exponent = (code >> 3) & 0x0F, mantissa = code & 0x07;
    if (exponent == 0x0F && mantissa == 0x07) return __uint_as_float(0x7FC00000u | sign);
    if (exponent == 0) return __uint_as_float(__float_as_uint(static_cast<float>(mantissa) * 0.001953125f) | sign);
    return __uint_as_float(sign | ((exponent + 120u) << 23) | (mantissa << 20));
}

__device__ inline uint16_t bf16_encode(float x) {
    uint32_t u = __float_as_uint(x);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);
    u += 0x7FFFu + ((u >> 16) & 1u);
    return static_cast<uint16_t>(u >> 16);
}

__device__ inline float bf16_decode(uint16_t h) { return __uint_as_float(static_cast<uint32_t>(h) << 16); }

__device__ inline float fp8_scale(float amax, bool ue8m0) {
    float s = (amax < 1e-4f ? 1e-4f : amax) / kE4m3Max;  // a NaN amax stays NaN
    if (!ue8m0 || !isfinite(s)) return s;
    uint32_t u = __float_as_uint(s);
    if (u & 0x007FFFFFu) u = (u & 0xFF800000u) + 0x00800000u;
    return __uint_as_float(u & 0xFF800000u);
}

// max(|a|, |b|) that propagates NaN, as the CPU's block maximum does.
__device__ inline float nan_max(float a, float b) {
    return (isnan(a) || isnan(b)) ? __int_as_float(0x7FC00000) : fmaxf(a, b);
}

// Block-wide NaN-propagating maximum of one value per thread, for blocks of Threads threads (a multiple of 32).
template <int Threads>
__device__ float block_max(float v) {
    __shared__ float partial[Threads / 32];
    for (int offset = 16; offset > 0; offset /= 2) v = nan_max(v, __shfl_xor_sync(0xFFFFFFFFu, v, offset));
    if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = v;
    __syncthreads();
    float m = partial[0];
    for (int w = 1; w < Threads / 32; ++w) m = nan_max(m, partial[w]);
    __syncthreads();
    return m;
}

// Loads element i of a row of dtype F32 (0) or BF16 (1) as float.
__device__ inline float load_float(const void *row, int64_t i, int32_t dtype) {
    return dtype == MOE4J_F32 ? static_cast<const float *>(row)[i] : bf16_decode(static_cast<const uint16_t *>(row)[i]);
}

__device__ inline void store_float(void *row, int64_t i, int32_t dtype, float v) {
    if (dtype == MOE4J_F32)
        static_cast<float *>(row)[i] = v;
    else
        static_cast<uint16_t *>(row)[i] = bf16_encode(v);
}

}  // namespace moe4j::cuda
