// SiLU(gate) * up rows: silu(a) = a / (1 + exp(-a)) with the exp polynomial of exp_simd.h, the same operations
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
#include "../core/views.h"
#include "exp_simd.h"
#include "row_codec.h"

namespace moe4j::cpu {
namespace {

// ---------------------------------------------------------------- scalar reference path

void silu_mul_scalar(const float *gate, const float *up, float *out, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        const float a = gate[i];
        out[i] = a / (1.0f + exp_scalar(-a)) * up[i];
    }
}

// ---------------------------------------------------------------- AVX2: 8 lanes, scalar tail

#pragma GCC push_options
#pragma GCC target("avx2,fma")

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
    // per thread: BF16 gate and up rows as floats, an output row before its BF16 encoding
    const auto scratch = ctx->worker_scratch_for(static_cast<size_t>(3 * n), "SiLU·mul's rows as floats");
    parallel_for(*ctx->pool, out.rows, grain_for(16 * n), [&](int64_t begin, int64_t end, int worker) {
        float *const g = scratch.of(worker), *const u = g + n, *const o = u + n;
        for (int64_t t = begin; t < end; ++t) {
            const float *gs = gate.row<float>(t), *us = up.row<float>(t);
            if (gate.dtype == MOE4J_BF16) {
                codec.bf16_to_f32(gate.row<uint16_t>(t), n, g);
                gs = g;
            }
            if (up.dtype == MOE4J_BF16) {
                codec.bf16_to_f32(up.row<uint16_t>(t), n, u);
                us = u;
            }
            float *os = out.dtype == MOE4J_F32 ? out.row<float>(t) : o;
            kernel(gs, us, os, n);
            if (out.dtype == MOE4J_BF16) codec.f32_to_bf16(o, n, out.row<uint16_t>(t));
        }
    });
}

}  // namespace moe4j::cpu
