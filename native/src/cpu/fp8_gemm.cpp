#include "fp8_gemm.h"

// GCC 12's AVX-512 headers trip -W(maybe-)uninitialized inside themselves (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <new>
#include <optional>
#include <type_traits>
#include <vector>

#include "../core/context.h"
#include "../core/fp8.h"
#include "../core/line_vector.h"
#include "../core/views.h"
#include "reduce_avx512.h"
#include "row_codec.h"

namespace moe4j::cpu {
namespace {

constexpr int64_t kBlock = 128;         // K elements per scale; N rows per weight scale
constexpr int64_t kRowsPerBlock = 16;   // weight rows widened together and kept in cache
constexpr int64_t kRowsPerChunk = 256;  // activation rows one task streams over (stays in L3)
constexpr int kTileM = 4, kTileN = 2;
// Rows of one tile of the AVX2 in-register (codes) block kernel, which takes a whole 16-row weight block at once: a
// weight row widened in registers meets up to this many activation rows.
constexpr int kCodeTileM = 8;
// Rows of one tile of the AVX-512 widened-block kernel (dot_wide_block), which takes four columns at a time: 6 x 4
// accumulators, four weight vectors and one of A fill 29 of the 32 registers.
constexpr int kWideTileM = 6;
// Code tiles whose activation rows hold more elements than this (more than 16 KB as fp32, half of a 32 KB L1) take
// the block kernel, whose A slices stay in L1; smaller ones stream weight rows a column pair at a time.
constexpr int64_t kBlockCodesMinElements = 4096;
constexpr int64_t kPanelRowChunk = 1024;  // activation rows per panel task (about 15 MB of bf16 at K = 7168)

// The row stride, in elements, of rows widened through memory (A's rows, and a weight block's rows for the
// widened-block kernel): K, or K + 128 where K / 128 is even. The kernels read 128-element slices of many such
// rows at once; with an odd number of slices per stride, consecutive rows' slices fall into different L1 sets
// (at K = 2048 a stride of K alone put every fp32 row's slice into the same 8 sets, more lines than the ways).
constexpr int64_t wide_row_stride(int64_t k) { return (k / kBlock) % 2 == 1 ? k : k + kBlock; }

// The dot products of one tile: out[m][j] = sum_kb s[m][kb] * sum_{k in kb} a[m][k] * b[j][k], for the
// first `rows` rows and `cols` columns (at most kTileM x kTileN; the AVX2 block kernel reads up to kCodeTileM rows
// and uses out[m][0] for its NaN fallback). All columns share one 128-row weight block.
struct Tile {
    const void *a[kCodeTileM];
    const float *s[kCodeTileM];
    const void *b[kTileN];
    float out[kCodeTileM][kTileN];
    int64_t prefetch;  // bytes from a weight row to the same place in the next tile's (block's) row (code kernels)
};

// ---------------------------------------------------------------- scalar reference path

struct ScalarPath {
    using Wide = float;
    static constexpr bool kPacked = false;  // packed weights are unpacked a block at a time
    static constexpr bool kWidensInRegisters = false;
    static constexpr int kCodeRows = 0;
    static constexpr bool kBlockCodes = false;
    static constexpr int64_t kCodeRowsMax = 0;
    static constexpr bool kWideBlocks = false;
    static void widen(const RowCodec &, const uint8_t *q, int64_t n, float *out) {
        for (int64_t i = 0; i < n; ++i) out[i] = e4m3_decode(q[i]);
    }
    static void widen_a(const RowCodec &codec, const uint8_t *q, int64_t n, float *out) { widen(codec, q, n, out); }
    static void widen_b(const RowCodec &codec, const uint8_t *q, int64_t n, float *out) { widen(codec, q, n, out); }
    template <int MR, int NR>
    static void dot(Tile &t, int64_t k) {
        for (int m = 0; m < MR; ++m) {
            for (int j = 0; j < NR; ++j) {
                const float *a = static_cast<const float *>(t.a[m]), *b = static_cast<const float *>(t.b[j]);
                float acc = 0.0f;
                for (int64_t kb = 0; kb < k / kBlock; ++kb) {
                    float partial = 0.0f;
                    for (int64_t i = kb * kBlock; i < (kb + 1) * kBlock; ++i) partial += a[i] * b[i];
                    acc += partial * t.s[m][kb];
                }
                t.out[m][j] = acc;
            }
        }
    }
};

// ---------------------------------------------------------------- AVX2 and AVX-512 paths: fp32 FMA on widened values

// Activation rows are widened times 2^8 and weights times 2^-8, both exact, so every product a * b is the one of
// the e4m3 values themselves: the weights' 2^-8 is what the in-register decoding below gives for free.
constexpr float kAvx2AScale = 256.0f, kAvx2BScale = 1.0f / 256.0f;

// The rare tile with NaN weight codes, for the fp32 paths' code kernels (Avx2Path, Avx512Path): widens its weight
// rows through memory and runs the path's dot().
template <typename Path, int MR, int NR>
void dot_nan_codes(Tile &t, int64_t k) {
    std::vector<float> wide(static_cast<size_t>(NR * k));
    Tile copy = t;
    for (int j = 0; j < NR; ++j) {
        const uint8_t *q = static_cast<const uint8_t *>(t.b[j]);
        for (int64_t i = 0; i < k; ++i) wide[j * k + i] = e4m3_decode(q[i]) * kAvx2BScale;
        copy.b[j] = wide.data() + j * k;
    }
    Path::template dot<MR, NR>(copy, k);
    for (int m = 0; m < MR; ++m)
        for (int j = 0; j < NR; ++j) t.out[m][j] = copy.out[m][j];
}

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

struct Avx2Path {
    using Wide = float;
    static constexpr bool kPacked = false;  // packed weights are unpacked a block at a time
    static constexpr bool kWidensInRegisters = true;
    static constexpr int kCodeRows = kCodeTileM;
    static constexpr bool kBlockCodes = true;  // dot_codes_block where A outgrows L1 (kBlockCodesMinElements)
    // The most rows the block kernel takes, in tiles of kCodeTileM (measured: 16 rows x 102400 x 2048 in 0.65x the
    // time of widening through memory, 32 rows in 0.86x, 64 rows slower).
    static constexpr int64_t kCodeRowsMax = 32;
    static constexpr bool kWideBlocks = false;
    static void widen_a(const RowCodec &codec, const uint8_t *q, int64_t n, float *out) {
        codec.decode_f32(q, n, kAvx2AScale, out);  // exact: every e4m3 value times 2^8 is an fp32
    }
    static void widen_b(const RowCodec &codec, const uint8_t *q, int64_t n, float *out) {
        codec.decode_f32(q, n, kAvx2BScale, out);
    }

    // Eight e4m3 codes (the high bytes of the 16-bit lanes of `high`) -> their values times 2^-8, exactly: the
    // code's sign and 7 magnitude bits placed as fp16 sign, exponent (top bit 0) and mantissa give value * 2^-8
    // (exponent bias 15 against 7), subnormals included, and F16C widens fp16 to fp32 exactly. The NaN codes
    // (0x7F, 0xFF) come out as +-1.875: nan_codes() finds them.
    static __m256 decode8(__m128i high) {
        return _mm256_cvtph_ps(_mm_and_si128(_mm_srai_epi16(high, 1), _mm_set1_epi16(static_cast<short>(0xBF80))));
    }
    // All-ones bytes where q[0..31] holds a NaN code.
    static __m256i nan_codes(const uint8_t *q) {
        const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(q));
        return _mm256_cmpeq_epi8(_mm256_or_si256(c, _mm256_set1_epi8(static_cast<char>(0x80))),
                                 _mm256_set1_epi8(static_cast<char>(0xFF)));
    }

    // dot() with t.b pointing at e4m3 weight codes, widened in registers: the same products, sums and order,
    // so the same result. A tile whose weights hold a NaN code is recomputed through memory (widen_b, then dot).
    template <int MR, int NR>
    static void dot_codes(Tile &t, int64_t k) {
        __m256 total[MR][NR];
        for (int m = 0; m < MR; ++m)
            for (int j = 0; j < NR; ++j) total[m][j] = _mm256_setzero_ps();
        __m256i nan = _mm256_setzero_si256();
        const __m128i zero = _mm_setzero_si128();
        for (int64_t kb = 0; kb < k / kBlock; ++kb) {
            __m256 part[MR][NR];
            for (int m = 0; m < MR; ++m)
                for (int j = 0; j < NR; ++j) part[m][j] = _mm256_setzero_ps();
            for (int64_t i = kb * kBlock; i < (kb + 1) * kBlock; i += 32) {
                for (int j = 0; j < NR; ++j) {
                    const uint8_t *b = static_cast<const uint8_t *>(t.b[j]) + i;
                    _mm_prefetch(reinterpret_cast<const char *>(b) + t.prefetch, _MM_HINT_T0);
                    nan = _mm256_or_si256(nan, nan_codes(b));
                }
                for (int64_t h = 0; h < 32; h += 16) {
                    __m256 bv[NR][2];
                    for (int j = 0; j < NR; ++j) {
                        const __m128i c = _mm_loadu_si128(
                            reinterpret_cast<const __m128i *>(static_cast<const uint8_t *>(t.b[j]) + i + h));
                        bv[j][0] = decode8(_mm_unpacklo_epi8(zero, c));
                        bv[j][1] = decode8(_mm_unpackhi_epi8(zero, c));
                    }
                    for (int m = 0; m < MR; ++m) {
                        const float *a = static_cast<const float *>(t.a[m]) + i + h;
                        const __m256 a0 = _mm256_loadu_ps(a), a1 = _mm256_loadu_ps(a + 8);
                        for (int j = 0; j < NR; ++j)
                            part[m][j] = _mm256_fmadd_ps(a1, bv[j][1], _mm256_fmadd_ps(a0, bv[j][0], part[m][j]));
                    }
                }
            }
            for (int m = 0; m < MR; ++m) {
                const __m256 scale = _mm256_set1_ps(t.s[m][kb]);
                for (int j = 0; j < NR; ++j) total[m][j] = _mm256_fmadd_ps(part[m][j], scale, total[m][j]);
            }
        }
        if (!_mm256_testz_si256(nan, nan)) return dot_nan_codes<Avx2Path, MR, NR>(t, k);
        reduce<MR, NR>(total, t);
    }

    // The code kernel over a whole block of up to kRowsPerBlock weight rows (columns) at once, 128-wide K slices
    // outermost: the rows' slice of A (MR x 512 bytes) stays in L1 while every column of the block uses it, where a
    // column at a time would stream all of A (MR x K x 4 bytes: past L1 from MR x K = 8K) per column. Per output the
    // operations and their order are dot()'s: part over the slice lane by lane, total = fma(part, scale, total) in
    // slice order, the same final reduction. out[m][j] for the block's columns j < cols; `prefetch` as in Tile.
    template <int MR>
    static void dot_codes_block(const Tile &t, const uint8_t *b, int64_t ldb, int cols, int64_t k,
                                float (*out)[kRowsPerBlock]) {
        __m256 total[kRowsPerBlock][MR];
        for (int j = 0; j < cols; ++j)
            for (int m = 0; m < MR; ++m) total[j][m] = _mm256_setzero_ps();
        __m256i nan = _mm256_setzero_si256();
        const __m128i zero = _mm_setzero_si128();
        for (int64_t kb = 0; kb < k / kBlock; ++kb) {
            __m256 scale[MR];
            for (int m = 0; m < MR; ++m) scale[m] = _mm256_set1_ps(t.s[m][kb]);
            for (int j = 0; j < cols; ++j) {
                const uint8_t *bj = b + j * ldb;
                __m256 part[MR];
                for (int m = 0; m < MR; ++m) part[m] = _mm256_setzero_ps();
                for (int64_t i = kb * kBlock; i < (kb + 1) * kBlock; i += 32) {
                    _mm_prefetch(reinterpret_cast<const char *>(bj + i) + t.prefetch, _MM_HINT_T0);
                    nan = _mm256_or_si256(nan, nan_codes(bj + i));
                    for (int64_t h = 0; h < 32; h += 16) {
                        const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i *>(bj + i + h));
                        const __m256 b0 = decode8(_mm_unpacklo_epi8(zero, c)), b1 = decode8(_mm_unpackhi_epi8(zero, c));
                        for (int m = 0; m < MR; ++m) {
                            const float *a = static_cast<const float *>(t.a[m]) + i + h;
                            part[m] = _mm256_fmadd_ps(_mm256_loadu_ps(a + 8), b1,
                                                      _mm256_fmadd_ps(_mm256_loadu_ps(a), b0, part[m]));
                        }
                    }
                }
                for (int m = 0; m < MR; ++m) total[j][m] = _mm256_fmadd_ps(part[m], scale[m], total[j][m]);
            }
        }
        if (!_mm256_testz_si256(nan, nan)) {
            for (int j = 0; j < cols; ++j) {
                Tile column = t;
                column.b[0] = b + j * ldb;
                dot_nan_codes<Avx2Path, MR, 1>(column, k);
                for (int m = 0; m < MR; ++m) out[m][j] = column.out[m][0];
            }
            return;
        }
        for (int j = 0; j < cols; ++j) {
            __m256 column[MR][1];
            for (int m = 0; m < MR; ++m) column[m][0] = total[j][m];
            Tile reduced;
            reduce<MR, 1>(column, reduced);
            for (int m = 0; m < MR; ++m) out[m][j] = reduced.out[m][0];
        }
    }

    template <int MR, int NR>
    static void reduce(const __m256 (&total)[MR][NR], Tile &t) {
        for (int m = 0; m < MR; ++m) {
            for (int j = 0; j < NR; ++j) {
                __m128 r = _mm_add_ps(_mm256_castps256_ps128(total[m][j]), _mm256_extractf128_ps(total[m][j], 1));
                r = _mm_add_ps(r, _mm_movehl_ps(r, r));
                r = _mm_add_ss(r, _mm_shuffle_ps(r, r, 1));
                t.out[m][j] = _mm_cvtss_f32(r);
            }
        }
    }

    template <int MR, int NR>
    static void dot(Tile &t, int64_t k) {
        __m256 total[MR][NR];
        for (int m = 0; m < MR; ++m)
            for (int j = 0; j < NR; ++j) total[m][j] = _mm256_setzero_ps();
        for (int64_t kb = 0; kb < k / kBlock; ++kb) {
            __m256 part[MR][NR];
            for (int m = 0; m < MR; ++m)
                for (int j = 0; j < NR; ++j) part[m][j] = _mm256_setzero_ps();
            for (int64_t i = kb * kBlock; i < (kb + 1) * kBlock; i += 8) {
                __m256 bv[NR];
                for (int j = 0; j < NR; ++j) bv[j] = _mm256_loadu_ps(static_cast<const float *>(t.b[j]) + i);
                for (int m = 0; m < MR; ++m) {
                    const __m256 av = _mm256_loadu_ps(static_cast<const float *>(t.a[m]) + i);
                    for (int j = 0; j < NR; ++j) part[m][j] = _mm256_fmadd_ps(av, bv[j], part[m][j]);
                }
            }
            for (int m = 0; m < MR; ++m) {
                const __m256 scale = _mm256_set1_ps(t.s[m][kb]);
                for (int j = 0; j < NR; ++j) total[m][j] = _mm256_fmadd_ps(part[m][j], scale, total[m][j]);
            }
        }
        reduce<MR, NR>(total, t);
    }
};

#pragma GCC pop_options

// ---------------------------------------------------------------- AVX-512F path: the AVX2 scheme in 16 lanes

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")

// For AVX-512 without AVX512_BF16 (Skylake-SP, Cascade Lake, Ice Lake): the AVX2 path's arithmetic in 16 fp32
// lanes. Activation rows are widened times 2^8 and weights times 2^-8 (the same row codec), so every product is the
// exact one of the e4m3 values; lane l sums the products of elements l, l + 16, ... of a 128-wide K block in order,
// the block's part sum meets its scale in fma(part, scale, total), and one fixed reduction adds the 16 lanes. The
// sequence of operations per output depends on nothing but K, so results do not depend on the row count, the tiling
// or the threads; they differ from the AVX2 path's (8 lanes) in rounding only.
struct Avx512Path {
    using Wide = float;
    static constexpr bool kWidensInRegisters = true;
    static constexpr int kCodeRows = kCodeTileM;
    static constexpr bool kBlockCodes = true;  // dot_codes_block where A outgrows L1 (kBlockCodesMinElements)
    // Measured on 102400 x 2048 (the LM head) against dot_wide_block with its 6 x 4 tiles: the same time at 12-16
    // rows, 0-8% more at 20-32 rows (1.3-1.4x more at 24-32 rows while the machine ran slow).
    static constexpr int64_t kCodeRowsMax = 16;
    // Contexts that are not reproducible give groups of at least kPanelMinRows rows to the packed-panel kernel
    // (panel_tile), whose sums run along K in one order per output instead of 16 lanes: other rounding, more
    // throughput than the row kernels (`moe4j_bench expert --rows R --op gemm [--fast]`, 8 V2-Lite experts, one
    // thread: 8 rows 1.35x slower, 12 rows 1.09x faster, 16 rows 1.05x, 20 rows 1.22x, 32 rows 1.27x, 64 rows 1.40x).
    static constexpr int64_t kPanelMinRows = 12;
    // transpose_panel's output, in rows of K floats: the panel's codes, transposed (32 bytes per element of K).
    static constexpr int64_t kPackRows = 8;
    // Packed weights (E4M3_P32) take the panel order for every row count: groups of up to kCodeRowsPacked rows
    // (one tile) widen the codes in registers (code_tile, kCodeCols weight rows per task), larger ones widen each K
    // block of a panel once into L1 for all their tiles (panel_block_tile). A code tile pays the widening (8 uops per
    // 32 codes, on the FMA ports) once per tile, the blocks once per block plus a store and reload. `moe4j_bench gemm
    // --threads 1 --n 2048 --k 2048 --cache warm --m M --packed`, code tiles / blocks: M = 2 421 / 692 us, 8 894 /
    // 942, 12 1157 / 1201, 16 (tiles of 8) 1750 / 1467, 24 (of 12) 2256 / 1972; 64 rows 4778 on blocks (74% of the
    // FMA peak, as widening whole panels gave).
    static constexpr bool kPacked = true;
    static constexpr int64_t kCodeRowsPacked = 12;
    static constexpr int64_t kCodeCols = 128;
    // How far ahead in a panel's codes (bytes: 32 elements of K) code tiles prefetch: the hardware prefetcher alone
    // ramps up too slowly on their 1-4 panel streams per task. `moe4j_bench gemm --threads 2 --n 102400 --k 2048
    // --cache cold --packed` at M = 1: 11.69 ms without, 9.71 / 9.95 / 10.15 ms at 512 / 1024 / 2048 bytes (78 ->
    // 93% of the read bandwidth); M = 2 14.3 -> 11.6 ms; `moe4j_bench expert --experts 48 --rows 1 --op ffn
    // --packed` 24.5 -> 19.8 ms, rows 2 27.3 -> 23.5 ms.
    static constexpr int64_t kCodePrefetch = 1024;
    // Panels of 32 weight rows (two vectors) meet 12 activation rows at a time: 24 accumulators, and per element of
    // K two panel loads and 12 broadcasts for 24 FMAs.
    static constexpr int64_t kPanelCols = 32;
    static constexpr int kPanelTileRows = 12;
    // Tasks of more than kCodeRowsMax rows widen their weights through memory and take dot_wide_block.
    static constexpr bool kWideBlocks = true;
    static constexpr int kLanes = 16;
    static constexpr int64_t kStep = 64;  // codes per NaN check and prefetch: one cache line of a weight row

    static void widen_a(const RowCodec &codec, const uint8_t *q, int64_t n, float *out) {
        widen(codec, q, n, kAvx2AScale, out);
    }
    static void widen_b(const RowCodec &codec, const uint8_t *q, int64_t n, float *out) {
        widen(codec, q, n, kAvx2BScale, out);
    }
    // out[i] = e4m3 value of q[i] times `scale` (a power of two), through decode32: the same values as
    // codec.decode_f32 gives, without its general multiply. Rows holding a NaN code are redone by the codec, which
    // widens NaN codes to NaN.
    static void widen(const RowCodec &codec, const uint8_t *q, int64_t n, float scale, float *out) {
        const __m512 rescale = _mm512_set1_ps(scale * 256.0f);
        __m512i nan = _mm512_setzero_si512();
        int64_t i = 0;
        for (; i + kStep <= n; i += kStep) {
            nan = nan_max(nan, q + i);
            for (int64_t h = 0; h < kStep; h += 2 * kLanes) {
                __m512 lo, hi;
                decode32(q + i + h, lo, hi);
                _mm512_storeu_ps(out + i + h, _mm512_mul_ps(lo, rescale));
                _mm512_storeu_ps(out + i + h + kLanes, _mm512_mul_ps(hi, rescale));
            }
        }
        if (any_nan(nan)) i = 0;
        codec.decode_f32(q + i, n - i, scale, out + i);
    }

    // Thirty-two e4m3 codes q[0..31] -> their values times 2^-8, exactly, in lo (codes 0-15) and hi (16-31), as
    // Avx2Path::decode8 gives them eight at a time: sign extension to 16 bits and a shift by 7 put code i's sign in bit
    // 15 of lane i and its exponent and mantissa in bits 13-7 (bit 14, a copy of the sign, is masked off), the fp16
    // pattern of the value times 2^-8, and F16C widens each half. Three integer instructions per 32 codes: the
    // few-row kernels are bound by this widening. The NaN codes (0x7F, 0xFF) come out as +-1.875: nan_max() finds
    // them.
    static void decode32(const uint8_t *q, __m512 &lo, __m512 &hi) {
        const __m512i wide = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(q)));
        const __m512i half =
            _mm512_and_si512(_mm512_slli_epi16(wide, 7), _mm512_set1_epi16(static_cast<short>(0xBF80)));
        lo = _mm512_cvtph_ps(_mm512_castsi512_si256(half));
        hi = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(half, 1));
    }
    // Folds the 64 codes at q into `seen`, the bytewise maximum of code | 0x80: a byte of `seen` is 0xFF exactly
    // where some code folded into it is a NaN code (0x7F or 0xFF).
    static __m512i nan_max(__m512i seen, const uint8_t *q) { return nan_max(seen, _mm512_loadu_si512(q)); }
    static __m512i nan_max(__m512i seen, __m512i c) {
        return _mm512_max_epu8(seen, _mm512_or_si512(c, _mm512_set1_epi8(static_cast<char>(0x80))));
    }
    static bool any_nan(__m512i seen) {
        return _mm512_cmpeq_epi8_mask(seen, _mm512_set1_epi8(static_cast<char>(0xFF))) != 0;
    }

    // dot() with t.b pointing at e4m3 weight codes, widened in registers: the same products, sums and order,
    // so the same result. A tile whose weights hold a NaN code is recomputed through memory (widen_b, then dot).
    template <int MR, int NR>
    static void dot_codes(Tile &t, int64_t k) {
        __m512 total[MR][NR];
        for (int m = 0; m < MR; ++m)
            for (int j = 0; j < NR; ++j) total[m][j] = _mm512_setzero_ps();
        __m512i nan = _mm512_setzero_si512();
        for (int64_t kb = 0; kb < k / kBlock; ++kb) {
            __m512 part[MR][NR];
            for (int m = 0; m < MR; ++m)
                for (int j = 0; j < NR; ++j) part[m][j] = _mm512_setzero_ps();
            for (int64_t i = kb * kBlock; i < (kb + 1) * kBlock; i += kStep) {
                for (int j = 0; j < NR; ++j) {
                    const uint8_t *b = static_cast<const uint8_t *>(t.b[j]) + i;
                    _mm_prefetch(reinterpret_cast<const char *>(b) + t.prefetch, _MM_HINT_T0);
                    nan = nan_max(nan, b);
                }
                for (int64_t h = 0; h < kStep; h += 2 * kLanes) {
                    __m512 lo[NR], hi[NR];
                    for (int j = 0; j < NR; ++j) decode32(static_cast<const uint8_t *>(t.b[j]) + i + h, lo[j], hi[j]);
                    for (int m = 0; m < MR; ++m) {
                        const float *a = static_cast<const float *>(t.a[m]) + i + h;
                        const __m512 a0 = _mm512_loadu_ps(a), a1 = _mm512_loadu_ps(a + kLanes);
                        for (int j = 0; j < NR; ++j) part[m][j] = _mm512_fmadd_ps(a0, lo[j], part[m][j]);
                        for (int j = 0; j < NR; ++j) part[m][j] = _mm512_fmadd_ps(a1, hi[j], part[m][j]);
                    }
                }
            }
            for (int m = 0; m < MR; ++m) {
                const __m512 scale = _mm512_set1_ps(t.s[m][kb]);
                for (int j = 0; j < NR; ++j) total[m][j] = _mm512_fmadd_ps(part[m][j], scale, total[m][j]);
            }
        }
        if (any_nan(nan)) return dot_nan_codes<Avx512Path, MR, NR>(t, k);
        reduce<MR, NR>(total, t);
    }

    // out[m][j] = the lane sum of total[j][m] for the block's 16 columns (those past `cols` hold zeros and are not
    // stored), in _mm512_reduce_add_ps's order: a row's 16 sums at once.
    template <int MR>
    static void store_sums(const __m512 (&total)[kRowsPerBlock][MR], int cols, float (*out)[kRowsPerBlock]) {
        for (int m = 0; m < MR; ++m) {
            __m512 column[kRowsPerBlock];
            for (int j = 0; j < kRowsPerBlock; ++j) column[j] = total[j][m];
            _mm512_mask_storeu_ps(out[m], static_cast<__mmask16>((1u << cols) - 1u), reduce16_avx512(column));
        }
    }

    // Avx2Path::dot_codes_block in 16 lanes: a whole block of up to kRowsPerBlock weight rows (columns) at once,
    // 128-wide K slices outermost, so the rows' slice of A stays in L1 while every column of the block uses it. Per
    // output the operations and their order are dot()'s. out[m][j] for the block's columns j < cols.
    template <int MR>
    static void dot_codes_block(const Tile &t, const uint8_t *b, int64_t ldb, int cols, int64_t k,
                                float (*out)[kRowsPerBlock]) {
        __m512 total[kRowsPerBlock][MR];
        for (int j = 0; j < kRowsPerBlock; ++j)
            for (int m = 0; m < MR; ++m) total[j][m] = _mm512_setzero_ps();
        __m512i nan = _mm512_setzero_si512();
        for (int64_t kb = 0; kb < k / kBlock; ++kb) {
            __m512 scale[MR];
            for (int m = 0; m < MR; ++m) scale[m] = _mm512_set1_ps(t.s[m][kb]);
            // Column pairs: each load of A serves two columns. A lone last column pairs with itself and its second
            // sums are dropped.
            for (int j = 0; j < cols; j += 2) {
                const uint8_t *b0 = b + j * ldb, *b1 = j + 1 < cols ? b0 + ldb : b0;
                __m512 part[MR][2];
                for (int m = 0; m < MR; ++m) part[m][0] = part[m][1] = _mm512_setzero_ps();
                for (int64_t i = kb * kBlock; i < (kb + 1) * kBlock; i += kStep) {
                    // The next block's lines come from memory into L2, a block ahead; the next K slice of these two
                    // rows (used once the other columns have had this slice) from L2 into L1. Prefetching the far
                    // lines into L1 instead had them evicted before use: 4-8 rows per expert ran ~5% slower.
                    _mm_prefetch(reinterpret_cast<const char *>(b0 + i) + t.prefetch, _MM_HINT_T1);
                    _mm_prefetch(reinterpret_cast<const char *>(b1 + i) + t.prefetch, _MM_HINT_T1);
                    _mm_prefetch(reinterpret_cast<const char *>(b0 + i + kBlock), _MM_HINT_T0);
                    _mm_prefetch(reinterpret_cast<const char *>(b1 + i + kBlock), _MM_HINT_T0);
                    nan = nan_max(nan_max(nan, b0 + i), b1 + i);
                    for (int64_t h = 0; h < kStep; h += 2 * kLanes) {
                        __m512 lo0, hi0, lo1, hi1;
                        decode32(b0 + i + h, lo0, hi0);
                        decode32(b1 + i + h, lo1, hi1);
                        for (int m = 0; m < MR; ++m) {
                            const float *a = static_cast<const float *>(t.a[m]) + i + h;
                            const __m512 a0 = _mm512_loadu_ps(a), a1 = _mm512_loadu_ps(a + kLanes);
                            part[m][0] = _mm512_fmadd_ps(a0, lo0, part[m][0]);
                            part[m][1] = _mm512_fmadd_ps(a0, lo1, part[m][1]);
                            part[m][0] = _mm512_fmadd_ps(a1, hi0, part[m][0]);
                            part[m][1] = _mm512_fmadd_ps(a1, hi1, part[m][1]);
                        }
                    }
                }
                for (int m = 0; m < MR; ++m) {
                    total[j][m] = _mm512_fmadd_ps(part[m][0], scale[m], total[j][m]);
                    if (j + 1 < cols) total[j + 1][m] = _mm512_fmadd_ps(part[m][1], scale[m], total[j + 1][m]);
                }
            }
        }
        if (any_nan(nan)) {
            for (int j = 0; j < cols; ++j) {
                Tile column = t;
                column.b[0] = b + j * ldb;
                dot_nan_codes<Avx512Path, MR, 1>(column, k);
                for (int m = 0; m < MR; ++m) out[m][j] = column.out[m][0];
            }
            return;
        }
        store_sums<MR>(total, cols, out);
    }

    // The kernel of many rows: dot() over a whole block of up to kRowsPerBlock weight rows (columns) widened through
    // memory (bw, row j at bw + j * ldw), MR (at most kWideTileM) rows of A against four columns at a time, 128-wide
    // K slices outermost so that the slices of A (MR x 512 bytes) and of the block (16 x 512 bytes) stay in L1. Each
    // step loads MR + 4 vectors for 4 * MR multiply-adds. Per output the operations and their order are dot()'s and
    // dot_codes()'s. out[m][j] for the block's columns j < cols.
    template <int MR>
    static void dot_wide_block(const Tile &t, const float *bw, int64_t ldw, int cols, int64_t k,
                               float (*out)[kRowsPerBlock]) {
        constexpr int NR = 4;
        __m512 total[kRowsPerBlock][MR];
        for (int j = 0; j < kRowsPerBlock; ++j)
            for (int m = 0; m < MR; ++m) total[j][m] = _mm512_setzero_ps();
        for (int64_t kb = 0; kb < k / kBlock; ++kb) {
            const float *a[MR];
            for (int m = 0; m < MR; ++m) a[m] = static_cast<const float *>(t.a[m]) + kb * kBlock;
            for (int j = 0; j < cols; j += NR) {
                // Missing columns of a last group repeat its first: their sums are dropped.
                const float *b[NR];
                for (int c = 0; c < NR; ++c) b[c] = bw + (j + (j + c < cols ? c : 0)) * ldw + kb * kBlock;
                // The block's first products start the part sums (a multiply, not a multiply-add onto zeros: the
                // same values, since a part sum that ends as -0 meets its scale in an fma onto a total that can only
                // be +0 or nonzero), and the block's eight steps are unrolled: 5-8% faster in L1 (a throwaway
                // microbenchmark), 1-2% in the whole GEMM, the same results.
                __m512 part[MR][NR];
                {
                    __m512 v[NR];
                    for (int c = 0; c < NR; ++c) v[c] = _mm512_loadu_ps(b[c]);
                    for (int m = 0; m < MR; ++m) {
                        const __m512 av = _mm512_loadu_ps(a[m]);
                        for (int c = 0; c < NR; ++c) part[m][c] = _mm512_mul_ps(av, v[c]);
                    }
                }
#pragma GCC unroll 8
                for (int i = kLanes; i < kBlock; i += kLanes) {
                    __m512 v[NR];
                    for (int c = 0; c < NR; ++c) v[c] = _mm512_loadu_ps(b[c] + i);
                    for (int m = 0; m < MR; ++m) {
                        const __m512 av = _mm512_loadu_ps(a[m] + i);
                        for (int c = 0; c < NR; ++c) part[m][c] = _mm512_fmadd_ps(av, v[c], part[m][c]);
                    }
                }
                for (int m = 0; m < MR; ++m) {
                    const __m512 scale = _mm512_set1_ps(t.s[m][kb]);
                    for (int c = 0; c < NR && j + c < cols; ++c)
                        total[j + c][m] = _mm512_fmadd_ps(part[m][c], scale, total[j + c][m]);
                }
            }
        }
        store_sums<MR>(total, cols, out);
    }

    // The packed-panel kernel's A: rows in natural order, times 2^8 as for the row kernel.
    static void widen_natural(const RowCodec &codec, const uint8_t *q, int64_t n, float *out) {
        widen_a(codec, q, n, out);
    }

    // Transposes weight rows [n0, n0 + rows) into one panel of E4M3_P32 codes at `out` (pack_codes; the kernel checks
    // each K block for NaN codes as it widens it). `next_rows` weight rows at b + kPanelCols * ldb (the next panel's, 0
    // if none) are prefetched into L2 meanwhile: the panel's rows are more streams than the hardware prefetcher
    // follows, and the tiles that follow hide the fetch.
    static void transpose_panel(const uint8_t *b, int64_t ldb, int64_t rows, int64_t next_rows, int64_t k,
                                uint8_t *out) {
        for (int64_t j = 0; j < next_rows; ++j)
            for (int64_t i = 0; i < k; i += kStep)
                _mm_prefetch(reinterpret_cast<const char *>(b + (kPanelCols + j) * ldb + i), _MM_HINT_T1);
        pack_codes(b, ldb, rows, k, out);
    }

    // Transposes the codes of `rows` (at most 32) weight rows (row j at b + j * ldb) into out[i * 32 + j], the
    // layout of one panel of E4M3_P32 weights; rows past `rows` are zero codes (+0).
    static void pack_codes(const uint8_t *b, int64_t ldb, int64_t rows, int64_t k, uint8_t *out) {
        for (int64_t h = 0; h < kPanelCols / kLanes; ++h) {
            const int64_t half_rows = std::clamp<int64_t>(rows - h * kLanes, 0, kLanes);
            for (int64_t i = 0; i < k; i += kStep)
                transpose_codes(b + h * kLanes * ldb, ldb, half_rows, i, out + i * kPanelCols + h * kLanes);
        }
    }

    // Sixteen rows' codes i .. i + 63 (row j at b + j * ldb, rows past `rows` zero) into out[e * 32 + j]. Each row is
    // read a whole cache line at a time: a panel's rows lie K bytes apart, which at K = 2048 puts them all into two L1
    // sets, so a line read a quarter at a time would be evicted before its next quarter. A 4 x 4 transpose of 128-bit
    // lanes turns rows g, 4 + g, 8 + g, 12 + g into r[c][g], lane l of which is row 4l + g's codes 16c .. 16c + 15; 32-
    // and 64-bit unpacks interleave those into v[d], whose lane l holds rows 4l .. 4l + 3's codes 16c + 4d .. + 3; a
    // byte shuffle transposes each lane's 4 x 4 codes and a dword permutation gathers into lane L the codes 16c + 4d +
    // L of all 16 rows.
    static void transpose_codes(const uint8_t *b, int64_t ldb, int64_t rows, int64_t i, uint8_t *out) {
        __m512i x[kLanes];
        for (int j = 0; j < kLanes; ++j) x[j] = j < rows ? _mm512_loadu_si512(b + j * ldb + i) : _mm512_setzero_si512();
        __m512i r[4][4];
        for (int g = 0; g < 4; ++g) {
            const __m512i t0 = _mm512_shuffle_i32x4(x[g], x[4 + g], _MM_SHUFFLE(1, 0, 1, 0));
            const __m512i t1 = _mm512_shuffle_i32x4(x[g], x[4 + g], _MM_SHUFFLE(3, 2, 3, 2));
            const __m512i t2 = _mm512_shuffle_i32x4(x[8 + g], x[12 + g], _MM_SHUFFLE(1, 0, 1, 0));
            const __m512i t3 = _mm512_shuffle_i32x4(x[8 + g], x[12 + g], _MM_SHUFFLE(3, 2, 3, 2));
            r[0][g] = _mm512_shuffle_i32x4(t0, t2, _MM_SHUFFLE(2, 0, 2, 0));
            r[1][g] = _mm512_shuffle_i32x4(t0, t2, _MM_SHUFFLE(3, 1, 3, 1));
            r[2][g] = _mm512_shuffle_i32x4(t1, t3, _MM_SHUFFLE(2, 0, 2, 0));
            r[3][g] = _mm512_shuffle_i32x4(t1, t3, _MM_SHUFFLE(3, 1, 3, 1));
        }
        // Byte 4e + c <- byte 4c + e in each lane; dword 4L + l <- dword 4l + L: the same index pattern.
        const __m512i bytes = _mm512_set4_epi32(0x0F0B0703, 0x0E0A0602, 0x0D090501, 0x0C080400);
        const __m512i dwords = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
        for (int c = 0; c < 4; ++c) {
            const __m512i lo01 = _mm512_unpacklo_epi32(r[c][0], r[c][1]),
                          hi01 = _mm512_unpackhi_epi32(r[c][0], r[c][1]);
            const __m512i lo23 = _mm512_unpacklo_epi32(r[c][2], r[c][3]),
                          hi23 = _mm512_unpackhi_epi32(r[c][2], r[c][3]);
            const __m512i v[4] = {_mm512_unpacklo_epi64(lo01, lo23), _mm512_unpackhi_epi64(lo01, lo23),
                                  _mm512_unpacklo_epi64(hi01, hi23), _mm512_unpackhi_epi64(hi01, hi23)};
            for (int d = 0; d < 4; ++d) {
                const __m512i e = _mm512_permutexvar_epi32(dwords, _mm512_shuffle_epi8(v[d], bytes));
                uint8_t *o = out + (16 * c + 4 * d) * kPanelCols;
                _mm_storeu_si128(reinterpret_cast<__m128i *>(o), _mm512_castsi512_si128(e));
                _mm_storeu_si128(reinterpret_cast<__m128i *>(o + kPanelCols), _mm512_extracti32x4_epi32(e, 1));
                _mm_storeu_si128(reinterpret_cast<__m128i *>(o + 2 * kPanelCols), _mm512_extracti32x4_epi32(e, 2));
                _mm_storeu_si128(reinterpret_cast<__m128i *>(o + 3 * kPanelCols), _mm512_extracti32x4_epi32(e, 3));
            }
        }
    }

    // Whether n codes (a multiple of 64) hold a NaN code.
    static bool has_nan(const uint8_t *codes, int64_t n) {
        __m512i nan = _mm512_setzero_si512();
        for (int64_t i = 0; i < n; i += kStep) nan = nan_max(nan, codes + i);
        return any_nan(nan);
    }

    // Widens one panel of codes (32 * k, the E4M3_P32 layout) into floats, values times 2^-8; with `nan`, code by
    // code, so that NaN codes become NaN.
    static void widen_codes(const uint8_t *codes, int64_t k, bool nan, float *out) {
        const int64_t n = kPanelCols * k;
        if (nan) {
            for (int64_t i = 0; i < n; ++i) out[i] = e4m3_decode(codes[i]) * kAvx2BScale;
            return;
        }
        for (int64_t i = 0; i < n; i += 2 * kLanes) {
            __m512 lo, hi;
            decode32(codes + i, lo, hi);
            _mm512_storeu_ps(out + i, lo);
            _mm512_storeu_ps(out + i + kLanes, hi);
        }
    }

    // acc[m * ld + j] += s[m][kb] * sum_{i in block kb} a[m][i] * w(i, j) for MR rows and NV * 16 weight rows j,
    // whose element i `load(i, v, nan)` gives as v[0 .. NV-1] (folding its codes into the NaN check `nan`, which it
    // returns): one output per lane, its part sum along K in order from +0, then one FMA per 16 outputs applies the
    // scale. The sequence per output depends on nothing but K.
    template <int MR, int NV, typename Load>
    static __m512i block_tile(const float *const *a, const float *const *s, int64_t kb, float *acc, int64_t ld,
                              __m512i nan, Load load) {
        __m512 part[MR][NV];
        for (int m = 0; m < MR; ++m)
            for (int j = 0; j < NV; ++j) part[m][j] = _mm512_setzero_ps();
        for (int64_t i = kb * kBlock; i < (kb + 1) * kBlock; ++i) {
            __m512 bv[NV];
            load(i, bv, nan);
            for (int m = 0; m < MR; ++m) {
                const __m512 av = _mm512_set1_ps(a[m][i]);
                for (int j = 0; j < NV; ++j) part[m][j] = _mm512_fmadd_ps(av, bv[j], part[m][j]);
            }
        }
        for (int m = 0; m < MR; ++m) {
            const __m512 scale = _mm512_set1_ps(s[m][kb]);
            for (int j = 0; j < NV; ++j) {
                float *out = acc + m * ld + kLanes * j;
                _mm512_storeu_ps(out, _mm512_fmadd_ps(part[m][j], scale, _mm512_loadu_ps(out)));
            }
        }
        return nan;
    }

    // The packed-panel kernel: MR rows against K block kb of a panel of 32 weight rows widened to floats (element i
    // of weight row j at wide[(i - kb * 128) * 32 + j]), into acc[m][j].
    template <int MR>
    static void panel_block_tile(const float *const *a, const float *const *s, int64_t kb, const float *wide,
                                 float (*acc)[kPanelCols]) {
        block_tile<MR, 2>(a, s, kb, acc[0], kPanelCols, _mm512_setzero_si512(),
                          [wide, kb](int64_t i, __m512(&bv)[2], __m512i &) {
                              const float *w = wide + (i - kb * kBlock) * kPanelCols;
                              bv[0] = _mm512_loadu_ps(w);
                              bv[1] = _mm512_loadu_ps(w + kLanes);
                          });
    }

    // The code kernel of packed weights: MR rows against NP panels of E4M3_P32 codes (panel p at codes + p * 32 * k)
    // into acc[m * ld + p * 32 + j], widened in registers as the tile meets them: the products and sums of
    // panel_block_tile, so the same bits. Returns false, leaving acc partly summed, where some code is a NaN code
    // (the caller then redoes the tile on widened blocks).
    template <int MR, int NP>
    static bool code_tile(const float *const *a, const float *const *s, const uint8_t *codes, int64_t k, float *acc,
                          int64_t ld) {
        const int64_t panel = kPanelCols * k;
        __m512i nan = _mm512_setzero_si512();
        for (int64_t kb = 0; kb < k / kBlock; ++kb)
            nan = block_tile<MR, 2 * NP>(
                a, s, kb, acc, ld, nan, [codes, panel](int64_t i, __m512(&bv)[2 * NP], __m512i &seen) {
                    for (int p = 0; p < NP; ++p) {
                        const uint8_t *q = codes + p * panel + i * kPanelCols;
                        // Two elements of K (64 codes) of a panel per NaN check and prefetch.
                        if ((i & 1) == 0) {
                            seen = nan_max(seen, q);
                            _mm_prefetch(reinterpret_cast<const char *>(q) + kCodePrefetch, _MM_HINT_T0);
                        }
                        decode32(q, bv[2 * p], bv[2 * p + 1]);
                    }
                });
        return !any_nan(nan);
    }

    template <int MR, int NR>
    static void reduce(const __m512 (&total)[MR][NR], Tile &t) {
        for (int m = 0; m < MR; ++m)
            for (int j = 0; j < NR; ++j) t.out[m][j] = _mm512_reduce_add_ps(total[m][j]);
    }

    template <int MR, int NR>
    static void dot(Tile &t, int64_t k) {
        __m512 total[MR][NR];
        for (int m = 0; m < MR; ++m)
            for (int j = 0; j < NR; ++j) total[m][j] = _mm512_setzero_ps();
        for (int64_t kb = 0; kb < k / kBlock; ++kb) {
            __m512 part[MR][NR];
            for (int m = 0; m < MR; ++m)
                for (int j = 0; j < NR; ++j) part[m][j] = _mm512_setzero_ps();
            for (int64_t i = kb * kBlock; i < (kb + 1) * kBlock; i += kLanes) {
                __m512 bv[NR];
                for (int j = 0; j < NR; ++j) bv[j] = _mm512_loadu_ps(static_cast<const float *>(t.b[j]) + i);
                for (int m = 0; m < MR; ++m) {
                    const __m512 av = _mm512_loadu_ps(static_cast<const float *>(t.a[m]) + i);
                    for (int j = 0; j < NR; ++j) part[m][j] = _mm512_fmadd_ps(av, bv[j], part[m][j]);
                }
            }
            for (int m = 0; m < MR; ++m) {
                const __m512 scale = _mm512_set1_ps(t.s[m][kb]);
                for (int j = 0; j < NR; ++j) total[m][j] = _mm512_fmadd_ps(part[m][j], scale, total[m][j]);
            }
        }
        reduce<MR, NR>(total, t);
    }
};

#pragma GCC pop_options

// ---------------------------------------------------------------- AVX512_BF16 path: bf16 dot products

// e4m3 code (sign dropped) -> bf16 bits. Every e4m3 value is exact in bf16, subnormals included (they become
// normal bf16 numbers), so the bf16 products and their fp32 sums are those of the e4m3 values themselves.
constexpr uint16_t e4m3_magnitude_bf16(int code) {
    const int exponent = code >> 3, mantissa = code & 7;
    if (code == 0x7F) return 0x7FC0;
    if (exponent != 0) return static_cast<uint16_t>(((exponent + 120) << 7) | (mantissa << 4));
    if (mantissa == 0) return 0;
    const int p = mantissa >= 4 ? 2 : mantissa >= 2 ? 1 : 0;  // mantissa * 2^-9 = 1.f * 2^(p - 9)
    return static_cast<uint16_t>(((p + 118) << 7) | ((mantissa - (1 << p)) << (7 - p)));
}

template <int Shift>
constexpr std::array<uint8_t, 128> bf16_byte_table() {
    std::array<uint8_t, 128> table{};
    for (int c = 0; c < 128; ++c) table[c] = static_cast<uint8_t>(e4m3_magnitude_bf16(c) >> Shift);
    return table;
}

alignas(64) constexpr std::array<uint8_t, 128> kBf16Low = bf16_byte_table<0>();
alignas(64) constexpr std::array<uint8_t, 128> kBf16High = bf16_byte_table<8>();

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx512vbmi")

// Widens 64 e4m3 codes to 64 bf16 through two 128-entry byte tables (VBMI). The byte interleave leaves the
// values in a fixed permuted order within the 64; A and B always go through this same function, so the dot
// products pair the right elements.
struct Bf16Widener {
    __m512i low0, low1, high0, high1, sign;
    Bf16Widener()
        : low0(_mm512_load_si512(kBf16Low.data())),
          low1(_mm512_load_si512(kBf16Low.data() + 64)),
          high0(_mm512_load_si512(kBf16High.data())),
          high1(_mm512_load_si512(kBf16High.data() + 64)),
          sign(_mm512_set1_epi8(static_cast<char>(0x80))) {}

    void widen64(const uint8_t *q, __m512bh &first, __m512bh &second) const {
        widen64(_mm512_loadu_si512(q), first, second);
    }
    void widen64(__m512i codes, __m512bh &first, __m512bh &second) const {
        const __m512i low = _mm512_permutex2var_epi8(low0, codes, low1);
        const __m512i high =
            _mm512_or_si512(_mm512_permutex2var_epi8(high0, codes, high1), _mm512_and_si512(codes, sign));
        first = (__m512bh)_mm512_unpacklo_epi8(low, high);
        second = (__m512bh)_mm512_unpackhi_epi8(low, high);
    }
};

// widen64's word w of `first` comes from code 16 * (w / 8) + w % 8, of `second` from that + 8. This order of the 64
// codes of one element pair of a panel (E4M3_P32: codes 0-31 element 2p of weight rows 0-31, codes 32-63 element 2p +
// 1) makes `first` rows 0-15's pairs and `second` rows 16-31's, each 32-bit lane one row's elements 2p and 2p + 1.
constexpr std::array<uint8_t, 64> pair_order() {
    std::array<uint8_t, 64> order{};
    for (int w = 0; w < 32; ++w) {
        const int slot = 16 * (w / 8) + w % 8, source = (w % 2) * 32 + w / 2;
        order[slot] = static_cast<uint8_t>(source);
        order[slot + 8] = static_cast<uint8_t>(source + 16);
    }
    return order;
}
alignas(64) constexpr std::array<uint8_t, 64> kPairOrder = pair_order();

struct Avx512Bf16Path {
    using Wide = uint16_t;
    static constexpr bool kWidensInRegisters = true;
    static constexpr int kCodeRows = kTileM;
    static constexpr bool kBlockCodes = false;
    static constexpr int64_t kCodeRowsMax = 0;
    // Packed weights (E4M3_P32) take the panel order for every row count, as on the AVX-512F path: one 16-lane
    // vector holds 16 weight rows' sums, each lane adding the pairs of its row's elements along K in order (bf16 dot
    // products), then the block's scale. Groups of up to kCodeRowsPacked rows widen the codes in registers
    // (code_tile; tiles after a task's first meet its codes again in L2), larger ones widen each K block of a panel
    // once into L1 for all their tiles (panel_block_tile). Unlike the AVX-512F path's, the widening here is cheap next
    // to the dot products, and re-widening beats the store and reload: `moe4j_bench gemm --threads 2 --n 102400 --k
    // 2048 --cache cold --packed` (Zen 4), blocks / code tiles: M = 12 21.1 / 12.8 ms, 16 21.7 / 17.3, 24 29.6 / 25.2,
    // 32 37.5 / 32.7, 64 (of 2048 weight rows, warm) 1.44 / 1.28 ms. Contexts that are not reproducible give unpacked
    // groups of at least kPanelMinRows rows to the block kernel, transposing each panel first.
    static constexpr bool kPacked = true;
    static constexpr int64_t kPanelMinRows = 16;
    static constexpr int64_t kCodeRowsPacked = 64;
    static constexpr int64_t kCodeCols = 128;
    // Bytes ahead in a panel's codes that a code tile of MR activation rows prefetches: about the same time ahead
    // whatever MR (a step of 64 codes takes longer the more rows meet it), 4 KB from eight rows (LM head at 8 rows,
    // cold: 9.24-9.34 -> 8.41-8.69 ms at 4 KB). Tiles of one or two rows, which read four or two panels side by side,
    // prefetch 2 KB ahead: `moe4j_bench expert --experts 6 --op ffn --packed` (Zen 5 VM, weights in 2 MiB pages,
    // runs alternated), one row 789-820 us a call against 926-983 without, two rows 1073-1094 against 1123-1196;
    // `moe4j_bench step`'s expert FFN at 83-101% of the rate of plain streams of its bytes against 62-90% without (1
    // KB 81-93%, 4 KB and 8 KB lower). On Zen 4 (4 KiB pages too) the same tiles had run 1.14-1.16x faster without.
    template <int MR>
    static constexpr int64_t code_prefetch() {
        return MR <= 2 ? 2048 : std::clamp<int64_t>(512 * MR, 1024, 4096);
    }
    // Panels of 32 weight rows (two vectors) meet 12 activation rows at a time: 24 accumulators, and per element pair
    // two panel loads and 12 broadcasts for 24 dot products.
    static constexpr int64_t kPanelCols = 32;
    static constexpr int kPanelTileRows = 12;
    static constexpr int64_t kPackRows = kPanelCols / 2;  // transpose_panel's output, in rows of K bf16: 32 x K codes
    static constexpr bool kWideBlocks = false;
    static constexpr int64_t kCodeL2Tiles = 8;  // how many tiles ahead code tiles prefetch weight rows into L2

    // Widening in natural order (output i is code i), for the panel kernels' A, whose element pairs they broadcast.
    // Codes are zero-extended to 16 bits so one table lookup fills each byte of a bf16.
    static void widen_natural(const RowCodec &, const uint8_t *q, int64_t n, uint16_t *out) {
        const Bf16Widener w;
        const __m512i sign = _mm512_set1_epi16(static_cast<short>(0x8000));
        for (int64_t i = 0; i < n; i += 32) {
            const __m512i x = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(q + i)));
            const __m512i shifted = _mm512_slli_epi16(x, 8);
            const __m512i low = _mm512_permutex2var_epi8(w.low0, x, w.low1);           // high byte: table[0] = 0
            const __m512i high = _mm512_permutex2var_epi8(w.high0, shifted, w.high1);  // low byte: table[0] = 0
            _mm512_storeu_si512(out + i, _mm512_ternarylogic_epi64(low, high, _mm512_and_si512(shifted, sign), 0xFE));
        }
    }

    // The codes of unpacked weight rows in E4M3_P32 panel order, as the AVX-512F path transposes them.
    static void transpose_panel(const uint8_t *b, int64_t ldb, int64_t rows, int64_t next_rows, int64_t k,
                                uint8_t *out) {
        Avx512Path::transpose_panel(b, ldb, rows, next_rows, k, out);
    }

    // NaN codes widen to NaN bf16 values (the tables map them so), which the dot products carry into their sums:
    // no block needs a second pass.
    static bool has_nan(const uint8_t *, int64_t) { return false; }

    // Element pair p of a panel's 32 rows (64 codes at q) as bf16 pairs: lo rows 0-15, hi rows 16-31.
    static void widen_pair(const Bf16Widener &w, const __m512i order, const uint8_t *q, __m512bh &lo, __m512bh &hi) {
        w.widen64(_mm512_permutexvar_epi8(order, _mm512_loadu_si512(q)), lo, hi);
    }

    // One K block (k elements) of a panel of E4M3_P32 codes widened to bf16 pairs: out[p * 32 + j] holds weight row
    // j's elements 2p (low half) and 2p + 1.
    static void widen_codes(const uint8_t *codes, int64_t k, bool /*nan*/, uint32_t *out) {
        const Bf16Widener w;
        const __m512i order = _mm512_load_si512(kPairOrder.data());
        for (int64_t p = 0; p < k / 2; ++p) {
            __m512bh lo, hi;
            widen_pair(w, order, codes + p * 2 * kPanelCols, lo, hi);
            _mm512_storeu_si512(out + p * kPanelCols, (__m512i)lo);
            _mm512_storeu_si512(out + p * kPanelCols + 16, (__m512i)hi);
        }
    }

    // acc[m * ld + 16 * j] += s[m][kb] * sum over the element pairs p of block kb of a[m]'s pair p times weight rows'
    // pair p (load(p, bv) gives them, 16 rows per vector), for MR rows and NV * 16 weight rows: one output per lane,
    // its part sum from +0 along K in pairs, then one FMA per 16 outputs applies the scale. The sequence per output
    // depends on nothing but K.
    template <int MR, int NV, typename Load>
    static void block_tile(const uint16_t *const *a, const float *const *s, int64_t kb, float *acc, int64_t ld,
                           Load load) {
        __m512 part[MR][NV];
        for (int m = 0; m < MR; ++m)
            for (int j = 0; j < NV; ++j) part[m][j] = _mm512_setzero_ps();
        for (int64_t p = 0; p < kBlock / 2; ++p) {
            __m512bh bv[NV];
            load(p, bv);
            for (int m = 0; m < MR; ++m) {
                int32_t pair;
                std::memcpy(&pair, a[m] + kb * kBlock + 2 * p, sizeof pair);
                const __m512bh av = (__m512bh)_mm512_set1_epi32(pair);
                for (int j = 0; j < NV; ++j) part[m][j] = _mm512_dpbf16_ps(part[m][j], av, bv[j]);
            }
        }
        for (int m = 0; m < MR; ++m) {
            const __m512 scale = _mm512_set1_ps(s[m][kb]);
            for (int j = 0; j < NV; ++j) {
                float *out = acc + m * ld + 16 * j;
                _mm512_storeu_ps(out, _mm512_fmadd_ps(part[m][j], scale, _mm512_loadu_ps(out)));
            }
        }
    }

    // MR rows against K block kb of a panel widened by widen_codes, into acc[m][j].
    template <int MR>
    static void panel_block_tile(const uint16_t *const *a, const float *const *s, int64_t kb, const uint32_t *wide,
                                 float (*acc)[kPanelCols]) {
        block_tile<MR, 2>(a, s, kb, acc[0], kPanelCols, [wide](int64_t p, __m512bh(&bv)[2]) {
            bv[0] = (__m512bh)_mm512_loadu_si512(wide + p * kPanelCols);
            bv[1] = (__m512bh)_mm512_loadu_si512(wide + p * kPanelCols + 16);
        });
    }

    // MR rows against NP panels of E4M3_P32 codes (panel q at codes + q * 32 * k) into acc[m * ld + q * 32 + j],
    // widened in registers as the tile meets them: the products and sums of panel_block_tile, so the same bits.
    template <int MR, int NP>
    static bool code_tile(const uint16_t *const *a, const float *const *s, const uint8_t *codes, int64_t k, float *acc,
                          int64_t ld) {
        const Bf16Widener w;
        const __m512i order = _mm512_load_si512(kPairOrder.data());
        const int64_t panel = kPanelCols * k;
        for (int64_t kb = 0; kb < k / kBlock; ++kb)
            block_tile<MR, 2 * NP>(a, s, kb, acc, ld, [&](int64_t p, __m512bh(&bv)[2 * NP]) {
                for (int q = 0; q < NP; ++q) {
                    const uint8_t *c = codes + q * panel + (kb * kBlock + 2 * p) * kPanelCols;
                    _mm_prefetch(reinterpret_cast<const char *>(c) + code_prefetch<MR>(), _MM_HINT_T0);
                    widen_pair(w, order, c, bv[2 * q], bv[2 * q + 1]);
                }
            });
        return true;
    }

    static void widen_a(const RowCodec &codec, const uint8_t *q, int64_t n, uint16_t *out) { widen(codec, q, n, out); }
    static void widen_b(const RowCodec &codec, const uint8_t *q, int64_t n, uint16_t *out) { widen(codec, q, n, out); }
    static void widen(const RowCodec &, const uint8_t *q, int64_t n, uint16_t *out) {
        const Bf16Widener widener;
        for (int64_t i = 0; i < n; i += 64) {
            __m512bh first, second;
            widener.widen64(q + i, first, second);
            _mm512_storeu_si512(out + i, (__m512i)first);
            _mm512_storeu_si512(out + i + 32, (__m512i)second);
        }
    }

    // out = sum_kb s * sum a·b over the tile. With Codes, t.b points at e4m3 codes widened on the fly (rows that
    // meet each weight row once, as in decode, gain nothing from a widened copy in memory); otherwise at rows
    // already widened by widen().
    template <int MR, int NR, bool Codes>
    static void dot_tile(Tile &t, int64_t k) {
        const Bf16Widener widener;
        __m512 total[MR][NR];
        for (int m = 0; m < MR; ++m)
            for (int j = 0; j < NR; ++j) total[m][j] = _mm512_setzero_ps();
        for (int64_t kb = 0; kb < k / kBlock; ++kb) {
            __m512 part[MR][NR];
            for (int m = 0; m < MR; ++m)
                for (int j = 0; j < NR; ++j) part[m][j] = _mm512_setzero_ps();
            if constexpr (Codes) {
                for (int64_t i = kb * kBlock; i < (kb + 1) * kBlock; i += 64) {
                    __m512bh b0[NR], b1[NR];
                    for (int j = 0; j < NR; ++j) {
                        const uint8_t *b = static_cast<const uint8_t *>(t.b[j]) + i;
                        // The next tile's rows, one tile ahead: a row is only a few KB, so prefetching within
                        // it would stall at every row end when the weights stream from memory. Into L2 eight tiles
                        // ahead as well: one tile ahead alone kept too few lines in flight for one core to stream
                        // (Zen 4, `moe4j_bench gemm --threads 2 --m 1 --n 102400 --k 2048 --cache cold`: 61% of
                        // the read bandwidth without, 85-92% with; 4, 8 and 16 tiles within noise).
                        _mm_prefetch(reinterpret_cast<const char *>(b) + t.prefetch, _MM_HINT_T0);
                        _mm_prefetch(reinterpret_cast<const char *>(b) + kCodeL2Tiles * t.prefetch, _MM_HINT_T1);
                        widener.widen64(b, b0[j], b1[j]);
                    }
                    for (int m = 0; m < MR; ++m) {
                        const uint16_t *a = static_cast<const uint16_t *>(t.a[m]) + i;
                        const __m512bh a0 = (__m512bh)_mm512_loadu_si512(a), a1 = (__m512bh)_mm512_loadu_si512(a + 32);
                        for (int j = 0; j < NR; ++j)
                            part[m][j] = _mm512_dpbf16_ps(_mm512_dpbf16_ps(part[m][j], a0, b0[j]), a1, b1[j]);
                    }
                }
            } else {
                // Already widened: one 32-element step at a time keeps fewer vectors live.
                for (int64_t i = kb * kBlock; i < (kb + 1) * kBlock; i += 32) {
                    __m512bh bv[NR];
                    for (int j = 0; j < NR; ++j)
                        bv[j] = (__m512bh)_mm512_loadu_si512(static_cast<const uint16_t *>(t.b[j]) + i);
                    for (int m = 0; m < MR; ++m) {
                        const __m512bh av = (__m512bh)_mm512_loadu_si512(static_cast<const uint16_t *>(t.a[m]) + i);
                        for (int j = 0; j < NR; ++j) part[m][j] = _mm512_dpbf16_ps(part[m][j], av, bv[j]);
                    }
                }
            }
            for (int m = 0; m < MR; ++m) {
                const __m512 scale = _mm512_set1_ps(t.s[m][kb]);
                for (int j = 0; j < NR; ++j) total[m][j] = _mm512_fmadd_ps(part[m][j], scale, total[m][j]);
            }
        }
        for (int m = 0; m < MR; ++m)
            for (int j = 0; j < NR; ++j) t.out[m][j] = _mm512_reduce_add_ps(total[m][j]);
    }

    template <int MR, int NR>
    static void dot(Tile &t, int64_t k) {
        dot_tile<MR, NR, false>(t, k);
    }

    template <int MR, int NR>
    static void dot_codes(Tile &t, int64_t k) {
        dot_tile<MR, NR, true>(t, k);
    }
};

#pragma GCC pop_options

// ---------------------------------------------------------------- the driver, shared by every path

// One unit of work: a chunk of a group's rows against a run of weight blocks: of kRowsPerBlock rows for the row
// kernel, of Path::kPanelCols rows (one panel) for the packed-panel kernel.
struct Task {
    int32_t group;
    bool panel;                  // packed-panel kernel or row kernel
    int64_t row_begin, row_end;  // positions in the group's row list
    int64_t block_begin, block_end;
};

// The fused gate/up pass's units: a row chunk of a group against one 128-column tile of the intermediate dimension,
// computed by one task per weight block of the tile, the last of which finishes the tile (SiLU, FP8).
struct GateUpUnit {
    int32_t group;
    int64_t row_begin, row_end;  // positions in the group's row list
    int64_t tile;                // intermediate columns [tile * 128, tile * 128 + 128)
    int64_t values;              // offset of the unit's gate tile [rows][128] in the value buffer; up follows it
    int64_t first_task;          // the unit's tasks are first_task .. first_task + blocks per tile - 1
};

// Scratch of the fused gate/up pass, in floats, each part a multiple of 16 floats (64 bytes): shared by the call, one
// counter per unit and the gate and up values of every unit; per worker (moe4j_context::worker_scratch_for) the
// combined scales [rows][K/128] for row chunks of up to kRowsPerChunk rows and the weights' working copies
// (Driver::weight_scratch_floats).
struct GateUpScratch {
    int64_t units, chunk_rows, counters, values, scales, weights, per_worker;
};

int64_t round_up16(int64_t n) { return (n + 15) / 16 * 16; }

template <typename Path>
struct Driver {
    using Wide = typename Path::Wide;

    const Fp8GemmArgs &args;
    const RowCodec &codec;
    const RowView a, sfa;
    const std::optional<RowView> d, c;  // d is absent in the fused gate/up pass, which writes no d
    int64_t k, kb_count;
    int64_t ld;  // row stride of widened rows: wide_row_stride(k)
    // Taken from the context's workspace by prepare(): the widened rows of every group, group after group, each in
    // its row order (ld apart), their scales [row][kb] in the same order, where each group's rows start (one more
    // entry: the total), and whether each group runs the packed-panel kernel.
    Wide *a_wide = nullptr;
    float *a_scales = nullptr;
    int64_t *row_base = nullptr;
    bool *panel_group = nullptr;
    bool panels;  // large groups may take the packed-panel kernel (its per-row sums differ from the row kernel's)

    Driver(const Fp8GemmArgs &args, const RowCodec &codec, bool panels)
        : args(args),
          codec(codec),
          a(*args.a),
          sfa(*args.sfa),
          d(args.d != nullptr ? std::optional<RowView>(*args.d) : std::nullopt),
          c(args.c != nullptr ? std::optional<RowView>(*args.c) : std::nullopt),
          k(args.k),
          kb_count(args.k / kBlock),
          ld(wide_row_stride(args.k)),
          panels(panels) {}

    // Whether a group takes the packed-panel kernel: packed weights on paths with packed kernels always (their sums
    // do not depend on the row count), others from Path::kPanelMinRows rows where the context allows it.
    bool panel_for(const GemmGroup &group) const {
        if constexpr (Path::kPacked) {
            if (group.packed) return true;
            return panels && group.rows.size() >= Path::kPanelMinRows;
        } else {
            (void)group;
            return false;
        }
    }

    // Whether some group takes the packed-panel kernel.
    bool uses_panels() const {
        for (const GemmGroup &group : args.groups)
            if (panel_for(group)) return true;
        return false;
    }

    // Group g's widened rows and their scales.
    const Wide *wide_rows(int32_t g) const { return a_wide + row_base[g] * ld; }
    const float *scale_rows(int32_t g) const { return a_scales + row_base[g] * kb_count; }

    // Widens every used row of A once per call; the GEMM reads each many times.
    void prepare(moe4j_context &ctx) {
        Workspace &workspace = ctx.workspace;
        const int64_t groups = args.groups.size();
        row_base = workspace.take<int64_t>(groups + 1, "the FP8 GEMM's row offsets");
        panel_group = workspace.take<bool>(groups, "the FP8 GEMM's kernel choices");
        row_base[0] = 0;
        for (int64_t g = 0; g < groups; ++g) {
            panel_group[g] = panel_for(args.groups[g]);
            row_base[g + 1] = row_base[g] + args.groups[g].rows.size();
        }
        const int64_t rows = row_base[groups];
        a_wide = workspace.take<Wide>(rows * ld, "the FP8 GEMM's widened activations");
        a_scales = workspace.take<float>(rows * kb_count, "the FP8 GEMM's activation scales");
        const int64_t sfa_inner_stride = args.sfa->strides[args.sfa->rank - 1];  // any layout, column-major too
        parallel_for(*ctx.pool, rows, grain_for(k), [&](int64_t begin, int64_t end) {
            // The group of row `begin`: the last whose rows start at or before it.
            int32_t g = static_cast<int32_t>(std::upper_bound(row_base, row_base + groups + 1, begin) - row_base) - 1;
            for (int64_t i = begin; i < end; ++i) {
                while (i >= row_base[g + 1]) ++g;
                const int64_t row = args.groups[g].rows[i - row_base[g]];
                Wide *out = a_wide + i * ld;
                if constexpr (Path::kPacked) {
                    if (panel_group[g]) {
                        Path::widen_natural(codec, a.row<uint8_t>(row), k, out);
                    } else {
                        Path::widen_a(codec, a.row<uint8_t>(row), k, out);
                    }
                } else {
                    Path::widen_a(codec, a.row<uint8_t>(row), k, out);
                }
                const float *s = sfa.row<float>(row);
                for (int64_t kb = 0; kb < kb_count; ++kb) a_scales[i * kb_count + kb] = s[kb * sfa_inner_stride];
            }
        });
    }

    // d[row][n0 + j] = values[j] (+ c[row][n0 + j]) for j < count, in d's dtype.
    void store_run(int64_t row, int64_t n0, int64_t count, const float *values) const {
        const float *add = c ? c->row<float>(row) + n0 : nullptr;
        if (d->dtype == MOE4J_F32) {
            float *out = d->row<float>(row) + n0;
            for (int64_t j = 0; j < count; ++j) out[j] = add != nullptr ? values[j] + add[j] : values[j];
        } else {
            uint16_t *out = d->row<uint16_t>(row) + n0;
            for (int64_t j = 0; j < count; ++j) out[j] = bf16_encode(add != nullptr ? values[j] + add[j] : values[j]);
        }
    }

    template <int MR, int NR>
    void tile(Tile &t, bool codes) const {
        if constexpr (Path::kWidensInRegisters) {
            if (codes) {
                Path::template dot_codes<MR, NR>(t, k);
            } else {
                Path::template dot<MR, NR>(t, k);
            }
        } else {
            Path::template dot<MR, NR>(t, k);
        }
    }

    // Computes a tile of `rows` x `cols` (each at least 1, at most kTileM x kTileN) into t.out through its
    // instantiation.
    void tile_any(Tile &t, int rows, int cols, bool codes) const {
        if (cols == 2) {
            switch (rows) {
                case 4: return tile<4, 2>(t, codes);
                case 3: return tile<3, 2>(t, codes);
                case 2: return tile<2, 2>(t, codes);
                default: return tile<1, 2>(t, codes);
            }
        }
        switch (rows) {
            case 4: return tile<4, 1>(t, codes);
            case 3: return tile<3, 1>(t, codes);
            case 2: return tile<2, 1>(t, codes);
            default: return tile<1, 1>(t, codes);
        }
    }

    // Path::dot_codes_block for `rows` (1 to kCodeTileM) rows through its instantiation.
    void block_any(const Tile &t, int rows, const uint8_t *b, int64_t ldb, int cols,
                   float (*out)[kRowsPerBlock]) const {
        if constexpr (Path::kBlockCodes) {
            switch (rows) {
                case 8: return Path::template dot_codes_block<8>(t, b, ldb, cols, k, out);
                case 7: return Path::template dot_codes_block<7>(t, b, ldb, cols, k, out);
                case 6: return Path::template dot_codes_block<6>(t, b, ldb, cols, k, out);
                case 5: return Path::template dot_codes_block<5>(t, b, ldb, cols, k, out);
                case 4: return Path::template dot_codes_block<4>(t, b, ldb, cols, k, out);
                case 3: return Path::template dot_codes_block<3>(t, b, ldb, cols, k, out);
                case 2: return Path::template dot_codes_block<2>(t, b, ldb, cols, k, out);
                default: return Path::template dot_codes_block<1>(t, b, ldb, cols, k, out);
            }
        } else {
            (void)t, (void)rows, (void)b, (void)ldb, (void)cols, (void)out;
        }
    }

    // Path::dot_wide_block for `rows` (1 to kWideTileM) rows through its instantiation.
    void wide_block_any(const Tile &t, int rows, const Wide *bw, int cols, float (*out)[kRowsPerBlock]) const {
        if constexpr (Path::kWideBlocks) {
            switch (rows) {
                case 6: return Path::template dot_wide_block<6>(t, bw, ld, cols, k, out);
                case 5: return Path::template dot_wide_block<5>(t, bw, ld, cols, k, out);
                case 4: return Path::template dot_wide_block<4>(t, bw, ld, cols, k, out);
                case 3: return Path::template dot_wide_block<3>(t, bw, ld, cols, k, out);
                case 2: return Path::template dot_wide_block<2>(t, bw, ld, cols, k, out);
                default: return Path::template dot_wide_block<1>(t, bw, ld, cols, k, out);
            }
        } else {
            (void)t, (void)rows, (void)bw, (void)cols, (void)out;
        }
    }

    // Whether a task of `rows` rows widens the weights' codes in registers. Rows that fit one tile meet each weight
    // row once: widening through memory would only add work. Up to Path::kCodeRowsMax rows the block kernel still wins:
    // it widens a block's codes once per kCodeTileM rows while they sit in L1/L2, where widening through memory writes
    // a float copy of the block that outgrows L1.
    static bool takes_codes(int64_t rows) {
        return Path::kWidensInRegisters &&
               (rows <= Path::kCodeRows || (Path::kBlockCodes && rows <= Path::kCodeRowsMax));
    }

    // The row kernel on the task's rows against its 16-row blocks of `weights` (the task's group's, or another
    // matrix with the same N, K and rows): store(m, n0, count, values) receives each row's results for one block, m
    // the position in the task's rows. b_wide holds kRowsPerBlock rows of ld widened weights, scales the task's
    // rows * kb_count combined scales, unpacked kRowsPerBlock rows of K codes (for packed weights).
    template <typename Store>
    void run_rows(const Task &task, const GemmGroup &weights, Wide *b_wide, float *scales, uint8_t *unpacked,
                  Store &&store) const {
        const int64_t rows = task.row_end - task.row_begin;
        const Wide *aw = wide_rows(task.group);
        int64_t scale_block = -1;
        Tile t{};
        for (int64_t blk = task.block_begin; blk < task.block_end; ++blk) {
            const int64_t n0 = blk * kRowsPerBlock, n1 = std::min(args.n, n0 + kRowsPerBlock);
            // The block's weight rows: in place, or unpacked from panels (the next block's prefetch then points
            // past the scratch, which prefetching tolerates).
            const uint8_t *bb = weights.b + n0 * weights.ldb;
            int64_t ldb = weights.ldb;
            if (weights.packed) {
                unpack_rows(weights, n0, n1, unpacked);
                bb = unpacked;
                ldb = k;
            }
            const bool codes = takes_codes(rows);
            if (!codes)
                for (int64_t n = n0; n < n1; ++n) Path::widen_b(codec, bb + (n - n0) * ldb, k, b_wide + (n - n0) * ld);
            if (n0 / kBlock != scale_block) {
                scale_block = n0 / kBlock;
                combine_scales(task, weights, scale_block, scales);
            }
            // Code tiles of many rows or long rows take the block kernel, whose A slices stay in L1.
            const bool block = Path::kBlockCodes && codes && (rows > kTileM || rows * k > kBlockCodesMinElements);
            // Many rows on paths with a widened-block kernel: kWideTileM rows against the whole widened block.
            const bool wide_block = Path::kWideBlocks && !codes;
            const int64_t tile_m = wide_block ? kWideTileM : block ? kCodeTileM : kTileM, tile_n = kTileN;
            for (int64_t r = 0; r < rows; r += tile_m) {
                const int tile_rows = static_cast<int>(std::min<int64_t>(tile_m, rows - r));
                for (int m = 0; m < tile_rows; ++m) {
                    t.a[m] = aw + (task.row_begin + r + m) * ld;
                    t.s[m] = scales + (r + m) * kb_count;
                }
                float out[kCodeTileM][kRowsPerBlock];  // the tile's rows against the block's columns
                if (wide_block) {
                    wide_block_any(t, tile_rows, b_wide, static_cast<int>(n1 - n0), out);
                } else if (block) {
                    t.prefetch = kRowsPerBlock * ldb;  // the next block's rows, one block ahead
                    block_any(t, tile_rows, bb, ldb, static_cast<int>(n1 - n0), out);
                } else {
                    t.prefetch = tile_n * ldb;
                    for (int64_t n = n0; n < n1; n += tile_n) {
                        const int tile_cols = static_cast<int>(std::min<int64_t>(tile_n, n1 - n));
                        for (int j = 0; j < tile_cols; ++j)
                            t.b[j] = codes ? static_cast<const void *>(bb + (n - n0 + j) * ldb)
                                           : static_cast<const void *>(b_wide + (n - n0 + j) * ld);
                        tile_any(t, tile_rows, tile_cols, codes);
                        for (int m = 0; m < tile_rows; ++m)
                            for (int j = 0; j < tile_cols; ++j) out[m][n - n0 + j] = t.out[m][j];
                    }
                }
                for (int m = 0; m < tile_rows; ++m) store(r + m, n0, n1 - n0, out[m]);
            }
        }
    }

    // scales[r][kb] = sfa of the task's row r times sfb of weight block (nb, kb): the factor of each partial sum.
    void combine_scales(const Task &task, const GemmGroup &group, int64_t nb, float *scales) const {
        const float *as = scale_rows(task.group);
        const float *sb = group.sfb + nb * group.sfb_stride0;
        for (int64_t r = 0; r < task.row_end - task.row_begin; ++r)
            for (int64_t kb = 0; kb < kb_count; ++kb)
                scales[r * kb_count + kb] = as[(task.row_begin + r) * kb_count + kb] * sb[kb * group.sfb_stride1];
    }

    // A widened panel block holds floats on fp32 paths, pairs of bf16 values on the bf16 path.
    using PanelWord = std::conditional_t<std::is_same_v<Wide, float>, float, uint32_t>;

    // Weight rows per panel and activation rows per panel tile.
    static constexpr int64_t panel_cols() {
        if constexpr (Path::kPacked) {
            return Path::kPanelCols;
        } else {
            return kRowsPerBlock;
        }
    }
    static constexpr int panel_tile_rows() {
        if constexpr (Path::kPacked) {
            return Path::kPanelTileRows;
        } else {
            return 1;
        }
    }
    // Columns of one task of group g (after prepare()): a panel or a row-kernel block.
    int64_t block_cols(int32_t g) const {
        return code_group(g) ? code_cols() : panel_group[g] ? panel_cols() : kRowsPerBlock;
    }
    // Whether group g (packed, few rows) takes the code kernel, whose tasks span code_cols() weight rows.
    bool code_group(int32_t g) const {
        if constexpr (Path::kPacked) {
            return args.groups[g].packed && args.groups[g].rows.size() <= Path::kCodeRowsPacked;
        } else {
            (void)g;
            return false;
        }
    }
    static constexpr int64_t code_cols() {
        if constexpr (Path::kPacked) {
            return Path::kCodeCols;
        } else {
            return kRowsPerBlock;
        }
    }

    // Path::panel_block_tile for `rows` (1 to MR) rows through its instantiation.
    template <int MR>
    static void block_rows(int rows, const Wide *const *a, const float *const *s, int64_t kb, const PanelWord *wide,
                           float (*acc)[panel_cols()]) {
        if constexpr (MR > 1) {
            if (rows < MR) return block_rows<MR - 1>(rows, a, s, kb, wide, acc);
        }
        Path::template panel_block_tile<MR>(a, s, kb, wide, acc);
    }

    // Per worker: a panel (on paths that widen panels a K block at a time, one block of it and the sums of up to
    // `rows` rows), the path's packing scratch (Path::kPackRows rows of K) and a block of kRowsPerBlock unpacked rows
    // of packed weights (row kernels).
    struct PanelScratch {
        PanelWord *panel;
        Wide *row;
        uint8_t *unpacked;
        float *acc;
    };
    // The parts of the per-worker copies of weights, in floats, each a multiple of 16 floats (64 bytes): a
    // row-kernel block of kRowsPerBlock widened rows and one of codes, and on paths with panels a panel (for tasks
    // of up to `rows` rows) and its packing scratch.
    int64_t row_block_floats() const { return round_up16((kRowsPerBlock * ld * bytes<Wide>() + 3) / 4); }
    int64_t unpacked_floats() const { return round_up16((kRowsPerBlock * k + 3) / 4); }
    int64_t panel_floats(int64_t rows) const {
        if constexpr (Path::kPacked) {
            return round_up16(kBlock * panel_cols()) + round_up16(rows * panel_cols());
        } else {
            (void)rows;
            return 0;
        }
    }
    int64_t packing_floats() const {
        if constexpr (Path::kPacked) {
            return round_up16((Path::kPackRows * k * bytes<Wide>() + 3) / 4);
        } else {
            return 0;
        }
    }
    template <typename T>
    static constexpr int64_t bytes() {
        return static_cast<int64_t>(sizeof(T));
    }
    int64_t weight_scratch_floats(int64_t rows) const {
        return row_block_floats() + unpacked_floats() + panel_floats(rows) + packing_floats();
    }
    // Splits `floats` (weight_scratch_floats(rows) of them, 64-byte aligned) into a row-kernel block and panel
    // buffers.
    Wide *split_weight_scratch(float *floats, int64_t rows, PanelScratch &panel) const {
        float *next = floats + row_block_floats();
        panel.unpacked = reinterpret_cast<uint8_t *>(next);
        next += unpacked_floats();
        split_panel_scratch(next, panel);
        panel.row = reinterpret_cast<Wide *>(next + panel_floats(rows));
        return reinterpret_cast<Wide *>(floats);
    }
    // Points panel.panel and panel.acc into `floats` (panel_floats(rows) of them).
    static void split_panel_scratch(float *floats, PanelScratch &panel) {
        panel.panel = reinterpret_cast<PanelWord *>(floats);
        panel.acc = floats + (Path::kPacked ? round_up16(kBlock * panel_cols()) : 0);
    }

    // Rows [n0, n1) of packed weights, unpacked into out (row n - n0 at out + (n - n0) * k).
    void unpack_rows(const GemmGroup &weights, int64_t n0, int64_t n1, uint8_t *out) const {
        for (int64_t n = n0; n < n1; ++n) {
            const uint8_t *panel = weights.b + (n / 32) * 32 * k + n % 32;
            uint8_t *row = out + (n - n0) * k;
            for (int64_t i = 0; i < k; ++i) row[i] = panel[i * 32];
        }
    }

    // The packed-panel kernel on the task's rows against its panel of `weights` (the task's group's, or another
    // matrix with the same N, K, rows and packing): store(m, n0, count, values) receives each row's run of results,
    // m the position in the task's rows. scales holds at least the task's rows * kb_count floats.
    template <typename Store>
    void run_panel(const Task &task, const GemmGroup &weights, const PanelScratch &scratch, float *scales,
                   Store &&store) const {
        if constexpr (Path::kPacked) {
            if (code_group(task.group)) return run_codes(task, weights, scales, store);
            constexpr int64_t kCols = panel_cols();
            const int64_t n0 = task.block_begin * kCols, cols = std::min(kCols, args.n - n0);
            const uint8_t *codes = weights.b + n0 * k;
            if (!weights.packed) {
                uint8_t *transposed = reinterpret_cast<uint8_t *>(scratch.row);
                Path::transpose_panel(weights.b + n0 * weights.ldb, weights.ldb, cols,
                                      std::clamp<int64_t>(args.n - n0 - kCols, 0, kCols), k, transposed);
                codes = transposed;
            }
            combine_scales(task, weights, n0 / kBlock, scales);
            panel_blocks(task, codes, scales, scratch);
            for (int64_t m = 0; m < task.row_end - task.row_begin; ++m) store(m, n0, cols, scratch.acc + m * kCols);
        } else {
            (void)task, (void)weights, (void)scratch, (void)scales, (void)store;
        }
    }

    // scratch.acc[m][j] = the task's row m against weight row j of one panel of E4M3_P32 codes (scales as
    // combine_scales wrote them). K block by K block, the block's codes are widened into scratch.panel (16 KB, in
    // L1) and every tile of rows meets them there: each code is widened once for all of the task's rows, and the
    // tiles' sums take the same operations as the code tiles', so the same bits. A block holding a NaN code is
    // widened code by code (NaN codes to NaN).
    void panel_blocks(const Task &task, const uint8_t *codes, const float *scales, const PanelScratch &scratch) const {
        if constexpr (Path::kPacked) {
            constexpr int64_t kCols = panel_cols();
            constexpr int kTileRows = panel_tile_rows();
            PanelWord *wide = scratch.panel;
            std::fill_n(scratch.acc, (task.row_end - task.row_begin) * kCols, 0.0f);
            for (int64_t kb = 0; kb < kb_count; ++kb) {
                const uint8_t *block = codes + kb * kBlock * kCols;
                // The codes two blocks on (past the last, the next panel's) into L2 while this block's tiles
                // run: between the widening passes the stream sees no misses, and the hardware prefetcher lets it go
                // cold (AVX512_BF16 path, 16 rows x 102400 x 2048 packed, cold: 26.9 -> 21.7 ms; 32 rows 43.6 -> 37.5
                // ms; one block ahead 23.3 and 38.9 ms, four 23.0 and 39.4 ms).
                for (int64_t i = 0; i < kBlock * kCols; i += 64)
                    __builtin_prefetch(block + 2 * kBlock * kCols + i, 0, 2);
                Path::widen_codes(block, kBlock, Path::has_nan(block, kBlock * kCols), wide);
                for_each_tile(task, scales,
                              [&](int64_t r, int tile_rows, const Wide *const *a_rows, const float *const *s_rows) {
                                  block_rows<kTileRows>(tile_rows, a_rows, s_rows, kb, wide,
                                                        reinterpret_cast<float(*)[kCols]>(scratch.acc + r * kCols));
                              });
            }
        } else {
            (void)task, (void)codes, (void)scales, (void)scratch;
        }
    }

    // The task's rows in tiles of equal size, at most panel_tile_rows() (26 rows: 9, 9 and 8, not 12, 12 and 2: a
    // tile of few rows leaves the FMA latency bare): tile(r, rows, a_rows, s_rows) for the tile of rows r .. r + rows
    // - 1, with their widened activations and combined scales (scales as combine_scales wrote them).
    template <typename Visit>
    void for_each_tile(const Task &task, const float *scales, Visit &&tile) const {
        constexpr int kTileRows = panel_tile_rows();
        const Wide *aw = wide_rows(task.group);
        const int64_t rows = task.row_end - task.row_begin, tiles = (rows + kTileRows - 1) / kTileRows;
        const int64_t tile_m = (rows + tiles - 1) / tiles;
        for (int64_t r = 0; r < rows; r += tile_m) {
            const int tile_rows = static_cast<int>(std::min<int64_t>(tile_m, rows - r));
            const Wide *a_rows[kTileRows];
            const float *s_rows[kTileRows];
            for (int m = 0; m < tile_rows; ++m) {
                a_rows[m] = aw + (task.row_begin + r + m) * ld;
                s_rows[m] = scales + (r + m) * kb_count;
            }
            tile(r, tile_rows, a_rows, s_rows);
        }
    }

    // run_panel for a code group: all of the task's rows (at most Path::kCodeRowsPacked) against up to code_cols()
    // packed weight rows, the codes widened in registers. A task whose panels hold a NaN code is redone panel by
    // panel through panel_blocks, which widens NaN codes to NaN: the same operations, so every other output keeps its
    // bits.
    template <typename Store>
    void run_codes(const Task &task, const GemmGroup &weights, float *scales, Store &&store) const {
        if constexpr (Path::kPacked) {
            constexpr int kTileRows = panel_tile_rows();
            constexpr int64_t kCols = code_cols(), kPanel = Path::kPanelCols;
            const int64_t n0 = task.block_begin * kCols, cols = std::min(kCols, args.n - n0);
            combine_scales(task, weights, n0 / kBlock, scales);
            const uint8_t *codes = weights.b + n0 * k;
            // Only the task's rows are zeroed: clearing the whole array (32 KB on the bf16 path, all of L1) made the
            // expert FFN 1.5-2.7% slower at 1-4 rows per expert.
            const int64_t rows = task.row_end - task.row_begin;
            float acc[Path::kCodeRowsPacked][kCols];
            std::fill_n(acc[0], rows * kCols, 0.0f);
            bool ok = true;
            // Tiles after the first meet the task's codes again in L2.
            for_each_tile(task, scales,
                          [&](int64_t r, int tile_rows, const Wide *const *a_rows, const float *const *s_rows) {
                              ok &= code_rows<kTileRows>(tile_rows, a_rows, s_rows, codes, cols / kPanel, acc + r);
                          });
            if (ok) {
                for (int64_t m = 0; m < rows; ++m) store(m, n0, cols, acc[m]);
                return;
            }
            // Rare: the block buffer and the sums are taken here, so that code tasks need none.
            LineVector<float> buffer(static_cast<size_t>(panel_floats(rows)));
            PanelScratch scratch{};
            split_panel_scratch(buffer.data(), scratch);
            for (int64_t p = 0; p < cols / kPanel; ++p) {
                panel_blocks(task, codes + p * kPanel * k, scales, scratch);
                for (int64_t m = 0; m < rows; ++m) store(m, n0 + p * kPanel, kPanel, scratch.acc + m * kPanel);
            }
        } else {
            (void)task, (void)weights, (void)scales, (void)store;
        }
    }

    // Path::code_tile for `rows` (1 to MR) rows over `panels` panels, NP at a time (4 for one row, 2 for two or
    // three, 1 from four: enough part sums in flight to hide the FMA latency). Returns false on a NaN code.
    template <int MR>
    bool code_rows(int rows, const Wide *const *a, const float *const *s, const uint8_t *codes, int64_t panels,
                   float (*acc)[code_cols()]) const {
        if constexpr (MR > 1) {
            if (rows < MR) return code_rows<MR - 1>(rows, a, s, codes, panels, acc);
        }
        if constexpr (Path::kPacked) {
            constexpr int64_t kPanel = Path::kPanelCols;
            bool ok = true;
            int64_t p = 0;
            const auto run = [&](auto np) {
                constexpr int NP = decltype(np)::value;
                for (; p + NP <= panels; p += NP)
                    ok &= Path::template code_tile<MR, NP>(a, s, codes + p * kPanel * k, k, acc[0] + p * kPanel,
                                                           code_cols());
            };
            if constexpr (MR == 1) run(std::integral_constant<int, 4>{});
            if constexpr (MR <= 3) run(std::integral_constant<int, 2>{});
            run(std::integral_constant<int, 1>{});
            return ok;
        } else {
            (void)a, (void)s, (void)codes, (void)panels, (void)acc;
            return true;
        }
    }

    // Scratch of gate_up_silu.
    GateUpScratch gate_up_scratch() const {
        const int64_t tiles = args.n / kBlock;
        int64_t chunk_rows = 1, units = 0, rows = 0;
        for (const GemmGroup &group : args.groups) {
            const int64_t n = group.rows.size();
            chunk_rows = std::max(chunk_rows, std::min(kRowsPerChunk, n));
            units += (n + kRowsPerChunk - 1) / kRowsPerChunk * tiles;
            rows += n;
        }
        GateUpScratch s{};
        s.units = units;
        s.chunk_rows = chunk_rows;
        s.counters = round_up16(units);
        s.values = round_up16(2 * rows * args.n);
        s.scales = round_up16(chunk_rows * kb_count);
        s.weights = weight_scratch_floats(chunk_rows);
        s.per_worker = s.scales + s.weights;
        return s;
    }

    // The expert FFN's gate/up half (fp8_gate_up_silu), after prepare(): `args` holds the gate weights, `up` the up
    // weights with the same rows. Task (unit, block) computes one weight block's columns (of the row kernel or a panel)
    // of the unit's gate and up values; the unit's last task to finish (a counter per unit) turns its tile into
    // SiLU(gate) * up and that into FP8 codes and scales while the values are still in cache. Which thread finishes a
    // tile changes nothing in the values, so results do not depend on the thread count. The tasks go out in shares
    // (run_shares): consecutive tasks read consecutive panels, so each thread's weights stream as one sequence (Zen
    // 4, 2 threads, calls alternated in one process: 1.03-1.05x faster at one row per expert for 6 and 30 experts at
    // ~60 GB/s of read bandwidth, 1.06x at four rows at ~33 GB/s).
    void gate_up_silu(moe4j_context &ctx, const Fp8GemmArgs &up, uint8_t *h, float *h_scales) const {
        const int64_t inter = args.n, tiles = inter / kBlock;
        const GateUpScratch layout = gate_up_scratch();
        const auto scratch =
            ctx.worker_scratch_for(static_cast<size_t>(layout.per_worker), "the fused gate/up pass's tiles",
                                   static_cast<size_t>(layout.counters + layout.values));
        GateUpUnit *units = ctx.workspace.take<GateUpUnit>(layout.units, "the fused gate/up pass's units");
        int64_t values = 0, tasks = 0, u = 0;
        for (int32_t g = 0; g < args.groups.size(); ++g) {
            const int64_t rows = args.groups[g].rows.size(), blocks = kBlock / block_cols(g);
            for (int64_t r = 0; r < rows; r += kRowsPerChunk) {
                const int64_t r1 = std::min(rows, r + kRowsPerChunk);
                for (int64_t tile = 0; tile < tiles; ++tile) {
                    units[u++] = {g, r, r1, tile, values, tasks};
                    values += 2 * (r1 - r) * kBlock;
                    tasks += blocks;
                }
            }
        }
        // The counters live in the scratch's first floats: storage reused for atomics, created here for this call.
        static_assert(sizeof(std::atomic<int32_t>) == sizeof(float) && alignof(std::atomic<int32_t>) <= alignof(float));
        std::atomic<int32_t> *done = reinterpret_cast<std::atomic<int32_t> *>(scratch.shared);
        for (int64_t i = 0; i < layout.units; ++i) new (done + i) std::atomic<int32_t>(0);
        float *value_base = scratch.shared + layout.counters;
        ctx.pool->run_shares(tasks, [&](int64_t i, int worker) {
            // The unit whose tasks include i: the last with first_task <= i.
            const GateUpUnit *it = std::upper_bound(
                units, units + layout.units, i, [](int64_t task, const GateUpUnit &v) { return task < v.first_task; });
            const int64_t u = it - units - 1;
            const GateUpUnit &unit = units[u];
            const int64_t rows = unit.row_end - unit.row_begin, c0 = unit.tile * kBlock;
            const int64_t cols = block_cols(unit.group), blocks = kBlock / cols;
            const int64_t block = unit.tile * blocks + (i - unit.first_task);
            float *scales = scratch.of(worker);
            PanelScratch panel;
            Wide *b_wide = split_weight_scratch(scales + layout.scales, layout.chunk_rows, panel);
            float *gate_tile = value_base + unit.values, *up_tile = gate_tile + rows * kBlock;
            const Task task{unit.group, static_cast<bool>(panel_group[unit.group]), unit.row_begin, unit.row_end, block,
                            block + 1};
            const auto gate_store = [&](int64_t m, int64_t n0, int64_t count, const float *v) {
                std::copy_n(v, count, gate_tile + m * kBlock + n0 - c0);
            };
            const auto up_store = [&](int64_t m, int64_t n0, int64_t count, const float *v) {
                std::copy_n(v, count, up_tile + m * kBlock + n0 - c0);
            };
            if (task.panel) {
                run_panel(task, args.groups[unit.group], panel, scales, gate_store);
                run_panel(task, up.groups[unit.group], panel, scales, up_store);
            } else {
                run_rows(task, args.groups[unit.group], b_wide, scales, panel.unpacked, gate_store);
                run_rows(task, up.groups[unit.group], b_wide, scales, panel.unpacked, up_store);
            }
            if (done[u].fetch_add(1, std::memory_order_acq_rel) != blocks - 1) return;
            const Span<const int64_t> group_rows = args.groups[unit.group].rows;
            for (int64_t m = 0; m < rows; ++m) {
                float *x = gate_tile + m * kBlock;
                const float *v = up_tile + m * kBlock;
                for (int64_t j = 0; j < kBlock; ++j) x[j] = silu_times(x[j], v[j]);
                const int64_t row = group_rows[unit.row_begin + m];
                const float scale = fp8_scale(codec.amax_f32(x, kBlock), false);
                codec.encode_f32(x, kBlock, 1.0f / scale, h + row * inter + c0);
                h_scales[row * tiles + unit.tile] = scale;
            }
        });
        for (int64_t i = 0; i < layout.units; ++i) done[i].~atomic();
    }

    void execute(moe4j_context &ctx) {
        ThreadPool &pool = *ctx.pool;
        prepare(ctx);
        // Task lists: per group, its row chunks times its weight blocks.
        const auto blocks_of = [&](int32_t g) { return (args.n + block_cols(g) - 1) / block_cols(g); };
        const auto chunk_of = [&](int32_t g) { return panel_group[g] ? kPanelRowChunk : kRowsPerChunk; };
        int64_t n = 0;
        for (int32_t g = 0; g < args.groups.size(); ++g)
            n += (args.groups[g].rows.size() + chunk_of(g) - 1) / chunk_of(g) * blocks_of(g);
        Task *tasks = ctx.workspace.take<Task>(n, "the FP8 GEMM's tasks");
        int64_t next = 0;
        for (int32_t g = 0; g < args.groups.size(); ++g) {
            const int64_t rows = args.groups[g].rows.size();
            for (int64_t r = 0; r < rows; r += chunk_of(g))
                for (int64_t blk = 0; blk < blocks_of(g); ++blk)
                    tasks[next++] = {g, panel_group[g], r, std::min(rows, r + chunk_of(g)), blk, blk + 1};
        }
        // Multiply-adds, with weights streamed by few rows counted as kStreamRows rows: a weight byte read from
        // memory costs about what that many multiply-adds do, and few-row calls must still spread over the threads.
        constexpr int64_t kStreamRows = 8;
        int64_t work = 0, rows_max = 1, panel_rows_max = 0;
        for (int64_t i = 0; i < n; ++i) {
            const Task &t = tasks[i];
            work += std::max(kStreamRows, t.row_end - t.row_begin) * block_cols(t.group) * k;
            rows_max = std::max(rows_max, t.row_end - t.row_begin);
            if (t.panel && !code_group(t.group)) panel_rows_max = std::max(panel_rows_max, t.row_end - t.row_begin);
        }
        const int64_t grain = n == 0 ? 1 : grain_for(work / n);
        // Per thread: the combined scales of a task's rows, then the weights' working copies (which of them a task
        // uses depends on its kind; only those are touched).
        const int64_t scale_floats = round_up16(rows_max * kb_count);
        const auto scratch =
            ctx.worker_scratch_for(static_cast<size_t>(scale_floats + weight_scratch_floats(panel_rows_max)),
                                   "the FP8 GEMM's per-thread tiles");
        // Each thread through its own run of tasks first, the weights streaming in order (1.00-1.01x faster than
        // handed out one at a time: expert FFN at one row per expert, 6 and 30 experts, ~55 GB/s), then through what
        // is left of the other's one task at a time: with parallel_for's chunks (four per thread) the thread that
        // finished first idled for up to a chunk at the end of the call (at one row, 2 MB of the down projection of 6
        // experts). Work under the grain stays on the caller.
        parallel_for_shares(pool, n, n <= grain ? n : 1, [&](int64_t begin, int64_t end, int worker) {
            float *scales = scratch.of(worker);
            PanelScratch panel;
            Wide *b_wide = split_weight_scratch(scales + scale_floats, panel_rows_max, panel);
            for (int64_t i = begin; i < end; ++i) {
                const Task &task = tasks[i];
                const GemmGroup &group = args.groups[task.group];
                const auto store = [&](int64_t m, int64_t n0, int64_t count, const float *v) {
                    store_run(group.rows[task.row_begin + m], n0, count, v);
                };
                if (task.panel) {
                    run_panel(task, group, panel, scales, store);
                } else {
                    run_rows(task, group, b_wide, scales, panel.unpacked, store);
                }
            }
        });
        for (int64_t row : args.zero_rows) {
            if (d->dtype == MOE4J_F32)
                std::fill_n(d->row<float>(row), args.n, 0.0f);
            else
                std::fill_n(d->row<uint16_t>(row), args.n, uint16_t{0});
        }
    }
};

template <typename Path>
const char *run_path(moe4j_context *ctx, const Fp8GemmArgs &args) {
    // A reproducible context keeps every row on the row kernel, whose result for a row does not depend on the
    // other rows of its group.
    Driver<Path> driver(args, row_codec(ctx->isa), !ctx->reproducible());
    const bool panels = driver.uses_panels();
    driver.execute(*ctx);
    return panels ? kFp8PanelKernel : kFp8RowKernel;
}

template <typename Path>
const char *run_gate_up(moe4j_context *ctx, const Fp8GemmArgs &gate, const Fp8GemmArgs &up, uint8_t *h,
                        float *h_scales) {
    Driver<Path> driver(gate, row_codec(ctx->isa), !ctx->reproducible());
    const bool panels = driver.uses_panels();
    driver.prepare(*ctx);
    driver.gate_up_silu(*ctx, up, h, h_scales);
    return panels ? kGateUpPanelKernel : kGateUpRowKernel;
}

}  // namespace

const char *fp8_gate_up_silu(moe4j_context *ctx, const Fp8GemmArgs &gate, const Fp8GemmArgs &up, uint8_t *h,
                             float *h_scales) {
    switch (ctx->isa) {
        case MOE4J_ISA_AVX512_BF16: return run_gate_up<Avx512Bf16Path>(ctx, gate, up, h, h_scales);
        case MOE4J_ISA_AVX512: return run_gate_up<Avx512Path>(ctx, gate, up, h, h_scales);
        case MOE4J_ISA_AVX2: return run_gate_up<Avx2Path>(ctx, gate, up, h, h_scales);
        default: return run_gate_up<ScalarPath>(ctx, gate, up, h, h_scales);
    }
}

const char *fp8_pack_weights(moe4j_context *ctx, const uint8_t *w, int64_t ldw, int64_t n, int64_t k, uint8_t *packed) {
    const bool avx512 = ctx->isa == MOE4J_ISA_AVX512 || ctx->isa == MOE4J_ISA_AVX512_BF16;
    parallel_for(*ctx->pool, n / 32, grain_for(32 * k), [&](int64_t begin, int64_t end) {
        for (int64_t p = begin; p < end; ++p) {
            const uint8_t *rows = w + p * 32 * ldw;
            uint8_t *out = packed + p * 32 * k;
            if (avx512) {
                Avx512Path::pack_codes(rows, ldw, 32, k, out);
                continue;
            }
            for (int64_t j = 0; j < 32; ++j)
                for (int64_t i = 0; i < k; ++i) out[i * 32 + j] = rows[j * ldw + i];
        }
    });
    return ctx->isa == MOE4J_ISA_AVX2 ? "scalar transpose" : nullptr;
}

const char *fp8_gemm(moe4j_context *ctx, const Fp8GemmArgs &args) {
    switch (ctx->isa) {
        case MOE4J_ISA_AVX512_BF16: return run_path<Avx512Bf16Path>(ctx, args);
        case MOE4J_ISA_AVX512: return run_path<Avx512Path>(ctx, args);
        case MOE4J_ISA_AVX2: return run_path<Avx2Path>(ctx, args);
        default: return run_path<ScalarPath>(ctx, args);
    }
}

}  // namespace moe4j::cpu
