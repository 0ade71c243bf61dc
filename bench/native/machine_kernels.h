// Inner loops of the machine measurements, one version per SIMD width, chosen at run time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace bench {

enum class SimdWidth { Scalar, Avx2, Avx512 };

const char *simd_name(SimdWidth width);
int simd_lanes(SimdWidth width);  // fp32 lanes per instruction
// The widths this CPU runs, narrowest first; Scalar is always there.
std::vector<SimdWidth> supported_simd_widths();
SimdWidth widest_simd_width();

// sum_floats needs p 64-byte aligned and n a multiple of this.
constexpr size_t kSumBlockFloats = 128;
// Sum of p[0, n) with wide loads into several independent accumulators: a pure read stream.
float sum_floats(SimdWidth width, const float *p, size_t n);

// xor_bytes needs p 64-byte aligned and `bytes` a multiple of this.
constexpr size_t kXorBlockBytes = 512;
// XOR of p[0, bytes) as 64-bit words, with wide loads into several independent accumulators: a pure read stream over
// any bytes (sum_floats would add whatever floats the bytes spell, denormals and NaNs included).
uint64_t xor_bytes(SimdWidth width, const void *p, size_t bytes);

// Independent accumulator chains per fma_chains round: enough to cover FMA latency on two pipes.
constexpr int kFmaChains = 12;
// Runs `rounds` rounds of kFmaChains independent vector FMAs (scalar: multiply-add) and returns a
// value that depends on all of them, so none can be optimized away.
float fma_chains(SimdWidth width, int64_t rounds);
// Floating-point operations fma_chains(width, rounds) performs: 2 per FMA lane.
double fma_chain_flops(SimdWidth width, int64_t rounds);

// Whether the CPU has AVX-512 BF16's vdpbf16ps (bf16 pair dot products accumulated in fp32).
bool has_bf16_dot();
// Runs `rounds` rounds of kFmaChains independent vdpbf16ps on 512-bit registers (requires has_bf16_dot()).
float bf16_dot_chains(int64_t rounds);
// Floating-point operations bf16_dot_chains(rounds) performs: 32 bf16 products and 32 adds per instruction.
double bf16_dot_chain_flops(int64_t rounds);
// Whether the CPU has AVX-512 VNNI's vpdpbusd (4 u8 x s8 products summed into each 32-bit lane).
bool has_int8_dot();
// Runs `rounds` rounds of kFmaChains independent vpdpbusd on 512-bit registers (requires has_int8_dot()).
int32_t int8_dot_chains(int64_t rounds);
// Integer operations int8_dot_chains(rounds) performs: 64 products and 64 adds per instruction.
double int8_dot_chain_ops(int64_t rounds);

}  // namespace bench
