// `moe4j_bench gemm`: moe4j_fp8_gemm_nt and the grouped MoE layouts against the machine's measured read bandwidth
// and FP32 FMA peak, and against OpenBLAS cblas_sgemm on the same operands dequantized to fp32.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "blas_baseline.h"
#include "buffers.h"
#include "cache_flusher.h"
#include "machine.h"
#include "moe4j_util.h"
#include "subcommands.h"
#include "table.h"
#include "timing.h"

namespace bench {

namespace {

constexpr int64_t kGroupAlign = 128;  // contiguous layout: rows per group block; masked layout: M_max granularity
constexpr double kErrorLimit = 1e-2;  // max_err above this marks the row BAD

// DeepGEMM's benchmark shapes: weights [N, K] and token counts M.
const std::vector<std::pair<int64_t, int64_t>> kWeightShapes = {{2112, 7168},  {24576, 1536}, {32768, 512},
                                                                {7168, 16384}, {4096, 7168},  {7168, 2048}};
const std::vector<int64_t> kTokenCounts = {1, 16, 64, 128, 4096};

int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

struct GemmShape {
    int64_t m, n, k;
};

// G experts with weights [N, K], about m tokens each (m * U(0.7, 1.3), rounded).
struct GroupedCase {
    const char *name;
    int64_t groups, n, k, m;
    bool contiguous;  // time the contiguous layout as well as the masked one
};

struct GemmConfig {
    int threads = 0;
    int32_t isa = MOE4J_ISA_BEST;
    int fixed_reps = 0;
    bool cold = true;
    bool packed = false;  // moe4j_fp8_gemm_nt on weights packed in panels
    std::vector<GemmShape> shapes;
    std::vector<GroupedCase> grouped;
};

std::vector<GroupedCase> grouped_cases() {
    std::vector<GroupedCase> cases;
    for (int64_t m : {1, 8, 64}) cases.push_back({"v2lite.gate_up", 64, 2816, 2048, m, true});
    for (int64_t m : {1, 8, 64}) cases.push_back({"v2lite.down", 64, 2048, 1408, m, true});
    cases.push_back({"v3.ep8", 32, 4096, 7168, 8, false});  // 256 experts over 8 devices, gate_up of 2 x 2048
    return cases;
}

GemmConfig parse_config(const Args &args) {
    GemmConfig config;
    config.threads = static_cast<int>(args.get_int("threads", 0, 0, 1024));
    parse_isa(args.get_choice("isa", "best", {"scalar", "avx2", "avx512", "avx512_bf16", "best"}), &config.isa);
    config.fixed_reps = static_cast<int>(args.get_int("reps", 0, 1, 1000000));
    config.cold = args.get_choice("cache", "cold", {"cold", "warm"}) == "cold";
    config.packed = args.has("packed");

    const bool one_shape = args.has("m") || args.has("n") || args.has("k");
    const bool all = args.has("all"), grouped_only = args.has("grouped");
    if (one_shape && (all || grouped_only)) throw UsageError("--m/--n/--k do not combine with --all or --grouped");
    if (all && grouped_only) throw UsageError("--all widens the plain table; --grouped runs only the grouped one");
    if (grouped_only) {
        config.grouped = grouped_cases();
        return config;
    }
    if (one_shape) {
        if (args.has("n") != args.has("k")) throw UsageError("give --n and --k together");
        const int64_t limit = int64_t{1} << 20;
        std::vector<int64_t> ms = kTokenCounts;
        std::vector<std::pair<int64_t, int64_t>> weights = kWeightShapes;
        if (args.has("m")) ms = {args.get_int("m", 0, 1, limit)};
        if (args.has("n")) weights = {{args.get_int("n", 0, 1, limit), args.get_int("k", 0, kBlock, limit)}};
        if (weights.front().second % kBlock != 0) throw UsageError("--k must be a multiple of 128");
        for (int64_t m : ms)
            for (const auto &[n, k] : weights) config.shapes.push_back({m, n, k});
        return config;
    }
    for (int64_t m : kTokenCounts) {
        for (const auto &[n, k] : kWeightShapes) {
            const bool mid = (n == 7168 && k == 2048) || (n == 4096 && k == 7168);
            const bool prefill = n == 4096 && k == 7168;
            if (all || m <= 16 || (m <= 128 && mid) || (m == 4096 && prefill)) config.shapes.push_back({m, n, k});
        }
    }
    config.grouped = grouped_cases();
    return config;
}

// OpenBLAS's idle worker threads spin for a while (about 2^28 cycles by default) after each call before they
// sleep; waiting that out keeps them from taking cores from the moe4j call timed next.
void let_blas_threads_sleep() {
    if (blas::available()) std::this_thread::sleep_for(std::chrono::milliseconds(250));
}

// Largest difference between moe4j's bf16 output and the OpenBLAS fp32 result, relative to the largest |result|.
struct ErrorMeter {
    double max_diff = 0, max_ref = 0;

    void add_rows(const uint16_t *got, const float *want, int64_t rows, int64_t cols) {
        for (int64_t i = 0; i < rows * cols; ++i) {
            max_diff = std::max(max_diff, std::fabs(static_cast<double>(bf16_to_f32(got[i])) - want[i]));
            max_ref = std::max(max_ref, std::fabs(static_cast<double>(want[i])));
        }
    }
    double relative() const { return max_ref > 0 ? max_diff / max_ref : max_diff; }
};

// q [R, C] e4m3 with scales (per row: block_rows 1; per 128x128 block: 128) -> out [R, C] f32.
void dequantize(const Context &ctx, void *q, void *scales, int32_t block_rows, float *out, int64_t rows, int64_t cols) {
    const moe4j_tensor q_t = host_tensor_2d(q, MOE4J_E4M3, rows, cols);
    const moe4j_tensor s_t = host_tensor_2d(scales, MOE4J_F32, ceil_div(rows, block_rows), cols / kBlock);
    moe4j_tensor out_t = host_tensor_2d(out, MOE4J_F32, rows, cols);
    check(moe4j_dequantize_fp8(ctx.get(), &q_t, &s_t, block_rows, &out_t), "moe4j_dequantize_fp8");
}

// ---------------------------------------------------------------- table cells shared by both tables

// What one row reports: the moe4j timing and, when OpenBLAS is there, its timing and the error against it.
struct Measured {
    Stats moe4j;
    Stats blas;
    double flops = 0;         // 2 * (real rows) * N * K
    double weight_bytes = 0;  // e4m3 weight bytes the call reads: N * K per weight matrix used
    double error = 0;
};

std::vector<Column> measure_columns() {
    std::vector<Column> columns = {{"reps", 4, Align::Right},      {"best_us", 9, Align::Right},
                                   {"median_us", 9, Align::Right}, {"TFLOP/s", 7, Align::Right},
                                   {"%fma", 5, Align::Right},      {"wGB/s", 6, Align::Right},
                                   {"%read_bw", 8, Align::Right}};
    if (blas::available())
        columns.insert(columns.end(), {{"blas_us", 9, Align::Right},
                                       {"blas_TFLOP/s", 7, Align::Right},
                                       {"blas_wGB/s", 6, Align::Right},
                                       {"vs_blas", 7, Align::Right},
                                       {"max_err", 7, Align::Right}});
    return columns;
}

std::vector<std::string> measure_cells(const Measured &r, const MachineFacts &facts) {
    const double gflops = r.flops / r.moe4j.best * 1e-9, gbps = r.weight_bytes / r.moe4j.best * 1e-9;
    std::vector<std::string> cells = {std::to_string(r.moe4j.count),
                                      fixed(r.moe4j.best * 1e6, 1),
                                      fixed(r.moe4j.median * 1e6, 1),
                                      fixed(gflops * 1e-3, 4),
                                      fixed(100.0 * gflops / facts.fma_peak.best, 1),
                                      fixed(gbps, 1),
                                      fixed(100.0 * gbps / facts.read_bw.best, 1)};
    if (blas::available()) {
        char error[32];
        std::snprintf(error, sizeof error, "%.1e%s", r.error, r.error > kErrorLimit ? " BAD" : "");
        cells.insert(cells.end(), {fixed(r.blas.best * 1e6, 1), fixed(r.flops / r.blas.best * 1e-12, 4),
                                   fixed(4 * r.weight_bytes / r.blas.best * 1e-9, 1),
                                   fixed(r.blas.best / r.moe4j.best, 2) + "x", error});
    }
    return cells;
}

std::vector<Column> concat(std::vector<Column> a, const std::vector<Column> &b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

std::vector<std::string> concat(std::vector<std::string> a, const std::vector<std::string> &b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

// ---------------------------------------------------------------- plain GEMM

// a [M, K] e4m3 with sfa [M, K/128], b [N, K] e4m3 with sfb [ceil(N/128), K/128], d [M, N] bf16.
struct PlainOperands {
    GemmShape s;
    AlignedBuffer a, sfa, b, sfb, d;
    moe4j_tensor a_t, sfa_t, b_t, sfb_t, d_t;

    PlainOperands(const GemmShape &shape, uint64_t seed)
        : s(shape),
          a(s.m * s.k),
          sfa(s.m * (s.k / kBlock) * sizeof(float)),
          b(s.n * s.k),
          sfb(ceil_div(s.n, kBlock) * (s.k / kBlock) * sizeof(float)),
          d(s.m * s.n * sizeof(uint16_t)),
          a_t(host_tensor_2d(a.data(), MOE4J_E4M3, s.m, s.k)),
          sfa_t(host_tensor_2d(sfa.data(), MOE4J_F32, s.m, s.k / kBlock)),
          b_t(host_tensor_2d(b.data(), MOE4J_E4M3, s.n, s.k)),
          sfb_t(host_tensor_2d(sfb.data(), MOE4J_F32, ceil_div(s.n, kBlock), s.k / kBlock)),
          d_t(host_tensor_2d(d.data(), MOE4J_BF16, s.m, s.n)) {
        fill_random_e4m3(a.as<uint8_t>(), a.size(), seed);
        fill_random_range_f32(sfa.as<float>(), sfa.size() / sizeof(float), seed + 1, kScaleLo, kScaleHi);
        fill_random_e4m3(b.as<uint8_t>(), b.size(), seed + 2);
        fill_random_range_f32(sfb.as<float>(), sfb.size() / sizeof(float), seed + 3, kScaleLo, kScaleHi);
    }
};

Measured measure_plain(const Context &ctx, const GemmConfig &config, const CacheFlusher &flush, const GemmShape &s,
                       uint64_t seed) {
    PlainOperands op(s, seed);
    Measured r;
    r.flops = 2.0 * s.m * s.n * s.k;
    r.weight_bytes = static_cast<double>(s.n) * s.k;
    AlignedBuffer packed(config.packed ? static_cast<size_t>(s.n * s.k) : 1);
    moe4j_tensor b_t = op.b_t;
    if (config.packed) {
        b_t = host_tensor_2d(packed.data(), MOE4J_E4M3_P32, s.n, s.k);
        check(moe4j_pack_fp8_weights(ctx.get(), &op.b_t, &b_t), "moe4j_pack_fp8_weights");
    }
    let_blas_threads_sleep();
    r.moe4j = time_cold(config.fixed_reps, flush, [&] {
        check(moe4j_fp8_gemm_nt(ctx.get(), &op.a_t, &op.sfa_t, &b_t, &op.sfb_t, nullptr, &op.d_t), "moe4j_fp8_gemm_nt");
    });
    if (!blas::available()) return r;

    AlignedBuffer a32(s.m * s.k * sizeof(float)), w32(s.n * s.k * sizeof(float)), d32(s.m * s.n * sizeof(float));
    dequantize(ctx, op.a.data(), op.sfa.data(), 1, a32.as<float>(), s.m, s.k);
    dequantize(ctx, op.b.data(), op.sfb.data(), kBlock, w32.as<float>(), s.n, s.k);
    r.blas = time_cold(config.fixed_reps, flush, [&] {
        blas::sgemm_nt(s.m, s.n, s.k, a32.as<float>(), s.k, w32.as<float>(), s.k, d32.as<float>(), s.n);
    });
    ErrorMeter error;
    error.add_rows(op.d.as<uint16_t>(), d32.as<float>(), s.m, s.n);
    r.error = error.relative();
    return r;
}

bool run_plain(const Context &ctx, const GemmConfig &config, const CacheFlusher &flush, const MachineFacts &facts) {
    std::printf("\nmoe4j_fp8_gemm_nt: d[M, N] bf16 = a[M, K] e4m3 x b[N, K]^T e4m3\n");
    const Table table(
        concat({{"M", 4, Align::Right}, {"N", 5, Align::Right}, {"K", 5, Align::Right}}, measure_columns()));
    table.print_header();
    bool all_good = true;
    uint64_t seed = 1;
    for (const GemmShape &s : config.shapes) {
        const Measured r = measure_plain(ctx, config, flush, s, seed);
        seed += 16;
        all_good = all_good && r.error <= kErrorLimit;
        table.print_row(
            concat({std::to_string(s.m), std::to_string(s.n), std::to_string(s.k)}, measure_cells(r, facts)));
    }
    return all_good;
}

// ---------------------------------------------------------------- grouped GEMM

// The operands of one grouped case in both layouts, with the same rows in each.
//  contiguous: a [S, K], each group's rows contiguous from offsets[g] and padded to a multiple of 128 rows,
//              grouped_layout [S] (-1 for padding rows), d [S, N];
//  masked:     a [G, M_max, K] with rows past counts[g] zero, masked_m [G] = counts, d [G, M_max, N].
// Weights b [G, N, K] e4m3 with sfb [G, ceil(N/128), K/128] serve both, passed as G weight groups (views).
struct GroupedOperands {
    const GroupedCase &c;
    int64_t kb, nb;
    std::vector<int32_t> counts;
    std::vector<int64_t> offsets;
    int64_t rows = 0, padded_rows = 0, m_max = 0, used_groups = 0;
    AlignedBuffer a, sfa, layout, b, sfb, d;
    AlignedBuffer am, sfam, masked_m, dm;
    moe4j_tensor a_t{}, sfa_t{}, layout_t{}, d_t{};  // d_t only with c.contiguous
    std::vector<moe4j_tensor> b_t, sfb_t;            // one view per group
    moe4j_fp8_weight_groups b_groups{};
    moe4j_tensor am_t{}, sfam_t{}, masked_m_t{}, dm_t{};

    GroupedOperands(const GroupedCase &gc, uint64_t seed)
        : c(gc),
          kb(c.k / kBlock),
          nb(ceil_div(c.n, kBlock)),
          counts(draw_counts(c, seed)),
          offsets(c.groups),
          a(total_padded(counts) * c.k),
          sfa(total_padded(counts) * kb * sizeof(float)),
          layout(total_padded(counts) * sizeof(int32_t)),
          b(c.groups * c.n * c.k),
          sfb(c.groups * nb * kb * sizeof(float)),
          d(c.contiguous ? total_padded(counts) * c.n * sizeof(uint16_t) : 0),
          am(c.groups * masked_rows(counts) * c.k),
          sfam(c.groups * masked_rows(counts) * kb * sizeof(float)),
          masked_m(c.groups * sizeof(int32_t)),
          dm(c.groups * masked_rows(counts) * c.n * sizeof(uint16_t)) {
        padded_rows = total_padded(counts);
        m_max = masked_rows(counts);
        for (int64_t g = 0, row = 0; g < c.groups; ++g) {
            offsets[g] = row;
            row += round_up(counts[g], kGroupAlign);
            rows += counts[g];
            used_groups += counts[g] > 0;
        }
        fill_random_e4m3(a.as<uint8_t>(), a.size(), seed + 1);
        fill_random_range_f32(sfa.as<float>(), sfa.size() / sizeof(float), seed + 2, kScaleLo, kScaleHi);
        fill_random_e4m3(b.as<uint8_t>(), b.size(), seed + 3);
        fill_random_range_f32(sfb.as<float>(), sfb.size() / sizeof(float), seed + 4, kScaleLo, kScaleHi);
        std::fill(layout.as<int32_t>(), layout.as<int32_t>() + padded_rows, -1);
        std::memset(am.data(), 0, am.size());
        std::memset(sfam.data(), 0, sfam.size());
        for (int64_t g = 0; g < c.groups; ++g) {
            std::fill(layout.as<int32_t>() + offsets[g], layout.as<int32_t>() + offsets[g] + counts[g],
                      static_cast<int32_t>(g));
            masked_m.as<int32_t>()[g] = counts[g];
            std::memcpy(am.as<uint8_t>() + g * m_max * c.k, a.as<uint8_t>() + offsets[g] * c.k, counts[g] * c.k);
            std::memcpy(sfam.as<float>() + g * m_max * kb, sfa.as<float>() + offsets[g] * kb,
                        counts[g] * kb * sizeof(float));
        }
        a_t = host_tensor(a.data(), MOE4J_E4M3, {padded_rows, c.k});
        sfa_t = host_tensor(sfa.data(), MOE4J_F32, {padded_rows, kb});
        layout_t = host_tensor(layout.data(), MOE4J_I32, {padded_rows});
        for (int64_t g = 0; g < c.groups; ++g) {
            b_t.push_back(host_tensor(b.as<uint8_t>() + g * c.n * c.k, MOE4J_E4M3, {c.n, c.k}));
            sfb_t.push_back(host_tensor(sfb.as<float>() + g * nb * kb, MOE4J_F32, {nb, kb}));
        }
        b_groups = {c.groups, b_t.data(), sfb_t.data()};
        if (c.contiguous) d_t = host_tensor(d.data(), MOE4J_BF16, {padded_rows, c.n});
        am_t = host_tensor(am.data(), MOE4J_E4M3, {c.groups, m_max, c.k});
        sfam_t = host_tensor(sfam.data(), MOE4J_F32, {c.groups, m_max, kb});
        masked_m_t = host_tensor(masked_m.data(), MOE4J_I32, {c.groups});
        dm_t = host_tensor(dm.data(), MOE4J_BF16, {c.groups, m_max, c.n});
    }

    // Rows per group: m * U(0.7, 1.3), rounded, at least 0.
    static std::vector<int32_t> draw_counts(const GroupedCase &c, uint64_t seed) {
        std::vector<float> factors(c.groups);
        fill_random_range_f32(factors.data(), factors.size(), seed, 0.7f, 1.3f);
        std::vector<int32_t> counts;
        for (float f : factors) counts.push_back(std::max(0, static_cast<int32_t>(std::lround(c.m * f))));
        return counts;
    }
    static int64_t total_padded(const std::vector<int32_t> &counts) {
        int64_t total = 0;
        for (int32_t n : counts) total += round_up(n, kGroupAlign);
        return total;
    }
    static int64_t masked_rows(const std::vector<int32_t> &counts) {
        return std::max<int64_t>(kGroupAlign, round_up(*std::max_element(counts.begin(), counts.end()), kGroupAlign));
    }
};

struct GroupedMeasured {
    Measured contiguous, masked;
    std::string count_range;                       // fewest..most rows of any expert
    int64_t rows = 0;                              // real rows, all experts
    int64_t contiguous_rows = 0, masked_rows = 0;  // rows of the a tensor in each layout
};

GroupedMeasured measure_grouped(const Context &ctx, const GemmConfig &config, const CacheFlusher &flush,
                                const GroupedCase &c, uint64_t seed) {
    GroupedOperands op(c, seed);
    GroupedMeasured r;
    const auto [fewest, most] = std::minmax_element(op.counts.begin(), op.counts.end());
    r.count_range = std::to_string(*fewest) + ".." + std::to_string(*most);
    r.rows = op.rows;
    r.contiguous_rows = op.padded_rows;
    r.masked_rows = c.groups * op.m_max;
    for (Measured *m : {&r.contiguous, &r.masked}) {
        m->flops = 2.0 * op.rows * c.n * c.k;
        m->weight_bytes = static_cast<double>(op.used_groups) * c.n * c.k;
    }
    let_blas_threads_sleep();
    if (c.contiguous)
        r.contiguous.moe4j = time_cold(config.fixed_reps, flush, [&] {
            check(moe4j_grouped_fp8_gemm_contiguous(ctx.get(), &op.a_t, &op.sfa_t, &op.b_groups, &op.layout_t,
                                                    static_cast<int32_t>(kGroupAlign), &op.d_t),
                  "moe4j_grouped_fp8_gemm_contiguous");
        });
    r.masked.moe4j = time_cold(config.fixed_reps, flush, [&] {
        check(moe4j_grouped_fp8_gemm_masked(ctx.get(), &op.am_t, &op.sfam_t, &op.b_groups, &op.masked_m_t, &op.dm_t),
              "moe4j_grouped_fp8_gemm_masked");
    });
    if (!blas::available()) return r;

    // The baseline: one sgemm per expert that has rows, over the contiguous layout's rows.
    const int64_t n = c.n, k = c.k;
    AlignedBuffer a32(op.padded_rows * k * sizeof(float)), w32(c.groups * n * k * sizeof(float)),
        d32(op.padded_rows * n * sizeof(float));
    dequantize(ctx, op.a.data(), op.sfa.data(), 1, a32.as<float>(), op.padded_rows, k);
    for (int64_t g = 0; g < c.groups; ++g)
        dequantize(ctx, op.b.as<uint8_t>() + g * n * k, op.sfb.as<float>() + g * op.nb * op.kb, kBlock,
                   w32.as<float>() + g * n * k, n, k);
    r.masked.blas = time_cold(config.fixed_reps, flush, [&] {
        for (int64_t g = 0; g < c.groups; ++g) {
            if (op.counts[g] == 0) continue;
            blas::sgemm_nt(op.counts[g], n, k, a32.as<float>() + op.offsets[g] * k, k, w32.as<float>() + g * n * k, k,
                           d32.as<float>() + op.offsets[g] * n, n);
        }
    });
    r.contiguous.blas = r.masked.blas;

    ErrorMeter contiguous, masked;
    for (int64_t g = 0; g < c.groups; ++g) {
        const float *want = d32.as<float>() + op.offsets[g] * n;
        if (c.contiguous) contiguous.add_rows(op.d.as<uint16_t>() + op.offsets[g] * n, want, op.counts[g], n);
        masked.add_rows(op.dm.as<uint16_t>() + g * op.m_max * n, want, op.counts[g], n);
    }
    r.contiguous.error = contiguous.relative();
    r.masked.error = masked.relative();
    return r;
}

bool run_grouped(const Context &ctx, const GemmConfig &config, const CacheFlusher &flush, const MachineFacts &facts) {
    std::printf(
        "\nmoe4j_grouped_fp8_gemm_contiguous / _masked: G experts [N, K] e4m3 (one stack, passed as G weight groups), "
        "about m rows each "
        "(m x U(0.7, 1.3)), d bf16\n");
    const Table table(concat({{"case", 14, Align::Left},
                              {"layout", 6, Align::Left},
                              {"G", 3, Align::Right},
                              {"N", 5, Align::Right},
                              {"K", 5, Align::Right},
                              {"m", 3, Align::Right},
                              {"m_range", 7, Align::Right},
                              {"rows", 5, Align::Right},
                              {"a_rows", 6, Align::Right}},
                             measure_columns()));
    table.print_header();
    bool all_good = true;
    uint64_t seed = 1000;
    for (const GroupedCase &c : config.grouped) {
        const GroupedMeasured r = measure_grouped(ctx, config, flush, c, seed);
        seed += 16;
        const auto row = [&](const char *layout, int64_t a_rows, const Measured &m) {
            all_good = all_good && m.error <= kErrorLimit;
            table.print_row(concat({c.name, layout, std::to_string(c.groups), std::to_string(c.n), std::to_string(c.k),
                                    std::to_string(c.m), r.count_range, std::to_string(r.rows), std::to_string(a_rows)},
                                   measure_cells(m, facts)));
        };
        if (c.contiguous) row("contig", r.contiguous_rows, r.contiguous);
        row("masked", r.masked_rows, r.masked);
    }
    return all_good;
}

}  // namespace

int run_gemm(const Args &args) {
    const GemmConfig config = parse_config(args);  // usage errors surface before any measurement
    const MachineFacts facts = measure_machine(config.threads);
    const Context ctx(facts.threads, config.isa);
    const moe4j_context_info info = ctx.info();
    const CacheFlusher flush(config.cold);
    if (blas::available()) blas::set_threads(facts.threads);

    std::printf("%s\n", machine_summary(facts).c_str());
    const std::string cache =
        config.cold ? "cold (" + std::to_string(flush.bytes() >> 20) + " MiB read before each timed call)" : "warm";
    std::printf(
        "gemm: isa requested=%s context=%s  threads=%d  a: random e4m3 codes (no NaN) with per-token scales, "
        "b: random e4m3 with 128x128 block scales  cache=%s\n",
        isa_name(config.isa), isa_name(info.isa), info.threads, cache.c_str());
    if (blas::available())
        std::printf("baseline: %s  cblas_sgemm(RowMajor, NoTrans, Trans) on a and b dequantized to fp32\n",
                    blas::summary().c_str());
    else
        std::printf("OpenBLAS baseline unavailable: install libopenblas-dev\n");

    bool all_good = true;
    if (!config.shapes.empty()) all_good = run_plain(ctx, config, flush, facts) && all_good;
    if (!config.grouped.empty()) all_good = run_grouped(ctx, config, flush, facts) && all_good;

    std::printf(
        "\nbest_us/median_us: over `reps` timed calls after warm-up. TFLOP/s = 2*rows*N*K / best_us, rows = M or, "
        "grouped, the real rows (padding excluded);\n"
        "%%fma compares it with fma_peak above (fp32 FMA; moe4j's AVX512_BF16 path uses bf16 dot products and can pass "
        "100%%). wGB/s = e4m3 weight bytes read\n"
        "(N*K per weight matrix; grouped: per expert with at least one row) / best_us; %%read_bw compares it with "
        "read_bw above.\n");
    if (blas::available())
        std::printf(
            "blas_*: OpenBLAS cblas_sgemm on a and b dequantized to fp32 (grouped: one call per expert with rows, "
            "over its real rows), best time;\n"
            "blas_wGB/s counts 4*N*K bytes per weight matrix. vs_blas = blas_us / best_us (above 1: moe4j is "
            "faster). max_err = max|d - d_blas| / max|d_blas|\n"
            "(d is bf16, so about 4e-3 at most is expected; above %.0e the row is marked BAD).\n",
            kErrorLimit);
    if (!config.grouped.empty())
        std::printf(
            "grouped: m_range = rows per expert; rows = their sum; a_rows = rows of the a tensor (contig: each "
            "expert padded to 128 rows, whose d rows moe4j zeroes;\n"
            "masked: G x M_max, M_max = the largest count rounded up to 128).\n");
    if (config.cold)
        std::printf(
            "cache=cold: a read of %zu MiB evicts the last-level cache before every timed call, so operands come "
            "from memory as in a model whose weights\n"
            "exceed the cache; --cache warm times back-to-back calls instead.\n",
            flush.bytes() >> 20);
    report_bandwidth_drift(facts);
    if (!all_good) {
        std::printf("ERROR: some rows differ from the OpenBLAS result beyond %.0e (marked BAD)\n", kErrorLimit);
        return 1;
    }
    return 0;
}

}  // namespace bench
