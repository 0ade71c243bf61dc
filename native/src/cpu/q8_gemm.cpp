// The int8 GEMM (moe4j_q8_gemm_nt): out[m, n] = sw[n] * (sum over 128-wide K blocks b, in order, of
// sa[m, b] * I(m, n, b)), I the integer dot product of the row's activation codes and the weight codes of that block.
// The integer sums are exact on every path, the float steps are the same fused multiply-adds (fma(I, sa, acc), then
// one product with sw), so every path gives the same bits. Weights are stored as code + 128 (unsigned, as vpdpbusd
// takes its first operand); the paths that multiply the stored bytes start each block's sum at -128 * (sum of the
// block's activation codes) to undo the offset.
#include "q8_gemm.h"

// GCC 12's AVX-512 headers trip -W(maybe-)uninitialized inside themselves (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <cstring>

#include "../core/context.h"
#include "../core/fp8.h"
#include "../core/views.h"

namespace moe4j::cpu {
namespace {

constexpr int64_t kBlock = 128;                  // K per activation scale
constexpr int64_t kPanel = 16;                   // weight rows per panel
constexpr int64_t kGroup = 64;                   // bytes of one panel's codes for 4 consecutive k
constexpr int64_t kGroupsPerBlock = kBlock / 4;  // 32
// How far ahead of the codes it reads a tile prefetches each of its panels' streams into L1, and a tile of one panel
// (five or more rows) much further into L2, for more lines in flight than the L1 prefetch alone keeps (Zen 4, weights
// cold, both cores, calls alternated with and without the L2 prefetch in one process: 1.17-1.22x faster at 5, 8 and 16
// rows of the LM head, 1.13x at 128, 1.06-1.19x at 8 rows of the attention and MLP shapes; an L1 prefetch 2-8 KB ahead
// instead gained 1.03-1.07x, the L2 one 4, 16 or 32 KB ahead 1.05-1.15x). Tiles of two or four panels (one to four
// rows), which read their panels side by side, take the L1 prefetch alone: on a Zen 5 VM with the weights in 2 MiB
// pages, calls over distinct weights alternated with and without in one process, 1.09-1.13x faster at one row for
// every V2-Lite shape from [2048, 2048] to the LM head, 1.13x at two rows, 1.08-1.16x at three and four; 2 KB ahead
// the same as 1 KB. (On Zen 4 with 4 KiB pages they had run 1.05-1.28x faster without.)
constexpr int64_t kPrefetchBytes = 1024;
constexpr int64_t kL2PrefetchBytes = 8192;

// The activation rows of one call, quantized into the context's workspace.
struct Activations {
    int8_t *codes;     // [M, K]
    float *scales;     // [M, K/128]
    int32_t *offsets;  // [M, K/128]: -128 * the sum of the block's codes
    int64_t k, blocks;
    const int8_t *row(int64_t m) const { return codes + m * k; }
    float scale(int64_t m, int64_t b) const { return scales[m * blocks + b]; }
    int32_t offset(int64_t m, int64_t b) const { return offsets[m * blocks + b]; }
};

// Where one call's work lives: the weight panels, their scales and the output rows.
struct Operands {
    Activations a;
    const uint8_t *b;  // Q8_P16 panels, panel p at b + p * 16 * k
    const float *sw;   // [N]
    RowView d;
    float *out(int64_t m, int64_t p) const { return d.row<float>(m) + p * kPanel; }
    const uint8_t *panel(int64_t p) const { return b + p * kPanel * a.k; }
};

// ---------------------------------------------------------------- scalar reference path

void tile_scalar(const Operands &op, int64_t m, int64_t p) {
    const uint8_t *panel = op.panel(p);
    const int8_t *x = op.a.row(m);
    float *out = op.out(m, p);
    for (int64_t j = 0; j < kPanel; ++j) {
        float acc = 0.0f;
        for (int64_t b = 0; b < op.a.blocks; ++b) {
            int32_t sum = 0;
            for (int64_t k = b * kBlock; k < (b + 1) * kBlock; ++k)
                sum += int32_t{x[k]} * (int32_t{panel[q8_offset(j, k, op.a.k)]} - 128);
            acc = std::fma(static_cast<float>(sum), op.a.scale(m, b), acc);
        }
        out[j] = acc * op.sw[p * kPanel + j];
    }
}

// ---------------------------------------------------------------- AVX2: 8 outputs (half a panel) of MR rows

#pragma GCC push_options
#pragma GCC target("avx2,fma")

// Four activation codes as 16-bit values, repeated over the register: the multiplier of 4 outputs x 4 k.
inline __m256i four_codes_avx2(const int8_t *x) {
    int32_t bits;
    std::memcpy(&bits, x, sizeof bits);
    return _mm256_broadcastq_epi64(_mm_cvtepi8_epi16(_mm_cvtsi32_si128(bits)));
}

template <int MR>
void tile_avx2(const Operands &op, int64_t m0, int64_t p, int half) {
    __m256 acc[MR];
    for (int m = 0; m < MR; ++m) acc[m] = _mm256_setzero_ps();
    for (int64_t b = 0; b < op.a.blocks; ++b) {
        // lo[m]: outputs 0-3 of the half, hi[m]: outputs 4-7; two 32-bit lanes per output (k pairs 0-1 and 2-3)
        __m256i lo[MR], hi[MR];
        for (int m = 0; m < MR; ++m) lo[m] = hi[m] = _mm256_setzero_si256();
        const uint8_t *w = op.panel(p) + b * kGroupsPerBlock * kGroup + half * 32;
        for (int64_t g = 0; g < kGroupsPerBlock; ++g) {
            const __m256i w0 = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i *>(w + g * kGroup)));
            const __m256i w1 =
                _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i *>(w + g * kGroup + 16)));
            for (int m = 0; m < MR; ++m) {
                const __m256i x = four_codes_avx2(op.a.row(m0 + m) + b * kBlock + g * 4);
                lo[m] = _mm256_add_epi32(lo[m], _mm256_madd_epi16(w0, x));
                hi[m] = _mm256_add_epi32(hi[m], _mm256_madd_epi16(w1, x));
            }
        }
        for (int m = 0; m < MR; ++m) {
            // hadd gives outputs (0 1 4 5 | 2 3 6 7); the permute puts them in order
            const __m256i sums = _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo[m], hi[m]), 0xD8);
            const __m256i exact = _mm256_add_epi32(sums, _mm256_set1_epi32(op.a.offset(m0 + m, b)));
            acc[m] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(exact), _mm256_set1_ps(op.a.scale(m0 + m, b)), acc[m]);
        }
    }
    const __m256 sw = _mm256_loadu_ps(op.sw + p * kPanel + half * 8);
    for (int m = 0; m < MR; ++m) _mm256_storeu_ps(op.out(m0 + m, p) + half * 8, _mm256_mul_ps(acc[m], sw));
}

void rows_avx2(const Operands &op, int64_t m0, int64_t rows, int64_t p) {
    for (int half = 0; half < 2; ++half) {
        switch (rows) {
            case 1: tile_avx2<1>(op, m0, p, half); break;
            case 2: tile_avx2<2>(op, m0, p, half); break;
            case 3: tile_avx2<3>(op, m0, p, half); break;
            default: tile_avx2<4>(op, m0, p, half); break;
        }
    }
}

#pragma GCC pop_options

// ---------------------------------------------------------------- AVX-512 VNNI: MR rows x NR panels

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")

template <int MR, int NR>
void tile_avx512(const Operands &op, int64_t m0, int64_t p) {
    __m512 acc[MR][NR];
    for (int m = 0; m < MR; ++m)
        for (int j = 0; j < NR; ++j) acc[m][j] = _mm512_setzero_ps();
    const int8_t *x[MR];
    for (int m = 0; m < MR; ++m) x[m] = op.a.row(m0 + m);
    const int64_t panel_bytes = kPanel * op.a.k;
    const uint8_t *w = op.panel(p);
    for (int64_t b = 0; b < op.a.blocks; ++b) {
        __m512i sum[MR][NR];
        for (int m = 0; m < MR; ++m) {
            const __m512i offset = _mm512_set1_epi32(op.a.offset(m0 + m, b));
            for (int j = 0; j < NR; ++j) sum[m][j] = offset;
        }
        for (int64_t g = b * kGroupsPerBlock; g < (b + 1) * kGroupsPerBlock; ++g) {
            __m512i codes[NR];
            for (int j = 0; j < NR; ++j) {
                const uint8_t *c = w + j * panel_bytes + g * kGroup;
                _mm_prefetch(reinterpret_cast<const char *>(c) + kPrefetchBytes, _MM_HINT_T0);
                if constexpr (NR == 1) _mm_prefetch(reinterpret_cast<const char *>(c) + kL2PrefetchBytes, _MM_HINT_T1);
                codes[j] = _mm512_loadu_si512(c);
            }
            for (int m = 0; m < MR; ++m) {
                const __m512i xv = _mm512_broadcastd_epi32(_mm_loadu_si32(x[m] + g * 4));
                for (int j = 0; j < NR; ++j) sum[m][j] = _mm512_dpbusd_epi32(sum[m][j], codes[j], xv);
            }
        }
        for (int m = 0; m < MR; ++m) {
            const __m512 scale = _mm512_set1_ps(op.a.scale(m0 + m, b));
            for (int j = 0; j < NR; ++j) acc[m][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum[m][j]), scale, acc[m][j]);
        }
    }
    for (int j = 0; j < NR; ++j) {
        const __m512 sw = _mm512_loadu_ps(op.sw + (p + j) * kPanel);
        for (int m = 0; m < MR; ++m) _mm512_storeu_ps(op.out(m0 + m, p + j), _mm512_mul_ps(acc[m][j], sw));
    }
}

// Panels per tile for MR rows: the accumulators (2 * MR * NR registers) stay within 32 with room for the codes,
// and one or two rows still have four independent sums in flight per code load.
constexpr int panels_for(int rows) { return rows <= 2 ? 4 : rows <= 4 ? 2 : 1; }

template <int MR>
void rows_avx512_mr(const Operands &op, int64_t m0, int64_t p, int64_t panels) {
    constexpr int NR = panels_for(MR);
    int64_t q = 0;
    for (; q + NR <= panels; q += NR) tile_avx512<MR, NR>(op, m0, p + q);
    for (; q < panels; ++q) tile_avx512<MR, 1>(op, m0, p + q);
}

void rows_avx512(const Operands &op, int64_t m0, int64_t rows, int64_t p, int64_t panels) {
    switch (rows) {
        case 1: rows_avx512_mr<1>(op, m0, p, panels); break;
        case 2: rows_avx512_mr<2>(op, m0, p, panels); break;
        case 3: rows_avx512_mr<3>(op, m0, p, panels); break;
        case 4: rows_avx512_mr<4>(op, m0, p, panels); break;
        case 5: rows_avx512_mr<5>(op, m0, p, panels); break;
        case 6: rows_avx512_mr<6>(op, m0, p, panels); break;
        case 7: rows_avx512_mr<7>(op, m0, p, panels); break;
        default: rows_avx512_mr<8>(op, m0, p, panels); break;
    }
}

#pragma GCC pop_options

// ---------------------------------------------------------------- driver

constexpr int64_t kPanelsPerItem = 4;  // panels a work item covers (NR's largest value)

// quantize_q8 over elements [from, from + n) of row r of x (F32 or BF16).
template <typename Put>
float quantize_segment(const RowView &x, int64_t r, int64_t from, int64_t n, Put put) {
    if (x.dtype == MOE4J_F32) {
        const float *v = x.row<float>(r) + from;
        return quantize_q8(
            n, [v](int64_t i) { return v[i]; }, put);
    }
    const uint16_t *v = x.row<uint16_t>(r) + from;
    return quantize_q8(
        n, [v](int64_t i) { return bf16_decode(v[i]); }, put);
}

// Activation rows [begin, end) quantized per 128-wide block into `a` (whose arrays the caller laid out).
void quantize_rows(const RowView &x, const Activations &a, int64_t begin, int64_t end) {
    for (int64_t m = begin; m < end; ++m) {
        for (int64_t b = 0; b < a.blocks; ++b) {
            int8_t *q = a.codes + m * a.k + b * kBlock;
            int32_t sum = 0;
            const auto put = [&](int64_t i, int code) {
                q[i] = static_cast<int8_t>(code);
                sum += code;
            };
            a.scales[m * a.blocks + b] = quantize_segment(x, m, b * kBlock, kBlock, put);
            a.offsets[m * a.blocks + b] = -128 * sum;
        }
    }
}

}  // namespace

void quantize_q8_weights(moe4j_context *ctx, const moe4j_tensor &w_t, const moe4j_tensor &codes_t,
                         const moe4j_tensor &scales_t) {
    const RowView w(w_t);
    auto *codes = static_cast<uint8_t *>(codes_t.data);
    auto *scales = static_cast<float *>(scales_t.data);
    const int64_t k = w.length;
    parallel_for(*ctx->pool, w.rows, grain_for(k), [&](int64_t begin, int64_t end) {
        for (int64_t n = begin; n < end; ++n) {
            const auto put = [&](int64_t i, int code) { codes[q8_offset(n, i, k)] = static_cast<uint8_t>(code + 128); };
            scales[n] = quantize_segment(w, n, 0, k, put);
        }
    });
}

void q8_gemm(moe4j_context *ctx, const moe4j_tensor &a_t, const moe4j_tensor &b_t, const moe4j_tensor &sfb_t,
             const moe4j_tensor &d_t) {
    const RowView x(a_t);
    const int64_t m = x.rows, k = x.length, blocks = k / kBlock, n = b_t.shape[0], panels = n / kPanel;
    if (m == 0 || n == 0) return;
    // scratch: codes (rounded up to whole cache lines), then scales, then offsets
    const int64_t code_floats = (m * k + 63) / 64 * 16;
    float *scratch = ctx->workspace.take<float>(code_floats + 2 * m * blocks, "the Q8 activations");
    const Activations a{reinterpret_cast<int8_t *>(scratch), scratch + code_floats,
                        reinterpret_cast<int32_t *>(scratch + code_floats + m * blocks), k, blocks};
    parallel_for(*ctx->pool, m, grain_for(4 * k), [&](int64_t begin, int64_t end) { quantize_rows(x, a, begin, end); });

    const Operands op{a, static_cast<const uint8_t *>(b_t.data), static_cast<const float *>(sfb_t.data), RowView(d_t)};
    const int isa = ctx->isa;
    // Each thread works through its own equal run of panels first (parallel_for_shares), so its weights stream as one
    // sequence: tasks handed out one at a time had both threads jumping between pieces (Zen 4, 2 threads, weights
    // cold, read bandwidth ~60 GB/s: 1.07x faster at one row on the fused q/kv projection, 1.40x on the LM head at 8
    // rows). A thread that finishes its run takes what is left of the other's in tasks of about 128 KB of weights:
    // with 1 MB tasks the thread that finished first idled for up to a task at the end of every call, about 20 us,
    // a fifth of a 4 MB projection (Zen 5, 2 threads, calls in sequence over 512 MB of distinct weights, one row:
    // 90 us a call at 4.2 MB instead of 105-111, 27 instead of 37 at 1 MB, 157 instead of 175-180 at 8.4 MB).
    // A call of one such task stays on the caller; two are worth it even at one row (the other thread spins between
    // the calls of a decode step: 27 us instead of 37 at 1 MB).
    const int64_t items = ceil_div(panels, kPanelsPerItem);
    const int64_t per_task = std::max<int64_t>(1, kStealBytes / (kPanel * kPanelsPerItem * k));
    parallel_for_shares(*ctx->pool, items, per_task, [&](int64_t begin, int64_t end, int) {
        for (int64_t item = begin; item < end; ++item) {
            const int64_t p = item * kPanelsPerItem, count = std::min(kPanelsPerItem, panels - p);
            if (isa == MOE4J_ISA_AVX512_BF16) {
                for (int64_t r = 0; r < m; r += 8) rows_avx512(op, r, std::min<int64_t>(8, m - r), p, count);
            } else if (isa >= MOE4J_ISA_AVX2) {
                for (int64_t q = p; q < p + count; ++q)
                    for (int64_t r = 0; r < m; r += 4) rows_avx2(op, r, std::min<int64_t>(4, m - r), q);
            } else {
                for (int64_t q = p; q < p + count; ++q)
                    for (int64_t r = 0; r < m; ++r) tile_scalar(op, r, q);
            }
        }
    });
}

}  // namespace moe4j::cpu
