#include "gemm.h"

// GCC 12's AVX-512 headers trip -W(maybe-)uninitialized inside themselves (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>
#include <optional>
#include <type_traits>

#include "../core/context.h"
#include "../core/fp8.h"
#include "../core/views.h"
#include "reduce_avx512.h"
#include "row_codec.h"

namespace moe4j::cpu {
namespace {

constexpr int kTileM = 4, kTileN = 2;
constexpr int64_t kColumnsPerTask = 16;
// A task's work counts its block of b, streamed from memory, as this many rows of multiply-adds: a few-row product
// (MLA's absorption at decode) spends its time reading b, and must still spread over the threads in even chunks.
constexpr int64_t kStreamRows = 8;

// The tasks (16 columns of B each, `bytes` per element) that a thread takes at a time in parallel_for_shares: those of
// the grain (the whole call, on the caller, when it is that small), and where that is more than kStealBytes of B (few
// rows: the call streams B) fewer, so that the thread that finishes its run first waits little for the other
// (absorption at one row, 2 MB of B, alternating: median 58-63 us a call against 68-87 with the grain's 229 KB).
int64_t chunk_tasks(int64_t tasks, int64_t m_count, int64_t k, int64_t bytes) {
    const int64_t grain = grain_for((m_count + kStreamRows) * kColumnsPerTask * k);
    if (tasks <= grain) return tasks;
    return std::min(grain, std::max<int64_t>(1, kStealBytes / (kColumnsPerTask * k * bytes)));
}

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

// x[0..k) as fp32 in out[0..round_up(k, 16)), zeros past k.
inline void widen_bf16_avx512(const uint16_t *x, int64_t k, float *out) {
    for (int64_t i = 0; i < k; i += 16) {
        const __mmask16 mask = k - i >= 16 ? __mmask16{0xFFFF} : static_cast<__mmask16>((1u << (k - i)) - 1);
        _mm512_storeu_ps(out + i, load16(mask, x + i));
    }
}

// Sixteen dot products at once, MR rows of A against NR columns (MR * NR = 16), for the fp32 FMA path of AVX-512
// (without AVX512_BF16, bf16 inputs are widened to fp32 exactly, by a shift): the B rows b[0..NR) are fp32 (bf16
// weights widened once per 16-column block, as A's rows are reused against many blocks), A's rows a[0..MR) of T.
// Per output, lane l sums the products of k = l (mod 16) in order, masked tail lanes add zeros, and reduce16_avx512
// adds the lanes in _mm512_reduce_add_ps's order (as the 4 x 2 tile kernel did before it, so results did not change).
// out[m * NR + j].
template <typename T, int MR, int NR>
void dot16_avx512(const T *const *a, const float *const *b, int64_t k, float *out) {
    static_assert(MR * NR == 16);
    __m512 acc[16];
    for (__m512 &x : acc) x = _mm512_setzero_ps();
    for (int64_t i = 0; i < k; i += 16) {
        const __mmask16 mask = k - i >= 16 ? __mmask16{0xFFFF} : static_cast<__mmask16>((1u << (k - i)) - 1);
        __m512 av[MR];
        for (int m = 0; m < MR; ++m) av[m] = load16(mask, a[m] + i);
        for (int j = 0; j < NR; ++j) {
            const __m512 bv = _mm512_maskz_loadu_ps(mask, b[j] + i);
            for (int m = 0; m < MR; ++m) acc[m * NR + j] = _mm512_fmadd_ps(av[m], bv, acc[m * NR + j]);
        }
    }
    _mm512_storeu_ps(out, reduce16_avx512(acc));
}

#pragma GCC pop_options

// ---------------------------------------------------------------- AVX-512 BF16: bf16 dot products

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")

// The first min(left, 32) of 32 bf16 elements.
inline __mmask32 mask_pairs(int64_t left) {
    return left >= 32 ? ~__mmask32{0} : static_cast<__mmask32>((uint64_t{1} << left) - 1);
}

// Sixteen bf16 dot products at once on vdpbf16ps, MR rows of A against NR rows of B (MR * NR = 16), both bf16 as
// they lie: per output, lane l sums the pair products of k = 2l, 2l + 1 (mod 32) in order, masked tail pairs add
// zeros, and reduce16_avx512 adds the lanes as _mm512_reduce_add_ps would, so an output's bits do not depend on the
// tile it was computed in (nor on how many rows A has). out[m * NR + j]. Tiles also prefetch what lies `ahead` bytes
// past each B element they read (0: nothing ahead): into L2 for several rows of A, into L1 for one.
template <int MR, int NR>
void dot16_avx512_bf16(const uint16_t *const *a, const uint16_t *const *b, int64_t k, float *out, int64_t ahead) {
    static_assert(MR * NR == 16);
    __m512 acc[16];
    for (__m512 &x : acc) x = _mm512_setzero_ps();
    if constexpr (MR == 1) {
        // One row of A streams B (decode): four of B's rows side by side, each row's sums still running along K in
        // order, and the next task's rows (`ahead` bytes on) prefetched into L1 as these are read. One row at a time
        // left each row's chain of vdpbf16ps waiting on the one before; rows side by side are streams the hardware
        // prefetcher does not follow (all 16 at once ran 2x slower at K = 128), hence the prefetch. MLA's absorption
        // (16 heads of [512, 128]) and un-absorption ([128, 512]), 2 threads, calls over 256 MiB of weights: 47-52 and
        // 47-56 us a call against 72-77 and 50-52 one row at a time; in cache 17-22 / 16-21 us against 33-45 / 36-48;
        // without the prefetch 113-119 / 93-95 us from memory, into L2 instead 57-63 / 49-56, eight rows 52-58 /
        // 51-54. Unrolled, so that the 16 sums stay in registers (1.3-1.4x slower in cache where they did not).
        constexpr int kRows = 4;
        static_assert(NR % kRows == 0);
#pragma GCC unroll 16
        for (int j = 0; j < NR; j += kRows)
            for (int64_t i = 0; i < k; i += 32) {
                const __mmask32 mask = mask_pairs(k - i);
                const __m512bh av = (__m512bh)_mm512_maskz_loadu_epi16(mask, a[0] + i);
                for (int r = 0; r < kRows; ++r) {
                    _mm_prefetch(reinterpret_cast<const char *>(b[j + r] + i) + ahead, _MM_HINT_T0);
                    acc[j + r] =
                        _mm512_dpbf16_ps(acc[j + r], av, (__m512bh)_mm512_maskz_loadu_epi16(mask, b[j + r] + i));
                }
            }
    } else {
        for (int64_t i = 0; i < k; i += 32) {
            const __mmask32 mask = mask_pairs(k - i);
            __m512bh av[MR];
            for (int m = 0; m < MR; ++m) av[m] = (__m512bh)_mm512_maskz_loadu_epi16(mask, a[m] + i);
            for (int j = 0; j < NR; ++j) {
                _mm_prefetch(reinterpret_cast<const char *>(b[j] + i) + ahead, _MM_HINT_T1);
                const __m512bh bv = (__m512bh)_mm512_maskz_loadu_epi16(mask, b[j] + i);
                for (int m = 0; m < MR; ++m) acc[m * NR + j] = _mm512_dpbf16_ps(acc[m * NR + j], av[m], bv);
            }
        }
    }
    _mm512_storeu_ps(out, reduce16_avx512(acc));
}

#pragma GCC pop_options

template <int MR, int NR>
void dot(int isa, int32_t dtype, Tile &t, int64_t k) {
    const bool bf16 = dtype == MOE4J_BF16;
    switch (isa) {
        // Both AVX-512 paths take gemm_dot16 (takes_dot16) and never come here.
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

// One matrix of an operand of rank 2, or matrix `batch` of one of rank 3: its rows lie a fixed stride apart, so
// their addresses need none of the divisions of RowView::row on rank 3.
struct Matrix {
    char *first;
    int64_t step;  // bytes from a row to the next
    Matrix(const RowView &v, int64_t batch)
        : first(v.base + (v.leading_rank == 2 ? batch * v.byte_strides[0] : 0)),
          step(v.byte_strides[v.leading_rank - 1]) {}
    template <typename T>
    T *row(int64_t i) const {
        return reinterpret_cast<T *>(first + i * step);
    }
};

// Row `row` of d, columns [n, n + count <= 16): values[j] (+ c's), rounded to bf16 by the path's codec.
void store_row(const RowCodec &codec, const Matrix &d, int32_t d_dtype, const std::optional<Matrix> &c, int64_t row,
               int64_t n, int count, const float *values) {
    float sums[kColumnsPerTask];
    if (c) {
        const float *add = c->row<float>(row) + n;
        for (int j = 0; j < count; ++j) sums[j] = values[j] + add[j];
        values = sums;
    }
    if (d_dtype == MOE4J_F32) {
        float *out = d.row<float>(row) + n;
        for (int j = 0; j < count; ++j) out[j] = values[j];
    } else {
        codec.f32_to_bf16(values, count, d.row<uint16_t>(row) + n);
    }
}

// The matrices of batch `batch`.
struct Operands {
    Matrix a, b, d;
    std::optional<Matrix> c;
    Operands(const RowView &a, const RowView &b, const std::optional<RowView> &c, const RowView &d, int64_t batch)
        : a(a, batch), b(b, batch), d(d, batch), c(c ? std::optional<Matrix>(Matrix(*c, batch)) : std::nullopt) {}
};

// How gemm_dot16 multiplies: fp32 FMAs on fp32 operands; fp32 FMAs on bf16 operands widened exactly, by a shift
// (AVX-512F); bf16 pair dot products on the bf16 operands as they lie (AVX512_BF16).
enum class Dot16 { F32, WidenedBf16, Bf16Pairs };

// Whether gemm_nt takes the 16-output kernels: the AVX-512 paths, where short dot products (MLA's K = 128) would
// spend as long in one reduction per output as in their multiply-adds.
bool takes_dot16(int isa) { return isa == MOE4J_ISA_AVX512 || isa == MOE4J_ISA_AVX512_BF16; }

// Rows r .. r + MR of a bf16 product against a task's 16 columns of B, 16 / MR columns at a time, each row stored
// once.
template <int MR>
void pair_rows(const RowCodec &codec, const Operands &op, int32_t d_dtype, int64_t r, int64_t n0, int cols,
               const uint16_t *const *b, int64_t k, int64_t ahead) {
    constexpr int NR = 16 / MR;
    const uint16_t *rows[MR];
    for (int m = 0; m < MR; ++m) rows[m] = op.a.row<uint16_t>(r + m);
    float out[MR][kColumnsPerTask];  // whole rows, stored once each
    for (int part = 0; part < cols; part += NR) {
        float tile[16];
        dot16_avx512_bf16<MR, NR>(rows, b + part, k, tile, ahead);
        for (int m = 0; m < MR; ++m) std::copy(tile + m * NR, tile + (m + 1) * NR, out[m] + part);
    }
    for (int m = 0; m < MR; ++m) store_row(codec, op.d, d_dtype, op.c, r + m, n0, cols, out[m]);
}

// The product on the 16-output kernels, a task per 16 columns of B. Widened bf16 columns go into the worker's part of
// the context's scratch, and rows of A are taken two at a time against 8 columns where 16 widened columns would not
// stay in L1 with A (K > 256), else one at a time against all 16. Pair products take rows of A four at a time
// against 4 columns (B's 16 bf16 rows stay in L1 up to K = 512).
template <Dot16 kind>
void gemm_dot16(moe4j_context *ctx, const RowCodec &codec, const RowView &a, const RowView &b,
                const std::optional<RowView> &c, const RowView &d, int64_t batches, int64_t m_count, int64_t n_count,
                int64_t k) {
    using T = std::conditional_t<kind == Dot16::F32, float, uint16_t>;
    const int64_t blocks = (n_count + kColumnsPerTask - 1) / kColumnsPerTask;
    const int64_t ldw = (k + 15) / 16 * 16 + 16;  // a line of padding: the rows' slices spread over the L1 sets
    moe4j_context::WorkerScratch scratch{};
    if constexpr (kind == Dot16::WidenedBf16)
        scratch = ctx->worker_scratch_for(static_cast<size_t>(kColumnsPerTask * ldw), "gemm_nt's widened bf16 columns");
    const int64_t tasks = batches * blocks, chunk = chunk_tasks(tasks, m_count, k, sizeof(T));
    // Each thread through its own run of tasks first: B's columns then stream in order per thread (MLA's absorption
    // at decode, 16 heads of [512, 128] or [128, 512], calls alternated in one process at ~34 GB/s: 1.02-1.035x faster
    // at one row than parallel_for's chunks handed out one at a time, even at 8 rows).
    parallel_for_shares(*ctx->pool, tasks, chunk, [&](int64_t begin, int64_t end, int worker) {
        for (int64_t task = begin; task < end; ++task) {
            const Operands op(a, b, c, d, task / blocks);
            const int64_t n0 = (task % blocks) * kColumnsPerTask;
            const int cols = static_cast<int>(std::min<int64_t>(kColumnsPerTask, n_count - n0));
            if constexpr (kind == Dot16::Bf16Pairs) {
                // Missing columns of a last block repeat column 0; their sums are dropped.
                const uint16_t *bp[kColumnsPerTask];
                for (int j = 0; j < kColumnsPerTask; ++j) bp[j] = op.b.row<uint16_t>(n0 + (j < cols ? j : 0));
                // The first rows' pass also prefetches the next task's columns of the same matrix (the next 16 rows
                // of B): B comes from memory once per call (MLA's absorption at decode), and a task's 16 short rows
                // stepped along K together are too short a stream for the hardware prefetcher.
                const int64_t next = n0 + kColumnsPerTask < n_count ? kColumnsPerTask * op.b.step : 0;
                int64_t r = 0;
                for (; r + 4 <= m_count; r += 4)
                    pair_rows<4>(codec, op, d.dtype, r, n0, cols, bp, k, r == 0 ? next : 0);
                if (r + 2 <= m_count) {
                    pair_rows<2>(codec, op, d.dtype, r, n0, cols, bp, k, r == 0 ? next : 0);
                    r += 2;
                }
                if (r < m_count) pair_rows<1>(codec, op, d.dtype, r, n0, cols, bp, k, r == 0 ? next : 0);
                continue;
            }
            const float *bw[kColumnsPerTask];
            for (int j = 0; j < kColumnsPerTask; ++j) {
                if constexpr (kind == Dot16::WidenedBf16) {
                    float *w = scratch.of(worker) + j * ldw;
                    if (j < cols) widen_bf16_avx512(op.b.row<uint16_t>(n0 + j), k, w);
                    bw[j] = j < cols ? w : bw[0];
                } else {
                    bw[j] = op.b.row<float>(n0 + (j < cols ? j : 0));
                }
            }
            float out[kColumnsPerTask];
            if (k > 256) {
                for (int64_t r = 0; r < m_count; r += 2) {
                    const int pair = r + 1 < m_count ? 2 : 1;
                    const T *rows[2] = {op.a.row<T>(r), op.a.row<T>(r + pair - 1)};
                    for (int half = 0; half < cols; half += 8) {
                        dot16_avx512<T, 2, 8>(rows, bw + half, k, out);
                        const int count = std::min(8, cols - half);
                        for (int m = 0; m < pair; ++m)
                            store_row(codec, op.d, d.dtype, op.c, r + m, n0 + half, count, out + m * 8);
                    }
                }
            } else {
                for (int64_t r = 0; r < m_count; ++r) {
                    const T *row[1] = {op.a.row<T>(r)};
                    dot16_avx512<T, 1, 16>(row, bw, k, out);
                    store_row(codec, op.d, d.dtype, op.c, r, n0, cols, out);
                }
            }
        }
    });
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
    const RowCodec &codec = row_codec(ctx->isa);
    if (takes_dot16(ctx->isa)) {
        if (a.dtype == MOE4J_F32) return gemm_dot16<Dot16::F32>(ctx, codec, a, b, c, d, batches, m_count, n_count, k);
        if (ctx->isa == MOE4J_ISA_AVX512_BF16)
            return gemm_dot16<Dot16::Bf16Pairs>(ctx, codec, a, b, c, d, batches, m_count, n_count, k);
        return gemm_dot16<Dot16::WidenedBf16>(ctx, codec, a, b, c, d, batches, m_count, n_count, k);
    }
    const int64_t blocks = (n_count + kColumnsPerTask - 1) / kColumnsPerTask, tasks = batches * blocks;
    const int64_t chunk = chunk_tasks(tasks, m_count, k, a.dtype == MOE4J_F32 ? 4 : 2);
    parallel_for_shares(*ctx->pool, tasks, chunk, [&](int64_t begin, int64_t end, int) {
        Tile t{};
        for (int64_t task = begin; task < end; ++task) {
            const Operands op(a, b, c, d, task / blocks);
            const int64_t n0 = (task % blocks) * kColumnsPerTask, n1 = std::min(n_count, n0 + kColumnsPerTask);
            for (int64_t r = 0; r < m_count; r += kTileM) {
                const int rows = static_cast<int>(std::min<int64_t>(kTileM, m_count - r));
                for (int m = 0; m < rows; ++m) t.a[m] = op.a.row<char>(r + m);
                for (int64_t n = n0; n < n1; n += kTileN) {
                    const int cols = static_cast<int>(std::min<int64_t>(kTileN, n1 - n));
                    for (int j = 0; j < cols; ++j) t.b[j] = op.b.row<char>(n + j);
                    dot_any(ctx->isa, a.dtype, t, rows, cols, k);
                    for (int m = 0; m < rows; ++m) store_row(codec, op.d, d.dtype, op.c, r + m, n, cols, t.out[m]);
                }
            }
        }
    });
}

}  // namespace moe4j::cpu
