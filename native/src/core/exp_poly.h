// The constants of the one exp polynomial that SiLU uses on every CPU path and on CUDA (Cephes expf), so that all
// of them give the same bits. exp(x) for x clamped to [kExpMin, kExpMax] (a NaN becomes kExpMin):
//   n = rint(x * kLog2e); r = fma(n, -kLn2High, x); r = fma(n, -kLn2Low, r);
//   p = kExpP0; p = fma(p, r, kExpPj) for j = 1..5; y = fma(p, r * r, r) + 1; exp = y * 2^n.
#pragma once

namespace moe4j {

constexpr float kExpMin = -87.0f, kExpMax = 88.0f;  // 2^n stays a normal float
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2High = 0.693359375f, kLn2Low = -2.12194440e-4f;
// Scalars rather than an array: nvcc lets device code use constexpr scalars of the host, not arrays.
constexpr float kExpP0 = 1.9875691500e-4f, kExpP1 = 1.3981999507e-3f, kExpP2 = 8.3334519073e-3f,
                kExpP3 = 4.1665795894e-2f, kExpP4 = 1.6666665459e-1f, kExpP5 = 5.0000001201e-1f;

}  // namespace moe4j
