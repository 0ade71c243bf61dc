// exp(x) for x <= 0 in double, the sampler's exponential (moe4j_logits_stats, and the Java Sampler's twin): x is
// split as k ln 2 + r with k = rint(x log2 e) and ln 2 in two parts, exp(r) is the Taylor series to r^13 by fused
// multiply-adds (|r| <= 0.347: the next term is below 5e-18), and 2^k is put in the exponent field. x < -708 (or
// NaN) gives 0. Shared by the CPU paths and CUDA, which evaluate it operation by operation alike.
#pragma once

namespace moe4j {

constexpr double kExpdMin = -708.0;
constexpr double kExpdLog2e = 1.4426950408889634;
constexpr double kExpdLn2High = 0.6931471803691238;     // ln 2, its first 32 bits
constexpr double kExpdLn2Low = 1.9082149292705877e-10;  // ln 2 - kExpdLn2High
// 1 / n! for n = 13 down to 2 (scalars, so that device code can use them too); the series ends with + r and + 1.
constexpr double kExpd13 = 1.0 / 6227020800.0, kExpd12 = 1.0 / 479001600.0, kExpd11 = 1.0 / 39916800.0,
                 kExpd10 = 1.0 / 3628800.0, kExpd9 = 1.0 / 362880.0, kExpd8 = 1.0 / 40320.0, kExpd7 = 1.0 / 5040.0,
                 kExpd6 = 1.0 / 720.0, kExpd5 = 1.0 / 120.0, kExpd4 = 1.0 / 24.0, kExpd3 = 1.0 / 6.0, kExpd2 = 0.5;
// The lanes of the sum of exponentials: lane l adds elements l, l + 64, ... in order; then the lanes pairwise.
constexpr int kSumLanes = 64;

}  // namespace moe4j
