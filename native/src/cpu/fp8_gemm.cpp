#include "fp8_gemm.h"

// GCC 12's AVX-512 headers trip -W(maybe-)uninitialized inside themselves (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <optional>
#include <vector>

#include "../core/context.h"
#include "../core/fp8.h"
#include "../core/views.h"
#include "row_codec.h"

namespace moe4j::cpu {
namespace {

constexpr int64_t kBlock = 128;  // K elements per scale; N rows per weight scale
constexpr int64_t kRowsPerBlock = 16;   // weight rows widened together and kept in cache
constexpr int64_t kRowsPerChunk = 256;  // activation rows one task streams over (stays in L3)
constexpr int kTileM = 4, kTileN = 2;

// The dot products of one tile: out[m][j] = sum_kb s[m][kb] * sum_{k in kb} a[m][k] * b[j][k], for the
// first `rows` rows and `cols` columns (at most kTileM x kTileN). All columns share one 128-row weight block.
struct Tile {
    const void *a[kTileM];
    const float *s[kTileM];
    const void *b[kTileN];
    float out[kTileM][kTileN];
};

// ---------------------------------------------------------------- scalar reference path

struct ScalarPath {
    using Wide = float;
    static void widen(const RowCodec &, const uint8_t *q, int64_t n, float *out) {
        for (int64_t i = 0; i < n; ++i) out[i] = e4m3_decode(q[i]);
    }
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

// ---------------------------------------------------------------- AVX2 path: fp32 FMA on widened values

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

struct Avx2Path {
    using Wide = float;
    static void widen(const RowCodec &codec, const uint8_t *q, int64_t n, float *out) {
        codec.decode_f32(q, n, 1.0f, out);  // exact: every e4m3 value is an fp32
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
        for (int m = 0; m < MR; ++m) {
            for (int j = 0; j < NR; ++j) {
                __m128 r = _mm_add_ps(_mm256_castps256_ps128(total[m][j]), _mm256_extractf128_ps(total[m][j], 1));
                r = _mm_add_ps(r, _mm_movehl_ps(r, r));
                r = _mm_add_ss(r, _mm_shuffle_ps(r, r, 1));
                t.out[m][j] = _mm_cvtss_f32(r);
            }
        }
    }
};

#pragma GCC pop_options

// ---------------------------------------------------------------- AVX-512 path: bf16 dot products

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

struct Avx512Path {
    using Wide = uint16_t;

    // Widens 64 codes at a time through two 128-entry byte tables (VBMI). The byte interleave leaves the 64
    // bf16 values in a fixed permuted order within each 64-element chunk; A and B go through the same
    // function, so the dot products pair the right elements.
    static void widen(const RowCodec &, const uint8_t *q, int64_t n, uint16_t *out) {
        const __m512i low0 = _mm512_load_si512(kBf16Low.data()), low1 = _mm512_load_si512(kBf16Low.data() + 64);
        const __m512i high0 = _mm512_load_si512(kBf16High.data()), high1 = _mm512_load_si512(kBf16High.data() + 64);
        const __m512i sign = _mm512_set1_epi8(static_cast<char>(0x80));
        for (int64_t i = 0; i < n; i += 64) {
            const __m512i codes = _mm512_loadu_si512(q + i);
            const __m512i low = _mm512_permutex2var_epi8(low0, codes, low1);
            const __m512i high =
                _mm512_or_si512(_mm512_permutex2var_epi8(high0, codes, high1), _mm512_and_si512(codes, sign));
            _mm512_storeu_si512(out + i, _mm512_unpacklo_epi8(low, high));
            _mm512_storeu_si512(out + i + 32, _mm512_unpackhi_epi8(low, high));
        }
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
            for (int64_t i = kb * kBlock; i < (kb + 1) * kBlock; i += 32) {
                __m512bh bv[NR];
                for (int j = 0; j < NR; ++j) bv[j] = (__m512bh)_mm512_loadu_si512(static_cast<const uint16_t *>(t.b[j]) + i);
                for (int m = 0; m < MR; ++m) {
                    const __m512bh av = (__m512bh)_mm512_loadu_si512(static_cast<const uint16_t *>(t.a[m]) + i);
                    for (int j = 0; j < NR; ++j) part[m][j] = _mm512_dpbf16_ps(part[m][j], av, bv[j]);
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
};

#pragma GCC pop_options

// ---------------------------------------------------------------- the driver, shared by every path

// One unit of work: a chunk of a group's rows against a run of 16-row weight blocks.
struct Task {
    int32_t group;
    int64_t row_begin, row_end;   // positions in the group's row list
    int64_t block_begin, block_end;  // 16-row weight blocks
};

template <typename Path>
struct Driver {
    using Wide = typename Path::Wide;

    const Fp8GemmArgs &args;
    const RowCodec &codec;
    const RowView a, d, sfa;
    const std::optional<RowView> c;
    int64_t k, kb_count;
    std::vector<std::vector<Wide>> a_wide;  // per group: widened rows, in the group's row order
    std::vector<std::vector<float>> a_scales;  // per group: [row][kb]

    Driver(const Fp8GemmArgs &args, const RowCodec &codec)
        : args(args),
          codec(codec),
          a(*args.a),
          d(*args.d),
          sfa(*args.sfa),
          c(args.c != nullptr ? std::optional<RowView>(*args.c) : std::nullopt),
          k(args.k),
          kb_count(args.k / kBlock) {}

    // Widens every used row of A once per call; the GEMM reads each many times.
    void prepare(ThreadPool &pool) {
        a_wide.resize(args.groups.size());
        a_scales.resize(args.groups.size());
        for (size_t g = 0; g < args.groups.size(); ++g) {
            a_wide[g].resize(args.groups[g].rows.size() * k);
            a_scales[g].resize(args.groups[g].rows.size() * kb_count);
        }
        std::vector<std::pair<int32_t, int64_t>> all;
        for (size_t g = 0; g < args.groups.size(); ++g)
            for (size_t r = 0; r < args.groups[g].rows.size(); ++r) all.emplace_back(static_cast<int32_t>(g), r);
        const int64_t sfa_inner_stride = args.sfa->strides[args.sfa->rank - 1];  // any layout, column-major too
        parallel_for(pool, static_cast<int64_t>(all.size()), 8, [&](int64_t begin, int64_t end) {
            for (int64_t i = begin; i < end; ++i) {
                const auto [g, r] = all[i];
                const int64_t row = args.groups[g].rows[r];
                Path::widen(codec, a.row<uint8_t>(row), k, a_wide[g].data() + r * k);
                const float *s = sfa.row<float>(row);
                for (int64_t kb = 0; kb < kb_count; ++kb) a_scales[g][r * kb_count + kb] = s[kb * sfa_inner_stride];
            }
        });
    }

    void store(int64_t row, int64_t n, float value) const {
        if (c) value += c->row<float>(row)[n];
        if (d.dtype == MOE4J_F32)
            d.row<float>(row)[n] = value;
        else
            d.row<uint16_t>(row)[n] = bf16_encode(value);
    }

    template <int MR, int NR>
    void tile(Tile &t, const GemmGroup &group, int64_t first_row, int64_t n) const {
        Path::template dot<MR, NR>(t, k);
        for (int m = 0; m < MR; ++m)
            for (int j = 0; j < NR; ++j) store(group.rows[first_row + m], n + j, t.out[m][j]);
    }

    // Dispatches a tile of `rows` x `cols` (each at least 1, at most the tile size) to its instantiation.
    void tile_any(Tile &t, int rows, int cols, const GemmGroup &group, int64_t first_row, int64_t n) const {
        if (cols == 2) {
            switch (rows) {
                case 4: return tile<4, 2>(t, group, first_row, n);
                case 3: return tile<3, 2>(t, group, first_row, n);
                case 2: return tile<2, 2>(t, group, first_row, n);
                default: return tile<1, 2>(t, group, first_row, n);
            }
        }
        switch (rows) {
            case 4: return tile<4, 1>(t, group, first_row, n);
            case 3: return tile<3, 1>(t, group, first_row, n);
            case 2: return tile<2, 1>(t, group, first_row, n);
            default: return tile<1, 1>(t, group, first_row, n);
        }
    }

    void run(const Task &task, std::vector<Wide> &b_wide, std::vector<float> &scales) const {
        const GemmGroup &group = args.groups[task.group];
        const int64_t rows = task.row_end - task.row_begin;
        const Wide *aw = a_wide[task.group].data();
        const float *as = a_scales[task.group].data();
        int64_t scale_block = -1;
        Tile t{};
        for (int64_t blk = task.block_begin; blk < task.block_end; ++blk) {
            const int64_t n0 = blk * kRowsPerBlock, n1 = std::min(args.n, n0 + kRowsPerBlock);
            for (int64_t n = n0; n < n1; ++n) Path::widen(codec, group.b + n * group.ldb, k, b_wide.data() + (n - n0) * k);
            if (n0 / kBlock != scale_block) {  // combined scales of these rows with this 128-row weight block
                scale_block = n0 / kBlock;
                const float *sb = group.sfb + scale_block * group.sfb_stride0;
                for (int64_t r = 0; r < rows; ++r)
                    for (int64_t kb = 0; kb < kb_count; ++kb)
                        scales[r * kb_count + kb] = as[(task.row_begin + r) * kb_count + kb] * sb[kb * group.sfb_stride1];
            }
            for (int64_t r = 0; r < rows; r += kTileM) {
                const int tile_rows = static_cast<int>(std::min<int64_t>(kTileM, rows - r));
                for (int m = 0; m < tile_rows; ++m) {
                    t.a[m] = aw + (task.row_begin + r + m) * k;
                    t.s[m] = scales.data() + (r + m) * kb_count;
                }
                for (int64_t n = n0; n < n1; n += kTileN) {
                    const int tile_cols = static_cast<int>(std::min<int64_t>(kTileN, n1 - n));
                    for (int j = 0; j < tile_cols; ++j) t.b[j] = b_wide.data() + (n - n0 + j) * k;
                    tile_any(t, tile_rows, tile_cols, group, task.row_begin + r, n);
                }
            }
        }
    }

    void execute(ThreadPool &pool) {
        prepare(pool);
        const int64_t blocks = (args.n + kRowsPerBlock - 1) / kRowsPerBlock;
        std::vector<Task> tasks;
        for (size_t g = 0; g < args.groups.size(); ++g) {
            const int64_t rows = static_cast<int64_t>(args.groups[g].rows.size());
            for (int64_t r = 0; r < rows; r += kRowsPerChunk)
                for (int64_t blk = 0; blk < blocks; ++blk)
                    tasks.push_back({static_cast<int32_t>(g), r, std::min(rows, r + kRowsPerChunk), blk, blk + 1});
        }
        parallel_for(pool, static_cast<int64_t>(tasks.size()), 1, [&](int64_t begin, int64_t end) {
            std::vector<Wide> b_wide(static_cast<size_t>(kRowsPerBlock * k));
            std::vector<float> scales(static_cast<size_t>(kRowsPerChunk * kb_count));
            for (int64_t i = begin; i < end; ++i) run(tasks[i], b_wide, scales);
        });
        for (int64_t row : args.zero_rows) {
            if (d.dtype == MOE4J_F32)
                std::fill_n(d.row<float>(row), args.n, 0.0f);
            else
                std::fill_n(d.row<uint16_t>(row), args.n, uint16_t{0});
        }
    }
};

template <typename Path>
void run_path(moe4j_context *ctx, const Fp8GemmArgs &args) {
    Driver<Path>(args, row_codec(ctx->isa)).execute(*ctx->pool);
}

}  // namespace

void fp8_gemm(moe4j_context *ctx, const Fp8GemmArgs &args) {
    switch (ctx->isa) {
        case MOE4J_ISA_AVX512_BF16: return run_path<Avx512Path>(ctx, args);
        case MOE4J_ISA_AVX2: return run_path<Avx2Path>(ctx, args);
        default: return run_path<ScalarPath>(ctx, args);
    }
}

}  // namespace moe4j::cpu
