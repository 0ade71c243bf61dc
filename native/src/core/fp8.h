// Scalar codecs for OCP E4M3 ("fn") and bf16: the reference every SIMD path must match bit for bit.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace moe4j {

constexpr float kE4m3Max = 448.0f;
constexpr float kE4m3MinNormal = 0.015625f;  // 2^-6
constexpr uint8_t kE4m3NaN = 0x7F;

inline uint32_t float_bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return u;
}

inline float bits_float(uint32_t u) {
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

// Round to nearest even, saturate to +-448 (infinities included), NaN -> 0x7F.
inline uint8_t e4m3_encode(float x) {
    const uint32_t bits = float_bits(x);
    const uint8_t sign = static_cast<uint8_t>((bits >> 24) & 0x80);
    float a = std::fabs(x);
    if (std::isnan(a)) return kE4m3NaN;
    if (a > kE4m3Max) a = kE4m3Max;
    if (a < kE4m3MinNormal) {
        // Subnormal codes are multiples of 2^-9; a * 512 is exact, and rounding to 8 yields the min normal.
        return sign | static_cast<uint8_t>(std::nearbyint(a * 512.0f));
    }
    // Keep 3 mantissa bits with round-half-even on the fp32 bit pattern; a carry bumps the exponent.
    uint32_t u = float_bits(a);
    u += 0x7FFFFu + ((u >> 20) & 1u);
    return sign | static_cast<uint8_t>((u >> 20) - (120u << 3));
}

inline float e4m3_decode(uint8_t code) {
    const uint32_t sign = static_cast<uint32_t>(code & 0x80) << 24;
    const uint32_t exponent = (code >> 3) & 0x0F;
    const uint32_t mantissa = code & 0x07;
    if (exponent == 0x0F && mantissa == 0x07) return bits_float(0x7FC00000u | sign);
    if (exponent == 0) return bits_float(float_bits(static_cast<float>(mantissa) * 0.001953125f) | sign);
    return bits_float(sign | ((exponent + 120u) << 23) | (mantissa << 20));
}

// bf16 = top half of fp32, rounded to nearest even; NaN stays NaN (quiet bit forced).
inline uint16_t bf16_encode(float x) {
    uint32_t u = float_bits(x);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);
    u += 0x7FFFu + ((u >> 16) & 1u);
    return static_cast<uint16_t>(u >> 16);
}

inline float bf16_decode(uint16_t h) { return bits_float(static_cast<uint32_t>(h) << 16); }

// UE8M0 scale: the smallest power of two >= s, for s > 0; non-finite s is returned as is.
inline float round_up_pow2(float s) {
    if (!std::isfinite(s)) return s;
    uint32_t u = float_bits(s);
    if (u & 0x007FFFFFu) u = (u & 0xFF800000u) + 0x00800000u;
    return bits_float(u & 0xFF800000u);
}

// Per-block FP8 scale from the block's max |x| (DeepGEMM: clamp to 1e-4, divide by 448).
// A NaN amax stays NaN, as torch's clamp keeps it, so a block holding NaN quantizes to NaN.
inline float fp8_scale(float amax, bool ue8m0) {
    const float s = (amax < 1e-4f ? 1e-4f : amax) / kE4m3Max;
    return ue8m0 ? round_up_pow2(s) : s;
}

}  // namespace moe4j
