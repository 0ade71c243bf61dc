#include "gemm.h"

// GCC 12's AVX-512 headers trip -W(maybe-)uninitialized inside themselves (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>
#include <optional>

#include "../core/context.h"
#include "../core/fp8.h"
#include "../core/views.h"

namespace moe4j::cpu {
namespace {

constexpr int kTileM = 4, kTileN = 2;
constexpr int64_t kColumnsPerTask = 16;

// out[m][j] = sum_k a[m][k] * b[j][k] for a tile of up to kTileM x kTileN; pointers are to rows of the input dtype.
struct Tile {
    const void *a[kTileM];
    const void *b[kTileN];
    float out[kTileM][kTileN];
};

inline float load_scalar(const float *x, int64_t i) { return x[i]; }
inline float load_scalar(const uint16_t *x, int64_t i) { return bf16_decode(x[i]); }

// ---------------------------------------------------------------- scalar reference path

template <typename T, int MR, int NR>
void dot_scalar(Tile &t, int64_t k) {
    for (int m = 0; m < MR; ++m)
        for (int j = 0; j < NR; ++j) {
            const T *a = static_cast<const T *>(t.a[m]), *b = static_cast<const T *>(t.b[j]);
            float acc = 0.0f;
            for (int64_t i = 0; i < k; ++i) acc += load_scalar(a, i) * load_scalar(b, i);
            t.out[m][j] = acc;
        }
}

// ---------------------------------------------------------------- AVX2: fp32 FMA, 8 lanes, scalar tail

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

inline __m256 load8(const float *x) { return _mm256_loadu_ps(x); }
inline __m256 load8(const uint16_t *x) {
    const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i *>(x)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
}

template <typename T, int MR, int NR>
void dot_avx2(Tile &t, int64_t k) {
    __m256 acc[MR][NR];
    for (int m = 0; m < MR; ++m)
        for (int j = 0; j < NR; ++j) acc[m][j] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= k; i += 8) {
        __m256 bv[NR];
        for (int j = 0; j < NR; ++j) bv[j] = load8(static_cast<const T *>(t.b[j]) + i);
        for (int m = 0; m < MR; ++m) {
            const __m256 av = load8(static_cast<const T *>(t.a[m]) + i);
            for (int j = 0; j < NR; ++j) acc[m][j] = _mm256_fmadd_ps(av, bv[j], acc[m][j]);
        }
    }
    for (int m = 0; m < MR; ++m)
        for (int j = 0; j < NR; ++j) {
            __m128 r = _mm_add_ps(_mm256_castps256_ps128(acc[m][j]), _mm256_extractf128_ps(acc[m][j], 1));
            r = _mm_add_ps(r, _mm_movehl_ps(r, r));
            r = _mm_add_ss(r, _mm_shuffle_ps(r, r, 1));
            float sum = _mm_cvtss_f32(r);
            const T *a = static_cast<const T *>(t.a[m]), *b = static_cast<const T *>(t.b[j]);
            for (int64_t tail = i; tail < k; ++tail) sum += load_scalar(a, tail) * load_scalar(b, tail);
            t.out[m][j] = sum;
        }
}

#pragma GCC pop_options

// ---------------------------------------------------------------- AVX-512F: fp32 FMA, 16 lanes, masked tail

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq")

inline __m512 load16(__mmask16 mask, const float *x) { return _mm512_maskz_loadu_ps(mask, x); }
inline __m512 load16(__mmask16 mask, const uint16_t *x) {
    const __m512i wide = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, x));
    return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
}

// Without AVX512_BF16 (Skylake-SP to Ice Lake) bf16 inputs are widened to fp32 (exactly: a shift) before the FMA;
// masked-off tail lanes load zeros and contribute nothing.
template <typename T, int MR, int NR>
void dot_avx512_f32(Tile &t, int64_t k) {
    __m512 acc[MR][NR];
    for (int m = 0; m < MR; ++m)
        for (int j = 0; j < NR; ++j) acc[m][j] = _mm512_setzero_ps();
    for (int64_t i = 0; i < k; i += 16) {
        const __mmask16 mask = k - i >= 16 ? __mmask16{0xFFFF} : static_cast<__mmask16>((1u << (k - i)) - 1);
        __m512 bv[NR];
        for (int j = 0; j < NR; ++j) bv[j] = load16(mask, static_cast<const T *>(t.b[j]) + i);
        for (int m = 0; m < MR; ++m) {
            const __m512 av = load16(mask, static_cast<const T *>(t.a[m]) + i);
            for (int j = 0; j < NR; ++j) acc[m][j] = _mm512_fmadd_ps(av, bv[j], acc[m][j]);
        }
    }
    for (int m = 0; m < MR; ++m)
        for (int j = 0; j < NR; ++j) t.out[m][j] = _mm512_reduce_add_ps(acc[m][j]);
}

#pragma GCC pop_options

// ---------------------------------------------------------------- AVX-512 BF16: bf16 dot products

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")

// bf16: 32 elements per dot-product instruction, masked tail (zeros contribute nothing).
template <int MR, int NR>
void dot_avx512_bf16(Tile &t, int64_t k) {
    __m512 acc[MR][NR];
    for (int m = 0; m < MR; ++m)
        for (int j = 0; j < NR; ++j) acc[m][j] = _mm512_setzero_ps();
    for (int64_t i = 0; i < k; i += 32) {
        const __mmask32 mask = k - i >= 32 ? ~__mmask32{0} : static_cast<__mmask32>((uint64_t{1} << (k - i)) - 1);
        __m512bh bv[NR];
        for (int j = 0; j < NR; ++j)
            bv[j] = (__m512bh)_mm512_maskz_loadu_epi16(mask, static_cast<const uint16_t *>(t.b[j]) + i);
        for (int m = 0; m < MR; ++m) {
            const __m512bh av = (__m512bh)_mm512_maskz_loadu_epi16(mask, static_cast<const uint16_t *>(t.a[m]) + i);
            for (int j = 0; j < NR; ++j) acc[m][j] = _mm512_dpbf16_ps(acc[m][j], av, bv[j]);
        }
    }
    for (int m = 0; m < MR; ++m)
        for (int j = 0; j < NR; ++j) t.out[m][j] = _mm512_reduce_add_ps(acc[m][j]);
}

#pragma GCC pop_options

template <int MR, int NR>
void dot(int isa, int32_t dtype, Tile &t, int64_t k) {
    const bool bf16 = dtype == MOE4J_BF16;
    switch (isa) {
        case MOE4J_ISA_AVX512_BF16: return bf16 ? dot_avx512_bf16<MR, NR>(t, k) : dot_avx512_f32<float, MR, NR>(t, k);
        case MOE4J_ISA_AVX512:
            return bf16 ? dot_avx512_f32<uint16_t, MR, NR>(t, k) : dot_avx512_f32<float, MR, NR>(t, k);
        case MOE4J_ISA_AVX2: return bf16 ? dot_avx2<uint16_t, MR, NR>(t, k) : dot_avx2<float, MR, NR>(t, k);
        default: return bf16 ? dot_scalar<uint16_t, MR, NR>(t, k) : dot_scalar<float, MR, NR>(t, k);
    }
}

void dot_any(int isa, int32_t dtype, Tile &t, int rows, int cols, int64_t k) {
    if (cols == 2) {
        switch (rows) {
            case 4: return dot<4, 2>(isa, dtype, t, k);
            case 3: return dot<3, 2>(isa, dtype, t, k);
            case 2: return dot<2, 2>(isa, dtype, t, k);
            default: return dot<1, 2>(isa, dtype, t, k);
        }
    }
    switch (rows) {
        case 4: return dot<4, 1>(isa, dtype, t, k);
        case 3: return dot<3, 1>(isa, dtype, t, k);
        case 2: return dot<2, 1>(isa, dtype, t, k);
        default: return dot<1, 1>(isa, dtype, t, k);
    }
}

}  // namespace

void gemm_nt(moe4j_context *ctx, const moe4j_tensor &a_t, const moe4j_tensor &b_t, const moe4j_tensor *c_t,
             const moe4j_tensor &d_t) {
    // Rank 3 is a batch of products: rows of a, c and d flatten to [B·M], rows of b to [B·N].
    const RowView a(a_t), b(b_t), d(d_t);
    const std::optional<RowView> c = c_t != nullptr ? std::optional<RowView>(*c_t) : std::nullopt;
    const int rank = a_t.rank;
    const int64_t batches = rank == 3 ? a_t.shape[0] : 1;
    const int64_t m_count = a_t.shape[rank - 2], n_count = b_t.shape[rank - 2], k = a.length;
    const int64_t blocks = (n_count + kColumnsPerTask - 1) / kColumnsPerTask;
    // A task's work: its multiply-adds, and its block of b streamed from memory (counted as two multiply-adds per
    // element), which is what a few-row product (MLA's absorption at decode) spends its time on.
    const int64_t task_work = (m_count + 2) * kColumnsPerTask * k;
    parallel_for(*ctx->pool, batches * blocks, grain_for(task_work), [&](int64_t begin, int64_t end) {
        Tile t{};
        for (int64_t task = begin; task < end; ++task) {
            const int64_t batch = task / blocks, first_row = batch * m_count, first_col = batch * n_count;
            const int64_t n0 = (task % blocks) * kColumnsPerTask, n1 = std::min(n_count, n0 + kColumnsPerTask);
            for (int64_t r = 0; r < m_count; r += kTileM) {
                const int rows = static_cast<int>(std::min<int64_t>(kTileM, m_count - r));
                for (int m = 0; m < rows; ++m) t.a[m] = a.row<char>(first_row + r + m);
                for (int64_t n = n0; n < n1; n += kTileN) {
                    const int cols = static_cast<int>(std::min<int64_t>(kTileN, n1 - n));
                    for (int j = 0; j < cols; ++j) t.b[j] = b.row<char>(first_col + n + j);
                    dot_any(ctx->isa, a.dtype, t, rows, cols, k);
                    for (int m = 0; m < rows; ++m)
                        for (int j = 0; j < cols; ++j) {
                            const int64_t row = first_row + r + m;
                            float value = t.out[m][j];
                            if (c) value += c->row<float>(row)[n + j];
                            if (d.dtype == MOE4J_F32)
                                d.row<float>(row)[n + j] = value;
                            else
                                d.row<uint16_t>(row)[n + j] = bf16_encode(value);
                        }
                }
            }
        }
    });
}

}  // namespace moe4j::cpu
